/*
 * The process runtime (<esc/process.h>, esc_worker_add_process): a
 * process manager run by an esc_worker through a durable subscription.
 *
 * The subscription delivers each event of the process's types; the
 * handler routes it to its instance and handles it to the end
 * (esc__runner_input): fold the instance stream, handle the input with
 * the core (esc__process_handle), append its records expecting the
 * folded version, then execute the commands decided through esc_execute
 * with their decision ids and handle each outcome the same way, and
 * mirror the pending deadlines into the table. Every id involved is
 * derived, so doing any of it again after a crash stores nothing twice
 * and executes nothing twice. A failing instance is parked
 * (runner_tables.c) and the subscription moves on.
 */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Loads and redoes an input this many times when other runners keep
 * appending to the instance meanwhile. */
#define RUNNER_CONFLICT_ATTEMPTS 20
/* Records read per page when folding an instance. */
#define RUNNER_PAGE 500

int64_t esc__runner_now_us(const esc__runner *r) {
  return r->o.now_us ? r->o.now_us(r->o.clock_userdata) : esc_now_us();
}

void esc__runner_log(const esc__runner *r, const char *fmt, ...) {
  char line[768];
  va_list ap;
  if (!r->o.log)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  r->o.log(r->o.log_userdata, line);
}

bool esc__runner_passing(esc_status rc) {
  return rc == ESC_ECONN || rc == ESC_ETIMEDOUT || rc == ESC_EUNKNOWN ||
         rc == ESC_EBUSY || rc == ESC_EIO || rc == ESC_ENOMEM ||
         rc == ESC_ECONFLICT;
}

/* ------------------------------------------------------------------------
 * Loading an instance
 * ------------------------------------------------------------------------ */

/* Loads inst (fresh from init): its snapshot, if any, and the records
 * after it. */
static esc_status load(esc__runner *r, esc__process_instance *inst,
                       esc_error *err) {
  struct esc__load_info info;
  esc_status rc =
      esc__process_instance_load(r->store, inst, RUNNER_PAGE, &info, err);
  if (info.snapshot_ignored)
    esc__runner_log(r, "process %s: %s: %s; folded from the start",
                    r->p->name, inst->stream_id, info.snapshot_note);
  return rc;
}

/* After an append that crossed a multiple of snapshot_every. A snapshot
 * is a cache: failing to store one costs the next loads time, never the
 * input, so it is logged and counted, not returned. */
static void snapshot(esc__runner *r, const esc__process_instance *inst,
                     int64_t before) {
  esc_error err = ESC_ERROR_INIT;
  if (!esc__process_snapshot_due(inst, before) ||
      esc__process_instance_snapshot(r->store, inst, &err) == ESC_OK)
    return;
  r->snapshot_failures++;
  esc__runner_log(r,
                  "process %s: snapshot of %s at version %lld not stored "
                  "(%lld so far): %s",
                  r->p->name, inst->stream_id, (long long)inst->version,
                  (long long)r->snapshot_failures, err.msg);
}

/* ------------------------------------------------------------------------
 * Handling one input and appending its records
 * ------------------------------------------------------------------------ */

static esc_status handle_append(esc__runner *r, esc__process_instance *inst,
                                const esc__process_delivery *in,
                                esc_error *err) {
  esc__process_step step;
  esc__process_step_init(&step);
  int64_t before = inst->version;
  int64_t expected = before ? before : ESC_EXPECT_NO_STREAM;
  esc_status rc = esc__process_handle(inst, in, &step, err);
  if (rc == ESC_OK && !step.handled)
    goto out;
  if (rc != ESC_OK) {
    const char *why = esc_process_decisions_failure(&step.decisions);
    if (why && err)
      esc_error_set(err, rc, "%s: %s", inst->stream_id, why);
    goto out;
  }
  esc_append_result res;
  rc = esc_append(r->store, inst->stream_id, expected, step.records,
                  step.count, &res, err);
  if (rc == ESC_OK)
    snapshot(r, inst, before);
out:
  esc__process_step_release(&step);
  return rc;
}

/* ------------------------------------------------------------------------
 * Executing the commands issued
 * ------------------------------------------------------------------------ */

/* Decodes a pending command's payload into buf (type->size bytes). */
static esc_status decode_command(const struct esc__pending_command *c,
                                 msgpack_zone *zone, void *buf,
                                 esc_error *err) {
  msgpack_object obj;
  size_t off = 0;
  memset(buf, 0, c->type->size);
  if (msgpack_unpack(c->payload, c->payload_len, &off, zone, &obj) !=
      MSGPACK_UNPACK_SUCCESS)
    return esc_error_set(err, ESC_EINVAL, "command %s to %s does not unpack",
                         c->type->name, c->stream_id);
  return c->type->decode(&obj, buf, err);
}

/* Executes the first pending command of inst and handles its outcome. */
static esc_status execute_one(esc__runner *r, esc__process_instance *inst,
                              esc_error *err) {
  const struct esc__pending_command *c = &inst->commands[0];
  esc_command_options co = ESC_COMMAND_OPTIONS_INIT;
  esc_command_result res;
  msgpack_zone zone;
  memset(&res, 0, sizeof res);
  void *buf = calloc(1, c->type->size ? c->type->size : 1);
  if (!buf || !msgpack_zone_init(&zone, 1024)) {
    free(buf);
    return esc_error_set(err, ESC_ENOMEM, "%s: out of memory",
                         inst->stream_id);
  }
  char actor[ESC_PROCESS_NAME_MAX + 16];
  snprintf(actor, sizeof actor, "process:%s", r->p->name);
  co.command_id = c->id;
  co.actor = actor;
  /* Tracing (<esc_internal/process.h>): the correlation of the input it
   * was decided on, caused by that input's trigger. */
  co.correlation_id = c->correlation;
  co.causation_id = c->causation;
  esc_status rc = decode_command(c, &zone, buf, err);
  if (rc == ESC_OK)
    rc = esc_execute(r->store, c->type->decider, c->stream_id, buf, &co, &res,
                     err);
  esc__process_delivery out = {.kind = ESC_PROCESS_INPUT_OUTCOME,
                               .time_us = esc__runner_now_us(r),
                               .command_id = c->id,
                               .accepted = rc == ESC_OK,
                               .code = rc == ESC_OK ? 0 : res.domain_code,
                               .message = rc == ESC_OK ? "" : res.domain_msg};
  if (rc == ESC_OK || rc == ESC_EREJECTED) {
    if (err)
      *err = (esc_error)ESC_ERROR_INIT;
    rc = handle_append(r, inst, &out, err);
  } else if (err && !esc__runner_passing(rc)) {
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    esc_error_set(err, rc, "%s: command %s to %s: %s", inst->stream_id,
                  c->type->name, c->stream_id, why);
  }
  msgpack_zone_destroy(&zone);
  free(buf);
  return rc;
}

static esc_status execute_pending(esc__runner *r, esc__process_instance *inst,
                                  esc_error *err) {
  esc_status rc = ESC_OK;
  while (rc == ESC_OK && inst->command_count > 0)
    rc = execute_one(r, inst, err);
  return rc;
}

/* ------------------------------------------------------------------------
 * One input, to the end
 * ------------------------------------------------------------------------ */

static esc_status input_once(esc__runner *r, const char *instance,
                             const esc__process_delivery *in, esc_error *err) {
  esc__process_instance inst;
  esc_status rc = esc__process_instance_init(&inst, r->p, instance, err);
  if (rc != ESC_OK)
    return rc;
  rc = load(r, &inst, err);
  /* Commands a crash left without an outcome come first: they were
   * decided before this input. */
  if (rc == ESC_OK)
    rc = execute_pending(r, &inst, err);
  if (rc == ESC_OK && in)
    rc = handle_append(r, &inst, in, err);
  if (rc == ESC_OK)
    rc = execute_pending(r, &inst, err);
  /* Always, even for an input already handled: a crash after its append
   * may have left the table behind the stream. */
  if (rc == ESC_OK && inst.version > 0)
    rc = esc__runner_sync_instance(r, &inst, err);
  esc__process_instance_release(&inst);
  return rc;
}

esc_status esc__runner_input(esc__runner *r, const char *instance,
                             const esc__process_delivery *in, esc_error *err) {
  esc_status rc = ESC_OK;
  for (int attempt = 1; attempt <= RUNNER_CONFLICT_ATTEMPTS; attempt++) {
    rc = input_once(r, instance, in, err);
    if (rc != ESC_ECONFLICT)
      return rc;
    /* Another runner appended to the instance: fold again and redo. */
    struct timespec ts = {0, (long)(attempt < 10 ? attempt : 10) * 1000000L};
    nanosleep(&ts, NULL);
  }
  return esc_error_set(err, ESC_EBUSY,
                       "process %s: instance %s kept changing under %d "
                       "attempts",
                       r->p->name, instance, RUNNER_CONFLICT_ATTEMPTS);
}

/* ------------------------------------------------------------------------
 * The subscription's handler
 * ------------------------------------------------------------------------ */

/* Parks the instance an input failed on; the subscription moves on. */
static esc_status park(esc__runner *r, const char *instance, const char *kind,
                       const esc_uuid *ref, const esc_error *why,
                       esc_error *err) {
  esc__runner_log(r, "process %s: instance %s parked: %s", r->p->name,
                  instance, why->msg);
  return esc__runner_park(r, instance, kind, ref, why->msg, err);
}

static esc_status handle(const esc_delivery *d, void *userdata,
                         esc_error *err) {
  esc__runner *r = userdata;
  const esc_recorded_event *rec = d->event->recorded;
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  bool mine = false, starts = false, kept = false;
  /* An event without an instance is the subscription's to retry and
   * dead-letter: there is no instance to park. */
  esc_status rc = esc__process_route(r->p, rec, instance, &mine, &starts, err);
  if (rc != ESC_OK || !mine)
    return rc;
  rc = esc__runner_park_input(r, instance, "event", &rec->id, &kept, err);
  if (rc != ESC_OK || kept)
    return rc;
  esc__process_delivery in = {.kind = ESC_PROCESS_INPUT_EVENT,
                              .time_us = rec->recorded_at_us,
                              .event = rec};
  esc_error why = ESC_ERROR_INIT;
  rc = esc__runner_input(r, instance, &in, &why);
  if (rc == ESC_OK || esc__runner_passing(rc)) {
    if (rc && err)
      *err = why;
    /* The subscription delivers these again without end (its contract);
     * the others of ours are as passing. */
    if (rc == ESC_EIO || rc == ESC_ENOMEM || rc == ESC_ECONFLICT)
      rc = ESC_EBUSY;
    return rc;
  }
  return park(r, instance, "event", &rec->id, &why, err);
}

/* ------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

static void runner_free(void *userdata) {
  esc__runner *r = userdata;
  if (!r)
    return;
  esc__runner_tables_close(r);
  esc_store_free(r->store);
  free(r->types);
  free(r->pg_url);
  free(r->schema);
  free(r);
}

static size_t list_len(const char *const *l) {
  size_t n = 0;
  while (l && l[n])
    n++;
  return n;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static esc_status check_options(const esc_process_options *o, esc_error *err) {
  if (o->partitions < 0 || o->max_attempts < 0 || o->retry_base_ms < 0 ||
      o->retry_max_ms < 0)
    return esc_error_set(err, ESC_EINVAL,
                         "process options: partitions, max_attempts and the "
                         "retry pauses must be >= 0");
  return ESC_OK;
}

/* The runner's copy of the options, with defaults filled in. */
static void fill_defaults(esc_process_options *o) {
  if (o->max_attempts == 0)
    o->max_attempts = 5;
  if (o->retry_base_ms == 0)
    o->retry_base_ms = 500;
  if (o->retry_max_ms == 0)
    o->retry_max_ms = 60000;
  if (o->retry_max_ms < o->retry_base_ms)
    o->retry_max_ms = o->retry_base_ms;
}

static esc__runner *runner_new(const esc_process *p,
                               const esc_process_options *o, esc_error *err) {
  esc__runner *r = calloc(1, sizeof *r);
  size_t ns = list_len(p->starts), nc = list_len(p->continues);
  if (!r || !(r->types = calloc(ns + nc + 1, sizeof *r->types))) {
    free(r);
    esc_error_set(err, ESC_ENOMEM, "process %s: out of memory", p->name);
    return NULL;
  }
  r->p = p;
  r->o = *o;
  fill_defaults(&r->o);
  r->pg_url = dup_or_null(o->pg_url);
  r->schema = dup_or_null(o->schema);
  r->o.pg_url = r->pg_url;
  r->o.schema = r->schema;
  memcpy(r->types, p->starts, ns * sizeof *r->types);
  memcpy(r->types + ns, p->continues, nc * sizeof *r->types);
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = r->schema;
  so.app_name = "esc process";
  r->store = esc_store_open(r->pg_url, &so, err);
  if (!r->store || (o->pg_url && !r->pg_url) || (o->schema && !r->schema)) {
    if (r->store)
      esc_error_set(err, ESC_ENOMEM, "process %s: out of memory", p->name);
    runner_free(r);
    return NULL;
  }
  r->sub = (esc_subscription)ESC_SUBSCRIPTION_INIT;
  r->sub.name = p->name;
  r->sub.categories = p->categories;
  r->sub.event_types = (const char *const *)r->types;
  r->sub.partitions = o->partitions;
  r->sub.handle = handle;
  r->sub.userdata = r;
  r->sub.start = o->start;
  r->sub.tick = esc__runner_tick;
  r->sub.release = runner_free;
  r->sub.kind = ESC_CONSUMER_PROCESS;
  return r;
}

esc_status esc_worker_add_process(esc_worker *w, const esc_process *p,
                                  const esc_process_options *o,
                                  esc_error *err) {
  esc_process_options defaults = ESC_PROCESS_OPTIONS_INIT;
  if (!o)
    o = &defaults;
  if (!w || !esc_process_valid(p, err))
    return w ? ESC_EINVAL
             : esc_error_set(err, ESC_EINVAL, "esc_worker_add_process: no "
                                              "worker");
  esc_status rc = check_options(o, err);
  if (rc != ESC_OK)
    return rc;
  esc__runner *r = runner_new(p, o, err);
  if (!r)
    return err && err->code ? err->code : ESC_ENOMEM;
  rc = esc_worker_add_subscription(w, &r->sub, err);
  if (rc != ESC_OK)
    runner_free(r); /* the worker did not take it */
  return rc;
}

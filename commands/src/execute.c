/*
 * Executing a command: load the stream, decide, append with the loaded
 * version as the expected version; on a conflict, back off and do it all
 * again, a bounded number of times.
 *
 * A command id makes execution idempotent. Event ids are derived from it,
 * and a command that stores nothing (rejected, or no change) is recorded
 * as such, so a caller-given id is looked up after loading and before
 * deciding: a retry returns the first outcome, even when the stream has
 * moved on or was truncated since (first_result.c). Looking up after the
 * load leaves no gap: a first execution that commits later moves the
 * stream, so this one's append conflicts and its next attempt finds it.
 * Concurrent twins are caught as before: one that decides the same events
 * gets the store's idempotent-append answer, one that decides differently
 * collides on the ids or stores nothing, and each then returns what the
 * first stored. A generated id is new, so it costs no lookup.
 */
#include "command_int.h"
#include <esc_internal/stats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  DEFAULT_ATTEMPTS = 25, /* 16 writers on one stream needed up to 17 */
  DEFAULT_BACKOFF_MS = 2,
  DEFAULT_BACKOFF_MAX_MS = 200
};

/* ------------------------------------------------------------ append -- */

/* The events of a decision, with derived ids and shared metadata. */
static esc_status append_decision(esc_store *store, const char *stream,
                                  int64_t expected, const esc_decision *d,
                                  const esc_uuid *cmd, const void *meta,
                                  size_t meta_len, esc_append_result *out,
                                  esc_error *err) {
  esc_event_data *ev = calloc(d->count, sizeof *ev);
  if (!ev)
    return esc_error_set(err, ESC_ENOMEM, "execute on %s: out of memory",
                         stream);
  for (size_t i = 0; i < d->count; i++) {
    const struct esc__emitted *e = &d->events[i];
    ev[i] = (esc_event_data){esc__command_event_id(cmd, i),
                             e->type->name,
                             e->type->schema_version,
                             e->data,
                             e->len,
                             meta,
                             meta_len};
  }
  esc_status rc = esc_append(store, stream, expected, ev, d->count, out, err);
  free(ev);
  return rc;
}

/* ------------------------------------------------------------ helpers -- */

esc_status esc__check_target(const esc_decider *d, const char *stream,
                             const char *what, esc_error *err) {
  char category[ESC_STREAM_ID_MAX + 1];
  esc_error inner = ESC_ERROR_INIT;
  if (!stream || !esc_stream_id_valid(stream, &inner))
    return esc_error_set(err, ESC_EINVAL, "%s: %s", what,
                         stream ? inner.msg : "stream id is NULL");
  esc_stream_category(stream, category, sizeof category);
  if (!d->category || strcmp(category, d->category) != 0)
    return esc_error_set(err, ESC_EINVAL,
                         "%s on %s: the decider is for category %s", what,
                         stream, d->category ? d->category : "(null)");
  return ESC_OK;
}

/* Jittered exponential backoff: half to all of base * 2^(attempt - 1). */
static void back_off(const esc_command_options *o, int attempt) {
  static _Thread_local uint64_t seed;
  if (!seed)
    seed = (uint64_t)(uintptr_t)&seed ^ (uint64_t)time(NULL) ^ 0x9e3779b9u;
  seed ^= seed << 13;
  seed ^= seed >> 7;
  seed ^= seed << 17;
  long ms = o->backoff_ms;
  for (int i = 1; i < attempt && ms < o->backoff_max_ms; i++)
    ms *= 2;
  if (ms > o->backoff_max_ms)
    ms = o->backoff_max_ms;
  long us = ms * 500 + (long)(seed % (uint64_t)(ms * 500 + 1));
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static esc_command_options with_defaults(const esc_command_options *opts) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  if (opts)
    o = *opts;
  if (esc_uuid_is_nil(&o.command_id))
    o.command_id = esc_uuid_v4();
  if (esc_uuid_is_nil(&o.correlation_id))
    o.correlation_id = o.command_id;
  if (o.max_attempts <= 0)
    o.max_attempts = DEFAULT_ATTEMPTS;
  if (o.backoff_ms <= 0)
    o.backoff_ms = DEFAULT_BACKOFF_MS;
  if (o.backoff_max_ms <= 0)
    o.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
  return o;
}

/* ----------------------------------------------------------- snapshot -- */

/*
 * Folds what was just appended into state, so it can be snapshotted: the
 * stored events themselves, read back, so the state sees their ids,
 * positions, metadata and times exactly as a replay would.
 */
static esc_status fold_appended(esc_store *store, const char *stream,
                                const esc_append_result *a, void *state,
                                struct esc__folder *f) {
  esc_events ev = ESC_EVENTS_INIT;
  size_t n = (size_t)(a->last_version - a->first_version + 1);
  esc_status rc = esc_read_stream(store, stream, a->first_version, ESC_FORWARD,
                                  n, &ev, NULL);
  if (!rc && (ev.count != n || ev.items[0].stream_version != a->first_version))
    rc = ESC_ECONFLICT; /* cannot happen: we hold those versions */
  for (size_t i = 0; i < ev.count && !rc; i++)
    rc = esc__folder_apply(f, state, &ev.items[i], NULL);
  esc_events_release(&ev);
  return rc;
}

/* Every snapshot_every events (when an append crosses a multiple), stores
 * the state. A snapshot is a cache, so failing to take one is not an
 * error of the command. */
static void maybe_snapshot(esc_store *store, const esc_decider *dec,
                           const char *stream, const esc_append_result *a,
                           int64_t loaded, void *state, struct esc__folder *f) {
  int64_t every = dec->snapshot_every;
  if (every <= 0 || !dec->encode_state || a->duplicate ||
      a->last_version / every == loaded / every)
    return;
  if (fold_appended(store, stream, a, state, f))
    return;
  esc__snapshot_store(store, dec, stream, a->last_version, state, NULL);
}

/* ------------------------------------------------------------ execute -- */

/* Everything one execution holds, released in one place. */
struct run {
  esc_store *store;
  const esc_decider *decider;
  const char *stream;
  const void *command;
  esc_command_options opts;
  bool given_id; /* by the caller: it may have been executed before */
  esc_command_result *result;
  void *state;
  struct esc__folder folder;
  esc_decision decision;
  void *meta;
  size_t meta_len;
};

/* Reports the first execution's outcome when there was one (*found):
 * ESC_EREJECTED for a recorded rejection, else ESC_OK. */
static esc_status first_result(struct run *r, bool *found, esc_error *err) {
  esc_command_result first = *r->result;
  esc_status rc = esc__first_result(r->store, r->stream, &r->opts.command_id,
                                    &first, found, err);
  if (rc || !*found)
    return rc;
  *r->result = first;
  if (first.domain_code > 0)
    return esc_error_set(err, ESC_EREJECTED, "%s", first.domain_msg);
  return ESC_OK;
}

/* Reports the first execution's result when there was one; else keeps rc. */
static esc_status first_result_or(struct run *r, esc_status rc,
                                  esc_error *err) {
  bool found = false;
  esc_status first = first_result(r, &found, err);
  return first || found ? first : rc;
}

/*
 * The decision stored nothing (rc ESC_EREJECTED, or ESC_OK with no
 * events): record that, so a retry of this command id is answered with
 * the same outcome. The store records it only while the stream is still
 * at the version decided on (else ESC_ECONFLICT: decide again), so a twin
 * that appended meanwhile is found by the next attempt, and one that
 * recorded first decided on the same state as this one.
 */
static esc_status settle_nothing(struct run *r, esc_status rc, int64_t version,
                                 esc_error *err) {
  esc_command_result *res = r->result;
  res->version = version;
  if (rc == ESC_EREJECTED) {
    res->domain_code = r->decision.reject_code;
    snprintf(res->domain_msg, sizeof res->domain_msg, "%s",
             r->decision.reject_msg);
  }
  esc_status recorded = esc_command_outcome_write(
      r->store, &r->opts.command_id, r->stream, version, res->domain_code,
      res->domain_msg, err);
  if (recorded)
    return recorded;
  return rc ? esc_error_set(err, rc, "%s", res->domain_msg) : ESC_OK;
}

/* One load-decide-append round. ESC_ECONFLICT means: try again. */
static esc_status attempt(struct run *r, esc_error *err) {
  struct esc__load_info info;
  esc_append_result appended;
  esc_command_result *res = r->result;

  /* A rejection an earlier attempt could not record is no result. */
  res->domain_code = 0;
  res->domain_msg[0] = '\0';
  esc__state_free(r->decider, r->state);
  r->state = esc__state_new(r->decider);
  if (!r->state)
    return esc_error_set(err, ESC_ENOMEM, "execute: out of memory");
  esc_status rc = esc__load(r->store, r->decider, r->stream, r->state,
                            &r->folder, &info, err);
  res->snapshot_version = info.snapshot_version;
  res->snapshot_ignored = info.snapshot_ignored;
  snprintf(res->snapshot_note, sizeof res->snapshot_note, "%s",
           info.snapshot_note);
  /* After the load (see the head of this file). A stream that cannot be
   * loaded any more can still say what an earlier execution did. */
  if (rc && (rc != ESC_ETRUNCATED || !r->given_id))
    return rc;
  if (r->given_id) {
    bool found = false;
    esc_status first = first_result(r, &found, err);
    if (first || found)
      return first;
  }
  if (rc)
    return rc; /* err still says why */

  rc = esc__decision_run(&r->decision, r->decider, r->state, r->command, err);
  if (rc == ESC_EREJECTED || (!rc && r->decision.count == 0))
    return settle_nothing(r, rc, info.version, err);
  if (rc)
    return rc;
  res->version = info.version;

  rc = append_decision(r->store, r->stream, info.version, &r->decision,
                       &r->opts.command_id, r->meta, r->meta_len, &appended,
                       err);
  if (rc == ESC_EDUPLICATE)
    return first_result_or(r, rc, err);
  if (rc)
    return rc;
  if (appended.duplicate) /* the first execution may have stored more */
    return first_result_or(r, ESC_OK, err);
  res->event_count = r->decision.count;
  res->first_version = appended.first_version;
  res->version = appended.last_version;
  res->position = appended.position;
  res->duplicate = appended.duplicate;
  maybe_snapshot(r->store, r->decider, r->stream, &appended, info.version,
                 r->state, &r->folder);
  return ESC_OK;
}

static esc_status encode_metadata(struct run *r, esc_error *err) {
  esc_metadata m = ESC_METADATA_INIT;
  m.correlation_id = r->opts.correlation_id;
  m.causation_id = esc_uuid_is_nil(&r->opts.causation_id)
                       ? r->opts.command_id
                       : r->opts.causation_id;
  m.actor = r->opts.actor;
  m.fields = r->opts.metadata;
  m.field_count = r->opts.metadata_count;
  m.time_us = esc_now_us();
  return esc_metadata_encode(&m, &r->meta, &r->meta_len, err);
}

/*
 * Conflicts are retried, and so are appends whose reply was lost
 * (ESC_EUNKNOWN): the command id gives the next attempt the same event
 * ids, so it appends them or finds them stored and returns that first
 * result — the settling the store documents for an unknown append.
 */
static bool again(esc_status rc) {
  return rc == ESC_ECONFLICT || rc == ESC_EUNKNOWN;
}

/* No attempt after a lost reply could tell what became of it. */
static esc_status still_unknown(const struct run *r, esc_error *err) {
  char id[37], why[sizeof err->msg];
  esc_uuid_format(&r->opts.command_id, id);
  snprintf(why, sizeof why, "%s", err ? err->msg : "");
  return esc_error_set(err, ESC_EUNKNOWN,
                       "execute on %s: outcome unknown, an append may have "
                       "been applied; execute command %s again to settle it "
                       "(%s)",
                       r->stream, id, why);
}

static esc_status execute(esc_store *store, const esc_decider *decider,
                          const char *stream_id, const void *command,
                          const esc_command_options *opts,
                          esc_command_result *result, uint64_t *conflicts,
                          esc_error *err) {
  struct run r = {.store = store,
                  .decider = decider,
                  .stream = stream_id,
                  .command = command,
                  .opts = with_defaults(opts),
                  .given_id = opts && !esc_uuid_is_nil(&opts->command_id),
                  .result = result};
  memset(result, 0, sizeof *result);
  result->command_id = r.opts.command_id;
  esc__decision_init(&r.decision);
  esc_status rc = esc__check_target(decider, stream_id, "execute", err);
  if (!rc)
    rc = esc__folder_init(&r.folder, decider, err);
  if (rc)
    return rc;
  rc = encode_metadata(&r, err);
  bool unknown = false;
  for (int i = 1; !rc || again(rc); i++) {
    result->attempts = i;
    rc = attempt(&r, err);
    *conflicts += rc == ESC_ECONFLICT;
    unknown = unknown || rc == ESC_EUNKNOWN;
    if (!again(rc))
      break;
    if (i == r.opts.max_attempts) {
      if (rc == ESC_ECONFLICT)
        rc = esc_error_set(err, ESC_ECONFLICT,
                           "execute on %s: still conflicting after %d "
                           "attempts",
                           stream_id, i);
      break;
    }
    back_off(&r.opts, i);
  }
  if (unknown && (rc == ESC_EUNKNOWN || rc == ESC_ECONN || rc == ESC_ETIMEDOUT))
    rc = still_unknown(&r, err);
  if (!rc && err)
    memset(err, 0, sizeof *err);
  esc__state_free(decider, r.state);
  esc__folder_release(&r.folder);
  esc__decision_release(&r.decision);
  free(r.meta);
  return rc;
}

/* ------------------------------------------------------------ metrics -- */

static struct {
  struct esc__latency duration;
  atomic_uint_fast64_t conflicts, retries, duplicates, rejected, failures;
} commands;

esc_status esc_execute(esc_store *store, const esc_decider *decider,
                       const char *stream_id, const void *command,
                       const esc_command_options *opts,
                       esc_command_result *result, esc_error *err) {
  int64_t began = esc__now_ns();
  uint64_t conflicts = 0;
  esc_status rc = execute(store, decider, stream_id, command, opts, result,
                          &conflicts, err);
  if (!esc_client_metrics_enabled())
    return rc;
  esc__latency_observe(&commands.duration, esc__now_ns() - began);
  esc__count(&commands.conflicts, conflicts);
  if (result->attempts > 1)
    esc__count(&commands.retries, (uint64_t)(result->attempts - 1));
  esc__count(&commands.duplicates, !rc && result->duplicate);
  esc__count(&commands.rejected, rc == ESC_EREJECTED);
  esc__count(&commands.failures, rc && rc != ESC_EREJECTED);
  return rc;
}

void esc_command_metrics_read(esc_command_metrics *out) {
  esc__latency_read(&commands.duration, &out->duration);
  out->conflicts = esc__counted(&commands.conflicts);
  out->retries = esc__counted(&commands.retries);
  out->duplicates = esc__counted(&commands.duplicates);
  out->rejected = esc__counted(&commands.rejected);
  out->failures = esc__counted(&commands.failures);
}

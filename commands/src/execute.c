/*
 * Executing a command: load the stream, decide, append with the loaded
 * version as the expected version; on a conflict, back off and do it all
 * again, a bounded number of times.
 *
 * Idempotency costs nothing on a first execution. Event ids are derived
 * from the command id, so a repeated command that decides the same events
 * gets the store's idempotent-append answer; one that decides differently
 * (the stream moved on: other events, none, a rejection) collides on the
 * ids or stores nothing. In each case — and whenever the store says
 * "duplicate", since the first execution may have stored more events than
 * the repeat decided — it looks up what the first execution stored and
 * returns that.
 */
#include "command_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  DEFAULT_ATTEMPTS = 25, /* 16 writers on one stream needed up to 17 */
  DEFAULT_BACKOFF_MS = 2,
  DEFAULT_BACKOFF_MAX_MS = 200,
  LOOKUP_PAGE = 1000
};

/* Event i of a command: UUIDv5(command id, decimal i). */
static esc_uuid event_id(const esc_uuid *command_id, size_t i) {
  char name[24];
  int len = snprintf(name, sizeof name, "%zu", i);
  return esc_uuid_v5(command_id, name, (size_t)len);
}

/* ------------------------------------------------------- first result -- */

/* Counts the stored events of this command from first_version on. */
static esc_status count_stored(esc_store *store, const char *stream,
                               const esc_uuid *cmd, int64_t first_version,
                               esc_command_result *r, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_status rc = ESC_OK;
  size_t n = 0;
  bool more = true;
  while (more && !rc) {
    rc = esc_read_stream(store, stream, first_version + (int64_t)n, ESC_FORWARD,
                         LOOKUP_PAGE, &ev, err);
    for (size_t i = 0; !rc && i < ev.count; i++, n++) {
      esc_uuid want = event_id(cmd, n);
      if (memcmp(ev.items[i].id.bytes, want.bytes, 16) != 0) {
        more = false;
        break;
      }
      r->version = ev.items[i].stream_version;
      r->position = ev.items[i].position;
    }
    more = more && !rc && ev.count == LOOKUP_PAGE;
  }
  esc_events_release(&ev);
  r->event_count = n;
  r->first_version = first_version;
  return rc;
}

/*
 * Looks for events of an earlier execution of this command. *found tells;
 * r then holds the first result. A command id used on another stream is
 * ESC_EDUPLICATE.
 */
static esc_status find_first_result(esc_store *store, const char *stream,
                                    const esc_uuid *cmd, esc_command_result *r,
                                    bool *found, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error inner = ESC_ERROR_INIT;
  esc_uuid first = event_id(cmd, 0);
  esc_status rc = esc_read_event(store, &first, &ev, &inner);
  *found = false;
  if (rc == ESC_ENOTFOUND) { /* not executed before; err keeps its story */
    esc_events_release(&ev);
    return ESC_OK;
  }
  if (rc)
    esc_error_set(err, rc, "%s", inner.msg);
  if (!rc && strcmp(ev.items[0].stream_id, stream) != 0) {
    char id[37];
    esc_uuid_format(cmd, id);
    rc = esc_error_set(err, ESC_EDUPLICATE,
                       "command %s was executed on %s, not %s", id,
                       ev.items[0].stream_id, stream);
  }
  if (!rc) {
    int64_t first_version = ev.items[0].stream_version;
    rc = count_stored(store, stream, cmd, first_version, r, err);
    *found = !rc;
    r->duplicate = !rc;
  }
  esc_events_release(&ev);
  return rc;
}

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
    ev[i] = (esc_event_data){
        event_id(cmd, i), e->type->name, e->type->schema_version,
        e->data,          e->len,        meta,
        meta_len};
  }
  esc_status rc = esc_append(store, stream, expected, ev, d->count, out, err);
  free(ev);
  return rc;
}

/* ------------------------------------------------------------ helpers -- */

static esc_status check_target(const esc_decider *d, const char *stream,
                               esc_error *err) {
  char category[ESC_STREAM_ID_MAX + 1];
  esc_error inner = ESC_ERROR_INIT;
  if (!stream || !esc_stream_id_valid(stream, &inner))
    return esc_error_set(err, ESC_EINVAL, "execute: %s",
                         stream ? inner.msg : "stream id is NULL");
  esc_stream_category(stream, category, sizeof category);
  if (!d->category || strcmp(category, d->category) != 0)
    return esc_error_set(err, ESC_EINVAL,
                         "execute on %s: the decider is for category %s",
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

/* Folds what was just appended into state, so it can be snapshotted. */
static esc_status fold_appended(const esc_decision *d, const char *stream,
                                const esc_append_result *a, void *state,
                                struct esc__folder *f, esc_error *err) {
  esc_status rc = ESC_OK;
  for (size_t i = 0; i < d->count && !rc; i++) {
    esc_recorded_event rec = {a->position,
                              stream,
                              a->first_version + (int64_t)i,
                              {{0}},
                              d->events[i].type->name,
                              d->events[i].type->schema_version,
                              d->events[i].data,
                              d->events[i].len,
                              NULL,
                              0,
                              0};
    rc = esc__folder_apply(f, state, &rec, err);
  }
  return rc;
}

/* Every snapshot_every events (when an append crosses a multiple), stores
 * the state. A snapshot is a cache, so failing to take one is not an
 * error of the command. */
static void maybe_snapshot(esc_store *store, const esc_decider *dec,
                           const char *stream, const esc_decision *d,
                           const esc_append_result *a, int64_t loaded,
                           void *state, struct esc__folder *f) {
  int64_t every = dec->snapshot_every;
  if (every <= 0 || !dec->encode_state || a->duplicate ||
      a->last_version / every == loaded / every)
    return;
  if (fold_appended(d, stream, a, state, f, NULL))
    return;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  if (dec->encode_state(state, &pk) == 0)
    esc_snapshot_write(store, stream, a->last_version, dec->state_version,
                       sb.data, sb.size, NULL);
  msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------ execute -- */

/* Everything one execution holds, released in one place. */
struct run {
  esc_store *store;
  const esc_decider *decider;
  const char *stream;
  const void *command;
  esc_command_options opts;
  esc_command_result *result;
  void *state;
  struct esc__folder folder;
  esc_decision decision;
  void *meta;
  size_t meta_len;
};

/* Reports the first execution's result when there was one; else keeps rc. */
static esc_status first_result_or(struct run *r, esc_status rc,
                                  esc_error *err) {
  bool found = false;
  esc_command_result first = *r->result;
  esc_status lookup = find_first_result(
      r->store, r->stream, &r->opts.command_id, &first, &found, err);
  if (lookup)
    return lookup;
  if (!found)
    return rc;
  first.domain_code = 0;
  first.domain_msg[0] = '\0';
  *r->result = first;
  return ESC_OK;
}

/* One load-decide-append round. ESC_ECONFLICT means: try again. */
static esc_status attempt(struct run *r, esc_error *err) {
  struct esc__load_info info;
  esc_append_result appended;
  esc_command_result *res = r->result;

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
  if (rc)
    return rc;

  rc = esc__decision_run(&r->decision, r->decider, r->state, r->command, err);
  if (rc == ESC_EREJECTED) {
    res->domain_code = r->decision.reject_code;
    snprintf(res->domain_msg, sizeof res->domain_msg, "%s",
             r->decision.reject_msg);
    return first_result_or(r, rc, err);
  }
  if (rc)
    return rc;
  res->version = info.version;
  if (r->decision.count == 0)
    return first_result_or(r, ESC_OK, err);

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
  maybe_snapshot(r->store, r->decider, r->stream, &r->decision, &appended,
                 info.version, r->state, &r->folder);
  return ESC_OK;
}

static esc_status encode_metadata(struct run *r, esc_error *err) {
  esc_metadata m = ESC_METADATA_INIT;
  m.correlation_id = r->opts.correlation_id;
  m.causation_id = r->opts.command_id;
  m.actor = r->opts.actor;
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

esc_status esc_execute(esc_store *store, const esc_decider *decider,
                       const char *stream_id, const void *command,
                       const esc_command_options *opts,
                       esc_command_result *result, esc_error *err) {
  struct run r = {.store = store,
                  .decider = decider,
                  .stream = stream_id,
                  .command = command,
                  .opts = with_defaults(opts),
                  .result = result};
  memset(result, 0, sizeof *result);
  result->command_id = r.opts.command_id;
  esc__decision_init(&r.decision);
  esc_status rc = check_target(decider, stream_id, err);
  if (!rc)
    rc = esc__folder_init(&r.folder, decider, err);
  if (rc)
    return rc;
  rc = encode_metadata(&r, err);
  bool unknown = false;
  for (int i = 1; !rc || again(rc); i++) {
    result->attempts = i;
    rc = attempt(&r, err);
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

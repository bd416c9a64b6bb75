/*
 * Loading a stream's state: start from its snapshot when the decider keeps
 * them and the snapshot is usable, then fold every later event. A snapshot
 * is a cache while the whole log is there: one that is stale in schema or
 * fails to decode is set aside (and reported) and the stream is replayed
 * from the start. Once the log was truncated it is the only record of the
 * early events: loading without a usable one that reaches the first kept
 * event is ESC_ETRUNCATED, never a fold of the tail alone.
 */
#include "command_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define READ_PAGE 1000

/* Decodes snap into state; on failure state is left for the caller to
 * reset. */
static esc_status decode_snapshot(const esc_decider *d,
                                  const esc_snapshot *snap, void *state,
                                  esc_error *err) {
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  msgpack_zone zone;
  msgpack_object obj;
  limits.max_bytes = snap->data_len;
  esc_status rc = esc_msgpack_check(snap->data, snap->data_len, &limits, err);
  if (rc)
    return rc;
  if (!msgpack_zone_init(&zone, 2048))
    return esc_error_set(err, ESC_ENOMEM, "snapshot: out of memory");
  if (msgpack_unpack(snap->data, snap->data_len, NULL, &zone, &obj) !=
      MSGPACK_UNPACK_SUCCESS)
    rc = esc_error_set(err, ESC_EINVAL, "snapshot: not msgpack");
  else
    rc = d->decode_state(&obj, state, err);
  msgpack_zone_destroy(&zone);
  return rc;
}

static void reset_state(const esc_decider *d, void *state) {
  if (d->release_state)
    d->release_state(state);
  memset(state, 0, d->state_size);
  if (d->init)
    d->init(state);
}

/* Starts state from the stream's snapshot when there is a usable one. */
static esc_status start_from_snapshot(esc_store *store, const esc_decider *d,
                                      const char *stream, void *state,
                                      struct esc__load_info *info,
                                      esc_error *err) {
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  esc_error inner = ESC_ERROR_INIT;
  if (d->snapshot_every <= 0 || !d->decode_state)
    return ESC_OK;
  esc_status rc = esc_snapshot_read(store, stream, &snap, &inner);
  if (rc == ESC_ENOTFOUND)
    return ESC_OK;
  if (rc)
    return esc_error_set(err, rc, "%s", inner.msg);
  if (snap.state_version != d->state_version) {
    info->snapshot_ignored = true;
    snprintf(info->snapshot_note, sizeof info->snapshot_note,
             "snapshot at %" PRId64 " has state version %" PRId32
             ", want %" PRId32,
             snap.version, snap.state_version, d->state_version);
  } else if (decode_snapshot(d, &snap, state, &inner) != ESC_OK) {
    info->snapshot_ignored = true;
    snprintf(info->snapshot_note, sizeof info->snapshot_note,
             "snapshot at %" PRId64 " failed to decode: %.80s", snap.version,
             inner.msg);
    reset_state(d, state);
  } else {
    info->snapshot_version = snap.version;
    info->version = snap.version;
  }
  esc_snapshot_release(&snap);
  return ESC_OK;
}

/*
 * The stream's log starts at first_kept, after the state folded so far:
 * the events between were removed by truncation and no usable snapshot
 * covers them. Folding the rest would build a wrong state, so it is an
 * error that says which snapshot there was (if any) and why it did not do.
 */
static esc_status uncovered(const char *stream, int64_t first_kept,
                            const struct esc__load_info *info, esc_error *err) {
  char why[sizeof info->snapshot_note + 48];
  if (info->snapshot_ignored)
    snprintf(why, sizeof why, "; %s", info->snapshot_note);
  else if (info->snapshot_version > 0)
    snprintf(why, sizeof why, "; its snapshot is at version %" PRId64,
             info->snapshot_version);
  else
    why[0] = '\0';
  return esc_error_set(err, ESC_ETRUNCATED,
                       "load %s: stream truncated before version %" PRId64
                       " and no snapshot covers it%s",
                       stream, first_kept, why);
}

/* An existing stream that has no events from version 1 on: all of them
 * were removed. Where its log would go on is its truncation point. */
static esc_status all_removed(esc_store *store, const char *stream,
                              const struct esc__load_info *info,
                              esc_error *err) {
  esc_stream_info si;
  esc_status rc = esc_stream_get(store, stream, &si, err);
  if (rc)
    return rc;
  /* Nothing was ever removed: the read saw the stream before a
   * concurrent append created it (test_commands' hot stream did). State
   * at version 0 is then what the read saw; the append that follows
   * expects version 0, conflicts, and the command is decided again. */
  if (si.version == 0 || si.truncated_before <= 1)
    return ESC_OK;
  return uncovered(stream, si.truncated_before, info, err);
}

/* Folds the events after info->version, a page at a time. The first one
 * read must be the next version: a gap means truncation (see uncovered). */
static esc_status fold_rest(esc_store *store, const char *stream, void *state,
                            struct esc__folder *f, struct esc__load_info *info,
                            esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_status rc = ESC_OK;
  for (bool first = true;; first = false) {
    rc = esc_read_stream(store, stream, info->version + 1, ESC_FORWARD,
                         READ_PAGE, &ev, err);
    if (rc == ESC_ENOTFOUND && info->version == 0) {
      rc = ESC_OK; /* a new stream */
      break;
    }
    if (!rc && first && ev.count == 0 && info->version == 0)
      rc = all_removed(store, stream, info, err);
    else if (!rc && first && ev.count > 0 &&
             ev.items[0].stream_version != info->version + 1)
      rc = uncovered(stream, ev.items[0].stream_version, info, err);
    if (rc)
      break;
    for (size_t i = 0; i < ev.count && !rc; i++) {
      rc = esc__folder_apply(f, state, &ev.items[i], err);
      info->version = ev.items[i].stream_version;
    }
    if (rc || ev.count < READ_PAGE)
      break;
  }
  esc_events_release(&ev);
  return rc;
}

esc_status esc__load(esc_store *store, const esc_decider *decider,
                     const char *stream_id, void *state,
                     struct esc__folder *folder, struct esc__load_info *info,
                     esc_error *err) {
  memset(info, 0, sizeof *info);
  esc_status rc =
      start_from_snapshot(store, decider, stream_id, state, info, err);
  if (!rc)
    rc = fold_rest(store, stream_id, state, folder, info, err);
  return rc;
}

esc_status esc_load_state(esc_store *store, const esc_decider *decider,
                          const char *stream_id, void *state, int64_t *version,
                          esc_error *err) {
  struct esc__folder folder;
  struct esc__load_info info;
  memset(state, 0, decider->state_size);
  if (decider->init)
    decider->init(state);
  esc_status rc = esc__folder_init(&folder, decider, err);
  if (rc)
    return rc;
  rc = esc__load(store, decider, stream_id, state, &folder, &info, err);
  esc__folder_release(&folder);
  if (!rc && version)
    *version = info.version;
  return rc;
}

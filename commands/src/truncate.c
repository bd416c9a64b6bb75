/*
 * Truncation that keeps a stream loadable: once its early events are
 * gone, the snapshot is the only record of what they did (load.c), so
 * esc_truncate_stream folds the whole stream from the stored events,
 * stores that state as the snapshot and then truncates. The store checks
 * again, under the stream's lock, that a snapshot covers what goes
 * (truncation_uncovered, migration 15); a snapshot only ever moves
 * forward, so one taken meanwhile by a command still covers it.
 */
#include "command_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

esc_status esc__snapshot_store(esc_store *store, const esc_decider *d,
                               const char *stream, int64_t version,
                               const void *state, esc_error *err) {
  return esc__snapshot_put(store, stream, version, d->state_version,
                           d->encode_state, state, err);
}

static esc_status check_decider(const esc_decider *d, const char *stream,
                                esc_error *err) {
  esc_status rc = esc__check_target(d, stream, "truncate", err);
  if (!rc && (d->snapshot_every <= 0 || !d->encode_state || !d->decode_state))
    rc = esc_error_set(err, ESC_EINVAL,
                       "truncate %s: the decider keeps no snapshots "
                       "(snapshot_every, encode_state, decode_state), so "
                       "the truncated stream could never be loaded",
                       stream);
  return rc;
}

/* The stream's snapshot must now be one loading can use, at `version` or
 * later: an older one of another state_version at the same version is not
 * replaced by esc_snapshot_write (snapshots only move forward). */
static esc_status check_snapshot(esc_store *store, const esc_decider *d,
                                 const char *stream, int64_t version,
                                 esc_error *err) {
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  esc_status rc = esc_snapshot_read(store, stream, &snap, err);
  if (!rc && (snap.version < version || snap.state_version != d->state_version))
    rc = esc_error_set(err, ESC_ETRUNCATED,
                       "truncate %s: its snapshot at version %" PRId64
                       " has state version %" PRId32 " (want %" PRId32
                       ") and was not replaced; nothing removed",
                       stream, snap.version, snap.state_version,
                       d->state_version);
  esc_snapshot_release(&snap);
  return rc;
}

/* Loads the stream and stores its state as the snapshot (none when it
 * has no events: there is nothing to remove either). */
static esc_status snapshot_now(esc_store *store, const esc_decider *d,
                               const char *stream, esc_error *err) {
  struct esc__folder folder;
  struct esc__load_info info;
  void *state = esc__state_new(d);
  if (!state)
    return esc_error_set(err, ESC_ENOMEM, "truncate %s: out of memory", stream);
  esc_status rc = esc__folder_init(&folder, d, err);
  if (rc) {
    esc__state_free(d, state);
    return rc;
  }
  rc = esc__load(store, d, stream, state, &folder, &info, err);
  if (!rc && info.version > 0)
    rc = esc__snapshot_store(store, d, stream, info.version, state, err);
  if (!rc && info.version > 0)
    rc = check_snapshot(store, d, stream, info.version, err);
  esc__folder_release(&folder);
  esc__state_free(d, state);
  return rc;
}

esc_status esc_truncate_stream(esc_store *store, const esc_decider *decider,
                               const char *stream_id, int64_t before,
                               const char *reason, int64_t *removed,
                               esc_error *err) {
  esc_status rc = check_decider(decider, stream_id, err);
  if (!rc)
    rc = snapshot_now(store, decider, stream_id, err);
  if (!rc)
    rc = esc_stream_truncate(store, stream_id, before, reason, removed, err);
  return rc;
}

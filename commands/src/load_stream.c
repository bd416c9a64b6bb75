/*
 * Loading a stream's state from its snapshot and the events after it
 * (<esc_internal/load.h>), for deciders (load.c) and process instances
 * alike. A snapshot is a cache while the whole log is there: one that is
 * stale in state version or fails to restore is set aside (and reported)
 * and the stream is folded from the start. Once the log was truncated it
 * is the only record of the early events: loading without a usable one
 * that reaches the first kept event is ESC_ETRUNCATED, never a fold of
 * the tail alone.
 */
#include <esc_internal/load.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define READ_PAGE 1000

/* Unpacks snap (bounded first: it is bytes from the database) and hands
 * it to restore. */
static esc_status restore_snapshot(const struct esc__loader *l,
                                   const esc_snapshot *snap, esc_error *err) {
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
    rc = l->restore(l->ctx, &obj, snap->version, err);
  msgpack_zone_destroy(&zone);
  return rc;
}

/* Starts the state from the stream's snapshot when there is a usable one. */
static esc_status start_from_snapshot(esc_store *store, const char *stream,
                                      const struct esc__loader *l,
                                      struct esc__load_info *info,
                                      esc_error *err) {
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  esc_error inner = ESC_ERROR_INIT;
  if (!l->snapshots || !l->restore)
    return ESC_OK;
  esc_status rc = esc_snapshot_read(store, stream, &snap, &inner);
  info->snapshot_read = true;
  if (rc == ESC_ENOTFOUND)
    return ESC_OK;
  if (rc)
    return esc_error_set(err, rc, "%s", inner.msg);
  if (snap.state_version != l->state_version) {
    info->snapshot_ignored = true;
    snprintf(info->snapshot_note, sizeof info->snapshot_note,
             "snapshot at %" PRId64 " has state version %" PRId32
             ", want %" PRId32,
             snap.version, snap.state_version, l->state_version);
  } else if (restore_snapshot(l, &snap, &inner) != ESC_OK) {
    info->snapshot_ignored = true;
    snprintf(info->snapshot_note, sizeof info->snapshot_note,
             "snapshot at %" PRId64 " failed to decode: %.80s", snap.version,
             inner.msg);
    l->reset(l->ctx);
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

/* Folds one page of events read after info->version. The first page
 * must start at the next version: a gap means truncation (see
 * uncovered). */
static esc_status fold_page(esc_store *store, const char *stream,
                            const struct esc__loader *l, const esc_events *ev,
                            bool first, struct esc__load_info *info,
                            esc_error *err) {
  esc_status rc = ESC_OK;
  if (first && ev->count == 0 && info->version == 0)
    rc = all_removed(store, stream, info, err);
  else if (first && ev->count > 0 &&
           ev->items[0].stream_version != info->version + 1)
    rc = uncovered(stream, ev->items[0].stream_version, info, err);
  for (size_t i = 0; i < ev->count && !rc; i++) {
    rc = l->apply(l->ctx, &ev->items[i], err);
    info->version = ev->items[i].stream_version;
    info->folded++;
  }
  return rc;
}

/* Folds the events after info->version, a page at a time. */
static esc_status fold_rest(esc_store *store, const char *stream,
                            const struct esc__loader *l,
                            struct esc__load_info *info, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  size_t page = l->page ? l->page : READ_PAGE;
  esc_status rc = ESC_OK;
  for (bool first = true;; first = false) {
    rc = esc_read_stream(store, stream, info->version + 1, ESC_FORWARD, page,
                         &ev, err);
    if (rc == ESC_ENOTFOUND && info->version == 0) {
      rc = ESC_OK; /* a new stream */
      break;
    }
    if (!rc)
      rc = fold_page(store, stream, l, &ev, first, info, err);
    if (rc || ev.count < page)
      break;
  }
  esc_events_release(&ev);
  return rc;
}

/*
 * The probing load (l->probe > 0): the first probe events are read
 * before the snapshot. Fewer than probe from version 1 on are the whole
 * stream, which no snapshot can shorten (one is taken only once a stream
 * has crossed probe = snapshot_every events), so a short stream costs one
 * read, as without snapshots. Otherwise the snapshot is read and, when
 * usable, the page is dropped and the load goes on after the snapshot.
 */
static esc_status load_probing(esc_store *store, const char *stream,
                               const struct esc__loader *l,
                               struct esc__load_info *info, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_status rc =
      esc_read_stream(store, stream, 1, ESC_FORWARD, l->probe, &ev, err);
  if (rc == ESC_ENOTFOUND)
    rc = ESC_OK; /* a new stream */
  else if (!rc) {
    bool whole =
        ev.count < l->probe && ev.count > 0 && ev.items[0].stream_version == 1;
    if (!whole)
      rc = start_from_snapshot(store, stream, l, info, err);
    bool page_used = !rc && info->version == 0;
    if (page_used)
      rc = fold_page(store, stream, l, &ev, true, info, err);
    if (!rc && (!page_used || ev.count == l->probe))
      rc = fold_rest(store, stream, l, info, err);
  }
  esc_events_release(&ev);
  return rc;
}

esc_status esc__load_stream(esc_store *store, const char *stream,
                            const struct esc__loader *l,
                            struct esc__load_info *info, esc_error *err) {
  memset(info, 0, sizeof *info);
  if (l->snapshots && l->restore && l->probe > 0)
    return load_probing(store, stream, l, info, err);
  esc_status rc = start_from_snapshot(store, stream, l, info, err);
  if (!rc)
    rc = fold_rest(store, stream, l, info, err);
  return rc;
}

esc_status esc__snapshot_put(esc_store *store, const char *stream,
                             int64_t version, int32_t state_version,
                             int (*encode)(const void *ctx, msgpack_packer *pk),
                             const void *ctx, esc_error *err) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  esc_status rc = encode(ctx, &pk) == 0
                      ? esc_snapshot_write(store, stream, version,
                                           state_version, sb.data, sb.size, err)
                      : esc_error_set(err, ESC_EINVAL,
                                      "snapshot of %s at version %" PRId64
                                      ": encode_state failed",
                                      stream, version);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

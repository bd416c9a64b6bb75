/*
 * <esc_internal/load.h> - loading a stream's state from its snapshot and
 * the events after it, for any kind of state: a decider's (load.c) and a
 * process instance's (processes/). Both keep snapshots the same way, so
 * they share one loader and one set of rules:
 *
 *   - a snapshot is a cache while the whole log is there: one of another
 *     state version, or one that fails to restore, is set aside (and
 *     reported in the info) and the stream is folded from the start;
 *   - once the log was truncated the snapshot is the only record of the
 *     early events: a load without a usable one that reaches the first
 *     kept event is ESC_ETRUNCATED, never a fold of the tail alone.
 *
 * Internal: not installed, never seen by users (docs/architecture.md).
 */
#ifndef ESC_INTERNAL_LOAD_H
#define ESC_INTERNAL_LOAD_H

#include <esc/store.h>
#include <msgpack.h>

/* What loading a stream found. */
struct esc__load_info {
  int64_t version;          /* the stream version folded up to */
  int64_t snapshot_version; /* 0: started from the initial state */
  bool snapshot_ignored;
  char snapshot_note[128];
  int64_t folded; /* events folded after the snapshot (or from the start) */
  bool snapshot_read; /* the snapshot was looked up (a round trip) */
};

/*
 * How to load one kind of state. The callbacks get ctx, which holds the
 * state (initial when the load starts).
 */
struct esc__loader {
  /* Read the stream's snapshot first; false: always fold from 1. */
  bool snapshots;
  int32_t state_version; /* a snapshot of another one is set aside */
  /* Restores the state from a snapshot's data (one msgpack object,
   * bounded before it was unpacked), taken at stream version `version`.
   * On failure the loader calls reset, so restore may leave the state
   * half written. */
  esc_status (*restore)(void *ctx, const msgpack_object *obj, int64_t version,
                        esc_error *err);
  /* Back to the initial state, after a restore failed. */
  void (*reset)(void *ctx);
  /* Folds one stored event (the next version). */
  esc_status (*apply)(void *ctx, const esc_recorded_event *rec, esc_error *err);
  void *ctx;
  size_t page; /* events per read; 0: 1000 */
  /* 0, or read this many events from version 1 before the snapshot: when
   * the stream has fewer, they are all of it and the snapshot is not read
   * (it cannot be newer when snapshots are taken every `probe` events).
   * Saves short streams a round trip; costs a long one probe events read
   * and dropped. */
  size_t probe;
};

/*
 * Loads stream into l's state: its usable snapshot (when l->snapshots),
 * then every event after it, a page at a time. A missing stream is
 * version 0; a tombstoned one is ESC_EDELETED; a truncated one that no
 * usable snapshot covers is ESC_ETRUNCATED naming the stream, where its
 * log starts and why its snapshot (if any) did not do; an error of apply
 * is returned as it is.
 */
esc_status esc__load_stream(esc_store *store, const char *stream,
                            const struct esc__loader *l,
                            struct esc__load_info *info, esc_error *err);

/*
 * Encodes a state with encode (0, or -1 on failure) and stores it as the
 * stream's snapshot at version with state_version. ESC_EINVAL naming the
 * stream and version when encode fails, else what esc_snapshot_write
 * returns.
 */
esc_status esc__snapshot_put(esc_store *store, const char *stream,
                             int64_t version, int32_t state_version,
                             int (*encode)(const void *ctx, msgpack_packer *pk),
                             const void *ctx, esc_error *err);

#endif

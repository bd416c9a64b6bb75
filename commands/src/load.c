/*
 * Loading a decider's stream: the shared loader (load_stream.c,
 * <esc_internal/load.h>) with the decider's snapshot codec and folder.
 */
#include "command_int.h"

#include <string.h>

/* What the loader's callbacks need. */
struct decider_load {
  const esc_decider *d;
  void *state;
  struct esc__folder *folder;
};

static esc_status restore(void *ctx, const msgpack_object *obj, int64_t version,
                          esc_error *err) {
  struct decider_load *dl = ctx;
  (void)version;
  return dl->d->decode_state(obj, dl->state, err);
}

static void reset(void *ctx) {
  struct decider_load *dl = ctx;
  if (dl->d->release_state)
    dl->d->release_state(dl->state);
  memset(dl->state, 0, dl->d->state_size);
  if (dl->d->init)
    dl->d->init(dl->state);
}

static esc_status apply(void *ctx, const esc_recorded_event *rec,
                        esc_error *err) {
  struct decider_load *dl = ctx;
  return esc__folder_apply(dl->folder, dl->state, rec, err);
}

esc_status esc__load(esc_store *store, const esc_decider *decider,
                     const char *stream_id, void *state,
                     struct esc__folder *folder, struct esc__load_info *info,
                     esc_error *err) {
  struct decider_load dl = {decider, state, folder};
  struct esc__loader l = {.snapshots = decider->snapshot_every > 0 &&
                                       decider->decode_state,
                          .state_version = decider->state_version,
                          .restore = restore,
                          .reset = reset,
                          .apply = apply,
                          .ctx = &dl};
  return esc__load_stream(store, stream_id, &l, info, err);
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

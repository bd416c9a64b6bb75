/*
 * An instance against the store: loaded from its snapshot (when the
 * process keeps them) and the records after it, through the loader the
 * deciders use (<esc_internal/load.h>), so both follow one set of rules
 * for stale snapshots and truncated streams; and snapshotted after the
 * append that crosses a multiple of snapshot_every.
 */
#include <esc_internal/process.h>

static esc_status restore(void *ctx, const msgpack_object *obj, int64_t version,
                          esc_error *err) {
  return esc__process_snapshot_restore(ctx, obj, version, err);
}

static void reset(void *ctx) {
  esc__process_instance_reset(ctx);
}

static esc_status apply(void *ctx, const esc_recorded_event *rec,
                        esc_error *err) {
  return esc__process_instance_apply(ctx, rec, err);
}

static int encode(const void *ctx, msgpack_packer *pk) {
  return esc__process_snapshot_encode(ctx, pk);
}

esc_status esc__process_instance_load(esc_store *store,
                                      esc__process_instance *inst, size_t page,
                                      struct esc__load_info *info,
                                      esc_error *err) {
  const esc_process *p = inst->process;
  size_t every = p->snapshot_every > 0 ? (size_t)p->snapshot_every : 0;
  /* Most instances never reach snapshot_every records: probing spares
   * them the snapshot read (see <esc_internal/load.h>). */
  size_t probe = page && every > page ? page : every;
  struct esc__loader l = {.snapshots = p->snapshot_every > 0,
                          .state_version = p->state_version,
                          .restore = restore,
                          .reset = reset,
                          .apply = apply,
                          .ctx = inst,
                          .page = page,
                          .probe = probe};
  return esc__load_stream(store, inst->stream_id, &l, info, err);
}

bool esc__process_snapshot_due(const esc__process_instance *inst,
                               int64_t before) {
  int64_t every = inst->process->snapshot_every;
  return every > 0 && inst->version / every != before / every;
}

esc_status esc__process_instance_snapshot(esc_store *store,
                                          const esc__process_instance *inst,
                                          esc_error *err) {
  return esc__snapshot_put(store, inst->stream_id, inst->version,
                           inst->process->state_version, encode, inst, err);
}

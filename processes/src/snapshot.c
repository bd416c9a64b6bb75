/*
 * Instance snapshots: an instance as folded, kept beside its stream (the
 * store's snapshots, read through the shared loader of
 * <esc_internal/load.h>), so a load folds only the records after it.
 *
 * A fold builds more than the user's state: the runtime's bookkeeping
 * decides what an input does (a handled id drops a re-delivery, a
 * pending command is executed again after a crash, a pending deadline
 * may fire, an ended instance takes only outcomes). So the snapshot
 * holds all of it, and restoring it then folding the tail gives exactly
 * the instance a full fold gives. One msgpack array:
 *
 *   [format, terminal, correlation, trigger, handled, commands, deadlines,
 *    state]
 *   handled    [id, ...]
 *   commands   [[id, input, index, type, stream, payload, correlation,
 *                causation, record], ...]
 *   deadlines  [[id, name, due, correlation, record], ...]
 *   state      what the process's encode_state packed
 *
 * Ids are 16-byte bins, payload is the command's msgpack as a bin. The
 * snapshot is a cache, so its shape is compact rather than readable;
 * format changes with it (a snapshot of another format is set aside and
 * the stream folded).
 *
 * Decoding trusts nothing: the loader bounded the bytes before msgpack-c
 * saw them, and every element's type and size is checked here.
 */
#include <esc_internal/process.h>

#include <stdlib.h>
#include <string.h>

/* The runtime's part of the encoding; bump it when the shape changes. */
#define SNAPSHOT_FORMAT 1

enum { SNAP_FIELDS = 8, COMMAND_FIELDS = 9, DEADLINE_FIELDS = 5 };

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static void pack_id(msgpack_packer *pk, const esc_uuid *id) {
  msgpack_pack_bin(pk, sizeof id->bytes);
  msgpack_pack_bin_body(pk, id->bytes, sizeof id->bytes);
}

static void pack_bin(msgpack_packer *pk, const void *data, size_t len) {
  msgpack_pack_bin(pk, len);
  msgpack_pack_bin_body(pk, data, len);
}

static void pack_command(msgpack_packer *pk,
                         const struct esc__pending_command *c) {
  msgpack_pack_array(pk, COMMAND_FIELDS);
  pack_id(pk, &c->id);
  pack_id(pk, &c->input);
  msgpack_pack_uint32(pk, c->index);
  esc_pack_str(pk, c->type->name);
  esc_pack_str(pk, c->stream_id);
  pack_bin(pk, c->payload, c->payload_len);
  pack_id(pk, &c->correlation);
  pack_id(pk, &c->causation);
  pack_id(pk, &c->record);
}

static void pack_deadline(msgpack_packer *pk,
                          const struct esc__pending_deadline *dl) {
  msgpack_pack_array(pk, DEADLINE_FIELDS);
  pack_id(pk, &dl->id);
  esc_pack_str(pk, dl->name);
  msgpack_pack_int64(pk, dl->due_us);
  pack_id(pk, &dl->correlation);
  pack_id(pk, &dl->record);
}

int esc__process_snapshot_encode(const esc__process_instance *inst,
                                 msgpack_packer *pk) {
  const esc_process *p = inst->process;
  msgpack_pack_array(pk, SNAP_FIELDS);
  msgpack_pack_int(pk, SNAPSHOT_FORMAT);
  inst->terminal ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  pack_id(pk, &inst->step_correlation);
  pack_id(pk, &inst->step_trigger);
  msgpack_pack_array(pk, (uint32_t)inst->handled_count);
  for (size_t i = 0; i < inst->handled_count; i++)
    pack_id(pk, &inst->handled[i]);
  msgpack_pack_array(pk, (uint32_t)inst->command_count);
  for (size_t i = 0; i < inst->command_count; i++)
    pack_command(pk, &inst->commands[i]);
  msgpack_pack_array(pk, (uint32_t)inst->deadline_count);
  for (size_t i = 0; i < inst->deadline_count; i++)
    pack_deadline(pk, &inst->deadlines[i]);
  return p->encode_state(inst->state, pk, p->userdata);
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* The load that found the snapshot names the stream. */
static esc_status bad(const char *what, esc_error *err) {
  return esc_error_set(err, ESC_EINVAL, "process snapshot: %s", what);
}

/* The elements of an array of exactly n (n 0: any length), or NULL. */
static const msgpack_object *array_of(const msgpack_object *o, uint32_t n) {
  if (o->type != MSGPACK_OBJECT_ARRAY || (n && o->via.array.size != n))
    return NULL;
  return o->via.array.ptr;
}

static bool get_id(const msgpack_object *o, esc_uuid *out) {
  if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != sizeof out->bytes)
    return false;
  memcpy(out->bytes, o->via.bin.ptr, sizeof out->bytes);
  return true;
}

/* Copies a string of 1..size-1 bytes without NUL into buf. */
static bool get_str(const msgpack_object *o, char *buf, size_t size) {
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
      o->via.str.size >= size || memchr(o->via.str.ptr, '\0', o->via.str.size))
    return false;
  memcpy(buf, o->via.str.ptr, o->via.str.size);
  buf[o->via.str.size] = '\0';
  return true;
}

static bool get_i64(const msgpack_object *o, int64_t *out) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
      o->via.u64 <= (uint64_t)INT64_MAX) {
    *out = (int64_t)o->via.u64;
    return true;
  }
  if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return false;
  *out = o->via.i64;
  return true;
}

/* An array's elements, with room for as many items of size bytes in
 * *items (of capacity *cap); ESC_EINVAL naming what when o is not an
 * array, ESC_ENOMEM. */
static esc_status open_list(const esc__process_instance *inst,
                            const msgpack_object *o, const char *what,
                            void **items, size_t *cap, size_t size,
                            const msgpack_object **elems, uint32_t *n,
                            esc_error *err) {
  *n = 0;
  *elems = array_of(o, 0);
  if (!*elems)
    return bad(what, err);
  *n = o->via.array.size;
  if (*n <= *cap)
    return ESC_OK;
  void *p = realloc(*items, *n * size);
  if (!p)
    return esc_error_set(err, ESC_ENOMEM, "%s: out of memory", inst->stream_id);
  *items = p;
  *cap = *n;
  return ESC_OK;
}

static esc_status restore_handled(esc__process_instance *inst,
                                  const msgpack_object *o, esc_error *err) {
  const msgpack_object *ids;
  uint32_t n;
  esc_status rc = open_list(inst, o, "handled ids are not an array",
                            (void **)&inst->handled, &inst->handled_cap,
                            sizeof *inst->handled, &ids, &n, err);
  for (uint32_t i = 0; i < n && rc == ESC_OK; i++)
    if (!get_id(&ids[i], &inst->handled[inst->handled_count++]))
      rc = bad("a handled id is not 16 bytes", err);
  return rc;
}

/* Restores one pending item from its fields, adding it to inst. */
typedef esc_status (*restore_fn)(esc__process_instance *inst,
                                 const msgpack_object *f, esc_error *err);

/* Appends a pending command from f (COMMAND_FIELDS elements); its payload
 * is copied. */
static esc_status restore_command(esc__process_instance *inst,
                                  const msgpack_object *f, esc_error *err) {
  struct esc__pending_command *c = &inst->commands[inst->command_count];
  char type[256];
  int64_t index = 0;
  memset(c, 0, sizeof *c);
  /* Counted at once: reset frees a payload copied, whatever follows. */
  inst->command_count++;
  if (!get_id(&f[0], &c->id) || !get_id(&f[1], &c->input) ||
      !get_i64(&f[2], &index) || index < 0 || index > UINT32_MAX ||
      !get_str(&f[3], type, sizeof type) ||
      !get_str(&f[4], c->stream_id, sizeof c->stream_id) ||
      f[5].type != MSGPACK_OBJECT_BIN || f[5].via.bin.size == 0 ||
      !get_id(&f[6], &c->correlation) || !get_id(&f[7], &c->causation) ||
      !get_id(&f[8], &c->record))
    return bad("a pending command does not decode", err);
  c->index = (uint32_t)index;
  c->type = esc__process_command_type(inst->process, type);
  if (!c->type)
    return bad("a pending command's type is not one of the process", err);
  c->payload_len = f[5].via.bin.size;
  c->payload = malloc(c->payload_len);
  if (!c->payload)
    return esc_error_set(err, ESC_ENOMEM, "%s: out of memory", inst->stream_id);
  memcpy(c->payload, f[5].via.bin.ptr, c->payload_len);
  return ESC_OK;
}

/* Appends a pending deadline from f (DEADLINE_FIELDS elements). */
static esc_status restore_deadline(esc__process_instance *inst,
                                   const msgpack_object *f, esc_error *err) {
  struct esc__pending_deadline *dl = &inst->deadlines[inst->deadline_count];
  memset(dl, 0, sizeof *dl);
  if (!get_id(&f[0], &dl->id) || !get_str(&f[1], dl->name, sizeof dl->name) ||
      !get_i64(&f[2], &dl->due_us) || !get_id(&f[3], &dl->correlation) ||
      !get_id(&f[4], &dl->record))
    return bad("a pending deadline does not decode", err);
  inst->deadline_count++;
  return ESC_OK;
}

/* Restores a list of pending items, each an array of `fields`. */
static esc_status restore_list(esc__process_instance *inst,
                               const msgpack_object *o, const char *what,
                               void **items, size_t *cap, size_t size,
                               uint32_t fields, restore_fn fn, esc_error *err) {
  const msgpack_object *elems;
  uint32_t n;
  esc_status rc = open_list(inst, o, what, items, cap, size, &elems, &n, err);
  for (uint32_t i = 0; i < n && rc == ESC_OK; i++) {
    const msgpack_object *f = array_of(&elems[i], fields);
    rc = f ? fn(inst, f, err) : bad(what, err);
  }
  return rc;
}

esc_status esc__process_snapshot_restore(esc__process_instance *inst,
                                         const msgpack_object *obj,
                                         int64_t version, esc_error *err) {
  const esc_process *p = inst->process;
  const msgpack_object *f = array_of(obj, SNAP_FIELDS);
  int64_t format = 0;
  if (!f || !get_i64(&f[0], &format))
    return bad("not an array of 8 starting with its format", err);
  if (format != SNAPSHOT_FORMAT)
    return bad("written by another version of esc (format)", err);
  if (f[1].type != MSGPACK_OBJECT_BOOLEAN ||
      !get_id(&f[2], &inst->step_correlation) ||
      !get_id(&f[3], &inst->step_trigger))
    return bad("terminal flag or step ids do not decode", err);
  inst->terminal = f[1].via.boolean;
  esc_status rc = restore_handled(inst, &f[4], err);
  if (rc == ESC_OK)
    rc = restore_list(inst, &f[5], "pending commands do not decode",
                      (void **)&inst->commands, &inst->command_cap,
                      sizeof *inst->commands, COMMAND_FIELDS, restore_command,
                      err);
  if (rc == ESC_OK)
    rc = restore_list(inst, &f[6], "pending deadlines do not decode",
                      (void **)&inst->deadlines, &inst->deadline_cap,
                      sizeof *inst->deadlines, DEADLINE_FIELDS,
                      restore_deadline, err);
  if (rc == ESC_OK)
    rc = p->decode_state(&f[7], inst->state, p->userdata, err);
  if (rc == ESC_OK)
    inst->version = version;
  return rc;
}

/* ------------------------------------------------------------------------
 * Back to a fresh instance
 * ------------------------------------------------------------------------ */

void esc__process_instance_reset(esc__process_instance *inst) {
  const esc_process *p = inst->process;
  for (size_t i = 0; i < inst->command_count; i++)
    free(inst->commands[i].payload);
  inst->command_count = 0;
  inst->deadline_count = 0;
  inst->handled_count = 0;
  inst->version = 0;
  inst->terminal = false;
  memset(&inst->step_correlation, 0, sizeof inst->step_correlation);
  memset(&inst->step_trigger, 0, sizeof inst->step_trigger);
  if (p->release_state)
    p->release_state(inst->state);
  memset(inst->state, 0, p->state_size);
  if (p->init)
    p->init(inst->state, p->userdata);
}

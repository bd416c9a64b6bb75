/*
 * Declared fields: decoding an untrusted msgpack map into a struct. The
 * input was checked by esc_msgpack_check (bounded sizes and depth) before
 * msgpack-c unpacked it; here every value is checked against its field
 * before anything is copied: its type, its length against the field's
 * maximum, its item count against the array's capacity. Nesting follows
 * the table, so the input cannot make this recurse deeper than it.
 */
#include "fields_int.h"

#include <esc_internal/msgpack.h>

#include <inttypes.h>
#include <string.h>

/* What a msgpack value is, for "... but is <what>". */
static const char *what(const msgpack_object *v) {
  return esc__msgpack_type_name(v->type);
}

static esc_status wrong_type(esc_error *err, const esc__walk *w,
                             const esc_field *fd, const msgpack_object *v) {
  return esc__field_error(err, w, fd, "is %s", what(v));
}

static esc_status unpack_map(esc__walk *w, const esc_field *table,
                             const msgpack_object *map, void *out,
                             esc_error *err);

static esc_status unpack_str(esc__walk *w, const esc_field *fd,
                             const msgpack_object *v, char *dst,
                             esc_error *err) {
  if (v->type != MSGPACK_OBJECT_STR)
    return wrong_type(err, w, fd, v);
  size_t len = v->via.str.size;
  if (len > fd->max)
    return esc__field_error(err, w, fd, "has %zu", len);
  if (len && memchr(v->via.str.ptr, '\0', len))
    return esc__field_error(err, w, fd, "holds a NUL byte");
  if (len)
    memcpy(dst, v->via.str.ptr, len);
  dst[len] = '\0';
  return ESC_OK;
}

static esc_status unpack_i64(esc__walk *w, const esc_field *fd,
                             const msgpack_object *v, char *dst,
                             esc_error *err) {
  int64_t n;
  if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    n = v->via.i64;
  else if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return wrong_type(err, w, fd, v);
  else if (v->via.u64 > (uint64_t)INT64_MAX)
    return esc__field_error(err, w, fd, "is %" PRIu64 ", above 2^63 - 1",
                            v->via.u64);
  else
    n = (int64_t)v->via.u64;
  memcpy(dst, &n, sizeof n);
  return ESC_OK;
}

static esc_status unpack_uuid(esc__walk *w, const esc_field *fd,
                              const msgpack_object *v, char *dst,
                              esc_error *err) {
  char text[37];
  esc_error inner = ESC_ERROR_INIT;
  if (v->type != MSGPACK_OBJECT_STR)
    return wrong_type(err, w, fd, v);
  if (v->via.str.size != 36)
    return esc__field_error(err, w, fd, "has %" PRIu32 " bytes, not 36",
                            v->via.str.size);
  memcpy(text, v->via.str.ptr, 36);
  text[36] = '\0';
  if (esc_uuid_parse(text, (esc_uuid *)(void *)dst, &inner) != ESC_OK)
    return esc__field_error(err, w, fd, "is not one");
  return ESC_OK;
}

static esc_status unpack_bytes(esc__walk *w, const esc_field *fd,
                               const msgpack_object *v, char *dst, char *s,
                               esc_error *err) {
  if (v->type != MSGPACK_OBJECT_BIN)
    return wrong_type(err, w, fd, v);
  size_t len = v->via.bin.size;
  if (len > fd->max)
    return esc__field_error(err, w, fd, "has %zu", len);
  const void *p = v->via.bin.ptr;
  memcpy(dst, &p, sizeof p);
  memcpy(s + fd->count_offset, &len, sizeof len);
  return ESC_OK;
}

static esc_status unpack_items(esc__walk *w, const esc_field *fd,
                               const msgpack_object *v, char *dst, char *s,
                               esc_error *err) {
  if (v->type != MSGPACK_OBJECT_ARRAY)
    return wrong_type(err, w, fd, v);
  size_t count = v->via.array.size;
  if (count > fd->max)
    return esc__field_error(err, w, fd, "has %zu items", count);
  for (size_t i = 0; i < count; i++) {
    size_t saved;
    esc_status st = esc__walk_enter(w, fd, i, &saved, err);
    if (st == ESC_OK)
      st = unpack_map(w, fd->item, &v->via.array.ptr[i],
                      dst + i * fd->item_size, err);
    if (st != ESC_OK)
      return st;
    esc__walk_leave(w, saved);
  }
  int n = (int)count;
  memcpy(s + fd->count_offset, &n, sizeof n);
  return ESC_OK;
}

static esc_status unpack_field(esc__walk *w, const esc_field *fd,
                               const msgpack_object *v, char *s,
                               esc_error *err) {
  char *dst = s + fd->offset;
  switch (fd->kind) {
  case ESC_FIELD_KIND_STR:
    return unpack_str(w, fd, v, dst, err);
  case ESC_FIELD_KIND_I64:
  case ESC_FIELD_KIND_TIME:
    return unpack_i64(w, fd, v, dst, err);
  case ESC_FIELD_KIND_BOOL:
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
      return wrong_type(err, w, fd, v);
    *(bool *)(void *)dst = v->via.boolean;
    return ESC_OK;
  case ESC_FIELD_KIND_UUID:
    return unpack_uuid(w, fd, v, dst, err);
  case ESC_FIELD_KIND_BYTES:
    return unpack_bytes(w, fd, v, dst, s, err);
  case ESC_FIELD_KIND_ARRAY:
    return unpack_items(w, fd, v, dst, s, err);
  }
  return esc__field_error(err, w, fd, "has an unknown kind %d", (int)fd->kind);
}

/* Fills out (zeroed by the caller) from map, field by field. */
static esc_status unpack_map(esc__walk *w, const esc_field *table,
                             const msgpack_object *map, void *out,
                             esc_error *err) {
  if (map->type != MSGPACK_OBJECT_MAP) {
    if (w->len == 0)
      return esc_error_set(err, ESC_EINVAL,
                           "%.64s: the payload is not a map but %s", w->type,
                           what(map));
    /* An item: its path ends in "." */
    return esc_error_set(err, ESC_EINVAL, "%.64s: %.*s must be a map but is %s",
                         w->type, (int)(w->len - 1), w->path, what(map));
  }
  if (!table)
    return esc_error_set(err, ESC_EINVAL, "%s: %sa field table is NULL",
                         w->type, w->path);
  for (const esc_field *fd = table; fd->name; fd++) {
    const msgpack_object *v = esc_map_get(map, fd->name);
    if (!v || v->type == MSGPACK_OBJECT_NIL) {
      if (fd->presence == ESC_REQUIRED)
        return esc__field_error(err, w, fd, "is %s", v ? "nil" : "missing");
      continue;
    }
    esc_status st = unpack_field(w, fd, v, out, err);
    if (st != ESC_OK)
      return st;
  }
  return ESC_OK;
}

esc_status esc_fields_unpack(const esc_fields *f, const msgpack_object *obj,
                             void *event, esc_error *err) {
  if (!f || !obj || !event)
    return esc_error_set(err, ESC_EINVAL,
                         "fields: table, payload or event is NULL");
  esc__walk w;
  esc__walk_init(&w, f);
  memset(event, 0, f->size);
  return unpack_map(&w, f->table, obj, event, err);
}

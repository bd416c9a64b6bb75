/*
 * Declared fields: checking a struct against its table and packing it.
 * Packing writes the map in table order and leaves out optional fields
 * that hold their zero value, so the bytes of a declared type are those a
 * hand-written encoder of the same map would produce (stored events of
 * the samples' former codecs are byte-identical).
 */
#include "fields_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Where a field is, for messages
 * ------------------------------------------------------------------------ */

void esc__walk_init(esc__walk *w, const esc_fields *f) {
  w->type = f->type ? f->type : "(unnamed)";
  w->path[0] = '\0';
  w->len = 0;
  w->depth = 0;
}

esc_status esc__walk_enter(esc__walk *w, const esc_field *fd, size_t i,
                           size_t *saved, esc_error *err) {
  *saved = w->len; /* set on failure too: leaving is then harmless */
  if (w->depth >= ESC_FIELDS_MAX_DEPTH)
    return esc__field_error(err, w, fd, "nests deeper than %d arrays",
                            ESC_FIELDS_MAX_DEPTH);
  *saved = w->len;
  int n = snprintf(w->path + w->len, sizeof w->path - w->len, "\"%s\"[%zu].",
                   fd->name, i);
  if (n > 0)
    w->len += (size_t)n < sizeof w->path - w->len ? (size_t)n
                                                  : sizeof w->path - w->len - 1;
  w->depth++;
  return ESC_OK;
}

void esc__walk_leave(esc__walk *w, size_t saved) {
  w->len = saved;
  w->path[saved] = '\0';
  w->depth--;
}

/* What a field of this kind must be, for messages. */
static void expected(const esc_field *fd, char *buf, size_t size) {
  switch (fd->kind) {
  case ESC_FIELD_KIND_STR:
    snprintf(buf, size, "a string of at most %zu bytes", fd->max);
    return;
  case ESC_FIELD_KIND_BYTES:
    snprintf(buf, size, "binary of at most %zu bytes", fd->max);
    return;
  case ESC_FIELD_KIND_ARRAY:
    snprintf(buf, size, "an array of at most %zu items", fd->max);
    return;
  case ESC_FIELD_KIND_BOOL:
    snprintf(buf, size, "a boolean");
    return;
  case ESC_FIELD_KIND_UUID:
    snprintf(buf, size, "a UUID string");
    return;
  case ESC_FIELD_KIND_I64:
  case ESC_FIELD_KIND_TIME:
    break;
  }
  snprintf(buf, size, "an integer");
}

esc_status esc__field_error(esc_error *err, const esc__walk *w,
                            const esc_field *fd, const char *fmt, ...) {
  char what[64], actual[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(actual, sizeof actual, fmt, ap);
  va_end(ap);
  expected(fd, what, sizeof what);
  return esc_error_set(err, ESC_EINVAL,
                       "%.64s: %.100s\"%.48s\" must be %s but %s", w->type,
                       w->path, fd->name, what, actual);
}

/* ------------------------------------------------------------------------
 * Checking a struct
 * ------------------------------------------------------------------------ */

static int get_count(const void *s, const esc_field *fd) {
  int n;
  memcpy(&n, (const char *)s + fd->count_offset, sizeof n);
  return n;
}

static size_t get_len(const void *s, const esc_field *fd) {
  size_t n;
  memcpy(&n, (const char *)s + fd->count_offset, sizeof n);
  return n;
}

static const void *get_ptr(const void *s, const esc_field *fd) {
  const void *p;
  memcpy(&p, (const char *)s + fd->offset, sizeof p);
  return p;
}

static esc_status validate_struct(esc__walk *w, const esc_field *table,
                                  const void *s, esc_error *err);

static esc_status validate_items(esc__walk *w, const esc_field *fd,
                                 const void *s, esc_error *err) {
  int count = get_count(s, fd);
  if (count < 0 || (size_t)count > fd->max)
    return esc__field_error(err, w, fd, "has %d items", count);
  const char *items = (const char *)s + fd->offset;
  for (size_t i = 0; i < (size_t)count; i++) {
    size_t saved;
    esc_status st = esc__walk_enter(w, fd, i, &saved, err);
    if (st == ESC_OK)
      st = validate_struct(w, fd->item, items + i * fd->item_size, err);
    if (st != ESC_OK)
      return st;
    esc__walk_leave(w, saved);
  }
  return ESC_OK;
}

static esc_status validate_field(esc__walk *w, const esc_field *fd,
                                 const void *s, esc_error *err) {
  const char *m = (const char *)s + fd->offset;
  switch (fd->kind) {
  case ESC_FIELD_KIND_STR: {
    size_t len = strnlen(m, fd->size);
    if (len == fd->size)
      return esc__field_error(
          err, w, fd, "is not NUL-terminated in its %zu-byte array", fd->size);
    if (len > fd->max)
      return esc__field_error(err, w, fd, "has %zu", len);
    return ESC_OK;
  }
  case ESC_FIELD_KIND_BYTES: {
    size_t len = get_len(s, fd);
    if (len > fd->max)
      return esc__field_error(err, w, fd, "has %zu", len);
    if (len && !get_ptr(s, fd))
      return esc__field_error(err, w, fd, "is NULL with length %zu", len);
    return ESC_OK;
  }
  case ESC_FIELD_KIND_ARRAY:
    return validate_items(w, fd, s, err);
  case ESC_FIELD_KIND_I64:
  case ESC_FIELD_KIND_BOOL:
  case ESC_FIELD_KIND_UUID:
  case ESC_FIELD_KIND_TIME:
    return ESC_OK;
  }
  return esc__field_error(err, w, fd, "has an unknown kind %d", (int)fd->kind);
}

static esc_status validate_struct(esc__walk *w, const esc_field *table,
                                  const void *s, esc_error *err) {
  if (!table)
    return esc_error_set(err, ESC_EINVAL, "%s: %sa field table is NULL",
                         w->type, w->path);
  for (const esc_field *fd = table; fd->name; fd++) {
    esc_status st = validate_field(w, fd, s, err);
    if (st != ESC_OK)
      return st;
  }
  return ESC_OK;
}

esc_status esc_fields_validate(const esc_fields *f, const void *event,
                               esc_error *err) {
  if (!f || !event)
    return esc_error_set(err, ESC_EINVAL, "fields: table or event is NULL");
  esc__walk w;
  esc__walk_init(&w, f);
  return validate_struct(&w, f->table, event, err);
}

/* ------------------------------------------------------------------------
 * Packing (after validation)
 * ------------------------------------------------------------------------ */

static bool is_zero(const void *p, size_t size) {
  const unsigned char *b = p;
  for (size_t i = 0; i < size; i++)
    if (b[i])
      return false;
  return true;
}

/* Whether the field is written: always when required, else when it holds
 * more than its zero value. */
static bool present(const esc_field *fd, const void *s) {
  const char *m = (const char *)s + fd->offset;
  if (fd->presence == ESC_REQUIRED)
    return true;
  switch (fd->kind) {
  case ESC_FIELD_KIND_STR:
    return m[0] != '\0';
  case ESC_FIELD_KIND_BYTES:
    return get_len(s, fd) > 0;
  case ESC_FIELD_KIND_ARRAY:
    return get_count(s, fd) > 0;
  case ESC_FIELD_KIND_I64:
  case ESC_FIELD_KIND_BOOL:
  case ESC_FIELD_KIND_UUID:
  case ESC_FIELD_KIND_TIME:
    break;
  }
  return !is_zero(m, fd->size);
}

static int pack_struct(const esc_field *table, const void *s,
                       msgpack_packer *pk);

static int pack_value(const esc_field *fd, const void *s, msgpack_packer *pk) {
  const char *m = (const char *)s + fd->offset;
  switch (fd->kind) {
  case ESC_FIELD_KIND_STR: {
    size_t len = strlen(m);
    return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, m, len);
  }
  case ESC_FIELD_KIND_I64:
  case ESC_FIELD_KIND_TIME: {
    int64_t v;
    memcpy(&v, m, sizeof v);
    return msgpack_pack_int64(pk, v);
  }
  case ESC_FIELD_KIND_BOOL:
    return *(const bool *)m ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  case ESC_FIELD_KIND_UUID: {
    char text[37];
    esc_uuid_format((const esc_uuid *)m, text);
    return msgpack_pack_str(pk, 36) | msgpack_pack_str_body(pk, text, 36);
  }
  case ESC_FIELD_KIND_BYTES: {
    size_t len = get_len(s, fd);
    return msgpack_pack_bin(pk, len) |
           (len ? msgpack_pack_bin_body(pk, get_ptr(s, fd), len) : 0);
  }
  case ESC_FIELD_KIND_ARRAY: {
    size_t count = (size_t)get_count(s, fd);
    int rc = msgpack_pack_array(pk, count);
    for (size_t i = 0; i < count && rc == 0; i++)
      rc = pack_struct(fd->item, m + i * fd->item_size, pk);
    return rc;
  }
  }
  return -1;
}

static int pack_struct(const esc_field *table, const void *s,
                       msgpack_packer *pk) {
  size_t n = 0;
  for (const esc_field *fd = table; fd->name; fd++)
    n += present(fd, s);
  int rc = msgpack_pack_map(pk, n);
  for (const esc_field *fd = table; fd->name && rc == 0; fd++) {
    if (!present(fd, s))
      continue;
    size_t len = strlen(fd->name);
    rc = msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, fd->name, len) |
         pack_value(fd, s, pk);
  }
  return rc ? -1 : 0;
}

int esc_fields_pack(const esc_fields *f, const void *event,
                    msgpack_packer *pk) {
  esc_error local = ESC_ERROR_INIT;
  esc_error *err = esc__packer_error(pk);
  if (esc_fields_validate(f, event, err ? err : &local) != ESC_OK)
    return -1;
  if (pack_struct(f->table, event, pk) == 0)
    return 0;
  if (err)
    esc_error_set(err, ESC_ENOMEM, "%s: packing failed (out of memory?)",
                  f->type);
  return -1;
}

/*
 * Event metadata: a msgpack map {"correlation_id": "<uuid>",
 * "causation_id": "<uuid>", "actor": "...", "time": <microseconds>}.
 * Decoding treats the bytes as untrusted: they are checked before msgpack-c
 * unpacks them.
 */
#include "store_int.h"

#include <esc_internal/msgpack.h>

#include <ctype.h>
#include <inttypes.h>
#include <msgpack.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static int pack_key(msgpack_packer *pk, const char *key) {
  size_t n = strlen(key);
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, key, n) ? -1 : 0;
}

static int pack_uuid(msgpack_packer *pk, const char *key, const esc_uuid *id) {
  char text[37];
  esc_uuid_format(id, text);
  return pack_key(pk, key) || pack_key(pk, text) ? -1 : 0;
}

/* A user field's key: 1..ESC_METADATA_KEY_MAX bytes of [A-Za-z0-9_.-]. */
static bool field_key_valid(const char *k) {
  size_t n = strlen(k);
  if (n == 0 || n > ESC_METADATA_KEY_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)k[i]) && !strchr("_.-", k[i]))
      return false;
  return true;
}

static bool utf8_valid(const char *s) {
  for (size_t n; *s; s += n)
    if ((n = esc_utf8_char_len(s)) == 0)
      return false;
  return true;
}

/* The user's fields keep to the limits of <esc/store.h>; the message
 * names the field. */
static esc_status check_fields(const esc_metadata *m, esc_error *err) {
  char q[ESC__QUOTE_SIZE];
  if (m->field_count > ESC_METADATA_FIELDS_MAX)
    return esc__fail(err, ESC_EINVAL,
                     "metadata: %zu fields, at most %d are allowed",
                     m->field_count, ESC_METADATA_FIELDS_MAX);
  if (m->field_count && !m->fields)
    return esc__fail(err, ESC_EINVAL, "metadata: fields is NULL");
  for (size_t i = 0; i < m->field_count; i++) {
    const esc_metadata_field *f = &m->fields[i];
    if (!f->key || !f->value)
      return esc__fail(err, ESC_EINVAL,
                       "metadata: field %zu has a NULL key or value", i + 1);
    esc__quote(q, sizeof q, f->key);
    if (!field_key_valid(f->key))
      return esc__fail(err, ESC_EINVAL,
                       "metadata: field key \"%s\" must be 1..%d bytes of "
                       "[A-Za-z0-9_.-]",
                       q, ESC_METADATA_KEY_MAX);
    if (strlen(f->value) > ESC_METADATA_VALUE_MAX || !utf8_valid(f->value))
      return esc__fail(err, ESC_EINVAL,
                       "metadata: the value of field \"%s\" must be valid "
                       "UTF-8 of at most %d bytes",
                       q, ESC_METADATA_VALUE_MAX);
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->fields[j].key, f->key) == 0)
        return esc__fail(err, ESC_EINVAL,
                         "metadata: field \"%s\" is given twice", q);
  }
  return ESC_OK;
}

static int pack_fields(msgpack_packer *pk, const esc_metadata *m) {
  int rc = pack_key(pk, "fields") ||
           msgpack_pack_map(pk, m->field_count);
  for (size_t i = 0; !rc && i < m->field_count; i++)
    rc = pack_key(pk, m->fields[i].key) || pack_key(pk, m->fields[i].value);
  return rc;
}

esc_status esc_metadata_encode(const esc_metadata *m, void **out,
                               size_t *out_len, esc_error *err) {
  if (!out || !out_len)
    return esc__fail(err, ESC_EINVAL, "metadata: out is NULL");
  *out = NULL;
  *out_len = 0;
  if (!m)
    return esc__fail(err, ESC_EINVAL, "metadata: m is NULL");

  esc_status st = check_fields(m, err);
  if (st)
    return st;
  bool has_corr = !esc_uuid_is_nil(&m->correlation_id);
  bool has_cause = !esc_uuid_is_nil(&m->causation_id);
  bool has_fields = m->field_count > 0;
  size_t n = 1 + has_corr + has_cause + (m->actor != NULL) + has_fields;
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  int rc = msgpack_pack_map(&pk, n);
  if (!rc && has_corr)
    rc = pack_uuid(&pk, "correlation_id", &m->correlation_id);
  if (!rc && has_cause)
    rc = pack_uuid(&pk, "causation_id", &m->causation_id);
  if (!rc && m->actor)
    rc = pack_key(&pk, "actor") || pack_key(&pk, m->actor);
  if (!rc)
    rc = pack_key(&pk, "time") || msgpack_pack_int64(&pk, m->time_us);
  if (!rc && has_fields)
    rc = pack_fields(&pk, m);
  if (rc) {
    msgpack_sbuffer_destroy(&sbuf);
    return esc__fail(err, ESC_ENOMEM, "metadata: out of memory");
  }
  *out_len = sbuf.size;
  *out = msgpack_sbuffer_release(&sbuf); /* malloc'ed: the caller free()s */
  esc__clear(err);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

static bool key_is(const msgpack_object *k, const char *name) {
  size_t n = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
         memcmp(k->via.str.ptr, name, n) == 0;
}

static esc_status wrong_type(esc_error *err, const char *key, const char *want,
                             const msgpack_object *v) {
  return esc__fail(err, ESC_EINVAL, "metadata: \"%s\" should be %s, not %s",
                   key, want, esc__msgpack_type_name(v->type));
}

static esc_status decode_uuid(const char *key, const msgpack_object *v,
                              esc_uuid *out, esc_error *err) {
  char text[37];
  esc_error perr = ESC_ERROR_INIT;
  if (v->type != MSGPACK_OBJECT_STR)
    return wrong_type(err, key, "a UUID string", v);
  if (v->via.str.size != 36)
    return esc__fail(err, ESC_EINVAL,
                     "metadata: \"%s\" is a %" PRIu32
                     "-byte string, not a 36-character UUID",
                     key, v->via.str.size);
  memcpy(text, v->via.str.ptr, 36);
  text[36] = '\0';
  if (esc_uuid_parse(text, out, &perr) != ESC_OK)
    return esc__fail(err, ESC_EINVAL, "metadata: \"%s\": %s", key, perr.msg);
  return ESC_OK;
}

static esc_status decode_time(const msgpack_object *v, int64_t *out,
                              esc_error *err) {
  if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = v->via.i64;
    return ESC_OK;
  }
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return wrong_type(err, "time", "an integer (microseconds)", v);
  if (v->via.u64 > INT64_MAX)
    return esc__fail(err, ESC_EINVAL,
                     "metadata: \"time\" %" PRIu64 " is above 2^63 - 1",
                     v->via.u64);
  *out = (int64_t)v->via.u64;
  return ESC_OK;
}

/* Copies the actor into buf, cut at a UTF-8 character boundary when it
 * does not fit. */
static void copy_actor(const msgpack_object_str *s, char *buf, size_t size) {
  size_t n = s->size;
  if (n > size - 1) {
    n = size - 1;
    while (n > 0 && ((unsigned char)s->ptr[n] & 0xc0) == 0x80)
      n--;
  }
  memcpy(buf, s->ptr, n);
  buf[n] = '\0';
}

static esc_status decode_entry(const msgpack_object_kv *kv, esc_metadata *m,
                               char *actor_buf, size_t actor_buf_size,
                               esc_error *err) {
  const msgpack_object *v = &kv->val;
  if (v->type == MSGPACK_OBJECT_NIL)
    return ESC_OK; /* an explicit nil is the same as an absent key */
  if (key_is(&kv->key, "correlation_id"))
    return decode_uuid("correlation_id", v, &m->correlation_id, err);
  if (key_is(&kv->key, "causation_id"))
    return decode_uuid("causation_id", v, &m->causation_id, err);
  if (key_is(&kv->key, "time"))
    return decode_time(v, &m->time_us, err);
  if (key_is(&kv->key, "actor")) {
    if (v->type != MSGPACK_OBJECT_STR)
      return wrong_type(err, "actor", "a string", v);
    if (actor_buf && actor_buf_size > 0) {
      copy_actor(&v->via.str, actor_buf, actor_buf_size);
      m->actor = actor_buf;
    }
  }
  return ESC_OK; /* unknown keys are someone else's business */
}

/* Checks (bounded) and unpacks metadata into obj; the caller destroys
 * zone when this returned ESC_OK. */
static esc_status unpack(const void *data, size_t len, msgpack_zone *zone,
                         msgpack_object *obj, esc_error *err) {
  esc_status st = esc_msgpack_check(data, len, NULL, err);
  if (st != ESC_OK)
    return st;
  if (!msgpack_zone_init(zone, 1024))
    return esc__fail(err, ESC_ENOMEM, "metadata: out of memory");
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack(data, len, &off, zone, obj);
  if (ur == MSGPACK_UNPACK_SUCCESS)
    return ESC_OK;
  msgpack_zone_destroy(zone);
  return ur == MSGPACK_UNPACK_NOMEM_ERROR
             ? esc__fail(err, ESC_ENOMEM, "metadata: out of memory")
             : esc__fail(err, ESC_EINVAL,
                         "metadata: msgpack_unpack failed (%d) at byte %zu",
                         (int)ur, off);
}

esc_status esc_metadata_decode(const void *data, size_t len, esc_metadata *m,
                               char *actor_buf, size_t actor_buf_size,
                               esc_error *err) {
  static const esc_metadata empty = ESC_METADATA_INIT;
  if (!m)
    return esc__fail(err, ESC_EINVAL, "metadata: m is NULL");
  *m = empty;
  if (len == 0) { /* no metadata stored */
    esc__clear(err);
    return ESC_OK;
  }
  msgpack_zone zone;
  msgpack_object obj;
  esc_status st = unpack(data, len, &zone, &obj, err);
  if (st)
    return st;
  if (obj.type != MSGPACK_OBJECT_MAP) {
    st = esc__fail(err, ESC_EINVAL, "metadata: should be a map, not %s",
                   esc__msgpack_type_name(obj.type));
    goto out_zone;
  }
  for (uint32_t i = 0; i < obj.via.map.size && st == ESC_OK; i++)
    st = decode_entry(&obj.via.map.ptr[i], m, actor_buf, actor_buf_size, err);
  if (st != ESC_OK)
    *m = empty;
  else
    esc__clear(err);
out_zone:
  msgpack_zone_destroy(&zone);
  return st;
}

/* ------------------------------------------------------------------------
 * User fields
 * ------------------------------------------------------------------------ */

size_t esc_utf8_char_len(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  unsigned char c = p[0];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4)
    return 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
      (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
    return 0;
  return n;
}

/* Looks key up in the "fields" map of obj (a metadata map). */
static esc_status find_field(const msgpack_object *obj, const char *key,
                             char *out, size_t size, esc_error *err) {
  if (obj->type != MSGPACK_OBJECT_MAP)
    return esc__fail(err, ESC_EINVAL, "metadata: not a map");
  for (uint32_t i = 0; i < obj->via.map.size; i++) {
    const msgpack_object_kv *kv = &obj->via.map.ptr[i];
    if (!key_is(&kv->key, "fields") || kv->val.type == MSGPACK_OBJECT_NIL)
      continue;
    if (kv->val.type != MSGPACK_OBJECT_MAP)
      return wrong_type(err, "fields", "a map", &kv->val);
    for (uint32_t j = 0; j < kv->val.via.map.size; j++) {
      const msgpack_object_kv *f = &kv->val.via.map.ptr[j];
      if (!key_is(&f->key, key))
        continue;
      if (f->val.type != MSGPACK_OBJECT_STR)
        return wrong_type(err, key, "a string", &f->val);
      if (f->val.via.str.size >= size)
        return esc__fail(err, ESC_EINVAL,
                         "metadata: field \"%s\" has %" PRIu32
                         " bytes, more than fit in %zu",
                         key, f->val.via.str.size, size - 1);
      memcpy(out, f->val.via.str.ptr, f->val.via.str.size);
      out[f->val.via.str.size] = '\0';
      return ESC_OK;
    }
  }
  return esc__fail(err, ESC_ENOTFOUND, "metadata: no field \"%s\"", key);
}

esc_status esc_metadata_field_get(const void *data, size_t len,
                                  const char *key, char *out, size_t size,
                                  esc_error *err) {
  if (!key || !out || size == 0)
    return esc__fail(err, ESC_EINVAL, "metadata field: key or out missing");
  out[0] = '\0';
  if (len == 0)
    return esc__fail(err, ESC_ENOTFOUND, "metadata: no field \"%s\"", key);
  msgpack_zone zone;
  msgpack_object obj;
  esc_status st = unpack(data, len, &zone, &obj, err);
  if (st)
    return st;
  st = find_field(&obj, key, out, size, err);
  msgpack_zone_destroy(&zone);
  if (!st)
    esc__clear(err);
  return st;
}

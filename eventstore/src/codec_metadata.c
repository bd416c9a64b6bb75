/*
 * Event metadata: a msgpack map {"correlation_id": "<uuid>",
 * "causation_id": "<uuid>", "actor": "...", "time": <microseconds>}.
 * Decoding treats the bytes as untrusted: they are checked before msgpack-c
 * unpacks them.
 */
#include "store_int.h"

#include <esc_internal/msgpack.h>

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

esc_status esc_metadata_encode(const esc_metadata *m, void **out,
                               size_t *out_len, esc_error *err) {
  if (!out || !out_len)
    return esc__fail(err, ESC_EINVAL, "metadata: out is NULL");
  *out = NULL;
  *out_len = 0;
  if (!m)
    return esc__fail(err, ESC_EINVAL, "metadata: m is NULL");

  bool has_corr = !esc_uuid_is_nil(&m->correlation_id);
  bool has_cause = !esc_uuid_is_nil(&m->causation_id);
  size_t n = 1 + has_corr + has_cause + (m->actor != NULL);
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
  esc_status st = esc_msgpack_check(data, len, NULL, err);
  if (st != ESC_OK)
    return st;

  msgpack_zone zone;
  if (!msgpack_zone_init(&zone, 1024))
    return esc__fail(err, ESC_ENOMEM, "metadata: out of memory");
  msgpack_object obj;
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack(data, len, &off, &zone, &obj);
  if (ur != MSGPACK_UNPACK_SUCCESS) {
    st = ur == MSGPACK_UNPACK_NOMEM_ERROR
             ? esc__fail(err, ESC_ENOMEM, "metadata: out of memory")
             : esc__fail(err, ESC_EINVAL,
                         "metadata: msgpack_unpack failed (%d) at byte %zu",
                         (int)ur, off);
    goto out_zone;
  }
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

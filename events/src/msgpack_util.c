/* Small helpers for event and state codecs written by users. */
#include <esc/event.h>

#include <string.h>

const msgpack_object *esc_map_get(const msgpack_object *map, const char *key) {
  if (!map || map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  size_t len = strlen(key);
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object_kv *kv = &map->via.map.ptr[i];
    if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == len &&
        memcmp(kv->key.via.str.ptr, key, len) == 0)
      return &kv->val;
  }
  return NULL;
}

bool esc_map_i64(const msgpack_object *map, const char *key, int64_t *out) {
  const msgpack_object *v = esc_map_get(map, key);
  if (!v)
    return false;
  if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = v->via.i64;
    return true;
  }
  if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
      v->via.u64 <= (uint64_t)INT64_MAX) {
    *out = (int64_t)v->via.u64;
    return true;
  }
  return false;
}

bool esc_map_bool(const msgpack_object *map, const char *key, bool *out) {
  const msgpack_object *v = esc_map_get(map, key);
  if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
    return false;
  *out = v->via.boolean;
  return true;
}

bool esc_map_str(const msgpack_object *map, const char *key, char *buf,
                 size_t size) {
  const msgpack_object *v = esc_map_get(map, key);
  if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size >= size)
    return false;
  memcpy(buf, v->via.str.ptr, v->via.str.size);
  buf[v->via.str.size] = '\0';
  return true;
}

void esc_pack_key(msgpack_packer *pk, const char *key) {
  esc_pack_str(pk, key);
}

void esc_pack_str(msgpack_packer *pk, const char *s) {
  size_t len = strlen(s);
  msgpack_pack_str(pk, len);
  msgpack_pack_str_body(pk, s, len);
}

esc_status esc_upcast_add_str(const msgpack_object *in, msgpack_packer *pk,
                              const char *key, const char *value,
                              esc_error *err) {
  if (!in || in->type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL,
                         "the payload is not a map, so \"%.64s\" cannot be "
                         "added",
                         key);
  bool has = esc_map_get(in, key) != NULL;
  int rc = msgpack_pack_map(pk, in->via.map.size + (has ? 0 : 1));
  for (uint32_t i = 0; i < in->via.map.size; i++)
    rc |= msgpack_pack_object(pk, in->via.map.ptr[i].key) |
          msgpack_pack_object(pk, in->via.map.ptr[i].val);
  if (!has) {
    esc_pack_key(pk, key);
    esc_pack_str(pk, value);
  }
  return rc ? esc_error_set(err, ESC_ENOMEM, "upcast: out of memory") : ESC_OK;
}

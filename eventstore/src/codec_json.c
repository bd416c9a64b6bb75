/*
 * msgpack <-> JSON, for the CLI and for people: esc_msgpack_to_json renders
 * a payload through jansson, esc_json_to_msgpack parses JSON with jansson
 * and packs it with msgpack-c. Untrusted msgpack is always checked by
 * esc_msgpack_check before msgpack-c sees it.
 */
#include "store_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * msgpack -> json_t
 * ------------------------------------------------------------------------ */

/*
 * jansson prints every real with one precision (JSON_REAL_PRECISION), 17
 * significant digits by default, which shows 0.1 as 0.10000000000000001.
 * We track the fewest digits that still round-trip every real of the
 * document and print with that, so typical values print as written.
 */
struct render {
  int digits; /* precision that round-trips every real so far */
  esc_error *err;
};

static bool round_trips(double d, int digits) {
  char buf[40];
  snprintf(buf, sizeof buf, "%.*g", digits, d);
  return strtod(buf, NULL) == d;
}

/*
 * Raises r->digits until d prints exactly. Below 1e16 it also gets as many
 * digits as its integer part, so %g does not switch to exponent form and
 * 100.0 prints as 100.0, not 1e2.
 */
static void note_real(struct render *r, double d) {
  static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,
                                 1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16};
  while (r->digits < 16 && fabs(d) >= pow10[r->digits])
    r->digits++;
  while (r->digits < 17 && !round_trips(d, r->digits))
    r->digits++;
}

/* The double nearest to the shortest decimal that reads back as f, so a
 * float32 0.1 renders as 0.1 rather than 0.10000000149011612. */
static double float32_as_double(float f) {
  char buf[40];
  for (int digits = 1; digits < 9; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
    if (strtof(buf, NULL) == f)
      return strtod(buf, NULL);
  }
  return (double)f;
}

static json_t *hex_string(const void *data, size_t len) {
  char *buf = malloc(len * 2 + 1);
  if (!buf)
    return NULL;
  esc__hex_encode(data, len, buf);
  json_t *s = json_stringn_nocheck(buf, len * 2);
  free(buf);
  return s;
}

static json_t *render_bin(const void *data, size_t len) {
  json_t *hex = hex_string(data, len);
  return hex ? json_pack("{s:o}", "$bin", hex) : NULL;
}

static json_t *render_ext(int8_t type, const void *data, size_t len) {
  json_t *hex = hex_string(data, len);
  return hex ? json_pack("{s:i,s:o}", "$ext", (int)type, "hex", hex) : NULL;
}

static json_t *render_real(struct render *r, double d) {
  if (!isfinite(d))
    return json_null();
  note_real(r, d);
  return json_real(d);
}

static json_t *render_uint(uint64_t u) {
  char digits[24];
  if (u <= INT64_MAX)
    return json_integer((json_int_t)u);
  snprintf(digits, sizeof digits, "%" PRIu64, u);
  return json_string(digits);
}

static esc_status render(struct render *r, const msgpack_object *o,
                         json_t **out);

static esc_status render_array(struct render *r, const msgpack_object_array *a,
                               json_t **out) {
  json_t *arr = json_array();
  if (!arr)
    return esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  for (uint32_t i = 0; i < a->size; i++) {
    json_t *item;
    esc_status st = render(r, &a->ptr[i], &item);
    if (st != ESC_OK) {
      json_decref(arr);
      return st;
    }
    if (json_array_append_new(arr, item) != 0) {
      json_decref(arr);
      return esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
    }
  }
  *out = arr;
  return ESC_OK;
}

/*
 * A map key becomes an object key: a string as itself, anything else
 * (numbers, binary, non-UTF-8 strings, even arrays) as its compact JSON
 * text, so 1 becomes "1" and a bin key '{"$bin":"ff"}'. *key is
 * malloc'ed.
 */
static esc_status key_text(struct render *r, const msgpack_object *k,
                           char **key, size_t *key_len) {
  struct render kr = {1, r->err};
  json_t *j;
  esc_status st = render(&kr, k, &j);
  if (st != ESC_OK)
    return st;
  if (json_is_string(j)) {
    *key_len = json_string_length(j);
    *key = malloc(*key_len + 1);
    if (*key)
      memcpy(*key, json_string_value(j), *key_len + 1);
  } else {
    *key = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY |
                             JSON_REAL_PRECISION(kr.digits));
    *key_len = *key ? strlen(*key) : 0;
  }
  json_decref(j);
  if (!*key)
    return esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  return ESC_OK;
}

/* Duplicate keys are refused: a JSON object cannot hold both values, and
 * silently dropping one would misreport what is stored. */
static esc_status render_map(struct render *r, const msgpack_object_map *m,
                             json_t **out) {
  json_t *obj = json_object();
  esc_status st = ESC_OK;
  if (!obj)
    return esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  for (uint32_t i = 0; i < m->size && st == ESC_OK; i++) {
    char *key = NULL;
    size_t key_len = 0;
    json_t *value = NULL;
    st = key_text(r, &m->ptr[i].key, &key, &key_len);
    if (st == ESC_OK && json_object_getn(obj, key, key_len))
      st = esc__fail(r->err, ESC_EINVAL,
                     "msgpack: a map has the key \"%.*s\" twice (entry %" PRIu32
                     "); JSON cannot show both",
                     key_len > 64 ? 64 : (int)key_len, key, i + 1);
    if (st == ESC_OK)
      st = render(r, &m->ptr[i].val, &value);
    if (st == ESC_OK && json_object_setn_new(obj, key, key_len, value) != 0)
      st = esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
    free(key);
  }
  if (st != ESC_OK) {
    json_decref(obj);
    return st;
  }
  *out = obj;
  return ESC_OK;
}

/* Depth is bounded by esc_msgpack_check (at most 32), so recursion is
 * safe. */
static esc_status render(struct render *r, const msgpack_object *o,
                         json_t **out) {
  json_t *j = NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL:
    j = json_null();
    break;
  case MSGPACK_OBJECT_BOOLEAN:
    j = json_boolean(o->via.boolean);
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    j = render_uint(o->via.u64);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    j = json_integer((json_int_t)o->via.i64);
    break;
  case MSGPACK_OBJECT_FLOAT32:
    j = render_real(r, float32_as_double((float)o->via.f64));
    break;
  case MSGPACK_OBJECT_FLOAT64:
    j = render_real(r, o->via.f64);
    break;
  case MSGPACK_OBJECT_STR:
    /* jansson refuses text that is not UTF-8; show such bytes as bin. */
    /* msgpack-c leaves ptr NULL for an empty string. */
    j = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
    if (!j)
      j = render_bin(o->via.str.ptr, o->via.str.size);
    break;
  case MSGPACK_OBJECT_BIN:
    j = render_bin(o->via.bin.ptr, o->via.bin.size);
    break;
  case MSGPACK_OBJECT_EXT:
    j = render_ext(o->via.ext.type, o->via.ext.ptr, o->via.ext.size);
    break;
  case MSGPACK_OBJECT_ARRAY:
    return render_array(r, &o->via.array, out);
  case MSGPACK_OBJECT_MAP:
    return render_map(r, &o->via.map, out);
  default:
    return esc__fail(r->err, ESC_EINVAL, "msgpack: unknown object type %d",
                     (int)o->type);
  }
  if (!j)
    return esc__fail(r->err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  *out = j;
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * json_t -> text in a malloc'ed buffer the caller frees with free()
 * ------------------------------------------------------------------------ */

/* jansson's dump callback: appends to an esc__buf, NUL-terminated. */
static int text_append(const char *buffer, size_t size, void *userdata) {
  struct esc__buf *b = userdata;
  if (size == SIZE_MAX || !esc__buf_reserve(b, size + 1))
    return -1;
  memcpy(b->data + b->len, buffer, size);
  b->len += size;
  b->data[b->len] = '\0';
  return 0;
}

static esc_status dump(const json_t *j, int digits, char **out,
                       esc_error *err) {
  struct esc__buf b = {NULL, 0, 0};
  size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                 JSON_REAL_PRECISION(digits);
  if (json_dump_callback(j, text_append, &b, flags) != 0 || !b.data) {
    esc__buf_release(&b);
    return esc__fail(err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  }
  *out = (char *)b.data; /* malloc'ed by esc__buf: the caller free()s */
  return ESC_OK;
}

esc_status esc_msgpack_to_json(const void *data, size_t len,
                               const esc_decode_limits *limits, char **out,
                               esc_error *err) {
  if (!out)
    return esc__fail(err, ESC_EINVAL, "msgpack to JSON: out is NULL");
  *out = NULL;
  esc_status st = esc_msgpack_check(data, len, limits, err);
  if (st != ESC_OK)
    return st;

  msgpack_zone zone;
  if (!msgpack_zone_init(&zone, 2048))
    return esc__fail(err, ESC_ENOMEM, "msgpack to JSON: out of memory");
  msgpack_object obj;
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack(data, len, &off, &zone, &obj);
  if (ur != MSGPACK_UNPACK_SUCCESS) {
    /* The check above makes anything but NOMEM a bug; say which. */
    st = ur == MSGPACK_UNPACK_NOMEM_ERROR
             ? esc__fail(err, ESC_ENOMEM, "msgpack to JSON: out of memory")
             : esc__fail(err, ESC_EINVAL,
                         "msgpack: msgpack_unpack failed (%d) at byte %zu",
                         (int)ur, off);
    goto out_zone;
  }
  struct render r = {1, err};
  json_t *j = NULL;
  st = render(&r, &obj, &j);
  if (st == ESC_OK)
    st = dump(j, r.digits, out, err);
  json_decref(j);
out_zone:
  msgpack_zone_destroy(&zone);
  if (st == ESC_OK)
    esc__clear(err);
  return st;
}

/* ------------------------------------------------------------------------
 * JSON text -> msgpack
 * ------------------------------------------------------------------------ */

/* Depth is bounded by jansson's parser (2048 levels). */
static int pack(msgpack_packer *pk, const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *key;
    size_t key_len;
    json_t *value;
    if (msgpack_pack_map(pk, json_object_size(j)) != 0)
      return -1;
    /* Insertion order, which is the order in the text. */
    json_object_keylen_foreach((json_t *)j, key, key_len, value) {
      if (msgpack_pack_str(pk, key_len) != 0 ||
          msgpack_pack_str_body(pk, key, key_len) != 0 || pack(pk, value) != 0)
        return -1;
    }
    return 0;
  }
  case JSON_ARRAY: {
    size_t n = json_array_size(j);
    if (msgpack_pack_array(pk, n) != 0)
      return -1;
    for (size_t i = 0; i < n; i++)
      if (pack(pk, json_array_get(j, i)) != 0)
        return -1;
    return 0;
  }
  case JSON_STRING: {
    size_t n = json_string_length(j);
    if (msgpack_pack_str(pk, n) != 0)
      return -1;
    return msgpack_pack_str_body(pk, json_string_value(j), n);
  }
  case JSON_INTEGER:
    return msgpack_pack_int64(pk, json_integer_value(j));
  case JSON_REAL:
    return msgpack_pack_double(pk, json_real_value(j));
  case JSON_TRUE:
    return msgpack_pack_true(pk);
  case JSON_FALSE:
    return msgpack_pack_false(pk);
  case JSON_NULL:
    return msgpack_pack_nil(pk);
  }
  return -1;
}

esc_status esc_json_to_msgpack(const char *json, void **out, size_t *out_len,
                               esc_error *err) {
  if (!out || !out_len)
    return esc__fail(err, ESC_EINVAL, "JSON to msgpack: out is NULL");
  *out = NULL;
  *out_len = 0;
  if (!json)
    return esc__fail(err, ESC_EINVAL, "JSON text is NULL");

  json_error_t jerr;
  json_t *root = json_loads(
      json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (!root) {
    if (json_error_code(&jerr) == json_error_out_of_memory)
      return esc__fail(err, ESC_ENOMEM, "JSON to msgpack: out of memory");
    return esc__fail(err, ESC_EINVAL, "JSON at line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
  }

  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  esc_status st = ESC_OK;
  if (pack(&pk, root) != 0) {
    msgpack_sbuffer_destroy(&sbuf);
    st = esc__fail(err, ESC_ENOMEM, "JSON to msgpack: out of memory");
    goto out_json;
  }
  *out_len = sbuf.size;
  *out = msgpack_sbuffer_release(&sbuf); /* malloc'ed: the caller free()s */
  esc__clear(err);
out_json:
  json_decref(root);
  return st;
}

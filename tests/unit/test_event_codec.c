/*
 * Unit tests: the event registry and the event codec
 * (commands/src/registry.c, event_codec.c): round trips, upcasting, and
 * hostile or mismatched stored bytes (guarantee 10).
 */
#include "command_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

/* Byte strings with embedded NULs: the literal and its length. */
#define BYTES(s) s, sizeof(s) - 1

/* ------------------------------------------------------------------------
 * A tiny domain: Renamed v2 {name, reason}, upcast from v1 {name}.
 * Decoded strings point into the zone, as the header allows, so ASan
 * catches any zone contents that do not live long enough.
 * ------------------------------------------------------------------------ */

typedef struct renamed_t {
  const char *name; /* not NUL-terminated: name_len bytes in the zone */
  size_t name_len;
  const char *reason;
  size_t reason_len;
} renamed_t;

static int pack_str(msgpack_packer *pk, const char *s, size_t n) {
  return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

static int pack_cstr(msgpack_packer *pk, const char *s) {
  return pack_str(pk, s, strlen(s));
}

static const msgpack_object *map_get(const msgpack_object *map,
                                     const char *key) {
  if (map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object_kv *kv = &map->via.map.ptr[i];
    if (kv->key.type == MSGPACK_OBJECT_STR &&
        kv->key.via.str.size == strlen(key) &&
        memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
      return &kv->val;
  }
  return NULL;
}

static int renamed_encode(const void *event, msgpack_packer *pk) {
  const renamed_t *r = event;
  return msgpack_pack_map(pk, 2) || pack_cstr(pk, "name") ||
                 pack_str(pk, r->name, r->name_len) ||
                 pack_cstr(pk, "reason") ||
                 pack_str(pk, r->reason, r->reason_len)
             ? -1
             : 0;
}

static esc_status renamed_decode(const msgpack_object *obj, void *event,
                                 esc_error *err) {
  renamed_t *r = event;
  const msgpack_object *name = map_get(obj, "name");
  const msgpack_object *reason = map_get(obj, "reason");
  if (!name || name->type != MSGPACK_OBJECT_STR || !reason ||
      reason->type != MSGPACK_OBJECT_STR) {
    err->code = ESC_EINVAL;
    snprintf(err->msg, sizeof err->msg, "want {name: str, reason: str}");
    return ESC_EINVAL;
  }
  r->name = name->via.str.ptr;
  r->name_len = name->via.str.size;
  r->reason = reason->via.str.ptr;
  r->reason_len = reason->via.str.size;
  return ESC_OK;
}

/* v1 {name} -> v2 {name, reason: "(none)"} */
static esc_status renamed_upcast(int32_t from, const msgpack_object *in,
                                 msgpack_packer *pk, esc_error *err) {
  const msgpack_object *name = map_get(in, "name");
  if (from != 1 || !name || name->type != MSGPACK_OBJECT_STR) {
    err->code = ESC_EINVAL;
    snprintf(err->msg, sizeof err->msg, "v%d payload has no name", from);
    return ESC_EINVAL;
  }
  return msgpack_pack_map(pk, 2) || pack_cstr(pk, "name") ||
                 msgpack_pack_object(pk, *name) || pack_cstr(pk, "reason") ||
                 pack_cstr(pk, "(none)")
             ? ESC_ENOMEM
             : ESC_OK;
}

/* An upcaster that claims success but packs nothing. */
static esc_status empty_upcast(int32_t from, const msgpack_object *in,
                               msgpack_packer *pk, esc_error *err) {
  (void)from, (void)in, (void)pk, (void)err;
  return ESC_OK;
}

static const esc_event_type renamed_type = {
    "Renamed",      2, sizeof(renamed_t), renamed_encode, renamed_decode,
    renamed_upcast,
};

/* The same payloads, registered without an upcaster. */
static const esc_event_type renamed_no_upcast = {
    "Renamed", 2, sizeof(renamed_t), renamed_encode, renamed_decode, NULL,
};

static const esc_event_type renamed_empty_upcast = {
    "Renamed",    2, sizeof(renamed_t), renamed_encode, renamed_decode,
    empty_upcast,
};

static int failing_encode(const void *event, msgpack_packer *pk) {
  (void)event, (void)pk;
  return -1;
}

/* Two objects where the store wants one. */
static int double_encode(const void *event, msgpack_packer *pk) {
  (void)event;
  return msgpack_pack_nil(pk) || msgpack_pack_nil(pk) ? -1 : 0;
}

static int silent_encode(const void *event, msgpack_packer *pk) {
  (void)event, (void)pk;
  return 0;
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void assert_msg_has(const esc_error *err, const char *part) {
  if (!strstr(err->msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", err->msg, part);
}

static esc_event_registry *registry_of(const esc_event_type *type) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *reg = esc_event_registry_new(&err);
  assert_non_null(reg);
  if (type && esc_event_registry_add(reg, type, &err) != ESC_OK)
    fail_msg("add %s: %s", type->name, err.msg);
  return reg;
}

static esc_recorded_event record(const char *type, int32_t version,
                                 const void *data, size_t len) {
  esc_recorded_event rec;
  memset(&rec, 0, sizeof rec);
  rec.stream_id = "user-1";
  rec.stream_version = 3;
  rec.type = type;
  rec.schema_version = version;
  rec.data = data;
  rec.data_len = len;
  return rec;
}

/* Decodes with a fresh zone; the caller owns and destroys *zone. */
static esc_status decode(const esc_event_registry *reg,
                         const esc_recorded_event *rec, msgpack_zone *zone,
                         renamed_t *out, const esc_event_type **type,
                         esc_error *err) {
  assert_true(msgpack_zone_init(zone, 1024));
  return esc_event_decode(reg, rec, zone, out, type, err);
}

static void assert_str(const char *p, size_t n, const char *want) {
  if (n != strlen(want) || memcmp(p, want, n) != 0)
    fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

/* ------------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------------ */

static void test_registry_add_find(void **state) {
  (void)state;
  enum { N = 40 }; /* enough to make the table grow twice */
  static char names[N][16];
  static esc_event_type types[N];
  esc_event_registry *reg = registry_of(&renamed_type);
  for (int i = 0; i < N; i++) {
    esc_error err = ESC_ERROR_INIT;
    snprintf(names[i], sizeof names[i], "Type%d", i);
    types[i] = renamed_type;
    types[i].name = names[i];
    assert_int_equal(esc_event_registry_add(reg, &types[i], &err), ESC_OK);
  }
  assert_ptr_equal(esc_event_registry_find(reg, "Renamed"), &renamed_type);
  for (int i = 0; i < N; i++)
    assert_ptr_equal(esc_event_registry_find(reg, names[i]), &types[i]);
  assert_null(esc_event_registry_find(reg, "Type40"));
  assert_null(esc_event_registry_find(reg, "renamed"));
  assert_null(esc_event_registry_find(reg, ""));
  assert_null(esc_event_registry_find(reg, NULL));
  assert_null(esc_event_registry_find(NULL, "Renamed"));
  esc_event_registry_free(reg);
  esc_event_registry_free(NULL);
}

static void test_registry_rejects(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int32_t version;
    size_t size;
    bool encode, decode;
    const char *msg;
  } cases[] = {
      {NULL, 1, 8, true, true, "NULL"},
      {"", 1, 8, true, true, "empty"},
      {"1st", 1, 8, true, true, "letter"},
      {"has space", 1, 8, true, true, "has space"},
      {"Good", 0, 8, true, true, "Good: schema version 0"},
      {"Good", -3, 8, true, true, "Good: schema version -3"},
      {"Good", 1, 0, true, true, "Good: size is 0"},
      {"Good", 1, 8, false, true, "Good: encode is NULL"},
      {"Good", 1, 8, true, false, "Good: decode is NULL"},
      {"Renamed", 1, 8, true, true, "Renamed is registered already"},
  };
  esc_event_registry *reg = registry_of(&renamed_type);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    esc_event_type t = {cases[i].name,
                        cases[i].version,
                        cases[i].size,
                        cases[i].encode ? renamed_encode : NULL,
                        cases[i].decode ? renamed_decode : NULL,
                        NULL};
    assert_int_equal(esc_event_registry_add(reg, &t, &err), ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_msg_has(&err, cases[i].msg);
  }
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_event_registry_add(reg, NULL, &err), ESC_EINVAL);
  assert_int_equal(esc_event_registry_add(NULL, &renamed_type, NULL),
                   ESC_EINVAL);
  /* nothing half-added */
  assert_ptr_equal(esc_event_registry_find(reg, "Renamed"), &renamed_type);
  assert_null(esc_event_registry_find(reg, "Good"));
  esc_event_registry_free(reg);
}

/* ------------------------------------------------------------------------
 * Round trips and upcasting
 * ------------------------------------------------------------------------ */

static void test_encode_decode_round_trip(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  renamed_t in = {"ann", 3, "typo \xe2\x9c\x93", 8}, out;
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_event_encode(&renamed_type, &in, &data, &len, &err),
                   ESC_OK);
  assert_non_null(data);

  esc_recorded_event rec = record("Renamed", 2, data, len);
  const esc_event_type *type = NULL;
  msgpack_zone zone;
  memset(&out, 0xaa, sizeof out);
  assert_int_equal(decode(reg, &rec, &zone, &out, &type, &err), ESC_OK);
  assert_ptr_equal(type, &renamed_type);
  assert_str(out.name, out.name_len, "ann");
  assert_str(out.reason, out.reason_len, "typo \xe2\x9c\x93");
  msgpack_zone_destroy(&zone);
  free(data);
  esc_event_registry_free(reg);
}

/* A stored v1 {name} payload, as an older program wrote it. */
static void *v1_payload(const char *name, size_t *len) {
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  assert_int_equal(msgpack_pack_map(&pk, 1) || pack_cstr(&pk, "name") ||
                       pack_cstr(&pk, name),
                   0);
  *len = sbuf.size;
  return msgpack_sbuffer_release(&sbuf);
}

static void test_decode_upcasts_v1(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  size_t len;
  void *data = v1_payload("bob", &len);
  esc_recorded_event rec = record("Renamed", 1, data, len);
  renamed_t out;
  const esc_event_type *type = NULL;
  msgpack_zone zone;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(decode(reg, &rec, &zone, &out, &type, &err), ESC_OK);
  assert_ptr_equal(type, &renamed_type);
  /* The upcaster's bytes are gone; the strings must live in the zone. */
  assert_str(out.name, out.name_len, "bob");
  assert_str(out.reason, out.reason_len, "(none)");
  msgpack_zone_destroy(&zone);
  free(data);
  esc_event_registry_free(reg);
}

static void test_decode_upcast_failures(void **state) {
  (void)state;
  static const struct {
    const esc_event_type *type;
    const char *payload_name; /* NULL: a v1 payload without a name */
    const char *msg;
  } cases[] = {
      {&renamed_no_upcast, "bob", "no upcaster from v1 to v2 for Renamed"},
      {&renamed_type, NULL,
       "upcasting Renamed from v1 to v2: v1 payload "
       "has no name"},
      {&renamed_empty_upcast, "bob",
       "upcaster of Renamed from v1 produced "
       "bad msgpack"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_event_registry *reg = registry_of(cases[i].type);
    size_t len = 1;
    void *data = cases[i].payload_name ? v1_payload(cases[i].payload_name, &len)
                                       : strdup("\x80"); /* {} */
    esc_recorded_event rec = record("Renamed", 1, data, len);
    renamed_t out;
    const esc_event_type *type = &renamed_type;
    msgpack_zone zone;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(decode(reg, &rec, &zone, &out, &type, &err), ESC_EINVAL);
    assert_null(type);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_msg_has(&err, "event user-1@3: ");
    assert_msg_has(&err, cases[i].msg);
    msgpack_zone_destroy(&zone);
    free(data);
    esc_event_registry_free(reg);
  }
}

/* ------------------------------------------------------------------------
 * Bad stored events
 * ------------------------------------------------------------------------ */

static void test_decode_unknown_type(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  esc_recorded_event rec = record("Deleted", 2, "\x80", 1);
  renamed_t out;
  msgpack_zone zone;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(decode(reg, &rec, &zone, &out, NULL, &err), ESC_ENOTFOUND);
  assert_int_equal(err.code, ESC_ENOTFOUND);
  assert_string_equal(err.msg,
                      "event user-1@3: unknown event type \"Deleted\"");
  msgpack_zone_destroy(&zone);
  esc_event_registry_free(reg);
}

/* Each of these would make msgpack-c loop, read past the end or allocate
 * gigabytes (which ASan turns into a crash) if it saw them unchecked. */
static void test_decode_corrupt_bytes(void **state) {
  (void)state;
  static const struct {
    const char *bytes;
    size_t len;
    const char *msg;
  } cases[] = {
      {BYTES("\xc1"), "0xc1"},
      {BYTES("\x82\xa4name\xa3"
             "ann\xa6reason\xa3ty"),
       "remain"}, /* cut short */
      {BYTES("\xdd\xff\xff\xff\xff"), "array32"},
      {BYTES("\xdf\xff\xff\xff\xff"), "map32"},
      {BYTES("\xdb\xff\xff\xff\xff"), "str32"},
      {BYTES("\x80\x80"), "more bytes follow"},
      {BYTES(""), "empty"},
  };
  esc_event_registry *reg = registry_of(&renamed_type);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_recorded_event rec = record("Renamed", 2, cases[i].bytes, cases[i].len);
    renamed_t out;
    msgpack_zone zone;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(decode(reg, &rec, &zone, &out, NULL, &err), ESC_EINVAL);
    assert_msg_has(&err, "event user-1@3: Renamed v2: msgpack");
    assert_msg_has(&err, cases[i].msg);
    msgpack_zone_destroy(&zone);
  }
  esc_event_registry_free(reg);
}

static void test_decode_wrong_shape(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  esc_recorded_event rec = record("Renamed", 2, "\x2a", 1); /* 42 */
  renamed_t out;
  msgpack_zone zone;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(decode(reg, &rec, &zone, &out, NULL, &err), ESC_EINVAL);
  assert_string_equal(err.msg, "event user-1@3: decoding Renamed v2: want "
                               "{name: str, reason: str}");
  msgpack_zone_destroy(&zone);
  esc_event_registry_free(reg);
}

static void test_decode_bad_schema_versions(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  static const struct {
    int32_t version;
    const char *msg;
  } cases[] = {
      {3, "Renamed v3 was written by a newer program; this one reads up to "
          "v2"},
      {0, "Renamed has schema version 0"},
      {-1, "Renamed has schema version -1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_recorded_event rec = record("Renamed", cases[i].version, "\x80", 1);
    renamed_t out;
    msgpack_zone zone;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(decode(reg, &rec, &zone, &out, NULL, &err), ESC_EINVAL);
    assert_msg_has(&err, "event user-1@3: ");
    assert_msg_has(&err, cases[i].msg);
    msgpack_zone_destroy(&zone);
  }
  esc_event_registry_free(reg);
}

static void test_decode_null_arguments(void **state) {
  (void)state;
  esc_event_registry *reg = registry_of(&renamed_type);
  esc_recorded_event rec = record("Renamed", 2, NULL, 4);
  renamed_t out;
  msgpack_zone zone;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(decode(reg, &rec, &zone, &out, NULL, &err), ESC_EINVAL);
  assert_int_equal(esc_event_decode(reg, NULL, &zone, &out, NULL, NULL),
                   ESC_EINVAL);
  assert_int_equal(esc_event_decode(NULL, &rec, &zone, &out, NULL, NULL),
                   ESC_EINVAL);
  assert_int_equal(esc_event_decode(reg, &rec, &zone, NULL, NULL, NULL),
                   ESC_EINVAL);
  msgpack_zone_destroy(&zone);
  esc_event_registry_free(reg);
}

/* ------------------------------------------------------------------------
 * Encoding failures
 * ------------------------------------------------------------------------ */

static void test_encode_failures(void **state) {
  (void)state;
  static const struct {
    int (*encode)(const void *, msgpack_packer *);
    const char *msg;
  } cases[] = {
      {failing_encode, "encoding event type Broken failed"},
      {double_encode, "encoding event type Broken: the encoder packed bad "
                      "msgpack"},
      {silent_encode, "empty"},
  };
  renamed_t in = {"a", 1, "b", 1};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_event_type t = {"Broken",       1,   sizeof in, cases[i].encode,
                        renamed_decode, NULL};
    void *data = (void *)&in;
    size_t len = 99;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_event_encode(&t, &in, &data, &len, &err), ESC_EINVAL);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_msg_has(&err, cases[i].msg);
  }
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(esc_event_encode(&renamed_type, NULL, &data, &len, NULL),
                   ESC_EINVAL);
  assert_int_equal(esc_event_encode(NULL, &in, &data, &len, NULL), ESC_EINVAL);
  assert_int_equal(esc_event_encode(&renamed_type, &in, NULL, &len, NULL),
                   ESC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_registry_add_find),
      cmocka_unit_test(test_registry_rejects),
      cmocka_unit_test(test_encode_decode_round_trip),
      cmocka_unit_test(test_decode_upcasts_v1),
      cmocka_unit_test(test_decode_upcast_failures),
      cmocka_unit_test(test_decode_unknown_type),
      cmocka_unit_test(test_decode_corrupt_bytes),
      cmocka_unit_test(test_decode_wrong_shape),
      cmocka_unit_test(test_decode_bad_schema_versions),
      cmocka_unit_test(test_decode_null_arguments),
      cmocka_unit_test(test_encode_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests: declared fields (<esc/event.h>, events/src/fields*.c). Round
 * trips of every kind of field with nested arrays, optional fields left
 * out, each check's message on encode and on decode, and hostile bytes
 * (truncated, wrong types, huge declared lengths and counts, deep
 * nesting) refused with a message and no crash.
 */
#include "declared.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const unsigned char blob[] = {0, 1, 2, 0xff, 'x'};

/* Every field set, both levels of arrays filled. */
static sink_event full(void) {
  sink_event e = {.text = "hello",
                  .note = "12345678",
                  .n = -42,
                  .opt_n = INT64_MAX,
                  .flag = true,
                  .at = 1767225600123456,
                  .blob = blob,
                  .blob_len = sizeof blob,
                  .item_count = 2};
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_uuid_parse("0f8fad5b-d9cb-469f-a165-70867728950e", &e.id, &err),
      ESC_OK);
  assert_int_equal(
      esc_uuid_parse("7c9e6679-7425-40de-944b-e07fc1f90ae7", &e.ref, &err),
      ESC_OK);
  e.items[0] = (sink_item){"sku-1", true, {{"red", 1}, {"big", -2}}, 2};
  e.items[1] = (sink_item){.sku = "sku-2"};
  return e;
}

static esc_status decode(const void *data, size_t len, msgpack_zone *zone,
                         sink_event *out, esc_error *err) {
  return sink_decode(data, len, zone, out, err);
}

/* Decodes JSON (as msgpack) into *out; bytes fields are gone after. */
static esc_status decode_json(const char *json, sink_event *out,
                              esc_error *err) {
  void *data = NULL;
  size_t len = 0;
  msgpack_zone zone;
  assert_int_equal(esc_json_to_msgpack(json, &data, &len, err), ESC_OK);
  assert_true(msgpack_zone_init(&zone, 1024));
  esc_status st = decode(data, len, &zone, out, err);
  free(data);
  msgpack_zone_destroy(&zone);
  return st;
}

/* The JSON of e as SinkEvent encodes it. */
static char *json_of(const sink_event *e) {
  esc_error err = ESC_ERROR_INIT;
  char *json = NULL;
  assert_int_equal(esc_event_to_json(&SINK_EVENT, e, &json, &err), ESC_OK);
  return json;
}

static void assert_has(const char *msg, const char *part) {
  if (!strstr(msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

static void test_round_trip(void **state) {
  (void)state;
  sink_event in = full(), out;
  esc_error err = ESC_ERROR_INIT;
  void *data = NULL, *again = NULL;
  size_t len = 0, again_len = 0;
  msgpack_zone zone;
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(esc_event_encode(&SINK_EVENT, &in, &data, &len, &err),
                   ESC_OK);
  assert_int_equal(decode(data, len, &zone, &out, &err), ESC_OK);
  assert_string_equal(out.text, "hello");
  assert_string_equal(out.note, "12345678");
  assert_int_equal(out.n, -42);
  assert_int_equal(out.opt_n, INT64_MAX);
  assert_true(out.flag);
  assert_memory_equal(&out.id, &in.id, sizeof in.id);
  assert_memory_equal(&out.ref, &in.ref, sizeof in.ref);
  assert_int_equal(out.at, 1767225600123456);
  assert_int_equal(out.blob_len, sizeof blob);
  assert_memory_equal(out.blob, blob, sizeof blob);
  /* Bytes point into the payload, not into the struct. */
  assert_true((const char *)out.blob >= (const char *)data &&
              (const char *)out.blob < (const char *)data + len);
  assert_int_equal(out.item_count, 2);
  assert_string_equal(out.items[0].sku, "sku-1");
  assert_true(out.items[0].gift);
  assert_int_equal(out.items[0].tag_count, 2);
  assert_string_equal(out.items[0].tags[1].name, "big");
  assert_int_equal(out.items[0].tags[1].weight, -2);
  assert_string_equal(out.items[1].sku, "sku-2");
  assert_int_equal(out.items[1].tag_count, 0);
  /* And back to the same bytes. */
  assert_int_equal(
      esc_event_encode(&SINK_EVENT, &out, &again, &again_len, &err), ESC_OK);
  assert_int_equal(again_len, len);
  assert_memory_equal(again, data, len);
  free(again);
  free(data);
  msgpack_zone_destroy(&zone);
}

/* The wire format: table order, UUIDs as strings, times as integers,
 * bytes as bin. */
static void test_format(void **state) {
  (void)state;
  sink_event e = full();
  char *json = json_of(&e);
  assert_string_equal(
      json, "{\"text\":\"hello\",\"note\":\"12345678\",\"n\":-42,"
            "\"opt_n\":9223372036854775807,\"flag\":true,"
            "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
            "\"ref\":\"7c9e6679-7425-40de-944b-e07fc1f90ae7\","
            "\"at\":1767225600123456,\"blob\":{\"$bin\":\"000102ff78\"},"
            "\"items\":[{\"sku\":\"sku-1\",\"gift\":true,\"tags\":["
            "{\"name\":\"red\",\"weight\":1},{\"name\":\"big\",\"weight\":-2}"
            "]},{\"sku\":\"sku-2\"}]}");
  free(json);
}

/* Optional fields holding zero are left out; absent or nil they read as
 * zero; required ones are written even when zero. */
static void test_optional(void **state) {
  (void)state;
  sink_event e = {.text = ""};
  char *json = json_of(&e);
  assert_string_equal(json, "{\"text\":\"\",\"n\":0,\"flag\":false,\"id\":"
                            "\"00000000-0000-0000-0000-000000000000\","
                            "\"at\":0,\"items\":[]}");
  free(json);
  static const char *const inputs[] = {
      "{\"text\":\"t\",\"n\":1,\"flag\":false,\"id\":"
      "\"00000000-0000-0000-0000-000000000000\",\"at\":0,\"items\":[{\"sku\":"
      "\"s\"}]}",
      "{\"text\":\"t\",\"note\":null,\"n\":1,\"opt_n\":null,\"flag\":false,"
      "\"id\":\"00000000-0000-0000-0000-000000000000\",\"ref\":null,\"at\":0,"
      "\"blob\":null,\"items\":[{\"sku\":\"s\",\"gift\":null,\"tags\":null}],"
      "\"unknown\":[1,2,3]}",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    sink_event out;
    assert_int_equal(decode_json(inputs[i], &out, &err), ESC_OK);
    assert_string_equal(out.note, "");
    assert_int_equal(out.opt_n, 0);
    assert_true(esc_uuid_is_nil(&out.ref));
    assert_null(out.blob);
    assert_int_equal(out.blob_len, 0);
    assert_int_equal(out.item_count, 1);
    assert_false(out.items[0].gift);
    assert_int_equal(out.items[0].tag_count, 0);
  }
}

/* ------------------------------------------------------------------------
 * Checks on encode
 * ------------------------------------------------------------------------ */

static void test_encode_errors(void **state) {
  (void)state;
  static const char *const msgs[] = {
      "SinkEvent: \"text\" must be a string of at most 31 bytes but is not "
      "NUL-terminated in its 32-byte array",
      "SinkEvent: \"note\" must be a string of at most 8 bytes but has 9",
      "SinkEvent: \"blob\" must be binary of at most 16 bytes but has 17",
      "SinkEvent: \"blob\" must be binary of at most 16 bytes but is NULL "
      "with length 1",
      "SinkEvent: \"items\" must be an array of at most 4 items but has 5 "
      "items",
      "SinkEvent: \"items\" must be an array of at most 4 items but has -1 "
      "items",
      "SinkEvent: \"items\"[1].\"tags\"[0].\"name\" must be a string of at "
      "most 7 bytes but is not NUL-terminated in its 8-byte array",
  };
  sink_event cases[sizeof msgs / sizeof msgs[0]];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cases[i] = full();
  memset(cases[0].text, 'x', sizeof cases[0].text);
  memcpy(cases[1].note, "123456789", 10);
  cases[2].blob_len = 17;
  cases[3].blob = NULL;
  cases[3].blob_len = 1;
  cases[4].item_count = 5;
  cases[5].item_count = -1;
  cases[6].items[1].tag_count = 1;
  memset(cases[6].items[1].tags[0].name, 'n', 8);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    void *data = (void *)1;
    size_t len = 1;
    print_message("case: %s\n", msgs[i]);
    assert_int_equal(esc_fields_validate(&sink_event_fields, &cases[i], &err),
                     ESC_EINVAL);
    assert_string_equal(err.msg, msgs[i]);
    err = (esc_error)ESC_ERROR_INIT;
    assert_int_equal(
        esc_event_encode(&SINK_EVENT, &cases[i], &data, &len, &err),
        ESC_EINVAL);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_string_equal(err.msg, msgs[i]);
  }
}

/* ------------------------------------------------------------------------
 * Checks on decode
 * ------------------------------------------------------------------------ */

#define ID "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\""

static void test_decode_errors(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *msg;
  } cases[] = {
      {"[1]", "SinkEvent: the payload is not a map but an array"},
      {"{\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"text\" must be a string of at most 31 bytes but is "
       "missing"},
      {"{\"text\":null,\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"text\" must be a string of at most 31 bytes but is nil"},
      {"{\"text\":5,\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"text\" must be a string of at most 31 bytes but is an "
       "integer"},
      {"{\"text\":\"0123456789012345678901234567890123\",\"n\":1,\"flag\":"
       "true," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"text\" must be a string of at most 31 bytes but has 34"},
      {"{\"text\":\"a\\u0000b\",\"n\":1,\"flag\":true," ID
       ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"text\" must be a string of at most 31 bytes but holds a "
       "NUL byte"},
      {"{\"text\":\"t\",\"note\":\"123456789\",\"n\":1,\"flag\":true," ID
       ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"note\" must be a string of at most 8 bytes but has 9"},
      {"{\"text\":\"t\",\"n\":1.5,\"flag\":true," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"n\" must be an integer but is a float"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":1," ID ",\"at\":0,\"items\":[]}",
       "SinkEvent: \"flag\" must be a boolean but is an integer"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true,\"id\":\"x\",\"at\":0,"
       "\"items\":[]}",
       "SinkEvent: \"id\" must be a UUID string but has 1 bytes, not 36"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true,\"id\":\"0f8fad5b-d9cb-469f-"
       "a165-70867728950g\",\"at\":0,\"items\":[]}",
       "SinkEvent: \"id\" must be a UUID string but is not one"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":\"now\","
       "\"items\":[]}",
       "SinkEvent: \"at\" must be an integer but is a string"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"blob\":\"ab\","
       "\"items\":[]}",
       "SinkEvent: \"blob\" must be binary of at most 16 bytes but is a "
       "string"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0}",
       "SinkEvent: \"items\" must be an array of at most 4 items but is "
       "missing"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":{}}",
       "SinkEvent: \"items\" must be an array of at most 4 items but is a "
       "map"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":"
       "[{},{},{},{},{}]}",
       "SinkEvent: \"items\" must be an array of at most 4 items but has 5 "
       "items"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":"
       "[{\"sku\":\"a\"},7]}",
       "SinkEvent: \"items\"[1] must be a map but is an integer"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":"
       "[{}]}",
       "SinkEvent: \"items\"[0].\"sku\" must be a string of at most 15 bytes "
       "but is missing"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":"
       "[{\"sku\":\"a\",\"tags\":[{\"name\":\"ok\",\"weight\":1},{\"name\":"
       "\"toolong!\",\"weight\":1}]}]}",
       "SinkEvent: \"items\"[0].\"tags\"[1].\"name\" must be a string of at "
       "most 7 bytes but has 8"},
      {"{\"text\":\"t\",\"n\":1,\"flag\":true," ID ",\"at\":0,\"items\":"
       "[{\"sku\":\"a\",\"tags\":[{\"name\":\"x\",\"weight\":1},{},{},{}]}]}",
       "SinkEvent: \"items\"[0].\"tags\" must be an array of at most 3 items "
       "but has 4 items"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    sink_event out;
    print_message("case: %s\n", cases[i].json);
    assert_int_equal(decode_json(cases[i].json, &out, &err), ESC_EINVAL);
    /* esc_event_decode names the event in front. */
    assert_has(err.msg, "event sink-1@3: decoding SinkEvent v1: ");
    assert_has(err.msg, cases[i].msg);
  }
}

/* Where needle is in data (it must be there). */
static unsigned char *find(void *data, size_t len, const char *needle,
                           size_t n) {
  unsigned char *d = data;
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(d + i, needle, n) == 0)
      return d + i;
  fail_msg("fixture bytes not found");
  return NULL;
}

/* What JSON cannot express: bin that is too long, an integer above
 * INT64_MAX. */
static void test_decode_packed_errors(void **state) {
  (void)state;
  static const unsigned char bytes[16] = {0};
  /* A full payload whose blob is 17 bytes and whose n is 2^64 - 1. */
  sink_event e = full();
  e.blob = bytes;
  e.blob_len = 16;
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_event_encode(&SINK_EVENT, &e, &data, &len, &err),
                   ESC_OK);
  /* "blob" is bin8 (0xc4, 16): make it 17 and add a byte. */
  unsigned char *p = find(data, len,
                          "\xa4"
                          "blob\xc4\x10",
                          7);
  assert_non_null(p);
  size_t at = (size_t)(p - (unsigned char *)data) + 7;
  unsigned char *grown = malloc(len + 1);
  memcpy(grown, data, at);
  grown[at - 1] = 17;
  grown[at] = 0;
  memcpy(grown + at + 1, (unsigned char *)data + at, len - at);
  msgpack_zone zone;
  sink_event out;
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(decode(grown, len + 1, &zone, &out, &err), ESC_EINVAL);
  assert_has(err.msg, "\"blob\" must be binary of at most 16 bytes but has 17");
  msgpack_zone_destroy(&zone);
  free(grown);
  /* "n":-42 is 0xa1 'n' 0xd0 0xd6; as uint64 max: 0xcf and 8 x 0xff. */
  p = find(data, len, "\xa1n\xd0\xd6", 4);
  assert_non_null(p);
  at = (size_t)(p - (unsigned char *)data) + 2;
  grown = malloc(len + 7);
  memcpy(grown, data, at);
  grown[at] = 0xcf;
  memset(grown + at + 1, 0xff, 8);
  memcpy(grown + at + 9, (unsigned char *)data + at + 2, len - at - 2);
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(decode(grown, len + 7, &zone, &out, &err), ESC_EINVAL);
  assert_has(err.msg, "\"n\" must be an integer but is 18446744073709551615, "
                      "above 2^63 - 1");
  msgpack_zone_destroy(&zone);
  free(grown);
  free(data);
}

/* ------------------------------------------------------------------------
 * Hostile bytes
 * ------------------------------------------------------------------------ */

/* Every proper prefix of a valid payload is refused with a message. */
static void test_truncated(void **state) {
  (void)state;
  sink_event e = full(), out;
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_event_encode(&SINK_EVENT, &e, &data, &len, &err),
                   ESC_OK);
  for (size_t cut = 0; cut < len; cut++) {
    msgpack_zone zone;
    err = (esc_error)ESC_ERROR_INIT;
    assert_true(msgpack_zone_init(&zone, 1024));
    assert_int_equal(decode(data, cut, &zone, &out, &err), ESC_EINVAL);
    assert_true(err.msg[0] != '\0');
    msgpack_zone_destroy(&zone);
  }
  free(data);
}

static void test_hostile(void **state) {
  (void)state;
  static const struct {
    const char *bytes;
    size_t len;
    const char *msg;
  } cases[] = {
      /* str32 declaring 4 GiB */
      {"\x81\xa4text\xdb\xff\xff\xff\xff", 11, "declares 4294967295 bytes"},
      /* array32 and map32 declaring 4 billion items */
      {"\x81\xa5items\xdd\xff\xff\xff\xff", 12, "declares"},
      {"\xdf\xff\xff\xff\xff", 5, "declares"},
      /* bin32 declaring 4 GiB */
      {"\x81\xa4\x62lob\xc6\xff\xff\xff\xff", 11, "declares 4294967295 bytes"},
      /* nesting beyond the checker's depth */
      {"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
       "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
       "\x91\x91\x90",
       35, "nests 33 deep; the limit is 32"},
      /* deep but within it, where the table wants a map */
      {"\x91\x91\x91\x90", 4, "the payload is not a map but an array"},
      /* the never-used byte, and trailing bytes */
      {"\xc1", 1, "0xc1"},
      {"\x80\x80", 2, "1 more bytes follow"},
      /* nil and an extension as the payload */
      {"\xc0", 1, "the payload is not a map but nil"},
      {"\xd4\x01\x00", 3, "the payload is not a map but an extension"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    msgpack_zone zone;
    sink_event out;
    esc_error err = ESC_ERROR_INIT;
    print_message("case %zu: %s\n", i, cases[i].msg);
    assert_true(msgpack_zone_init(&zone, 1024));
    assert_int_equal(decode(cases[i].bytes, cases[i].len, &zone, &out, &err),
                     ESC_EINVAL);
    print_message("  -> %s\n", err.msg);
    assert_has(err.msg, cases[i].msg);
    msgpack_zone_destroy(&zone);
  }
}

/* A hand-built table nesting deeper than ESC_FIELDS_MAX_DEPTH is refused
 * when the input gets there, not followed. */
typedef struct node {
  struct node_inner {
    int count;
    char pad[60];
  } kids[1];
  int count;
} node;

static const esc_field node_table[] = {{.name = "k",
                                        .kind = ESC_FIELD_KIND_ARRAY,
                                        .presence = ESC_OPTIONAL,
                                        .offset = 0,
                                        .size = sizeof(struct node_inner),
                                        .max = 1,
                                        .count_offset = 0,
                                        .item = node_table,
                                        .item_size = sizeof(struct node_inner)},
                                       ESC_FIELD_END};

static void test_table_depth(void **state) {
  (void)state;
  const esc_fields f = {"Deep", sizeof(struct node_inner), node_table};
  /* {"k":[{"k":[ ... ]}]} ten levels deep */
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  for (int i = 0; i < 10; i++) {
    msgpack_pack_map(&pk, 1);
    esc_pack_key(&pk, "k");
    msgpack_pack_array(&pk, 1);
  }
  msgpack_pack_map(&pk, 0);
  msgpack_zone zone;
  msgpack_object obj;
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(msgpack_unpack(sbuf.data, sbuf.size, NULL, &zone, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  node out;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_fields_unpack(&f, &obj, &out, &err), ESC_EINVAL);
  assert_has(err.msg, "nests deeper than 8 arrays");
  assert_has(err.msg, "Deep: \"k\"[0].\"k\"[0].");
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&sbuf);
}

/* The upcasting helper adds a key, keeps one already there, and refuses
 * what is not a map. */
static void test_upcast_add_str(void **state) {
  (void)state;
  static const char *const in[] = {"{\"a\":1}", "{\"a\":1,\"c\":\"GBP\"}",
                                   "[1]"};
  static const char *const want[] = {"{\"a\":1,\"c\":\"EUR\"}",
                                     "{\"a\":1,\"c\":\"GBP\"}", NULL};
  for (size_t i = 0; i < 3; i++) {
    esc_error err = ESC_ERROR_INIT;
    void *data = NULL;
    size_t len = 0;
    char *json = NULL;
    msgpack_zone zone;
    msgpack_object obj;
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    assert_int_equal(esc_json_to_msgpack(in[i], &data, &len, &err), ESC_OK);
    assert_true(msgpack_zone_init(&zone, 256));
    assert_int_equal(msgpack_unpack(data, len, NULL, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    esc_status st = esc_upcast_add_str(&obj, &pk, "c", "EUR", &err);
    if (want[i]) {
      assert_int_equal(st, ESC_OK);
      assert_int_equal(
          esc_msgpack_to_json(sbuf.data, sbuf.size, NULL, &json, &err), ESC_OK);
      assert_string_equal(json, want[i]);
    } else {
      assert_int_equal(st, ESC_EINVAL);
      assert_has(err.msg, "not a map");
    }
    free(json);
    msgpack_sbuffer_destroy(&sbuf);
    msgpack_zone_destroy(&zone);
    free(data);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_optional),
      cmocka_unit_test(test_encode_errors),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_decode_packed_errors),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_table_depth),
      cmocka_unit_test(test_upcast_add_str),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

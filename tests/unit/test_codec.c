/*
 * Unit tests: the msgpack checker, msgpack <-> JSON, metadata
 * (eventstore/src/codec_*.c).
 */
#include <esc/store.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

/* Byte strings with embedded NULs: the literal and its length. */
#define BYTES(s) s, sizeof(s) - 1

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void *to_msgpack(const char *json, size_t *len) {
  void *mp = NULL;
  esc_error err = ESC_ERROR_INIT;
  if (esc_json_to_msgpack(json, &mp, len, &err) != ESC_OK)
    fail_msg("esc_json_to_msgpack(%s): %s", json, err.msg);
  assert_non_null(mp);
  return mp;
}

static char *to_json(const void *data, size_t len) {
  char *json = NULL;
  esc_error err = ESC_ERROR_INIT;
  if (esc_msgpack_to_json(data, len, NULL, &json, &err) != ESC_OK)
    fail_msg("esc_msgpack_to_json: %s", err.msg);
  assert_non_null(json);
  return json;
}

static void assert_msg_has(const esc_error *err, const char *part) {
  if (!strstr(err->msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", err->msg, part);
}

/* ------------------------------------------------------------------------
 * JSON -> msgpack -> JSON
 * ------------------------------------------------------------------------ */

static void test_json_round_trips(void **state) {
  (void)state;
  static const struct {
    const char *in;
    const char *out; /* NULL: same as in */
  } cases[] = {
      {"{}", NULL},
      {"[]", NULL},
      {"null", NULL},
      {"true", NULL},
      {"false", NULL},
      {"0", NULL},
      {"-1", NULL},
      {"\"\"", NULL},
      {"\"x\"", NULL},
      {"{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":{\"e\":{\"f\":[[],{}]}}}",
       NULL},
      {"{\"z\":1,\"a\":2,\"m\":3}", NULL}, /* key order kept */
      {"{\"name\":\"J\xc3\xbcrgen \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac "
       "\xf0\x9f\x98\x80\"}",
       NULL},
      {"\"\\u00fc\\u2713\\ud83d\\ude00\"",
       "\"\xc3\xbc\xe2\x9c\x93\xf0\x9f\x98\x80\""},
      {"\"tab\\t nl\\n quote\\\" back\\\\ slash/ nul\\u0000 end\"", NULL},
      {"9223372036854775807", NULL},
      {"-9223372036854775808", NULL},
      {"[127,128,255,256,65535,65536,4294967295,4294967296,-32,-33,-128,"
       "-129,-32768,-32769,-2147483648,-2147483649]",
       NULL},
      {"[0.1,1.5,-2.25,1.0,-0.0,100.0,3.141592653589793]", NULL},
      {"[1e300,1e-7,-1.5e-300]", NULL},
      /* One precision serves the whole document (see codec_json.c). */
      {"[0.30000000000000004,1e300]",
       "[0.30000000000000004,1.0000000000000001e300]"},
      {"1E+2", "100.0"},
      {"  {\n \"a\" : [ 1 , 2 ]\n}\n", "{\"a\":[1,2]}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = 0;
    void *mp = to_msgpack(cases[i].in, &len);
    assert_int_equal(esc_msgpack_check(mp, len, NULL, NULL), ESC_OK);
    char *json = to_json(mp, len);
    const char *want = cases[i].out ? cases[i].out : cases[i].in;
    if (strcmp(json, want) != 0)
      fail_msg("case %zu: got %s, want %s", i, json, want);
    free(json);
    free(mp);
  }
}

/* Integers are packed in their smallest form, reals as float64. */
static void test_json_to_msgpack_bytes(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *mp;
    size_t len;
  } cases[] = {
      {"1", BYTES("\x01")},
      {"-1", BYTES("\xff")},
      {"200", BYTES("\xcc\xc8")},
      {"-200", BYTES("\xd1\xff\x38")},
      {"1.5", BYTES("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00")},
      {"{\"a\":[true,false,null]}", BYTES("\x81\xa1\x61\x93\xc3\xc2\xc0")},
      {"\"a\\u0000b\"", BYTES("\xa3\x61\x00\x62")},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = 0;
    void *mp = to_msgpack(cases[i].json, &len);
    assert_int_equal(len, cases[i].len);
    assert_memory_equal(mp, cases[i].mp, len);
    free(mp);
  }
}

static void test_json_errors(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *msg_part;
  } cases[] = {
      {"", "JSON at line 1, column"},
      {"{\"a\":1,}", "JSON at line 1, column 8: "},
      {"{\n  \"a\": tru\n}", "JSON at line 2, column"},
      {"{\"a\":1,\"a\":2}", "duplicate object key"},
      {"18446744073709551616", "too big integer"},
      {"[1] [2]", "end of file expected"},
      {"\"\xc3\x28\"", "JSON at line 1"},
      {"'x'", "JSON at line 1, column 1"},
      /* jansson allows NUL in strings but not in object keys */
      {"{\"k\\u0000ey\":1}", "NUL byte in object key not supported"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *mp = (void *)1;
    size_t len = 7;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_json_to_msgpack(cases[i].json, &mp, &len, &err),
                     ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_null(mp);
    assert_int_equal(len, 0);
    assert_msg_has(&err, cases[i].msg_part);
  }
  void *mp;
  size_t len;
  assert_int_equal(esc_json_to_msgpack(NULL, &mp, &len, NULL), ESC_EINVAL);
}

/* ------------------------------------------------------------------------
 * msgpack -> JSON for what JSON lacks
 * ------------------------------------------------------------------------ */

static void test_msgpack_to_json_special(void **state) {
  (void)state;
  static const struct {
    const char *mp;
    size_t len;
    const char *json;
  } cases[] = {
      {BYTES("\xc4\x03\x01\x02\xff"), "{\"$bin\":\"0102ff\"}"},
      {BYTES("\xc4\x00"), "{\"$bin\":\"\"}"},
      {BYTES("\xc5\x00\x01\xab"), "{\"$bin\":\"ab\"}"},
      {BYTES("\xd4\x05\xaa"), "{\"$ext\":5,\"hex\":\"aa\"}"},
      {BYTES("\xc7\x02\xff\x01\x02"), "{\"$ext\":-1,\"hex\":\"0102\"}"},
      {BYTES("\xd8\x01\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c"
             "\x0d\x0e\x0f"),
       "{\"$ext\":1,\"hex\":\"000102030405060708090a0b0c0d0e0f\"}"},
      {BYTES("\xa2\xc3\x28"), "{\"$bin\":\"c328\"}"},       /* not UTF-8 */
      {BYTES("\xa3\xed\xa0\x80"), "{\"$bin\":\"eda080\"}"}, /* surrogate */
      {BYTES("\xa3\x61\x00\x62"), "\"a\\u0000b\""},
      {BYTES("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
       "\"18446744073709551615\""},
      {BYTES("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), "9223372036854775807"},
      {BYTES("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), "-9223372036854775808"},
      {BYTES("\xca\x3d\xcc\xcc\xcd"), "0.1"}, /* float32 0.1 */
      {BYTES("\xca\x3f\xc0\x00\x00"), "1.5"},
      {BYTES("\xca\x7f\xc0\x00\x00"), "null"},                 /* float32 NaN */
      {BYTES("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "null"}, /* NaN */
      {BYTES("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"), "null"}, /* +Inf */
      {BYTES("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00"), "null"}, /* -Inf */
      {BYTES("\x92\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a\xcb\x7f\xf8\x00\x00"
             "\x00\x00\x00\x00"),
       "[0.1,null]"},
      /* Keys that are not strings show as their JSON text. */
      {BYTES("\x84\x01\xa1\x61\xc0\xc2\xc3\x01\xd0\x80\x02"),
       "{\"1\":\"a\",\"null\":false,\"true\":1,\"-128\":2}"},
      {BYTES("\x81\xc4\x01\xff\x01"), "{\"{\\\"$bin\\\":\\\"ff\\\"}\":1}"},
      {BYTES("\x81\x92\x01\x02\x03"), "{\"[1,2]\":3}"},
      {BYTES("\x81\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x01"), "{\"1.5\":1}"},
      {BYTES("\x81\xa2\xc3\x28\x01"), "{\"{\\\"$bin\\\":\\\"c328\\\"}\":1}"},
      {BYTES("\x80"), "{}"},
      {BYTES("\xde\x00\x00"), "{}"},
      {BYTES("\xdd\x00\x00\x00\x00"), "[]"},
      {BYTES("\xdc\x00\x02\xe0\x7f"), "[-32,127]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *json = to_json(cases[i].mp, cases[i].len);
    if (strcmp(json, cases[i].json) != 0)
      fail_msg("case %zu: got %s, want %s", i, json, cases[i].json);
    free(json);
  }
}

static void test_msgpack_to_json_duplicate_keys(void **state) {
  (void)state;
  char *json = (char *)1;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_msgpack_to_json(BYTES("\x82\xa1\x61\x01\xa1\x61\x02"),
                                       NULL, &json, &err),
                   ESC_EINVAL);
  assert_null(json);
  assert_msg_has(&err, "key \"a\" twice");
  /* 1 and "1" render to the same key. */
  assert_int_equal(
      esc_msgpack_to_json(BYTES("\x82\x01\x01\xa1\x31\x02"), NULL, &json, &err),
      ESC_EINVAL);
  assert_null(json);
}

/* ------------------------------------------------------------------------
 * Hostile and malformed msgpack
 * ------------------------------------------------------------------------ */

struct bad_case {
  const char *mp;
  size_t len;
  esc_decode_limits limits; /* zeros: defaults */
  const char *msg_part;
};

static void expect_einval(size_t i, const void *mp, size_t len,
                          const esc_decode_limits *limits,
                          const char *msg_part) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_msgpack_check(mp, len, limits, &err) != ESC_EINVAL)
    fail_msg("case %zu: check accepted it", i);
  assert_int_equal(err.code, ESC_EINVAL);
  if (!strstr(err.msg, msg_part))
    fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, msg_part);
  /* to_json checks first and fails the same way, allocating nothing. */
  char *json = (char *)1;
  esc_error err2 = ESC_ERROR_INIT;
  assert_int_equal(esc_msgpack_to_json(mp, len, limits, &json, &err2),
                   ESC_EINVAL);
  assert_null(json);
  assert_string_equal(err.msg, err2.msg);
  /* Metadata decoding checks with the default limits. */
  esc_metadata m;
  if (!limits->max_bytes && !limits->max_depth && !limits->max_elements)
    assert_int_equal(esc_metadata_decode(mp, len, &m, NULL, 0, NULL),
                     ESC_EINVAL);
}

static void test_hostile_inputs(void **state) {
  (void)state;
  static const struct bad_case cases[] = {
      {BYTES("\xdd\xff\xff\xff\xff"),
       {0, 0, 0},
       "msgpack: array32 at byte 0 declares 4294967295 elements but 0 bytes "
       "remain"},
      {BYTES("\xdf\xff\xff\xff\xff"),
       {0, 0, 0},
       "msgpack: map32 at byte 0 declares 4294967295 entries but 0 bytes "
       "remain"},
      {BYTES("\xdb\xff\xff\xff\xff"),
       {0, 0, 0},
       "msgpack: str32 at byte 0 declares 4294967295 bytes but 0 remain"},
      {BYTES("\xc6\xff\xff\xff\xff"),
       {0, 0, 0},
       "msgpack: bin32 at byte 0 declares 4294967295 bytes but 0 remain"},
      {BYTES("\xc9\xff\xff\xff\xff\x01"),
       {0, 0, 0},
       "msgpack: ext32 at byte 0 declares 4294967295 bytes but 0 remain"},
      {BYTES("\x93\x01\x02\xdb\xff\xff\xff\xff\x61\x62\x63"),
       {0, 0, 0},
       "msgpack: str32 at byte 3 declares 4294967295 bytes but 3 remain"},
      {BYTES("\xdc\xff\xff\x01\x02"),
       {0, 0, 0},
       "array16 at byte 0 declares 65535 elements but 2 bytes remain"},
      {BYTES("\x82\x01\x02\x03"),
       {0, 0, 0},
       "fixmap at byte 0 declares 2 entries but 3 bytes remain"},
      /* truncated */
      {BYTES("\x92\x01"),
       {0, 0, 0},
       "fixarray at byte 0 declares 2 elements but 1 bytes remain"},
      {BYTES("\x92\x91\x01"),
       {0, 0, 0},
       "input ends at byte 3 inside the fixarray at byte 0, which expects 1 "
       "more objects"},
      {BYTES("\x91\x81\xa1\x61"),
       {0, 0, 0},
       "input ends at byte 4 inside the fixmap at byte 1"},
      {BYTES("\xcd\x01"),
       {0, 0, 0},
       "uint16 at byte 0 is cut off: it needs 2 more bytes but 1 remain"},
      {BYTES("\x91\xcb\x00\x00"), {0, 0, 0}, "float64 at byte 1 is cut off"},
      {BYTES("\xdc\x00"), {0, 0, 0}, "array16 at byte 0 is cut off"},
      {BYTES("\xdb\x00\x00"), {0, 0, 0}, "str32 at byte 0 is cut off"},
      {BYTES("\xc7\x01"), {0, 0, 0}, "ext8 at byte 0 is cut off"},
      {BYTES("\xd6\x01\x02"), {0, 0, 0}, "fixext4 at byte 0 is cut off"},
      {BYTES("\xa5\x61\x62\x63"),
       {0, 0, 0},
       "fixstr at byte 0 declares 5 bytes but 3 remain"},
      /* trailing bytes */
      {BYTES("\x01\x02"),
       {0, 0, 0},
       "the object ends at byte 1 but 1 more bytes follow"},
      {BYTES("\x90\x90\x90"), {0, 0, 0}, "ends at byte 1 but 2 more bytes"},
      {BYTES("\xc0\x00"), {0, 0, 0}, "ends at byte 1"},
      /* the tag that is never used */
      {BYTES("\xc1"), {0, 0, 0}, "msgpack: byte 0 is 0xc1"},
      {BYTES("\x92\x01\xc1"), {0, 0, 0}, "byte 2 is 0xc1"},
      /* limits */
      {BYTES("\x91\x91\x91\x91\x00"),
       {0, 3, 0},
       "msgpack: fixarray at byte 3 nests 4 deep; the limit is 3"},
      {BYTES("\x91\x91\x91\x90"), {0, 2, 0}, "fixarray at byte 2 nests 3"},
      {BYTES("\x9b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
       {0, 0, 10},
       "fixarray at byte 0 declares 11 elements, making 11 in all; the limit "
       "is 10"},
      {BYTES("\x92\x93\x01\x02\x03\x93\x04\x05\x06"),
       {0, 0, 7},
       "fixarray at byte 5 declares 3 elements, making 8 in all; the limit is "
       "7"},
      {BYTES("\x82\x01\x02\x03\x04"),
       {0, 0, 1},
       "fixmap at byte 0 declares 2 entries, making 2 in all"},
      {BYTES("\x01\x02\x03\x04\x05"),
       {4, 0, 0},
       "msgpack: input is 5 bytes; the limit is 4"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_einval(i, cases[i].mp, cases[i].len, &cases[i].limits,
                  cases[i].msg_part);
}

static void test_empty_and_null(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_msgpack_check("", 0, NULL, &err), ESC_EINVAL);
  assert_string_equal(err.msg, "msgpack: empty input");
  assert_int_equal(esc_msgpack_check(NULL, 0, NULL, &err), ESC_EINVAL);
  assert_int_equal(esc_msgpack_check(NULL, 3, NULL, &err), ESC_EINVAL);
  assert_int_equal(esc_msgpack_check("\x01", 1, NULL, NULL), ESC_OK);
  char *json = (char *)1;
  assert_int_equal(esc_msgpack_to_json("", 0, NULL, &json, &err), ESC_EINVAL);
  assert_null(json);
}

/* 1000 nested arrays: rejected at the cap of 32 whatever max_depth says,
 * since msgpack-c cannot unpack deeper; exactly 32 is fine. */
static void test_deep_nesting(void **state) {
  (void)state;
  unsigned char deep[1001];
  memset(deep, 0x91, 1000);
  deep[1000] = 0x00;
  esc_decode_limits huge = {0, 100000, 0};
  const esc_decode_limits *limits[] = {NULL, &huge};
  for (size_t i = 0; i < 2; i++) {
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_msgpack_check(deep, sizeof deep, limits[i], &err),
                     ESC_EINVAL);
    assert_string_equal(err.msg, "msgpack: fixarray at byte 32 nests 33 "
                                 "deep; the limit is 32");
  }
  char *json = NULL;
  esc_error err = ESC_ERROR_INIT;
  const unsigned char *ok = deep + 1000 - 32; /* 32 arrays around a 0 */
  assert_int_equal(esc_msgpack_check(ok, 33, NULL, &err), ESC_OK);
  assert_int_equal(esc_msgpack_to_json(ok, 33, &huge, &json, &err), ESC_OK);
  assert_int_equal(strlen(json), 32 * 2 + 1);
  free(json);
}

/* Element counts are summed over the whole document. */
static void test_element_limit_exact(void **state) {
  (void)state;
  esc_decode_limits l = {0, 0, 8};
  const char *mp = "\x92\x93\x01\x02\x03\x93\x04\x05\x06"; /* 2 + 3 + 3 */
  assert_int_equal(esc_msgpack_check(mp, 9, &l, NULL), ESC_OK);
  l.max_elements = 7;
  assert_int_equal(esc_msgpack_check(mp, 9, &l, NULL), ESC_EINVAL);
  esc_decode_limits b = {9, 0, 0};
  assert_int_equal(esc_msgpack_check(mp, 9, &b, NULL), ESC_OK);
}

/* ------------------------------------------------------------------------
 * A bounded fuzz: every prefix and many one-byte mutations of a document
 * using every format must give OK or EINVAL, never a crash or a leak.
 * ------------------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void pack_key(msgpack_packer *pk, const char *s) {
  pack_str(pk, s, strlen(s));
}

static msgpack_sbuffer complex_document(void) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 9);
  pack_key(&pk, "ints");
  msgpack_pack_array(&pk, 18); /* array16 */
  msgpack_pack_uint8(&pk, 200);
  msgpack_pack_uint16(&pk, 60000);
  msgpack_pack_uint32(&pk, 4000000000u);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  msgpack_pack_int8(&pk, -100);
  msgpack_pack_int16(&pk, -30000);
  msgpack_pack_int32(&pk, -2000000000);
  msgpack_pack_int64(&pk, INT64_MIN);
  msgpack_pack_fix_uint8(&pk, 1);
  msgpack_pack_fix_uint16(&pk, 2);
  msgpack_pack_fix_uint32(&pk, 3);
  msgpack_pack_fix_uint64(&pk, 4);
  msgpack_pack_fix_int8(&pk, -1);
  msgpack_pack_fix_int16(&pk, -2);
  msgpack_pack_fix_int32(&pk, -3);
  msgpack_pack_fix_int64(&pk, -4);
  msgpack_pack_int(&pk, 5);
  msgpack_pack_int(&pk, -5);
  pack_key(&pk, "floats");
  msgpack_pack_array(&pk, 3);
  msgpack_pack_float(&pk, 0.25f);
  msgpack_pack_double(&pk, 0.1);
  msgpack_pack_double(&pk, -1e300);
  pack_key(&pk, "long text that needs a str8 header, more than 31 bytes");
  pack_str(&pk, "\xc3\xa9t\xc3\xa9", 5);
  pack_key(&pk, "bin");
  msgpack_pack_bin(&pk, 3);
  msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
  pack_key(&pk, "ext");
  msgpack_pack_ext(&pk, 2, 7); /* fixext2 */
  msgpack_pack_ext_body(&pk, "ab", 2);
  msgpack_pack_uint8(&pk, 7);
  msgpack_pack_ext(&pk, 3, -2); /* ext8 */
  msgpack_pack_ext_body(&pk, "xyz", 3);
  pack_key(&pk, "flags");
  msgpack_pack_array(&pk, 3);
  msgpack_pack_true(&pk);
  msgpack_pack_false(&pk);
  msgpack_pack_nil(&pk);
  pack_key(&pk, "nested");
  msgpack_pack_map(&pk, 1);
  pack_key(&pk, "a");
  msgpack_pack_array(&pk, 2);
  msgpack_pack_map(&pk, 0);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 0);
  pack_key(&pk, "bad utf8");
  pack_str(&pk, "\xff\xfe", 2);
  return sb;
}

/* One input through every decoder: never a crash, only OK or EINVAL, and
 * the checker and the renderer agree. */
static void decode_any(const void *mp, size_t len) {
  esc_error err = ESC_ERROR_INIT;
  esc_status checked = esc_msgpack_check(mp, len, NULL, &err);
  assert_true(checked == ESC_OK || checked == ESC_EINVAL);
  if (checked == ESC_EINVAL && len > 0 && !strstr(err.msg, "byte"))
    fail_msg("message \"%s\" names no byte offset", err.msg);

  char *json = NULL;
  esc_error jerr = ESC_ERROR_INIT;
  esc_status st = esc_msgpack_to_json(mp, len, NULL, &json, &jerr);
  assert_true(st == ESC_OK || st == ESC_EINVAL);
  if (checked != ESC_OK) {
    assert_int_equal(st, ESC_EINVAL);
  } else if (st == ESC_OK) {
    /* The rendering is JSON that we can read back. */
    void *back = NULL;
    size_t back_len = 0;
    esc_error berr = ESC_ERROR_INIT;
    /* (jansson reads NUL in strings but not in keys, which mutations of
     * a key can produce.) */
    if (esc_json_to_msgpack(json, &back, &back_len, &berr) != ESC_OK &&
        !strstr(berr.msg, "NUL byte in object key"))
      fail_msg("rendered %s is not JSON: %s", json, berr.msg);
    free(back);
  } else {
    /* The only thing the renderer may add is a duplicate map key. */
    assert_non_null(strstr(jerr.msg, "twice"));
  }
  free(json);

  esc_metadata m;
  char actor[16];
  st = esc_metadata_decode(mp, len, &m, actor, sizeof actor, NULL);
  assert_true(st == ESC_OK || st == ESC_EINVAL);
}

static void test_mini_fuzz(void **state) {
  (void)state;
  static const unsigned char masks[] = {0x01, 0x02, 0x10, 0x20,
                                        0x40, 0x80, 0x7f, 0xff};
  msgpack_sbuffer sb = complex_document();
  unsigned char *doc = (unsigned char *)sb.data;
  size_t len = sb.size;
  clock_t t0 = clock();

  assert_int_equal(esc_msgpack_check(doc, len, NULL, NULL), ESC_OK);
  char *json = to_json(doc, len);
  free(json);

  /* Every proper prefix is truncated, so it must fail. */
  unsigned char *copy = malloc(len);
  assert_non_null(copy);
  for (size_t n = 0; n < len; n++) {
    memcpy(copy, doc, n); /* a fresh buffer so ASan sees any over-read */
    assert_int_equal(esc_msgpack_check(n ? copy : NULL, n, NULL, NULL),
                     ESC_EINVAL);
    decode_any(copy, n);
  }
  for (size_t i = 0; i < len; i++) {
    for (size_t k = 0; k < sizeof masks; k++) {
      memcpy(copy, doc, len);
      copy[i] ^= masks[k];
      decode_any(copy, len);
    }
  }
  free(copy);
  msgpack_sbuffer_destroy(&sb);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  print_message("mini fuzz: %zu-byte document, %zu inputs, %.3f s CPU\n", len,
                len * (1 + sizeof masks), secs);
}

/* ------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------ */

static void test_metadata_round_trip(void **state) {
  (void)state;
  esc_metadata m = ESC_METADATA_INIT;
  m.correlation_id = esc_uuid_v4();
  m.causation_id = esc_uuid_v4();
  m.actor = "alice@example.com";
  m.time_us = 1700000000123456;
  void *mp = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_metadata_encode(&m, &mp, &len, &err), ESC_OK);
  assert_int_equal(esc_msgpack_check(mp, len, NULL, NULL), ESC_OK);

  esc_metadata back;
  char actor[64];
  assert_int_equal(
      esc_metadata_decode(mp, len, &back, actor, sizeof actor, &err), ESC_OK);
  assert_memory_equal(back.correlation_id.bytes, m.correlation_id.bytes, 16);
  assert_memory_equal(back.causation_id.bytes, m.causation_id.bytes, 16);
  assert_ptr_equal(back.actor, actor);
  assert_string_equal(back.actor, "alice@example.com");
  assert_true(back.time_us == m.time_us);

  /* The ids are stored as text, readable with the CLI. */
  char *json = to_json(mp, len);
  char corr[37];
  esc_uuid_format(&m.correlation_id, corr);
  assert_non_null(strstr(json, corr));
  assert_non_null(strstr(json, "\"time\":1700000000123456"));
  free(json);
  free(mp);
}

static void test_metadata_omits_nil_and_null(void **state) {
  (void)state;
  esc_metadata m = ESC_METADATA_INIT;
  m.time_us = -5;
  void *mp = NULL;
  size_t len = 0;
  assert_int_equal(esc_metadata_encode(&m, &mp, &len, NULL), ESC_OK);
  char *json = to_json(mp, len);
  assert_string_equal(json, "{\"time\":-5}");
  free(json);

  esc_metadata back;
  char actor[8] = "zzz";
  assert_int_equal(
      esc_metadata_decode(mp, len, &back, actor, sizeof actor, NULL), ESC_OK);
  assert_true(esc_uuid_is_nil(&back.correlation_id));
  assert_true(esc_uuid_is_nil(&back.causation_id));
  assert_null(back.actor);
  assert_true(back.time_us == -5);
  free(mp);

  /* Nothing stored decodes as nothing. */
  assert_int_equal(esc_metadata_decode(NULL, 0, &back, NULL, 0, NULL), ESC_OK);
  assert_null(back.actor);
  assert_true(back.time_us == 0);
}

static void test_metadata_unknown_keys_and_nil(void **state) {
  (void)state;
  size_t len = 0;
  void *mp =
      to_msgpack("{\"tenant\":\"t1\",\"actor\":\"bob\",\"trace\":{\"a\":[1,2]},"
                 "\"correlation_id\":null,\"time\":42,\"causation_id\":"
                 "\"6BA7B810-9DAD-11D1-80B4-00C04FD430C8\"}",
                 &len);
  esc_metadata m;
  char actor[16];
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_metadata_decode(mp, len, &m, actor, sizeof actor, &err),
                   ESC_OK);
  assert_string_equal(m.actor, "bob");
  assert_true(m.time_us == 42);
  assert_true(esc_uuid_is_nil(&m.correlation_id));
  char text[37];
  esc_uuid_format(&m.causation_id, text);
  assert_string_equal(text, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
  free(mp);

  /* Non-string keys are unknown keys too. */
  assert_int_equal(
      esc_metadata_decode(BYTES("\x82\x01\x02\xa4time\x07"), &m, NULL, 0, &err),
      ESC_OK);
  assert_true(m.time_us == 7);
  assert_null(m.actor); /* no buffer, no actor */
}

static void test_metadata_actor_truncated(void **state) {
  (void)state;
  static const struct {
    const char *actor;
    size_t buf_size;
    const char *want;
  } cases[] = {
      {"bobby", 4, "bob"},
      {"bobby", 6, "bobby"},
      {"bobby", 1, ""},
      {"a\xc3\xa9", 3, "a"}, /* never half a character */
      {"a\xc3\xa9", 4, "a\xc3\xa9"},
      {"\xe2\x82\xac\xe2\x82\xac", 6, "\xe2\x82\xac"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_metadata m = ESC_METADATA_INIT;
    m.actor = cases[i].actor;
    void *mp = NULL;
    size_t len = 0;
    assert_int_equal(esc_metadata_encode(&m, &mp, &len, NULL), ESC_OK);
    char buf[16];
    memset(buf, 'z', sizeof buf);
    esc_metadata back;
    assert_int_equal(
        esc_metadata_decode(mp, len, &back, buf, cases[i].buf_size, NULL),
        ESC_OK);
    assert_string_equal(back.actor, cases[i].want);
    assert_int_equal(buf[cases[i].buf_size], 'z'); /* stayed in bounds */
    free(mp);
  }
}

static void test_metadata_wrong_types(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *msg_part;
  } cases[] = {
      {"{\"correlation_id\":5}",
       "metadata: \"correlation_id\" should be a UUID string, not an integer"},
      {"{\"causation_id\":[1]}", "\"causation_id\" should be a UUID string, "
                                 "not an array"},
      {"{\"causation_id\":\"not-a-uuid\"}",
       "\"causation_id\" is a 10-byte string"},
      {"{\"correlation_id\":\"6ba7b810-9dad-11d1-80b4-00c04fd430cx\"}",
       "metadata: \"correlation_id\": uuid \""},
      {"{\"actor\":1}", "metadata: \"actor\" should be a string, not an "
                        "integer"},
      {"{\"time\":\"now\"}", "\"time\" should be an integer (microseconds), "
                             "not a string"},
      {"{\"time\":1.5}", "\"time\" should be an integer"},
      {"{\"time\":true}", "not a boolean"},
      {"[]", "metadata: should be a map, not an array"},
      {"\"x\"", "should be a map, not a string"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len = 0;
    void *mp = to_msgpack(cases[i].json, &len);
    esc_metadata m;
    char actor[8];
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(
        esc_metadata_decode(mp, len, &m, actor, sizeof actor, &err),
        ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg_part))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
    free(mp);
  }
  esc_metadata m;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_metadata_decode(
          BYTES("\x81\xa4time\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), &m, NULL,
          0, &err),
      ESC_EINVAL);
  assert_msg_has(&err, "\"time\" 18446744073709551615 is above");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_round_trips),
      cmocka_unit_test(test_json_to_msgpack_bytes),
      cmocka_unit_test(test_json_errors),
      cmocka_unit_test(test_msgpack_to_json_special),
      cmocka_unit_test(test_msgpack_to_json_duplicate_keys),
      cmocka_unit_test(test_hostile_inputs),
      cmocka_unit_test(test_empty_and_null),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_element_limit_exact),
      cmocka_unit_test(test_mini_fuzz),
      cmocka_unit_test(test_metadata_round_trip),
      cmocka_unit_test(test_metadata_omits_nil_and_null),
      cmocka_unit_test(test_metadata_unknown_keys_and_nil),
      cmocka_unit_test(test_metadata_actor_truncated),
      cmocka_unit_test(test_metadata_wrong_types),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests: UUIDs, positions, the clock (eventstore/src/ids.c). */
#include <esc/store.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* The RFC 4122 DNS namespace. */
static const char dns_ns[] = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

static esc_uuid parse_ok(const char *text) {
  esc_uuid id;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_uuid_parse(text, &id, &err), ESC_OK);
  assert_int_equal(err.code, ESC_OK);
  return id;
}

static void test_v4_random_and_versioned(void **state) {
  (void)state;
  esc_uuid a = esc_uuid_v4(), b = esc_uuid_v4();
  assert_false(esc_uuid_is_nil(&a));
  assert_memory_not_equal(a.bytes, b.bytes, 16);
  assert_int_equal(a.bytes[6] >> 4, 4);      /* version */
  assert_int_equal(a.bytes[8] & 0xc0, 0x80); /* RFC 4122 variant */
}

static void test_v5_deterministic(void **state) {
  (void)state;
  esc_uuid ns = parse_ok(dns_ns);
  esc_uuid a = esc_uuid_v5(&ns, "www.example.com", 15);
  esc_uuid b = esc_uuid_v5(&ns, "www.example.com", 15);
  esc_uuid c = esc_uuid_v5(&ns, "www.example.org", 15);
  char text[37];
  assert_memory_equal(a.bytes, b.bytes, 16);
  assert_memory_not_equal(a.bytes, c.bytes, 16);
  assert_int_equal(a.bytes[6] >> 4, 5);
  /* The well-known v5 id of www.example.com in the DNS namespace. */
  esc_uuid_format(&a, text);
  assert_string_equal(text, "2ed6657d-e927-568b-95e1-2665a8aea6a2");

  /* Another namespace gives another id for the same name. */
  esc_uuid other = esc_uuid_v4();
  esc_uuid d = esc_uuid_v5(&other, "www.example.com", 15);
  assert_memory_not_equal(a.bytes, d.bytes, 16);
  /* The length counts, not a terminator: binary names work. */
  esc_uuid e = esc_uuid_v5(&ns, "www.example.com", 3);
  assert_memory_not_equal(a.bytes, e.bytes, 16);
}

static void test_nil(void **state) {
  (void)state;
  esc_uuid nil = {{0}};
  assert_true(esc_uuid_is_nil(&nil));
  nil.bytes[15] = 1;
  assert_false(esc_uuid_is_nil(&nil));
}

static void test_format_parse_round_trip(void **state) {
  (void)state;
  for (int i = 0; i < 100; i++) {
    esc_uuid a = esc_uuid_v4();
    char text[37];
    esc_uuid_format(&a, text);
    assert_int_equal(strlen(text), 36);
    for (size_t k = 0; k < 36; k++) /* lowercase */
      assert_false(text[k] >= 'A' && text[k] <= 'F');
    esc_uuid b = parse_ok(text);
    assert_memory_equal(a.bytes, b.bytes, 16);
  }
  /* Upper case input is accepted; output is lowercase. */
  esc_uuid u = parse_ok("6BA7B810-9DAD-11D1-80B4-00C04FD430C8");
  char text[37];
  esc_uuid_format(&u, text);
  assert_string_equal(text, dns_ns);
}

static void test_parse_rejects(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *msg_part;
  } cases[] = {
      {"", "0 characters"},
      {"6ba7b810-9dad-11d1-80b4-00c04fd430c", "35 characters"},
      {"6ba7b810-9dad-11d1-80b4-00c04fd430c88", "more than 36"},
      {"6ba7b810-9dad-11d1-80b4-00c04fd430cg", "character 36 is not a hex"},
      {"xba7b810-9dad-11d1-80b4-00c04fd430c8", "character 1 is not a hex"},
      {"6ba7b8109dad-11d1-80b4-00c04fd430c8a", "character 9 should be '-'"},
      {"6ba7b810-9dad-11d1-80b4_00c04fd430c8", "character 24 should be '-'"},
      {"6ba7b810-9dad-11d1-80b4-00c04fd430c\n", "\\x0a"},
      {" 6ba7b810-9dad-11d1-80b4-00c04fd430c8", "more than 36"},
      {"{6ba7b810-9dad-11d1-80b4-00c04fd430}", "character 1 is not a hex"},
      {"6ba7b810-9dad-11d1-80b4-00c04fd4-0c8", "not a hex"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_uuid id;
    memset(&id, 0xab, sizeof id);
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_uuid_parse(cases[i].text, &id, &err), ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg_part) || !strstr(err.msg, "uuid \""))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
    assert_int_equal(id.bytes[0], 0xab); /* out untouched */
  }
  esc_uuid id;
  assert_int_equal(esc_uuid_parse(NULL, &id, NULL), ESC_EINVAL);
  assert_int_equal(esc_uuid_parse("nope", &id, NULL), ESC_EINVAL);
}

static void test_position_cmp(void **state) {
  (void)state;
  static const struct {
    esc_position a, b;
    int want;
  } cases[] = {
      {{0, 0}, {0, 0}, 0},    {{1, 5}, {1, 5}, 0},
      {{1, 5}, {1, 6}, -1},   {{1, 6}, {1, 5}, 1},
      {{1, 100}, {2, 1}, -1}, /* tx_id first */
      {{3, 1}, {2, 100}, 1},  {{UINT64_MAX, 0}, {0, INT64_MAX}, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(esc_position_cmp(&cases[i].a, &cases[i].b), cases[i].want);
    assert_int_equal(esc_position_cmp(&cases[i].b, &cases[i].a),
                     -cases[i].want);
  }
  esc_position start = ESC_POSITION_START;
  esc_position first = {1, 1};
  assert_int_equal(esc_position_cmp(&start, &first), -1);
}

static void test_position_format_parse(void **state) {
  (void)state;
  static const struct {
    esc_position p;
    const char *text;
  } cases[] = {
      {{0, 0}, "0/0"},
      {{7731, 42}, "7731/42"},
      {{UINT64_MAX, INT64_MAX}, "18446744073709551615/9223372036854775807"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char text[ESC_POSITION_TOKEN_MAX];
    esc_position_format(&cases[i].p, text);
    assert_string_equal(text, cases[i].text);
    esc_position back = {9, 9};
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_position_parse(text, &back, &err), ESC_OK);
    assert_int_equal(esc_position_cmp(&back, &cases[i].p), 0);
  }
  esc_position p;
  assert_int_equal(esc_position_parse("0007/042", &p, NULL), ESC_OK);
  assert_true(p.tx_id == 7 && p.global == 42);
}

static void test_position_parse_rejects(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *msg_part;
  } cases[] = {
      {"", "expected <tx>/<global>"},
      {"/", "expected"},
      {"12", "expected"},
      {"12/", "expected"},
      {"/12", "expected"},
      {"1/2/3", "expected"},
      {"1/2 ", "expected"},
      {" 1/2", "expected"},
      {"-1/2", "expected"},
      {"1/-2", "expected"},
      {"+1/2", "expected"},
      {"1.5/2", "expected"},
      {"0x10/2", "expected"},
      {"1/2x", "expected"},
      {"18446744073709551616/1", "transaction id is above"},
      {"99999999999999999999999/1", "transaction id is above"},
      {"1/9223372036854775808", "global position is above"},
      {"1/18446744073709551615", "global position is above"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_position p = {5, 5};
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_position_parse(cases[i].text, &p, &err), ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "position \"%s\"", cases[i].text);
    if (!strstr(err.msg, cases[i].msg_part) || !strstr(err.msg, quoted))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
    assert_true(p.tx_id == 5 && p.global == 5); /* out untouched */
  }
  esc_position p;
  assert_int_equal(esc_position_parse(NULL, &p, NULL), ESC_EINVAL);
}

static void test_now_us(void **state) {
  (void)state;
  int64_t a = esc_now_us();
  int64_t b = esc_now_us();
  assert_true(a > INT64_C(1600000000) * 1000000); /* after Sep 2020 */
  assert_true(b >= a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v4_random_and_versioned),
      cmocka_unit_test(test_v5_deterministic),
      cmocka_unit_test(test_nil),
      cmocka_unit_test(test_format_parse_round_trip),
      cmocka_unit_test(test_parse_rejects),
      cmocka_unit_test(test_position_cmp),
      cmocka_unit_test(test_position_format_parse),
      cmocka_unit_test(test_position_parse_rejects),
      cmocka_unit_test(test_now_us),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

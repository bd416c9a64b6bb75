/*
 * Unit tests: a user's own metadata fields (<esc/store.h>) are encoded
 * under "fields", read back one at a time, and every limit is refused
 * with a message naming the field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <esc/store.h>

static esc_status encode(const esc_metadata_field *f, size_t n, void **out,
                         size_t *len, esc_error *err) {
  esc_metadata m = ESC_METADATA_INIT;
  m.time_us = 1;
  m.fields = f;
  m.field_count = n;
  return esc_metadata_encode(&m, out, len, err);
}

static void fields_round_trip(void **state) {
  (void)state;
  static const esc_metadata_field f[] = {{"tenant", "acme"},
                                         {"trace.id", "4bf92f35-a"},
                                         {"note", "caf\xc3\xa9"}};
  void *data;
  size_t len;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(encode(f, 3, &data, &len, &err), ESC_OK);
  char out[64];
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(
        esc_metadata_field_get(data, len, f[i].key, out, sizeof out, &err),
        ESC_OK);
    assert_string_equal(out, f[i].value);
  }
  assert_int_equal(
      esc_metadata_field_get(data, len, "absent", out, sizeof out, &err),
      ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "absent"));
  /* Too small a buffer is an error, never a cut value. */
  assert_int_equal(esc_metadata_field_get(data, len, "tenant", out, 4, &err),
                   ESC_EINVAL);
  /* The fields leave the rest of the metadata as it was. */
  esc_metadata m;
  assert_int_equal(esc_metadata_decode(data, len, &m, NULL, 0, &err), ESC_OK);
  assert_int_equal(m.time_us, 1);
  assert_null(m.fields);
  /* In JSON they are a map under "fields". */
  char *json = NULL;
  assert_int_equal(esc_msgpack_to_json(data, len, NULL, &json, &err), ESC_OK);
  assert_non_null(strstr(json, "\"fields\""));
  assert_non_null(strstr(json, "\"tenant\""));
  free(json);
  free(data);
}

static void expect_refused(const esc_metadata_field *f, size_t n,
                           const char *part) {
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(encode(f, n, &data, &len, &err), ESC_EINVAL);
  assert_null(data);
  if (!strstr(err.msg, part))
    fail_msg("want \"%s\" in: %s", part, err.msg);
}

static void limits_are_refused(void **state) {
  (void)state;
  static const esc_metadata_field bad_key[] = {{"has space", "x"}};
  expect_refused(bad_key, 1, "\"has space\"");
  static const esc_metadata_field empty_key[] = {{"", "x"}};
  expect_refused(empty_key, 1, "1..64 bytes");
  static const esc_metadata_field twice[] = {{"a", "1"}, {"a", "2"}};
  expect_refused(twice, 2, "\"a\" is given twice");
  static const esc_metadata_field not_utf8[] = {{"a", "\xff"}};
  expect_refused(not_utf8, 1, "valid UTF-8");
  char big[ESC_METADATA_VALUE_MAX + 2];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  esc_metadata_field too_long[] = {{"a", big}};
  expect_refused(too_long, 1, "at most 512 bytes");
  esc_metadata_field many[ESC_METADATA_FIELDS_MAX + 1];
  char keys[ESC_METADATA_FIELDS_MAX + 1][8];
  for (size_t i = 0; i <= ESC_METADATA_FIELDS_MAX; i++) {
    snprintf(keys[i], sizeof keys[i], "k%zu", i);
    many[i] = (esc_metadata_field){keys[i], "v"};
  }
  expect_refused(many, ESC_METADATA_FIELDS_MAX + 1, "at most 16");
  /* Exactly at the limits is fine. */
  void *data;
  size_t len;
  big[ESC_METADATA_VALUE_MAX] = '\0';
  esc_metadata_field at_limit[] = {{"a", big}};
  assert_int_equal(encode(at_limit, 1, &data, &len, NULL), ESC_OK);
  free(data);
  assert_int_equal(encode(many, ESC_METADATA_FIELDS_MAX, &data, &len, NULL),
                   ESC_OK);
  free(data);
}

static void utf8_char_lengths(void **state) {
  (void)state;
  assert_int_equal(esc_utf8_char_len("a"), 1);
  assert_int_equal(esc_utf8_char_len("\xc3\xa9"), 2);
  assert_int_equal(esc_utf8_char_len("\xe2\x82\xac"), 3);
  assert_int_equal(esc_utf8_char_len("\xf0\x9f\x98\x80"), 4);
  assert_int_equal(esc_utf8_char_len("\xc0\x80"), 0);     /* overlong */
  assert_int_equal(esc_utf8_char_len("\xed\xa0\x80"), 0); /* surrogate */
  assert_int_equal(esc_utf8_char_len("\xf4\x90\x80\x80"), 0); /* > U+10FFFF */
  assert_int_equal(esc_utf8_char_len("\xe2\x82"), 0); /* cut short */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fields_round_trip),
      cmocka_unit_test(limits_are_refused),
      cmocka_unit_test(utf8_char_lengths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

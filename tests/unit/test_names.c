/* Unit tests: stream ids, categories, event types (eventstore/src/names.c). */
#include <esc/store.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

struct name_case {
  const char *name;
  const char *msg_part; /* NULL: valid */
};

typedef bool (*validator)(const char *, esc_error *);

static void run_cases(validator valid, const struct name_case *cases,
                      size_t n) {
  for (size_t i = 0; i < n; i++) {
    esc_error err = ESC_ERROR_INIT;
    bool ok = valid(cases[i].name, &err);
    if (!cases[i].msg_part) {
      if (!ok)
        fail_msg("case %zu (\"%s\") should be valid: %s", i, cases[i].name,
                 err.msg);
      assert_int_equal(err.code, ESC_OK);
      assert_true(valid(cases[i].name, NULL));
      continue;
    }
    if (ok)
      fail_msg("case %zu (\"%s\") should be invalid", i, cases[i].name);
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg_part))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
    assert_false(valid(cases[i].name, NULL)); /* NULL err is fine */
  }
}

/* A name of n bytes, all 'a'. */
static const char *repeat_a(char *buf, size_t n) {
  memset(buf, 'a', n);
  buf[n] = '\0';
  return buf;
}

static void test_stream_ids(void **state) {
  (void)state;
  char b200[ESC_STREAM_ID_MAX + 1], b201[ESC_STREAM_ID_MAX + 2];
  const struct name_case cases[] = {
      {"order-42", NULL},
      {"order", NULL},
      {"a", NULL},
      {"Order_1.v2:x@y+z=w/q-r", NULL},
      {"order-", NULL},
      {"a-b-c", NULL},
      {"0", NULL},
      {"_x", NULL},
      {repeat_a(b200, ESC_STREAM_ID_MAX), NULL},
      {repeat_a(b201, ESC_STREAM_ID_MAX + 1),
       "stream id is 201 bytes; the limit is 200"},
      {"", "stream id is empty"},
      {"ord er-1", "stream id \"ord er-1\": byte 4 (' ') is not allowed; "
                   "use [A-Za-z0-9_.:@+=/-]"},
      {"order\t1", "byte 6 (\\x09) is not allowed"},
      {"order\n", "\"order\\x0a\": byte 6 (\\x0a)"},
      {"order\x7f", "byte 6 (\\x7f)"},
      {"-order", "must not start with '-'"},
      {"$all", "must not start with '$'"},
      {"$ce-order", "must not start with '$'"},
      {"a$b", "byte 2 ('$') is not allowed"},
      {"\xc3\xb6rder-1", "\"\\xc3\\xb6rder-1\": byte 1 (\\xc3) is not allowed"},
      {"order-\xe2\x82\xac", "byte 7 (\\xe2)"},
      {"a\"b", "\"a\\\"b\": byte 2 ('\"')"},
      {"a\\b", "byte 2 (\\x5c)"},
      {"a'b", "byte 2 (\\x27)"},
      {"a,b", "byte 2 (',')"},
      {"a*b", "byte 2 ('*')"},
      {"a#b", "byte 2 ('#')"},
  };
  run_cases(esc_stream_id_valid, cases, sizeof cases / sizeof cases[0]);

  esc_error err = ESC_ERROR_INIT;
  assert_false(esc_stream_id_valid(NULL, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_string_equal(err.msg, "stream id is NULL");
}

/* A long bad id is cut in the message, which stays within esc_error.msg. */
static void test_long_id_message(void **state) {
  (void)state;
  char id[ESC_STREAM_ID_MAX + 1];
  memset(id, '\x01', ESC_STREAM_ID_MAX);
  id[ESC_STREAM_ID_MAX] = '\0';
  esc_error err = ESC_ERROR_INIT;
  assert_false(esc_stream_id_valid(id, &err));
  assert_non_null(strstr(err.msg, "...\": byte 1 (\\x01) is not allowed"));
  id[ESC_STREAM_ID_MAX - 1] = ' ';
  memset(id, 'a', ESC_STREAM_ID_MAX - 1);
  assert_false(esc_stream_id_valid(id, &err));
  assert_non_null(strstr(err.msg, "byte 200 (' ')"));
}

static void test_categories(void **state) {
  (void)state;
  const struct name_case cases[] = {
      {"order", NULL},
      {"Order_v2.x", NULL},
      {"a", NULL},
      {"", "category is empty"},
      {"order-42", "byte 6 ('-') is not allowed; a category is a stream id "
                   "without '-'"},
      {"-order", "must not start with '-'"},
      {"$all", "must not start with '$'"},
      {"ord er", "category \"ord er\": byte 4 (' ') is not allowed"},
  };
  run_cases(esc_category_valid, cases, sizeof cases / sizeof cases[0]);
}

static void test_type_names(void **state) {
  (void)state;
  char b128[ESC_TYPE_NAME_MAX + 1], b129[ESC_TYPE_NAME_MAX + 2];
  const struct name_case cases[] = {
      {"OrderPlaced", NULL},
      {"order.placed:v2", NULL},
      {"Order-Placed_2", NULL},
      {"x", NULL},
      {repeat_a(b128, ESC_TYPE_NAME_MAX), NULL},
      {repeat_a(b129, ESC_TYPE_NAME_MAX + 1),
       "event type is 129 bytes; the limit is 128"},
      {"", "event type is empty"},
      {"1Order", "must start with a letter, not '1'"},
      {"_Order", "must start with a letter"},
      {"-Order", "must start with a letter"},
      {"$Order", "must start with a letter"},
      {"\xc3\x84pfel", "must start with a letter, not \\xc3"},
      {"Order Placed", "event type \"Order Placed\": byte 6 (' ') is not "
                       "allowed; use [A-Za-z0-9_.:-]"},
      {"Order/Placed", "byte 6 ('/')"},
      {"Order@v1", "byte 6 ('@')"},
  };
  run_cases(esc_type_name_valid, cases, sizeof cases / sizeof cases[0]);
}

static void test_category_of(void **state) {
  (void)state;
  static const struct {
    const char *stream_id;
    const char *category;
  } cases[] = {
      {"order-42", "order"}, {"order", "order"},   {"a-b-c", "a"},
      {"order-", "order"},   {"x_y.z-1", "x_y.z"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[ESC_CATEGORY_MAX + 1];
    memset(out, 'z', sizeof out);
    esc_stream_category(cases[i].stream_id, out, sizeof out);
    assert_string_equal(out, cases[i].category);
  }
  /* A small buffer truncates rather than overflows. */
  char small[4] = "zzz";
  esc_stream_category("order-42", small, sizeof small);
  assert_string_equal(small, "ord");
  char one[1] = {'z'};
  esc_stream_category("order-42", one, sizeof one);
  assert_int_equal(one[0], '\0');
  esc_stream_category("order-42", one, 0); /* nothing written */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_ids),
      cmocka_unit_test(test_long_id_message),
      cmocka_unit_test(test_categories),
      cmocka_unit_test(test_type_names),
      cmocka_unit_test(test_category_of),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

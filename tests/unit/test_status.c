/*
 * Status codes (<esc/status.h>): one list makes the enum, the messages,
 * the CLI's names and exit codes. The list itself must stay append-only:
 * values 0, 1, 2, ... in order, every message and name its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <esc/store.h>

struct row {
  esc_status code;
  int value;
  const char *message;
  const char *key;
  int exit;
};

#define ROW(name, value, message, key, exit) {name, value, message, key, exit},
static const struct row rows[] = {ESC_STATUS_LIST(ROW)};
#undef ROW
enum { N = sizeof rows / sizeof rows[0] };

static void values_are_dense_and_in_order(void **state) {
  (void)state;
  for (int i = 0; i < N; i++) {
    assert_int_equal(rows[i].value, i);
    assert_int_equal((int)rows[i].code, i);
  }
}

static void messages_and_names_are_each_their_own(void **state) {
  (void)state;
  for (int i = 0; i < N; i++) {
    assert_string_equal(esc_strerror(rows[i].code), rows[i].message);
    assert_true(rows[i].exit >= 0 && rows[i].exit <= 7 && rows[i].exit != 2);
    for (int j = 0; j < i; j++) {
      assert_string_not_equal(rows[i].message, rows[j].message);
      assert_string_not_equal(rows[i].key, rows[j].key);
    }
  }
  assert_string_equal(esc_strerror((esc_status)N), "unknown error");
}

/* The exit codes the design names (0 ok, 3 conflict, 4 not found, 5
 * connection, 6 invalid input). */
static void exit_codes_are_the_documented_ones(void **state) {
  (void)state;
  assert_int_equal(rows[ESC_OK].exit, 0);
  assert_int_equal(rows[ESC_ECONFLICT].exit, 3);
  assert_int_equal(rows[ESC_ENOTFOUND].exit, 4);
  assert_int_equal(rows[ESC_ECONN].exit, 5);
  assert_int_equal(rows[ESC_EINVAL].exit, 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(values_are_dense_and_in_order),
      cmocka_unit_test(messages_and_names_are_each_their_own),
      cmocka_unit_test(exit_codes_are_the_documented_ones),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

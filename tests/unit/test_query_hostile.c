/*
 * A hostile or broken Redis cannot crash a query (#11 item 7): every
 * reply of the wrong shape is ESC_EIO naming the projection, never a read
 * out of bounds. Before the fix a {generation} array one element short
 * was read past its end (a heap overflow under ASan) and a sorted set
 * whose score was nil crashed in strtod.
 *
 * The server is tests/support/fakeredis.h: it answers every command with
 * the bytes each case sets, so no real Redis is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <esc/query.h>

#include "fakeredis.h"

static esc_test_fakeredis *fake;
static esc_query *q;

static int setup(void **state) {
  (void)state;
  char url[64];
  esc_error err = ESC_ERROR_INIT;
  fake = esc_test_fakeredis_start();
  assert_non_null(fake);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d",
           esc_test_fakeredis_port(fake));
  esc_query_options o = ESC_QUERY_OPTIONS_INIT;
  o.redis_url = url;
  o.key_prefix = "hostile"; /* no store to derive it from */
  q = esc_query_new(&o, &err);
  if (!q)
    fail_msg("connect to the fake Redis: %s", err.msg);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_query_free(q);
  esc_test_fakeredis_stop(fake);
  return 0;
}

static void say(const char *resp) {
  esc_test_fakeredis_reply(fake, resp, strlen(resp));
}

/* The call failed as a broken reply does: ESC_EIO naming the projection. */
static void expect_broken(esc_status rc, const esc_error *err) {
  assert_int_equal(rc, ESC_EIO);
  assert_non_null(strstr(err->msg, "projection orders"));
}

static void a_short_generation_array_is_refused(void **state) {
  (void)state;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  say("*1\r\n$1\r\n5\r\n"); /* {generation} without the value */
  expect_broken(esc_query_hash(q, "orders", "by-id", &items, &err), &err);
  assert_int_equal(items.count, 0);
  char value[16];
  bool exists = true;
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_get(q, "orders", "total", value, sizeof value,
                              &exists, &err),
                &err);
  assert_false(exists);
}

static void a_nil_score_is_refused(void **state) {
  (void)state;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  say("*2\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$-1\r\n");
  expect_broken(esc_query_zrange(q, "orders", "top", 0, -1, false, &items,
                                 &err),
                &err);
  say("*2\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$3\r\nabc\r\n"); /* not a number */
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_zrange(q, "orders", "top", 0, -1, false, &items,
                                 &err),
                &err);
  assert_int_equal(items.count, 0);
}

static void wrong_element_types_are_refused(void **state) {
  (void)state;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  say("*2\r\n$1\r\n1\r\n*2\r\n:1\r\n*0\r\n"); /* integer name, array value */
  expect_broken(esc_query_hash(q, "orders", "h", &items, &err), &err);
  say("*2\r\n$1\r\n1\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"); /* odd */
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_hash(q, "orders", "h", &items, &err), &err);
  say("*2\r\n$1\r\n1\r\n:5\r\n"); /* a set that is a number */
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_set(q, "orders", "s", &items, &err), &err);
  say(":7\r\n"); /* not even the script's array */
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_set(q, "orders", "s", &items, &err), &err);
  assert_int_equal(items.count, 0);
}

static void a_wait_on_a_lying_layout_is_refused(void **state) {
  (void)state;
  esc_position token = {1, 1};
  esc_error err = ESC_ERROR_INIT;
  /* Claims 100000 partitions and sends one checkpoint. */
  say("*3\r\n$1\r\n1\r\n:100000\r\n$3\r\n9/9\r\n");
  expect_broken(esc_query_wait(q, "orders", 0, &token, 50, &err), &err);
  /* The right count, a checkpoint that is an array. */
  say("*3\r\n$1\r\n1\r\n:1\r\n*0\r\n");
  err = (esc_error)ESC_ERROR_INIT;
  expect_broken(esc_query_wait(q, "orders", 0, &token, 50, &err), &err);
  /* A checkpoint with a NUL inside is not a position. */
  static const char nul[] = "*3\r\n$1\r\n1\r\n:1\r\n$5\r\n9/9\0x\r\n";
  esc_test_fakeredis_reply(fake, nul, sizeof nul - 1);
  err = (esc_error)ESC_ERROR_INIT;
  assert_int_equal(esc_query_wait(q, "orders", 0, &token, 50, &err),
                   ESC_ETIMEDOUT);
}

static void well_formed_replies_still_read(void **state) {
  (void)state;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  say("*2\r\n$1\r\n1\r\n*4\r\n$1\r\na\r\n$3\r\n2.5\r\n$1\r\nb\r\n$3\r\ninf"
      "\r\n");
  assert_int_equal(esc_query_zrange(q, "orders", "top", 0, -1, false, &items,
                                    &err),
                   ESC_OK);
  assert_int_equal(items.count, 2);
  assert_string_equal(items.items[0].name, "a");
  assert_true(items.items[0].score == 2.5);
  esc_query_items_release(&items);
  say("*1\r\n$-1\r\n"); /* {false}: never built */
  assert_int_equal(esc_query_set(q, "orders", "s", &items, &err),
                   ESC_ENOTFOUND);
  esc_position token = {1, 1};
  say("*3\r\n$1\r\n1\r\n:1\r\n$3\r\n9/9\r\n");
  assert_int_equal(esc_query_wait(q, "orders", 0, &token, 50, &err), ESC_OK);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(a_short_generation_array_is_refused),
      T(a_nil_score_is_refused),
      T(wrong_element_types_are_refused),
      T(a_wait_on_a_lying_layout_is_refused),
      T(well_formed_replies_still_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Queries against a real projection: typed reads through the serving
 * generation, read-your-writes (guarantee 9) with a worker running in a
 * thread, a timeout when nothing runs, and a switch seen by the next read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <esc/query.h>

#include "projection_int.h"
#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

static char schema[40], name[48];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name" */
static esc_store *store;
static esc_query *query;
static esc__redis *redis;
static int64_t appended; /* sum of n over every event in the schema */

static void drop_keys(void) {
  char pattern[ESC_TEST_KEY_BASE_SIZE + 2];
  snprintf(pattern, sizeof pattern, "%s:*", base);
  const char *argv[] = {"EVAL",
                        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                        "redis.call('DEL', k) end return 0",
                        "0", pattern};
  assert_int_equal(esc__redis_run(redis, 4, argv, NULL, NULL, NULL), ESC_OK);
}

/* The registry row too: the first registration sets the projection's
 * partition layout, and a test that runs it with another count wants a new
 * projection, not a refusal. */
static void forget_projection(void) {
  drop_keys();
  esc_test_unregister_projection(schema, name);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_query_%d", (int)getpid());
  snprintf(name, sizeof name, "tq%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  esc_test_key_base(schema, name, base, sizeof base);
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.store = store;
  query = esc_query_new(&qo, NULL);
  redis = esc__redis_connect(NULL, NULL);
  assert_non_null(query);
  assert_non_null(redis);
  drop_keys();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  drop_keys();
  esc__redis_free(redis);
  esc_query_free(query);
  esc_store_free(store);
  return 0;
}

static esc_worker *new_worker(const esc_projection *p) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = schema;
  o.poll_ms = 200;
  esc_worker *w = esc_worker_new(&o, NULL);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, p, NULL), ESC_OK);
  return w;
}

/* ------------------------------------------------------------------------ */

static void reads_through_the_serving_generation(void **state) {
  (void)state;
  esc_projection p;
  esc_error err = ESC_ERROR_INIT;
  int64_t value = -1;
  tally_projection(&p, name, 1, 1);
  assert_int_equal(esc_query_counter(query, name, "total", &value, &err),
                   ESC_ENOTFOUND); /* never built */

  int64_t sum = tally_append(store, "q", 5, 200);
  appended += sum;
  esc_worker *w = new_worker(&p);
  assert_int_equal(esc_worker_run_until_caught_up(w, 30000, &err), ESC_OK);
  esc_worker_free(w);

  assert_int_equal(esc_query_counter(query, name, "total", &value, &err),
                   ESC_OK);
  assert_int_equal(value, sum);
  esc_query_items top = ESC_QUERY_ITEMS_INIT;
  assert_int_equal(
      esc_query_zrange(query, name, "items", 0, 1, true, &top, &err), ESC_OK);
  assert_int_equal(top.count, 2);
  assert_true(top.items[0].score >= top.items[1].score);
  esc_query_items_release(&top);
  assert_int_equal(esc_query_counter(query, name, "nothing-here", &value, &err),
                   ESC_OK);
  assert_int_equal(value, 0);

  /* A switch (here: by hand) is seen by the very next read. */
  int64_t gen = 0;
  char key[ESC_TEST_KEY_BASE_SIZE + 32], next[32];
  assert_int_equal(esc_query_generation(query, name, &gen, &err), ESC_OK);
  snprintf(key, sizeof key, "%s:g%lld:total", base, (long long)gen + 1);
  snprintf(next, sizeof next, "%lld", (long long)gen + 1);
  const char *set_total[] = {"SET", key, "7"};
  assert_int_equal(esc__redis_run(redis, 3, set_total, NULL, NULL, NULL),
                   ESC_OK);
  snprintf(key, sizeof key, "%s:generation", base);
  const char *set_gen[] = {"SET", key, next};
  assert_int_equal(esc__redis_run(redis, 3, set_gen, NULL, NULL, NULL), ESC_OK);
  assert_int_equal(esc_query_counter(query, name, "total", &value, &err),
                   ESC_OK);
  assert_int_equal(value, 7);
  drop_keys();
}

/* esc_query_int: the value of an integer key that must exist. */
static void reads_a_required_integer(void **state) {
  (void)state;
  esc_projection p;
  esc_error err = ESC_ERROR_INIT;
  int64_t value = -1;
  tally_projection(&p, name, 1, 1);
  int64_t sum = tally_append(store, "qi", 3, 100);
  appended += sum;
  esc_worker *w = new_worker(&p);
  assert_int_equal(esc_worker_run_until_caught_up(w, 30000, &err), ESC_OK);
  esc_worker_free(w);
  assert_int_equal(esc_query_int(query, name, "total", &value, &err), ESC_OK);
  assert_int_equal(value, appended);

  /* Missing: ENOTFOUND naming what was asked for; value untouched. */
  value = -1;
  assert_int_equal(esc_query_int(query, name, "absent", &value, &err),
                   ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "absent"));
  assert_non_null(strstr(err.msg, name));
  assert_int_equal(value, -1);

  /* Not an integer (written by something else): EINVAL, not 0. */
  int64_t gen = 0;
  char key[ESC_TEST_KEY_BASE_SIZE + 32];
  assert_int_equal(esc_query_generation(query, name, &gen, &err), ESC_OK);
  snprintf(key, sizeof key, "%s:g%lld:text", base, (long long)gen);
  const char *set_text[] = {"SET", key, "12abc"};
  assert_int_equal(esc__redis_run(redis, 3, set_text, NULL, NULL, NULL),
                   ESC_OK);
  assert_int_equal(esc_query_int(query, name, "text", &value, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "12abc"));
  assert_int_equal(value, -1);
  drop_keys();
}

static void read_your_writes(void **state) {
  (void)state;
  esc_projection p;
  esc_error err = ESC_ERROR_INIT;
  esc_test_worker_thread r;
  tally_projection(&p, name, 1, 2);
  forget_projection(); /* the previous test ran it with 1 partition */
  esc_test_worker_thread_start(&r, new_worker(&p));

  esc_query_session session = ESC_QUERY_SESSION_INIT;
  int64_t expected = appended; /* a fresh projection counts the log */
  for (int i = 0; i < 20; i++) {
    tally_counted e = {10 + i, "rw"};
    void *data;
    size_t len;
    esc_append_result res;
    assert_int_equal(
        esc_event_encode(&tally_counted_type, &e, &data, &len, NULL), ESC_OK);
    esc_event_data ev = {esc_uuid_v4(), "Counted", 1, data, len, NULL, 0};
    assert_int_equal(
        esc_append(store, "tally-rw", ESC_EXPECT_ANY, &ev, 1, &res, NULL),
        ESC_OK);
    free(data);
    expected += e.n;
    esc_query_session_observe(&session, &res.position);
    /* Right after the write, the read must show it. */
    if (esc_query_session_wait(query, &session, name, 2, 5000, &err))
      fail_msg("wait %d: %s", i, err.msg);
    int64_t got = 0;
    assert_int_equal(esc_query_counter(query, name, "total", &got, &err),
                     ESC_OK);
    assert_int_equal(got, expected);
  }
  esc_test_worker_thread_stop(&r);
  assert_int_equal(r.rc, ESC_OK);
  esc_worker_free(r.w);

  /* Nothing runs now: a later token is not reached in time. */
  esc_position future = session.seen;
  future.tx_id += 1000000;
  int64_t t0 = esc_now_us();
  assert_int_equal(esc_query_wait(query, name, 2, &future, 300, &err),
                   ESC_ETIMEDOUT);
  int64_t waited_ms = (esc_now_us() - t0) / 1000;
  assert_true(waited_ms >= 250 && waited_ms < 3000);
  assert_non_null(strstr(err.msg, name));
}

/* Sets key to value in the test's Redis. */
static void redis_set(const char *key, const char *value) {
  const char *argv[] = {"SET", key, value};
  assert_int_equal(esc__redis_run(redis, 3, argv, NULL, NULL, NULL), ESC_OK);
}

/* A read-your-writes wait takes the partition count from the serving
 * generation, never from the caller: a generation of 2 partitions whose
 * partition 1 lags is not "caught up" for a caller who says 1. */
static void the_wait_reads_the_layout_itself(void **state) {
  (void)state;
  char key[ESC_TEST_KEY_BASE_SIZE + 32];
  esc_error err = ESC_ERROR_INIT;
  esc_position token = {.tx_id = 500, .global = 500};
  snprintf(key, sizeof key, "%s:generation", base);
  redis_set(key, "7000");
  snprintf(key, sizeof key, "%s:partitions", base);
  redis_set(key, "2");
  snprintf(key, sizeof key, "%s:g7000:p0:checkpoint", base);
  redis_set(key, "900/900");
  snprintf(key, sizeof key, "%s:g7000:p1:checkpoint", base);
  redis_set(key, "10/10");

  assert_int_equal(esc_query_wait(query, name, 1, &token, 300, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "has 2 partitions, not 1"));
  assert_int_equal(esc_query_wait(query, name, 0, &token, 300, &err),
                   ESC_ETIMEDOUT);
  assert_int_equal(esc_query_wait(query, name, 2, &token, 300, &err),
                   ESC_ETIMEDOUT);
  redis_set(key, "600/600"); /* partition 1 gets there */
  assert_int_equal(esc_query_wait(query, name, 0, &token, 300, &err), ESC_OK);
  assert_int_equal(esc_query_wait(query, name, 2, &token, 300, &err), ESC_OK);
  drop_keys();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_through_the_serving_generation),
      cmocka_unit_test(reads_a_required_integer),
      cmocka_unit_test(read_your_writes),
      cmocka_unit_test(the_wait_reads_the_layout_itself),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

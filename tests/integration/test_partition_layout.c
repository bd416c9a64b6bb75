/*
 * A projection has one partition layout, and PostgreSQL holds it (issue
 * 10, item 1): workers configured with another partition count refuse,
 * in either order of starting, and never apply into a generation of
 * another layout; `esc projections repartition` changes the layout by a
 * rebuild that only workers of the new count run; registering never
 * changes the layout.
 *
 * Each test has its own projection name (and so its own Redis keys and
 * registry row) in one schema per process.
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
#include <hiredis/hiredis.h>

#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

static char schema[40];
static char name[48];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": where its keys start */
static esc_store *store;
static redisContext *redis;

/* ESC_TEST_VERBOSE=1 shows the workers' log lines. */
static void log_line(void *userdata, const char *line) {
  fprintf(stderr, "  worker %s: %s\n", (const char *)userdata, line);
}

static esc_worker *worker_for(const esc_projection *p, const char *who) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (getenv("ESC_TEST_VERBOSE")) {
    o.log = log_line;
    o.log_userdata = (void *)who;
  }
  o.schema = schema;
  o.batch_size = 53;
  o.lease_poll_ms = 100;
  o.poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  if (esc_worker_add(w, p, &err))
    fail_msg("add: %s", err.msg);
  return w;
}

static esc_status catch_up(const esc_projection *p, const char *who,
                           int timeout_ms, esc_error *err) {
  esc_worker *w = worker_for(p, who);
  esc_status rc = esc_worker_run_until_caught_up(w, timeout_ms, err);
  esc_worker_free(w);
  return rc;
}

static void must_catch_up(const esc_projection *p, const char *who) {
  esc_error err = ESC_ERROR_INIT;
  if (catch_up(p, who, 60000, &err))
    fail_msg("%s: catch up: %s", who, err.msg);
}

static long long redis_ll(const char *fmt, const char *arg) {
  return esc_test_redis_ll(redis, -1, fmt, arg);
}

/* The read model equals a recomputation from the log. */
static void assert_model_exact(void) {
  char why[256] = "";
  esc_test_tally *m = esc_test_tally_from_log(store, false);
  long long ms = esc_test_tally_wait(m, redis, base, 30000, why, sizeof why);
  int64_t want = esc_test_tally_total(m);
  esc_test_tally_free(m);
  if (ms < 0)
    fail_msg("%s: the read model is not the log's (total %lld expected): %s",
             name, (long long)want, why);
}

static long long pg_partitions(void) {
  char sql[256];
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SELECT partitions FROM %s.projections WHERE name = '%s'", schema,
           name);
  long long n = esc_test_query_ll(c, sql);
  PQfinish(c);
  return n;
}

/* Expects that err refuses `mine` partitions against a layout of `layout`,
 * naming both counts and the way out. */
static void assert_refused(esc_status rc, const esc_error *err, int mine,
                           int layout) {
  char runs[64], has[64];
  snprintf(runs, sizeof runs, "runs %d partition", mine);
  snprintf(has, sizeof has, "has %d", layout);
  if (rc != ESC_ECONFLICT || !strstr(err->msg, runs) ||
      !strstr(err->msg, has) || !strstr(err->msg, "repartition"))
    fail_msg("expected a refusal of %d partitions against %d, got %s (%d): "
             "%s",
             mine, layout, esc_strerror(rc), (int)rc, err->msg);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_layout_%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  redis = esc_test_redis(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  redisFree(redis);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* A name and a clean slate for each test. */
static void begin(const char *what) {
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
  snprintf(name, sizeof name, "tl%d_%s", (int)getpid(), what);
  esc_test_key_base(schema, name, base, sizeof base);
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(redis, prefix);
}

static void end(void) {
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(redis, prefix);
}

/* ------------------------------------------------------------------------
 * Mixed counts: the second layout refuses, in both orders
 * ------------------------------------------------------------------------ */

/* A worker of `first` partitions runs on a thread while events arrive; a
 * worker of `second` partitions started beside it must refuse, and the
 * model stays exactly the log's. */
static void mixed_counts(int first, int second) {
  esc_projection a, b;
  esc_test_worker_thread t;
  esc_error err = ESC_ERROR_INIT;
  tally_projection(&a, name, 1, first);
  tally_projection(&b, name, 1, second);
  tally_append(store, "m", 12, 600);
  esc_worker *wa = worker_for(&a, "first");
  esc_test_worker_thread_start(&t, wa);
  /* The first worker has registered once it has applied something. */
  for (long long until = esc_test_now_ms() + 30000;
       redis_ll("GET %s:generation", base) < 0;)
    if (esc_test_now_ms() > until)
      fail_msg("the first worker did not start");
    else
      esc_test_sleep_ms(20);
  tally_append(store, "m", 12, 300);

  esc_status rc = catch_up(&b, "second", 5000, &err);
  assert_refused(rc, &err, second, first);

  tally_append(store, "m", 12, 100);
  assert_model_exact();
  if (esc_test_worker_thread_stop(&t))
    fail_msg("first worker: %s", t.err.msg);
  esc_worker_free(wa);
  assert_int_equal(pg_partitions(), first);
  assert_int_equal(redis_ll("GET %s:partitions", base), first);
  end();
}

static void one_then_two_refuses_the_second(void **state) {
  (void)state;
  begin("one_two");
  mixed_counts(1, 2);
}

static void two_then_one_refuses_the_second(void **state) {
  (void)state;
  begin("two_one");
  mixed_counts(2, 1);
}

/* ------------------------------------------------------------------------
 * Repartitioning: only the new count builds, the old one serves until the
 * switch and refuses after it
 * ------------------------------------------------------------------------ */

static char *pg_text(const char *column) {
  char sql[256];
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SELECT coalesce(%s::text, 'null') FROM %s.projections"
           " WHERE name = '%s'",
           column, schema, name);
  char *v = esc_test_query_text(c, sql);
  PQfinish(c);
  return v;
}

/* Waits until the status shows the rebuild into `to` partitions, with no
 * worker of that count: it waits for one. */
static void assert_waiting_for(int from, int to) {
  esc_error err = ESC_ERROR_INIT;
  for (long long until = esc_test_now_ms() + 15000;;) {
    esc_partition_status *st = NULL;
    size_t n = 0, rebuild_lines = 0, layout_lines = 0;
    if (esc_projection_status(NULL, NULL, schema, NULL, &st, &n, &err))
      fail_msg("status: %s", err.msg);
    for (size_t i = 0; i < n; i++) {
      if (strcmp(st[i].projection, name) != 0)
        continue;
      assert_int_equal(st[i].repartition_to, to);
      if (!st[i].rebuild_only) {
        layout_lines++;
        assert_int_equal(st[i].partitions, from);
        assert_false(st[i].rebuilding);
      } else if (st[i].rebuild_partitions == to) {
        rebuild_lines++;
        assert_true(st[i].rebuilding);
        assert_int_equal(st[i].lease_pid, 0);
      }
    }
    free(st);
    assert_int_equal(layout_lines, from);
    if (rebuild_lines == (size_t)to)
      return;
    if (esc_test_now_ms() > until)
      fail_msg("no rebuild into %d partitions shows in the status", to);
    esc_test_sleep_ms(50);
  }
}

static void repartition(int from, int to) {
  esc_projection old, new;
  esc_test_worker_thread t;
  esc_error err = ESC_ERROR_INIT;
  bool started = false;
  tally_projection(&old, name, 1, from);
  tally_projection(&new, name, 1, to);
  tally_append(store, "r", 9, 500);
  must_catch_up(&old, "old");
  long long g = redis_ll("GET %s:generation", base);
  esc_worker *wo = worker_for(&old, "old");
  esc_test_worker_thread_start(&t, wo);

  assert_int_equal(
      esc_projection_repartition(NULL, schema, name, to, &started, &err),
      ESC_OK);
  assert_true(started);
  /* Asking again is fine; another count while this one is pending is not;
   * the old worker keeps serving, and the rebuild waits for workers with
   * the new count. */
  assert_int_equal(
      esc_projection_repartition(NULL, schema, name, to, &started, &err),
      ESC_OK);
  assert_true(started);
  assert_int_equal(
      esc_projection_repartition(NULL, schema, name, to + 1, &started, &err),
      ESC_ECONFLICT);
  assert_waiting_for(from, to);
  tally_append(store, "r", 9, 200);
  assert_model_exact();
  assert_int_equal(redis_ll("GET %s:generation", base), g);

  /* The new count rebuilds beside the old one and switches. */
  tally_append(store, "r", 9, 200);
  must_catch_up(&new, "new");
  assert_true(redis_ll("GET %s:generation", base) > g);
  assert_int_equal(redis_ll("GET %s:partitions", base), to);
  assert_int_equal(pg_partitions(), to);
  char *pending = pg_text("repartition_to");
  assert_string_equal(pending, "null");
  free(pending);

  /* The old worker stops by itself, and refuses when started again. */
  if (!esc_test_worker_thread_wait(&t, 15000))
    fail_msg("the worker of %d partitions kept running after the switch", from);
  assert_refused(t.rc, &t.err, from, to);
  esc_test_worker_thread_stop(&t);
  esc_worker_free(wo);
  esc_status rc = catch_up(&old, "old again", 5000, &err);
  assert_refused(rc, &err, from, to);

  tally_append(store, "r", 9, 100);
  must_catch_up(&new, "new");
  assert_model_exact();
  /* Nothing to do: the layout has that count already. */
  assert_int_equal(
      esc_projection_repartition(NULL, schema, name, to, &started, &err),
      ESC_OK);
  assert_false(started);
  end();
}

static void repartition_one_to_two(void **state) {
  (void)state;
  begin("r12");
  repartition(1, 2);
}

static void repartition_two_to_one(void **state) {
  (void)state;
  begin("r21");
  repartition(2, 1);
}

static void repartition_of_an_unknown_projection(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_projection_repartition(NULL, schema, "tl_nothing", 2, NULL, &err),
      ESC_ENOTFOUND);
  assert_int_equal(
      esc_projection_repartition(NULL, schema, "Bad-Name", 2, NULL, &err),
      ESC_EINVAL);
  assert_int_equal(
      esc_projection_repartition(NULL, schema, "tl_nothing", 0, NULL, &err),
      ESC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_then_two_refuses_the_second),
      cmocka_unit_test(two_then_one_refuses_the_second),
      cmocka_unit_test(repartition_one_to_two),
      cmocka_unit_test(repartition_two_to_one),
      cmocka_unit_test(repartition_of_an_unknown_projection),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

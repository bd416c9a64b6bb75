/*
 * Failover keeps working after PostgreSQL restarts (issue #10, item 3):
 * an active and a standby worker process, PostgreSQL restarted in
 * immediate mode twice while events keep coming, then the active worker
 * killed -9: the standby takes over within 5 s and the read model is
 * exact. Before the fix the standby's lease session broke with the first
 * restart and was never opened again ("take lease: no connection to the
 * server", forever), so nobody took over.
 *
 * The server restarted is a private cluster (tests/support/pgcluster.h),
 * never the shared test server.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgcluster.h"
#include "tally.h"
#include "testenv.h"

#define SCHEMA "restarts"

static esc_test_pg_cluster *cluster;
static char name[48], logs[2][160];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static bool passed;
static redisContext *redis;

static int setup(void **state) {
  (void)state;
  snprintf(name, sizeof name, "pfr%d", (int)getpid());
  for (int i = 0; i < 2; i++)
    snprintf(logs[i], sizeof logs[i], "%s/pg-restarts-%d-%c.log",
             ESC_TEST_TMP_DIR, (int)getpid(), 'a' + i);
  cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  /* The helpers that check the log (esc_test_tally_from_log) read it from
   * the default server: make that the private one. */
  setenv("ESC_PG_URL", esc_test_pg_cluster_url(cluster), 1);
  redis = esc_test_redis(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  if (redis) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(redis, prefix);
    redisFree(redis);
  }
  redis = NULL;
  esc_test_pg_cluster_free(cluster);
  cluster = NULL;
  for (int i = 0; i < 2; i++) {
    if (!passed)
      esc_test_print_tail(logs[i], 60);
    esc_test_remove_log(logs[i]);
  }
  return 0;
}

static esc_store *open_store(void) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = SCHEMA;
  o.app_name = "pg-restarts-test";
  esc_store *st = esc_store_open(esc_test_pg_cluster_url(cluster), &o, &err);
  if (!st)
    fail_msg("open the store: %s", err.msg);
  return st;
}

static pid_t start_worker(int i) {
  return esc_test_projector(ESC_PROJECTOR_PATH, logs[i], NULL, "--schema",
                            SCHEMA, "--name", name, "--pg",
                            esc_test_pg_cluster_url(cluster), "--batch", "50",
                            NULL);
}

/* Waits until pid holds the lease of partition 0; the milliseconds it took,
 * or a failed test. Two holders at once fail it at once. */
static long long wait_holder(pid_t pid, int timeout_ms) {
  long long start = esc_test_now_ms();
  for (;;) {
    PGconn *c = PQconnectdb(esc_test_pg_cluster_url(cluster));
    int holder = PQstatus(c) == CONNECTION_OK
                     ? esc_test_lease_holder(c, name, 0, NULL)
                     : 0;
    PQfinish(c);
    if (holder < 0)
      fail_msg("two backends hold the lease of %s/0", name);
    if (holder == pid)
      return esc_test_now_ms() - start;
    if (esc_test_now_ms() - start > timeout_ms)
      fail_msg("lease of %s/0 held by %d, not by %d, after %d ms", name,
               holder, (int)pid, timeout_ms);
    esc_test_sleep_ms(20);
  }
}

/* Appends through the restarts: a lost reply is settled by the next call
 * (tally_append aborts on any error, so write one batch at a time). */
static void append_some(int count) {
  esc_store *st = open_store();
  tally_append(st, "r", 8, count);
  esc_store_free(st);
}

static void expect_exact(int timeout_ms) {
  esc_store *st = open_store();
  esc_test_tally_expect_exact(st, redis, base, timeout_ms);
  esc_store_free(st);
}

static void standby_takes_over_after_two_restarts(void **state) {
  (void)state;
  esc_store *st = open_store();
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_migrate(st, NULL, &err))
    fail_msg("migrate: %s", err.msg);
  esc_store_free(st);
  esc_test_key_base(SCHEMA, name, base, sizeof base);
  append_some(500);
  pid_t a = start_worker(0);
  wait_holder(a, 15000);
  pid_t b = start_worker(1);
  esc_test_sleep_ms(1500); /* B has tried the lease: it is the standby */

  for (int i = 0; i < 2; i++) {
    esc_test_pg_cluster_stop(cluster, "immediate");
    esc_test_sleep_ms(300);
    esc_test_pg_cluster_start(cluster);
    append_some(200);
    /* A takes its lease back on a new session; B stays the standby. */
    wait_holder(a, 30000);
    esc_test_sleep_ms(1500);
  }
  expect_exact(60000);

  kill(a, SIGKILL);
  assert_true(esc_test_wait_child(a, 10000, NULL));
  long long ms = wait_holder(b, 10000);
  fprintf(stderr, "the standby took over %lld ms after kill -9\n", ms);
  assert_true(ms <= 5000);
  append_some(200);
  expect_exact(60000);
  passed = true;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(standby_takes_over_after_two_restarts,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

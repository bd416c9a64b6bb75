/*
 * Reading the log from a hot standby (issue #16, item 3): a private
 * primary and its streaming standby (tests/support/pgcluster.h).
 *
 * - The gap-free horizon holds on the standby: while a transaction of the
 *   primary that appended first is open, a reader on the standby gets
 *   nothing committed after it, and after its commit gets it first.
 * - A worker reading from the standby (pg_read_url) builds the exact read
 *   model, its reads on the standby and none on the primary; it survives
 *   a restart of the standby.
 * - A standby that stops replaying is abandoned for the primary once it
 *   has been behind longer than replica_max_lag_ms, and read again once
 *   it has caught up.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgcluster.h"
#include "tally.h"
#include "testenv.h"

static esc_test_pg_cluster *primary, *standby;
static redisContext *redis;
static char schema[48], name[48], log_path[192];
static char base[ESC_TEST_KEY_BASE_SIZE];
static bool passed;

static esc_store *open_at(const esc_test_pg_cluster *c) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.app_name = "replica-test";
  esc_store *st = esc_store_open(esc_test_pg_cluster_url(c), &o, &err);
  if (!st)
    fail_msg("open the store at %s: %s", esc_test_pg_cluster_url(c), err.msg);
  return st;
}

static PGconn *connect_to(const esc_test_pg_cluster *c) {
  PGconn *conn = PQconnectdb(esc_test_pg_cluster_url(c));
  if (PQstatus(conn) != CONNECTION_OK)
    fail_msg("connect %s: %s", esc_test_pg_cluster_url(c),
             PQerrorMessage(conn));
  return conn;
}

/* A fresh schema for test `tag` on the primary, replayed on the standby. */
static esc_store *fresh(const char *tag) {
  snprintf(schema, sizeof schema, "t_replica_%s", tag);
  snprintf(name, sizeof name, "rep%s%d", tag, (int)getpid());
  snprintf(log_path, sizeof log_path, "%s/replica-%s-%d.log",
           ESC_TEST_TMP_DIR, tag, (int)getpid());
  esc_store *st = open_at(primary);
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_migrate(st, NULL, &err))
    fail_msg("migrate: %s", err.msg);
  esc_test_key_base(schema, name, base, sizeof base);
  esc_test_pg_standby_catch_up(primary, standby, 30000);
  passed = false;
  return st;
}

static pid_t start_worker(const char *max_lag) {
  return esc_test_projector(
      ESC_PROJECTOR_PATH, log_path, NULL, "--schema", schema, "--name", name,
      "--pg", esc_test_pg_cluster_url(primary), "--pg-read",
      esc_test_pg_cluster_url(standby), "--batch", "50", "--poll", "200",
      "--replica-max-lag", max_lag, NULL);
}

static void expect_exact(int timeout_ms) {
  esc_store *st = open_at(primary);
  esc_test_tally_expect_exact(st, redis, base, timeout_ms);
  esc_store_free(st);
}

/* Rows of the events table the standby's sessions have read. Only the
 * worker reads events there; the server publishes its counts about once
 * a second. */
static long long standby_rows_read(void) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)),"
           " 0) FROM pg_stat_user_tables WHERE schemaname = '%s'"
           " AND relname = 'events'",
           schema);
  PGconn *conn = connect_to(standby);
  long long n = esc_test_query_ll(conn, sql);
  PQfinish(conn);
  return n;
}

/* The worker read at least `events` rows on the standby since `before`. */
static void expect_read_on_standby(long long before, long long events) {
  long long until = esc_test_now_ms() + 5000, got;
  while ((got = standby_rows_read() - before) < events) {
    if (esc_test_now_ms() >= until)
      fail_msg("%lld rows of events read on the standby, not %lld: the "
               "worker did not read the log there",
               got, events);
    esc_test_sleep_ms(100);
  }
}

static bool wait_log(const char *text, int timeout_ms) {
  long long until = esc_test_now_ms() + timeout_ms;
  while (!esc_test_file_contains(log_path, text)) {
    if (esc_test_now_ms() >= until)
      return false;
    esc_test_sleep_ms(50);
  }
  return true;
}

/* ------------------------------------------------------------------------
 * The horizon on the standby
 * ------------------------------------------------------------------------ */

/* Every event readable from the standby now, in order (at most max). */
static size_t read_standby(esc_store *st, esc_uuid *ids, size_t max) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  esc_position next = ESC_POSITION_START;
  size_t n = 0;
  for (;;) {
    if (esc_read_all(st, NULL, next, 3, &ev, &err) != ESC_OK)
      fail_msg("read the standby: %s", err.msg);
    for (size_t i = 0; i < ev.count; i++) {
      assert_true(n < max);
      ids[n++] = ev.items[i].id;
    }
    if (ev.count == 0)
      break;
    next = ev.next;
  }
  esc_events_release(&ev);
  return n;
}

static esc_event_data counted(void) {
  static const unsigned char payload[] = {0x82, 0xa1, 'n', 0x01, 0xa4, 'i',
                                          't',  'e',  'm', 0xa1, 'a'};
  esc_event_data e = {esc_uuid_v4(), "Counted", 1, payload, sizeof payload,
                      NULL, 0};
  return e;
}

static void the_horizon_holds_on_the_standby(void **state) {
  (void)state;
  esc_store *st = fresh("late");
  esc_store *rd = open_at(standby);
  esc_append_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_event_data early = counted();
  assert_int_equal(esc_append(st, "tally-early", ESC_EXPECT_ANY, &early, 1,
                              &res, &err),
                   ESC_OK);

  /* The late transaction appends first, on the primary, and stays open. */
  PGconn *late = connect_to(primary);
  esc_uuid late_id = esc_uuid_v4();
  char late_text[37], sql[512];
  esc_uuid_format(&late_id, late_text);
  esc_test_exec(late, "BEGIN");
  snprintf(sql, sizeof sql,
           "SELECT status FROM %s.append('tally-late', -1, ARRAY['%s'::uuid],"
           " ARRAY['Counted'], ARRAY[1], ARRAY['\\x81a16e01'::bytea],"
           " ARRAY[NULL::bytea])",
           schema, late_text);
  char *status = esc_test_query_text(late, sql);
  assert_string_equal(status, "0");
  free(status);

  enum { LATER = 6 };
  esc_uuid later[LATER];
  for (int i = 0; i < LATER; i++) {
    esc_event_data e = counted();
    char stream[32];
    snprintf(stream, sizeof stream, "tally-%d", i % 3);
    assert_int_equal(
        esc_append(st, stream, ESC_EXPECT_ANY, &e, 1, &res, &err), ESC_OK);
    later[i] = e.id;
  }
  /* The standby has replayed the later commits, and still gives nothing
   * after the open transaction's event. */
  esc_test_pg_standby_catch_up(primary, standby, 30000);
  esc_uuid seen[16];
  for (int round = 0; round < 3; round++) {
    size_t n = read_standby(rd, seen, 16);
    assert_true(n <= 1);
    if (n == 1)
      assert_memory_equal(&seen[0], &early.id, sizeof early.id);
    esc_test_sleep_ms(30);
  }

  esc_test_exec(late, "COMMIT");
  PQfinish(late);
  esc_test_pg_standby_catch_up(primary, standby, 30000);
  size_t n = 0;
  long long until = esc_test_now_ms() + 15000;
  while ((n = read_standby(rd, seen, 16)) < 2 + LATER &&
         esc_test_now_ms() < until)
    esc_test_sleep_ms(20); /* other sessions may hold the horizon a moment */
  assert_int_equal(n, 2 + LATER);
  assert_memory_equal(&seen[0], &early.id, sizeof early.id);
  assert_memory_equal(&seen[1], &late_id, sizeof late_id);
  for (int i = 0; i < LATER; i++)
    assert_memory_equal(&seen[2 + i], &later[i], sizeof later[i]);
  esc_store_free(rd);
  esc_store_free(st);
  passed = true;
}

/* ------------------------------------------------------------------------
 * A worker reading from the standby
 * ------------------------------------------------------------------------ */

static void a_worker_reads_the_standby_and_survives_its_restart(void **state) {
  (void)state;
  esc_store *st = fresh("worker");
  tally_append(st, "w", 8, 600);
  long long before = standby_rows_read();
  pid_t w = start_worker("0");
  expect_exact(60000);
  expect_read_on_standby(before, 600); /* its reads are on the standby */
  /* Woken by the primary, it follows new events through the standby. */
  before = standby_rows_read();
  tally_append(st, "w", 8, 200);
  expect_exact(30000);
  expect_read_on_standby(before, 200);

  esc_test_pg_cluster_stop(standby, "fast");
  tally_append(st, "w", 8, 300);
  esc_test_sleep_ms(500);
  esc_test_pg_cluster_start(standby);
  before = standby_rows_read(); /* counted anew since the restart */
  tally_append(st, "w", 8, 200);
  expect_exact(60000);
  expect_read_on_standby(before, 200);
  int status;
  assert_int_equal(waitpid(w, &status, WNOHANG), 0); /* still running */
  esc_store_free(st);
  passed = true;
}

static void a_standby_that_stops_replaying_is_abandoned(void **state) {
  (void)state;
  esc_store *st = fresh("lag");
  tally_append(st, "l", 4, 200);
  start_worker("400");
  expect_exact(60000);
  PGconn *s = connect_to(standby);
  esc_test_exec(s, "SELECT pg_wal_replay_pause()");
  tally_append(st, "l", 4, 300);
  /* Only the primary has these now: the worker must go there for them. */
  expect_exact(30000);
  assert_true(wait_log("reading the log from the primary", 5000));
  esc_test_exec(s, "SELECT pg_wal_replay_resume()");
  PQfinish(s);
  if (!wait_log("reading the log from it again",
                3 * ESC_WORKER_REPLICA_RECHECK_MS + 5000))
    fail_msg("the worker did not go back to the standby; see %s", log_path);
  tally_append(st, "l", 4, 100);
  expect_exact(30000);
  esc_store_free(st);
  passed = true;
}

static int setup(void **state) {
  (void)state;
  primary = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  standby = esc_test_pg_standby_new(primary);
  /* The helpers that check the log read it from the default server. */
  setenv("ESC_PG_URL", esc_test_pg_cluster_url(primary), 1);
  redis = esc_test_redis(NULL);
  return 0;
}

/* After each test: its worker stopped, its keys gone, its log kept only
 * when it failed. */
static int after_each(void **state) {
  (void)state;
  esc_test_kill_children();
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
  snprintf(prefix, sizeof prefix, "%s:", base);
  if (base[0])
    esc_test_redis_delete_prefix(redis, prefix);
  if (!passed)
    esc_test_print_tail(log_path, 60);
  esc_test_remove_log(log_path);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (redis)
    redisFree(redis);
  esc_test_pg_cluster_free(standby);
  esc_test_pg_cluster_free(primary);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(the_horizon_holds_on_the_standby, after_each),
      cmocka_unit_test_teardown(
          a_worker_reads_the_standby_and_survives_its_restart, after_each),
      cmocka_unit_test_teardown(a_standby_that_stops_replaying_is_abandoned,
                                after_each),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

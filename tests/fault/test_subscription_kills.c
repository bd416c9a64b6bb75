/*
 * kill -9 during a durable subscription: while a writer appends, the
 * process running the subscription (tests/fault/projector.c
 * --subscription, 2 partitions) is SIGKILLed at random moments at least
 * 30 times and started again each time; then one last run catches up.
 * The handler records every delivery, and its effect deduplicated on the
 * delivery's idempotency key, in tables of the test's own. At the end:
 *
 *   - every event of the log was delivered at least once, and the dedupe
 *     table holds each exactly once (so no effect was lost or doubled);
 *   - within each run, each stream's deliveries are its versions in
 *     order, one after the other (none skipped, none out of order);
 *   - a run never starts a stream past the version after the highest
 *     one delivered before it (nothing skipped across a kill).
 *
 * Without the PostgreSQL checkpoint moving only after the handler
 * returned, a kill would skip events; without the compare-and-set on the
 * lease's session, a restarted run could move it back or past.
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

#include "testenv.h"

enum { KILLS = 30, STREAMS = 40 };

static char schema[48], name[48], log_path[128];
static bool passed;

static int setup(void **state) {
  int pid = (int)getpid();
  (void)state;
  snprintf(schema, sizeof schema, "t_sub_kills_%d", pid);
  snprintf(name, sizeof name, "subk%d", pid);
  snprintf(log_path, sizeof log_path, "/tmp/esc-fault-sub-kills-%d.log", pid);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_fault_cleanup(schema, log_path, passed);
  return 0;
}

/* A run with a batch size and a handler delay picked at random, so that
 * kills land while reading, delivering, checkpointing and waiting. */
static pid_t start(bool fast) {
  static const char *const batches[] = {"3", "40", "300"};
  char delay[16];
  snprintf(delay, sizeof delay, "%d", fast ? 0 : rand() % 3000);
  return esc_test_projector(ESC_PROJECTOR_PATH, log_path, NULL, "--schema",
                            schema, "--name", name, "--subscription",
                            "--partitions", "2", "--batch", batches[rand() % 3],
                            "--delay-us", delay, "--lease-poll", "100",
                            "--poll", "200", fast ? NULL : "--quiet", NULL);
}

static long long count_of(PGconn *pg, const char *fmt) {
  char sql[1024];
  snprintf(sql, sizeof sql, fmt, schema, schema, schema);
  return esc_test_query_ll(pg, sql);
}

static void kill9_at_random_moments_delivers_everything(void **state) {
  (void)state;
  esc_store_free(esc_test_fresh_store(schema));
  PGconn *pg = esc_test_pg();
  char sql[512];
  snprintf(sql, sizeof sql,
           "CREATE TABLE %s.sub_deliveries (seq bigserial PRIMARY KEY,"
           " pid int NOT NULL, stream_id text NOT NULL,"
           " version bigint NOT NULL, event_id uuid NOT NULL);"
           " CREATE TABLE %s.sub_handled (key uuid PRIMARY KEY,"
           " event_id uuid NOT NULL UNIQUE)",
           schema, schema);
  esc_test_exec(pg, sql);
  srand((unsigned)getpid());
  long long t0 = esc_test_now_ms();
  esc_test_writer *writer = esc_test_writer_start(schema, "k", STREAMS, 5, 40);
  for (int k = 0; k < KILLS; k++) {
    /* Killed once it holds a lease (it is delivering), at a random
     * moment of its work. */
    pid_t pid = start(false);
    long long up = esc_test_now_ms() + 10000;
    while (esc_test_lease_holder(pg, name, 0, NULL) != pid &&
           esc_test_lease_holder(pg, name, 1, NULL) != pid &&
           esc_test_now_ms() < up)
      esc_test_sleep_ms(5);
    esc_test_sleep_ms(rand() % 300);
    esc_test_kill_child(pid);
  }
  long long appended = esc_test_writer_stop(writer);
  long long kills_ms = esc_test_now_ms() - t0;

  /* The last run catches up, then stops cleanly. */
  esc_store *st = esc_test_open_store(schema);
  esc_test_await_readable(st, "tally");
  esc_store_free(st);
  long long events = count_of(pg, "SELECT count(*) FROM %s.events");
  assert_int_equal(events, appended);
  pid_t last = start(true);
  long long deadline = esc_test_now_ms() + 30000;
  long long handled = 0;
  while ((handled = count_of(pg, "SELECT count(*) FROM %s.sub_handled")) <
             events &&
         esc_test_now_ms() < deadline)
    esc_test_sleep_ms(100);
  /* The killed runs may have delivered everything already: then the loop
   * above ends at once, and a SIGTERM sent before the last run has even
   * set up its handler kills it (two CI runs in five failed so). It is
   * stopped once it holds both leases, that is once it is running. */
  while ((esc_test_lease_holder(pg, name, 0, NULL) != last ||
          esc_test_lease_holder(pg, name, 1, NULL) != last) &&
         esc_test_now_ms() < deadline)
    esc_test_sleep_ms(20);
  if (handled < events && getenv("ESC_TEST_VERBOSE")) {
    char *what = esc_test_query_text(
        pg, "SELECT string_agg(pid || ' ' || application_name || ' ' ||"
            " state || ' ' || coalesce(wait_event, '-') || ' ' ||"
            " left(query, 60), E'\n') FROM pg_stat_activity"
            " WHERE datname = current_database()");
    fprintf(stderr, "stuck at %lld of %lld:\n%s\n", handled, events, what);
    free(what);
    char q[600];
    snprintf(q, sizeof q,
             "SELECT (SELECT string_agg(partition || ' at ' || tx_id || '/' ||"
             " global_position, ', ') FROM %s.subscription_checkpoints) ||"
             " ' first missing: ' || coalesce((SELECT min(e.tx_id::text || '/'"
             " || e.global_position || ' ' || e.stream_id) FROM %s.events e"
             " WHERE NOT EXISTS (SELECT 1 FROM %s.sub_handled h WHERE"
             " h.event_id = e.event_id)), '-')",
             schema, schema, schema);
    what = esc_test_query_text(pg, q);
    fprintf(stderr, "%s\n", what);
    free(what);
  }
  int status = 0;
  kill(last, SIGTERM);
  if (!esc_test_wait_child(last, 20000, &status))
    fail_msg("the last run did not stop on SIGTERM");
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  long long delivered = count_of(pg, "SELECT count(*) FROM %s.sub_deliveries");
  fprintf(stderr,
          "  %d kills in %lld ms while %lld events were appended; %lld "
          "deliveries (%lld repeated), %lld runs\n",
          KILLS, kills_ms, appended, delivered, delivered - events,
          count_of(pg, "SELECT count(DISTINCT pid) FROM %s.sub_deliveries"));
  /* At least once, and exactly once behind the key. */
  assert_int_equal(handled, events);
  assert_int_equal(count_of(pg, "SELECT count(*) FROM %s.events e WHERE NOT"
                                " EXISTS (SELECT 1 FROM %s.sub_handled h"
                                " WHERE h.event_id = e.event_id)"),
                   0);
  assert_int_equal(count_of(pg, "SELECT count(*) FROM %s.events e WHERE NOT"
                                " EXISTS (SELECT 1 FROM %s.sub_deliveries d"
                                " WHERE d.event_id = e.event_id)"),
                   0);
  /* In each run, each stream's versions one after the other. */
  assert_int_equal(
      count_of(pg, "SELECT count(*) FROM (SELECT version - lag(version)"
                   " OVER (PARTITION BY pid, stream_id ORDER BY seq) AS step"
                   " FROM %s.sub_deliveries) x WHERE step <> 1"),
      0);
  /* A run starts each stream at most one past what came before it. */
  assert_int_equal(
      count_of(pg, "SELECT count(*) FROM (SELECT d.*, row_number() OVER"
                   " (PARTITION BY pid, stream_id ORDER BY seq) AS nth"
                   " FROM %s.sub_deliveries d) f WHERE nth = 1 AND"
                   " version > 1 + coalesce((SELECT max(version) FROM"
                   " %s.sub_deliveries b WHERE b.stream_id = f.stream_id"
                   " AND b.seq < f.seq), 0)"),
      0);
  /* Both partitions' checkpoints are at the end of the log: a page of
   * the category moves every partition past it, delivered or not. */
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %s.subscription_checkpoints WHERE"
           " subscription = '%s' AND global_position < (SELECT"
           " max(global_position) FROM %s.events WHERE"
           " stream_id LIKE 'tally-%%')",
           schema, name, schema);
  assert_int_equal(esc_test_query_ll(pg, sql), 0);
  PQfinish(pg);
  passed = true;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kill9_at_random_moments_delivers_everything),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

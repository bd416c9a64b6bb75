/*
 * Failover between worker processes (guarantees 6 and 8):
 *
 *  - a standby waits while another process holds the lease, and takes over
 *    within seconds of that process being killed -9, while events keep
 *    coming; nothing is applied twice or skipped;
 *  - a zombie: a worker frozen (SIGSTOP) in the middle of its work loses
 *    its lease (its lease session is terminated, as a network partition or
 *    an operator would), a second worker takes over and moves on; when the
 *    zombie wakes up its stale batch is refused by the checkpoint
 *    compare-and-set ("checkpoint moved") and the read model stays exact;
 *  - four partitions shared by processes (--only 0,1 and --only 2,3, then a
 *    standby for all four taking over two of them): each stream stays in
 *    order and the counters are exact.
 *
 * Workers are real processes (tests/fault/projector.c) started with
 * fork + execv and signalled with kill(2); every wait has a deadline and
 * the teardown kills whatever is left.
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

#include "tally.h"
#include "testenv.h"

static char schema[48], name[48];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static char logs[4][128];
static bool passed;
static esc_test_writer *writer;
static redisContext *redis;
static PGconn *pg;

static int setup(void **state) {
  static int round;
  (void)state;
  round++;
  snprintf(schema, sizeof schema, "t_pf_failover_%d_%d", (int)getpid(), round);
  snprintf(name, sizeof name, "pff%d_%d", (int)getpid(), round);
  for (int i = 0; i < 4; i++)
    snprintf(logs[i], sizeof logs[i], "/tmp/esc-fault-failover-%d-%d-%c.log",
             (int)getpid(), round, 'a' + i);
  passed = false;
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  redis = esc_test_redis(NULL);
  pg = esc_test_pg();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  esc_test_writer_stop(writer);
  writer = NULL;
  if (redis) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(redis, prefix);
    redisFree(redis);
    redis = NULL;
  }
  if (pg)
    PQfinish(pg);
  pg = NULL;
  esc_test_drop_schema(schema);
  for (int i = 0; i < 4; i++) {
    if (!passed)
      esc_test_print_tail(logs[i], 40);
    esc_test_remove_log(logs[i]);
  }
  return 0;
}

/* ------------------------------------------------------------ helpers -- */

static int64_t append_up_front(int streams, int count) {
  esc_store *st = esc_test_open_store_async(schema);
  int64_t sum = tally_append(st, "u", streams, count);
  esc_store_free(st);
  return sum;
}

static long long total_now(void) {
  long long g = esc_test_redis_ll(redis, -1, "GET %s:generation", base);
  return g < 0 ? 0 : esc_test_redis_ll(redis, 0, "GET %s:g%lld:total", base, g);
}

/* Waits until the lease of partition is held by pid (0: by nobody); the
 * milliseconds it took, or a failed test. Two holders at once fail it at
 * once. */
static long long wait_holder(int partition, int pid, int timeout_ms) {
  long long start = esc_test_now_ms();
  for (;;) {
    int holder = esc_test_lease_holder(pg, name, partition, NULL);
    if (holder < 0)
      fail_msg("two backends hold the lease of %s/%d", name, partition);
    if (holder == pid)
      return esc_test_now_ms() - start;
    if (esc_test_now_ms() - start > timeout_ms)
      fail_msg("lease of %s/%d: held by %d, not by %d after %d ms", name,
               partition, holder, pid, timeout_ms);
    esc_test_sleep_ms(20);
  }
}

/* Waits until the checkpoint of partition differs from cp. */
static long long wait_checkpoint_moves(int partition, const char *cp,
                                       int timeout_ms) {
  char now[ESC_POSITION_TOKEN_MAX];
  long long start = esc_test_now_ms();
  for (;;) {
    esc_test_checkpoint(redis, base, partition, now, sizeof now);
    if (strcmp(now, cp) != 0)
      return esc_test_now_ms() - start;
    if (esc_test_now_ms() - start > timeout_ms)
      return -1;
    esc_test_sleep_ms(10);
  }
}

/* The model of the whole log, then waits until Redis holds it exactly. */
static void expect_exact(int timeout_ms) {
  char why[512];
  esc_store *st = esc_test_open_store(schema);
  esc_test_tally *m = esc_test_tally_from_log(st, true);
  long long ms =
      esc_test_tally_wait(m, redis, base, timeout_ms, why, sizeof why);
  if (ms < 0)
    fail_msg("read model not exact after %d ms: %s", timeout_ms, why);
  fprintf(stderr,
          "exact: %lld events, total %lld (%lld ms after the last "
          "append)\n",
          (long long)esc_test_tally_events(m),
          (long long)esc_test_tally_total(m), ms);
  esc_test_tally_free(m);
  esc_store_free(st);
}

static void stop_cleanly(pid_t pid) {
  int status = 0;
  kill(pid, SIGTERM);
  if (!esc_test_wait_child(pid, 20000, &status))
    fail_msg("projector %d did not stop on SIGTERM", (int)pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("projector %d: exit status 0x%x after SIGTERM", (int)pid, status);
}

static void kill9(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  if (!esc_test_wait_child(pid, 10000, &status))
    fail_msg("projector %d did not die of SIGKILL", (int)pid);
}

/* -------------------------------------------------------------- tests -- */

static void standby_takes_over_within_seconds(void **state) {
  (void)state;
  char cp[ESC_POSITION_TOKEN_MAX];
  int64_t first = append_up_front(20, 2000);

  /* A takes the lease; B, started after it, waits as a standby with the
   * default lease poll (1 s). */
  pid_t a = esc_test_projector(ESC_PROJECTOR_PATH, logs[0], NULL, "--schema",
                               schema, "--name", name, "--batch", "50", NULL);
  wait_holder(0, a, 10000);
  pid_t b = esc_test_projector(ESC_PROJECTOR_PATH, logs[1], NULL, "--schema",
                               schema, "--name", name, "--batch", "50", NULL);
  writer = esc_test_writer_start(schema, "w", 10, 20, 10);
  long long deadline = esc_test_now_ms() + 30000;
  while (total_now() < first && esc_test_now_ms() < deadline)
    esc_test_sleep_ms(20);
  assert_true(total_now() >= first);

  /* Exactly one active worker, A, all along (longer than the standby's
   * lease poll), per pg_locks and per the status API. */
  for (int i = 0; i < 30; i++) {
    assert_int_equal(esc_test_lease_holder(pg, name, 0, NULL), a);
    esc_test_sleep_ms(50);
  }
  assert_false(esc_test_file_contains(logs[1], "lease taken"));
  esc_partition_status *sts = NULL;
  size_t n = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_status(NULL, NULL, schema, NULL, &sts, &n, &err))
    fail_msg("status: %s", err.msg);
  assert_int_equal(n, 1);
  char holder[128];
  snprintf(holder, sizeof holder, "esc-worker %s/0 pid %d", name, (int)a);
  assert_string_equal(sts[0].lease_holder, holder);
  assert_true(sts[0].lease_pid > 0);
  free(sts);

  /* Kill -9 the active one; the standby takes over while events come. */
  kill9(a);
  esc_test_sleep_ms(100); /* let Redis run whatever A had sent */
  esc_test_checkpoint(redis, base, 0, cp, sizeof cp);
  long long moved = wait_checkpoint_moves(0, cp, 10000);
  if (moved < 0)
    fail_msg("the checkpoint did not move within 10 s of the kill");
  long long takeover = moved + 100;
  long long lease_ms = wait_holder(0, b, 1000);
  fprintf(stderr,
          "standby took over %lld ms after kill -9 (its lease seen %lld ms "
          "after that)\n",
          takeover, lease_ms);
  assert_true(takeover < 5000);

  esc_test_sleep_ms(1000);
  long long more = esc_test_writer_stop(writer);
  writer = NULL;
  fprintf(stderr, "the writer appended %lld events meanwhile\n", more);
  expect_exact(60000);
  stop_cleanly(b);
  passed = true;
}

static void zombie_after_failover_is_fenced(void **state) {
  (void)state;
  char cp[ESC_POSITION_TOKEN_MAX];
  int backend = 0;
  append_up_front(20, 3000);

  /* A: slow batches (50 events, 2 ms each) and a lease check only every
   * 60 s, so that it learns about losing its lease only from the fence. */
  pid_t a = esc_test_projector(
      ESC_PROJECTOR_PATH, logs[0], NULL, "--schema", schema, "--name", name,
      "--batch", "50", "--delay-us", "2000", "--lease-poll", "60000", NULL);
  wait_holder(0, a, 10000);
  long long deadline = esc_test_now_ms() + 30000;
  while (total_now() == 0 && esc_test_now_ms() < deadline)
    esc_test_sleep_ms(10);
  if (total_now() == 0)
    fail_msg("A applied nothing within 30 s");
  esc_test_sleep_ms(30 + rand() % 50); /* into a batch */
  kill(a, SIGSTOP);
  esc_test_sleep_ms(100);
  esc_test_checkpoint(redis, base, 0, cp, sizeof cp);
  long long at_stop = total_now();

  /* Failover: A's lease session ends (A is frozen, its sockets are alive,
   * so the lock would otherwise never free) and B takes over. */
  assert_int_equal(esc_test_lease_holder(pg, name, 0, &backend), a);
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", backend);
  esc_test_exec(pg, sql);
  wait_holder(0, 0, 5000);
  long long t0 = esc_test_now_ms();
  pid_t b = esc_test_projector(ESC_PROJECTOR_PATH, logs[1], NULL, "--schema",
                               schema, "--name", name, "--batch", "50",
                               "--lease-poll", "200", NULL);
  wait_holder(0, b, 5000);
  if (wait_checkpoint_moves(0, cp, 10000) < 0)
    fail_msg("B did not move the checkpoint within 10 s");
  fprintf(stderr,
          "B took over %lld ms after its start (A stopped at total "
          "%lld)\n",
          esc_test_now_ms() - t0, at_stop);
  writer = esc_test_writer_start(schema, "w", 10, 20, 20);
  esc_test_sleep_ms(1000);

  /* The zombie wakes up and tries to apply its batch. */
  kill(a, SIGCONT);
  deadline = esc_test_now_ms() + 15000;
  while (!esc_test_file_contains(logs[0], "checkpoint moved") &&
         esc_test_now_ms() < deadline)
    esc_test_sleep_ms(50);
  esc_test_sleep_ms(1000); /* A and B both write for a while: fenced */
  long long more = esc_test_writer_stop(writer);
  writer = NULL;
  fprintf(stderr, "the writer appended %lld events meanwhile\n", more);
  expect_exact(60000);
  /* Exact, and not by luck: A did try to apply with its stale view. */
  if (!esc_test_file_contains(logs[0], "checkpoint moved"))
    fail_msg("A's stale batch was not refused (no \"checkpoint moved\" in "
             "its log within 15 s)");
  assert_int_equal(esc_test_lease_holder(pg, name, 0, NULL), b);
  stop_cleanly(a);
  stop_cleanly(b);
  passed = true;
}

static void four_partitions_on_several_processes(void **state) {
  (void)state;
  append_up_front(40, 4000);
  pid_t a =
      esc_test_projector(ESC_PROJECTOR_PATH, logs[0], NULL, "--schema", schema,
                         "--name", name, "--partitions", "4", "--only", "0,1",
                         "--batch", "64", "--lease-poll", "200", NULL);
  pid_t b =
      esc_test_projector(ESC_PROJECTOR_PATH, logs[1], NULL, "--schema", schema,
                         "--name", name, "--partitions", "4", "--only", "2,3",
                         "--batch", "64", "--lease-poll", "200", NULL);
  for (int p = 0; p < 4; p++)
    wait_holder(p, p < 2 ? a : b, 10000);
  writer = esc_test_writer_start(schema, "w", 10, 40, 10);
  esc_test_sleep_ms(1500);

  /* C may run every partition: a standby for all four. */
  pid_t c = esc_test_projector(ESC_PROJECTOR_PATH, logs[2], NULL, "--schema",
                               schema, "--name", name, "--partitions", "4",
                               "--batch", "64", "--lease-poll", "200", NULL);
  esc_test_sleep_ms(1000);
  for (int p = 0; p < 4; p++)
    assert_int_equal(esc_test_lease_holder(pg, name, p, NULL), p < 2 ? a : b);

  kill9(a);
  long long t0 = esc_test_now_ms();
  wait_holder(0, c, 5000);
  wait_holder(1, c, 5000);
  fprintf(stderr, "C took partitions 0 and 1 over within %lld ms\n",
          esc_test_now_ms() - t0);
  for (int p = 2; p < 4; p++)
    assert_int_equal(esc_test_lease_holder(pg, name, p, NULL), b);
  esc_test_sleep_ms(1000);
  long long more = esc_test_writer_stop(writer);
  writer = NULL;
  fprintf(stderr, "the writer appended %lld events meanwhile\n", more);
  expect_exact(60000);

  /* The status API agrees: four partitions, no lag, the right holders. */
  esc_partition_status *sts = NULL;
  size_t n = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_status(NULL, NULL, schema, NULL, &sts, &n, &err))
    fail_msg("status: %s", err.msg);
  assert_int_equal(n, 4);
  for (size_t i = 0; i < n; i++) {
    char holder[128];
    snprintf(holder, sizeof holder, "esc-worker %s/%zu pid %d", name, i,
             (int)(i < 2 ? c : b));
    assert_int_equal(sts[i].partition, (int)i);
    assert_string_equal(sts[i].lease_holder, holder);
    assert_int_equal(sts[i].lag_events, 0);
  }
  free(sts);
  stop_cleanly(b);
  stop_cleanly(c);
  passed = true;
}

int main(void) {
  srand((unsigned)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(standby_takes_over_within_seconds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(zombie_after_failover_is_fenced, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(four_partitions_on_several_processes,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

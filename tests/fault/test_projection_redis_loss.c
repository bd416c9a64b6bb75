/*
 * Redis loses the read models (guarantees 6 and 7): with a private
 * redis-server started by the test, a running worker process projects the
 * log; then Redis loses everything - FLUSHALL while the worker is idle,
 * FLUSHALL while events keep coming, and a kill -9 of redis-server
 * restarted empty. Each time the worker notices on its own and rebuilds
 * from the log: the read model comes back exact within a deadline, with no
 * restart of the worker.
 *
 * The shared Redis is never flushed: everything here runs against the
 * private server.
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

static char schema[48], name[48], url[64], log_path[128], redis_log[128];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static int port;
static pid_t redis_pid, worker_pid;
static esc_test_writer *writer;
static redisContext *redis;
static bool failed_any;
static int passed; /* tests that got to their end */

static void start_redis(void) {
  redis_pid = esc_test_redis_server_start(port, redis_log);
  redis = esc_test_redis(url);
}

static int group_setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_pf_redisloss_%d", (int)getpid());
  snprintf(name, sizeof name, "pfr%d", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/esc-fault-redisloss-%d.log",
           (int)getpid());
  snprintf(redis_log, sizeof redis_log, "/tmp/esc-fault-redisloss-%d-redis.log",
           (int)getpid());
  port = esc_test_free_port(63900, 50);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  start_redis();
  worker_pid = esc_test_projector(
      ESC_PROJECTOR_PATH, log_path, NULL, "--schema", schema, "--name", name,
      "--partitions", "2", "--batch", "200", "--redis", url, "--lease-poll",
      "200", "--poll", "200", NULL);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  failed_any = failed_any || passed != 4;
  esc_test_writer_stop(writer);
  writer = NULL;
  esc_test_kill_children(); /* the worker and the private redis-server */
  if (redis)
    redisFree(redis);
  esc_test_drop_schema(schema);
  if (failed_any) {
    esc_test_print_tail(log_path, 60);
    esc_test_print_tail(redis_log, 10);
  }
  esc_test_remove_log(log_path);
  esc_test_remove_log(redis_log);
  return 0;
}

static void append(int streams, int count) {
  esc_store *st = esc_test_open_store_async(schema);
  tally_append(st, "u", streams, count);
  esc_store_free(st);
}

/* The model of the whole log; waits until the private Redis holds it. */
static long long wait_exact(int timeout_ms, const char *when) {
  char why[512];
  esc_store *st = esc_test_open_store(schema);
  esc_test_tally *m = esc_test_tally_from_log(st, true);
  long long ms =
      esc_test_tally_wait(m, redis, base, timeout_ms, why, sizeof why);
  esc_test_tally_free(m);
  esc_store_free(st);
  if (ms < 0) {
    failed_any = true;
    fail_msg("%s: not rebuilt within %d ms: %s", when, timeout_ms, why);
  }
  return ms;
}

static void flushall(void) {
  redisReply *r = redisCommand(redis, "FLUSHALL");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  assert_int_equal(esc_test_redis_ll(redis, -1, "DBSIZE"), 0);
}

/* ------------------------------------------------------------------------ */

static void projects_into_the_private_redis(void **state) {
  (void)state;
  append(20, 3000);
  long long ms = wait_exact(60000, "first build");
  fprintf(stderr, "first build exact after %lld ms\n", ms);
  passed++;
}

static void flushall_while_idle_is_rebuilt(void **state) {
  (void)state;
  wait_exact(60000, "before FLUSHALL");
  esc_test_sleep_ms(500); /* the worker is idle: nothing left to read */
  flushall();
  long long ms = wait_exact(20000, "FLUSHALL while idle, no new events");
  fprintf(stderr, "FLUSHALL while idle: exact again after %lld ms\n", ms);
  passed++;
}

static void flushall_under_load_is_rebuilt(void **state) {
  (void)state;
  writer = esc_test_writer_start(schema, "w", 10, 20, 10);
  esc_test_sleep_ms(700);
  flushall();
  esc_test_sleep_ms(1500);
  long long n = esc_test_writer_stop(writer);
  writer = NULL;
  long long ms = wait_exact(30000, "FLUSHALL under load");
  fprintf(stderr,
          "FLUSHALL under load (%lld events appended meanwhile): exact "
          "%lld ms after the last append\n",
          n, ms);
  passed++;
}

static void redis_killed_and_restarted_empty_is_rebuilt(void **state) {
  (void)state;
  writer = esc_test_writer_start(schema, "v", 10, 20, 10);
  esc_test_sleep_ms(700);
  redisFree(redis);
  redis = NULL;
  esc_test_kill_child(redis_pid); /* SIGKILL: no save, nothing kept */
  esc_test_sleep_ms(1000);        /* the worker sees connection errors */
  start_redis();
  esc_test_sleep_ms(1000);
  long long n = esc_test_writer_stop(writer);
  writer = NULL;
  long long ms = wait_exact(30000, "redis-server restarted empty");
  fprintf(stderr,
          "redis-server killed and restarted empty (%lld events appended "
          "meanwhile): exact %lld ms after the last append\n",
          n, ms);
  /* ... and while idle after that, once more. */
  esc_test_sleep_ms(500);
  redisFree(redis);
  redis = NULL;
  esc_test_kill_child(redis_pid);
  esc_test_sleep_ms(300);
  start_redis();
  ms = wait_exact(30000, "redis-server restarted empty while idle");
  fprintf(stderr,
          "redis-server restarted empty while idle: exact after "
          "%lld ms\n",
          ms);

  /* The worker survived all of it without a restart, and stops cleanly. */
  int status = 0;
  kill(worker_pid, SIGTERM);
  if (!esc_test_wait_child(worker_pid, 20000, &status))
    fail_msg("the worker did not stop on SIGTERM");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("the worker's exit status: 0x%x", status);
  passed++;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(projects_into_the_private_redis),
      cmocka_unit_test(flushall_while_idle_is_rebuilt),
      cmocka_unit_test(flushall_under_load_is_rebuilt),
      cmocka_unit_test(redis_killed_and_restarted_empty_is_rebuilt),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

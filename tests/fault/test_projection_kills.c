/*
 * kill -9 during a projection (guarantee 6): 50,000 events are projected
 * by a worker process that is SIGKILLed at random moments at least 30
 * times and restarted each time. At the end every counter equals what the
 * log says (nothing applied twice, nothing skipped) and every stream's seq
 * list holds its versions 1..n in order, once each.
 *
 * Then the same log is rebuilt into a new generation by workers killed
 * the same way: queries keep reading the full, exact total throughout,
 * and the new generation ends up exact.
 *
 * Without the atomic batch + checkpoint compare-and-set, a kill between
 * the Redis writes and the checkpoint (or a restart from a stale
 * checkpoint) would count events twice or skip them.
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

enum { EVENTS = 50000, STREAMS = 200, KILLS = 30 };

static char schema[48], name[48], log_path[128];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static bool passed;
static esc_test_tally *model; /* the log of the first test */
static int64_t sum;

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_pf_kills_%d", (int)getpid());
  snprintf(name, sizeof name, "pfk%d", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/esc-fault-kills-%d.log",
           (int)getpid());
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  esc_test_tally_free(model);
  model = NULL;
  redisContext *r = base[0] ? esc_test_redis_try(NULL) : NULL;
  if (r) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(r, prefix);
    redisFree(r);
  }
  esc_test_drop_schema(schema);
  if (passed)
    esc_test_remove_log(log_path);
  else
    esc_test_print_tail(log_path, 60);
  return 0;
}

/* A worker with a batch size and a per-event handler delay picked at
 * random, so that kills land in every phase: reading, handling, applying,
 * waiting. A slow one handles events ~10x slower: the loop uses it when
 * the projection runs ahead of the kills, so that they spread over all of
 * it whatever the machine's speed; even a fast one is slowed a little, so
 * that no single run does much of the work. The last run, fast, has no
 * delay at all. */
enum pace { UNDELAYED, QUICK, SLOW };

static pid_t start(enum pace pace) {
  static const char *const batches[] = {"13", "100", "500"};
  char delay[16];
  snprintf(delay, sizeof delay, "%d",
           pace == SLOW    ? 150 + rand() % 250
           : pace == QUICK ? 20 + rand() % 30
                           : 0);
  return esc_test_projector(
      ESC_PROJECTOR_PATH, log_path, NULL, "--schema", schema, "--name", name,
      "--partitions", "1", "--batch", batches[rand() % 3], "--delay-us", delay,
      "--lease-poll", "100", "--poll", "200", "--quiet", NULL);
}

/* SIGTERM once the worker is up (it holds its lease): exit status 0. */
static void stop_cleanly(pid_t pid) {
  PGconn *pg = esc_test_pg();
  long long deadline = esc_test_now_ms() + 20000;
  while (esc_test_lease_holder(pg, name, 0, NULL) != pid &&
         esc_test_now_ms() < deadline)
    esc_test_sleep_ms(10);
  PQfinish(pg);
  int status = 0;
  kill(pid, SIGTERM);
  if (!esc_test_wait_child(pid, 20000, &status))
    fail_msg("projector %d did not stop on SIGTERM", (int)pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail_msg("projector %d: exit status 0x%x after SIGTERM", (int)pid, status);
}

static long long total_now(redisContext *r) {
  long long g = esc_test_redis_ll(r, -1, "GET %s:generation", base);
  return g < 0 ? 0 : esc_test_redis_ll(r, 0, "GET %s:g%lld:total", base, g);
}

static void kill9_at_random_moments_loses_and_doubles_nothing(void **state) {
  (void)state;
  char why[512];
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  esc_store *st = esc_test_open_store_async(schema);
  redisContext *r = esc_test_redis(NULL);
  long long t0 = esc_test_now_ms();
  sum = tally_append(st, "k", STREAMS, EVENTS);
  esc_test_tally *m = model = esc_test_tally_from_log(st, true);
  assert_int_equal(esc_test_tally_total(m), sum);
  assert_int_equal(esc_test_tally_events(m), EVENTS);
  fprintf(stderr, "appended %d events (sum %lld) in %lld ms\n", EVENTS,
          (long long)sum, esc_test_now_ms() - t0);

  /* Kill -9 at random moments. A kill counts as "mid-projection" when the
   * work was not finished at that moment. */
  srand((unsigned)getpid() ^ (unsigned)t0);
  int kills = 0, mid = 0, productive = 0;
  t0 = esc_test_now_ms();
  long long before = 0;
  while (mid < KILLS && kills < 3 * KILLS && before < sum) {
    long long at_start = total_now(r);
    /* Aim at 80% of the work done by the last planned kill. */
    bool ahead = at_start > (long long)sum * 8 / 10 * (kills + 1) / KILLS;
    pid_t pid = start(ahead ? SLOW : QUICK);
    esc_test_sleep_ms(50 + rand() % 351);
    before = total_now(r);
    productive += before > at_start;
    kill(pid, SIGKILL);
    int status = 0;
    if (!esc_test_wait_child(pid, 10000, &status))
      fail_msg("projector %d did not die of SIGKILL", (int)pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
      fail_msg("projector %d ended before the kill (status 0x%x)", (int)pid,
               status);
    kills++;
    mid += before < sum;
  }
  long long progress = total_now(r);
  fprintf(stderr,
          "%d kills in %lld ms, %d of them before the projection was "
          "complete, %d after the worker had applied batches; total then "
          "%lld of %lld\n",
          kills, esc_test_now_ms() - t0, mid, productive, progress,
          (long long)sum);
  assert_true(kills >= KILLS);
  assert_true(mid >= KILLS);

  /* One more run to the end, stopped cleanly. */
  pid_t pid = start(UNDELAYED);
  long long ms = esc_test_tally_wait(m, r, base, 120000, why, sizeof why);
  if (ms < 0)
    fail_msg("not exact after the kills: %s", why);
  fprintf(stderr, "caught up exactly %lld ms after the last start\n", ms);
  stop_cleanly(pid);
  /* Still exact after the worker stopped: it applied nothing late. */
  if (!esc_test_tally_matches(m, r, base, why, sizeof why))
    fail_msg("not exact after the clean stop: %s", why);

  redisFree(r);
  esc_store_free(st);
}

/* The serving generation's total (0 when missing). */
static long long serving_total(redisContext *r, long long *gen) {
  *gen = esc_test_redis_ll(r, -1, "GET %s:generation", base);
  return esc_test_redis_ll(r, 0, "GET %s:g%lld:total", base, *gen);
}

/*
 * kill -9 during a rebuild (guarantees 6 and 7): the log is rebuilt into
 * a new generation by workers killed at random moments. No event is
 * appended meanwhile, so the serving total must read the full sum at every
 * moment (the old generation until the switch, the complete new one
 * after), and the new generation must end up exact.
 */
static void kill9_during_a_rebuild_keeps_serving_exact(void **state) {
  (void)state;
  char why[512];
  if (!model)
    fail_msg("needs the log and projection of the test before");
  redisContext *r = esc_test_redis(NULL);
  long long g1 = 0, g = 0;
  assert_int_equal(serving_total(r, &g1), sum);
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_request_rebuild(NULL, schema, name, &err))
    fail_msg("request rebuild: %s", err.msg);

  int kills = 0, during = 0;
  long long t0 = esc_test_now_ms();
  while (kills < KILLS / 2) {
    long long built =
        esc_test_redis_ll(r, 0, "GET %s:g%lld:total", base, g1 + 1);
    bool ahead = built > (long long)sum * 8 / 10 * (kills + 1) / (KILLS / 2);
    pid_t pid = start(ahead || kills == 0 ? SLOW : QUICK);
    for (int slept = 0, nap = 50 + rand() % 351; slept < nap; slept += 25) {
      esc_test_sleep_ms(25);
      long long total = serving_total(r, &g);
      if (total != sum)
        fail_msg("during the rebuild, g%lld served total %lld, not %lld", g,
                 total, (long long)sum);
    }
    during += g == g1;
    kill(pid, SIGKILL);
    if (!esc_test_wait_child(pid, 10000, NULL))
      fail_msg("projector %d did not die of SIGKILL", (int)pid);
    kills++;
  }
  fprintf(stderr,
          "%d kills during the rebuild in %lld ms, %d of them before the "
          "switch; g%lld total then %lld of %lld\n",
          kills, esc_test_now_ms() - t0, during, g1 + 1,
          esc_test_redis_ll(r, 0, "GET %s:g%lld:total", base, g1 + 1),
          (long long)sum);
  assert_true(during >= KILLS / 4);

  pid_t pid = start(UNDELAYED);
  long long deadline = esc_test_now_ms() + 120000;
  while ((serving_total(r, &g), g == g1) && esc_test_now_ms() < deadline) {
    assert_int_equal(serving_total(r, &g), sum);
    esc_test_sleep_ms(25);
  }
  if (g == g1)
    fail_msg("the rebuild did not switch within 120 s");
  assert_int_equal(g, g1 + 1);
  long long ms = esc_test_tally_wait(model, r, base, 30000, why, sizeof why);
  if (ms < 0)
    fail_msg("the rebuilt generation is not exact: %s", why);
  stop_cleanly(pid);
  redisFree(r);
  passed = true;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kill9_at_random_moments_loses_and_doubles_nothing),
      cmocka_unit_test(kill9_during_a_rebuild_keeps_serving_exact),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

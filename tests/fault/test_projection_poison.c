/*
 * Poison events (guarantee 10, with 6): a worker process projects a log in
 * which some events always make the handler fail (item "poison"). They are
 * parked as dead letters with the handler's error and everything else is
 * projected. A retry while the handler still fails parks the letter again.
 * Once the handler is fixed (the cure file of tests/fault/projector.c) a
 * retry applies each parked event exactly once and resolves its letter; a
 * second retry is refused, and a retry that runs again anyway (the worker
 * died between applying it and recording that) applies nothing twice.
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

enum { POISON = 5 };

static char schema[48], name[48], log_path[128], cure[128], cure_env[160];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static bool passed;

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_pf_poison_%d", (int)getpid());
  snprintf(name, sizeof name, "pfp%d", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/esc-fault-poison-%d.log",
           (int)getpid());
  snprintf(cure, sizeof cure, "/tmp/esc-fault-poison-%d.cure", (int)getpid());
  snprintf(cure_env, sizeof cure_env, "TALLY_CURE_FILE=%s", cure);
  unlink(cure);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  redisContext *r = base[0] ? esc_test_redis_try(NULL) : NULL;
  if (r) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(r, prefix);
    redisFree(r);
  }
  esc_test_drop_schema(schema);
  if (!passed)
    esc_test_print_tail(log_path, 60);
  esc_test_remove_log(log_path);
  unlink(cure);
  return 0;
}

/* One Counted event with this item in its own stream. */
static esc_dead_letter *letters(bool all, size_t *n) {
  esc_dead_letter *dl = NULL;
  esc_error err = ESC_ERROR_INIT;
  if (esc_dead_letters_list(NULL, schema, name, all, &dl, n, &err))
    fail_msg("list dead letters: %s", err.msg);
  return dl;
}

/* Waits until every letter is in state; fails the test after timeout. */
static long long wait_letters(const char *state, size_t count, int timeout_ms) {
  long long start = esc_test_now_ms();
  for (;;) {
    size_t n = 0, in_state = 0;
    esc_dead_letter *dl = letters(true, &n);
    for (size_t i = 0; i < n; i++)
      in_state += strcmp(dl[i].state, state) == 0;
    free(dl);
    if (n == count && in_state == count)
      return esc_test_now_ms() - start;
    if (esc_test_now_ms() - start > timeout_ms)
      fail_msg("%zu of %zu dead letters are %s after %d ms", in_state, n, state,
               timeout_ms);
    esc_test_sleep_ms(50);
  }
}

static void must_match(const esc_test_tally *m, redisContext *r,
                       const char *when) {
  char why[512];
  if (!esc_test_tally_matches(m, r, base, why, sizeof why))
    fail_msg("%s: %s", when, why);
}

static void poison_is_parked_then_retried_exactly_once(void **state) {
  (void)state;
  char why[512], sql[256];
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  esc_store *st = esc_test_open_store_async(schema);
  redisContext *r = esc_test_redis(NULL);
  PGconn *pg = esc_test_pg();

  /* Good events around the poison, so that batches hold both. */
  tally_append(st, "a", 20, 1000);
  for (int k = 0; k < POISON; k++) {
    char stream[32];
    snprintf(stream, sizeof stream, "tally-poison%d", k);
    tally_append_one(st, stream, 1000 + k, "poison");
  }
  tally_append(st, "b", 20, 1000);
  esc_test_tally *clean = esc_test_tally_from_log(st, false);
  esc_test_tally *full = esc_test_tally_from_log(st, true);
  int64_t poison_sum = 0;
  for (int k = 0; k < POISON; k++)
    poison_sum += 1000 + k;
  assert_int_equal(esc_test_tally_total(full) - esc_test_tally_total(clean),
                   poison_sum);

  const char *env[] = {cure_env, NULL};
  pid_t pid = esc_test_projector(ESC_PROJECTOR_PATH, log_path, env, "--schema",
                                 schema, "--name", name, "--batch", "100",
                                 "--lease-poll", "200", NULL);

  /* Everything but the poison is projected; the poison is parked. */
  long long ms = esc_test_tally_wait(clean, r, base, 60000, why, sizeof why);
  if (ms < 0)
    fail_msg("good events not projected: %s", why);
  wait_letters("parked", POISON, 10000);
  size_t n = 0;
  esc_dead_letter *dl = letters(false, &n);
  assert_int_equal(n, POISON);
  for (size_t i = 0; i < n; i++) {
    char stream[40], text[128];
    snprintf(stream, sizeof stream, "tally-poison%zu", i);
    snprintf(text, sizeof text, "poison in %s@1", stream);
    assert_string_equal(dl[i].stream_id, stream);
    assert_string_equal(dl[i].event_type, "Counted");
    assert_int_equal(dl[i].stream_version, 1);
    assert_int_equal(dl[i].partition, 0);
    assert_int_equal(dl[i].attempts, 2); /* tally's max_attempts */
    if (!strstr(dl[i].error, text))
      fail_msg("letter %lld: error \"%s\" does not say \"%s\"",
               (long long)dl[i].id, dl[i].error, text);
  }
  esc_partition_status *sts = NULL;
  size_t nst = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_status(NULL, NULL, schema, NULL, &sts, &nst, &err))
    fail_msg("status: %s", err.msg);
  assert_int_equal(nst, 1);
  assert_int_equal(sts[0].dead_letters, POISON);
  free(sts);

  /* A retry while the handler still fails: parked again, one attempt
   * more, nothing applied. */
  int64_t first = dl[0].id;
  if (esc_dead_letter_retry(NULL, schema, first, &err))
    fail_msg("retry: %s", err.msg);
  long long deadline = esc_test_now_ms() + 15000;
  for (;;) {
    size_t k = 0;
    esc_dead_letter *now = letters(false, &k);
    bool back = k == POISON && strcmp(now[0].state, "parked") == 0 &&
                now[0].attempts > dl[0].attempts;
    free(now);
    if (back)
      break;
    if (esc_test_now_ms() > deadline)
      fail_msg("a failing retry did not park the letter again within 15 s");
    esc_test_sleep_ms(50);
  }
  must_match(clean, r, "after a failing retry");

  /* The fix is deployed; each letter is retried once. */
  FILE *f = fopen(cure, "w");
  assert_non_null(f);
  fclose(f);
  for (size_t i = 0; i < n; i++)
    if (esc_dead_letter_retry(NULL, schema, dl[i].id, &err))
      fail_msg("retry %lld: %s", (long long)dl[i].id, err.msg);
  ms = esc_test_tally_wait(full, r, base, 20000, why, sizeof why);
  if (ms < 0)
    fail_msg("retried letters not applied: %s", why);
  wait_letters("resolved", POISON, 10000);
  fprintf(stderr,
          "%d poison events parked, then applied %lld ms after "
          "their retries\n",
          POISON, ms);

  /* Retrying a resolved letter is refused... */
  for (size_t i = 0; i < n; i++) {
    esc_status rc = esc_dead_letter_retry(NULL, schema, dl[i].id, &err);
    assert_int_equal(rc, ESC_EINVAL);
    if (!strstr(err.msg, "resolved"))
      fail_msg("second retry: \"%s\" does not say it is resolved", err.msg);
  }
  /* ... and a retry that runs again anyway (the worker applied it, then
   * died before marking the letter resolved) applies nothing twice. */
  snprintf(sql, sizeof sql,
           "UPDATE \"%s\".dead_letters SET state = 'retry' WHERE id = %lld",
           schema, (long long)first);
  esc_test_exec(pg, sql);
  wait_letters("resolved", POISON, 10000);
  esc_test_sleep_ms(1500); /* a bookkeeping round or more */
  must_match(full, r, "after a repeated retry");

  /* New events still flow, and the worker stops cleanly. */
  tally_append(st, "c", 5, 100);
  esc_test_tally_free(full);
  full = esc_test_tally_from_log(st, true);
  if (esc_test_tally_wait(full, r, base, 20000, why, sizeof why) < 0)
    fail_msg("later events: %s", why);
  int status = 0;
  kill(pid, SIGTERM);
  assert_true(esc_test_wait_child(pid, 20000, &status));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  free(dl);
  esc_test_tally_free(clean);
  esc_test_tally_free(full);
  PQfinish(pg);
  redisFree(r);
  esc_store_free(st);
  passed = true;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          poison_is_parked_then_retried_exactly_once, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

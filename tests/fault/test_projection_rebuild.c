/*
 * Rebuild under load (guarantee 7): while a writer appends continuously
 * and two worker processes project four partitions (one of them slowly),
 * a rebuild is requested (esc_projection_request_rebuild) and then the
 * projection's version is bumped (the workers restarted with --version 2).
 * Meanwhile query threads read the total the way clients do - one with plain
 * GETs (generation, then the generation's total), one through <esc/query.h> -
 * and must never find the serving generation or its total missing once the
 * first build finished. At the end the rebuilt generation equals the log and
 * equals a projection built from scratch by an in-process worker, and the old
 * generations' keys are gone.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <esc/query.h>

#include "tally.h"
#include "testenv.h"

static char schema[48], name[48], scratch[48], log_path[128];
/* "NS:name", "NS:scratch": where the two projections' keys start */
static char base[ESC_TEST_KEY_BASE_SIZE], scratch_base[ESC_TEST_KEY_BASE_SIZE];
static bool passed;

/* What a query thread saw. */
struct reader {
  pthread_t thread;
  bool plain; /* GET + GET, else esc_query */
  long long reads;
  long long missing_generation;
  long long missing_total;
  long long switch_races; /* total gone because the generation switched
                             between the two GETs: re-read */
  long long decreases;    /* a read lower than the one before it */
  long long worst_decrease;
  long long generations; /* distinct generations seen */
  long long errors;
  char first_problem[256];
};

static atomic_bool readers_stop;
static struct reader readers[2];
static bool readers_running;
static esc_test_writer *writer;

static void note(struct reader *rd, const char *fmt, long long a, long long b) {
  if (!rd->first_problem[0])
    snprintf(rd->first_problem, sizeof rd->first_problem, fmt, a, b);
}

static void *read_plain(struct reader *rd) {
  redisContext *c = esc_test_redis_try(NULL);
  long long last = -1, last_gen = -1;
  if (!c) {
    note(rd, "cannot connect to Redis%lld%lld", 0, 0);
    rd->missing_generation++;
    return NULL;
  }
  while (!atomic_load(&readers_stop)) {
    esc_test_sleep_ms(1);
    redisReply *g = redisCommand(c, "GET %s:generation", base);
    if (!g || g->type != REDIS_REPLY_STRING) {
      rd->missing_generation++;
      note(rd, "generation missing after %lld reads (last total %lld)",
           rd->reads, last);
      freeReplyObject(g);
      continue;
    }
    long long gen = strtoll(g->str, NULL, 10);
    freeReplyObject(g);
    redisReply *t = redisCommand(c, "GET %s:g%lld:total", base, gen);
    bool missing = !t || t->type != REDIS_REPLY_STRING;
    long long total = missing ? -1 : strtoll(t->str, NULL, 10);
    freeReplyObject(t);
    if (missing) {
      redisReply *again = redisCommand(c, "GET %s:generation", base);
      bool moved = again && again->type == REDIS_REPLY_STRING &&
                   strtoll(again->str, NULL, 10) != gen;
      freeReplyObject(again);
      if (moved) {
        rd->switch_races++;
        continue;
      }
      rd->missing_total++;
      note(rd, "g%lld total missing (generation unchanged) after %lld reads",
           gen, rd->reads);
      continue;
    }
    rd->reads++;
    if (gen != last_gen)
      rd->generations++;
    if (total < last) {
      rd->decreases++;
      if (last - total > rd->worst_decrease)
        rd->worst_decrease = last - total;
    }
    last = total;
    last_gen = gen;
  }
  redisFree(c);
  return NULL;
}

static void *read_query(struct reader *rd) {
  esc_error err = ESC_ERROR_INIT;
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.schema = schema;
  esc_query *q = esc_query_new(&qo, &err);
  long long last = -1, last_gen = -1;
  if (!q) {
    note(rd, "esc_query_new failed%lld%lld", 0, 0);
    rd->missing_generation++;
    return NULL;
  }
  while (!atomic_load(&readers_stop)) {
    esc_test_sleep_ms(1);
    char value[32];
    bool exists = false;
    int64_t gen = 0;
    esc_status rc =
        esc_query_get(q, name, "total", value, sizeof value, &exists, &err);
    if (rc == ESC_ENOTFOUND) {
      rd->missing_generation++;
      note(rd, "not built, after %lld reads (last total %lld)", rd->reads,
           last);
      continue;
    }
    if (rc) {
      rd->errors++; /* fail_msg is for the main thread only */
      note(rd, "esc_query_get failed (status %lld) after %lld reads",
           (long long)rc, rd->reads);
      esc_test_sleep_ms(10);
      continue;
    }
    if (!exists) {
      rd->missing_total++;
      note(rd, "total missing after %lld reads (last total %lld)", rd->reads,
           last);
      continue;
    }
    if (esc_query_generation(q, name, &gen, &err) == ESC_OK &&
        gen != last_gen) {
      rd->generations++;
      last_gen = gen;
    }
    long long total = strtoll(value, NULL, 10);
    rd->reads++;
    if (total < last) {
      rd->decreases++;
      if (last - total > rd->worst_decrease)
        rd->worst_decrease = last - total;
    }
    last = total;
  }
  esc_query_free(q);
  return NULL;
}

static void *reader_main(void *arg) {
  struct reader *rd = arg;
  return rd->plain ? read_plain(rd) : read_query(rd);
}

/* ------------------------------------------------------------------------ */

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_pf_rebuild_%d", (int)getpid());
  snprintf(name, sizeof name, "pfb%d", (int)getpid());
  snprintf(scratch, sizeof scratch, "pfb%d_scratch", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/esc-fault-rebuild-%d.log",
           (int)getpid());
  return 0;
}

static void stop_readers(void) {
  if (!readers_running)
    return;
  atomic_store(&readers_stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join(readers[i].thread, NULL);
  readers_running = false;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  esc_test_writer_stop(writer);
  writer = NULL;
  stop_readers();
  redisContext *r = base[0] ? esc_test_redis_try(NULL) : NULL;
  if (r) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(r, prefix);
    snprintf(prefix, sizeof prefix, "%s:", scratch_base);
    esc_test_redis_delete_prefix(r, prefix);
    redisFree(r);
  }
  esc_test_drop_schema(schema);
  if (!passed)
    esc_test_print_tail(log_path, 80);
  esc_test_remove_log(log_path);
  return 0;
}

/* Two worker processes share the four partitions; the second handles its
 * events more slowly, so that the partitions' rebuilds finish at different
 * times and the switch has to wait for the last one. */
static void start_workers(const char *version, pid_t pids[2]) {
  pids[0] = esc_test_projector(ESC_PROJECTOR_PATH, log_path, NULL, "--schema",
                               schema, "--name", name, "--version", version,
                               "--partitions", "4", "--only", "0,1", "--batch",
                               "200", "--lease-poll", "200", NULL);
  pids[1] = esc_test_projector(
      ESC_PROJECTOR_PATH, log_path, NULL, "--schema", schema, "--name", name,
      "--version", version, "--partitions", "4", "--only", "2,3", "--batch",
      "200", "--lease-poll", "200", "--delay-us", "100", NULL);
}

static void stop_workers(pid_t pids[2]) {
  for (int i = 0; i < 2; i++)
    kill(pids[i], SIGTERM);
  for (int i = 0; i < 2; i++) {
    int status = 0;
    if (!esc_test_wait_child(pids[i], 20000, &status))
      fail_msg("worker %d did not stop on SIGTERM", (int)pids[i]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("worker %d: exit status 0x%x", (int)pids[i], status);
  }
}

/* Waits until the serving generation is not `from`; returns it. */
static long long wait_switch(redisContext *r, long long from, int timeout_ms,
                             const char *what) {
  long long start = esc_test_now_ms();
  for (;;) {
    long long g = esc_test_redis_ll(r, -1, "GET %s:generation", base);
    if (g != from && g >= 0) {
      fprintf(stderr, "%s: switched g%lld -> g%lld in %lld ms\n", what, from, g,
              esc_test_now_ms() - start);
      return g;
    }
    if (esc_test_now_ms() - start > timeout_ms)
      fail_msg("%s: still serving g%lld after %d ms", what, from, timeout_ms);
    esc_test_sleep_ms(50);
  }
}

static void rebuild_under_load_never_shows_a_gap(void **state) {
  (void)state;
  char why[512], pattern[ESC_TEST_KEY_BASE_SIZE + 32];
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  esc_test_key_base(schema, scratch, scratch_base, sizeof scratch_base);
  esc_store *st = esc_test_open_store_async(schema);
  redisContext *r = esc_test_redis(NULL);
  tally_append(st, "u", 50, 20000);
  esc_test_tally *m = esc_test_tally_from_log(st, true);

  pid_t pids[2];
  start_workers("1", pids);
  if (esc_test_tally_wait(m, r, base, 60000, why, sizeof why) < 0)
    fail_msg("first build: %s", why);
  esc_test_tally_free(m);
  long long g1 = esc_test_redis_ll(r, -1, "GET %s:generation", base);

  /* The first build finished: from now on readers must always find data. */
  memset(readers, 0, sizeof readers);
  readers[0].plain = true;
  atomic_store(&readers_stop, false);
  for (int i = 0; i < 2; i++)
    assert_int_equal(
        pthread_create(&readers[i].thread, NULL, reader_main, &readers[i]), 0);
  readers_running = true;
  writer = esc_test_writer_start(schema, "w", 10, 10, 10);
  esc_test_sleep_ms(500);

  /* 1. `esc rebuild`. */
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_request_rebuild(NULL, schema, name, &err))
    fail_msg("request rebuild: %s", err.msg);
  long long g2 = wait_switch(r, g1, 60000, "requested rebuild");
  assert_int_equal(g2, g1 + 1);
  esc_test_sleep_ms(500);

  /* 2. A new version of the projection: the workers restart with it. */
  stop_workers(pids);
  start_workers("2", pids);
  long long g3 = wait_switch(r, g2, 60000, "version bump");
  assert_int_equal(g3, g2 + 1);
  assert_int_equal(esc_test_redis_ll(r, -1, "GET %s:version", base), 2);
  esc_test_sleep_ms(500);

  long long appended = esc_test_writer_stop(writer);
  writer = NULL;
  m = esc_test_tally_from_log(st, true);
  long long ms = esc_test_tally_wait(m, r, base, 60000, why, sizeof why);
  if (ms < 0)
    fail_msg("after the rebuilds: %s", why);
  stop_readers();
  fprintf(stderr,
          "%lld events appended during the rebuilds; exact %lld ms "
          "after the last\n",
          appended, ms);
  for (int i = 0; i < 2; i++) {
    struct reader *rd = &readers[i];
    fprintf(stderr,
            "%s reader: %lld reads over %lld generations; missing "
            "generation %lld, missing total %lld, re-reads after a switch "
            "race %lld, decreases %lld (worst %lld)%s%s\n",
            rd->plain ? "GET+GET" : "esc_query", rd->reads, rd->generations,
            rd->missing_generation, rd->missing_total, rd->switch_races,
            rd->decreases, rd->worst_decrease,
            rd->first_problem[0] ? "; first: " : "", rd->first_problem);
  }
  for (int i = 0; i < 2; i++) {
    assert_true(readers[i].reads > 100);
    assert_int_equal(readers[i].missing_generation, 0);
    assert_int_equal(readers[i].missing_total, 0);
    assert_int_equal(readers[i].errors, 0);
    /* A switch to a generation that had not caught up would show a total
     * lower than one read before it. */
    assert_int_equal(readers[i].decreases, 0);
  }

  /* The old generations are deleted in the background. */
  long long deadline = esc_test_now_ms() + 20000;
  long long left = 0;
  do {
    left = 0;
    for (long long g = g1; g < g3; g++) {
      snprintf(pattern, sizeof pattern, "%s:g%lld:*", base, g);
      left += esc_test_redis_count(r, pattern);
    }
    if (left)
      esc_test_sleep_ms(100);
  } while (left && esc_test_now_ms() < deadline);
  if (left)
    fail_msg("%lld keys of generations g%lld..g%lld are left after 20 s", left,
             g1, g3 - 1);

  /* A from-scratch build of the same log agrees with the rebuilt one. */
  esc_projection p;
  tally_projection(&p, scratch, 1, 1);
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = schema;
  o.batch_size = 500;
  esc_worker *wk = esc_worker_new(&o, &err);
  assert_non_null(wk);
  assert_int_equal(esc_worker_add(wk, &p, &err), ESC_OK);
  if (esc_worker_run_until_caught_up(wk, 60000, &err))
    fail_msg("from-scratch build: %s", err.msg);
  esc_worker_free(wk);
  if (!esc_test_tally_matches(m, r, scratch_base, why, sizeof why))
    fail_msg("from-scratch build: %s", why);
  long long gs = esc_test_redis_ll(r, -1, "GET %s:generation", scratch_base);
  assert_int_equal(esc_test_redis_ll(r, -1, "GET %s:g%lld:total", base, g3),
                   esc_test_redis_ll(r, -2, "GET %s:g%lld:total", scratch_base, gs));
  for (int i = 0; i < 5; i++)
    assert_int_equal(
        esc_test_redis_ll(r, -1, "ZSCORE %s:g%lld:items item%d", base, g3, i),
        esc_test_redis_ll(r, -2, "ZSCORE %s:g%lld:items item%d", scratch_base, gs,
                          i));

  stop_workers(pids);
  esc_test_tally_free(m);
  redisFree(r);
  esc_store_free(st);
  passed = true;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(rebuild_under_load_never_shows_a_gap,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

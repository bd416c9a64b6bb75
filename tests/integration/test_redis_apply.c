/*
 * The apply script against a real Redis (guarantee 6): the batch's commands
 * and the checkpoint move together or not at all, guarded by a
 * compare-and-set on the checkpoint, so duplicates and zombies never apply
 * twice; plus the generation switch, deleting an old generation, NOSCRIPT
 * recovery and the connection handling (projections/src/redis.c).
 *
 * Every run uses projection names unique to it and deletes its keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* projections/src is not on the tests' include path */
#include "projection_int.h"

static char NAME[40];  /* this run's projection name, "rtapply_<pid>_<n>" */
static char OTHER[48]; /* NAME + "x": a projection whose name extends it */
static esc_projection PROJ;
static int case_no;

static const char *url(void) {
  return esc_default_redis_url();
}

static esc__redis *connect_or_fail(void) {
  esc_error err = ESC_ERROR_INIT;
  esc__redis *r = esc__redis_connect(url(), &err);
  if (!r)
    fail_msg("connect %s: %s", url(), err.msg);
  return r;
}

/* Runs a command of NUL-terminated strings (NULL-terminated list); fails
 * the test on an error. Returns the reply (caller frees) when want_reply. */
static redisReply *cmd(esc__redis *r, bool want_reply, const char *arg0, ...) {
  const char *argv[16];
  int argc = 0;
  va_list ap;
  va_start(ap, arg0);
  for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
    assert_true(argc < 16);
    argv[argc++] = a;
  }
  va_end(ap);
  redisReply *rep = NULL;
  esc_error err = ESC_ERROR_INIT;
  if (esc__redis_run(r, argc, argv, NULL, want_reply ? &rep : NULL, &err))
    fail_msg("redis %s: %s", arg0, err.msg);
  return rep;
}

static long long get_ll(esc__redis *r, const char *key) {
  char v[64];
  bool exists;
  esc_error err = ESC_ERROR_INIT;
  if (esc__redis_get(r, key, v, sizeof v, &exists, &err))
    fail_msg("GET %s: %s", key, err.msg);
  return exists ? strtoll(v, NULL, 10) : 0;
}

static bool key_exists(esc__redis *r, const char *key) {
  redisReply *rep = cmd(r, true, "EXISTS", key, NULL);
  bool yes = rep->integer == 1;
  freeReplyObject(rep);
  return yes;
}

static void assert_value(esc__redis *r, const char *key, const char *want) {
  char v[128];
  bool exists;
  esc_error err = ESC_ERROR_INIT;
  if (esc__redis_get(r, key, v, sizeof v, &exists, &err))
    fail_msg("GET %s: %s", key, err.msg);
  if (!want && exists)
    fail_msg("%s should be absent, holds \"%s\"", key, v);
  if (want && !exists)
    fail_msg("%s should hold \"%s\", is absent", key, want);
  if (want && strcmp(v, want) != 0)
    fail_msg("%s holds \"%s\", expected \"%s\"", key, v, want);
}

/* Deletes every key starting with prefix. */
static void delete_prefixed(esc__redis *r, const char *prefix) {
  char pattern[128];
  snprintf(pattern, sizeof pattern, "%s*", prefix);
  char cursor[32] = "0";
  do {
    redisReply *rep =
        cmd(r, true, "SCAN", cursor, "MATCH", pattern, "COUNT", "1000", NULL);
    snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
    for (size_t i = 0; i < rep->element[1]->elements; i++)
      cmd(r, false, "UNLINK", rep->element[1]->element[i]->str, NULL);
    freeReplyObject(rep);
  } while (strcmp(cursor, "0") != 0);
}

/* A fresh projection name per test case, so cases never see each other. */
static int setup(void **state) {
  (void)state;
  snprintf(NAME, sizeof NAME, "rtapply_%ld_%d", (long)getpid(), ++case_no);
  snprintf(OTHER, sizeof OTHER, "%sx", NAME);
  memset(&PROJ, 0, sizeof PROJ);
  PROJ.name = NAME;
  PROJ.version = 1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  delete_prefixed(r, NAME); /* OTHER starts with NAME too */
  esc__redis_free(r);
  return 0;
}

/* Keys of generation g, partition 0, of this run's projection. */
struct keys {
  char gen[ESC__KEY_MAX];
  char cp[ESC__KEY_MAX];
  char counter[ESC__KEY_MAX];
  char zset[ESC__KEY_MAX];
};

static void make_keys(struct keys *k, int64_t g) {
  esc__key_generation(k->gen, sizeof k->gen, NAME);
  esc__key_checkpoint(k->cp, sizeof k->cp, NAME, g, 0);
  snprintf(k->counter, sizeof k->counter, "%s:g%" PRId64 ":total", NAME, g);
  snprintf(k->zset, sizeof k->zset, "%s:g%" PRId64 ":top", NAME, g);
}

/* A batch of generation g: INCRBY total by, ZINCRBY top by "alice". */
static void fill_batch(esc_projection_ctx *ctx, int64_t g, int64_t by) {
  esc__ctx_init(ctx, &PROJ, NAME, 0, g);
  esc__ctx_begin_event(ctx);
  assert_int_equal(esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "total"),
                               esc_ctx_i64(ctx, by), NULL),
                   ESC_OK);
  assert_int_equal(esc_ctx_cmd(ctx, "ZINCRBY", esc_ctx_key(ctx, "top"),
                               esc_ctx_i64(ctx, by), "alice", NULL),
                   ESC_OK);
}

static struct esc__apply_result apply(esc__redis *r, const struct keys *k,
                                      int64_t serving, const char *expected,
                                      const char *next, const char *guard,
                                      const esc_projection_ctx *ctx) {
  struct esc__apply_result res;
  esc_error err = ESC_ERROR_INIT;
  struct esc__apply_request req = {
      k->gen, serving, k->cp, expected ? expected : "", next, guard, 0};
  if (esc__redis_apply(r, &req, ctx, &res, &err))
    fail_msg("apply: %s", err.msg);
  return res;
}

static double zscore(esc__redis *r, const char *key, const char *member) {
  redisReply *rep = cmd(r, true, "ZSCORE", key, member, NULL);
  double s = rep->type == REDIS_REPLY_STRING ? strtod(rep->str, NULL) : 0;
  freeReplyObject(rep);
  return s;
}

/* ------------------------------------------------------------------------
 * Compare-and-set
 * ------------------------------------------------------------------------ */

static void test_apply_moves_checkpoint_once(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 5);

  struct esc__apply_result res = apply(r, &k, 1, "", "10/7", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_string_equal(res.error, "");
  assert_value(r, k.cp, "10/7");
  assert_int_equal(get_ll(r, k.counter), 5);
  assert_true(zscore(r, k.zset, "alice") == 5.0);

  /* A duplicate delivery of the same batch: refused, nothing changes. */
  res = apply(r, &k, 1, "", "10/7", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__STALE);
  assert_string_equal(res.checkpoint, "10/7");
  assert_int_equal(get_ll(r, k.counter), 5);
  assert_true(zscore(r, k.zset, "alice") == 5.0);

  /* The next batch from the right checkpoint applies. */
  res = apply(r, &k, 1, "10/7", "12/9", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_value(r, k.cp, "12/9");
  assert_int_equal(get_ll(r, k.counter), 10);
  assert_true(zscore(r, k.zset, "alice") == 10.0);

  /* ...and again with the old expected checkpoint: stale. */
  res = apply(r, &k, 1, "10/7", "12/9", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__STALE);
  assert_string_equal(res.checkpoint, "12/9");
  assert_int_equal(get_ll(r, k.counter), 10);

  /* An empty batch still moves the checkpoint (filtered-out events). */
  esc_projection_ctx empty;
  esc__ctx_init(&empty, &PROJ, NAME, 0, 1);
  res = apply(r, &k, 1, "12/9", "13/1", NULL, &empty);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_value(r, k.cp, "13/1");
  res = apply(r, &k, 1, "13/1", "13/2", NULL, NULL);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_value(r, k.cp, "13/2");
  assert_int_equal(get_ll(r, k.counter), 10);

  esc__ctx_release(&empty);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

struct zombie {
  const struct keys *k;
  const esc_projection_ctx *ctx;
  char next[32];
  pthread_barrier_t *barrier;
  struct esc__apply_result res;
  esc_status rc;
};

static void *zombie_main(void *arg) {
  struct zombie *z = arg;
  esc_error err = ESC_ERROR_INIT;
  esc__redis *r = esc__redis_connect(url(), &err);
  if (!r) {
    z->rc = err.code;
    pthread_barrier_wait(z->barrier);
    return NULL;
  }
  pthread_barrier_wait(z->barrier);
  struct esc__apply_request req = {z->k->gen, 1,       z->k->cp,
                                   "5/5",     z->next, NULL, 0};
  z->rc = esc__redis_apply(r, &req, z->ctx, &z->res, &err);
  esc__redis_free(r);
  return NULL;
}

static void test_zombies_apply_once(void **state) {
  (void)state;
  enum { N = 8 };
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  cmd(r, false, "SET", k.cp, "5/5", NULL);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 3);

  /* N workers that all read checkpoint 5/5 (a worker and the zombies it
   * replaced) race to apply the same kind of batch. */
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, N);
  struct zombie z[N];
  pthread_t t[N];
  for (int i = 0; i < N; i++) {
    memset(&z[i], 0, sizeof z[i]);
    z[i].k = &k;
    z[i].ctx = &ctx;
    z[i].barrier = &barrier;
    snprintf(z[i].next, sizeof z[i].next, "6/%d", i);
    assert_int_equal(pthread_create(&t[i], NULL, zombie_main, &z[i]), 0);
  }
  int applied = -1, napplied = 0;
  for (int i = 0; i < N; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < N; i++) {
    assert_int_equal(z[i].rc, ESC_OK);
    if (z[i].res.outcome == ESC__APPLIED) {
      applied = i;
      napplied++;
    } else {
      assert_int_equal(z[i].res.outcome, ESC__STALE);
    }
  }
  pthread_barrier_destroy(&barrier);
  assert_int_equal(napplied, 1);
  for (int i = 0; i < N; i++)
    if (i != applied)
      assert_string_equal(z[i].res.checkpoint, z[applied].next);
  assert_value(r, k.cp, z[applied].next);
  assert_int_equal(get_ll(r, k.counter), 3);
  assert_true(zscore(r, k.zset, "alice") == 3.0);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

static void test_vanished_and_moved(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 1);

  /* no generation key at all: Redis lost the projection */
  struct esc__apply_result res = apply(r, &k, 1, "", "1/1", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__VANISHED);
  assert_false(key_exists(r, k.cp));
  assert_false(key_exists(r, k.counter));

  /* generation present, checkpoint expected but gone */
  cmd(r, false, "SET", k.gen, "1", NULL);
  res = apply(r, &k, 1, "4/4", "5/5", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__VANISHED);
  assert_false(key_exists(r, k.cp));
  assert_false(key_exists(r, k.counter));

  /* another generation serves now */
  cmd(r, false, "SET", k.gen, "2", NULL);
  cmd(r, false, "SET", k.cp, "4/4", NULL);
  res = apply(r, &k, 1, "4/4", "5/5", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__MOVED);
  assert_int_equal(res.generation, 2);
  assert_value(r, k.cp, "4/4");
  assert_false(key_exists(r, k.counter));

  cmd(r, false, "SET", k.gen, "12345678901", NULL);
  res = apply(r, &k, 1, "4/4", "5/5", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__MOVED);
  assert_int_equal(res.generation, 12345678901LL);

  /* expected "" (a first batch) but a checkpoint exists: stale */
  cmd(r, false, "SET", k.gen, "1", NULL);
  res = apply(r, &k, 1, "", "5/5", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__STALE);
  assert_string_equal(res.checkpoint, "4/4");
  res = apply(r, &k, 1, NULL, "5/5", NULL, &ctx); /* NULL is "" too */
  assert_int_equal(res.outcome, ESC__STALE);
  assert_value(r, k.cp, "4/4");
  assert_false(key_exists(r, k.counter));
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

/* The batch of two events of test_failing_command: A at 1/1 (INCRBY ok),
 * B at 1/2 (INCRBY ok, INCRBY hash, INCRBY ok); only_b leaves A out. */
static void two_events(esc_projection_ctx *ctx, const char *ok,
                       const char *hash, bool only_b) {
  const esc_position p0 = {0, 0}, p1 = {1, 1}, p2 = {1, 2};
  esc__ctx_reset(ctx);
  if (!only_b) {
    esc__ctx_begin_event(ctx);
    assert_int_equal(esc_ctx_cmd(ctx, "INCRBY", ok, "1", NULL), ESC_OK);
    assert_int_equal(esc__ctx_end_event(ctx, p0, p1), ESC_OK);
  }
  esc__ctx_begin_event(ctx);
  assert_int_equal(esc_ctx_cmd(ctx, "INCRBY", ok, "1", NULL), ESC_OK);
  assert_int_equal(esc_ctx_cmd(ctx, "INCRBY", hash, "1", NULL), ESC_OK);
  assert_int_equal(esc_ctx_cmd(ctx, "INCRBY", ok, "1", NULL), ESC_OK);
  assert_int_equal(esc__ctx_end_event(ctx, p1, p2), ESC_OK);
}

static void test_failing_command(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  cmd(r, false, "SET", k.cp, "0/0", NULL);
  char hash[ESC__KEY_MAX], ok[ESC__KEY_MAX], partial[ESC__KEY_MAX + 16];
  snprintf(hash, sizeof hash, "%s:g1:h", NAME);
  snprintf(ok, sizeof ok, "%s:g1:ok", NAME);
  snprintf(partial, sizeof partial, "%s:partial", k.cp);
  cmd(r, false, "HSET", hash, "f", "v", NULL);

  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, NAME, 0, 1);
  two_events(&ctx, ok, hash, false);
  struct esc__apply_result res = apply(r, &k, 1, "0/0", "1/2", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__COMMAND_FAILED);
  assert_int_equal(res.failed_command, 2);
  assert_int_equal(res.failed_event, 1);
  assert_int_equal(res.commands_done, 1);
  assert_int_equal(res.failed_before.global, 1);
  assert_int_equal(res.failed_at.global, 2);
  if (!strstr(res.error, "WRONGTYPE"))
    fail_msg("error \"%s\" lacks WRONGTYPE", res.error);
  /* Redis does not roll back: event A and B's first command stay; the
   * checkpoint is just before B, and B's applied command is recorded. */
  assert_int_equal(get_ll(r, ok), 2);
  assert_value(r, k.cp, "1/1");
  assert_value(r, partial, "1/2 1");

  /* The same batch again (a duplicate): stale, nothing applied twice. */
  res = apply(r, &k, 1, "0/0", "1/2", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__STALE);
  assert_int_equal(get_ll(r, ok), 2);

  /* B retried from the new checkpoint: its first command is skipped. */
  two_events(&ctx, ok, hash, true);
  res = apply(r, &k, 1, "1/1", "1/2", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__COMMAND_FAILED);
  assert_int_equal(res.failed_event, 0);
  assert_int_equal(res.commands_done, 1);
  assert_int_equal(get_ll(r, ok), 2);
  assert_value(r, partial, "1/2 1");

  /* Fixed: B's remaining commands run once, the record goes. */
  cmd(r, false, "DEL", hash, NULL);
  res = apply(r, &k, 1, "1/1", "1/2", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, ok), 3);
  assert_int_equal(get_ll(r, hash), 1);
  assert_value(r, k.cp, "1/2");
  assert_value(r, partial, NULL);

  /* An unknown command of commands no event claims (one event ending at
   * the new checkpoint): fails at its index, the checkpoint stays. */
  esc__ctx_reset(&ctx);
  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc_ctx_cmd(&ctx, "NOSUCHCOMMAND", ok, NULL), ESC_OK);
  res = apply(r, &k, 1, "1/2", "1/3", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__COMMAND_FAILED);
  assert_int_equal(res.failed_command, 0);
  assert_int_equal(res.commands_done, 0);
  assert_int_equal(res.failed_at.global, 3);
  assert_true(strlen(res.error) > 0);
  assert_value(r, k.cp, "1/2");
  assert_value(r, partial, NULL);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

/* A dead-letter retry that fails in Redis records its progress in its
 * guard, so the next retry skips what took effect, as it skips what the
 * letter says took effect. */
static void test_guard_records_progress(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  cmd(r, false, "SET", k.cp, "5/5", NULL);
  char hash[ESC__KEY_MAX], ok[ESC__KEY_MAX], guard[ESC__KEY_MAX];
  snprintf(hash, sizeof hash, "%s:g1:h", NAME);
  snprintf(ok, sizeof ok, "%s:g1:ok", NAME);
  esc_uuid id = esc_uuid_v4();
  esc__key_dead_letter_guard(guard, sizeof guard, NAME, 1, &id);
  cmd(r, false, "HSET", hash, "f", "v", NULL);
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, NAME, 0, 1);
  two_events(&ctx, ok, hash, true);
  esc_error err = ESC_ERROR_INIT;
  struct esc__apply_result res_g;
  struct esc__apply_request req = {k.gen, 1, k.cp, "5/5", "5/5", guard, 0};

  assert_int_equal(esc__redis_apply(r, &req, &ctx, &res_g, &err), ESC_OK);
  assert_int_equal(res_g.outcome, ESC__COMMAND_FAILED);
  assert_int_equal(res_g.commands_done, 1);
  assert_value(r, guard, "partial 1");
  assert_value(r, k.cp, "5/5"); /* a retry never moves the checkpoint */
  assert_int_equal(get_ll(r, ok), 1);

  cmd(r, false, "DEL", hash, NULL);
  assert_int_equal(esc__redis_apply(r, &req, &ctx, &res_g, &err), ESC_OK);
  assert_int_equal(res_g.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, ok), 2);
  assert_int_equal(get_ll(r, hash), 1);
  assert_value(r, guard, "5/5");
  assert_int_equal(esc__redis_apply(r, &req, &ctx, &res_g, &err), ESC_OK);
  assert_non_null(strstr(res_g.error, "guard already set"));
  assert_int_equal(get_ll(r, ok), 2);

  /* Another letter that says 2 of its commands took effect: the third
   * alone runs. */
  esc_uuid id2 = esc_uuid_v4();
  esc__key_dead_letter_guard(guard, sizeof guard, NAME, 1, &id2);
  req.skip = 2;
  assert_int_equal(esc__redis_apply(r, &req, &ctx, &res_g, &err), ESC_OK);
  assert_int_equal(res_g.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, ok), 3);
  assert_int_equal(get_ll(r, hash), 1);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

static void test_binary_safe_arguments(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, NAME, 0, 1);
  esc__ctx_begin_event(&ctx);
  char key[ESC__KEY_MAX];
  int n = snprintf(key, sizeof key, "%s:g1:bin", NAME);
  static const char val[] = {'a', '\0', '\r', '\n', '\xff', 'z'};
  const char *argv[] = {"SET", key, val};
  const size_t lens[] = {3, (size_t)n, sizeof val};
  assert_int_equal(esc_ctx_command(&ctx, 3, argv, lens), ESC_OK);
  struct esc__apply_result res = apply(r, &k, 1, "", "1/1", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  redisReply *rep = cmd(r, true, "GET", key, NULL);
  assert_int_equal(rep->type, REDIS_REPLY_STRING);
  assert_int_equal(rep->len, sizeof val);
  assert_memory_equal(rep->str, val, sizeof val);
  freeReplyObject(rep);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

/* ------------------------------------------------------------------------
 * Dead-letter guard
 * ------------------------------------------------------------------------ */

static void test_guard(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  cmd(r, false, "SET", k.cp, "9/9", NULL);
  esc_uuid id = esc_uuid_v4();
  char guard[ESC__KEY_MAX];
  esc__key_dead_letter_guard(guard, sizeof guard, NAME, 1, &id);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 7);

  /* A retried dead letter: applied once, checkpoint kept where it is. */
  struct esc__apply_result res = apply(r, &k, 1, "9/9", "9/9", guard, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_string_equal(res.error, "");
  assert_true(key_exists(r, guard));
  assert_int_equal(get_ll(r, k.counter), 7);

  /* The same retry again (its reply was lost, the worker died before
   * resolving the letter): reported applied, nothing applied twice. */
  res = apply(r, &k, 1, "9/9", "9/9", guard, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_non_null(strstr(res.error, "guard already set"));
  assert_int_equal(get_ll(r, k.counter), 7);
  assert_true(zscore(r, k.zset, "alice") == 7.0);
  assert_value(r, k.cp, "9/9");

  /* The checkpoint CAS still comes first: a zombie's retry is stale. */
  res = apply(r, &k, 1, "8/8", "8/8", guard, &ctx);
  assert_int_equal(res.outcome, ESC__STALE);
  assert_string_equal(res.checkpoint, "9/9");

  /* Another letter's guard is independent. */
  esc_uuid id2 = esc_uuid_v4();
  char guard2[ESC__KEY_MAX];
  esc__key_dead_letter_guard(guard2, sizeof guard2, NAME, 1, &id2);
  res = apply(r, &k, 1, "9/9", "9/9", guard2, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_string_equal(res.error, "");
  assert_int_equal(get_ll(r, k.counter), 14);
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

/* ------------------------------------------------------------------------
 * Scripts and connections
 * ------------------------------------------------------------------------ */

static void test_noscript_recovery(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 2);
  struct esc__apply_result res = apply(r, &k, 1, "", "1/1", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);

  /* The server forgets its scripts (SCRIPT FLUSH, a restart, a failover):
   * the next EVALSHA gets NOSCRIPT, loads the script and applies once. */
  cmd(r, false, "SCRIPT", "FLUSH", NULL);
  res = apply(r, &k, 1, "1/1", "2/2", NULL, &ctx);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, k.counter), 4);

  cmd(r, false, "SCRIPT", "FLUSH", NULL);
  bool switched = true;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc__redis_switch(r, NAME, 1, 2, 1, 1, &switched, &err),
                   ESC_OK);
  assert_false(switched); /* nobody is ready */
  esc__ctx_release(&ctx);
  esc__redis_free(r);
}

/* The two halves the worker uses to overlap Redis with its own work. */
static void test_apply_in_flight(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail(), *other = connect_or_fail();
  esc_error err = ESC_ERROR_INIT;
  struct esc__apply_result res;
  struct keys k;
  make_keys(&k, 1);
  cmd(r, false, "SET", k.gen, "1", NULL);
  esc_projection_ctx ctx;
  fill_batch(&ctx, 1, 2);

  assert_int_equal(esc__redis_apply_receive(r, &res, &err), ESC_EINVAL);

  /* The batch is written out at send: refilling the batch right after
   * does not change what Redis applies. */
  struct esc__apply_request req = {k.gen, 1, k.cp, "", "1/1", NULL, 0};
  assert_int_equal(esc__redis_apply_send(r, &req, &ctx, &err), ESC_OK);
  esc__ctx_release(&ctx);
  fill_batch(&ctx, 1, 100);
  assert_int_equal(esc__redis_apply_receive(r, &res, &err), ESC_OK);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, k.counter), 2);

  /* A reply nobody read is dropped before the next command, whose own
   * reply it then gets. */
  struct esc__apply_request next = {k.gen, 1, k.cp, "1/1", "2/2", NULL, 0};
  assert_int_equal(esc__redis_apply_send(r, &next, &ctx, &err), ESC_OK);
  assert_value(r, k.cp, "2/2");
  assert_int_equal(get_ll(r, k.counter), 102);

  /* Scripts forgotten while the handle thinks it has them: the pipelined
   * apply reports NOT_RUN (nothing ran), the next send loads it again. */
  cmd(other, false, "SCRIPT", "FLUSH", NULL);
  struct esc__apply_request third = {k.gen, 1, k.cp, "2/2", "3/3", NULL, 0};
  assert_int_equal(esc__redis_apply_send(r, &third, &ctx, &err), ESC_OK);
  assert_int_equal(esc__redis_apply_receive(r, &res, &err), ESC_OK);
  assert_int_equal(res.outcome, ESC__NOT_RUN);
  assert_value(r, k.cp, "2/2");
  assert_int_equal(esc__redis_apply_send(r, &third, &ctx, &err), ESC_OK);
  assert_int_equal(esc__redis_apply_receive(r, &res, &err), ESC_OK);
  assert_int_equal(res.outcome, ESC__APPLIED);
  assert_int_equal(get_ll(r, k.counter), 202);

  esc__ctx_release(&ctx);
  esc__redis_free(other);
  esc__redis_free(r);
}

static void test_connection(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;

  /* a URL that is not one */
  assert_null(esc__redis_connect("http://127.0.0.1:63799", &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "redis://"));
  assert_null(esc__redis_connect("redis://127.0.0.1:99999", &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_null(esc__redis_connect("redis://127.0.0.1:6379/x", &err));
  assert_int_equal(err.code, ESC_EINVAL);

  /* nobody listens on port 1 */
  assert_null(esc__redis_connect("redis://127.0.0.1:1", &err));
  assert_int_equal(err.code, ESC_ECONN);
  assert_non_null(strstr(err.msg, "127.0.0.1:1"));

  /* the default comes from ESC_REDIS_URL */
  const char *env = getenv("ESC_REDIS_URL");
  char *saved = env ? strdup(env) : NULL;
  setenv("ESC_REDIS_URL", "redis://example.invalid:1/2", 1);
  assert_string_equal(esc_default_redis_url(), "redis://example.invalid:1/2");
  unsetenv("ESC_REDIS_URL");
  assert_string_equal(esc_default_redis_url(), "redis://127.0.0.1:63799");
  if (saved) {
    setenv("ESC_REDIS_URL", saved, 1);
    free(saved);
  }

  /* a database number selects that database */
  esc__redis *r0 = connect_or_fail();
  char url1[256];
  redisReply *rep = cmd(r0, true, "CLIENT", "ID", NULL);
  long long id0 = rep->integer;
  freeReplyObject(rep);
  /* url() plus /1, unless url() names a database already */
  if (!strchr(url() + strlen("redis://"), '/')) {
    snprintf(url1, sizeof url1, "%s/1", url());
    esc__redis *r1 = esc__redis_connect(url1, &err);
    if (!r1)
      fail_msg("connect %s: %s", url1, err.msg);
    char key1[ESC__KEY_MAX];
    snprintf(key1, sizeof key1, "%s:db1", NAME);
    cmd(r1, false, "SET", key1, "x", NULL);
    assert_true(key_exists(r1, key1));
    assert_false(key_exists(r0, key1));
    cmd(r1, false, "DEL", key1, NULL);
    esc__redis_free(r1);
  }
  char key[ESC__KEY_MAX];
  snprintf(key, sizeof key, "%s:k", NAME);

  /* the public call: a plain hiredis context, same URL rules */
  assert_null(esc_redis_connect("redis://127.0.0.1:1", &err));
  assert_int_equal(err.code, ESC_ECONN);
  assert_null(esc_redis_connect("redis://127.0.0.1:6379/x", &err));
  assert_int_equal(err.code, ESC_EINVAL);
  redisContext *plain = esc_redis_connect(url(), &err);
  if (!plain)
    fail_msg("esc_redis_connect %s: %s", url(), err.msg);
  redisReply *pong = redisCommand(plain, "PING");
  assert_non_null(pong);
  assert_string_equal(pong->str, "PONG");
  freeReplyObject(pong);
  redisFree(plain);

  /* a killed connection: not ok, ESC_ECONN, then reconnect */
  esc__redis *killer = connect_or_fail();
  char id[32];
  snprintf(id, sizeof id, "%lld", id0);
  cmd(killer, false, "CLIENT", "KILL", "ID", id, NULL);
  esc__redis_free(killer);
  assert_true(esc__redis_ok(r0));
  const char *argv[] = {"PING"};
  assert_int_equal(esc__redis_run(r0, 1, argv, NULL, NULL, &err), ESC_ECONN);
  assert_false(esc__redis_ok(r0));
  assert_int_equal(esc__redis_run(r0, 1, argv, NULL, NULL, &err), ESC_ECONN);
  assert_int_equal(esc__redis_reconnect(r0, &err), ESC_OK);
  assert_true(esc__redis_ok(r0));
  assert_int_equal(esc__redis_run(r0, 1, argv, NULL, NULL, &err), ESC_OK);

  /* error replies are ESC_EIO with Redis's text */
  const char *bad[] = {"INCRBY", "k"};
  assert_int_equal(esc__redis_run(r0, 2, bad, NULL, NULL, &err), ESC_EIO);
  assert_non_null(strstr(err.msg, "wrong number of arguments"));
  assert_true(esc__redis_ok(r0));

  /* GET of a missing key, and of one too long for the buffer */
  char v[4];
  bool exists = true;
  assert_int_equal(esc__redis_get(r0, key, v, sizeof v, &exists, &err), ESC_OK);
  assert_false(exists);
  cmd(r0, false, "SET", key, "12345", NULL);
  assert_int_equal(esc__redis_get(r0, key, v, sizeof v, &exists, &err),
                   ESC_EINVAL);
  esc__redis_free(r0);
  esc__redis_free(NULL);
}

/* ------------------------------------------------------------------------
 * Generations: switch and delete
 * ------------------------------------------------------------------------ */

static void test_switch(void **state) {
  (void)state;
  esc__redis *r = connect_or_fail();
  char gen[ESC__KEY_MAX], ver[ESC__KEY_MAX], reb[ESC__KEY_MAX],
      ready[ESC__KEY_MAX];
  esc__key_generation(gen, sizeof gen, NAME);
  esc__key_version(ver, sizeof ver, NAME);
  esc__key_rebuild(reb, sizeof reb, NAME);
  esc__key_rebuild_ready(ready, sizeof ready, NAME);
  esc_error err = ESC_ERROR_INIT;
  bool switched = true;

  /* the first build: no generation key yet, switch from 0 */
  cmd(r, false, "SADD", ready, "0", NULL);
  assert_int_equal(esc__redis_switch(r, NAME, 0, 1, 1, 1, &switched, &err),
                   ESC_OK);
  assert_true(switched);
  assert_value(r, gen, "1");
  assert_value(r, ver, "1");
  assert_false(key_exists(r, ready));

  /* a rebuild of 3 partitions into generation 2 */
  cmd(r, false, "HSET", reb, "generation", "2", "version", "2", NULL);
  cmd(r, false, "SADD", ready, "0", "2", NULL);
  assert_int_equal(esc__redis_switch(r, NAME, 1, 2, 2, 3, &switched, &err),
                   ESC_OK);
  assert_false(switched); /* partition 1 is not ready */
  assert_value(r, gen, "1");
  assert_value(r, ver, "1");
  assert_true(key_exists(r, reb));

  cmd(r, false, "SADD", ready, "1", NULL);
  /* a worker with a stale idea of what serves cannot switch */
  assert_int_equal(esc__redis_switch(r, NAME, 0, 2, 2, 3, &switched, &err),
                   ESC_OK);
  assert_false(switched);
  assert_int_equal(esc__redis_switch(r, NAME, 1, 2, 2, 3, &switched, &err),
                   ESC_OK);
  assert_true(switched);
  assert_value(r, gen, "2");
  assert_value(r, ver, "2");
  assert_false(key_exists(r, reb));
  assert_false(key_exists(r, ready));

  /* switching twice does nothing */
  assert_int_equal(esc__redis_switch(r, NAME, 1, 2, 2, 3, &switched, &err),
                   ESC_OK);
  assert_false(switched);
  assert_value(r, gen, "2");
  esc__redis_free(r);
}

static void test_delete_generation(void **state) {
  (void)state;
  enum { N = 1500 };
  esc__redis *r = connect_or_fail();
  char key[ESC__KEY_MAX];
  /* generation 1 (to delete), with a checkpoint and a guard */
  for (int i = 0; i < N; i += 100) {
    const char *argv[201];
    char keys[100][ESC__KEY_MAX];
    argv[0] = "MSET";
    int argc = 1;
    for (int j = 0; j < 100; j++) {
      snprintf(keys[j], sizeof keys[j], "%s:g1:item:%d", NAME, i + j);
      argv[argc++] = keys[j];
      argv[argc++] = "v";
    }
    esc_error err = ESC_ERROR_INIT;
    if (esc__redis_run(r, argc, argv, NULL, NULL, &err))
      fail_msg("MSET: %s", err.msg);
  }
  esc__key_checkpoint(key, sizeof key, NAME, 1, 0);
  cmd(r, false, "SET", key, "1/1", NULL);

  /* what must survive */
  static const char *const keep_fmt[] = {
      "%s:g10:item:1", "%s:g10:p0:checkpoint",
      "%s:g2:item:1",  "%s:generation",
      "%s:g11:x",      "%s:version"};
  char keep[8][ESC__KEY_MAX];
  size_t nkeep = 0;
  for (size_t i = 0; i < sizeof keep_fmt / sizeof keep_fmt[0]; i++) {
    snprintf(keep[nkeep], sizeof keep[nkeep], keep_fmt[i], NAME);
    cmd(r, false, "SET", keep[nkeep++], "v", NULL);
  }
  snprintf(keep[nkeep], sizeof keep[nkeep], "%s:g1:item:1", OTHER);
  cmd(r, false, "SET", keep[nkeep++], "v", NULL);

  /* in steps of about 200 keys */
  uint64_t cursor = 0;
  int steps = 0;
  esc_error err = ESC_ERROR_INIT;
  do {
    if (esc__redis_delete_generation(r, NAME, 1, &cursor, 200, &err))
      fail_msg("delete generation: %s", err.msg);
    steps++;
    assert_true(steps < 100000);
  } while (cursor != 0);
  assert_true(steps > 1);

  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "%s:g1:item:%d", NAME, i);
    if (key_exists(r, key))
      fail_msg("%s survived", key);
  }
  esc__key_checkpoint(key, sizeof key, NAME, 1, 0);
  assert_false(key_exists(r, key));
  for (size_t i = 0; i < nkeep; i++)
    if (!key_exists(r, keep[i]))
      fail_msg("%s was deleted", keep[i]);

  /* nothing left to delete: one step, done */
  assert_int_equal(
      esc__redis_delete_generation(r, NAME, 1, &cursor, 1000000, &err), ESC_OK);
  assert_int_equal(cursor, 0);
  esc__redis_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_apply_moves_checkpoint_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_zombies_apply_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_vanished_and_moved, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_command, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_records_progress, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_binary_safe_arguments, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_guard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_noscript_recovery, setup, teardown),
      cmocka_unit_test_setup_teardown(test_apply_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_switch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_generation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Upgrading to key namespaces (issue 10, item 5;
 * docs/decisions/0014-key-namespace-upgrade.md): a store whose read model
 * a release before namespaces built under "P:..." must never serve an
 * empty model nor apply an event twice after the upgrade. A worker of
 * this release refuses the projection while the old keys are there;
 * queries say it is not built (never a silent 0); `esc projections
 * move-keys` moves the keys, and the model serves on and resumes from its
 * checkpoints.
 *
 * The old layout is made the way that release made it: a model built
 * here, then every key renamed to its name without the namespace.
 * Without the refusal, the worker built a second model from the start of
 * the log beside the old one, and queries read it while it was empty.
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

#include <esc/query.h>

#include "projection_int.h"
#include "tally.h"
#include "testenv.h"

#define PARTITIONS 2

static char schema[48];
static char name[48];                     /* the projection */
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:<name>" */
static char ns_colon[ESC_TEST_KEY_BASE_SIZE]; /* "NS:" */
static esc_store *store;
static redisContext *redis;
static esc_projection proj;
static long long old_generation;

/* ------------------------------------------------------------ helpers -- */

static esc_status catch_up(esc_error *err) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = schema;
  o.poll_ms = 50;
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, err);
  if (!w)
    fail_msg("worker: %s", err->msg);
  esc_status rc = esc_worker_add(w, &proj, err);
  if (!rc)
    rc = esc_worker_run_until_caught_up(w, 60000, err);
  esc_worker_free(w);
  return rc;
}

/* Renames every key under "NS:" of the projection to its name without
 * the namespace: the keys as a release before namespaces wrote them. */
static long long strip_namespace(void) {
  char pattern[ESC_TEST_KEY_BASE_SIZE + 2], cursor[32];
  long long n = 0, pass;
  snprintf(pattern, sizeof pattern, "%s:*", base);
  do { /* a key renamed mid-scan may be missed: scan until a pass is idle */
    pass = 0;
    snprintf(cursor, sizeof cursor, "0");
    do {
      redisReply *r = redisCommand(redis, "SCAN %s MATCH %s COUNT 1000",
                                   cursor, pattern);
      assert_non_null(r);
      assert_int_equal(r->type, REDIS_REPLY_ARRAY);
      snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
      const redisReply *keys = r->element[1];
      for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *mv =
            redisCommand(redis, "RENAME %s %s", k, k + strlen(ns_colon));
        assert_non_null(mv);
        assert_int_not_equal(mv->type, REDIS_REPLY_ERROR);
        freeReplyObject(mv);
        pass++;
      }
      freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    n += pass;
  } while (pass);
  return n;
}

static void delete_all_keys(void) {
  char prefix[ESC_TEST_KEY_BASE_SIZE + 1];
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(redis, prefix);
  snprintf(prefix, sizeof prefix, "%s:", name);
  esc_test_redis_delete_prefix(redis, prefix);
}

/* Whether the namespace's model equals a recomputation from the log:
 * every event applied exactly once. */
static void assert_model_is_the_log(void) {
  char why[256];
  esc_test_tally *m = esc_test_tally_from_log(store, false);
  bool ok = esc_test_tally_matches(m, redis, base, why, sizeof why);
  esc_test_tally_free(m);
  if (!ok)
    fail_msg("the model is not the log's: %s", why);
}

/* The output of `esc ARGS --schema S` (malloc'ed); *status its exit. */
static char *esc_output(const char *args, int *status) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "'%s' %s --schema %s 2>&1", ESC_CLI_PATH, args,
           schema);
  return esc_test_command_output(cmd, status);
}

/* -------------------------------------------------------------- setup -- */

static int group_setup(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  snprintf(schema, sizeof schema, "t_keyup_%d", (int)getpid());
  snprintf(name, sizeof name, "ku%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  esc_test_key_base(schema, name, base, sizeof base);
  snprintf(ns_colon, sizeof ns_colon, "%.*s", (int)(strchr(base, ':') - base + 1),
           base);
  redis = esc_test_redis(NULL);
  delete_all_keys();
  tally_projection(&proj, name, 1, PARTITIONS);
  tally_append(store, "u", 6, 40);
  if (catch_up(&err))
    fail_msg("first build: %s", err.msg);
  old_generation = esc_test_redis_ll(redis, -1, "GET %s:generation", base);
  assert_true(old_generation > 0);
  /* As the release before namespaces left it, then more events. */
  assert_true(strip_namespace() > 0);
  tally_append(store, "u", 6, 25);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  delete_all_keys();
  redisFree(redis);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* -------------------------------------------------------------- tests -- */

/* The worker refuses, naming the way out; nothing is built beside the old
 * model; a query says "not built", never an empty model's 0. */
static void a_worker_refuses_the_old_keys(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(catch_up(&err), ESC_EBUSY);
  assert_non_null(strstr(err.msg, "before key namespaces"));
  assert_non_null(strstr(err.msg, "esc projections move-keys"));
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", base),
                   -1);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", name),
                   old_generation);

  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.schema = schema;
  esc_query *q = esc_query_new(&qo, &err);
  assert_non_null(q);
  int64_t total = -1;
  assert_int_equal(esc_query_counter(q, name, "total", &total, &err),
                   ESC_ENOTFOUND);
  esc_query_free(q);
}

/* While a worker holds a lease, nothing moves. */
static void moving_waits_for_the_workers_to_stop(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  size_t moved = 99;
  PGconn *holder = esc_test_pg();
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)",
           (long long)esc__lease_key(schema, name, PARTITIONS, 1));
  esc_test_exec(holder, sql);
  assert_int_equal(esc_projection_move_keys(NULL, NULL, schema, NULL, name,
                                            &moved, &err),
                   ESC_EBUSY);
  assert_non_null(strstr(err.msg, "a worker holds partition 1 of 2"));
  assert_int_equal(moved, 0);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", name),
                   old_generation);
  PQfinish(holder);
}

/* Bad input: an invalid prefix or projection name is refused, saying
 * what is wrong, before anything is touched. */
static void bad_names_are_refused(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_projection_move_keys(NULL, NULL, schema, "a:b", name,
                                            NULL, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "key prefix \"a:b\": byte 2 (':')"));
  assert_int_equal(esc_projection_move_keys(NULL, NULL, schema, NULL, "No*",
                                            NULL, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "projection name"));
}

/* `esc projections move-keys` moves them; the model serves on in its old
 * generation and the worker resumes from its checkpoints: the model is
 * the log's, each event once. A second run has nothing to do. */
static void moved_keys_serve_on_and_resume(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  char args[128];
  int status = -1;
  snprintf(args, sizeof args, "projections move-keys %s --json", name);
  char *out = esc_output(args, &status);
  if (status != 0 || !strstr(out, "\"moved\""))
    fail_msg("move-keys exited %d: %s", status, out);
  assert_null(strstr(out, "\"moved\": 0"));
  free(out);
  char pattern[64];
  snprintf(pattern, sizeof pattern, "%s:*", name);
  assert_int_equal(esc_test_redis_count(redis, pattern), 0);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", base),
                   old_generation);

  size_t moved = 99;
  assert_int_equal(esc_projection_move_keys(NULL, NULL, schema, NULL, name,
                                            &moved, &err),
                   ESC_OK);
  assert_int_equal(moved, 0);

  assert_int_equal(catch_up(&err), ESC_OK);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", base),
                   old_generation);
  assert_model_is_the_log();
}

/* Old keys of another store (its "P:owner") are not this store's: its
 * workers build their own model in their namespace, and moving them is
 * refused. */
static void another_stores_old_keys_stay_theirs(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  char other[64];
  esc_projection p2;
  snprintf(other, sizeof other, "ku%d_b", (int)getpid());
  tally_projection(&p2, other, 1, 1);
  redisReply *r = redisCommand(
      redis, "MSET %s:generation 5 %s:owner 00000000-0000-4000-8000-00000000000a",
      other, other);
  assert_non_null(r);
  freeReplyObject(r);

  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = schema;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, &p2, &err), ESC_OK);
  assert_int_equal(esc_worker_run_until_caught_up(w, 60000, &err), ESC_OK);
  esc_worker_free(w);

  assert_int_equal(esc_projection_move_keys(NULL, NULL, schema, NULL, other,
                                            NULL, &err),
                   ESC_ECONFLICT);
  assert_non_null(strstr(err.msg, "another store"));
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:generation", other),
                   5);
  char prefix[80], nsbase[ESC_TEST_KEY_BASE_SIZE];
  snprintf(prefix, sizeof prefix, "%s:", other);
  esc_test_redis_delete_prefix(redis, prefix);
  snprintf(prefix, sizeof prefix, "%s:",
           esc_test_key_base(schema, other, nsbase, sizeof nsbase));
  esc_test_redis_delete_prefix(redis, prefix);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_worker_refuses_the_old_keys),
      cmocka_unit_test(moving_waits_for_the_workers_to_stop),
      cmocka_unit_test(bad_names_are_refused),
      cmocka_unit_test(moved_keys_serve_on_and_resume),
      cmocka_unit_test(another_stores_old_keys_stay_theirs),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

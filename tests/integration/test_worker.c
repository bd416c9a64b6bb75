/*
 * The projection worker against real PostgreSQL and Redis: catching up,
 * restarting without applying anything twice, partitions keeping per-stream
 * order, a rebuild on a version bump, a rebuild after Redis lost the
 * projection's keys (guarantees 6 and 7), and keys of another store left
 * alone.
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
#include <hiredis/hiredis.h>

#include "tally.h"
#include "testenv.h"

static char name[48];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": where its keys start */
static char schema[40];  /* per process: parallel runs must not collide */
static int64_t appended; /* the sum of n over every event appended */
static redisContext *redis;

static redisContext *redis_connect(void) {
  return esc_test_redis(NULL);
}

static long long redis_int(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(redis, fmt, ap);
  va_end(ap);
  assert_non_null(r);
  long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                                : -1;
  freeReplyObject(r);
  return v;
}

static long long generation(void) {
  return redis_int("GET %s:generation", base);
}

static long long total(void) {
  long long g = generation();
  return redis_int("GET %s:g%lld:total", base, g);
}

static void delete_projection_keys(void) {
  redisReply *r = redisCommand(redis, "EVAL %s 0 %s:*",
                               "local n = 0 for _, k in ipairs(redis.call("
                               "'KEYS', ARGV[1])) do redis.call('DEL', k) "
                               "n = n + 1 end return n",
                               base);
  freeReplyObject(r);
}

/* A projection that never existed: no keys, and no registry row (whose
 * partition layout the first registration sets). */
static void forget_projection(void) {
  delete_projection_keys();
  esc_test_unregister_projection(schema, name);
}

/* ESC_TEST_VERBOSE=1 shows the worker's log lines. */
static void log_line(void *userdata, const char *line) {
  (void)userdata;
  fprintf(stderr, "  worker: %s\n", line);
}

static esc_worker *worker_for(const esc_projection *p) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  if (getenv("ESC_TEST_VERBOSE"))
    o.log = log_line;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.batch_size = 97; /* batches that do not line up with anything */
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  if (esc_worker_add(w, p, &err))
    fail_msg("add: %s", err.msg);
  return w;
}

static void catch_up(const esc_projection *p) {
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = worker_for(p);
  esc_status rc = esc_worker_run_until_caught_up(w, 60000, &err);
  esc_worker_free(w);
  if (rc)
    fail_msg("catch up: %s", err.msg);
}

/* Every seq:<stream> list holds 1..n in order. */
static void check_order(int streams, const char *prefix) {
  long long g = generation();
  for (int i = 0; i < streams; i++) {
    redisReply *r = redisCommand(redis, "LRANGE %s:g%lld:seq:tally-%s%d 0 -1",
                                 base, g, prefix, i);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t k = 0; k < r->elements; k++)
      if (strtoll(r->element[k]->str, NULL, 10) != (long long)k + 1)
        fail_msg("stream %d: position %zu holds version %s", i, k,
                 r->element[k]->str);
    freeReplyObject(r);
  }
}

static int setup(void **state) {
  snprintf(schema, sizeof schema, "t_worker_%d", (int)getpid());
  snprintf(name, sizeof name, "tw%d", (int)getpid());
  esc_store *st = esc_test_fresh_store(schema);
  *state = st;
  esc_test_key_base(schema, name, base, sizeof base);
  redis = redis_connect();
  delete_projection_keys();
  return 0;
}

static void drop_store(const char *which) {
  esc_test_drop_schema(which);
}

static int teardown(void **state) {
  delete_projection_keys();
  redisFree(redis);
  esc_store_free(*state);
  drop_store(schema);
  return 0;
}

/* ------------------------------------------------------------------------ */

static void catches_up_and_restarts_without_double_counting(void **state) {
  esc_store *st = *state;
  esc_projection p;
  tally_projection(&p, name, 1, 1);
  int64_t sum = tally_append(st, "a", 10, 1000);
  appended += sum;
  catch_up(&p);
  assert_int_equal(total(), sum);
  check_order(10, "a");

  /* A new worker resumes from the checkpoint: nothing twice. */
  catch_up(&p);
  assert_int_equal(total(), sum);
  int64_t more = tally_append(st, "a", 10, 300);
  appended += more;
  sum += more;
  catch_up(&p);
  assert_int_equal(total(), sum);
  check_order(10, "a");
}

static void partitions_share_the_work_in_order(void **state) {
  esc_store *st = *state;
  esc_projection p;
  forget_projection();
  tally_projection(&p, name, 1, 4);
  appended += tally_append(st, "a", 10, 1300);
  catch_up(&p);
  /* All partitions add to the generation's one total key: the sum covers
   * every event of the log exactly once. */
  assert_int_equal(total(), appended);
  check_order(10, "a");
  long long g = generation();
  for (int i = 0; i < 4; i++)
    assert_int_equal(redis_int("EXISTS %s:g%lld:p%d:checkpoint", base, g, i),
                     1);
}

static void version_bump_rebuilds_into_a_new_generation(void **state) {
  esc_store *st = *state;
  esc_projection v1, v2;
  forget_projection();
  tally_projection(&v1, name, 1, 2);
  tally_projection(&v2, name, 2, 2);
  catch_up(&v1);
  long long before = total(), g1 = generation();
  assert_int_equal(before, appended);

  catch_up(&v2); /* rebuilds, switches when caught up */
  long long g2 = generation();
  assert_true(g2 == g1 + 1);
  assert_int_equal(total(), before);
  assert_int_equal(redis_int("GET %s:version", base), 2);
  /* The old generation's keys are deleted in the background. */
  catch_up(&v2);
  assert_int_equal(redis_int("EXISTS %s:g%lld:total", base, g1), 0);
  (void)st;
}

static void lost_keys_are_rebuilt_from_the_log(void **state) {
  esc_projection p;
  tally_projection(&p, name, 2, 2);
  catch_up(&p);
  long long before = total();
  delete_projection_keys(); /* as FLUSHALL would, for this projection */
  catch_up(&p);
  assert_int_equal(total(), before);
  assert_int_equal(total(), appended);
  (void)state;
}

static void repartitioning_rebuilds_without_double_counting(void **s) {
  (void)s;
  esc_projection two, three;
  esc_error err = ESC_ERROR_INIT;
  bool started = false;
  tally_projection(&two, name, 2, 2);
  tally_projection(&three, name, 2, 3); /* same version, other count */
  catch_up(&two);
  long long g = generation();
  assert_int_equal(total(), appended);
  /* A worker of another count refuses until the layout changes. */
  esc_worker *w = worker_for(&three);
  assert_int_equal(esc_worker_run_until_caught_up(w, 10000, &err),
                   ESC_ECONFLICT);
  esc_worker_free(w);
  assert_int_equal(generation(), g);
  assert_int_equal(
      esc_projection_repartition(NULL, schema, name, 3, &started, &err),
      ESC_OK);
  assert_true(started);
  catch_up(&three); /* a rebuild into g+1 with three partitions */
  assert_true(generation() > g);
  assert_int_equal(total(), appended);
  assert_int_equal(redis_int("GET %s:partitions", base), 3);
  check_order(10, "a");
}

static void a_checkpoint_missing_at_start_is_not_replayed(void **s) {
  (void)s;
  esc_projection p;
  tally_projection(&p, name, 2, 3);
  catch_up(&p);
  long long g = generation();
  /* Only one checkpoint is lost (an eviction, a careless DEL); a worker
   * that starts now must not replay that partition into generation g. */
  redisReply *r = redisCommand(redis, "DEL %s:g%lld:p1:checkpoint", base, g);
  freeReplyObject(r);
  catch_up(&p);
  assert_int_equal(total(), appended);
  assert_true(generation() != g);
}

/* Runs p once on schema `which` with key prefix `prefix`; its status. */
static esc_status run_with_prefix(const esc_projection *p, const char *which,
                                  const char *prefix, esc_error *err) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = which;
  o.key_prefix = prefix;
  esc_worker *w = esc_worker_new(&o, err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, p, err), ESC_OK);
  esc_status rc = esc_worker_run_until_caught_up(w, 10000, err);
  esc_worker_free(w);
  return rc;
}

/* Two stores given one key prefix (another schema here; the same holds
 * for another database, or this store dropped and created again) share
 * their keys' namespace: a projection of the same name would follow
 * checkpoints that are positions of the other log. The second store's
 * worker refuses, and the keys stay as they were. */
static void keys_of_another_store_are_refused(void **s) {
  (void)s;
  char other[48], prefix[48], shared[96], owner_key[128], owner[40],
      owner_after[40];
  esc_error err = ESC_ERROR_INIT;
  esc_projection p;
  tally_projection(&p, name, 2, 3);
  snprintf(prefix, sizeof prefix, "tw%d-shared", (int)getpid());
  snprintf(shared, sizeof shared, "%s:%s", prefix, name);
  esc_test_redis_delete_prefix(redis, shared);
  assert_int_equal(run_with_prefix(&p, schema, prefix, &err), ESC_OK);
  long long g = redis_int("GET %s:generation", shared);
  assert_true(g > 0);
  assert_int_equal(redis_int("GET %s:g%lld:total", shared, g), appended);
  snprintf(owner_key, sizeof owner_key, "%s:owner", shared);
  redisReply *r = redisCommand(redis, "GET %s", owner_key);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  snprintf(owner, sizeof owner, "%s", r->str);
  freeReplyObject(r);

  snprintf(other, sizeof other, "t_worker_other_%d", (int)getpid());
  esc_store *st2 = esc_test_fresh_store(other);
  tally_append(st2, "z", 3, 10);
  esc_status rc = run_with_prefix(&p, other, prefix, &err);
  esc_store_free(st2);
  drop_store(other);

  assert_int_equal(rc, ESC_EBUSY);
  assert_non_null(strstr(err.msg, "another event store"));
  assert_non_null(strstr(err.msg, owner));
  assert_non_null(strstr(err.msg, prefix));
  r = redisCommand(redis, "GET %s", owner_key);
  snprintf(owner_after, sizeof owner_after, "%s", r->str);
  freeReplyObject(r);
  assert_string_equal(owner_after, owner);
  assert_int_equal(redis_int("GET %s:generation", shared), g);
  assert_int_equal(redis_int("GET %s:g%lld:total", shared, g), appended);
  esc_test_redis_delete_prefix(redis, shared);
}

/* A prefix that could not be told apart from another (':', globs) or is
 * empty is refused when the worker is made, saying which byte. */
static void an_invalid_key_prefix_is_refused(void **s) {
  (void)s;
  static const struct {
    const char *prefix, *msg;
  } cases[] = {{"", "key prefix is empty"},
               {"a:b", "byte 2 (':') is not allowed; use [A-Za-z0-9_.-]"},
               {"shop*", "byte 5 ('*') is not allowed"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
    esc_error err = ESC_ERROR_INIT;
    o.schema = schema;
    o.key_prefix = cases[i].prefix;
    assert_null(esc_worker_new(&o, &err));
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg))
      fail_msg("\"%s\": message \"%s\" lacks \"%s\"", cases[i].prefix,
               err.msg, cases[i].msg);
  }
}

/* Log lines a worker printed, for tests that read them. */
struct captured {
  int progress; /* "catching up: at global position ..." */
  int caught_up;
  char last[512];
};

static void capture_line(void *userdata, const char *line) {
  struct captured *c = userdata;
  if (strstr(line, ": catching up: at global position ") &&
      strstr(line, " events/s"))
    c->progress++;
  if (strstr(line, ": caught up at global position "))
    c->caught_up++;
  snprintf(c->last, sizeof c->last, "%s", line);
  if (getenv("ESC_TEST_VERBOSE"))
    log_line(NULL, line);
}

/* A long replay says where it is; progress_ms = 1 makes every burst long
 * enough to report. */
static void a_long_replay_reports_progress(void **state) {
  esc_store *st = *state;
  esc_projection p;
  struct captured seen = {0, 0, ""};
  tally_projection(&p, name, 2, 3);
  catch_up(&p);
  appended += tally_append(st, "p", 10, 300);

  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.batch_size = 97;
  o.progress_ms = 1;
  o.log = capture_line;
  o.log_userdata = &seen;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, &p, &err), ESC_OK);
  esc_status rc = esc_worker_run_until_caught_up(w, 60000, &err);
  esc_worker_free(w);
  if (rc)
    fail_msg("catch up: %s", err.msg);
  assert_int_equal(total(), appended);
  if (seen.progress < 1 || seen.caught_up < 1)
    fail_msg("%d progress and %d caught-up lines; the last line: %s",
             seen.progress, seen.caught_up, seen.last);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(catches_up_and_restarts_without_double_counting),
      cmocka_unit_test(partitions_share_the_work_in_order),
      cmocka_unit_test(version_bump_rebuilds_into_a_new_generation),
      cmocka_unit_test(lost_keys_are_rebuilt_from_the_log),
      cmocka_unit_test(repartitioning_rebuilds_without_double_counting),
      cmocka_unit_test(a_checkpoint_missing_at_start_is_not_replayed),
      cmocka_unit_test(keys_of_another_store_are_refused),
      cmocka_unit_test(an_invalid_key_prefix_is_refused),
      cmocka_unit_test(a_long_replay_reports_progress),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

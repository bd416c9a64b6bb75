/*
 * Commands that fail inside Redis (issue 10, item 2): the failure is
 * attributed to one event, the commands of the events before it are kept,
 * and that event follows the projection's dead-letter policy as a handler
 * error does: retried, then parked with the Redis error and how many of its
 * commands took effect (the partition moves on), or the partition stops
 * with the reason visible. Nothing is applied twice, also across retries
 * and `esc dead-letters retry`. Transient failures (OOM, a server that is
 * gone) are retried, never parked, and esc_worker_run_until_caught_up
 * keeps its timeout meanwhile.
 *
 * The projection here queues three INCRBYs per event:
 *   0  count            1          (every event)
 *   1  sum:<item>       n          ("bad" events: <name>:trap, outside
 *                                   the generation, which a test makes a
 *                                   hash, so the command is WRONGTYPE)
 *   2  after            1
 * so a failure at command 1 leaves command 0 applied, and any double
 * apply shows in count.
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
#include <pthread.h>

#include "tally.h"
#include "testenv.h"

#define BIG 4000000000000000000LL /* three of them overflow an INCRBY */

static char schema[48], name[48], trap[ESC_TEST_KEY_BASE_SIZE + 8];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": where its keys start */
static char redis_url[64]; /* "": the shared server */
static int batch_size;     /* events per read; 0: 50 */
static redisContext *redis;

/* ------------------------------------------------------------ helpers -- */

static esc_status handle(esc_projection_ctx *ctx, const esc_event *event,
                         void *userdata, esc_error *err) {
  (void)userdata;
  (void)err;
  const tally_counted *e = event->data;
  if (!e)
    return ESC_OK;
  const char *side = strcmp(e->item, "bad") == 0
                         ? trap
                         : esc_ctx_key(ctx, "sum:%s", e->item);
  esc_status rc =
      esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "count"), "1", NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "INCRBY", side, esc_ctx_i64(ctx, e->n), NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "after"), "1", NULL);
  return rc;
}

/* The tally projection (its categories, its events) with this handler. */
static void projection(esc_projection *p, int32_t version, int partitions,
                       esc_on_error on_error) {
  tally_projection(p, name, version, partitions);
  p->handle = handle;
  p->on_error = on_error;
  p->max_attempts = 3;
}

static void log_line(void *userdata, const char *line) {
  (void)userdata;
  if (getenv("ESC_TEST_VERBOSE"))
    fprintf(stderr, "  worker: %s\n", line);
}

static esc_worker *worker_for(const esc_projection *p) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.log = log_line;
  o.schema = schema;
  o.batch_size = batch_size ? batch_size : 50;
  o.lease_poll_ms = 100;
  o.poll_ms = 100;
  if (redis_url[0])
    o.redis_url = redis_url;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  if (esc_worker_add(w, p, &err))
    fail_msg("add: %s", err.msg);
  return w;
}

/* Stops a worker after ms unless the run ended first: a run that never
 * returns fails the test instead of hanging it. */
struct watchdog {
  esc_worker *w;
  int ms;
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  bool done, fired;
  pthread_t thread;
};

static void *watchdog_main(void *arg) {
  struct watchdog *d = arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += d->ms / 1000;
  until.tv_nsec += (long)(d->ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&d->lock);
  int rc = 0;
  while (!d->done && rc == 0)
    rc = pthread_cond_timedwait(&d->done_cond, &d->lock, &until);
  if (!d->done) {
    d->fired = true;
    esc_worker_stop(d->w);
  }
  pthread_mutex_unlock(&d->lock);
  return NULL;
}

/* esc_worker_run_until_caught_up(timeout_ms), stopped after timeout_ms +
 * 5 s at the latest; *fired says whether the watchdog had to. */
static esc_status catch_up(esc_worker *w, int timeout_ms, esc_error *err,
                           bool *fired) {
  struct watchdog d = {.w = w, .ms = timeout_ms + 5000};
  pthread_mutex_init(&d.lock, NULL);
  pthread_cond_init(&d.done_cond, NULL);
  assert_int_equal(pthread_create(&d.thread, NULL, watchdog_main, &d), 0);
  esc_status rc = esc_worker_run_until_caught_up(w, timeout_ms, err);
  pthread_mutex_lock(&d.lock);
  d.done = true;
  pthread_cond_signal(&d.done_cond);
  pthread_mutex_unlock(&d.lock);
  pthread_join(d.thread, NULL);
  pthread_mutex_destroy(&d.lock);
  pthread_cond_destroy(&d.done_cond);
  *fired = d.fired;
  return rc;
}

static void catch_up_ok(const esc_projection *p, const char *when) {
  esc_error err = ESC_ERROR_INIT;
  bool fired = false;
  esc_worker *w = worker_for(p);
  esc_status rc = catch_up(w, 30000, &err, &fired);
  esc_worker_free(w);
  if (fired)
    fail_msg("%s: esc_worker_run_until_caught_up ignored its timeout", when);
  if (rc)
    fail_msg("%s: catch up: %s (%s)", when, err.msg, esc_strerror(rc));
}

/* n good events ("ok", n = 1 each) in stream tally-<prefix>. */
static void append_good(esc_store *st, const char *prefix, int n) {
  char stream[64];
  snprintf(stream, sizeof stream, "tally-%s", prefix);
  for (int i = 0; i < n; i++)
    tally_append_one(st, stream, 1, "ok");
}

static long long model(const char *key) {
  long long g = esc_test_redis_ll(redis, 0, "GET %s:generation", base);
  return esc_test_redis_ll(redis, 0, "GET %s:g%lld:%s", base, g, key);
}

static esc_dead_letter *letters(bool all, size_t *n) {
  esc_dead_letter *dl = NULL;
  esc_error err = ESC_ERROR_INIT;
  if (esc_dead_letters_list(NULL, schema, name, all, &dl, n, &err))
    fail_msg("list dead letters: %s", err.msg);
  return dl;
}

static void make_trap(void) {
  freeReplyObject(redisCommand(redis, "DEL %s", trap));
  freeReplyObject(redisCommand(redis, "HSET %s f v", trap));
}

static void retry_letter(int64_t id) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_dead_letter_retry(NULL, schema, id, &err))
    fail_msg("retry %lld: %s", (long long)id, err.msg);
}

/* The state of letter id. */
static esc_dead_letter letter(int64_t id) {
  size_t n = 0;
  esc_dead_letter *dl = letters(true, &n), found = {0};
  for (size_t i = 0; i < n; i++)
    if (dl[i].id == id)
      found = dl[i];
  free(dl);
  if (!found.id)
    fail_msg("no dead letter %lld", (long long)id);
  return found;
}

static int setup(void **state) {
  (void)state;
  static int n;
  snprintf(schema, sizeof schema, "t_rfail_%d_%d", (int)getpid(), ++n);
  snprintf(name, sizeof name, "trf%d_%d", (int)getpid(), n);
  redis_url[0] = '\0';
  batch_size = 0;
  esc_store_free(esc_test_fresh_store(schema));
  esc_test_key_base(schema, name, base, sizeof base);
  snprintf(trap, sizeof trap, "%s:trap", base);
  redis = esc_test_redis(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
  snprintf(prefix, sizeof prefix, "%s:", base);
  if (redis) {
    esc_test_redis_delete_prefix(redis, prefix);
    redisFree(redis);
  }
  redis = NULL;
  esc_test_kill_children();
  esc_test_drop_schema(schema);
  return 0;
}

/* -------------------------------------------------------------- tests -- */

/*
 * A WRONGTYPE and an INCRBY overflow in one batch with good events: both
 * are parked after their attempts with the Redis error and "1 command
 * took effect", everything else is applied exactly once, and the
 * partition moves on. Retries after the fixes apply the remainder once.
 */
static void parked_with_the_rest_applied_once(void **state) {
  (void)state;
  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 1, ESC_ON_ERROR_PARK);
  make_trap();
  append_good(st, "a", 5);
  tally_append_one(st, "tally-bad", 7, "bad");
  append_good(st, "b", 5);
  for (int i = 0; i < 3; i++)
    tally_append_one(st, "tally-big", BIG, "big");
  append_good(st, "c", 5);
  catch_up_ok(&p, "first run");

  /* Every event's first command once; its last one for all but the two
   * parked; the overflowing INCRBY left alone. */
  assert_int_equal(model("count"), 19);
  assert_int_equal(model("after"), 17);
  assert_int_equal(model("sum:ok"), 15);
  assert_int_equal(model("sum:big"), 2 * BIG);
  size_t n = 0;
  esc_dead_letter *dl = letters(false, &n);
  assert_int_equal(n, 2);
  assert_string_equal(dl[0].stream_id, "tally-bad");
  assert_string_equal(dl[1].stream_id, "tally-big");
  assert_int_equal(dl[1].stream_version, 3);
  if (!strstr(dl[0].error, "WRONGTYPE"))
    fail_msg("letter 1: \"%s\" lacks WRONGTYPE", dl[0].error);
  if (!strstr(dl[1].error, "overflow"))
    fail_msg("letter 2: \"%s\" lacks the overflow", dl[1].error);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(dl[i].attempts, 3);
    assert_int_equal(dl[i].commands_applied, 1);
  }

  /* A retry while the key is still wrong: parked again, nothing more. */
  retry_letter(dl[0].id);
  catch_up_ok(&p, "failing retry");
  assert_string_equal(letter(dl[0].id).state, "parked");
  assert_int_equal(letter(dl[0].id).commands_applied, 1);
  assert_int_equal(model("count"), 19);
  assert_int_equal(model("after"), 17);

  /* Fixed: the retries apply commands 1 and 2 only. */
  freeReplyObject(redisCommand(redis, "DEL %s", trap));
  {
    long long g = esc_test_redis_ll(redis, 0, "GET %s:generation", base);
    freeReplyObject(redisCommand(redis, "SET %s:g%lld:sum:big 0", base, g));
  }
  retry_letter(dl[0].id);
  retry_letter(dl[1].id);
  catch_up_ok(&p, "retries");
  assert_string_equal(letter(dl[0].id).state, "resolved");
  assert_string_equal(letter(dl[1].id).state, "resolved");
  assert_int_equal(model("count"), 19);
  assert_int_equal(model("after"), 19);
  assert_int_equal(model("sum:big"), BIG);
  assert_int_equal(esc_test_redis_ll(redis, 0, "GET %s", trap), 7);

  /* More events flow; a new worker applies nothing again. */
  append_good(st, "d", 3);
  catch_up_ok(&p, "later events");
  assert_int_equal(model("count"), 22);
  assert_int_equal(model("after"), 22);
  assert_int_equal(model("sum:ok"), 18);
  free(dl);
  esc_store_free(st);
}

/*
 * The failing event starts a page that was read and handled while the
 * batch before it was still in Redis: the checkpoint goes back to where
 * that batch ended, not to where it began (which would apply it twice).
 */
static void failing_first_in_a_page_read_ahead(void **state) {
  (void)state;
  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 1, ESC_ON_ERROR_PARK);
  make_trap();
  batch_size = 5;
  for (int round = 0; round < 3; round++) {
    append_good(st, "a", 5);
    tally_append_one(st, "tally-bad", 7, "bad");
    append_good(st, "b", 4);
  }
  catch_up_ok(&p, "read ahead");
  assert_int_equal(model("count"), 30);
  assert_int_equal(model("after"), 27);
  assert_int_equal(model("sum:ok"), 27);
  size_t n = 0;
  free(letters(false, &n));
  assert_int_equal(n, 3);
  esc_store_free(st);
}

/* Lines of our projection that esc_projection_status shows as stopped,
 * each with reason naming the event and containing why (when not NULL). */
static int stopped_lines(const char *why) {
  esc_partition_status *sts = NULL;
  size_t n = 0;
  int stopped = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_status(NULL, NULL, schema, NULL, &sts, &n, &err))
    fail_msg("status: %s", err.msg);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(sts[i].projection, name) != 0 ||
        strcmp(sts[i].state, "stopped") != 0)
      continue;
    stopped++;
    if (why && (!strstr(sts[i].reason, why) ||
                !strstr(sts[i].reason, "tally-bad")))
      fail_msg("stopped, but the reason \"%s\" does not say %s at tally-bad",
               sts[i].reason, why);
  }
  free(sts);
  return stopped;
}

/*
 * on_error STOP: the partition stops before the failing event and
 * esc_worker_run_until_caught_up says which partition and why, although
 * the other partition is fine. Once the key is fixed the same event
 * resumes from its failed command: nothing applied twice.
 */
static void stop_policy_stops_with_the_reason(void **state) {
  (void)state;
  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 2, ESC_ON_ERROR_STOP);
  make_trap();
  append_good(st, "a", 3);
  tally_append_one(st, "tally-bad", 7, "bad");
  append_good(st, "b", 3);
  append_good(st, "e", 3);
  esc_error err = ESC_ERROR_INIT;
  bool fired = false;
  esc_worker *w = worker_for(&p);
  esc_status rc = catch_up(w, 10000, &err, &fired);
  esc_worker_free(w);
  assert_false(fired);
  if (rc == ESC_OK)
    fail_msg("caught up although a partition is stopped");
  if (!strstr(err.msg, "WRONGTYPE") || !strstr(err.msg, name) ||
      !strstr(err.msg, "tally-bad"))
    fail_msg("\"%s\" does not name the partition, event and reason", err.msg);
  size_t n = 0;
  free(letters(true, &n));
  assert_int_equal(n, 0); /* stopped, not parked */
  long long count = model("count");
  long long after = model("after");
  assert_int_equal(count, after + 1); /* the bad one's first command */
  /* The status says so, with the reason (#10 item 4), for that partition
   * only; once it moves on it no longer does. */
  assert_int_equal(stopped_lines("WRONGTYPE"), 1);

  freeReplyObject(redisCommand(redis, "DEL %s", trap));
  catch_up_ok(&p, "after the fix");
  assert_int_equal(stopped_lines(NULL), 0);
  assert_int_equal(model("count"), 10);
  assert_int_equal(model("after"), 10);
  assert_int_equal(esc_test_redis_ll(redis, 0, "GET %s", trap), 7);
  esc_store_free(st);
}

/* A rebuild meets the same bad event: it parks it again and completes. */
static void rebuild_parks_and_completes(void **state) {
  (void)state;
  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 1, ESC_ON_ERROR_PARK);
  make_trap();
  append_good(st, "a", 4);
  tally_append_one(st, "tally-bad", 7, "bad");
  append_good(st, "b", 4);
  catch_up_ok(&p, "first build");
  long long g1 = esc_test_redis_ll(redis, 0, "GET %s:generation", base);
  assert_int_equal(model("count"), 9);
  assert_int_equal(model("after"), 8);

  projection(&p, 2, 1, ESC_ON_ERROR_PARK);
  catch_up_ok(&p, "rebuild");
  long long g2 = esc_test_redis_ll(redis, 0, "GET %s:generation", base);
  assert_int_equal(g2, g1 + 1);
  assert_int_equal(model("count"), 9);
  assert_int_equal(model("after"), 8);
  size_t n = 0;
  esc_dead_letter *dl = letters(false, &n);
  assert_int_equal(n, 1);
  assert_string_equal(dl[0].stream_id, "tally-bad");
  assert_int_equal(dl[0].commands_applied, 1);
  free(dl);
  esc_store_free(st);
}

/*
 * Redis out of memory (maxmemory, noeviction; a server of our own) is
 * transient: retried, never parked; the run keeps its timeout and says
 * what fails; once memory is raised the partition proceeds, exactly.
 */
static void out_of_memory_is_retried_not_parked(void **state) {
  (void)state;
  char log_path[128];
  int port = esc_test_free_port(24000, 500);
  snprintf(log_path, sizeof log_path, "/tmp/esc-rfail-redis-%d.log",
           (int)getpid());
  esc_test_redis_server_start(port, log_path);
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
  redisContext *own = esc_test_redis(redis_url);
  redisContext *shared = redis;

  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 1, ESC_ON_ERROR_PARK);
  append_good(st, "a", 3);
  catch_up_ok(&p, "before OOM");
  redis = own;
  assert_int_equal(model("count"), 3);

  freeReplyObject(redisCommand(own, "CONFIG SET maxmemory-policy noeviction"));
  freeReplyObject(redisCommand(own, "CONFIG SET maxmemory 1"));
  append_good(st, "b", 3);
  esc_error err = ESC_ERROR_INIT;
  bool fired = false;
  esc_worker *w = worker_for(&p);
  long long t0 = esc_test_now_ms();
  esc_status rc = catch_up(w, 3000, &err, &fired);
  long long took = esc_test_now_ms() - t0;
  esc_worker_free(w);
  assert_false(fired);
  assert_int_equal(rc, ESC_ETIMEDOUT);
  if (took > 4500)
    fail_msg("a 3 s catch-up took %lld ms", took);
  if (!strstr(err.msg, "OOM") || !strstr(err.msg, name))
    fail_msg("\"%s\" does not say which partition fails and why", err.msg);
  size_t n = 0;
  free(letters(true, &n));
  assert_int_equal(n, 0);
  assert_int_equal(model("count"), 3);

  freeReplyObject(redisCommand(own, "CONFIG SET maxmemory 0"));
  catch_up_ok(&p, "memory raised");
  assert_int_equal(model("count"), 6);
  assert_int_equal(model("after"), 6);
  free(letters(true, &n));
  assert_int_equal(n, 0);

  redis = shared;
  redisFree(own);
  esc_store_free(st);
  esc_test_kill_children();
  esc_test_remove_log(log_path);
}

/* A Redis that is not there: the run returns at its timeout. */
static void timeout_kept_while_redis_is_down(void **state) {
  (void)state;
  int port = esc_test_free_port(24500, 500);
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
  esc_store *st = esc_test_open_store(schema);
  esc_projection p;
  projection(&p, 1, 1, ESC_ON_ERROR_PARK);
  append_good(st, "a", 3);
  esc_error err = ESC_ERROR_INIT;
  bool fired = false;
  esc_worker *w = worker_for(&p);
  long long t0 = esc_test_now_ms();
  esc_status rc = catch_up(w, 2000, &err, &fired);
  long long took = esc_test_now_ms() - t0;
  esc_worker_free(w);
  assert_false(fired);
  assert_true(rc == ESC_ETIMEDOUT || rc == ESC_ECONN);
  if (took > 3500)
    fail_msg("a 2 s catch-up took %lld ms", took);
  if (!strstr(err.msg, "redis"))
    fail_msg("\"%s\" does not say Redis fails", err.msg);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(parked_with_the_rest_applied_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(failing_first_in_a_page_read_ahead,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(stop_policy_stops_with_the_reason, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(rebuild_parks_and_completes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(out_of_memory_is_retried_not_parked,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(timeout_kept_while_redis_is_down, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

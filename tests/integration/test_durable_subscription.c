/*
 * Durable subscriptions (esc_subscription) against real PostgreSQL and
 * Redis: delivery in order across partitions, a checkpoint in PostgreSQL
 * that survives a restart and a Redis FLUSHALL, an idempotency key that is
 * the same on every redelivery, handler failures retried, parked and
 * retried from the dead letters, one deliverer per partition (the lease),
 * and a checkpoint no zombie can move back (the compare-and-set).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include <esc/metrics.h>

#include "httpget.h"
#include "projection_int.h"
#include "testenv.h"
#include "worker_thread.h"

static char schema[40];
static char sub_name[48];

/* ------------------------------------------------------------ deliveries -- */

/* What a handler saw: one line per delivery. */
struct seen {
  char stream[64];
  int64_t version;
  esc_uuid id;
  esc_uuid key;
  int partition;
  int attempt;
  int worker; /* the recorder's tag */
};

struct recorder {
  pthread_mutex_t lock;
  struct seen *items;
  size_t count, cap;
  int tag;
  /* Only streams starting with this are recorded (the schema holds the
   * streams of every test; a subscription sees them all). */
  char only[32];
  /* Fail every delivery of this stream version with fail_rc (0: none). */
  int64_t fail_version;
  esc_status fail_rc;
  atomic_int failures;
  /* The lease test: deliveries in progress per partition. */
  atomic_int busy[4];
  atomic_int overlaps;
  int delay_us;
};

static void recorder_init(struct recorder *r, int tag, const char *only) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->lock, NULL);
  r->tag = tag;
  snprintf(r->only, sizeof r->only, "note-%s", only);
}

static void recorder_release(struct recorder *r) {
  free(r->items);
  pthread_mutex_destroy(&r->lock);
}

static esc_status record(const esc_delivery *d, void *userdata,
                         esc_error *err) {
  struct recorder *r = userdata;
  const esc_recorded_event *e = d->event->recorded;
  if (strncmp(e->stream_id, r->only, strlen(r->only)) != 0)
    return ESC_OK;
  if (atomic_fetch_add(&r->busy[d->partition], 1) != 0)
    atomic_fetch_add(&r->overlaps, 1);
  if (r->delay_us)
    esc_test_sleep_ms(r->delay_us / 1000 + 1);
  esc_status rc = ESC_OK;
  if (r->fail_rc && e->stream_version == r->fail_version) {
    atomic_fetch_add(&r->failures, 1);
    rc = esc_error_set(err, r->fail_rc, "refusing %s@%lld", e->stream_id,
                       (long long)e->stream_version);
  } else {
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
      r->cap = r->cap ? 2 * r->cap : 256;
      r->items = realloc(r->items, r->cap * sizeof *r->items);
      assert_non_null(r->items);
    }
    struct seen *s = &r->items[r->count++];
    snprintf(s->stream, sizeof s->stream, "%s", e->stream_id);
    s->version = e->stream_version;
    s->id = e->id;
    s->key = d->key;
    s->partition = d->partition;
    s->attempt = d->attempt;
    s->worker = r->tag;
    pthread_mutex_unlock(&r->lock);
  }
  atomic_fetch_sub(&r->busy[d->partition], 1);
  return rc;
}

/* ------------------------------------------------------------- helpers -- */

static void log_line(void *userdata, const char *line) {
  (void)userdata;
  fprintf(stderr, "  worker: %s\n", line);
}

static esc_worker *worker_with(const char *redis_url) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  if (getenv("ESC_TEST_VERBOSE"))
    o.log = log_line;
  o.schema = schema;
  o.redis_url = redis_url;
  o.lease_poll_ms = 100;
  o.poll_ms = 200;
  o.batch_size = 7; /* several pages, several checkpoints */
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w)
    fail_msg("esc_worker_new: %s", err.msg);
  return w;
}

static esc_subscription subscription(struct recorder *r, int partitions) {
  static const char *const cats[] = {"note", NULL};
  esc_subscription s = ESC_SUBSCRIPTION_INIT;
  s.name = sub_name;
  s.categories = cats;
  s.partitions = partitions;
  s.handle = record;
  s.userdata = r;
  s.max_attempts = 2;
  return s;
}

static void add(esc_worker *w, const esc_subscription *s) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_worker_add_subscription(w, s, &err))
    fail_msg("add subscription: %s", err.msg);
}

static void catch_up(esc_worker *w) {
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_worker_run_until_caught_up(w, 30000, &err);
  if (rc)
    fail_msg("run until caught up: %s (%s)", err.msg, esc_strerror(rc));
}

/* Appends `per` events to each of `streams` streams note-<tag><i>, one at
 * a time in round-robin order; returns how many. */
static int append_notes(const char *tag, int streams, int per) {
  esc_store *st = esc_test_open_store(schema);
  esc_error err = ESC_ERROR_INIT;
  int n = 0;
  for (int v = 0; v < per; v++)
    for (int i = 0; i < streams; i++) {
      char stream[64];
      unsigned char data[16];
      snprintf(stream, sizeof stream, "note-%s%d", tag, i);
      size_t len = esc_test_payload(data, n);
      esc_event_data ev = {esc_uuid_v4(), "Noted", 1, data, len, NULL, 0};
      esc_append_result res;
      if (esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, &res, &err))
        fail_msg("append: %s", err.msg);
      n++;
    }
  esc_test_await_readable(st, "note");
  esc_store_free(st);
  return n;
}

/* Every stream's deliveries come in version order 1, 2, ... with no gap
 * and (unless dups) no repeat; returns how many deliveries there were. */
static size_t check_order(const struct recorder *r, int partitions,
                          bool dups) {
  for (size_t i = 0; i < r->count; i++) {
    const struct seen *s = &r->items[i];
    assert_int_equal(s->partition, esc__partition_of(s->stream, partitions));
    int64_t last = 0;
    for (size_t j = 0; j < i; j++)
      if (strcmp(r->items[j].stream, s->stream) == 0)
        last = r->items[j].version > last ? r->items[j].version : last;
    if (dups ? s->version > last + 1 : s->version != last + 1)
      fail_msg("%s@%lld delivered after version %lld", s->stream,
               (long long)s->version, (long long)last);
  }
  return r->count;
}

/* Appends streams x per events to streams of tag, and runs s (its
 * recorder) over them on a worker until caught up; returns how many. */
static int first_run(const esc_subscription *s, const char *tag, int streams,
                     int per) {
  int n = append_notes(tag, streams, per);
  esc_worker *w = worker_with(NULL);
  add(w, s);
  catch_up(w);
  esc_worker_free(w);
  return n;
}

static long long checkpoint_global(PGconn *pg, int partition) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT global_position FROM %s.subscription_checkpoints"
           " WHERE subscription = '%s' AND partition = %d",
           schema, sub_name, partition);
  return esc_test_query_ll(pg, sql);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_dsub_%d", (int)getpid());
  esc_store_free(esc_test_fresh_store(schema));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_drop_schema(schema);
  return 0;
}

/* Each test has its own subscription and streams. */
static int fresh_name(void **state) {
  static int n;
  (void)state;
  snprintf(sub_name, sizeof sub_name, "dsub%d_%d", (int)getpid(), ++n);
  return 0;
}

/* --------------------------------------------------------------- tests -- */

/* 3 partitions: every event is delivered once, each stream in version
 * order, each on its stream's partition; the status lists the
 * subscription with its kind and its lag, from PostgreSQL. */
static void delivers_in_order_across_partitions(void **state) {
  (void)state;
  struct recorder r;
  recorder_init(&r, 1, "a");
  esc_subscription s = subscription(&r, 3);
  int n = append_notes("a", 12, 9);
  esc_worker *w = worker_with(NULL);
  add(w, &s);
  catch_up(w);
  assert_int_equal(check_order(&r, 3, false), (size_t)n);

  int more = append_notes("ab", 2, 3);
  esc_partition_status *st = NULL;
  size_t count = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_projection_status(NULL, NULL, schema, NULL, &st, &count,
                                         &err),
                   ESC_OK);
  int64_t lag = 0;
  size_t lines = 0;
  for (size_t i = 0; i < count; i++) {
    if (strcmp(st[i].projection, sub_name) != 0)
      continue;
    lines++;
    assert_int_equal(st[i].kind, ESC_CONSUMER_SUBSCRIPTION);
    assert_int_equal(st[i].partitions, 3);
    assert_int_equal(st[i].generation, 1);
    assert_string_not_equal(st[i].state, "unknown");
    lag += st[i].lag_events;
  }
  free(st);
  assert_int_equal(lines, 3);
  assert_int_equal(lag, more);
  catch_up(w);
  assert_int_equal(check_order(&r, 3, false), (size_t)(n + more));
  esc_worker_free(w);
  recorder_release(&r);
}

/* The checkpoint is PostgreSQL's: a new worker resumes where the last one
 * stopped, and a FLUSHALL of Redis (a private server; a projection runs
 * beside the subscription on it) makes it deliver nothing again. */
static esc_status count_one(esc_projection_ctx *ctx, const esc_event *event,
                            void *userdata, esc_error *err) {
  (void)event;
  (void)userdata;
  (void)err;
  return esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "count"), "1", NULL);
}

static void checkpoint_survives_restart_and_flushall(void **state) {
  (void)state;
  int port = esc_test_free_port(22100, 800);
  char url[64], log_path[96];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  snprintf(log_path, sizeof log_path, "/tmp/esc-dsub-redis-%d.log",
           (int)getpid());
  pid_t redis_pid = esc_test_redis_server_start(port, log_path);
  static const char *const cats[] = {"note", NULL};
  char proj_name[64];
  snprintf(proj_name, sizeof proj_name, "%.40sp", sub_name);
  esc_projection p = {
      proj_name,         1, cats, NULL, 1, NULL, count_one, NULL,
      ESC_ON_ERROR_PARK, 0, NULL};
  struct recorder r;
  recorder_init(&r, 1, "c");
  esc_subscription s = subscription(&r, 2);
  int n = append_notes("c", 5, 4);

  esc_worker *w = worker_with(url);
  assert_int_equal(esc_worker_add(w, &p, NULL), ESC_OK);
  add(w, &s);
  catch_up(w);
  esc_worker_free(w);
  assert_int_equal(check_order(&r, 2, false), (size_t)n);

  redisContext *redis = esc_test_redis(url);
  freeReplyObject(redisCommand(redis, "FLUSHALL"));
  int more = append_notes("cd", 3, 2);
  w = worker_with(url);
  assert_int_equal(esc_worker_add(w, &p, NULL), ESC_OK);
  add(w, &s);
  catch_up(w);
  esc_worker_free(w);
  /* Only the new events, once each; the projection rebuilt itself. */
  assert_int_equal(check_order(&r, 2, false), (size_t)(n + more));
  char key[ESC_TEST_KEY_BASE_SIZE];
  esc_test_key_base(schema, proj_name, key, sizeof key);
  long long g = esc_test_redis_ll(redis, -1, "GET %s:generation", key);
  char sql[160];
  PGconn *pg = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %s.events WHERE stream_id LIKE 'note-%%'",
           schema);
  assert_int_equal(esc_test_redis_ll(redis, 0, "GET %s:g%lld:count", key, g),
                   esc_test_query_ll(pg, sql));
  PQfinish(pg);
  redisFree(redis);
  esc_test_kill_child(redis_pid);
  esc_test_remove_log(log_path);
  recorder_release(&r);
}

/* A delivery after a crash before the checkpoint moved (the checkpoint
 * set back by hand, as the owner) carries the key of the first one:
 * UUIDv5(event id, subscription name), another subscription's differs. */
static void idempotency_key_is_stable_across_redelivery(void **state) {
  (void)state;
  struct recorder first, again;
  recorder_init(&first, 1, "e");
  recorder_init(&again, 2, "e");
  esc_subscription s = subscription(&first, 1);
  int n = first_run(&s, "e", 4, 3);
  assert_int_equal(first.count, (size_t)n);

  PGconn *pg = esc_test_pg();
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE %s.subscription_checkpoints SET tx_id = '0',"
           " global_position = 0 WHERE subscription = '%s'",
           schema, sub_name);
  esc_test_exec(pg, sql);
  PQfinish(pg);
  s.userdata = &again;
  first_run(&s, "ee", 1, 1);
  assert_true(again.count >= (size_t)n);
  for (size_t i = 0; i < first.count; i++) {
    const struct seen *a = &first.items[i];
    esc_uuid want = esc_subscription_key(sub_name, &a->id);
    esc_uuid other = esc_subscription_key("another", &a->id);
    assert_memory_equal(&a->key, &want, sizeof want);
    assert_memory_not_equal(&a->key, &other, sizeof other);
    assert_memory_not_equal(&a->key, &a->id, sizeof a->id);
    size_t j = 0;
    while (j < again.count &&
           memcmp(&again.items[j].id, &a->id, sizeof a->id) != 0)
      j++;
    assert_true(j < again.count);
    assert_memory_equal(&again.items[j].key, &a->key, sizeof a->key);
  }
  recorder_release(&first);
  recorder_release(&again);
}

/* A handler that keeps failing on version 2 of every stream: each such
 * event is tried max_attempts times, parked, and the partition moves on;
 * the letters are the store's dead letters (`esc dead-letters`), and a
 * retry delivers them again with the same key. A passing error (ECONN) is
 * retried without end and never parked. */
static void failures_are_retried_then_parked_and_retryable(void **state) {
  (void)state;
  struct recorder r;
  recorder_init(&r, 1, "f");
  r.fail_version = 2;
  r.fail_rc = ESC_EINVAL;
  esc_subscription s = subscription(&r, 1);
  int n = append_notes("f", 3, 3);
  esc_worker *w = worker_with(NULL);
  add(w, &s);
  catch_up(w);
  assert_int_equal(r.count, (size_t)(n - 3));
  assert_int_equal(atomic_load(&r.failures), 3 * s.max_attempts);

  esc_dead_letter *dl = NULL;
  size_t count = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_dead_letters_list(NULL, schema, sub_name, false, &dl, &count, &err),
      ESC_OK);
  assert_int_equal(count, 3);
  for (size_t i = 0; i < count; i++) {
    assert_int_equal(dl[i].stream_version, 2);
    assert_int_equal(dl[i].attempts, s.max_attempts);
    assert_non_null(strstr(dl[i].error, "refusing"));
    assert_string_equal(dl[i].state, "parked");
  }
  PGconn *pg = esc_test_pg();
  assert_true(checkpoint_global(pg, 0) > 0);

  /* Cured: a retry of every letter delivers each once more. */
  r.fail_rc = ESC_OK;
  esc_dead_letter_filter f = ESC_DEAD_LETTER_FILTER_INIT;
  f.projection = sub_name;
  esc_dead_letter *acted = NULL;
  size_t nacted = 0;
  assert_int_equal(esc_dead_letters_act(NULL, schema, ESC_DEAD_LETTER_RETRY, &f,
                                        false, &acted, &nacted, &err),
                   ESC_OK);
  assert_int_equal(nacted, 3);
  free(acted);
  long long deadline = esc_test_now_ms() + 20000;
  esc_dead_letter *open = NULL;
  size_t nopen = 3;
  while (nopen > 0 && esc_test_now_ms() < deadline) {
    esc_test_sleep_ms(200);
    catch_up(w);
    free(open);
    open = NULL;
    assert_int_equal(esc_dead_letters_list(NULL, schema, sub_name, false,
                                           &open, &nopen, &err),
                     ESC_OK);
  }
  free(open);
  assert_int_equal(nopen, 0);
  assert_int_equal(r.count, (size_t)n);
  for (size_t i = 0; i < count; i++) {
    esc_uuid want = esc_subscription_key(sub_name, &dl[i].event_id);
    size_t j = 0;
    while (j < r.count &&
           memcmp(&r.items[j].id, &dl[i].event_id, sizeof want) != 0)
      j++;
    assert_true(j < r.count);
    assert_memory_equal(&r.items[j].key, &want, sizeof want);
  }
  free(dl);

  /* Passing: retried past max_attempts, nothing parked, then delivered. */
  r.fail_version = 1;
  r.fail_rc = ESC_ECONN;
  atomic_store(&r.failures, 0);
  int more = append_notes("fg", 1, 1);
  esc_test_worker_thread t;
  esc_test_worker_thread_start(&t, w);
  deadline = esc_test_now_ms() + 20000;
  while (atomic_load(&r.failures) < 2 * s.max_attempts &&
         esc_test_now_ms() < deadline)
    esc_test_sleep_ms(20);
  assert_true(atomic_load(&r.failures) >= 2 * s.max_attempts);
  r.fail_rc = ESC_OK;
  deadline = esc_test_now_ms() + 20000;
  while (r.count < (size_t)(n + more) && esc_test_now_ms() < deadline)
    esc_test_sleep_ms(20);
  assert_int_equal(esc_test_worker_thread_stop(&t), ESC_OK);
  assert_int_equal(r.count, (size_t)(n + more));
  assert_int_equal(esc_dead_letters_list(NULL, schema, sub_name, false, &open,
                                         &nopen, &err),
                   ESC_OK);
  free(open);
  assert_int_equal(nopen, 0);
  PQfinish(pg);
  esc_worker_free(w);
  recorder_release(&r);
}

/* Two workers run the same subscription (2 partitions) while events are
 * appended; one is stopped halfway, the other takes over. A partition is
 * never in two handlers at once, and every event is delivered. */
static void two_workers_never_deliver_one_partition_at_once(void **state) {
  (void)state;
  struct recorder r; /* shared: busy[] sees both workers */
  recorder_init(&r, 0, "h");
  r.delay_us = 1000;
  esc_subscription s = subscription(&r, 2);
  esc_worker *a = worker_with(NULL), *b = worker_with(NULL);
  add(a, &s);
  add(b, &s);
  esc_test_worker_thread ta, tb;
  esc_test_worker_thread_start(&ta, a);
  esc_test_worker_thread_start(&tb, b);
  int n = 0;
  for (int round = 0; round < 6; round++) {
    char tag[8];
    snprintf(tag, sizeof tag, "h%d", round);
    n += append_notes(tag, 6, 5);
    if (round == 3) { /* its leases go with it: b takes over */
      assert_int_equal(esc_test_worker_thread_stop(&ta), ESC_OK);
      esc_worker_free(a);
      a = NULL;
    }
  }
  long long deadline = esc_test_now_ms() + 30000;
  while (esc_test_now_ms() < deadline) {
    pthread_mutex_lock(&r.lock);
    size_t got = r.count;
    pthread_mutex_unlock(&r.lock);
    if (got >= (size_t)n)
      break;
    esc_test_sleep_ms(50);
  }
  assert_int_equal(esc_test_worker_thread_stop(&tb), ESC_OK);
  assert_int_equal(atomic_load(&r.overlaps), 0);
  /* At least once, in order per stream (a takeover may repeat a batch). */
  assert_true(check_order(&r, 2, true) >= (size_t)n);
  for (int i = 0; i < 6 * 6; i++) {
    char stream[64];
    snprintf(stream, sizeof stream, "note-h%d%d", i / 6, i % 6);
    int64_t top = 0;
    for (size_t j = 0; j < r.count; j++)
      if (strcmp(r.items[j].stream, stream) == 0 && r.items[j].version > top)
        top = r.items[j].version;
    assert_int_equal(top, 5);
  }
  esc_worker_free(b);
  recorder_release(&r);
}

/* The compare-and-set, as a zombie would call it (the writer's function,
 * on sessions of the test's own): without the partition's lease nothing
 * moves; with it, a stale expected value is refused and the current one
 * returned; moving backwards is an error. */
static void a_zombie_cannot_move_the_checkpoint_back(void **state) {
  (void)state;
  struct recorder r;
  recorder_init(&r, 1, "z");
  esc_subscription s = subscription(&r, 1);
  first_run(&s, "z", 3, 3);
  PGconn *pg = esc_test_pg();
  long long at = checkpoint_global(pg, 0);
  assert_true(at > 0);
  int64_t key = esc__lease_key(schema, sub_name, 1, 0);
  char sql[512], *out;
  snprintf(sql, sizeof sql,
           "SELECT outcome FROM %s.subscription_checkpoint_move('%s', 1, 0,"
           " %lld, '0', 0, '0', 0)",
           schema, sub_name, (long long)key);
  out = esc_test_query_text(pg, sql);
  assert_string_equal(out, "not_leased");
  free(out);
  snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)key);
  esc_test_exec(pg, sql);
  /* stale: expects the start, the checkpoint is past it */
  snprintf(sql, sizeof sql,
           "SELECT outcome || ' ' || global_position FROM"
           " %s.subscription_checkpoint_move('%s', 1, 0, %lld, '0', 0,"
           " '1', 1)",
           schema, sub_name, (long long)key);
  out = esc_test_query_text(pg, sql);
  char want[64];
  snprintf(want, sizeof want, "stale %lld", at);
  assert_string_equal(out, want);
  free(out);
  /* backwards, even from the right value */
  snprintf(sql, sizeof sql,
           "SELECT %s.subscription_checkpoint_move('%s', 1, 0, %lld,"
           " tx_id, global_position, '0', 0) FROM %s.subscription_checkpoints"
           " WHERE subscription = '%s'",
           schema, sub_name, (long long)key, schema, sub_name);
  char state_[6];
  esc_test_exec_fails(pg, sql, state_);
  assert_string_equal(state_, "22023");
  assert_int_equal(checkpoint_global(pg, 0), at);
  PQfinish(pg);
  recorder_release(&r);
}

/* The worker's metrics and the store's gauges name a subscription's
 * partitions subscription="NAME" in the projections' families, and
 * promtool accepts the exposition. */
static void metrics_label_subscriptions(void **state) {
  (void)state;
  struct recorder r;
  recorder_init(&r, 1, "m");
  esc_subscription s = subscription(&r, 2);
  int n = append_notes("m", 4, 2);
  esc_worker *w = worker_with(NULL);
  add(w, &s);
  catch_up(w);
  assert_int_equal(r.count, (size_t)n);
  esc_metrics_server_options o = ESC_METRICS_SERVER_OPTIONS_INIT;
  o.listen = "127.0.0.1:0";
  o.worker = w;
  o.schema = schema;
  esc_error err = ESC_ERROR_INIT;
  esc_metrics_server *m = esc_metrics_server_start(&o, &err);
  if (!m)
    fail_msg("metrics server: %s", err.msg);
  char *body = NULL;
  assert_int_equal(
      esc_test_http_get(esc_metrics_server_port(m), "/metrics", 10000, &body),
      200);
  esc_metrics_server_free(m);
  char want[256];
  snprintf(want, sizeof want,
           "esc_projection_lag_events{schema=\"%s\",subscription=\"%s\","
           "partition=\"1\"} 0",
           schema, sub_name);
  assert_non_null(strstr(body, want));
  snprintf(want, sizeof want,
           "esc_projection_events_applied_total{schema=\"%s\","
           "subscription=\"%s\",partition=\"0\"}",
           schema, sub_name);
  assert_non_null(strstr(body, want));
  if (ESC_PROMTOOL_PATH[0]) {
    char path[96], cmd[256];
    snprintf(path, sizeof path, "/tmp/esc-dsub-%d.prom", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", ESC_PROMTOOL_PATH,
             path);
    int status = -1;
    char *out = esc_test_command_output(cmd, &status);
    unlink(path);
    if (status != 0 || (out && out[0]))
      fail_msg("promtool check metrics (exit %d): %s", status, out);
    free(out);
  }
  free(body);
  esc_worker_free(w);
  recorder_release(&r);
}

/* Projections and subscriptions share one name space (leases and dead
 * letters are named by it): the second kind to register a name is
 * refused, saying so, and the first kind's row is left alone. */
static void a_name_belongs_to_one_kind(void **state) {
  (void)state;
  static const char *const cats[] = {"note", NULL};
  esc_projection p = {
      sub_name,          1, cats, NULL, 1, NULL, count_one, NULL,
      ESC_ON_ERROR_PARK, 0, NULL};
  struct recorder r;
  recorder_init(&r, 1, "n");
  esc_subscription s = subscription(&r, 1);
  first_run(&s, "n", 1, 1);
  esc_worker *w = worker_with(NULL);
  assert_int_equal(esc_worker_add(w, &p, NULL), ESC_OK);
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_worker_run_until_caught_up(w, 10000, &err),
                   ESC_ECONFLICT);
  assert_non_null(strstr(err.msg, "taken by a subscription"));
  esc_worker_free(w);
  PGconn *pg = esc_test_pg();
  char sql[200];
  snprintf(sql, sizeof sql,
           "SELECT kind FROM %s.projections WHERE name = '%s'", schema,
           sub_name);
  char *kind = esc_test_query_text(pg, sql);
  assert_string_equal(kind, "subscription");
  free(kind);
  PQfinish(pg);
  recorder_release(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(delivers_in_order_across_partitions, fresh_name),
      cmocka_unit_test_setup(checkpoint_survives_restart_and_flushall,
                             fresh_name),
      cmocka_unit_test_setup(idempotency_key_is_stable_across_redelivery,
                             fresh_name),
      cmocka_unit_test_setup(failures_are_retried_then_parked_and_retryable,
                             fresh_name),
      cmocka_unit_test_setup(two_workers_never_deliver_one_partition_at_once,
                             fresh_name),
      cmocka_unit_test_setup(a_zombie_cannot_move_the_checkpoint_back,
                             fresh_name),
      cmocka_unit_test_setup(metrics_label_subscriptions, fresh_name),
      cmocka_unit_test_setup(a_name_belongs_to_one_kind, fresh_name),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

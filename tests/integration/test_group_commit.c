/*
 * Group commit (issue #15 item 1): concurrent esc_append calls of many
 * threads become one transaction per flush, and each still gets its own
 * outcome. Every test here runs requests that land in one flush (the
 * flush waits for max_batch of them, under a long window) and checks
 * both halves: the ones that succeed share one transaction id (without
 * group commit each append is its own transaction), and a conflict or a
 * refused event fails its own request only.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_group_commit"
enum { MAX_REQS = 16, MAX_EVENTS = 2 };

struct req {
  char stream[64];
  int64_t expected;
  esc_event_data events[MAX_EVENTS];
  unsigned char payload[MAX_EVENTS][32];
  size_t n;
  /* outcome */
  esc_status rc;
  esc_append_result result;
  esc_error err;
};

struct run {
  esc_group_commit *gc;
  pthread_barrier_t start;
  struct req *reqs;
};

struct slot {
  struct run *run;
  int index;
};

static void req_init(struct req *r, const char *stream, int64_t expected,
                     size_t n) {
  memset(r, 0, sizeof *r);
  snprintf(r->stream, sizeof r->stream, "%s", stream);
  r->expected = expected;
  r->n = n;
  for (size_t i = 0; i < n; i++) {
    size_t len = esc_test_payload(r->payload[i], (long long)i);
    r->events[i] = (esc_event_data){esc_uuid_v4(), "Grouped", 1, r->payload[i],
                                    len,           NULL,      0};
  }
}

static void *appender(void *arg) {
  struct slot *s = arg;
  struct req *r = &s->run->reqs[s->index];
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = SCHEMA;
  o.group_commit = s->run->gc;
  esc_store *st = esc_store_open(esc_test_pg_url(), &o, &err);
  pthread_barrier_wait(&s->run->start);
  r->err = (esc_error)ESC_ERROR_INIT;
  r->rc = st ? esc_append(st, r->stream, r->expected, r->events, r->n,
                          &r->result, &r->err)
             : err.code;
  esc_store_free(st);
  return NULL;
}

static esc_group_commit *group_new(int max_batch, int window_us) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  esc_group_commit_options go = ESC_GROUP_COMMIT_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  so.schema = SCHEMA;
  so.app_name = "group-commit-test";
  go.max_batch = max_batch;
  go.window_us = window_us;
  go.flushers = 1;
  esc_group_commit *gc =
      esc_group_commit_new(esc_test_pg_url(), &so, &go, &err);
  if (!gc)
    fail_msg("esc_group_commit_new: %s", err.msg);
  return gc;
}

/* Runs the n requests from n threads at once, through a group whose one
 * flush takes exactly n: they land in the same flush. */
static void run_in_one_flush(struct req *reqs, int n) {
  struct run run = {.gc = group_new(n, 1000000), .reqs = reqs};
  pthread_t th[MAX_REQS];
  struct slot slots[MAX_REQS];
  pthread_barrier_init(&run.start, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    slots[i] = (struct slot){&run, i};
    assert_int_equal(pthread_create(&th[i], NULL, appender, &slots[i]), 0);
  }
  for (int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&run.start);
  esc_group_commit_free(run.gc);
}

static void append_direct(esc_store *st, const char *stream,
                          const esc_event_data *ev, size_t n) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_append(st, stream, ESC_EXPECT_ANY, ev, n, NULL, &err))
    fail_msg("append to %s: %s", stream, err.msg);
}

static long long count_id(PGconn *c, const esc_uuid *id) {
  char text[37], sql[160];
  esc_uuid_format(id, text);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " SCHEMA ".events WHERE event_id = '%s'",
           text);
  return esc_test_query_ll(c, sql);
}

/* ------------------------------------------------------------- tests -- */

/* Four requests race for version 2 of one stream in the same flush: the
 * first wins, the other three conflict with the right message; four
 * requests to streams of their own all succeed, in the same transaction
 * as the winner. */
static void conflicts_fail_only_their_request(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct req reqs[8], seed;
  PGconn *c = esc_test_pg();
  req_init(&seed, "gc-hot", ESC_EXPECT_NO_STREAM, 1);
  append_direct(st, "gc-hot", seed.events, 1);
  for (int i = 0; i < 4; i++)
    req_init(&reqs[i], "gc-hot", 1, 1);
  for (int i = 4; i < 8; i++) {
    char stream[32];
    snprintf(stream, sizeof stream, "gc-own%d", i);
    req_init(&reqs[i], stream, ESC_EXPECT_NO_STREAM, 1);
  }
  run_in_one_flush(reqs, 8);

  int winners = 0;
  uint64_t tx = 0;
  for (int i = 0; i < 8; i++) {
    struct req *r = &reqs[i];
    if (i < 4 && r->rc == ESC_ECONFLICT) {
      assert_string_equal(r->err.msg, "append to gc-hot: expected version 1, "
                                      "stream is at 2");
      assert_int_equal(count_id(c, &r->events[0].id), 0);
      continue;
    }
    if (r->rc != ESC_OK)
      fail_msg("request %d (%s): %s", i, r->stream, r->err.msg);
    winners += i < 4;
    assert_int_equal(r->result.last_version, i < 4 ? 2 : 1);
    assert_false(r->result.duplicate);
    if (!tx)
      tx = r->result.position.tx_id;
    assert_true(r->result.position.tx_id == tx); /* one transaction */
    assert_int_equal(count_id(c, &r->events[0].id), 1);
  }
  assert_int_equal(winners, 1);
  assert_int_equal(
      esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA ".events"), 6);
  /* Stream versions come with the positions they claimed. */
  assert_int_equal(esc_test_query_ll(c, "SELECT version FROM " SCHEMA
                                        ".streams WHERE stream_id = 'gc-hot'"),
                   2);
  PQfinish(c);
  esc_store_free(st);
}

/* In one flush: an id stored already with other content (ES002), a
 * batch whose second id is stored already (a unique violation), a
 * tombstoned stream, an idempotent repeat, and two good appends. The
 * refused ones fail alone, the repeat gets its original result, the good
 * ones commit together. */
static void bad_events_fail_only_their_request(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct req reqs[6], stored, tomb;
  esc_error err = ESC_ERROR_INIT;
  esc_append_result first;
  PGconn *c = esc_test_pg();

  req_init(&stored, "gc-stored", ESC_EXPECT_NO_STREAM, 2);
  if (esc_append(st, "gc-stored", ESC_EXPECT_NO_STREAM, stored.events, 2,
                 &first, &err))
    fail_msg("seed: %s", err.msg);
  req_init(&tomb, "gc-tomb", ESC_EXPECT_NO_STREAM, 1);
  append_direct(st, "gc-tomb", tomb.events, 1);
  if (esc_stream_tombstone(st, "gc-tomb", "test", NULL, &err))
    fail_msg("tombstone: %s", err.msg);

  req_init(&reqs[0], "gc-other", ESC_EXPECT_ANY, 1); /* id reused */
  reqs[0].events[0].id = stored.events[0].id;
  req_init(&reqs[1], "gc-overlap", ESC_EXPECT_ANY, 2); /* 2nd id stored */
  reqs[1].events[1].id = stored.events[1].id;
  req_init(&reqs[2], "gc-tomb", ESC_EXPECT_ANY, 1);
  req_init(&reqs[3], "gc-stored", ESC_EXPECT_NO_STREAM, 2); /* a repeat */
  memcpy(reqs[3].events, stored.events, sizeof stored.events);
  memcpy(reqs[3].payload, stored.payload, sizeof stored.payload);
  for (int i = 0; i < 2; i++)
    reqs[3].events[i].data = reqs[3].payload[i];
  req_init(&reqs[4], "gc-good-1", ESC_EXPECT_NO_STREAM, 2);
  req_init(&reqs[5], "gc-good-2", ESC_EXPECT_ANY, 1);
  run_in_one_flush(reqs, 6);

  assert_int_equal(reqs[0].rc, ESC_EDUPLICATE);
  assert_string_equal(reqs[0].err.sqlstate, "ES002");
  assert_int_equal(reqs[1].rc, ESC_EDUPLICATE);
  assert_int_equal(reqs[2].rc, ESC_EDELETED);
  assert_int_equal(count_id(c, &reqs[1].events[0].id), 0);
  assert_int_equal(count_id(c, &reqs[2].events[0].id), 0);
  assert_int_equal(reqs[3].rc, ESC_OK);
  assert_true(reqs[3].result.duplicate);
  assert_int_equal(reqs[3].result.last_version, first.last_version);
  assert_int_equal(reqs[3].result.position.global, first.position.global);
  for (int i = 4; i < 6; i++)
    if (reqs[i].rc != ESC_OK)
      fail_msg("request %d: %s", i, reqs[i].err.msg);
  assert_int_equal(reqs[4].result.last_version, 2);
  assert_true(reqs[4].result.position.tx_id == reqs[5].result.position.tx_id);
  assert_int_equal(esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA
                                        ".events WHERE stream_id LIKE "
                                        "'gc-good-%'"),
                   3);
  PQfinish(c);
  esc_store_free(st);
}

/* A request whose own events repeat an id makes the server refuse the
 * whole call (a unique violation nothing checks before the insert): no
 * request of the flush is stored by it, and each is then sent on its
 * own, so only the bad one fails. */
static void a_call_refused_whole_is_retried_request_by_request(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct req reqs[3];
  PGconn *c = esc_test_pg();
  req_init(&reqs[0], "gc-twice", ESC_EXPECT_ANY, 2);
  reqs[0].events[1].id = reqs[0].events[0].id;
  req_init(&reqs[1], "gc-fine-a", ESC_EXPECT_NO_STREAM, 1);
  req_init(&reqs[2], "gc-fine-b", ESC_EXPECT_NO_STREAM, 1);
  run_in_one_flush(reqs, 3);
  assert_int_equal(reqs[0].rc, ESC_EDUPLICATE);
  assert_int_equal(count_id(c, &reqs[0].events[0].id), 0);
  for (int i = 1; i < 3; i++) {
    if (reqs[i].rc != ESC_OK)
      fail_msg("request %d: %s", i, reqs[i].err.msg);
    assert_int_equal(reqs[i].result.last_version, 1);
    assert_int_equal(count_id(c, &reqs[i].events[0].id), 1);
  }
  PQfinish(c);
  esc_store_free(st);
}

/* An event the client refuses (not msgpack) fails at once, without
 * waiting for a flush, and the requests of the flush still commit. */
static void invalid_event_is_refused_before_the_flush(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_group_commit *gc = group_new(2, 1000000);
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = SCHEMA;
  o.group_commit = gc;
  esc_store *gst = esc_store_open(esc_test_pg_url(), &o, &err);
  assert_non_null(gst);
  unsigned char bad[] = {0xc1};
  esc_event_data ev = {esc_uuid_v4(), "Bad", 1, bad, 1, NULL, 0};
  long long began = esc_test_now_ms();
  assert_int_equal(
      esc_append(gst, "gc-bad", ESC_EXPECT_ANY, &ev, 1, NULL, &err),
      ESC_EINVAL);
  assert_true(esc_test_now_ms() - began < 500); /* not the 1 s window */
  esc_store_free(gst);
  esc_group_commit_free(gc);

  struct req reqs[2];
  req_init(&reqs[0], "gc-fine-1", ESC_EXPECT_ANY, 1);
  req_init(&reqs[1], "gc-fine-2", ESC_EXPECT_ANY, 1);
  run_in_one_flush(reqs, 2);
  assert_int_equal(reqs[0].rc, ESC_OK);
  assert_int_equal(reqs[1].rc, ESC_OK);
  assert_true(reqs[0].result.position.tx_id == reqs[1].result.position.tx_id);
  esc_store_free(st);
}

/* ---------------------------------------------------- stream order -- */

enum { ORDER_THREADS = 8, ORDER_APPENDS = 150, ORDER_STREAMS = 5 };

struct order_arg {
  esc_group_commit *gc; /* NULL: a plain appender beside the group */
  int index;
  int failures;
};

static void *order_writer(void *arg) {
  struct order_arg *a = arg;
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  unsigned char payload[32];
  o.schema = SCHEMA;
  o.group_commit = a->gc;
  esc_store *st = esc_store_open(esc_test_pg_url(), &o, &err);
  for (int i = 0; st && i < ORDER_APPENDS; i++) {
    char stream[32];
    /* Each flush touches several shared streams, in varying orders. */
    snprintf(stream, sizeof stream, "gc-order%d",
             (i * 7 + a->index * 3) % ORDER_STREAMS);
    esc_event_data ev = {
        esc_uuid_v4(), "Ordered", 1, payload, esc_test_payload(payload, i),
        NULL,          0};
    if (esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, NULL, &err))
      a->failures++;
  }
  esc_store_free(st);
  return NULL;
}

/* Many threads through two flushers, and plain appenders beside them, on
 * five shared streams: the log has no event read before its stream's
 * previous one (the xid is taken only once every stream of a flush is
 * locked), no flush deadlocks another, and every append is stored. */
static void stream_order_holds_under_concurrent_flushes(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  esc_group_commit_options go = ESC_GROUP_COMMIT_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  so.schema = SCHEMA;
  go.flushers = 2;
  go.window_us = 500;
  esc_group_commit *gc =
      esc_group_commit_new(esc_test_pg_url(), &so, &go, &err);
  assert_non_null(gc);
  pthread_t th[ORDER_THREADS + 2];
  struct order_arg args[ORDER_THREADS + 2];
  for (int i = 0; i < ORDER_THREADS + 2; i++) {
    args[i] = (struct order_arg){i < ORDER_THREADS ? gc : NULL, i, 0};
    assert_int_equal(pthread_create(&th[i], NULL, order_writer, &args[i]), 0);
  }
  for (int i = 0; i < ORDER_THREADS + 2; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].failures, 0);
  }
  esc_group_commit_free(gc);

  PGconn *c = esc_test_pg();
  assert_int_equal(
      esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA ".events"),
      (ORDER_THREADS + 2) * ORDER_APPENDS);
  /* Fewer transactions than appends: they were grouped. */
  long long txs = esc_test_query_ll(
      c, "SELECT count(DISTINCT tx_id) FROM " SCHEMA ".events");
  fprintf(stderr, "%d appends in %lld transactions\n",
          (ORDER_THREADS + 2) * ORDER_APPENDS, txs);
  assert_true(txs < (ORDER_THREADS + 2) * ORDER_APPENDS);
  PQfinish(c);

  esc_order_report rep;
  size_t count = 0;
  if (esc_order_check(st, &rep, NULL, 0, &count, &err))
    fail_msg("order check: %s", err.msg);
  assert_int_equal(rep.inversions, 0);
  esc_store_free(st);
}

static void options_out_of_range_are_refused(void **state) {
  (void)state;
  esc_group_commit_options go = ESC_GROUP_COMMIT_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  go.max_batch = 1025;
  assert_null(esc_group_commit_new(esc_test_pg_url(), NULL, &go, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "max_batch 1025"));
  go.max_batch = 0;
  go.flushers = 17;
  assert_null(esc_group_commit_new(esc_test_pg_url(), NULL, &go, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  esc_group_commit_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(conflicts_fail_only_their_request),
      cmocka_unit_test(bad_events_fail_only_their_request),
      cmocka_unit_test(a_call_refused_whole_is_retried_request_by_request),
      cmocka_unit_test(invalid_event_is_refused_before_the_flush),
      cmocka_unit_test(stream_order_holds_under_concurrent_flushes),
      cmocka_unit_test(options_out_of_range_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

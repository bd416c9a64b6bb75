/*
 * Atomic multi-stream appends (issue #21 item 1): esc_append_atomic
 * appends to several streams in one transaction, all or nothing, each
 * stream checked against its own expected version; a retry with the same
 * ids is a duplicate; racers over the same streams get one winner a round
 * and never deadlock, whatever order they list the streams in.
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

#define SCHEMA "t_atomic_append"
enum { MAX_STREAMS = 4, RACERS = 16, ROUNDS = 20 };

/* One atomic append of up to MAX_STREAMS streams, one event each. */
struct batch {
  esc_append_request reqs[MAX_STREAMS];
  esc_event_data events[MAX_STREAMS];
  unsigned char payload[MAX_STREAMS][32];
  size_t n;
};

static void batch_add(struct batch *b, const char *stream, int64_t expected) {
  size_t i = b->n++;
  size_t len = esc_test_payload(b->payload[i], (long long)i);
  b->events[i] =
      (esc_event_data){esc_uuid_v4(), "Moved", 1, b->payload[i], len, NULL, 0};
  b->reqs[i] = (esc_append_request){.stream_id = stream,
                                    .expected = expected,
                                    .events = &b->events[i],
                                    .n = 1};
}

static int64_t version_of(esc_store *st, const char *stream) {
  esc_stream_info info;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_stream_get(st, stream, &info, &err);
  if (rc == ESC_ENOTFOUND)
    return 0;
  assert_int_equal(rc, ESC_OK);
  return info.version;
}

static long long events_in_schema(void) {
  PGconn *pg = esc_test_pg();
  long long n = esc_test_query_ll(pg, "SELECT count(*) FROM " SCHEMA ".events");
  PQfinish(pg);
  return n;
}

static void test_appends_all_in_one_transaction(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  struct batch b = {0};
  batch_add(&b, "acct-1", ESC_EXPECT_NO_STREAM);
  batch_add(&b, "acct-2", ESC_EXPECT_ANY);
  batch_add(&b, "ledger-1", ESC_EXPECT_NO_STREAM);
  assert_int_equal(esc_append_atomic(st, b.reqs, b.n, &err), ESC_OK);
  for (size_t i = 0; i < b.n; i++) {
    assert_int_equal(b.reqs[i].status, ESC_OK);
    assert_int_equal(b.reqs[i].result.last_version, 1);
    assert_false(b.reqs[i].result.duplicate);
    assert_int_equal(b.reqs[i].result.position.tx_id,
                     b.reqs[0].result.position.tx_id);
    assert_int_equal(version_of(st, b.reqs[i].stream_id), 1);
  }
  /* The same ids again: the original results, nothing written. */
  assert_int_equal(esc_append_atomic(st, b.reqs, b.n, &err), ESC_OK);
  for (size_t i = 0; i < b.n; i++) {
    assert_true(b.reqs[i].result.duplicate);
    assert_int_equal(b.reqs[i].result.last_version, 1);
  }
  assert_int_equal(events_in_schema(), 3);
  esc_store_free(st);
}

static void test_stale_expectations_store_nothing(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  struct batch first = {0}, b = {0};
  batch_add(&first, "acct-1", ESC_EXPECT_NO_STREAM);
  batch_add(&first, "acct-2", ESC_EXPECT_NO_STREAM);
  assert_int_equal(esc_append_atomic(st, first.reqs, first.n, &err), ESC_OK);

  batch_add(&b, "acct-1", 1);                    /* holds */
  batch_add(&b, "acct-2", 5);                    /* stale: at 1 */
  batch_add(&b, "acct-3", 2);                    /* stale: absent */
  batch_add(&b, "acct-4", ESC_EXPECT_NO_STREAM); /* holds */
  assert_int_equal(esc_append_atomic(st, b.reqs, b.n, &err), ESC_ECONFLICT);
  assert_non_null(strstr(err.msg, "acct-2 (expected version 5, actual 1)"));
  assert_non_null(strstr(err.msg, "acct-3 (expected version 2, actual 0)"));
  assert_null(strstr(err.msg, "acct-1 ("));
  assert_int_equal(b.reqs[1].status, ESC_ECONFLICT);
  assert_non_null(strstr(b.reqs[1].error.msg, "stream is at 1"));
  assert_int_equal(b.reqs[0].status, ESC_ECONFLICT);
  assert_non_null(strstr(b.reqs[0].error.msg, "not appended"));
  assert_int_equal(version_of(st, "acct-1"), 1);
  assert_int_equal(version_of(st, "acct-4"), 0);
  assert_int_equal(events_in_schema(), 2);
  esc_store_free(st);
}

static void test_bad_input_is_refused_whole(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  struct batch b = {0}, retry = {0};
  batch_add(&b, "acct-1", ESC_EXPECT_ANY);
  batch_add(&b, "acct-1", ESC_EXPECT_ANY);
  assert_int_equal(esc_append_atomic(st, b.reqs, b.n, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "stream acct-1 is requests 0 and 1"));
  assert_int_equal(esc_append_atomic(st, b.reqs, 0, &err), ESC_EINVAL);
  b.reqs[1].stream_id = "bad stream";
  assert_int_equal(esc_append_atomic(st, b.reqs, b.n, &err), ESC_EINVAL);
  assert_int_equal(b.reqs[0].status, ESC_EINVAL);

  /* One request stored already, the other new: a partial retry. */
  batch_add(&retry, "acct-1", ESC_EXPECT_ANY);
  assert_int_equal(esc_append_atomic(st, retry.reqs, 1, &err), ESC_OK);
  batch_add(&retry, "acct-2", ESC_EXPECT_ANY);
  assert_int_equal(esc_append_atomic(st, retry.reqs, retry.n, &err),
                   ESC_EDUPLICATE);
  assert_int_equal(version_of(st, "acct-2"), 0);
  assert_int_equal(events_in_schema(), 1);
  esc_store_free(st);
}

/* ------------------------------------------------------------ racers -- */

struct race {
  pthread_barrier_t start;
  int64_t expected[2]; /* of acct-a and acct-b, read before the round */
  bool reversed_too;   /* odd racers list the streams the other way */
  esc_status rc[RACERS];
  esc_store *stores[RACERS];
};

struct racer {
  struct race *race;
  int index;
};

static void *race_one(void *arg) {
  struct racer *r = arg;
  struct race *race = r->race;
  bool rev = race->reversed_too && r->index % 2;
  struct batch b = {0};
  esc_error err = ESC_ERROR_INIT;
  batch_add(&b, rev ? "acct-b" : "acct-a", race->expected[rev ? 1 : 0]);
  batch_add(&b, rev ? "acct-a" : "acct-b", race->expected[rev ? 0 : 1]);
  pthread_barrier_wait(&race->start);
  race->rc[r->index] =
      esc_append_atomic(race->stores[r->index], b.reqs, b.n, &err);
  return NULL;
}

static void run_round(struct race *race) {
  pthread_t threads[RACERS];
  struct racer racers[RACERS];
  pthread_barrier_init(&race->start, NULL, RACERS);
  for (int i = 0; i < RACERS; i++) {
    racers[i] = (struct racer){race, i};
    assert_int_equal(pthread_create(&threads[i], NULL, race_one, &racers[i]),
                     0);
  }
  for (int i = 0; i < RACERS; i++)
    pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&race->start);
}

static void race_rounds(bool exact, bool reversed) {
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct race race = {.reversed_too = reversed};
  for (int i = 0; i < RACERS; i++)
    race.stores[i] = esc_test_open_store(SCHEMA);
  for (int round = 0; round < ROUNDS; round++) {
    int64_t a = version_of(st, "acct-a"), b = version_of(st, "acct-b");
    race.expected[0] = exact ? a : ESC_EXPECT_ANY;
    race.expected[1] = exact ? b : ESC_EXPECT_ANY;
    run_round(&race);
    int won = 0;
    for (int i = 0; i < RACERS; i++) {
      if (race.rc[i] == ESC_OK)
        won++;
      else
        assert_int_equal(race.rc[i], ESC_ECONFLICT);
    }
    assert_int_equal(won, exact ? 1 : RACERS);
    assert_int_equal(version_of(st, "acct-a"), a + won);
    assert_int_equal(version_of(st, "acct-b"), b + won);
  }
  for (int i = 0; i < RACERS; i++)
    esc_store_free(race.stores[i]);
  esc_store_free(st);
}

/* 16 racers, the same expectations: one wins a round, 15 conflict. */
static void test_racers_one_winner_per_round(void **state) {
  (void)state;
  race_rounds(true, true);
}

/* Racers listing the same streams in both orders all append: the locks
 * are taken in one shared order, so no deadlock (40P01) ever. */
static void test_racers_in_both_orders_never_deadlock(void **state) {
  (void)state;
  race_rounds(false, true);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_appends_all_in_one_transaction),
      cmocka_unit_test(test_stale_expectations_store_nothing),
      cmocka_unit_test(test_bad_input_is_refused_whole),
      cmocka_unit_test(test_racers_one_winner_per_round),
      cmocka_unit_test(test_racers_in_both_orders_never_deadlock),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

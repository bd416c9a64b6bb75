/*
 * Appends conditioned on a query of tagged events (issue #21 item 3):
 * esc_read_tagged returns a token, esc_append_if appends only if no event
 * matching the query was appended after it. Racers released together
 * get exactly one winner a round; an event whose transaction was open
 * during the read (whatever its global position) still fails the
 * condition, also when the conditional append is already waiting for it;
 * appenders with disjoint tags do not wait for each other; a retry with
 * the same ids is a duplicate, not a conflict with its own events.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_conditional_append"
enum { RACERS = 16, ROUNDS = 25 };

/* One conditional append of one event with one tag, on a query of one
 * item with one tag. */
struct attempt {
  const char *tags[1];
  esc_tags event_tags;
  const esc_tags *per_request[1];
  const char *cond_tags[2];
  esc_tag_query_item item;
  esc_tag_query query;
  unsigned char payload[32];
  esc_event_data ev;
  esc_append_request req;
};

static void attempt_init(struct attempt *a, const char *stream, const char *tag,
                         const char *cond_tag) {
  memset(a, 0, sizeof *a);
  a->tags[0] = tag;
  a->event_tags = (esc_tags){a->tags, 1};
  a->per_request[0] = &a->event_tags;
  a->cond_tags[0] = cond_tag;
  a->item = (esc_tag_query_item){a->cond_tags, 1, NULL, 0};
  a->query = (esc_tag_query){&a->item, 1};
  size_t len = esc_test_payload(a->payload, 1);
  a->ev =
      (esc_event_data){esc_uuid_v4(), "Redeemed", 1, a->payload, len, NULL, 0};
  a->req = (esc_append_request){.stream_id = stream,
                                .expected = ESC_EXPECT_ANY,
                                .events = &a->ev,
                                .n = 1};
}

static esc_status try_append(esc_store *st, struct attempt *a,
                             const char *token, esc_error *err) {
  return esc_append_if(st, &a->query, token, &a->req, a->per_request, 1, err);
}

static void read_token(esc_store *st, const esc_tag_query *q, char *token,
                       size_t *count) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (esc_read_tagged(st, q, 0, 0, &ev, token, &err))
    fail_msg("read: %s", err.msg);
  if (count)
    *count = ev.count;
  esc_events_release(&ev);
}

static long long tagged(const char *tag) {
  char sql[256];
  PGconn *pg = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " SCHEMA ".event_tags WHERE tag = '%s'", tag);
  long long n = esc_test_query_ll(pg, sql);
  PQfinish(pg);
  return n;
}

static void test_condition_holds_then_fails(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  char token[ESC_TAG_QUERY_TOKEN_MAX], id[37];
  struct attempt first, second;
  attempt_init(&first, "order-1", "coupon:C1", "coupon:C1");
  attempt_init(&second, "order-2", "coupon:C1", "coupon:C1");
  read_token(st, &first.query, token, NULL);

  assert_int_equal(try_append(st, &first, token, &err), ESC_OK);
  assert_false(first.req.result.duplicate);
  /* The same token again: the first's event came after it. */
  assert_int_equal(try_append(st, &second, token, &err), ESC_ECONFLICT);
  assert_int_equal(second.req.status, ESC_ECONFLICT);
  esc_uuid_format(&first.ev.id, id);
  assert_non_null(strstr(err.msg, "\"coupon:C1\" failed"));
  assert_non_null(strstr(err.msg, id));
  assert_non_null(strstr(err.msg, "order-1 version 1"));
  assert_string_equal(err.sqlstate, "ES011");
  assert_int_equal(tagged("coupon:C1"), 1);

  /* A retry of the first (same ids, same old token) is a duplicate. */
  assert_int_equal(try_append(st, &first, token, &err), ESC_OK);
  assert_true(first.req.result.duplicate);
  /* Events that match another item, or no type of it, do not count. */
  const char *types[] = {"Expired"};
  second.item.types = types;
  second.item.type_count = 1;
  assert_int_equal(try_append(st, &second, token, &err), ESC_OK);
  assert_int_equal(tagged("coupon:C1"), 2);
  esc_store_free(st);
}

static void test_bad_conditions_are_refused(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  struct attempt a;
  attempt_init(&a, "order-1", "coupon:C1", "coupon:C1");
  a.item.tag_count = 0;
  assert_int_equal(try_append(st, &a, "1:1:", &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "an item needs 1..16"));
  a.item.tag_count = 1;
  assert_int_equal(
      esc_append_if(st, &a.query, NULL, &a.req, a.per_request, 1, &err),
      ESC_EINVAL);
  assert_non_null(strstr(err.msg, "both a query and a token"));
  assert_int_equal(try_append(st, &a, "not a snapshot", &err), ESC_EINVAL);
  assert_int_equal(tagged("coupon:C1"), 0);
  esc_store_free(st);
}

/* ------------------------------------------------------------ racers -- */

struct race {
  pthread_barrier_t read, append;
  int round;
  bool overlap; /* odd racers: tags B+C, even: A+B */
  int wins[2], conflicts[2], others;
  pthread_mutex_t lock;
};

struct racer {
  struct race *race;
  int index;
  esc_store *st;
};

/* The query and event tags of racer i: coupon:R<round>, or with overlap
 * two tags that share B with the other group's. */
static void racer_tags(const struct race *race, int i, char tags[2][32],
                       size_t *count) {
  if (!race->overlap) {
    snprintf(tags[0], 32, "coupon:R%d", race->round);
    *count = 1;
    return;
  }
  snprintf(tags[0], 32, "%s:%d", i % 2 ? "c" : "a", race->round);
  snprintf(tags[1], 32, "b:%d", race->round);
  *count = 2;
}

static void *race_one(void *arg) {
  struct racer *r = arg;
  struct race *race = r->race;
  char stream[48], tags[2][32], token[ESC_TAG_QUERY_TOKEN_MAX];
  esc_error err = ESC_ERROR_INIT;
  size_t count;
  struct attempt a;
  snprintf(stream, sizeof stream, "order-%d.%d", race->round, r->index);
  racer_tags(race, r->index, tags, &count);
  attempt_init(&a, stream, tags[0], tags[0]);
  a.tags[0] = tags[0];
  const char *both[2] = {tags[0], tags[1]};
  a.item.tags = both;
  a.item.tag_count = count;
  a.event_tags = (esc_tags){both, count};
  pthread_barrier_wait(&race->read);
  read_token(r->st, &a.query, token, NULL);
  pthread_barrier_wait(&race->append); /* every read precedes any append */
  esc_status rc = try_append(r->st, &a, token, &err);
  pthread_mutex_lock(&race->lock);
  int group = race->overlap ? r->index % 2 : 0;
  if (rc == ESC_OK)
    race->wins[group]++;
  else if (rc == ESC_ECONFLICT && strstr(err.msg, "failed: event"))
    race->conflicts[group]++;
  else
    race->others++;
  pthread_mutex_unlock(&race->lock);
  return NULL;
}

static void run_rounds(bool overlap) {
  esc_store *st = esc_test_fresh_store(SCHEMA);
  pthread_t threads[RACERS];
  struct racer racers[RACERS];
  struct race race = {.overlap = overlap};
  pthread_mutex_init(&race.lock, NULL);
  for (int i = 0; i < RACERS; i++)
    racers[i] = (struct racer){&race, i, esc_test_open_store(SCHEMA)};
  int groups = overlap ? 2 : 1;
  for (race.round = 0; race.round < ROUNDS; race.round++) {
    memset(race.wins, 0, sizeof race.wins);
    memset(race.conflicts, 0, sizeof race.conflicts);
    pthread_barrier_init(&race.read, NULL, RACERS);
    pthread_barrier_init(&race.append, NULL, RACERS);
    for (int i = 0; i < RACERS; i++)
      assert_int_equal(pthread_create(&threads[i], NULL, race_one, &racers[i]),
                       0);
    for (int i = 0; i < RACERS; i++)
      pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&race.read);
    pthread_barrier_destroy(&race.append);
    /* A+B and B+C match different events: one winner per group. */
    for (int g = 0; g < groups; g++)
      if (race.wins[g] != 1 || race.conflicts[g] != RACERS / groups - 1)
        fail_msg("round %d group %d: %d wins, %d conflicts, %d other",
                 race.round, g, race.wins[g], race.conflicts[g], race.others);
  }
  assert_int_equal(race.others, 0);
  for (int i = 0; i < RACERS; i++)
    esc_store_free(racers[i].st);
  pthread_mutex_destroy(&race.lock);
  esc_store_free(st);
}

static void test_racers_one_winner_a_round(void **state) {
  (void)state;
  run_rounds(false);
  char tag[32];
  for (int r = 0; r < ROUNDS; r++) {
    snprintf(tag, sizeof tag, "coupon:R%d", r);
    assert_int_equal(tagged(tag), 1);
  }
}

static void test_overlapping_conditions_serialize(void **state) {
  (void)state;
  run_rounds(true);
  assert_int_equal(tagged("b:0"), 2);
}

/* --------------------------------------------------------- late commits -- */

/* Begins a transaction on pg that gets its xid at once and appends one
 * event tagged `tag` to stream, left open. */
static void open_late_append(PGconn *pg, const char *stream, const char *tag) {
  char sql[1024];
  esc_uuid id = esc_uuid_v4();
  char text[37];
  esc_uuid_format(&id, text);
  esc_test_exec(pg, "BEGIN");
  esc_test_exec(pg, "SELECT pg_current_xact_id()");
  snprintf(sql, sizeof sql,
           "SELECT * FROM " SCHEMA ".append_tagged('{%s}', '{-1}', '{1}', "
           "'{%s}', '{Redeemed}', '{1}', '{\"\\\\x80\"}', '{NULL}', '{1}', "
           "'{%s}', NULL, NULL, NULL, NULL, NULL)",
           stream, text, tag);
  esc_test_exec(pg, sql);
}

/* The classic pitfall: the late transaction began before the read and
 * commits after it; other events with higher positions commit in
 * between. Its event must fail the condition. */
static void test_late_commit_fails_the_condition(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  char token[ESC_TAG_QUERY_TOKEN_MAX];
  size_t seen = 0;
  struct attempt a, later;
  attempt_init(&a, "order-9", "coupon:L", "coupon:L");
  PGconn *late = esc_test_pg();
  open_late_append(late, "order-late", "coupon:L");
  attempt_init(&later, "other-1", "coupon:other", "coupon:other");
  read_token(st, &later.query, token, NULL);
  esc_status rc = try_append(st, &later, token, &err);
  read_token(st, &a.query, token, &seen);
  /* Commit before any assertion: a failed one must not leave it open. */
  esc_test_exec(late, "COMMIT");
  PQfinish(late);
  assert_int_equal(rc, ESC_OK);
  assert_int_equal(seen, 0); /* it was not committed at the read */
  assert_int_equal(try_append(st, &a, token, &err), ESC_ECONFLICT);
  assert_non_null(strstr(err.msg, "order-late version 1"));
  assert_int_equal(tagged("coupon:L"), 1);
  esc_store_free(st);
}

struct waiting {
  struct attempt a;
  const char *token;
  esc_status rc;
  esc_error err;
  atomic_bool done;
};

static void *append_waiting(void *arg) {
  struct waiting *w = arg;
  esc_store *st = esc_test_open_store(SCHEMA);
  w->rc = try_append(st, &w->a, w->token, &w->err);
  atomic_store(&w->done, true);
  esc_store_free(st);
  return NULL;
}

/* Reads the token of `tag`, opens a transaction that appends an event
 * tagged open_tag to order-late, starts the conditional append of `tag`
 * in a thread and gives it wait_ms to finish; then ends the transaction
 * with `end` (before any assertion, so a failed one leaves nothing open)
 * and joins. Returns whether the append finished meanwhile. */
static bool append_beside_open(esc_store *st, struct waiting *w,
                               const char *tag, const char *open_tag,
                               int wait_ms, const char *end) {
  char token[ESC_TAG_QUERY_TOKEN_MAX];
  pthread_t t;
  attempt_init(&w->a, "order-9", tag, tag);
  read_token(st, &w->a.query, token, NULL);
  w->token = token;
  PGconn *open = esc_test_pg();
  open_late_append(open, "order-late", open_tag);
  int created = pthread_create(&t, NULL, append_waiting, w);
  for (int waited = 0; waited < wait_ms && !atomic_load(&w->done); waited += 20)
    esc_test_sleep_ms(20);
  bool finished = atomic_load(&w->done);
  esc_test_exec(open, end);
  PQfinish(open);
  assert_int_equal(created, 0);
  pthread_join(t, NULL);
  return finished;
}

/* The conditional append starts while the late transaction is still
 * open: it waits for the tag's lock, then sees the event. */
static void test_conditional_append_waits_for_an_open_tagged_one(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct waiting w = {.rc = ESC_EIO};
  assert_false(
      append_beside_open(st, &w, "coupon:W", "coupon:W", 300, "COMMIT"));
  assert_int_equal(w.rc, ESC_ECONFLICT);
  assert_non_null(strstr(w.err.msg, "order-late version 1"));
  assert_int_equal(tagged("coupon:W"), 1);
  esc_store_free(st);
}

/* Disjoint tags take disjoint locks: an append tagged D2 goes through
 * while a transaction holding D1's lock stays open. */
static void test_disjoint_tags_do_not_wait(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  struct waiting w = {.rc = ESC_EIO};
  assert_true(
      append_beside_open(st, &w, "coupon:D2", "coupon:D1", 2000, "ROLLBACK"));
  assert_int_equal(w.rc, ESC_OK);
  esc_store_free(st);
}

/* A conditional append killed while it waits for a tag's lock stores
 * nothing and is reported as unknown; sending it again (same ids, same
 * token) settles it: appended once, then a duplicate. */
static void test_a_killed_append_is_settled_by_a_retry(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  char token[ESC_TAG_QUERY_TOKEN_MAX];
  struct waiting w = {.rc = ESC_EIO};
  pthread_t t;
  attempt_init(&w.a, "order-9", "coupon:K", "coupon:K");
  read_token(st, &w.a.query, token, NULL);
  w.token = token;
  PGconn *open = esc_test_pg(), *admin = esc_test_pg();
  open_late_append(open, "order-late", "coupon:K");
  int created = pthread_create(&t, NULL, append_waiting, &w);
  long long killed = 0;
  for (int i = 0; i < 150 && !killed && !created; i++) {
    esc_test_sleep_ms(20);
    killed = esc_test_query_ll(
        admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
               " WHERE wait_event_type = 'Lock' AND query LIKE '%\"" SCHEMA
               "\".append_tagged(%'");
  }
  if (!created)
    pthread_join(t, NULL);
  esc_test_exec(open, "ROLLBACK"); /* its event never was */
  PQfinish(open);
  PQfinish(admin);
  assert_int_equal(created, 0);
  assert_int_equal(killed, 1);
  assert_int_equal(w.rc, ESC_EUNKNOWN);
  assert_int_equal(tagged("coupon:K"), 0);
  assert_int_equal(try_append(st, &w.a, token, &err), ESC_OK);
  assert_false(w.a.req.result.duplicate);
  assert_int_equal(try_append(st, &w.a, token, &err), ESC_OK);
  assert_true(w.a.req.result.duplicate);
  assert_int_equal(tagged("coupon:K"), 1);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_condition_holds_then_fails),
      cmocka_unit_test(test_bad_conditions_are_refused),
      cmocka_unit_test(test_racers_one_winner_a_round),
      cmocka_unit_test(test_overlapping_conditions_serialize),
      cmocka_unit_test(test_late_commit_fails_the_condition),
      cmocka_unit_test(test_conditional_append_waits_for_an_open_tagged_one),
      cmocka_unit_test(test_disjoint_tags_do_not_wait),
      cmocka_unit_test(test_a_killed_append_is_settled_by_a_retry),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Optimistic concurrency under real contention (guarantee 2): of N writers
 * expecting the same version, exactly one wins and the rest get a conflict
 * naming stream, expected and actual version. Also: a retry of the same ids
 * racing with its first attempt stores them once (guarantee 3).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_concurrency"
enum { WRITERS = 8, ROUNDS = 500 };

struct shared {
  pthread_barrier_t start, done;
  int winners[ROUNDS]; /* per round, written under lock */
  int bad_conflicts;   /* conflicts whose message was wrong */
  int other_errors;
  pthread_mutex_t lock;
};

struct writer {
  struct shared *sh;
  int index;
  esc_store *store;
};

static bool conflict_message_ok(const esc_error *err, int round) {
  char want[96];
  snprintf(want, sizeof want,
           "append to race-1: expected version %d, "
           "stream is at %d",
           round, round + 1);
  return strcmp(err->msg, want) == 0;
}

static void *race(void *arg) {
  struct writer *w = arg;
  unsigned char payload[32];
  for (int round = 0; round < ROUNDS; round++) {
    esc_event_data ev = {esc_uuid_v4(), "Raced", 1, payload, 0, NULL, 0};
    esc_error err = ESC_ERROR_INIT;
    esc_append_result r;
    ev.data_len = esc_test_payload(payload, w->index);
    pthread_barrier_wait(&w->sh->start);
    esc_status rc = esc_append(w->store, "race-1", round, &ev, 1, &r, &err);
    pthread_mutex_lock(&w->sh->lock);
    if (rc == ESC_OK && r.last_version == round + 1)
      w->sh->winners[round]++;
    else if (rc == ESC_ECONFLICT && !conflict_message_ok(&err, round))
      w->sh->bad_conflicts++;
    else if (rc != ESC_ECONFLICT)
      w->sh->other_errors++;
    pthread_mutex_unlock(&w->sh->lock);
    pthread_barrier_wait(&w->sh->done);
  }
  return NULL;
}

static void one_winner_per_round(void **state) {
  (void)state;
  static struct shared sh;
  struct writer w[WRITERS];
  pthread_t th[WRITERS];
  esc_events ev = ESC_EVENTS_INIT;

  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.lock, NULL);
  pthread_barrier_init(&sh.start, NULL, WRITERS);
  pthread_barrier_init(&sh.done, NULL, WRITERS);
  esc_store_free(esc_test_fresh_store(SCHEMA));
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (struct writer){&sh, i, esc_test_open_store(SCHEMA)};
    pthread_create(&th[i], NULL, race, &w[i]);
  }
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(th[i], NULL);
    esc_store_free(w[i].store);
  }

  for (int r = 0; r < ROUNDS; r++)
    if (sh.winners[r] != 1)
      fail_msg("round %d had %d winners", r, sh.winners[r]);
  assert_int_equal(sh.bad_conflicts, 0);
  assert_int_equal(sh.other_errors, 0);

  esc_store *st = esc_test_open_store(SCHEMA);
  assert_int_equal(esc_read_stream(st, "race-1", 0, ESC_FORWARD, 0, &ev, NULL),
                   ESC_OK);
  assert_int_equal(ev.count, ROUNDS);
  for (size_t i = 0; i < ev.count; i++)
    assert_int_equal(ev.items[i].stream_version, (int64_t)i + 1);
  esc_events_release(&ev);
  esc_store_free(st);
  pthread_barrier_destroy(&sh.start);
  pthread_barrier_destroy(&sh.done);
  pthread_mutex_destroy(&sh.lock);
}

/* ------------------------------------------------------------------------ */

struct twin {
  pthread_barrier_t *go;
  const esc_event_data *ev;
  esc_status rc;
  esc_append_result r;
};

static void *append_twin(void *arg) {
  struct twin *t = arg;
  esc_store *st = esc_test_open_store(SCHEMA);
  pthread_barrier_wait(t->go);
  t->rc = esc_append(st, "twin-1", ESC_EXPECT_ANY, t->ev, 2, &t->r, NULL);
  esc_store_free(st);
  return NULL;
}

static void racing_retries_store_once(void **state) {
  (void)state;
  unsigned char p0[32], p1[32];
  for (int round = 0; round < 50; round++) {
    esc_event_data ev[2] = {
        {esc_uuid_v4(), "Twin", 1, p0, esc_test_payload(p0, round), NULL, 0},
        {esc_uuid_v4(), "Twin", 1, p1, esc_test_payload(p1, -round), NULL, 0}};
    pthread_barrier_t go;
    pthread_t th[2];
    struct twin t[2] = {{&go, ev, ESC_OK, {0}}, {&go, ev, ESC_OK, {0}}};
    pthread_barrier_init(&go, NULL, 2);
    for (int i = 0; i < 2; i++)
      pthread_create(&th[i], NULL, append_twin, &t[i]);
    for (int i = 0; i < 2; i++)
      pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);

    assert_int_equal(t[0].rc, ESC_OK);
    assert_int_equal(t[1].rc, ESC_OK);
    assert_true(t[0].r.duplicate != t[1].r.duplicate);
    assert_int_equal(t[0].r.first_global, t[1].r.first_global);
    assert_int_equal(t[0].r.last_version, t[1].r.last_version);
  }
  esc_store *st = esc_test_open_store(SCHEMA);
  esc_stream_info info;
  assert_int_equal(esc_stream_get(st, "twin-1", &info, NULL), ESC_OK);
  assert_int_equal(info.version, 100);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_winner_per_round),
      cmocka_unit_test(racing_retries_store_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

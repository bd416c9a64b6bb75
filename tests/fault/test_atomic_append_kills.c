/*
 * Atomic multi-stream appends under killed connections (issue #21): each
 * writer appends one event to each of its STREAMS streams per call, with
 * exact expected versions, while a killer keeps ending their backends. A
 * call that fails with ESC_EUNKNOWN or ESC_ECONN is sent again with the
 * same ids. At the end every stream holds exactly its writer's events,
 * once each, in order, and the k-th events of a writer's streams share
 * one transaction: no kill ever stored part of a call.
 */
#include <pthread.h>
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

#include "pgcluster.h"
#include "testenv.h"

#define SCHEMA "t_fault_atomic_kills"
static char app[64]; /* this test's own application name, with the pid */
/* Each writer makes CALLS calls, and more (up to MAX_CALLS) until a kill
 * has cut a call somewhere: on a fast run every kill may land on an idle
 * session, and the test proves something only once a try was cut. */
enum { WRITERS = 4, STREAMS = 3, CALLS = 60, MAX_CALLS = 600,
       MAX_TRIES = 1000 };

struct writer {
  int index;
  char streams[STREAMS][32];
  esc_uuid ids[MAX_CALLS][STREAMS];
  int count; /* calls stored */
  int conn_errors;
  int duplicates;
  int failures; /* other errors, or retries exhausted */
};

static atomic_bool writers_done;
static atomic_long appended;  /* calls known stored, for the killer */
static atomic_long cut_tries; /* tries a kill cut, over all writers */

static esc_store *open_writer_store(void) {
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = SCHEMA;
  opts.app_name = app;
  esc_store *st = NULL;
  for (int tries = 0; !st && tries < MAX_TRIES; tries++)
    st = esc_store_open(NULL, &opts, NULL);
  return st;
}

/* Call `call` of writer w: one event to each stream at version call+1. */
static void append_until_stored(esc_store *st, struct writer *w, int call) {
  unsigned char payload[STREAMS][32];
  esc_event_data ev[STREAMS];
  esc_append_request reqs[STREAMS];
  for (int s = 0; s < STREAMS; s++) {
    size_t len = esc_test_payload(payload[s], call);
    ev[s] =
        (esc_event_data){w->ids[call][s], "Moved", 1, payload[s], len, NULL, 0};
    reqs[s] = (esc_append_request){
        .stream_id = w->streams[s], .expected = call, .events = &ev[s], .n = 1};
  }
  for (int tries = 0; tries < MAX_TRIES; tries++) {
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_append_atomic(st, reqs, STREAMS, &err);
    if (rc == ESC_OK) {
      atomic_fetch_add(&appended, 1);
      w->duplicates += reqs[0].result.duplicate;
      for (int s = 0; s < STREAMS; s++)
        w->failures += reqs[s].result.first_version != call + 1 ||
                       reqs[s].result.duplicate != reqs[0].result.duplicate;
      return;
    }
    if (rc != ESC_ECONN && rc != ESC_EUNKNOWN) {
      fprintf(stderr, "writer %d: %s\n", w->index, err.msg);
      w->failures++;
      return;
    }
    w->conn_errors++;
    atomic_fetch_add(&cut_tries, 1);
  }
  w->failures++;
}

static void *write_streams(void *arg) {
  struct writer *w = arg;
  esc_store *st = open_writer_store();
  if (!st) {
    w->failures++;
    return NULL;
  }
  for (int c = 0; c < MAX_CALLS; c++)
    for (int s = 0; s < STREAMS; s++)
      w->ids[c][s] = esc_uuid_v4();
  for (int c = 0; c < MAX_CALLS; c++) {
    if (c >= CALLS && atomic_load(&cut_tries) > 0)
      break;
    append_until_stored(st, w, c);
    w->count = c + 1;
  }
  esc_store_free(st);
  return NULL;
}

static void *kill_backends(void *arg) {
  int *kills = arg;
  *kills = esc_test_kill_sessions(app, 30, 250, &appended, &writers_done);
  return NULL;
}

/* Each stream holds its events once, in order; the k-th events of the
 * writer's streams were committed by one transaction. */
static void check_writer(esc_store *st, const struct writer *w) {
  esc_events ev[STREAMS];
  for (int s = 0; s < STREAMS; s++) {
    ev[s] = (esc_events)ESC_EVENTS_INIT;
    assert_int_equal(
        esc_read_stream(st, w->streams[s], 0, ESC_FORWARD, 0, &ev[s], NULL),
        ESC_OK);
    assert_int_equal(ev[s].count, w->count);
    for (size_t i = 0; i < ev[s].count; i++) {
      assert_int_equal(ev[s].items[i].stream_version, (int64_t)i + 1);
      assert_memory_equal(ev[s].items[i].id.bytes, w->ids[i][s].bytes, 16);
      assert_int_equal(ev[s].items[i].position.tx_id,
                       ev[0].items[i].position.tx_id);
    }
  }
  for (int s = 0; s < STREAMS; s++)
    esc_events_release(&ev[s]);
}

static void kills_store_each_call_whole_or_not_at_all(void **state) {
  (void)state;
  static struct writer w[WRITERS];
  pthread_t th[WRITERS], killer;
  int kills = 0, conn_errors = 0, duplicates = 0;

  esc_store_free(esc_test_fresh_store(SCHEMA));
  atomic_store(&writers_done, false);
  atomic_store(&cut_tries, 0);
  pthread_create(&killer, NULL, kill_backends, &kills);
  for (int i = 0; i < WRITERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].index = i;
    for (int s = 0; s < STREAMS; s++)
      snprintf(w[i].streams[s], sizeof w[i].streams[s], "atom-%d%d", i, s);
    pthread_create(&th[i], NULL, write_streams, &w[i]);
  }
  for (int i = 0; i < WRITERS; i++)
    pthread_join(th[i], NULL);
  atomic_store(&writers_done, true);
  pthread_join(killer, NULL);

  esc_store *st = esc_test_open_store(SCHEMA);
  for (int i = 0; i < WRITERS; i++) {
    assert_int_equal(w[i].failures, 0);
    conn_errors += w[i].conn_errors;
    duplicates += w[i].duplicates;
    check_writer(st, &w[i]);
  }
  esc_store_free(st);
  fprintf(stderr, "kills %d, connection errors %d, retries found stored %d\n",
          kills, conn_errors, duplicates);
  assert_true(kills > 0);
  assert_true(conn_errors > 0);
}

int main(void) {
  snprintf(app, sizeof app, "esc-t-atomkill-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kills_store_each_call_whole_or_not_at_all),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

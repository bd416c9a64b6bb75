/*
 * Lost replies (guarantees 1 and 3 under faults): writers append with exact
 * expected versions while another thread keeps killing their backends. A
 * writer whose append fails with ESC_EUNKNOWN does not know whether it
 * committed (with ESC_ECONN it was not sent); it retries the same ids with
 * the same expected version. At the
 * end every stream holds exactly the writer's events, once each, in order.
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
#include <time.h>

#include <cmocka.h>

#include "pgcluster.h"
#include "testenv.h"

#define SCHEMA "t_fault_kills"
/* This test's own application name, with the pid: the killer terminates
 * every session that has it, so it must never match another test's
 * (tests/support's writer thread was once named the same). */
static char app[64];
/* Each try reconnects, sets the session up, prepares and appends: four
 * round trips that the killer may cut, on a busy machine. */
/* Each writer appends EVENTS events, and more (up to MAX_EVENTS) until a
 * kill has cut an append somewhere: on a fast run every kill may land on
 * an idle session, and the test proves something only once a try was
 * cut. */
enum {
  WRITERS = 4,
  EVENTS = 150,
  MAX_EVENTS = 1500,
  BATCH = 3,
  MAX_TRIES = 1000
};

struct writer {
  int index;
  esc_uuid ids[MAX_EVENTS];
  int count; /* events appended */
  int conn_errors;
  int duplicates;
  int failures; /* errors other than ECONN/EUNKNOWN, or retries exhausted */
};

static atomic_bool writers_done;
static atomic_long appended;  /* appends known stored, for the killer */
static atomic_long cut_tries; /* tries a kill cut, over all writers */

/* The killer may end a session while it is being set up, too: try again
 * (cmocka's asserts must not fail in these threads). */
static esc_store *open_writer_store(void) {
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = SCHEMA;
  opts.app_name = app;
  esc_store *st = NULL;
  for (int tries = 0; !st && tries < MAX_TRIES; tries++)
    st = esc_store_open(NULL, &opts, NULL);
  return st;
}

/* Appends ids[from..from+BATCH) until it is known to be stored. */
static void append_until_stored(esc_store *st, struct writer *w,
                                const char *stream, int from) {
  unsigned char payload[BATCH][32];
  esc_event_data ev[BATCH];
  for (int i = 0; i < BATCH; i++) {
    size_t len = esc_test_payload(payload[i], from + i);
    ev[i] = (esc_event_data){
        w->ids[from + i], "Counted", 1, payload[i], len, NULL, 0};
  }
  for (int tries = 0; tries < MAX_TRIES; tries++) {
    esc_append_result r;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_append(st, stream, from, ev, BATCH, &r, &err);
    if (rc == ESC_OK) {
      atomic_fetch_add(&appended, 1);
      w->duplicates += r.duplicate;
      if (r.first_version != from + 1)
        w->failures++;
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

static void *write_stream(void *arg) {
  struct writer *w = arg;
  char stream[32];
  snprintf(stream, sizeof stream, "kill-%d", w->index);
  esc_store *st = open_writer_store();
  if (!st) {
    w->failures++;
    return NULL;
  }
  for (int i = 0; i < MAX_EVENTS; i++)
    w->ids[i] = esc_uuid_v4();
  for (int from = 0; from + BATCH <= MAX_EVENTS; from += BATCH) {
    if (from >= EVENTS && atomic_load(&cut_tries) > 0)
      break;
    append_until_stored(st, w, stream, from);
    w->count = from + BATCH;
  }
  esc_store_free(st);
  return NULL;
}

/* Every 30 ms the killer ends each writer session with a chance that
 * grows with the session's age, reaching certainty at 250 ms. A fixed
 * "kill everything" would starve the writers once a try (a TLS handshake
 * and a SCRAM login before the append) outlasts the pause, as it does on
 * a loaded machine; this way kills land at every step of a try. Even so
 * a try can outlast 250 ms on a loaded machine, so a kill also waits for
 * an append stored since the last one. */
static void *kill_backends(void *arg) {
  int *kills = arg;
  *kills = esc_test_kill_sessions(app, 30, 250, &appended, &writers_done);
  return NULL;
}

static void check_stream(esc_store *st, const struct writer *w) {
  char stream[32];
  esc_events ev = ESC_EVENTS_INIT;
  snprintf(stream, sizeof stream, "kill-%d", w->index);
  assert_int_equal(esc_read_stream(st, stream, 0, ESC_FORWARD, 0, &ev, NULL),
                   ESC_OK);
  assert_int_equal(ev.count, w->count);
  for (size_t i = 0; i < ev.count; i++) {
    assert_int_equal(ev.items[i].stream_version, (int64_t)i + 1);
    assert_memory_equal(ev.items[i].id.bytes, w->ids[i].bytes, 16);
  }
  esc_events_release(&ev);
}

static void retries_through_kills_store_everything_once(void **state) {
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
    pthread_create(&th[i], NULL, write_stream, &w[i]);
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
    check_stream(st, &w[i]);
  }
  esc_store_free(st);
  fprintf(stderr, "kills %d, connection errors %d, retries found stored %d\n",
          kills, conn_errors, duplicates);
  /* The test proves something only if the faults really happened. */
  assert_true(kills > 0);
  assert_true(conn_errors > 0);
}

int main(void) {
  snprintf(app, sizeof app, "esc-t-kills-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(retries_through_kills_store_everything_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

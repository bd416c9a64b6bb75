/*
 * Group commit under faults (issue #15 item 1): writers append through an
 * esc_group_commit with exact expected versions while its flushes are cut
 * short — their sessions terminated mid-flush (pg_terminate_backend), or
 * the whole server restarted. A writer settles an append that failed
 * with ESC_EUNKNOWN or ESC_ECONN by sending the same ids again, as
 * <esc/store.h> says to. At the end:
 *   - every stream holds exactly its writer's events, once each, in order
 *     (every acknowledged append is stored exactly once);
 *   - every ESC_OK names the position, version and transaction at which
 *     its event is really stored (no append reported as stored that is
 *     not);
 *   - an append reported as not sent (ESC_ECONN) was not stored: its
 *     retry stores it, it is no duplicate.
 * Both tests count the faults they caused, so they prove something only
 * when a flush really was cut.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgcluster.h"
#include "testenv.h"

#define SCHEMA "t_group_faults"
/* The kill test's writers append EVENTS each; the restart test's keep
 * appending (up to CAPACITY) until the restarts are over. */
enum { WRITERS = 8, EVENTS = 120, CAPACITY = 20000, MAX_MS = 120000 };

/* The flushers' application name, with the pid: the killer ends every
 * session that has it and no other. */
static char flusher_app[64];
static const char *url; /* the server of the running test */

struct writer {
  int index;
  esc_group_commit *gc;
  int count; /* events to append (until stop_writing) */
  int written;
  esc_uuid ids[CAPACITY];
  esc_append_result acked[CAPACITY]; /* what ESC_OK said */
  int unknowns, not_sent, duplicates;
  int not_sent_but_stored; /* found stored, no try having maybe stored it */
  int failures;            /* other errors, or out of time */
  char why[320];
};

static atomic_bool writers_done; /* stops the killer */
static atomic_long acked_total;  /* appends acknowledged, for the killer */
static atomic_bool stop_writing; /* stops the writers after an event */

static void fail_writer(struct writer *w, const char *what,
                        const esc_error *err) {
  if (!w->failures++)
    snprintf(w->why, sizeof w->why, "%s: %s", what, err ? err->msg : "");
}

/* Appends event i with expected version i until it is known to be
 * stored; false when it gave up. */
static bool append_until_stored(esc_store *st, struct writer *w,
                                const char *stream, int i) {
  unsigned char payload[32];
  esc_event_data ev = {
      w->ids[i], "Flushed", 1, payload, esc_test_payload(payload, i), NULL, 0};
  bool maybe_stored = false; /* an earlier try came back unknown */
  long long began = esc_test_now_ms();
  while (esc_test_now_ms() - began < MAX_MS) {
    esc_append_result r;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_append(st, stream, i, &ev, 1, &r, &err);
    if (rc == ESC_OK) {
      w->duplicates += r.duplicate;
      /* Only a try that may have committed can have stored it. */
      w->not_sent_but_stored += r.duplicate && !maybe_stored;
      if (r.first_version != i + 1)
        fail_writer(w, "wrong version", &err);
      w->acked[i] = r;
      atomic_fetch_add(&acked_total, 1);
      return true;
    }
    if (rc == ESC_EUNKNOWN) {
      w->unknowns++;
      maybe_stored = true;
    } else if (rc == ESC_ECONN || rc == ESC_ETIMEDOUT) {
      w->not_sent++;         /* not sent, or not applied */
      esc_test_sleep_ms(20); /* the server may be down */
    } else {
      fail_writer(w, "append", &err);
      return false;
    }
  }
  fail_writer(w, "out of time", NULL);
  return false;
}

static void *write_stream(void *arg) {
  struct writer *w = arg;
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  char stream[32];
  o.schema = SCHEMA;
  o.group_commit = w->gc;
  snprintf(stream, sizeof stream, "gcf-%d", w->index);
  esc_store *st = esc_store_open(url, &o, &err);
  if (!st) {
    fail_writer(w, "open", &err);
    return NULL;
  }
  for (int i = 0; i < w->count; i++)
    w->ids[i] = esc_uuid_v4();
  for (int i = 0; i < w->count && !atomic_load(&stop_writing) &&
                  append_until_stored(st, w, stream, i);
       i++)
    w->written = i + 1;
  esc_store_free(st);
  return NULL;
}

static esc_group_commit *group_new(void) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  esc_group_commit_options go = ESC_GROUP_COMMIT_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  so.schema = SCHEMA;
  so.app_name = flusher_app;
  so.connect_timeout_s = 2;
  go.flushers = 2;
  go.window_us = 300;
  esc_group_commit *gc = esc_group_commit_new(url, &so, &go, &err);
  if (!gc)
    fail_msg("esc_group_commit_new: %s", err.msg);
  return gc;
}

static void start_writers(struct writer *w, pthread_t *th, esc_group_commit *gc,
                          int count) {
  atomic_store(&writers_done, false);
  atomic_store(&stop_writing, false);
  for (int i = 0; i < WRITERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].index = i;
    w[i].gc = gc;
    w[i].count = count;
    assert_int_equal(pthread_create(&th[i], NULL, write_stream, &w[i]), 0);
  }
}

static void join_writers(struct writer *w, pthread_t *th) {
  for (int i = 0; i < WRITERS; i++)
    pthread_join(th[i], NULL);
  atomic_store(&writers_done, true);
  for (int i = 0; i < WRITERS; i++)
    if (w[i].failures)
      fail_msg("writer %d: %d failures, first: %s", i, w[i].failures, w[i].why);
}

/* The invariants of the header, from the log itself. */
static void check_log(const struct writer *w) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = SCHEMA;
  esc_store *st = esc_store_open(url, &o, &err);
  if (!st)
    fail_msg("open: %s", err.msg);
  for (int k = 0; k < WRITERS; k++) {
    char stream[32];
    esc_events ev = ESC_EVENTS_INIT;
    snprintf(stream, sizeof stream, "gcf-%d", k);
    assert_int_equal(esc_read_stream(st, stream, 0, ESC_FORWARD, 0, &ev, &err),
                     ESC_OK);
    assert_true(w[k].written > 0);
    assert_int_equal(ev.count, w[k].written);
    for (size_t i = 0; i < ev.count; i++) {
      const esc_recorded_event *e = &ev.items[i];
      const esc_append_result *a = &w[k].acked[i];
      assert_int_equal(e->stream_version, (int64_t)i + 1);
      assert_memory_equal(e->id.bytes, w[k].ids[i].bytes, 16);
      assert_int_equal(a->last_version, e->stream_version);
      assert_int_equal(a->position.global, e->position.global);
      assert_true(a->position.tx_id == e->position.tx_id);
    }
    esc_events_release(&ev);
    assert_int_equal(w[k].not_sent_but_stored, 0);
  }
  esc_store_free(st);
}

static void totals(const struct writer *w, int *unknowns, int *not_sent,
                   int *duplicates) {
  *unknowns = *not_sent = *duplicates = 0;
  for (int i = 0; i < WRITERS; i++) {
    *unknowns += w[i].unknowns;
    *not_sent += w[i].not_sent;
    *duplicates += w[i].duplicates;
  }
}

/* -------------------------------------------------- killed mid-flush -- */

/* Every 20 ms, ends each flusher session with a chance that grows with
 * its age (certain at 200 ms), so kills land at every step of a flush:
 * before it is sent, while the server runs it, around its commit. A kill
 * waits for an append acknowledged since the last: a CI machine once
 * took longer than 200 ms to log a flusher in and flush, and one writer
 * never got an append through. */
static void *kill_flushers(void *arg) {
  int *kills = arg;
  *kills = esc_test_kill_sessions(flusher_app, 20, 200, &acked_total,
                                  &writers_done);
  return NULL;
}

static void killed_flushes_lose_and_double_nothing(void **state) {
  (void)state;
  static struct writer w[WRITERS];
  pthread_t th[WRITERS], killer;
  int kills = 0, unknowns, not_sent, duplicates;
  url = esc_test_pg_url();
  esc_store_free(esc_test_fresh_store(SCHEMA));
  esc_group_commit *gc = group_new();
  start_writers(w, th, gc, EVENTS);
  assert_int_equal(pthread_create(&killer, NULL, kill_flushers, &kills), 0);
  join_writers(w, th);
  pthread_join(killer, NULL);
  esc_group_commit_free(gc);

  check_log(w);
  totals(w, &unknowns, &not_sent, &duplicates);
  fprintf(stderr,
          "kills %d; appends unknown %d, not sent %d; retries found "
          "stored %d\n",
          kills, unknowns, not_sent, duplicates);
  assert_true(kills > 0);
  assert_true(unknowns > 0); /* some flushes were cut while in flight */
}

/* ------------------------------------------------ PostgreSQL restart -- */

static void restarts_lose_and_double_nothing(void **state) {
  (void)state;
  static struct writer w[WRITERS];
  pthread_t th[WRITERS];
  int unknowns, not_sent, duplicates;
  esc_error err = ESC_ERROR_INIT;
  esc_test_pg_cluster *cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  url = esc_test_pg_cluster_url(cluster);
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SCHEMA;
  esc_store *st = esc_store_open(url, &o, &err);
  if (!st || esc_store_migrate(st, NULL, &err))
    fail_msg("migrate: %s", err.msg);
  esc_store_free(st);

  esc_group_commit *gc = group_new();
  start_writers(w, th, gc, CAPACITY);
  for (int i = 0; i < 2; i++) {
    esc_test_sleep_ms(400);
    esc_test_pg_cluster_stop(cluster, "immediate");
    esc_test_sleep_ms(300);
    esc_test_pg_cluster_start(cluster);
  }
  esc_test_sleep_ms(400); /* appends go on after the last restart */
  atomic_store(&stop_writing, true);
  join_writers(w, th);
  esc_group_commit_free(gc);

  check_log(w);
  totals(w, &unknowns, &not_sent, &duplicates);
  fprintf(stderr,
          "2 restarts; appends unknown %d, not sent %d; retries found "
          "stored %d\n",
          unknowns, not_sent, duplicates);
  esc_test_pg_cluster_free(cluster);
  assert_true(unknowns + not_sent > 0); /* the restarts hit appends */
}

int main(void) {
  snprintf(flusher_app, sizeof flusher_app, "esc-t-gc-flush-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_flushes_lose_and_double_nothing),
      cmocka_unit_test(restarts_lose_and_double_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Snapshots on the command side against a real PostgreSQL (issue "The
 * command side"): a state built from a snapshot equals the state replayed
 * from the start over 10,000 events; a corrupted snapshot, or one of
 * another state_version, is set aside and reported, never fatal, and the
 * state stays right; snapshots are written only when an append crosses a
 * multiple of snapshot_every.
 *
 * Each test works in its own schema.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <esc/command.h>

#include "counter.h"
#include "testenv.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static esc_command_result inc(esc_store *st, const esc_decider *d,
                              const char *stream, int64_t by) {
  counter_cmd cmd = {COUNTER_INCREMENT, by};
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_execute(st, d, stream, &cmd, NULL, &res, &err);
  if (rc != ESC_OK)
    fail_msg("increment %s by %" PRId64 ": %s (%s)", stream, by,
             esc_strerror(rc), err.msg);
  assert_int_equal(res.event_count, 1);
  return res;
}

static counter_state load(esc_store *st, const esc_decider *d,
                          const char *stream, int64_t *version) {
  counter_state s;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_load_state(st, d, stream, &s, version, &err);
  if (rc != ESC_OK)
    fail_msg("esc_load_state(%s): %s", stream, err.msg);
  return s;
}

/* The state loaded through d, and replayed without snapshots, are both
 * the expected one. */
static void assert_state(esc_store *st, const esc_decider *d,
                         const char *stream, int64_t value, int64_t events) {
  int64_t v1 = -1, v2 = -1;
  counter_state with = load(st, d, stream, &v1);
  counter_state without = load(st, counter_decider(), stream, &v2);
  if (with.value != value || with.events != events || without.value != value ||
      without.events != events || v1 != events || v2 != events)
    fail_msg("%s: with snapshots value %" PRId64 ", events %" PRId64
             ", version %" PRId64 "; replayed value %" PRId64
             ", events %" PRId64 ", version %" PRId64 "; want value %" PRId64
             ", events %" PRId64,
             stream, with.value, with.events, v1, without.value, without.events,
             v2, value, events);
}

/* The stream version of the stream's snapshot row, -1 when none. */
static long long snapshot_row(PGconn *pg, const char *schema,
                              const char *stream) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT coalesce(max(stream_version), -1) FROM \"%s\".snapshots "
           "WHERE stream_id = '%s'",
           schema, stream);
  return esc_test_query_ll(pg, sql);
}

static long long snapshot_rows(PGconn *pg, const char *schema) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".snapshots", schema);
  return esc_test_query_ll(pg, sql);
}

/* The stored snapshot's data as JSON, checked against want. */
static void assert_snapshot(esc_store *st, const char *stream, int64_t version,
                            int64_t value, int64_t events) {
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  esc_error err = ESC_ERROR_INIT;
  char *json = NULL, want[128];
  assert_int_equal(esc_snapshot_read(st, stream, &snap, &err), ESC_OK);
  assert_int_equal(snap.version, version);
  assert_int_equal(snap.state_version, 1);
  assert_int_equal(
      esc_msgpack_to_json(snap.data, snap.data_len, NULL, &json, &err), ESC_OK);
  esc_snapshot_release(&snap);
  snprintf(want, sizeof want, "{\"value\":%" PRId64 ",\"events\":%" PRId64 "}",
           value, events);
  if (strcmp(json, want) != 0) {
    char got[256];
    snprintf(got, sizeof got, "%s", json);
    free(json);
    fail_msg("snapshot of %s: %s, want %s", stream, got, want);
  }
  free(json);
}

/* Runs "UPDATE <schema>.snapshots SET <set> WHERE stream_id = stream". */
static void tamper(PGconn *pg, const char *schema, const char *stream,
                   const char *set) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "UPDATE \"%s\".snapshots SET %s WHERE stream_id = '%s'", schema, set,
           stream);
  esc_test_exec(pg, sql);
}

/* ------------------------------------------------------------------------
 * 10,000 events: from a snapshot or replayed, the same state
 * ------------------------------------------------------------------------ */

#define BIG_SCHEMA "t_cmd_snap_big"
#define BIG_STREAM "counter-big"
enum { BIG_EVENTS = 10000, BIG_BATCH = 500 };

static void snapshot_state_equals_replayed_state(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(BIG_SCHEMA);
  PGconn *pg = esc_test_pg_tracked();
  const esc_decider *snap = counter_decider_snapshots();
  esc_error err = ESC_ERROR_INIT;
  int64_t sum = 0;
  long long t0 = esc_test_now_ms();

  /* BIG_EVENTS - 1 Incremented events with varied amounts, written
   * directly; the command below stores the last one and, crossing a
   * multiple of 100, the snapshot. */
  for (int base = 0; base < BIG_EVENTS - 1; base += BIG_BATCH) {
    esc_event_data ev[BIG_BATCH];
    void *data[BIG_BATCH];
    int n =
        BIG_EVENTS - 1 - base < BIG_BATCH ? BIG_EVENTS - 1 - base : BIG_BATCH;
    for (int i = 0; i < n; i++) {
      int k = base + i;
      counter_incremented_t e = {.by = k % 17 == 0 ? 100000 + k : k % 13 + 1};
      size_t len = 0;
      sum += e.by;
      assert_int_equal(
          esc_event_encode(&counter_incremented, &e, &data[i], &len, &err),
          ESC_OK);
      ev[i] = (esc_event_data){
          esc_uuid_v4(), counter_incremented.name, 1, data[i], len, NULL, 0};
    }
    esc_append_result ar;
    esc_status rc = esc_append(st, BIG_STREAM, base, ev, (size_t)n, &ar, &err);
    for (int i = 0; i < n; i++)
      free(data[i]);
    if (rc != ESC_OK)
      fail_msg("append at %d: %s", base, err.msg);
    assert_int_equal(ar.last_version, base + n);
  }
  long long t1 = esc_test_now_ms();
  assert_int_equal(snapshot_rows(pg, BIG_SCHEMA), 0);

  /* One command: replays all, appends the 10,000th, snapshots it. */
  esc_command_result res = inc(st, snap, BIG_STREAM, 7);
  sum += 7;
  long long t2 = esc_test_now_ms();
  assert_int_equal(res.version, BIG_EVENTS);
  assert_int_equal(res.snapshot_version, 0);
  assert_false(res.snapshot_ignored);
  assert_int_equal(snapshot_row(pg, BIG_SCHEMA, BIG_STREAM), BIG_EVENTS);
  assert_snapshot(st, BIG_STREAM, BIG_EVENTS, sum, BIG_EVENTS);

  /* The same state either way, and the one the test computed. */
  assert_state(st, snap, BIG_STREAM, sum, BIG_EVENTS);

  /* The next command loads from the snapshot. */
  res = inc(st, snap, BIG_STREAM, 5);
  sum += 5;
  long long t3 = esc_test_now_ms();
  assert_int_equal(res.snapshot_version, BIG_EVENTS);
  assert_false(res.snapshot_ignored);
  assert_int_equal(res.version, BIG_EVENTS + 1);
  assert_state(st, snap, BIG_STREAM, sum, BIG_EVENTS + 1);

  /* esc_load_state really starts from the snapshot: a (valid) snapshot
   * that lies shows through; put back, the states agree again. */
  char *saved = esc_test_query_text(
      pg, "SELECT encode(data, 'hex') FROM " BIG_SCHEMA ".snapshots");
  assert_non_null(saved);
  char set[256];
  /* {"value": 1, "events": 1}. */
  tamper(pg, BIG_SCHEMA, BIG_STREAM,
         "data = '\\x82a576616c756501a66576656e747301'");
  counter_state lied = load(st, snap, BIG_STREAM, NULL);
  assert_int_equal(lied.value, 1 + 5);
  assert_int_equal(lied.events, 2);
  snprintf(set, sizeof set, "data = '\\x%s'", saved);
  free(saved);
  tamper(pg, BIG_SCHEMA, BIG_STREAM, set);
  assert_state(st, snap, BIG_STREAM, sum, BIG_EVENTS + 1);

  fprintf(stderr,
          "snapshots: %d events appended in %lld ms; the command replaying "
          "them took %lld ms, the one from the snapshot %lld ms\n",
          BIG_EVENTS - 1, t1 - t0, t2 - t1, t3 - t2);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Unusable snapshots are set aside, not fatal
 * ------------------------------------------------------------------------ */

#define BAD_SCHEMA "t_cmd_snap_bad"
#define BAD_STREAM "counter-bad"

/* A command that must have ignored the snapshot, and the state after it. */
static void assert_ignored(esc_store *st, const esc_decider *d,
                           const esc_command_result *res, const char *why,
                           int64_t value, int64_t version) {
  assert_true(res->snapshot_ignored);
  assert_int_equal(res->snapshot_version, 0);
  if (res->snapshot_note[0] == '\0' || !strstr(res->snapshot_note, why))
    fail_msg("snapshot note \"%s\" should say \"%s\"", res->snapshot_note, why);
  assert_int_equal(res->version, version);
  assert_state(st, d, BAD_STREAM, value, version);
}

static void unusable_snapshots_are_ignored(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(BAD_SCHEMA);
  PGconn *pg = esc_test_pg_tracked();
  esc_decider d;
  counter_decider_init(&d, 10);
  int64_t sum = 0, version = 0;
  esc_command_result res;

  for (int i = 1; i <= 25; i++, version++) {
    sum += i;
    inc(st, &d, BAD_STREAM, i);
  }
  assert_int_equal(snapshot_row(pg, BAD_SCHEMA, BAD_STREAM), 20);
  char *saved = esc_test_query_text(
      pg, "SELECT encode(data, 'hex') FROM " BAD_SCHEMA ".snapshots");
  assert_non_null(saved);

  /* Garbage bytes (0xc1 is never valid msgpack). */
  tamper(pg, BAD_SCHEMA, BAD_STREAM, "data = '\\xc1c1c1'");
  res = inc(st, &d, BAD_STREAM, 100);
  sum += 100, version++;
  assert_ignored(st, &d, &res, "decode", sum, version);

  /* Valid msgpack that decode_state refuses half-way, after it set the
   * value: {"value": 999999} without "events". */
  tamper(pg, BAD_SCHEMA, BAD_STREAM, "data = '\\x81a576616c7565ce000f423f'");
  res = inc(st, &d, BAD_STREAM, 100);
  sum += 100, version++;
  assert_ignored(st, &d, &res, "decode", sum, version);

  /* The right bytes under another state_version. */
  char set[256];
  snprintf(set, sizeof set, "data = '\\x%s', state_version = 99", saved);
  free(saved);
  tamper(pg, BAD_SCHEMA, BAD_STREAM, set);
  res = inc(st, &d, BAD_STREAM, 100);
  sum += 100, version++;
  assert_ignored(st, &d, &res, "99", sum, version);

  /* Put back, it is used again. */
  tamper(pg, BAD_SCHEMA, BAD_STREAM, "state_version = 1");
  res = inc(st, &d, BAD_STREAM, 1);
  sum += 1, version++;
  assert_int_equal(version, 29);
  assert_int_equal(res.snapshot_version, 20);
  assert_false(res.snapshot_ignored);
  assert_int_equal(res.snapshot_note[0], '\0');
  assert_state(st, &d, BAD_STREAM, sum, version);

  /* A corrupt snapshot is replaced by the next one taken (at 40), which
   * holds the replayed, right state. */
  res = inc(st, &d, BAD_STREAM, 1);
  sum += 1, version++;
  assert_int_equal(snapshot_row(pg, BAD_SCHEMA, BAD_STREAM), 30);
  tamper(pg, BAD_SCHEMA, BAD_STREAM, "data = '\\xc1c1c1'");
  for (int i = 0; i < 10; i++, version++) {
    sum += 2;
    res = inc(st, &d, BAD_STREAM, 2);
    assert_true(res.snapshot_ignored);
  }
  assert_int_equal(version, 40);
  assert_int_equal(snapshot_row(pg, BAD_SCHEMA, BAD_STREAM), 40);
  assert_snapshot(st, BAD_STREAM, 40, sum, 40);
  res = inc(st, &d, BAD_STREAM, 1);
  sum += 1, version++;
  assert_int_equal(res.snapshot_version, 40);
  assert_false(res.snapshot_ignored);
  assert_state(st, &d, BAD_STREAM, sum, version);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * When snapshots are written
 * ------------------------------------------------------------------------ */

#define EVERY_SCHEMA "t_cmd_snap_every"
#define EVERY_STREAM "counter-every"

/* A counter decide that emits n Incremented {by: 1}. */
typedef struct add_n_cmd {
  int n;
} add_n_cmd;

static int add_n_decide(const void *state, const void *command,
                        esc_decision *d) {
  (void)state;
  const add_n_cmd *c = command;
  for (int i = 0; i < c->n; i++)
    esc_decision_emit(d, &counter_incremented,
                      &(counter_incremented_t){.by = 1});
  return 0;
}

static void snapshots_follow_multiples(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(EVERY_SCHEMA);
  PGconn *pg = esc_test_pg_tracked();
  esc_decider d;
  counter_decider_init(&d, 10);
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;

  for (int i = 1; i <= 9; i++) {
    res = inc(st, &d, EVERY_STREAM, 1);
    assert_int_equal(res.version, i);
    assert_int_equal(res.snapshot_version, 0);
    assert_int_equal(snapshot_rows(pg, EVERY_SCHEMA), 0);
  }
  res = inc(st, &d, EVERY_STREAM, 1);
  assert_int_equal(res.version, 10);
  assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, EVERY_STREAM), 10);
  assert_snapshot(st, EVERY_STREAM, 10, 10, 10);

  /* A rejection and a no-op at 10 change nothing. */
  counter_cmd zero = {COUNTER_INCREMENT, 0}, nothing = {COUNTER_ADD_NOTHING, 0};
  assert_int_equal(esc_execute(st, &d, EVERY_STREAM, &zero, NULL, &res, &err),
                   ESC_EREJECTED);
  assert_int_equal(
      esc_execute(st, &d, EVERY_STREAM, &nothing, NULL, &res, &err), ESC_OK);
  assert_int_equal(res.snapshot_version, 10);

  for (int i = 11; i <= 19; i++) {
    res = inc(st, &d, EVERY_STREAM, 1);
    assert_int_equal(res.snapshot_version, 10);
    assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, EVERY_STREAM), 10);
  }
  res = inc(st, &d, EVERY_STREAM, 1);
  assert_int_equal(res.version, 20);
  assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, EVERY_STREAM), 20);
  assert_int_equal(snapshot_rows(pg, EVERY_SCHEMA), 1);

  /* Multi-event appends: 20 -> 23 crosses nothing; 23 -> 32 crosses 30
   * and snapshots the state after the whole append. */
  esc_decider multi = d;
  multi.decide = add_n_decide;
  add_n_cmd three = {3}, nine = {9};
  assert_int_equal(
      esc_execute(st, &multi, EVERY_STREAM, &three, NULL, &res, &err), ESC_OK);
  assert_int_equal(res.version, 23);
  assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, EVERY_STREAM), 20);
  assert_int_equal(
      esc_execute(st, &multi, EVERY_STREAM, &nine, NULL, &res, &err), ESC_OK);
  assert_int_equal(res.first_version, 24);
  assert_int_equal(res.version, 32);
  assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, EVERY_STREAM), 32);
  assert_snapshot(st, EVERY_STREAM, 32, 32, 32);
  assert_state(st, &d, EVERY_STREAM, 32, 32);

  /* Without snapshot_every, never. */
  for (int i = 0; i < 25; i++)
    inc(st, counter_decider(), "counter-never", 1);
  assert_int_equal(snapshot_row(pg, EVERY_SCHEMA, "counter-never"), -1);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(snapshot_state_equals_replayed_state,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(unusable_snapshots_are_ignored,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(snapshots_follow_multiples,
                                esc_test_close_tracked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

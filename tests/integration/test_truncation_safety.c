/*
 * Truncation and snapshots never produce a wrong state (#11 item 4),
 * against a real PostgreSQL:
 *   - a stream whose log no longer starts at version 1 loads only from a
 *     usable snapshot at or after its truncation point; without one it is
 *     ESC_ETRUNCATED ("stream truncated before version N and no snapshot
 *     covers it"), never a fold of the tail alone;
 *   - a truncation no snapshot covers is refused and removes nothing,
 *     unless forced; esc_truncate_stream snapshots first;
 *   - a retried command id returns its first outcome after truncation
 *     removed its events, and a rejection or a "no change" is answered
 *     again as such even when the state has changed since;
 *   - a state loaded from a snapshot and the events after it equals the
 *     full replay, for random command sequences of the sample deciders
 *     (snapshots are folded from the stored events, ids, positions,
 *     metadata and times included).
 * Each fails on the old main: it folded the tail, truncated anything,
 * decided retried commands again and folded made-up events (nil id, no
 * metadata, time 0) into snapshots; esc_truncate_stream did not exist.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <esc/command.h>

#include "bank.h"
#include "counter.h"
#include "order.h"
#include "testenv.h"

static char schema[40]; /* per process: parallel runs must not collide */

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static esc_status inc(esc_store *st, const esc_decider *d, const char *stream,
                      int64_t by, const esc_uuid *id, esc_command_result *res,
                      esc_error *err) {
  counter_cmd cmd = {COUNTER_INCREMENT, by};
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  if (id)
    o.command_id = *id;
  return esc_execute(st, d, stream, &cmd, &o, res, err);
}

static void inc_ok(esc_store *st, const esc_decider *d, const char *stream,
                   int n, int64_t by) {
  for (int i = 0; i < n; i++) {
    esc_command_result res;
    esc_error err = ESC_ERROR_INIT;
    if (inc(st, d, stream, by, NULL, &res, &err))
      fail_msg("increment %s: %s", stream, err.msg);
  }
}

/* 0 for a stream that does not exist (yet). */
static int64_t stream_version(esc_store *st, const char *stream) {
  esc_stream_info si;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_stream_get(st, stream, &si, &err);
  if (rc == ESC_ENOTFOUND)
    return 0;
  if (rc)
    fail_msg("stream %s: %s", stream, err.msg);
  return si.version;
}

static long long count_sql(PGconn *raw, const char *fmt, const char *stream) {
  char sql[512];
  snprintf(sql, sizeof sql, fmt, schema, stream);
  return esc_test_query_ll(raw, sql);
}

static long long stored_events(PGconn *raw, const char *stream) {
  return count_sql(raw, "SELECT count(*) FROM %s.events WHERE stream_id = '%s'",
                   stream);
}

/* Loading fails with ESC_ETRUNCATED, saying where the log starts. */
static void expect_uncovered(esc_store *st, const esc_decider *d,
                             const char *stream, int64_t first_kept) {
  counter_state s;
  int64_t version = -1;
  esc_error err = ESC_ERROR_INIT;
  char want[128];
  esc_status rc = esc_load_state(st, d, stream, &s, &version, &err);
  if (rc != ESC_ETRUNCATED)
    fail_msg("load %s: %s (value %" PRId64 ", version %" PRId64
             "), want ESC_ETRUNCATED",
             stream, esc_strerror(rc), rc ? 0 : s.value, version);
  assert_int_equal(err.code, ESC_ETRUNCATED);
  snprintf(want, sizeof want,
           "stream truncated before version %" PRId64
           " and no snapshot covers it",
           first_kept);
  if (!strstr(err.msg, want))
    fail_msg("error \"%s\" does not say \"%s\"", err.msg, want);
}

static counter_state load_counter(esc_store *st, const esc_decider *d,
                                  const char *stream, int64_t *version) {
  counter_state s;
  esc_error err = ESC_ERROR_INIT;
  if (esc_load_state(st, d, stream, &s, version, &err))
    fail_msg("load %s: %s", stream, err.msg);
  return s;
}

/* ------------------------------------------------------------------------
 * (a) No partial fold
 * ------------------------------------------------------------------------ */

/* The case: 12 increments of 5 (60), truncated; with its snapshot
 * gone the loader must not answer 30 or any other part. */
static void lost_snapshot_is_an_error_not_a_partial_fold(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  esc_decider d;
  counter_decider_init(&d, 5);
  inc_ok(st, &d, "counter-a", 12, 5);

  int64_t removed = -1;
  assert_int_equal(
      esc_truncate_stream(st, &d, "counter-a", 7, "test", &removed, &err),
      ESC_OK);
  assert_int_equal(removed, 6);
  int64_t version = -1;
  counter_state s = load_counter(st, &d, "counter-a", &version);
  assert_int_equal(s.value, 60);
  assert_int_equal(s.events, 12);
  assert_int_equal(version, 12);

  char sql[160];
  snprintf(sql, sizeof sql, "DELETE FROM %s.snapshots", schema);
  esc_test_exec(raw, sql); /* as the owner: the snapshot is lost */
  expect_uncovered(st, &d, "counter-a", 7);
  /* Deciding on it fails the same way, and appends nothing. */
  esc_command_result res;
  assert_int_equal(inc(st, &d, "counter-a", 1, NULL, &res, &err),
                   ESC_ETRUNCATED);
  assert_int_equal(stream_version(st, "counter-a"), 12);
  /* A decider that keeps no snapshots cannot load it either. */
  expect_uncovered(st, counter_decider(), "counter-a", 7);
  esc_store_free(st);
}

/* Forced truncations: without a snapshot, with one that is too old, with
 * one of another state_version, and of every event. */
static void forced_truncation_leaves_an_error_not_a_partial_fold(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  esc_truncate_options force = ESC_TRUNCATE_OPTIONS_INIT;
  force.force = true;
  esc_decider d;
  counter_decider_init(&d, 5);

  inc_ok(st, counter_decider(), "counter-none", 6, 5);
  assert_int_equal(
      esc_stream_truncate_opts(st, "counter-none", 4, &force, NULL, &err),
      ESC_OK);
  expect_uncovered(st, counter_decider(), "counter-none", 4);
  expect_uncovered(st, &d, "counter-none", 4);

  inc_ok(st, &d, "counter-old", 8, 5); /* snapshot at 5 */
  assert_int_equal(
      esc_stream_truncate_opts(st, "counter-old", 8, &force, NULL, &err),
      ESC_OK);
  expect_uncovered(st, &d, "counter-old", 8);

  inc_ok(st, &d, "counter-schema", 6, 5); /* snapshot at 5 */
  assert_int_equal(
      esc_stream_truncate(st, "counter-schema", 5, "test", NULL, &err), ESC_OK);
  assert_int_equal(load_counter(st, &d, "counter-schema", NULL).value, 30);
  esc_decider newer = d;
  newer.state_version = 2; /* the snapshot no longer decodes for it */
  expect_uncovered(st, &newer, "counter-schema", 5);

  inc_ok(st, counter_decider(), "counter-all", 3, 5);
  assert_int_equal(
      esc_stream_truncate_opts(st, "counter-all", 10, &force, NULL, &err),
      ESC_OK);
  expect_uncovered(st, counter_decider(), "counter-all", 4);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * (e) Refused without a snapshot, nothing removed
 * ------------------------------------------------------------------------ */

static void uncovered_truncation_is_refused_and_removes_nothing(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  esc_decider d;
  counter_decider_init(&d, 5);
  inc_ok(st, &d, "counter-r", 7, 1); /* snapshot at 5 */

  /* Before 6 is covered by the snapshot at 5; before 7 is not. */
  int64_t removed = -1;
  assert_int_equal(
      esc_stream_truncate(st, "counter-r", 7, "test", &removed, &err),
      ESC_ETRUNCATED);
  assert_int_equal(err.code, ESC_ETRUNCATED);
  if (!strstr(err.msg, "no snapshot covers version 6 (the snapshot is at "
                       "version 5)"))
    fail_msg("error \"%s\" does not say which snapshot", err.msg);
  assert_int_equal(stored_events(raw, "counter-r"), 7);
  assert_int_equal(
      count_sql(raw, "SELECT count(*) FROM %s.retention_log%s", ""), 0);
  assert_int_equal(
      count_sql(raw, "SELECT count(*) FROM %s.removed_event_ids%s", ""), 0);

  /* The decider-aware truncation snapshots first and goes through. */
  assert_int_equal(
      esc_truncate_stream(st, &d, "counter-r", 7, "test", &removed, &err),
      ESC_OK);
  assert_int_equal(removed, 6);
  assert_int_equal(load_counter(st, &d, "counter-r", NULL).value, 7);
  /* A decider without snapshots cannot: its stream would be lost. */
  assert_int_equal(esc_truncate_stream(st, counter_decider(), "counter-r", 8,
                                       "test", &removed, &err),
                   ESC_EINVAL);
  assert_int_equal(stored_events(raw, "counter-r"), 1);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * (b) and (c) Retried commands after truncation and state changes
 * ------------------------------------------------------------------------ */

static void retried_command_after_truncation_returns_its_result(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  esc_decider d;
  counter_decider_init(&d, 5);
  esc_uuid id = esc_uuid_v4();
  esc_command_result first, again;
  assert_int_equal(inc(st, &d, "counter-b", 7, &id, &first, &err), ESC_OK);
  assert_false(first.duplicate);
  inc_ok(st, &d, "counter-b", 9, 1);
  assert_int_equal(
      esc_truncate_stream(st, &d, "counter-b", 11, "test", NULL, &err), ESC_OK);

  assert_int_equal(inc(st, &d, "counter-b", 7, &id, &again, &err), ESC_OK);
  assert_true(again.duplicate);
  assert_int_equal(again.event_count, 1);
  assert_int_equal(again.first_version, 1);
  assert_int_equal(again.version, 1);
  assert_int_equal(again.position.global, first.position.global);
  assert_int_equal(again.position.tx_id, first.position.tx_id);
  assert_int_equal(stream_version(st, "counter-b"), 10); /* nothing new */
  assert_int_equal(load_counter(st, &d, "counter-b", NULL).value, 16);
  esc_store_free(st);
}

static esc_status bank(esc_store *st, const char *stream, account_cmd cmd,
                       const esc_uuid *id, esc_command_result *res,
                       esc_error *err) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  if (id)
    o.command_id = *id;
  return esc_execute(st, account_decider(), stream, &cmd, &o, res, err);
}

static void retried_rejection_is_rejected_again(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  esc_command_result res;
  account_cmd open = {ACCOUNT_OPEN, "ann", 0, 0, NULL};
  account_cmd deposit = {ACCOUNT_DEPOSIT, NULL, 0, 500, NULL};
  account_cmd withdraw = {ACCOUNT_WITHDRAW, NULL, 0, 300, NULL};
  assert_int_equal(bank(st, "account-c", open, NULL, &res, &err), ESC_OK);

  esc_uuid id = esc_uuid_v4();
  assert_int_equal(bank(st, "account-c", withdraw, &id, &res, &err),
                   ESC_EREJECTED);
  assert_int_equal(res.domain_code, ACCOUNT_EFUNDS);
  char msg[sizeof res.domain_msg];
  snprintf(msg, sizeof msg, "%s", res.domain_msg);
  assert_false(res.duplicate);
  /* Now the withdrawal would succeed; its retry is still refused. */
  assert_int_equal(bank(st, "account-c", deposit, NULL, &res, &err), ESC_OK);
  memset(&err, 0, sizeof err);
  assert_int_equal(bank(st, "account-c", withdraw, &id, &res, &err),
                   ESC_EREJECTED);
  assert_int_equal(err.code, ESC_EREJECTED);
  assert_true(res.duplicate);
  assert_int_equal(res.domain_code, ACCOUNT_EFUNDS);
  assert_string_equal(res.domain_msg, msg);
  assert_int_equal(res.event_count, 0);
  assert_int_equal(res.version, 1); /* decided at version 1 */
  assert_int_equal(stream_version(st, "account-c"), 2);

  /* An outcome is recorded only while the stream is at the version it
   * was decided at: one decided on a state that moved on is decided
   * again (esc_execute retries on ESC_ECONFLICT). */
  esc_uuid late = esc_uuid_v4(), nothing = esc_uuid_v4();
  esc_command_outcome out;
  assert_int_equal(esc_command_outcome_write(st, &late, "account-c", 1,
                                             ACCOUNT_EFUNDS, "late", &err),
                   ESC_ECONFLICT);
  assert_int_equal(esc_command_outcome_read(st, &late, &nothing, &out, &err),
                   ESC_OK);
  assert_false(out.found);

  /* "No change" is an outcome too: a reset of a counter at zero stays
   * one when retried after an increment. */
  esc_uuid reset_id = esc_uuid_v4();
  counter_cmd reset = {COUNTER_RESET, 0};
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  o.command_id = reset_id;
  assert_int_equal(
      esc_execute(st, counter_decider(), "counter-z", &reset, &o, &res, &err),
      ESC_OK);
  assert_int_equal(res.event_count, 0);
  inc_ok(st, counter_decider(), "counter-z", 1, 3);
  assert_int_equal(
      esc_execute(st, counter_decider(), "counter-z", &reset, &o, &res, &err),
      ESC_OK);
  assert_true(res.duplicate);
  assert_int_equal(res.event_count, 0);
  assert_int_equal(stream_version(st, "counter-z"), 1);
  assert_int_equal(load_counter(st, counter_decider(), "counter-z", NULL).value,
                   3);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * (d) Snapshot, then the tail == the full replay
 * ------------------------------------------------------------------------ */

/* A counter whose state also keeps what it knows of its last event as
 * recorded: id, version, position, time and causation id. A snapshot
 * folded from anything but the stored events differs from a replay. */
typedef struct stamped {
  counter_state c;
  char last_id[37];
  int64_t last_version, last_global, last_at_us;
  char last_causation[37];
} stamped;

static void stamped_init(void *state) {
  counter_decider()->init(state);
}

static void stamped_evolve(void *state, const esc_event *e) {
  stamped *s = state;
  esc_metadata m = ESC_METADATA_INIT;
  counter_decider()->evolve(&s->c, e);
  const esc_recorded_event *r = e->recorded;
  if (!r)
    return;
  esc_uuid_format(&r->id, s->last_id);
  s->last_version = r->stream_version;
  s->last_global = r->position.global;
  s->last_at_us = r->recorded_at_us;
  if (esc_metadata_decode(r->metadata, r->metadata_len, &m, NULL, 0, NULL))
    m.causation_id = (esc_uuid){{0}};
  esc_uuid_format(&m.causation_id, s->last_causation);
}

static int stamped_decide(const void *state, const void *command,
                          esc_decision *d) {
  return counter_decider()->decide(&((const stamped *)state)->c, command, d);
}

static int stamped_encode(const void *state, msgpack_packer *pk) {
  const stamped *s = state;
  msgpack_pack_map(pk, 7);
  esc_pack_key(pk, "value");
  msgpack_pack_int64(pk, s->c.value);
  esc_pack_key(pk, "events");
  msgpack_pack_int64(pk, s->c.events);
  esc_pack_key(pk, "id");
  esc_pack_str(pk, s->last_id);
  esc_pack_key(pk, "version");
  msgpack_pack_int64(pk, s->last_version);
  esc_pack_key(pk, "global");
  msgpack_pack_int64(pk, s->last_global);
  esc_pack_key(pk, "at");
  msgpack_pack_int64(pk, s->last_at_us);
  esc_pack_key(pk, "causation");
  esc_pack_str(pk, s->last_causation);
  return 0;
}

static esc_status stamped_decode(const msgpack_object *obj, void *state,
                                 esc_error *err) {
  stamped *s = state;
  if (esc_map_i64(obj, "value", &s->c.value) &&
      esc_map_i64(obj, "events", &s->c.events) &&
      esc_map_str(obj, "id", s->last_id, sizeof s->last_id) &&
      esc_map_i64(obj, "version", &s->last_version) &&
      esc_map_i64(obj, "global", &s->last_global) &&
      esc_map_i64(obj, "at", &s->last_at_us) &&
      esc_map_str(obj, "causation", s->last_causation,
                  sizeof s->last_causation))
    return ESC_OK;
  return esc_error_set(err, ESC_EINVAL, "stamped snapshot: a field is bad");
}

static esc_decider stamped_decider(void) {
  esc_decider d = *counter_decider();
  d.state_size = sizeof(stamped);
  d.init = stamped_init;
  d.evolve = stamped_evolve;
  d.decide = stamped_decide;
  d.encode_state = stamped_encode;
  d.decode_state = stamped_decode;
  return d;
}

/* Random commands for each decider, into a buffer the caller keeps. */
typedef union any_cmd {
  counter_cmd counter;
  order_cmd order;
  inventory_cmd inventory;
} any_cmd;

static const char *const SKUS[] = {"sa", "sb", "sc", "sd"};

static void random_counter(unsigned *seed, any_cmd *c, order_line *lines) {
  (void)lines;
  int r = rand_r(seed) % 10;
  c->counter = (counter_cmd){r < 7   ? COUNTER_INCREMENT
                             : r < 9 ? COUNTER_RESET
                                     : COUNTER_ADD_NOTHING,
                             rand_r(seed) % 5}; /* 0: rejected */
}

static void random_line(unsigned *seed, order_line *l) {
  snprintf(l->sku, sizeof l->sku, "%s", SKUS[rand_r(seed) % 4]);
  l->qty = rand_r(seed) % 4; /* 0: rejected */
  l->price = rand_r(seed) % 500;
}

/* Mostly item changes while placed, so streams get long; the rest of the
 * life cycle (and its rejections) now and then. */
static void random_order(unsigned *seed, any_cmd *c, order_line *lines) {
  static const order_cmd_kind rare[] = {ORDER_PLACE,      ORDER_CONFIRM,
                                        ORDER_MARK_READY, ORDER_PAY,
                                        ORDER_SHIP,       ORDER_CANCEL};
  int r = rand_r(seed) % 20;
  memset(&c->order, 0, sizeof c->order);
  c->order.kind = r < 9    ? ORDER_ADD_ITEM
                  : r < 15 ? ORDER_REMOVE_ITEM
                  : r < 17 ? ORDER_PLACE
                           : rare[rand_r(seed) % 6];
  random_line(seed, &c->order.line);
  random_line(seed, &lines[0]);
  lines[0].qty += 1;
  c->order.customer = "cy";
  c->order.lines = lines;
  c->order.line_count = 1;
  c->order.amount = rand_r(seed) % 3000;
  c->order.carrier = "dhl";
  c->order.reason = "test";
}

static void random_inventory(unsigned *seed, any_cmd *c, order_line *lines) {
  (void)lines;
  static const char *const orders[] = {"o1", "o2", "o3"};
  c->inventory = (inventory_cmd){(inventory_cmd_kind)(rand_r(seed) % 3),
                                 rand_r(seed) % 6, orders[rand_r(seed) % 3]};
}

/* state encoded with d (the caller frees *out). */
static size_t encode(const esc_decider *d, const void *state, char **out) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  assert_int_equal(d->encode_state(state, &pk), 0);
  *out = sb.data; /* msgpack_sbuffer_destroy is free(data) */
  return sb.size;
}

/* Loads stream through d, encoded (the caller frees *out); *version
 * gets the version folded up to. */
static size_t load_encoded(esc_store *st, const esc_decider *d,
                           const char *stream, char **out, int64_t *version) {
  esc_error err = ESC_ERROR_INIT;
  void *state = calloc(1, d->state_size);
  assert_non_null(state);
  esc_status rc = esc_load_state(st, d, stream, state, version, &err);
  if (rc)
    fail_msg("load %s: %s", stream, err.msg);
  size_t len = encode(d, state, out);
  if (d->release_state)
    d->release_state(state);
  free(state);
  return len;
}

typedef struct subject {
  const char *name;
  esc_decider decider;
  const char *prefix; /* the decider's category and a '-' */
  void (*random_cmd)(unsigned *seed, any_cmd *c, order_line *lines);
} subject;

/* Loads through snap (snapshot + tail) and replay (no snapshots) agree;
 * counts in *snapshots_used the checks that had a snapshot to start from. */
static void expect_same(esc_store *st, const subject *sub,
                        const esc_decider *snap, const char *stream,
                        unsigned seed, int step, int64_t *snapshots_used) {
  char *a, *b;
  int64_t va = -1, vb = -1;
  esc_decider replay = *snap;
  replay.snapshot_every = 0;
  size_t la = load_encoded(st, snap, stream, &a, &va);
  size_t lb = load_encoded(st, &replay, stream, &b, &vb);
  if (la != lb || memcmp(a, b, la) != 0 || va != vb)
    fail_msg("%s %s (seed %u, step %d): snapshot+tail (version %" PRId64
             ", %zu bytes) differs from the replay (version %" PRId64
             ", %zu bytes)",
             sub->name, stream, seed, step, va, la, vb, lb);
  esc_snapshot snapshot = ESC_SNAPSHOT_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (esc_snapshot_read(st, stream, &snapshot, &err) == ESC_OK)
    (*snapshots_used)++;
  esc_snapshot_release(&snapshot);
  free(a);
  free(b);
}

/* One random run: snapshots every 1..7 events (so at random versions),
 * checked against the replay after every command; then truncated at a
 * random version by esc_truncate_stream, and the state still the one the
 * replay gave before. */
static void random_run(esc_store *st, const subject *sub, unsigned seed,
                       int trial, int64_t *snapshots_used) {
  char stream[64];
  unsigned s = seed;
  esc_decider d = sub->decider;
  d.snapshot_every = 1 + rand_r(&s) % 7;
  snprintf(stream, sizeof stream, "%s%u-%d", sub->prefix, seed, trial);
  for (int step = 0; step < 40; step++) {
    any_cmd c;
    order_line lines[1];
    esc_command_result res;
    esc_error err = ESC_ERROR_INIT;
    sub->random_cmd(&s, &c, lines);
    esc_status rc = esc_execute(st, &d, stream, &c, NULL, &res, &err);
    if (rc && rc != ESC_EREJECTED)
      fail_msg("%s: %s", stream, err.msg);
    if (stream_version(st, stream) > 0)
      expect_same(st, sub, &d, stream, seed, step, snapshots_used);
  }
  int64_t version = stream_version(st, stream);
  if (version == 0)
    return;
  char *before, *after;
  esc_decider replay = d;
  replay.snapshot_every = 0;
  size_t lb = load_encoded(st, &replay, stream, &before, NULL);
  esc_error err = ESC_ERROR_INIT;
  int64_t cut = 1 + rand_r(&s) % (int)(version + 1);
  if (esc_truncate_stream(st, &d, stream, cut, "property", NULL, &err))
    fail_msg("truncate %s before %" PRId64 ": %s", stream, cut, err.msg);
  size_t la = load_encoded(st, &d, stream, &after, NULL);
  if (la != lb || memcmp(after, before, la) != 0)
    fail_msg("%s %s (seed %u): after truncation before %" PRId64
             " the state differs from the replay",
             sub->name, stream, seed, cut);
  free(before);
  free(after);
}

static void snapshot_then_tail_equals_replay(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  const char *fixed = getenv("ESC_TEST_SEED");
  unsigned seed = fixed ? (unsigned)strtoul(fixed, NULL, 10)
                        : (unsigned)time(NULL) ^ (unsigned)getpid();
  print_message("seed %u (ESC_TEST_SEED repeats it)\n", seed);
  subject subjects[] = {
      {"counter", *counter_decider(), "counter-", random_counter},
      {"stamped counter", stamped_decider(), "counter-st", random_counter},
      {"order", *order_decider(), "order-", random_order},
      {"inventory", *inventory_decider(), "inventory-", random_inventory},
  };
  for (size_t i = 0; i < sizeof subjects / sizeof subjects[0]; i++) {
    int64_t used = 0;
    for (int trial = 0; trial < 4; trial++)
      random_run(st, &subjects[i], seed + (unsigned)trial * 7919u, trial,
                 &used);
    if (used == 0)
      fail_msg("%s: no load started from a snapshot", subjects[i].name);
  }
  esc_store_free(st);
}

/* ------------------------------------------------------------------------ */

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_trsafe_%d", (int)getpid());
  return 0;
}

static int teardown(void **state) {
  esc_test_close_tracked(state);
  esc_test_drop_schema(schema);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(lost_snapshot_is_an_error_not_a_partial_fold,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(
          forced_truncation_leaves_an_error_not_a_partial_fold,
          esc_test_close_tracked),
      cmocka_unit_test_teardown(
          uncovered_truncation_is_refused_and_removes_nothing,
          esc_test_close_tracked),
      cmocka_unit_test_teardown(
          retried_command_after_truncation_returns_its_result,
          esc_test_close_tracked),
      cmocka_unit_test_teardown(retried_rejection_is_rejected_again,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(snapshot_then_tail_equals_replay,
                                esc_test_close_tracked),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

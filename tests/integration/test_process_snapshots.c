/*
 * Process instance snapshots (issue #12) against a real PostgreSQL, with
 * the order sample's fulfillment process. Instances are driven input by
 * input through the core (esc__process_handle), their records appended
 * to the store and snapshotted the way the runtime does it (after the
 * append that crosses a multiple of snapshot_every), then loaded with
 * esc__process_instance_load:
 *
 *   - property: over seeded random input sequences (events, outcomes
 *     accepted or refused, deadlines, re-deliveries), after every input
 *     the instance loaded from its snapshot and the tail equals the one
 *     folded from the start and the one handled live (state and all the
 *     runtime's bookkeeping);
 *   - a load from a snapshot folds only the records after it;
 *   - an instance shorter than snapshot_every (the sample's 50) is
 *     loaded without looking up a snapshot: no round trip more;
 *   - a snapshot that does not decode (bad bytes, another format, a state
 *     part decode_state refuses) or of another state_version is set aside
 *     and the stream folded from the start;
 *   - a truncated instance stream loads from a snapshot that covers the
 *     removed records, and is ESC_ETRUNCATED without one, like a
 *     decider's stream.
 *
 * Each run works in its own schema.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <esc_internal/process.h>

#include "order.h"
#include "testenv.h"

static char schema[48];
static esc_store *store;
static PGconn *pg;
static const order_fulfillment_options fopts = ORDER_FULFILLMENT_OPTIONS_INIT;

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_process_snap_%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  pg = esc_test_pg_tracked();
  return 0;
}

static int teardown(void **state) {
  esc_test_close_tracked(state);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* ------------------------------------------------------------------------
 * Driving one instance
 * ------------------------------------------------------------------------ */

#define KEPT_MAX 32

/* A source event of the order stream, kept for re-delivery. */
struct source {
  esc_recorded_event rec;
  void *data;
};

typedef struct driver {
  esc_process snap;  /* fulfillment, snapshots every `every` records */
  esc_process plain; /* the same without snapshots */
  esc__process_instance live;
  char instance[32], order_stream[48];
  unsigned seed, first_seed; /* seed moves; first_seed names the run */
  int64_t now_us;
  struct source kept[KEPT_MAX];
  int nkept;
  int snapshots; /* taken so far */
} driver;

static void driver_init(driver *d, const char *instance, int every,
                        unsigned seed) {
  esc_error err = ESC_ERROR_INIT;
  memset(d, 0, sizeof *d);
  order_fulfillment_init(&d->snap, &fopts);
  d->snap.snapshot_every = every;
  d->plain = d->snap;
  d->plain.snapshot_every = 0;
  snprintf(d->instance, sizeof d->instance, "%s", instance);
  snprintf(d->order_stream, sizeof d->order_stream, "order-%s", instance);
  d->seed = d->first_seed = seed;
  d->now_us = INT64_C(1700000000000000);
  if (esc__process_instance_init(&d->live, &d->snap, instance, &err))
    fail_msg("init %s: %s", instance, err.msg);
}

static void driver_release(driver *d) {
  esc__process_instance_release(&d->live);
  for (int i = 0; i < d->nkept; i++)
    free(d->kept[i].data);
}

/* Handles in on the live instance and appends its records; snapshots as
 * the runtime does (runner.c). */
static void deliver(driver *d, const esc__process_delivery *in) {
  esc__process_step step;
  esc_append_result res;
  esc_error err = ESC_ERROR_INIT;
  int64_t before = d->live.version;
  esc__process_step_init(&step);
  if (esc__process_handle(&d->live, in, &step, &err))
    fail_msg("%s (seed %u): handle: %s", d->instance, d->first_seed, err.msg);
  if (step.handled && esc_append(store, d->live.stream_id,
                                 before ? before : ESC_EXPECT_NO_STREAM,
                                 step.records, step.count, &res, &err))
    fail_msg("%s (seed %u): append: %s", d->instance, d->first_seed, err.msg);
  if (step.handled && esc__process_snapshot_due(&d->live, before)) {
    if (esc__process_instance_snapshot(store, &d->live, &err))
      fail_msg("%s (seed %u): snapshot: %s", d->instance, d->first_seed,
               err.msg);
    d->snapshots++;
  }
  esc__process_step_release(&step);
}

/* A new event of the order stream, delivered and kept. */
static void deliver_event(driver *d, const esc_event_type *type,
                          const void *event) {
  esc_error err = ESC_ERROR_INIT;
  assert_true(d->nkept < KEPT_MAX);
  struct source *s = &d->kept[d->nkept++];
  if (esc_event_encode(type, event, &s->data, &s->rec.data_len, &err))
    fail_msg("encode %s: %s", type->name, err.msg);
  d->now_us += 1000;
  s->rec.stream_id = d->order_stream;
  s->rec.stream_version = d->nkept;
  s->rec.position = (esc_position){1, d->nkept};
  s->rec.id = esc_uuid_v4();
  s->rec.type = type->name;
  s->rec.schema_version = type->schema_version;
  s->rec.data = s->data;
  s->rec.recorded_at_us = d->now_us;
  esc__process_delivery in = {
      .kind = ESC_PROCESS_INPUT_EVENT, .time_us = d->now_us, .event = &s->rec};
  deliver(d, &in);
}

static void confirm(driver *d, int lines) {
  order_confirmed c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < lines; i++) {
    snprintf(c.lines[i].sku, sizeof c.lines[i].sku, "sku-%d", i + 1);
    c.lines[i].qty = i + 1;
    c.lines[i].price = 100;
  }
  c.line_count = lines;
  c.total = 100 * lines;
  deliver_event(d, &ORDER_CONFIRMED, &c);
}

static unsigned roll(driver *d, unsigned n) {
  return (unsigned)rand_r(&d->seed) % n;
}

/* What one pending command came to: mostly accepted. */
static void answer_a_command(driver *d) {
  size_t i = roll(d, (unsigned)d->live.command_count);
  bool accepted = roll(d, 4) != 0;
  d->now_us += 1000;
  esc__process_delivery in = {.kind = ESC_PROCESS_INPUT_OUTCOME,
                              .time_us = d->now_us,
                              .command_id = d->live.commands[i].id,
                              .accepted = accepted,
                              .code = accepted ? 0 : INVENTORY_ESHORT,
                              .message = accepted ? "" : "only 0 available"};
  deliver(d, &in);
}

static void fire_a_deadline(driver *d) {
  d->now_us += 1000;
  esc__process_delivery in = {.kind = ESC_PROCESS_INPUT_DEADLINE,
                              .time_us = d->now_us,
                              .deadline_id = d->live.deadlines[0].id};
  deliver(d, &in);
}

static void redeliver(driver *d) {
  const struct source *s = &d->kept[roll(d, (unsigned)d->nkept)];
  esc__process_delivery in = {.kind = ESC_PROCESS_INPUT_EVENT,
                              .time_us = s->rec.recorded_at_us,
                              .event = &s->rec};
  deliver(d, &in);
}

/* One random input; inputs the instance drops (re-deliveries, events
 * after its end) are part of the property too. */
static void random_input(driver *d) {
  unsigned r = roll(d, 12);
  if (r < 6 && d->live.command_count > 0)
    answer_a_command(d);
  else if (r < 7 && d->live.deadline_count > 0)
    fire_a_deadline(d);
  else if (r < 8 && d->nkept < KEPT_MAX)
    deliver_event(d, &ORDER_PAID, &(order_paid){100});
  else if (r < 9 && d->nkept < KEPT_MAX) {
    order_cancelled c = {"changed my mind", roll(d, 2) ? 100 : 0};
    deliver_event(d, &ORDER_CANCELLED, &c);
  } else if (r < 10 && d->nkept < KEPT_MAX)
    deliver_event(d, &ORDER_SHIPPED, &(order_shipped){"dhl", {{"", 0, 0}}, 0});
  else
    redeliver(d);
}

/* ------------------------------------------------------------------------
 * Loading and comparing
 * ------------------------------------------------------------------------ */

static esc_status load(const esc_process *p, const char *instance, size_t page,
                       esc__process_instance *out, struct esc__load_info *info,
                       esc_error *err) {
  esc_status rc = esc__process_instance_init(out, p, instance, err);
  if (rc == ESC_OK)
    rc = esc__process_instance_load(store, out, page, info, err);
  return rc;
}

static void load_ok(const esc_process *p, const char *instance, size_t page,
                    esc__process_instance *out, struct esc__load_info *info) {
  esc_error err = ESC_ERROR_INIT;
  if (load(p, instance, page, out, info, &err))
    fail_msg("load %s: %s", instance, err.msg);
}

/* Everything a fold builds, as bytes: the snapshot encoding itself (the
 * state through encode_state and all the bookkeeping). */
static void encoded(const esc__process_instance *inst, msgpack_sbuffer *sb) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  assert_int_equal(esc__process_snapshot_encode(inst, &pk), 0);
}

/* a and b are the same instance: version, the state's bytes (so a field
 * encode_state forgot would still show) and the encoded bookkeeping. */
static void assert_same(const esc__process_instance *a,
                        const esc__process_instance *b, const char *what,
                        const driver *d, int step) {
  msgpack_sbuffer ea, eb;
  if (a->version != b->version)
    fail_msg("%s %s (seed %u, step %d): version %" PRId64 " vs %" PRId64, what,
             d->instance, d->first_seed, step, a->version, b->version);
  if (memcmp(a->state, b->state, a->process->state_size) != 0)
    fail_msg("%s %s (seed %u, step %d): states differ at version %" PRId64,
             what, d->instance, d->first_seed, step, a->version);
  encoded(a, &ea);
  encoded(b, &eb);
  bool same = ea.size == eb.size && memcmp(ea.data, eb.data, ea.size) == 0;
  msgpack_sbuffer_destroy(&ea);
  msgpack_sbuffer_destroy(&eb);
  if (!same)
    fail_msg("%s %s (seed %u, step %d): bookkeeping differs at version "
             "%" PRId64,
             what, d->instance, d->first_seed, step, a->version);
}

/* Loaded from the snapshot and the tail vs folded from the start vs live;
 * returns how the snapshotted load went. */
static struct esc__load_info check_loads(driver *d, size_t page, int step) {
  esc__process_instance with, without;
  struct esc__load_info info, full;
  load_ok(&d->snap, d->instance, page, &with, &info);
  load_ok(&d->plain, d->instance, page, &without, &full);
  assert_false(info.snapshot_ignored);
  assert_int_equal(full.snapshot_version, 0);
  assert_int_equal(full.folded, d->live.version);
  assert_int_equal(info.folded + info.snapshot_version, d->live.version);
  assert_same(&with, &without, "snapshot+tail vs replay", d, step);
  assert_same(&with, &d->live, "snapshot+tail vs live", d, step);
  esc__process_instance_release(&with);
  esc__process_instance_release(&without);
  return info;
}

/* ------------------------------------------------------------------------
 * The property
 * ------------------------------------------------------------------------ */

enum { SEEDS = 40, STEPS = 30 };

static void snapshot_then_tail_equals_replay(void **state) {
  (void)state;
  static const size_t pages[] = {0, 3, 4};
  int from_snapshot = 0, snapshots = 0;
  for (unsigned seed = 1; seed <= SEEDS; seed++) {
    driver d;
    char instance[32];
    snprintf(instance, sizeof instance, "prop%u", seed);
    driver_init(&d, instance, 2 + (int)(seed % 5), seed);
    size_t page = pages[seed % 3];
    confirm(&d, 1 + (int)roll(&d, 3));
    for (int step = 0; step < STEPS; step++) {
      random_input(&d);
      from_snapshot += check_loads(&d, page, step).snapshot_version > 0;
    }
    snapshots += d.snapshots;
    driver_release(&d);
  }
  /* Not vacuous: most loads started from a snapshot. */
  print_message("%d snapshots taken, %d of %d loads from one\n", snapshots,
                from_snapshot, SEEDS * STEPS);
  assert_true(snapshots >= SEEDS);
  assert_true(from_snapshot >= SEEDS * STEPS / 2);
}

/* ------------------------------------------------------------------------
 * Only the tail is folded
 * ------------------------------------------------------------------------ */

/* Drives d until its stream holds at least n records. */
static void drive_to(driver *d, int64_t n) {
  confirm(d, 3);
  for (int i = 0; i < 500 && d->live.version < n; i++)
    random_input(d);
  if (d->live.version < n)
    fail_msg("%s (seed %u) stopped at %" PRId64 " records, want %" PRId64,
             d->instance, d->first_seed, d->live.version, n);
}

static int64_t snapshot_version(const char *instance) {
  char stream[ESC_STREAM_ID_MAX + 1];
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_process_stream_id("fulfillment", instance, stream,
                                         sizeof stream, &err),
                   ESC_OK);
  if (esc_snapshot_read(store, stream, &snap, &err))
    fail_msg("snapshot of %s: %s", stream, err.msg);
  int64_t v = snap.version;
  esc_snapshot_release(&snap);
  return v;
}

static void a_load_folds_only_the_tail(void **state) {
  (void)state;
  driver d;
  driver_init(&d, "tail", 4, 7);
  drive_to(&d, 12);
  int64_t at = snapshot_version("tail");
  assert_true(at >= 8 && at <= d.live.version);
  struct esc__load_info info = check_loads(&d, 0, 0);
  assert_int_equal(info.snapshot_version, at);
  assert_int_equal(info.folded, d.live.version - at);
  driver_release(&d);
}

/* The sample's own setting: an order's instance stays below 50 records,
 * so loading it never looks for a snapshot (no round trip more than
 * without snapshots), until it is long enough to have one. */
static void a_short_instance_is_loaded_without_a_snapshot_read(void **state) {
  (void)state;
  driver d;
  esc__process_instance inst;
  struct esc__load_info info;
  driver_init(&d, "short", 0, 3);
  order_fulfillment_init(&d.snap, &fopts);
  assert_int_equal(d.snap.snapshot_every, 50);
  drive_to(&d, 10);
  load_ok(&d.snap, "short", 0, &inst, &info);
  assert_false(info.snapshot_read);
  assert_int_equal(info.folded, d.live.version);
  esc__process_instance_release(&inst);
  /* With snapshot_every at or below its length, it does look. */
  d.snap.snapshot_every = (int)d.live.version;
  load_ok(&d.snap, "short", 0, &inst, &info);
  assert_true(info.snapshot_read);
  esc__process_instance_release(&inst);
  driver_release(&d);
}

/* ------------------------------------------------------------------------
 * Unusable snapshots
 * ------------------------------------------------------------------------ */

static void sql(const char *fmt, const char *instance) {
  char q[512];
  snprintf(q, sizeof q, fmt, schema, instance);
  esc_test_exec(pg, q);
}

#define SNAPSHOT_ROW "stream_id = 'process:fulfillment-' || '%s'"

/* Stores the live instance as the snapshot again, replacing any. */
static void fresh_snapshot(driver *d) {
  esc_error err = ESC_ERROR_INIT;
  sql("DELETE FROM %s.snapshots WHERE " SNAPSHOT_ROW, d->instance);
  if (esc__process_instance_snapshot(store, &d->live, &err))
    fail_msg("snapshot: %s", err.msg);
}

/* A snapshot whose state part decode_state refuses, after bookkeeping
 * that restores (so reset must undo it). */
static int pack_nil(const void *state, msgpack_packer *pk, void *userdata) {
  (void)state;
  (void)userdata;
  return msgpack_pack_nil(pk);
}

static void bad_state_snapshot(driver *d) {
  esc_process bad = d->snap;
  esc__process_instance shown = d->live; /* borrowed, never released */
  esc_error err = ESC_ERROR_INIT;
  bad.encode_state = pack_nil;
  shown.process = &bad;
  sql("DELETE FROM %s.snapshots WHERE " SNAPSHOT_ROW, d->instance);
  if (esc__process_instance_snapshot(store, &shown, &err))
    fail_msg("snapshot: %s", err.msg);
}

static void assert_full_fold(driver *d, const char *note) {
  esc__process_instance with, without;
  struct esc__load_info info, full;
  load_ok(&d->snap, d->instance, 0, &with, &info);
  load_ok(&d->plain, d->instance, 0, &without, &full);
  if (!info.snapshot_ignored || !strstr(info.snapshot_note, note))
    fail_msg("snapshot not set aside with \"%s\": ignored %d, note \"%s\"",
             note, info.snapshot_ignored, info.snapshot_note);
  assert_int_equal(info.snapshot_version, 0);
  assert_int_equal(info.folded, d->live.version);
  assert_same(&with, &without, note, d, 0);
  assert_same(&with, &d->live, note, d, 0);
  esc__process_instance_release(&with);
  esc__process_instance_release(&without);
}

static void an_unusable_snapshot_falls_back_to_a_full_fold(void **state) {
  (void)state;
  driver d;
  driver_init(&d, "corrupt", 3, 11);
  drive_to(&d, 9);
  static const struct {
    const char *set, *note;
  } cases[] = {
      /* Not msgpack at all (0xc1 is never used). */
      {"data = '\\xc1'::bytea", "failed to decode"},
      /* msgpack, but not an instance. */
      {"data = '\\x01'::bytea", "not an array of 8"},
      /* The runtime's format changed (the byte after the array header). */
      {"data = set_byte(data, 1, 2)", "another version of esc"},
      /* The process's state_version changed. */
      {"state_version = 99", "has state version 99, want 1"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char q[512];
    fresh_snapshot(&d);
    snprintf(q, sizeof q, "UPDATE %s.snapshots SET %s WHERE " SNAPSHOT_ROW,
             schema, cases[i].set, d.instance);
    esc_test_exec(pg, q);
    assert_full_fold(&d, cases[i].note);
  }
  /* The state part does not decode, after bookkeeping that did. */
  bad_state_snapshot(&d);
  assert_full_fold(&d, "fulfillment snapshot");
  driver_release(&d);
}

/* ------------------------------------------------------------------------
 * Truncated instance streams
 * ------------------------------------------------------------------------ */

static esc_status truncate_before(const char *instance, int64_t before,
                                  bool force, esc_error *err) {
  char stream[ESC_STREAM_ID_MAX + 1];
  esc_truncate_options o = ESC_TRUNCATE_OPTIONS_INIT;
  o.force = force;
  o.reason = "test";
  esc_process_stream_id("fulfillment", instance, stream, sizeof stream, err);
  return esc_stream_truncate_opts(store, stream, before, &o, NULL, err);
}

static void expect_truncated(const esc_process *p, const char *instance,
                             int64_t first_kept, const char *also) {
  esc__process_instance inst;
  struct esc__load_info info;
  esc_error err = ESC_ERROR_INIT;
  char want[128];
  esc_status rc = load(p, instance, 0, &inst, &info, &err);
  esc__process_instance_release(&inst);
  if (rc != ESC_ETRUNCATED)
    fail_msg("load %s: %s (%s), want ESC_ETRUNCATED", instance,
             esc_strerror(rc), err.msg);
  snprintf(want, sizeof want,
           "process:fulfillment-%s: stream truncated before version %" PRId64
           " and no snapshot covers it",
           instance, first_kept);
  if (!strstr(err.msg, want) || (also && !strstr(err.msg, also)))
    fail_msg("error \"%s\" does not say \"%s\" (and \"%s\")", err.msg, want,
             also ? also : "");
}

static void a_truncated_stream_needs_a_covering_snapshot(void **state) {
  (void)state;
  driver d;
  esc_error err = ESC_ERROR_INIT;
  driver_init(&d, "cut", 3, 5);
  drive_to(&d, 9);
  int64_t at = snapshot_version("cut");
  /* Covered: every removed record is in the snapshot. */
  assert_int_equal(truncate_before("cut", at + 1, false, &err), ESC_OK);
  esc__process_instance inst;
  struct esc__load_info info;
  load_ok(&d.snap, "cut", 0, &inst, &info);
  assert_int_equal(info.snapshot_version, at);
  assert_same(&inst, &d.live, "truncated, from its snapshot", &d, 0);
  esc__process_instance_release(&inst);
  /* Without snapshots, or with one that does not do, it cannot load. */
  expect_truncated(&d.plain, "cut", at + 1, NULL);
  sql("UPDATE %s.snapshots SET state_version = 99 WHERE " SNAPSHOT_ROW, "cut");
  expect_truncated(&d.snap, "cut", at + 1, "has state version 99");
  driver_release(&d);

  /* Forced past a stream that never had a snapshot. */
  driver_init(&d, "cut-bare", 0, 5);
  drive_to(&d, 6);
  assert_int_equal(truncate_before("cut-bare", 4, true, &err), ESC_OK);
  d.plain.snapshot_every = 3; /* looking for a snapshot finds none */
  expect_truncated(&d.plain, "cut-bare", 4, NULL);
  driver_release(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(snapshot_then_tail_equals_replay),
      cmocka_unit_test(a_load_folds_only_the_tail),
      cmocka_unit_test(a_short_instance_is_loaded_without_a_snapshot_read),
      cmocka_unit_test(an_unusable_snapshot_falls_back_to_a_full_fold),
      cmocka_unit_test(a_truncated_stream_needs_a_covering_snapshot),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

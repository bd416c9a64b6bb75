/*
 * Unit tests: the counter decider (tests/support/counter.c) through the
 * test kit, and the test kit itself (testkit/src): each of its checks must
 * report a mismatch, with a message that shows what differs.
 */
#include "counter.h"

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

/* The kit's checks, which return a message instead of failing the test. */
#include "testkit_int.h"

/* In a given list: a Reset instead of an Incremented. */
#define RESET INT64_MIN

/* Folds increments (or RESET) into the scenario; stops at 0. */
static void given_history(esc_scenario *s, const int64_t *history) {
  for (size_t i = 0; history[i] != 0; i++) {
    if (history[i] == RESET)
      esc_given(s, &counter_reset, &(counter_reset_t){0});
    else
      esc_given(s, &counter_incremented,
                &(counter_incremented_t){.by = history[i]});
  }
}

static void assert_has(const char *msg, const char *part) {
  if (!msg)
    fail_msg("expected a failure containing \"%s\", got none", part);
  if (!strstr(msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

/* ------------------------------------------------------------------------
 * Deciding, table-driven
 * ------------------------------------------------------------------------ */

static void test_decide_table(void **state) {
  (void)state;
  static const struct {
    const char *name;
    int64_t history[6]; /* ends at 0 */
    counter_cmd cmd;
    int64_t emits; /* > 0: Incremented {by}; RESET: Reset; 0: nothing */
    int reject;    /* > 0: the code, and msg must appear in the message */
    const char *msg;
  } cases[] = {
      {"increment a new counter", {0}, {COUNTER_INCREMENT, 5}, 5, 0, NULL},
      {"increment after history",
       {2, 3, 0},
       {COUNTER_INCREMENT, 1},
       1,
       0,
       NULL},
      {"increment by zero",
       {0},
       {COUNTER_INCREMENT, 0},
       0,
       COUNTER_EINVAL,
       "increment must be positive, got 0"},
      {"increment by a negative",
       {4, 0},
       {COUNTER_INCREMENT, -3},
       0,
       COUNTER_EINVAL,
       "increment must be positive, got -3"},
      {"reset a counter with a value",
       {7, 0},
       {COUNTER_RESET, 0},
       RESET,
       0,
       NULL},
      {"reset a new counter is a no-op", {0}, {COUNTER_RESET, 0}, 0, 0, NULL},
      {"reset a reset counter is a no-op",
       {7, RESET, 0},
       {COUNTER_RESET, 0},
       0,
       0,
       NULL},
      {"reset after a reset and an increment",
       {7, RESET, 1, 0},
       {COUNTER_RESET, 0},
       RESET,
       0,
       NULL},
      {"add nothing", {9, 0}, {COUNTER_ADD_NOTHING, 0}, 0, 0, NULL},
      {"add nothing ignores by", {0}, {COUNTER_ADD_NOTHING, -1}, 0, 0, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].name);
    esc_scenario *s = esc_scenario_new(counter_decider());
    given_history(s, cases[i].history);
    esc_when(s, &cases[i].cmd);
    if (cases[i].reject) {
      esc_then_rejected(s, cases[i].reject, cases[i].msg);
      assert_int_equal(esc_scenario_emitted(s), 0);
    } else if (cases[i].emits == RESET) {
      esc_then(s, &counter_reset, &(counter_reset_t){0});
      esc_then_end(s);
      assert_int_equal(esc_scenario_emitted(s), 1);
    } else if (cases[i].emits > 0) {
      esc_then(s, &counter_incremented,
               &(counter_incremented_t){.by = cases[i].emits});
      esc_then_end(s);
      assert_int_equal(esc_scenario_emitted(s), 1);
    } else {
      esc_then_end(s);
      assert_int_equal(esc_scenario_emitted(s), 0);
    }
    esc_scenario_free(s);
  }
}

/* Several commands in one scenario: each esc_when starts a new decision
 * on the same state. */
static void test_when_again(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  esc_when(s, &(counter_cmd){COUNTER_INCREMENT, 2});
  esc_then(s, &counter_incremented, &(counter_incremented_t){.by = 2});
  esc_then_end(s);
  esc_when(s, &(counter_cmd){COUNTER_INCREMENT, 0});
  esc_then_rejected(s, COUNTER_EINVAL, "got 0");
  esc_when(s, &(counter_cmd){COUNTER_RESET, 0});
  esc_then_end(s); /* nothing was folded: the value is still 0 */
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * Evolve and state
 * ------------------------------------------------------------------------ */

static void test_state(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  const counter_state *st = esc_scenario_state(s);
  assert_int_equal(st->value, 0);
  assert_int_equal(st->events, 0);
  given_history(s, (const int64_t[]){3, 4, RESET, 10, 0});
  assert_int_equal(st->value, 10);
  assert_int_equal(st->events, 4);
  /* Deciding does not fold: the state stays. */
  esc_when(s, &(counter_cmd){COUNTER_INCREMENT, 1});
  assert_int_equal(st->value, 10);
  esc_scenario_free(s);
}

/* The stored form: {"by": n}, readable from JSON as a projection or an
 * old event would be. */
static void test_given_json(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  esc_given_json(s, "Incremented", 1, "{\"by\": 7}");
  esc_given_json(s, "Incremented", 1, "{\"by\": -2, \"extra\": [1]}");
  esc_given_json(s, "Reset", 1, "{}");
  esc_given_json(s, "Incremented", 1, "{\"by\": 9000000000}");
  const counter_state *st = esc_scenario_state(s);
  assert_int_equal(st->value, 9000000000LL);
  assert_int_equal(st->events, 4);
  esc_scenario_free(s);
}

static void test_decode_errors(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  char *msg = esc__scenario_given_json(s, "Incremented", 1, "{\"by\": \"x\"}");
  assert_has(msg, "given: event 1 (Incremented) failed to fold");
  assert_has(msg, "\"by\" must be an integer");
  free(msg);
  msg = esc__scenario_given_json(s, "Incremented", 1, "{}");
  assert_has(msg, "given: event 1 (Incremented)");
  free(msg);
  /* A failed given is not folded and does not take a version. */
  esc_given(s, &counter_incremented, &(counter_incremented_t){.by = 1});
  msg = esc__scenario_given_json(s, "Nope", 1, "{}");
  assert_has(msg, "given: event 2 (Nope) failed to fold");
  free(msg);
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * Snapshots and the registry
 * ------------------------------------------------------------------------ */

static void test_deciders(void **state) {
  (void)state;
  const esc_decider *plain = counter_decider();
  const esc_decider *snap = counter_decider_snapshots();
  assert_ptr_equal(plain, counter_decider());
  assert_string_equal(plain->category, "counter");
  assert_int_equal(plain->snapshot_every, 0);
  assert_int_equal(snap->snapshot_every, 100);
  assert_int_equal(snap->state_version, 1);
  assert_ptr_equal(plain->events, counter_events());
  assert_ptr_equal(snap->events, counter_events());
  esc_decider d;
  counter_decider_init(&d, 7);
  assert_int_equal(d.snapshot_every, 7);
  assert_ptr_equal(d.events, counter_events());
  assert_ptr_equal(esc_event_registry_find(counter_events(), "Incremented"),
                   &counter_incremented);
  assert_ptr_equal(esc_event_registry_find(counter_events(), "Reset"),
                   &counter_reset);
  assert_null(esc_event_registry_find(counter_events(), "Decremented"));
}

static void *get_registry(void *arg) {
  (void)arg;
  return (void *)counter_events();
}

/* First use from several threads at once builds one registry. */
static void test_registry_threads(void **state) {
  (void)state;
  pthread_t t[4];
  void *got[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, get_registry, NULL), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(t[i], &got[i]), 0);
  for (int i = 0; i < 4; i++)
    assert_ptr_equal(got[i], counter_events());
}

/* Packs the state with the decider's encoder and reads it back. */
static void test_snapshot_codec(void **state) {
  (void)state;
  const esc_decider *d = counter_decider_snapshots();
  counter_state in = {.value = -42, .events = 123456789012LL};
  counter_state out = {0, 0};
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  assert_int_equal(d->encode_state(&in, &pk), 0);

  char *json = NULL;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_msgpack_to_json(sbuf.data, sbuf.size, NULL, &json, &err),
                   ESC_OK);
  assert_string_equal(json, "{\"value\":-42,\"events\":123456789012}");
  free(json);

  msgpack_zone zone;
  msgpack_object obj;
  assert_true(msgpack_zone_init(&zone, 256));
  assert_int_equal(msgpack_unpack(sbuf.data, sbuf.size, NULL, &zone, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(d->decode_state(&obj, &out, &err), ESC_OK);
  assert_int_equal(out.value, -42);
  assert_int_equal(out.events, 123456789012LL);
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&sbuf);

  /* A snapshot of another shape is refused, not half read. */
  void *mp = NULL;
  size_t len = 0;
  assert_int_equal(esc_json_to_msgpack("{\"value\": 1}", &mp, &len, &err),
                   ESC_OK);
  assert_true(msgpack_zone_init(&zone, 256));
  assert_int_equal(msgpack_unpack(mp, len, NULL, &zone, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(d->decode_state(&obj, &out, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "counter snapshot"));
  msgpack_zone_destroy(&zone);
  free(mp);
}

/* ------------------------------------------------------------------------
 * The kit detects what it should
 * ------------------------------------------------------------------------ */

/* A scenario where the counter at 0 was asked to increment by 1. */
static esc_scenario *incremented_by_one(void) {
  esc_scenario *s = esc_scenario_new(counter_decider());
  esc_when(s, &(counter_cmd){COUNTER_INCREMENT, 1});
  return s;
}

static void test_kit_then_mismatch(void **state) {
  (void)state;
  esc_scenario *s = incremented_by_one();
  char *msg = esc__scenario_then(s, &counter_incremented,
                                 &(counter_incremented_t){.by = 2});
  assert_non_null(msg);
  assert_string_equal(msg, "then: event 1: expected Incremented {\"by\":2} "
                           "but got Incremented {\"by\":1}");
  free(msg);
  msg = esc__scenario_then(s, &counter_reset, &(counter_reset_t){0});
  assert_string_equal(msg, "then: event 1: expected Reset {} but got "
                           "Incremented {\"by\":1}");
  free(msg);
  /* A mismatch does not consume the event. */
  assert_null(esc__scenario_then(s, &counter_incremented,
                                 &(counter_incremented_t){.by = 1}));
  msg = esc__scenario_then(s, &counter_incremented,
                           &(counter_incremented_t){.by = 1});
  assert_string_equal(msg, "then: event 2: expected Incremented {\"by\":1} "
                           "but only 1 event was emitted");
  free(msg);
  esc_scenario_free(s);
}

/* Same name, other schema version: the versions show. */
static void test_kit_then_schema_version(void **state) {
  (void)state;
  esc_event_type v2 = counter_incremented;
  v2.schema_version = 2;
  esc_scenario *s = incremented_by_one();
  char *msg = esc__scenario_then(s, &v2, &(counter_incremented_t){.by = 1});
  assert_string_equal(msg, "then: event 1: expected Incremented v2 "
                           "{\"by\":1} but got Incremented v1 {\"by\":1}");
  free(msg);
  esc_scenario_free(s);
}

/* Payloads that render alike but differ in bytes get a hint: "by" as a
 * uint64 that takes 9 bytes instead of a fixint. */
static int by_wide(const void *event, msgpack_packer *pk) {
  const counter_incremented_t *e = event;
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "by");
  return msgpack_pack_fix_uint64(pk, (uint64_t)e->by);
}

static void test_kit_then_same_json(void **state) {
  (void)state;
  esc_event_type wide = counter_incremented;
  wide.encode = by_wide;
  esc_scenario *s = incremented_by_one();
  char *msg = esc__scenario_then(s, &wide, &(counter_incremented_t){.by = 1});
  assert_string_equal(msg, "then: event 1: expected Incremented {\"by\":1} "
                           "but got Incremented {\"by\":1} (same JSON, "
                           "different msgpack bytes)");
  free(msg);
  esc_scenario_free(s);
}

static void test_kit_then_none_emitted(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  esc_when(s, &(counter_cmd){COUNTER_ADD_NOTHING, 0});
  char *msg = esc__scenario_then(s, &counter_incremented,
                                 &(counter_incremented_t){.by = 1});
  assert_string_equal(msg, "then: event 1: expected Incremented {\"by\":1} "
                           "but no events were emitted");
  free(msg);
  msg = esc__scenario_then_rejected(s, COUNTER_EINVAL, NULL);
  assert_string_equal(msg, "then_rejected: expected rejection 1 but the "
                           "command was accepted with no events");
  free(msg);
  assert_null(esc__scenario_then_end(s));
  esc_scenario_free(s);
}

static void test_kit_then_end(void **state) {
  (void)state;
  esc_scenario *s = incremented_by_one();
  char *msg = esc__scenario_then_end(s);
  assert_string_equal(msg, "then_end: 1 more event emitted: "
                           "Incremented {\"by\":1}");
  free(msg);
  assert_null(esc__scenario_then(s, &counter_incremented,
                                 &(counter_incremented_t){.by = 1}));
  assert_null(esc__scenario_then_end(s));
  esc_scenario_free(s);
}

static void test_kit_rejected(void **state) {
  (void)state;
  esc_scenario *s = incremented_by_one();
  char *msg = esc__scenario_then_rejected(s, COUNTER_EINVAL, "positive");
  assert_string_equal(msg, "then_rejected: expected rejection 1 but the "
                           "command was accepted with 1 event: "
                           "Incremented {\"by\":1}");
  free(msg);
  esc_scenario_free(s);

  s = esc_scenario_new(counter_decider());
  esc_when(s, &(counter_cmd){COUNTER_INCREMENT, -5});
  assert_null(esc__scenario_then_rejected(s, COUNTER_EINVAL, NULL));
  assert_null(esc__scenario_then_rejected(s, COUNTER_EINVAL, "got -5"));
  msg = esc__scenario_then_rejected(s, 7, NULL);
  assert_string_equal(msg, "then_rejected: expected rejection 7 but got "
                           "rejection 1: increment must be positive, got -5");
  free(msg);
  msg = esc__scenario_then_rejected(s, COUNTER_EINVAL, "got -6");
  assert_string_equal(msg, "then_rejected: rejection 1: message \"increment "
                           "must be positive, got -5\" lacks \"got -6\"");
  free(msg);
  msg = esc__scenario_then(s, &counter_incremented,
                           &(counter_incremented_t){.by = -5});
  assert_string_equal(msg, "then: event 1: expected Incremented {\"by\":-5} "
                           "but the command was rejected with code 1: "
                           "increment must be positive, got -5");
  free(msg);
  msg = esc__scenario_then_end(s);
  assert_has(msg, "then_end: expected the command to be accepted but it was "
                  "rejected with code 1");
  free(msg);
  assert_int_equal(esc_scenario_emitted(s), 0);
  esc_scenario_free(s);
}

static void test_kit_not_decided(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  char *msg = esc__scenario_then_end(s);
  assert_has(msg, "then_end: no command was decided");
  free(msg);
  msg = esc__scenario_then(s, &counter_reset, &(counter_reset_t){0});
  assert_has(msg, "then: no command was decided");
  free(msg);
  msg = esc__scenario_then_rejected(s, 1, NULL);
  assert_has(msg, "then_rejected: no command was decided");
  free(msg);
  assert_int_equal(esc_scenario_emitted(s), 0);
  esc_scenario_free(s);
}

static void test_kit_bad_input(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(counter_decider());
  char *msg = esc__scenario_given_json(s, "Incremented", 1, "{\"by\": tru}");
  assert_has(msg, "given: event 1 (Incremented): JSON at line 1");
  free(msg);
  /* 0xc1 is never msgpack. */
  msg = esc__scenario_given_stored(s, "Incremented", 1, "\xc1", 1);
  assert_has(msg, "given: event 1 (Incremented) failed to fold");
  free(msg);
  esc_scenario_free(s);

  msg = esc__event_render("X", 1, false, "\x92\x01", 2);
  assert_has(msg, "X <payload does not render: ");
  free(msg);
  msg = esc__event_render("X", 3, true, "\x90", 1);
  assert_string_equal(msg, "X v3 []");
  free(msg);

  esc_decider broken = *counter_decider();
  broken.decide = NULL;
  assert_null(esc__scenario_new(&broken, &msg));
  assert_has(msg, "scenario: the decider lacks");
  free(msg);
  assert_null(esc__scenario_new(NULL, &msg));
  assert_has(msg, "scenario: the decider is NULL");
  free(msg);
  esc_scenario_free(NULL);
}

/* An event decide cannot encode fails esc_when. */
static int refuse(const void *event, msgpack_packer *pk) {
  (void)event;
  (void)pk;
  return -1;
}

static const esc_event_type unencodable = {
    "Unencodable", 1, sizeof(counter_incremented_t), refuse, NULL, NULL};

static int decide_unencodable(const void *state, const void *command,
                              esc_decision *d) {
  (void)state;
  (void)command;
  esc_status st =
      esc_decision_emit(d, &unencodable, &(counter_incremented_t){.by = 1});
  if (st != ESC_OK)
    return esc_decision_reject(d, 99, "cannot encode");
  return 0;
}

static void test_kit_when_encode_failure(void **state) {
  (void)state;
  esc_decider d = *counter_decider();
  d.decide = decide_unencodable;
  esc_scenario *s = esc_scenario_new(&d);
  char *msg = esc__scenario_when(s, &(counter_cmd){COUNTER_INCREMENT, 1});
  assert_has(msg, "when: ");
  assert_has(msg, "Unencodable");
  free(msg);
  assert_int_equal(esc_scenario_emitted(s), 0);
  esc_scenario_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decide_table),
      cmocka_unit_test(test_when_again),
      cmocka_unit_test(test_state),
      cmocka_unit_test(test_given_json),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_deciders),
      cmocka_unit_test(test_registry_threads),
      cmocka_unit_test(test_snapshot_codec),
      cmocka_unit_test(test_kit_then_mismatch),
      cmocka_unit_test(test_kit_then_schema_version),
      cmocka_unit_test(test_kit_then_same_json),
      cmocka_unit_test(test_kit_then_none_emitted),
      cmocka_unit_test(test_kit_then_end),
      cmocka_unit_test(test_kit_rejected),
      cmocka_unit_test(test_kit_not_decided),
      cmocka_unit_test(test_kit_bad_input),
      cmocka_unit_test(test_kit_when_encode_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests: events, registries, deciders and projections declared as
 * lists (<esc/event.h> ESC_EVENT_STRUCT / ESC_EVENT_DEFINE /
 * ESC_EVENTS_DECLARE / ESC_EVENTS_DEFINE / ESC_EVENT_REGISTRY /
 * ESC_UPCAST_ADD_STR, <esc/command.h> ESC_DECIDER and the decider's
 * registry function, <esc/projection.h> ESC_PROJECTION). A list must give
 * exactly what the equivalent hand-written table gives: the same bytes,
 * the same checks and messages. No servers.
 */
#include <esc/projection.h>
#include <esc/testkit.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------------
 * A domain declared as lists, and the same events written by hand
 * ------------------------------------------------------------------------ */

#define NOTED(X)                                                               \
  X(STR, text, 15)                                                             \
  X(I64, n)                                                                    \
  X(BOOL, flag)                                                                \
  X(UUID, id)                                                                  \
  X(TIME, at) X(OPT_STR, note, 7) X(OPT_I64, extra) X(OPT_BOOL, seen)          \
      X(OPT_UUID, ref) X(OPT_TIME, when)
#define RENAMED(X) X(STR, name, 31)
#define NOTE_EVENTS(E)                                                         \
  E(noted, "Noted", 1, NOTED, NULL)                                            \
  E(renamed, "Renamed", 3, RENAMED, renamed_old)                               \
  E(wiped, "Wiped", 1, ESC_NO_FIELDS, NULL)
ESC_EVENTS_DECLARE(note_events, NOTE_EVENTS)
ESC_UPCAST_ADD_STR(renamed_old, "name", "(unnamed)")
ESC_EVENTS_DEFINE(note_events, NOTE_EVENTS)

/* One event on its own, static, from a list another event uses too. */
ESC_EVENT_STRUCT(solo_t, RENAMED);
ESC_STATIC_EVENT_DEFINE(solo, "Solo", 1, solo_t, RENAMED, NULL);

/* The struct ESC_EVENT_STRUCT makes, member by member. */
typedef struct hand_t {
  char text[16];
  int64_t n;
  bool flag;
  esc_uuid id;
  int64_t at;
  char note[8];
  int64_t extra;
  bool seen;
  esc_uuid ref;
  int64_t when;
} hand_t;
_Static_assert(sizeof(noted_t) == sizeof(hand_t), "layout");
_Static_assert(offsetof(noted_t, note) == offsetof(hand_t, note), "layout");
_Static_assert(sizeof(((noted_t *)0)->text) == 16, "STR holds maxlen + 1");
_Static_assert(offsetof(noted_t, when) == offsetof(hand_t, when), "layout");

static const esc_field hand_fields[] = {
    ESC_FIELD_STR(hand_t, text, "text", 15, ESC_REQUIRED),
    ESC_FIELD_I64(hand_t, n, "n", ESC_REQUIRED),
    ESC_FIELD_BOOL(hand_t, flag, "flag", ESC_REQUIRED),
    ESC_FIELD_UUID(hand_t, id, "id", ESC_REQUIRED),
    ESC_FIELD_TIME(hand_t, at, "at", ESC_REQUIRED),
    ESC_FIELD_STR(hand_t, note, "note", 7, ESC_OPTIONAL),
    ESC_FIELD_I64(hand_t, extra, "extra", ESC_OPTIONAL),
    ESC_FIELD_BOOL(hand_t, seen, "seen", ESC_OPTIONAL),
    ESC_FIELD_UUID(hand_t, ref, "ref", ESC_OPTIONAL),
    ESC_FIELD_TIME(hand_t, when, "when", ESC_OPTIONAL),
    ESC_FIELD_END};
ESC_STATIC_EVENT_TYPE(hand_noted, "Noted", 1, hand_t, hand_fields, NULL);

static char *json_of(const esc_event_type *t, const void *e) {
  esc_error err = ESC_ERROR_INIT;
  char *json = NULL;
  if (esc_event_to_json(t, e, &json, &err) != ESC_OK)
    fail_msg("to_json: %s", err.msg);
  return json;
}

static void encode(const esc_event_type *t, const void *e, void **data,
                   size_t *len) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_event_encode(t, e, data, len, &err) != ESC_OK)
    fail_msg("encode: %s", err.msg);
}

/* Decodes json, stored as type at schema version, through the list's
 * registry into out (its strings are copies: the bytes can go). */
static esc_status decode_stored(const char *type_name, int32_t version,
                                const char *json, void *out,
                                const esc_event_type **type, esc_error *err) {
  void *bytes = NULL;
  size_t len = 0;
  msgpack_zone zone;
  assert_int_equal(esc_json_to_msgpack(json, &bytes, &len, err), ESC_OK);
  esc_recorded_event rec = {.stream_id = "note-1",
                            .stream_version = 1,
                            .type = type_name,
                            .schema_version = version,
                            .data = bytes,
                            .data_len = len};
  assert_true(msgpack_zone_init(&zone, 1024));
  esc_status rc = esc_event_decode(note_events(), &rec, &zone, out, type, err);
  msgpack_zone_destroy(&zone);
  free(bytes);
  return rc;
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* Same bytes as the hand-written table, both when the optional fields
 * are set and when they are left out. */
static void test_same_bytes_as_the_table(void **state) {
  (void)state;
  noted_t e = {.text = "hi", .n = -3, .flag = true, .at = 17};
  hand_t h = {.text = "hi", .n = -3, .flag = true, .at = 17};
  void *a = NULL, *b = NULL;
  size_t alen = 0, blen = 0;
  for (int round = 0; round < 2; round++) {
    encode(&noted, &e, &a, &alen);
    encode(&hand_noted, &h, &b, &blen);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);
    snprintf(e.note, sizeof e.note, "x");
    snprintf(h.note, sizeof h.note, "x");
    e.extra = h.extra = 9;
    e.seen = h.seen = true;
    e.when = h.when = 5;
  }
  char *json = json_of(&noted, &e);
  assert_string_equal(json, "{\"text\":\"hi\",\"n\":-3,\"flag\":true,"
                            "\"id\":\"00000000-0000-0000-0000-000000000000\","
                            "\"at\":17,\"note\":\"x\",\"extra\":9,"
                            "\"seen\":true,\"when\":5}");
  free(json);
}

/* The table's checks and messages: a required key missing, a string too
 * long on encode; a round trip through decode. */
static void test_checks_and_round_trip(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  noted_t e = {.text = "0123456789abcdef"}; /* 16 bytes: one too many */
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(esc_event_encode(&noted, &e, &data, &len, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "\"text\""));
  assert_null(data);

  noted_t out;
  const esc_event_type *type = NULL;
  assert_int_equal(decode_stored("Noted", 1,
                                 "{\"text\":\"a\",\"n\":1,\"flag\":false,"
                                 "\"id\":\"0f8fad5b-d9cb-469f-a165-"
                                 "70867728950e\"}",
                                 &out, &type, &err),
                   ESC_EINVAL); /* "at" is required */
  assert_non_null(strstr(err.msg, "\"at\""));
  assert_non_null(strstr(err.msg, "missing"));

  e = (noted_t){.text = "ok", .n = 7, .at = 1, .extra = 2};
  char *json = json_of(&noted, &e);
  assert_int_equal(decode_stored("Noted", 1, json, &out, &type, &err), ESC_OK);
  free(json);
  assert_ptr_equal(type, &noted);
  assert_string_equal(out.text, "ok");
  assert_int_equal(out.n, 7);
  assert_int_equal(out.extra, 2);
  assert_string_equal(out.note, "");
}

/* ESC_NO_FIELDS: an empty map; ESC_UPCAST_ADD_STR: old payloads get the
 * key, current ones keep theirs. */
static void test_no_fields_and_upcast(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  char *json = json_of(&wiped, &(wiped_t){0});
  assert_string_equal(json, "{}");
  free(json);
  json = json_of(&solo, &(solo_t){.name = "one"});
  assert_string_equal(json, "{\"name\":\"one\"}");
  free(json);
  assert_string_equal(solo.name, "Solo");
  assert_int_equal(renamed.schema_version, 3);
  renamed_t out;
  const esc_event_type *type = NULL;
  assert_int_equal(decode_stored("Renamed", 1, "{}", &out, &type, &err),
                   ESC_OK);
  assert_string_equal(out.name, "(unnamed)");
  assert_int_equal(
      decode_stored("Renamed", 1, "{\"name\":\"kept\"}", &out, &type, &err),
      ESC_OK);
  assert_string_equal(out.name, "kept");
}

/* ------------------------------------------------------------------------
 * Registries built once
 * ------------------------------------------------------------------------ */

static void test_registry_of_the_list(void **state) {
  (void)state;
  const esc_event_registry *reg = note_events();
  assert_non_null(reg);
  assert_ptr_equal(note_events(), reg);
  assert_ptr_equal(esc_event_registry_find(reg, "Noted"), &noted);
  assert_ptr_equal(esc_event_registry_find(reg, "Renamed"), &renamed);
  assert_ptr_equal(esc_event_registry_find(reg, "Wiped"), &wiped);
  assert_null(esc_event_registry_find(reg, "Other"));
}

/* Racing first calls all get the one registry that was kept. */
static esc_event_registry *race_slot;
static const esc_event_type *const race_types[] = {&noted, &wiped, NULL};

static void *first_call(void *arg) {
  (void)arg;
  return (void *)esc_event_registry_once(&race_slot, race_types);
}

static void test_registry_once_races(void **state) {
  (void)state;
  pthread_t t[8];
  void *got[8];
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_create(&t[i], NULL, first_call, NULL), 0);
  for (int i = 0; i < 8; i++)
    assert_int_equal(pthread_join(t[i], &got[i]), 0);
  assert_non_null(got[0]);
  for (int i = 1; i < 8; i++)
    assert_ptr_equal(got[i], got[0]);
  assert_ptr_equal(race_slot, got[0]);
  esc_event_registry_free(race_slot);
}

/* Types that cannot be registered together: NULL each time, nothing
 * kept (the reason goes to stderr). */
static void test_registry_once_refuses(void **state) {
  (void)state;
  static esc_event_registry *slot;
  static const esc_event_type *const clash[] = {&noted, &hand_noted, NULL};
  assert_null(esc_event_registry_once(&slot, clash));
  assert_null(esc_event_registry_once(&slot, clash));
  assert_null(slot);
}

/* ------------------------------------------------------------------------
 * Deciders and projections without a build step
 * ------------------------------------------------------------------------ */

typedef struct note_state {
  int64_t total;
  int notes;
} note_state;

typedef struct note_cmd {
  int64_t n;
} note_cmd;

static void note_evolve(void *state, const esc_event *ev) {
  note_state *s = state;
  if (ev->type == &noted) {
    s->total += ((const noted_t *)ev->data)->n;
    s->notes++;
  }
}

static int note_decide(const void *state, const void *command,
                       esc_decision *d) {
  const note_cmd *c = command;
  (void)state;
  if (c->n < 0)
    return esc_decision_reject(d, 1, "negative: %lld", (long long)c->n);
  return (int)esc_decision_emit(d, &noted, &(noted_t){.text = "t", .n = c->n});
}

const esc_decider *note_decider(void);
const esc_projection *note_projection(void);

/* No init: the runtime's zeroed state is the initial one. */
ESC_DECIDER(note_decider, .category = "note", .state_size = sizeof(note_state),
            .registry = note_events, .evolve = note_evolve,
            .decide = note_decide)

static void test_decider_without_build(void **state) {
  (void)state;
  const esc_decider *d = note_decider();
  assert_ptr_equal(d, note_decider());
  assert_null(d->events);
  assert_null(d->init);
  assert_ptr_equal(esc_decider_events(d), note_events());
  esc_scenario *s = esc_scenario_new(d);
  const note_state *st = esc_scenario_state(s);
  assert_int_equal(st->total, 0);
  assert_int_equal(st->notes, 0);
  esc_given(s, &noted, &(noted_t){.text = "a", .n = 5});
  esc_when(s, &(note_cmd){2});
  esc_then(s, &noted, &(noted_t){.text = "t", .n = 2});
  esc_then_end(s);
  assert_int_equal(st->total, 5);
  esc_when(s, &(note_cmd){-1});
  esc_then_rejected(s, 1, "negative: -1");
  esc_scenario_free(s);
}

/* events wins over registry; neither is no registry. */
static void test_decider_events(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *own = esc_event_registry_of(race_types, &err);
  assert_non_null(own);
  esc_decider d = {.category = "note", .registry = note_events};
  d.events = own;
  assert_ptr_equal(esc_decider_events(&d), own);
  d.events = NULL;
  assert_ptr_equal(esc_decider_events(&d), note_events());
  d.registry = NULL;
  assert_null(esc_decider_events(&d));
  assert_null(esc_decider_events(NULL));
  esc_event_registry_free(own);
}

static esc_status note_project(esc_projection_ctx *ctx, const esc_event *ev,
                               void *userdata, esc_error *err) {
  (void)ev, (void)userdata, (void)err;
  return esc_ctx_cmd(ctx, "PING", NULL);
}

static const char *const note_categories[] = {"note", NULL};
ESC_PROJECTION(note_projection, .name = "notes", .version = 2,
               .categories = note_categories, .registry = note_events,
               .handle = note_project)

static void test_projection_without_build(void **state) {
  (void)state;
  const esc_projection *p = note_projection();
  assert_ptr_equal(p, note_projection());
  assert_string_equal(p->name, "notes");
  assert_int_equal(p->version, 2);
  assert_ptr_equal(p->categories, note_categories);
  assert_null(p->events);
  assert_ptr_equal(p->registry(), note_events());
  assert_ptr_equal(p->handle, note_project);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_bytes_as_the_table),
      cmocka_unit_test(test_checks_and_round_trip),
      cmocka_unit_test(test_no_fields_and_upcast),
      cmocka_unit_test(test_registry_of_the_list),
      cmocka_unit_test(test_registry_once_races),
      cmocka_unit_test(test_registry_once_refuses),
      cmocka_unit_test(test_decider_without_build),
      cmocka_unit_test(test_decider_events),
      cmocka_unit_test(test_projection_without_build),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

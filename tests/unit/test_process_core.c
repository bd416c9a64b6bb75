/*
 * Unit tests: the process manager core (processes/), without servers:
 * names and the instance stream id, deterministic ids, the decisions
 * object, the instance stream's records (round trip, hostile bytes) and
 * handling inputs (what is dropped, what is pending, a reload from the
 * records giving the same instance).
 */
#include "counter.h"
#include <esc_internal/process.h>

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------------------
 * A toy process: mirrors a counter's increments into "counter-copy-<id>"
 * (Incremented by 99 fails the input; Reset ends the instance)
 * ------------------------------------------------------------------------ */

typedef struct mirror_state {
  int64_t seen, outcomes, fired;
  bool reset;
} mirror_state;

static int encode_counter(const void *command, msgpack_packer *pk) {
  const counter_cmd *c = command;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "kind");
  msgpack_pack_int(pk, (int)c->kind);
  esc_pack_key(pk, "by");
  return msgpack_pack_int64(pk, c->by);
}

static esc_status decode_counter(const msgpack_object *obj, void *command,
                                 esc_error *err) {
  counter_cmd *c = command;
  int64_t kind;
  if (!esc_map_i64(obj, "kind", &kind) || !esc_map_i64(obj, "by", &c->by))
    return esc_error_set(err, ESC_EINVAL, "CounterCommand: kind and by");
  c->kind = (counter_cmd_kind)kind;
  return ESC_OK;
}

static esc_process_command_type counter_type = {"CounterCommand", NULL,
                                                sizeof(counter_cmd),
                                                encode_counter, decode_counter};
static esc_process_command_type other_type = {
    "OtherCommand", NULL, sizeof(counter_cmd), encode_counter, decode_counter};

static bool correlate(const esc_event *e, char *instance, size_t size,
                      void *userdata) {
  (void)userdata;
  const char *dash = strchr(e->recorded->stream_id, '-');
  if (!dash || strcmp(dash + 1, "ignored") == 0)
    return false;
  snprintf(instance, size, "%s", dash + 1);
  return true;
}

static void evolve(void *state, const esc_process_input *in, void *userdata) {
  mirror_state *s = state;
  (void)userdata;
  if (in->event && in->event->type == &counter_reset)
    s->reset = true;
  else if (in->event)
    s->seen++;
  else if (in->outcome)
    s->outcomes++;
  else
    s->fired++;
}

static esc_status decide(const void *state, const esc_process_input *in,
                         esc_process_decisions *d, void *userdata) {
  (void)state;
  (void)userdata;
  if (!in->event || in->event->type != &counter_incremented)
    return ESC_OK;
  const counter_incremented_t *e = in->event->data;
  if (e->by == 99)
    return esc_process_fail(d, "by 99 is not mirrored");
  char stream[64];
  snprintf(stream, sizeof stream, "counter-copy-%s", in->instance);
  counter_cmd c = {COUNTER_INCREMENT, e->by};
  esc_status rc = esc_process_issue(d, &counter_type, stream, &c);
  if (!rc)
    rc = esc_process_schedule_in(d, "tick", ESC_SECONDS(10));
  return rc;
}

static bool is_terminal(const void *state) {
  return ((const mirror_state *)state)->reset;
}

static const char *const categories[] = {"counter", NULL};
static const char *const start_types[] = {"Incremented", NULL};
static const char *const continues[] = {"Reset", NULL};
static const esc_process_command_type *const commands[] = {&counter_type, NULL};
static esc_process mirror;

static int setup(void **state) {
  (void)state;
  counter_type.decider = counter_decider();
  other_type.decider = counter_decider();
  mirror.name = "mirror";
  mirror.events = counter_events();
  mirror.categories = categories;
  mirror.starts = start_types;
  mirror.continues = continues;
  mirror.commands = commands;
  mirror.correlate = correlate;
  mirror.state_size = sizeof(mirror_state);
  mirror.evolve = evolve;
  mirror.decide = decide;
  mirror.is_terminal = is_terminal;
  return 0;
}

/* ------------------------------------------------------------------------
 * Names and ids
 * ------------------------------------------------------------------------ */

static void test_names(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  char stream[ESC_STREAM_ID_MAX + 1], category[ESC_CATEGORY_MAX + 1];
  assert_true(esc_process_name_valid("order_fulfillment2", &err));
  assert_false(esc_process_name_valid("Order", &err));
  assert_non_null(strstr(err.msg, "byte 1 (0x4f) is not allowed"));
  assert_false(esc_process_name_valid("a-b", &err));
  assert_false(esc_process_name_valid("", &err));
  assert_false(esc_process_name_valid(NULL, &err));
  char longname[ESC_PROCESS_NAME_MAX + 2];
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_false(esc_process_name_valid(longname, &err));

  assert_true(esc_process_instance_valid("42", &err));
  assert_true(esc_process_instance_valid("a-b:c", &err));
  assert_false(esc_process_instance_valid("a b", &err));
  assert_non_null(strstr(err.msg, "instance id: stream id \"a b\": byte 2"));
  assert_false(esc_process_instance_valid("-a", &err));

  assert_int_equal(
      esc_process_stream_id("fulfillment", "o-42", stream, sizeof stream, &err),
      ESC_OK);
  assert_string_equal(stream, "process:fulfillment-o-42");
  assert_true(esc_stream_id_valid(stream, NULL));
  esc_stream_category(stream, category, sizeof category);
  assert_string_equal(category, "process:fulfillment");
  assert_true(esc_category_valid(category, NULL));
  assert_int_equal(
      esc_process_stream_id("x", "a b", stream, sizeof stream, &err),
      ESC_EINVAL);
  assert_int_equal(esc_process_stream_id("x", "1", stream, 8, &err),
                   ESC_EINVAL);
}

static void test_ids(void **state) {
  (void)state;
  esc_uuid input, other;
  char text[37];
  assert_int_equal(
      esc_uuid_parse("0b3c1f5e-8a2d-4c7e-9f10-2a3b4c5d6e7f", &input, NULL),
      ESC_OK);
  assert_int_equal(
      esc_uuid_parse("0b3c1f5e-8a2d-4c7e-9f10-2a3b4c5d6e70", &other, NULL),
      ESC_OK);
  esc_uuid a = esc_process_decision_id("fulfillment", "42", &input, 0);
  /* Pinned: a change here would execute every recorded command again. */
  esc_uuid_format(&a, text);
  assert_string_equal(text, "4ea3ae3b-ce77-59c2-8a33-1c92f8cedbdf");
  assert_int_equal(text[14], '5'); /* version 5 */
  esc_uuid same = esc_process_decision_id("fulfillment", "42", &input, 0);
  assert_memory_equal(a.bytes, same.bytes, 16);
  esc_uuid differ[] = {
      esc_process_decision_id("fulfillment", "42", &input, 1),
      esc_process_decision_id("fulfillment", "43", &input, 0),
      esc_process_decision_id("fulfillmenu", "42", &input, 0),
      esc_process_decision_id("fulfillment", "42", &other, 0),
      /* The separators keep "ab"+"c" apart from "a"+"bc". */
      esc_process_decision_id("fulfillmen", "t42", &input, 0),
      esc__process_record_id("fulfillment", "42", &input, 0),
  };
  for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
    assert_memory_not_equal(a.bytes, differ[i].bytes, 16);
    for (size_t j = 0; j < i; j++)
      assert_memory_not_equal(differ[j].bytes, differ[i].bytes, 16);
  }
}

/* ------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------ */

static void test_decisions(void **state) {
  (void)state;
  esc_uuid input = esc_uuid_v4();
  esc_process_decisions d;
  counter_cmd c = {COUNTER_INCREMENT, 3};
  esc__process_decisions_init(&d, &mirror, "7", &input, 1000);
  assert_int_equal(esc_process_issue(&d, &counter_type, "counter-x", &c),
                   ESC_OK);
  assert_int_equal(esc_process_schedule_in(&d, "tick", 500), ESC_OK);
  assert_int_equal(esc_process_schedule(&d, "other", 7), ESC_OK);
  assert_int_equal(esc_process_cancel(&d, "tick"), ESC_OK);
  assert_int_equal(esc_process_decisions_count(&d), 4);
  assert_null(esc_process_decisions_failure(&d));
  const esc_process_decision *x = esc_process_decisions_at(&d, 0);
  assert_int_equal(x->kind, ESC_PROCESS_ISSUE);
  assert_ptr_equal(x->type, &counter_type);
  assert_string_equal(x->stream_id, "counter-x");
  esc_uuid id0 = esc_process_decision_id("mirror", "7", &input, 0);
  assert_memory_equal(x->id.bytes, id0.bytes, 16);
  x = esc_process_decisions_at(&d, 1);
  assert_int_equal(x->kind, ESC_PROCESS_SCHEDULE);
  assert_int_equal(x->due_us, 1500);
  assert_string_equal(x->deadline, "tick");
  esc_uuid id1 = esc_process_decision_id("mirror", "7", &input, 1);
  assert_memory_equal(x->id.bytes, id1.bytes, 16);
  assert_int_equal(esc_process_decisions_at(&d, 3)->kind, ESC_PROCESS_CANCEL);
  assert_null(esc_process_decisions_at(&d, 4));
  esc__process_decisions_release(&d);

  /* Each misuse fails the input with a message naming it. */
  static const struct {
    const char *stream;
    bool other_type;
    const char *msg;
  } bad[] = {
      {"order-1", false, "its decider takes category \"counter\""},
      {"counter-a b", false, "stream id \"counter-a b\": byte 10"},
      {"counter-1", true, "not a command of process mirror"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    esc__process_decisions_init(&d, &mirror, "7", &input, 0);
    assert_int_equal(
        esc_process_issue(&d, bad[i].other_type ? &other_type : &counter_type,
                          bad[i].stream, &c),
        ESC_EINVAL);
    assert_non_null(strstr(esc_process_decisions_failure(&d), bad[i].msg));
    assert_int_equal(esc_process_decisions_count(&d), 0);
    /* The first failure sticks: later calls fail too. */
    assert_int_equal(esc_process_schedule(&d, "tick", 1), ESC_EINVAL);
    assert_non_null(strstr(esc_process_decisions_failure(&d), bad[i].msg));
    esc__process_decisions_release(&d);
  }
  esc__process_decisions_init(&d, &mirror, "7", &input, 0);
  assert_int_equal(esc_process_schedule(&d, "Tick", 1), ESC_EINVAL);
  assert_non_null(strstr(esc_process_decisions_failure(&d), "deadline name"));
  esc__process_decisions_release(&d);
  esc__process_decisions_init(&d, &mirror, "7", &input, INT64_MAX - 1);
  assert_int_equal(esc_process_schedule_in(&d, "tick", 2), ESC_EINVAL);
  esc__process_decisions_release(&d);
  esc__process_decisions_init(&d, &mirror, "7", &input, 0);
  for (int i = 0; i < ESC_PROCESS_DECISIONS_MAX; i++)
    assert_int_equal(esc_process_cancel(&d, "tick"), ESC_OK);
  assert_int_equal(esc_process_cancel(&d, "tick"), ESC_EINVAL);
  assert_non_null(strstr(esc_process_decisions_failure(&d), "more than 256"));
  esc__process_decisions_release(&d);
  esc__process_decisions_release(NULL);
}

/* ------------------------------------------------------------------------
 * Records: round trip and hostile bytes
 * ------------------------------------------------------------------------ */

static void encode_ok(const esc__process_record *r, void **data, size_t *len) {
  esc_error err = ESC_ERROR_INIT;
  if (esc__process_record_encode(r, data, len, &err) != ESC_OK)
    fail_msg("encode %s: %s", esc__process_record_type(r->kind), err.msg);
}

/* One record of each kind, every field set. */
static size_t sample_records(esc__process_record *out) {
  static const unsigned char payload[] = {0x81, 0xa2, 'b', 'y', 0x05};
  esc_uuid a = esc_uuid_v4(), b = esc_uuid_v4(), c = esc_uuid_v4();
  memset(out, 0, 6 * sizeof *out);
  for (int k = 0; k < 6; k++) {
    out[k].kind = (esc__process_record_kind)(k + 1);
    out[k].input = a;
  }
  out[0].time_us = -5;
  out[0].stream = "counter-7";
  out[0].version = 3;
  out[0].position = (esc_position){77, 42};
  out[0].event_type = "Incremented";
  out[0].schema_version = 2;
  out[0].data = payload;
  out[0].data_len = sizeof payload;
  out[0].recorded_us = 123456;
  out[1].time_us = 9;
  out[1].accepted = false;
  out[1].code = 2;
  out[1].message = "only 0 available, \xc3\xa9";
  out[2].time_us = 10;
  out[2].name = "tick";
  out[2].due_us = 11;
  out[3].id = b;
  out[3].index = 4;
  out[3].event_type = "CounterCommand";
  out[3].stream = "counter-copy-7";
  out[3].data = payload;
  out[3].data_len = sizeof payload;
  out[4].id = c;
  out[4].index = 1;
  out[4].name = "tick";
  out[4].due_us = 99;
  out[4].replaces = b;
  out[5].index = 2; /* id nil: nothing was pending */
  out[5].name = "tick";
  return 6;
}

static void assert_same_record(const esc__process_record *a,
                               const esc__process_record *b) {
  assert_int_equal(a->kind, b->kind);
  assert_memory_equal(a->input.bytes, b->input.bytes, 16);
  assert_memory_equal(a->id.bytes, b->id.bytes, 16);
  assert_memory_equal(a->replaces.bytes, b->replaces.bytes, 16);
  assert_int_equal(a->time_us, b->time_us);
  assert_int_equal(a->index, b->index);
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->position.tx_id, b->position.tx_id);
  assert_int_equal(a->position.global, b->position.global);
  assert_int_equal(a->schema_version, b->schema_version);
  assert_int_equal(a->recorded_us, b->recorded_us);
  assert_int_equal(a->accepted, b->accepted);
  assert_int_equal(a->code, b->code);
  assert_int_equal(a->due_us, b->due_us);
  const char *sa[] = {a->stream, a->event_type, a->message, a->name};
  const char *sb[] = {b->stream, b->event_type, b->message, b->name};
  for (int i = 0; i < 4; i++)
    if (sa[i] || sb[i])
      assert_string_equal(sa[i] ? sa[i] : "", sb[i] ? sb[i] : "");
  assert_int_equal(a->data_len, b->data_len);
  if (a->data_len)
    assert_memory_equal(a->data, b->data, a->data_len);
}

static void test_records_roundtrip(void **state) {
  (void)state;
  esc__process_record recs[6], back;
  size_t n = sample_records(recs);
  msgpack_zone zone;
  assert_true(msgpack_zone_init(&zone, 1024));
  for (size_t i = 0; i < n; i++) {
    void *data;
    size_t len;
    esc_error err = ESC_ERROR_INIT;
    encode_ok(&recs[i], &data, &len);
    const char *type = esc__process_record_type(recs[i].kind);
    if (esc__process_record_decode(type, data, len, &zone, &back, &err))
      fail_msg("decode %s: %s", type, err.msg);
    assert_same_record(&recs[i], &back);
    /* Shown as JSON by esc read: the payload is embedded, not bytes. */
    char *json = NULL;
    assert_int_equal(esc_msgpack_to_json(data, len, NULL, &json, &err), ESC_OK);
    if (recs[i].data)
      assert_non_null(strstr(json, "{\"by\":5}"));
    free(json);
    free(data);
  }
  msgpack_zone_destroy(&zone);
}

/* Decoding b (of record type type) must fail with a message holding part. */
static void refused(const char *type, const void *b, size_t len,
                    const char *part) {
  esc__process_record r;
  esc_error err = ESC_ERROR_INIT;
  msgpack_zone zone;
  assert_true(msgpack_zone_init(&zone, 1024));
  esc_status rc = esc__process_record_decode(type, b, len, &zone, &r, &err);
  msgpack_zone_destroy(&zone);
  if (rc != ESC_EINVAL)
    fail_msg("%s of %zu bytes: expected ESC_EINVAL, got %d", type, len,
             (int)rc);
  if (part && !strstr(err.msg, part))
    fail_msg("%s: message \"%s\" lacks \"%s\"", type, err.msg, part);
}

/* A record of type built from JSON. */
static void refused_json(const char *type, const char *json, const char *part) {
  void *b = NULL;
  size_t len = 0;
  assert_int_equal(esc_json_to_msgpack(json, &b, &len, NULL), ESC_OK);
  refused(type, b, len, part);
  free(b);
}

#define UUID "\"0b3c1f5e-8a2d-4c7e-9f10-2a3b4c5d6e7f\""

static void test_records_hostile(void **state) {
  (void)state;
  /* Every prefix of every valid record is refused, never crashes. */
  esc__process_record recs[6];
  size_t n = sample_records(recs);
  for (size_t i = 0; i < n; i++) {
    void *data;
    size_t len;
    encode_ok(&recs[i], &data, &len);
    const char *type = esc__process_record_type(recs[i].kind);
    for (size_t cut = 0; cut < len; cut++)
      refused(type, data, cut, NULL);
    free(data);
  }
  /* A str32 that claims 4 GiB, an array bomb, nesting past the limit. */
  static const unsigned char str_bomb[] = {0x81, 0xa5, 'i',  'n',  'p',  'u',
                                           't',  0xdb, 0xff, 0xff, 0xff, 0xff};
  refused("CommandOutcome", str_bomb, sizeof str_bomb, "declares");
  static const unsigned char array_bomb[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
  refused("CommandOutcome", array_bomb, sizeof array_bomb, "msgpack");
  unsigned char deep[64];
  memset(deep, 0x91, sizeof deep);
  deep[sizeof deep - 1] = 0x01;
  refused("CommandOutcome", deep, sizeof deep, "msgpack");
  static const unsigned char trailing[] = {0x80, 0x80};
  refused("CommandOutcome", trailing, sizeof trailing, "msgpack");
  refused("CommandOutcome", "", 0, "msgpack");
  /* Well-formed msgpack of the wrong shape. */
  refused_json("Bogus", "{}", "not a process event type");
  refused_json("CommandOutcome", "[1]", "not a map");
  refused_json("CommandOutcome", "{}", "\"input\" must be a UUID");
  refused_json("CommandOutcome", "{\"input\": \"not-a-uuid\"}", "UUID");
  refused_json("CommandOutcome",
               "{\"input\": " UUID ", \"time\": 1, \"accepted\": 1, "
               "\"code\": 0, \"message\": \"\"}",
               "\"accepted\" must be a boolean");
  refused_json("CommandOutcome",
               "{\"input\": " UUID ", \"time\": 1, \"accepted\": false, "
               "\"code\": -1, \"message\": \"\"}",
               "\"code\"");
  refused_json("CommandOutcome",
               "{\"input\": " UUID ", \"time\": 1, \"accepted\": false, "
               "\"code\": 3, \"message\": \"a\\u0000b\"}",
               "\"message\"");
  refused_json("DeadlineScheduled",
               "{\"input\": " UUID ", \"id\": " UUID ", \"index\": 0, "
               "\"name\": \"tick\", \"due\": -1, \"replaces\": null}",
               "\"due\"");
  refused_json("DeadlineFired",
               "{\"input\": " UUID ", \"time\": 0, \"name\": 7, \"due\": 1}",
               "\"name\"");
  refused_json("CommandIssued",
               "{\"input\": " UUID ", \"id\": null, \"index\": 0, "
               "\"type\": \"T\", \"stream\": \"s\", \"command\": 1}",
               "\"id\"");
  refused_json("EventReceived",
               "{\"input\": " UUID ", \"time\": 0, \"stream\": \"s-1\", "
               "\"version\": 1, \"position\": \"1/x\", \"type\": \"T\", "
               "\"schema\": 1, \"recorded\": 0, \"data\": {}}",
               "\"position\"");
  refused_json("EventReceived",
               "{\"input\": " UUID ", \"time\": 0, \"stream\": \"s-1\", "
               "\"version\": 1, \"position\": \"1/1\", \"type\": \"T\", "
               "\"schema\": 1, \"recorded\": 0}",
               "\"data\" is missing");
}

/* ------------------------------------------------------------------------
 * Handling inputs
 * ------------------------------------------------------------------------ */

/* A stored counter event of stream, id derived from n. */
static esc_recorded_event counter_event(const char *stream,
                                        const esc_event_type *type,
                                        const void *ev, int n, void **buf) {
  esc_recorded_event rec;
  size_t len = 0;
  char name[16];
  memset(&rec, 0, sizeof rec);
  assert_int_equal(esc_event_encode(type, ev, buf, &len, NULL), ESC_OK);
  snprintf(name, sizeof name, "ev-%d", n);
  esc_uuid ns = {{1}};
  rec.id = esc_uuid_v5(&ns, name, strlen(name));
  rec.stream_id = stream;
  rec.stream_version = n;
  rec.type = type->name;
  rec.schema_version = 1;
  rec.data = *buf;
  rec.data_len = len;
  rec.recorded_at_us = 1000 * n;
  return rec;
}

/* Folds a step's records into a copy loaded from scratch. */
static void fold_step(esc__process_instance *copy,
                      const esc__process_step *st) {
  for (size_t i = 0; i < st->count; i++) {
    esc_recorded_event rec;
    esc_error err = ESC_ERROR_INIT;
    memset(&rec, 0, sizeof rec);
    rec.stream_id = copy->stream_id;
    rec.stream_version = copy->version + 1;
    rec.id = st->records[i].id;
    rec.type = st->records[i].type;
    rec.schema_version = 1;
    rec.data = st->records[i].data;
    rec.data_len = st->records[i].data_len;
    rec.metadata = st->records[i].metadata;
    rec.metadata_len = st->records[i].metadata_len;
    if (esc__process_instance_apply(copy, &rec, &err))
      fail_msg("fold %s: %s", rec.type, err.msg);
  }
}

static void assert_same_instance(const esc__process_instance *a,
                                 const esc__process_instance *b) {
  assert_int_equal(a->version, b->version);
  assert_int_equal(a->terminal, b->terminal);
  assert_int_equal(a->handled_count, b->handled_count);
  assert_int_equal(a->command_count, b->command_count);
  assert_int_equal(a->deadline_count, b->deadline_count);
  assert_memory_equal(a->state, b->state, sizeof(mirror_state));
}

static void test_handle(void **state) {
  (void)state;
  esc__process_instance inst, copy;
  esc__process_step st;
  esc_error err = ESC_ERROR_INIT;
  void *b1 = NULL, *b2 = NULL, *b3 = NULL;
  esc__process_step_init(&st);
  assert_int_equal(esc__process_instance_init(&inst, &mirror, "7", &err),
                   ESC_OK);
  assert_int_equal(esc__process_instance_init(&copy, &mirror, "7", &err),
                   ESC_OK);
  assert_string_equal(inst.stream_id, "process:mirror-7");

  /* Reset only continues: dropped before the instance started. */
  esc_recorded_event reset =
      counter_event("counter-7", &counter_reset, &(counter_reset_t){0}, 1, &b1);
  esc__process_delivery d = {.kind = ESC_PROCESS_INPUT_EVENT, .event = &reset};
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_false(st.handled);
  assert_string_equal(st.reason, "the instance has not started");

  /* An increment: recorded, one command and one deadline. */
  esc_recorded_event inc = counter_event("counter-7", &counter_incremented,
                                         &(counter_incremented_t){4}, 2, &b2);
  d.event = &inc;
  d.time_us = 5000;
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_true(st.handled);
  assert_int_equal(st.count, 3);
  assert_string_equal(st.records[0].type, "EventReceived");
  assert_string_equal(st.records[1].type, "CommandIssued");
  assert_string_equal(st.records[2].type, "DeadlineScheduled");
  esc_uuid rid = esc__process_record_id("mirror", "7", &inc.id, 1);
  assert_memory_equal(st.records[1].id.bytes, rid.bytes, 16);
  assert_int_equal(inst.version, 3);
  assert_true(esc__process_instance_handled(&inst, &inc.id));
  assert_int_equal(inst.command_count, 1);
  esc_uuid cmd_id = esc_process_decision_id("mirror", "7", &inc.id, 0);
  assert_non_null(esc__process_instance_command(&inst, &cmd_id));
  assert_string_equal(inst.commands[0].stream_id, "counter-copy-7");
  const struct esc__pending_deadline *tick =
      esc__process_instance_deadline(&inst, "tick");
  assert_non_null(tick);
  assert_int_equal(tick->due_us, 5000 + ESC_SECONDS(10));
  fold_step(&copy, &st);
  assert_same_instance(&inst, &copy);

  /* The same event again: dropped. */
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_false(st.handled);
  assert_string_equal(st.reason, "already handled");

  /* The outcome: recorded and folded; the command is no longer pending,
   * so a second report of it is dropped. */
  esc__process_delivery out = {.kind = ESC_PROCESS_INPUT_OUTCOME,
                               .command_id = cmd_id,
                               .accepted = false,
                               .code = 0,
                               .message = "no"};
  assert_int_equal(esc__process_handle(&inst, &out, &st, &err), ESC_OK);
  assert_true(st.handled);
  assert_int_equal(inst.command_count, 0);
  assert_int_equal(((mirror_state *)inst.state)->outcomes, 1);
  fold_step(&copy, &st);
  assert_same_instance(&inst, &copy);
  assert_int_equal(esc__process_handle(&inst, &out, &st, &err), ESC_OK);
  assert_false(st.handled);

  /* A deadline that is not pending is dropped; the pending one fires. */
  esc__process_delivery fire = {.kind = ESC_PROCESS_INPUT_DEADLINE,
                                .deadline_id = cmd_id};
  assert_int_equal(esc__process_handle(&inst, &fire, &st, &err), ESC_OK);
  assert_false(st.handled);
  fire.deadline_id = tick->id;
  assert_int_equal(esc__process_handle(&inst, &fire, &st, &err), ESC_OK);
  assert_true(st.handled);
  assert_int_equal(inst.deadline_count, 0);
  fold_step(&copy, &st);

  /* A failing decide records nothing and says why. */
  esc_recorded_event bad = counter_event("counter-7", &counter_incremented,
                                         &(counter_incremented_t){99}, 3, &b3);
  d.event = &bad;
  esc__process_instance_release(&inst);
  assert_int_equal(esc__process_instance_init(&inst, &mirror, "7", &err),
                   ESC_OK);
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "by 99 is not mirrored"));
  assert_string_equal(esc_process_decisions_failure(&st.decisions),
                      "by 99 is not mirrored");

  /* Ending with a deadline pending cancels it in the stream. */
  esc__process_instance_release(&inst);
  assert_int_equal(esc__process_instance_init(&inst, &mirror, "7", &err),
                   ESC_OK);
  d.event = &inc;
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  d.event = &reset;
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_true(inst.terminal);
  assert_int_equal(st.count, 2);
  assert_string_equal(st.records[1].type, "DeadlineCancelled");
  assert_int_equal(inst.deadline_count, 0);
  /* Ended: events are dropped, the pending command's outcome is not. */
  d.event = &bad;
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_string_equal(st.reason, "the instance has ended");
  out.command_id = esc_process_decision_id("mirror", "7", &inc.id, 0);
  assert_int_equal(esc__process_handle(&inst, &out, &st, &err), ESC_OK);
  assert_true(st.handled);
  assert_int_equal(esc_process_decisions_count(&st.decisions), 0);

  /* Records out of sequence are refused. */
  esc_recorded_event rec;
  memset(&rec, 0, sizeof rec);
  rec.stream_version = 9;
  assert_int_equal(esc__process_instance_apply(&copy, &rec, &err),
                   ESC_ECORRUPT);

  esc__process_step_release(&st);
  esc__process_instance_release(&inst);
  esc__process_instance_release(&copy);
  free(b1);
  free(b2);
  free(b3);
}

/* The correlation and causation ids every record of a step carries. */
static void assert_step_metadata(const esc__process_step *st,
                                 const esc_uuid *correlation,
                                 const esc_uuid *causation) {
  assert_true(st->count > 0);
  for (size_t i = 0; i < st->count; i++) {
    esc_metadata m;
    char actor[64];
    const esc_event_data *r = &st->records[i];
    assert_int_equal(esc_metadata_decode(r->metadata, r->metadata_len, &m,
                                         actor, sizeof actor, NULL),
                     ESC_OK);
    assert_memory_equal(m.correlation_id.bytes, correlation->bytes, 16);
    assert_memory_equal(m.causation_id.bytes, causation->bytes, 16);
    assert_string_equal(actor, "process:mirror");
  }
}

/* The event's correlation runs through the instance stream into the
 * commands; outcomes and deadlines keep it and are caused by records of
 * the instance stream (the table in <esc_internal/process.h>). A loaded
 * instance knows the same as the live one. */
static void test_tracing(void **state) {
  (void)state;
  esc__process_instance inst, copy;
  esc__process_step st;
  esc_error err = ESC_ERROR_INIT;
  void *b1 = NULL, *b2 = NULL, *meta = NULL;
  size_t meta_len = 0;
  esc__process_step_init(&st);
  assert_int_equal(esc__process_instance_init(&inst, &mirror, "t", &err),
                   ESC_OK);
  assert_int_equal(esc__process_instance_init(&copy, &mirror, "t", &err),
                   ESC_OK);
  esc_metadata m = ESC_METADATA_INIT;
  m.correlation_id = esc_uuid_v4();
  m.causation_id = esc_uuid_v4();
  assert_int_equal(esc_metadata_encode(&m, &meta, &meta_len, NULL), ESC_OK);
  esc_recorded_event inc = counter_event("counter-t", &counter_incremented,
                                         &(counter_incremented_t){2}, 1, &b1);
  inc.metadata = meta;
  inc.metadata_len = meta_len;
  esc__process_delivery d = {.kind = ESC_PROCESS_INPUT_EVENT, .event = &inc};
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_step_metadata(&st, &m.correlation_id, &inc.id);
  esc_uuid issued = st.records[1].id, scheduled = st.records[2].id;
  fold_step(&copy, &st);
  for (int k = 0; k < 2; k++) {
    const esc__process_instance *i = k ? &copy : &inst;
    assert_memory_equal(i->commands[0].correlation.bytes,
                        m.correlation_id.bytes, 16);
    assert_memory_equal(i->commands[0].causation.bytes, inc.id.bytes, 16);
    assert_memory_equal(i->commands[0].record.bytes, issued.bytes, 16);
    assert_memory_equal(i->deadlines[0].correlation.bytes,
                        m.correlation_id.bytes, 16);
    assert_memory_equal(i->deadlines[0].record.bytes, scheduled.bytes, 16);
  }

  /* The outcome: same correlation, caused by its CommandIssued; what it
   * decides is triggered by its own record. */
  esc__process_delivery out = {.kind = ESC_PROCESS_INPUT_OUTCOME,
                               .command_id = inst.commands[0].id,
                               .accepted = true,
                               .message = ""};
  assert_int_equal(esc__process_handle(&inst, &out, &st, &err), ESC_OK);
  assert_step_metadata(&st, &m.correlation_id, &issued);
  assert_memory_equal(inst.step_trigger.bytes, st.records[0].id.bytes, 16);
  fold_step(&copy, &st);
  assert_memory_equal(copy.step_trigger.bytes, st.records[0].id.bytes, 16);

  /* The deadline: same correlation, caused by its DeadlineScheduled. */
  esc__process_delivery fire = {.kind = ESC_PROCESS_INPUT_DEADLINE,
                                .deadline_id = inst.deadlines[0].id};
  assert_int_equal(esc__process_handle(&inst, &fire, &st, &err), ESC_OK);
  assert_step_metadata(&st, &m.correlation_id, &scheduled);
  assert_memory_equal(inst.step_trigger.bytes, st.records[0].id.bytes, 16);

  /* An event without metadata starts a correlation: its own id. */
  esc_recorded_event bare = counter_event("counter-t", &counter_incremented,
                                          &(counter_incremented_t){3}, 2, &b2);
  d.event = &bare;
  assert_int_equal(esc__process_handle(&inst, &d, &st, &err), ESC_OK);
  assert_step_metadata(&st, &bare.id, &bare.id);
  assert_memory_equal(inst.commands[0].correlation.bytes, bare.id.bytes, 16);

  esc__process_step_release(&st);
  esc__process_instance_release(&inst);
  esc__process_instance_release(&copy);
  free(meta);
  free(b1);
  free(b2);
}

static void test_route(void **state) {
  (void)state;
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  bool mine, starts;
  esc_error err = ESC_ERROR_INIT;
  void *b = NULL;
  esc_recorded_event rec = counter_event("counter-7", &counter_incremented,
                                         &(counter_incremented_t){1}, 1, &b);
  assert_int_equal(
      esc__process_route(&mirror, &rec, instance, &mine, &starts, &err),
      ESC_OK);
  assert_true(mine);
  assert_true(starts);
  assert_string_equal(instance, "7");
  rec.stream_id = "counter-ignored";
  assert_int_equal(
      esc__process_route(&mirror, &rec, instance, &mine, &starts, &err),
      ESC_OK);
  assert_false(mine);
  rec.stream_id = "counter--x"; /* correlates to "-x", not an instance id */
  assert_int_equal(
      esc__process_route(&mirror, &rec, instance, &mine, &starts, &err),
      ESC_EINVAL);
  assert_false(mine);
  rec.type = "Unknown";
  assert_int_equal(
      esc__process_route(&mirror, &rec, instance, &mine, &starts, &err),
      ESC_OK);
  assert_false(mine);
  free(b);

  esc_process broken = mirror;
  broken.starts = (const char *const[]){"Nope", NULL};
  assert_false(esc_process_valid(&broken, &err));
  assert_non_null(strstr(err.msg, "start type \"Nope\" is not in its "
                                  "registry"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_ids),
      cmocka_unit_test(test_decisions),
      cmocka_unit_test(test_records_roundtrip),
      cmocka_unit_test(test_records_hostile),
      cmocka_unit_test(test_handle),
      cmocka_unit_test(test_tracing),
      cmocka_unit_test(test_route),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}

/*
 * Unit tests: the decision buffer and folding (commands/src/decision.c,
 * fold.c): emit, reject and their misuse; states; a folder that applies
 * long streams without allocating per event.
 */
#include "command_int.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

/* ------------------------------------------------------------------------
 * A tiny domain: a tally. Added {by}, Bulk {items: [int...]} (a big event
 * to make the folder's zone grow), Broken (cannot be encoded).
 * ------------------------------------------------------------------------ */

typedef struct added_t {
  int64_t by;
} added_t;

typedef struct bulk_t {
  int64_t sum;
  uint32_t count;
} bulk_t;

static esc_status bad_payload(esc_error *err, const char *msg) {
  err->code = ESC_EINVAL;
  snprintf(err->msg, sizeof err->msg, "%s", msg);
  return ESC_EINVAL;
}

/* Added is {"by": n}: a map, so that decoding it uses the zone. */
static int added_encode(const void *event, msgpack_packer *pk) {
  return msgpack_pack_map(pk, 1) || msgpack_pack_str(pk, 2) ||
                 msgpack_pack_str_body(pk, "by", 2) ||
                 msgpack_pack_int64(pk, ((const added_t *)event)->by)
             ? -1
             : 0;
}

static esc_status added_decode(const msgpack_object *obj, void *event,
                               esc_error *err) {
  if (obj->type != MSGPACK_OBJECT_MAP || obj->via.map.size != 1)
    return bad_payload(err, "want {by: int}");
  const msgpack_object *by = &obj->via.map.ptr[0].val;
  if (by->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
      by->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return bad_payload(err, "want {by: int}");
  ((added_t *)event)->by = by->via.i64;
  return ESC_OK;
}

static int bulk_encode(const void *event, msgpack_packer *pk) {
  (void)event, (void)pk;
  return -1; /* bulk events are written by hand below */
}

static esc_status bulk_decode(const msgpack_object *obj, void *event,
                              esc_error *err) {
  bulk_t *b = event;
  if (obj->type != MSGPACK_OBJECT_ARRAY)
    return bad_payload(err, "want an array");
  for (uint32_t i = 0; i < obj->via.array.size; i++)
    b->sum += obj->via.array.ptr[i].via.i64;
  b->count = obj->via.array.size;
  return ESC_OK;
}

static int broken_encode(const void *event, msgpack_packer *pk) {
  (void)event, (void)pk;
  return -1;
}

static const esc_event_type added_type = {
    "Added", 1, sizeof(added_t), added_encode, added_decode, NULL,
};
static const esc_event_type bulk_type = {
    "Bulk", 1, sizeof(bulk_t), bulk_encode, bulk_decode, NULL,
};
static const esc_event_type broken_type = {
    "Broken", 1, sizeof(added_t), broken_encode, added_decode, NULL,
};
/* Encodes fine, but is not in the tally's registry. */
static const esc_event_type stray_type = {
    "Stray", 1, sizeof(added_t), added_encode, added_decode, NULL,
};

typedef struct tally {
  int64_t total;
  int64_t events;
  int64_t bulk_items;
  int *released; /* counts release_state calls */
} tally;

static void tally_init(void *state) {
  ((tally *)state)->total = 1000; /* proves init ran after the zeroing */
}

static void tally_evolve(void *state, const esc_event *ev) {
  tally *t = state;
  t->events++;
  if (ev->type == &added_type)
    t->total += ((const added_t *)ev->data)->by;
  else if (ev->type == &bulk_type)
    t->bulk_items += ((const bulk_t *)ev->data)->count;
}

static void tally_release(void *state) {
  tally *t = state;
  if (t->released)
    (*t->released)++;
}

/* What a command asks decide to do. */
typedef enum how_t {
  ADD,              /* emit Added {by} twice */
  NOTHING,          /* emit nothing */
  REJECT,           /* reject with code 3 */
  EMIT_THEN_REJECT, /* emit, then reject: the events are dropped */
  REJECT_THEN_EMIT, /* a decider bug */
  BROKEN_IGNORED,   /* emit Broken, ignore the failure, return 0 */
  BROKEN_REJECTED,  /* emit Broken and reject as the header suggests */
  RETURN_7,         /* return 7 without esc_decision_reject */
  RETURN_NEGATIVE,  /* return -1 without esc_decision_reject */
  REJECT_CODE_0,    /* esc_decision_reject(d, 0, ...) */
  TWO_REJECTS,      /* the last one wins */
  STRAY,            /* emit an unregistered type */
  STRAY_REJECTED    /* ... then reject: fine, nothing is stored */
} how_t;

typedef struct command {
  how_t how;
  int64_t by;
} command;

static int emit_added(esc_decision *d, int64_t by) {
  added_t ev = {by};
  return (int)esc_decision_emit(d, &added_type, &ev);
}

static int tally_decide(const void *state, const void *cmd, esc_decision *d) {
  const tally *t = state;
  const command *c = cmd;
  added_t ev = {c->by};
  switch (c->how) {
  case ADD:
    return emit_added(d, c->by) || emit_added(d, c->by + 1);
  case NOTHING:
    return 0;
  case REJECT:
    return esc_decision_reject(d, 3, "tally at %" PRId64 " refuses %" PRId64,
                               t->total, c->by);
  case EMIT_THEN_REJECT:
    emit_added(d, c->by);
    return esc_decision_reject(d, 4, "changed my mind");
  case REJECT_THEN_EMIT:
    esc_decision_reject(d, 4, "no");
    return emit_added(d, c->by);
  case BROKEN_IGNORED:
    emit_added(d, c->by);
    esc_decision_emit(d, &broken_type, &ev);
    return 0;
  case BROKEN_REJECTED:
    if (esc_decision_emit(d, &broken_type, &ev) != ESC_OK)
      return esc_decision_reject(d, 9, "could not encode");
    return 0;
  case RETURN_7:
    emit_added(d, c->by);
    return 7;
  case RETURN_NEGATIVE:
    return -1;
  case REJECT_CODE_0:
    return esc_decision_reject(d, 0, "zero");
  case TWO_REJECTS:
    esc_decision_reject(d, 5, "first");
    return esc_decision_reject(d, 6, "second");
  case STRAY:
    emit_added(d, c->by);
    return (int)esc_decision_emit(d, &stray_type, &ev);
  case STRAY_REJECTED:
    esc_decision_emit(d, &stray_type, &ev);
    return esc_decision_reject(d, 2, "stray");
  }
  return 0;
}

static esc_event_registry *registry;
static esc_decider decider = {
    "tally", NULL, sizeof(tally), tally_init, tally_evolve,  tally_decide,
    0,       0,    NULL,          NULL,       tally_release, NULL,
};

static int setup(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  registry = esc_event_registry_new(&err);
  if (!registry || esc_event_registry_add(registry, &added_type, &err) ||
      esc_event_registry_add(registry, &bulk_type, &err) ||
      esc_event_registry_add(registry, &broken_type, &err))
    return -1;
  decider.events = registry;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_event_registry_free(registry);
  return 0;
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static void assert_msg_has(const esc_error *err, const char *part) {
  if (!strstr(err->msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", err->msg, part);
}

static esc_status run(esc_decision *d, how_t how, int64_t by, esc_error *err) {
  tally t = {500, 0, 0, NULL};
  command c = {how, by};
  return esc__decision_run(d, &decider, &t, &c, err);
}

static void assert_emitted_added(const esc_decision *d, size_t i, int64_t by) {
  assert_true(i < d->count);
  assert_ptr_equal(d->events[i].type, &added_type);
  msgpack_zone zone;
  msgpack_object obj;
  size_t off = 0;
  assert_true(msgpack_zone_init(&zone, 256));
  assert_int_equal(
      msgpack_unpack(d->events[i].data, d->events[i].len, &off, &zone, &obj),
      MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(off, d->events[i].len);
  assert_int_equal(obj.type, MSGPACK_OBJECT_MAP);
  assert_int_equal(obj.via.map.ptr[0].val.via.i64, by);
  msgpack_zone_destroy(&zone);
}

/* ------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------ */

static void test_emit_and_rerun(void **state) {
  (void)state;
  esc_decision d;
  esc_error err = ESC_ERROR_INIT;
  esc__decision_init(&d);
  for (int round = 0; round < 3; round++) { /* a retry reuses d */
    assert_int_equal(run(&d, ADD, 10 + round, &err), ESC_OK);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.reject_code, 0);
    assert_emitted_added(&d, 0, 10 + round);
    assert_emitted_added(&d, 1, 11 + round);
  }
  assert_int_equal(run(&d, NOTHING, 0, &err), ESC_OK);
  assert_int_equal(d.count, 0);
  esc__decision_release(&d);
  esc__decision_release(&d); /* twice is fine */
  esc__decision_release(NULL);
}

static void test_many_events_grow(void **state) {
  (void)state;
  esc_decision d;
  esc__decision_init(&d);
  for (int64_t i = 0; i < 100; i++)
    assert_int_equal(emit_added(&d, i), ESC_OK);
  assert_int_equal(d.count, 100);
  assert_emitted_added(&d, 99, 99);
  esc__decision_release(&d);
  assert_int_equal(d.count, 0);
  assert_null(d.events);
}

static void test_reject(void **state) {
  (void)state;
  static const struct {
    how_t how;
    int code;
    const char *msg;
  } cases[] = {
      {REJECT, 3, "tally at 500 refuses 42"},
      {EMIT_THEN_REJECT, 4, "changed my mind"},
      {RETURN_7, 7, "rejected with code 7"},
      {TWO_REJECTS, 6, "second"},
      {STRAY_REJECTED, 2, "stray"},
  };
  esc_decision d;
  esc__decision_init(&d);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(run(&d, ADD, 1, &err), ESC_OK); /* leftovers to drop */
    assert_int_equal(run(&d, cases[i].how, 42, &err), ESC_EREJECTED);
    assert_int_equal(err.code, ESC_EREJECTED);
    assert_string_equal(err.msg, cases[i].msg);
    assert_int_equal(d.reject_code, cases[i].code);
    assert_string_equal(d.reject_msg, cases[i].msg);
    assert_int_equal(d.count, 0);
  }
  esc__decision_release(&d);
}

/* Without esc__decision_run: the rejection itself drops the events. */
static void test_reject_drops_at_once(void **state) {
  (void)state;
  esc_decision d;
  esc__decision_init(&d);
  assert_int_equal(emit_added(&d, 1), ESC_OK);
  assert_int_equal(emit_added(&d, 2), ESC_OK);
  assert_int_equal(esc_decision_reject(&d, 8, "no %s", "way"), 8);
  assert_int_equal(d.count, 0);
  assert_int_equal(d.reject_code, 8);
  assert_string_equal(d.reject_msg, "no way");
  esc__decision_release(&d);
}

/* Encode failures and decider bugs are ESC_EINVAL, never a rejection and
 * never a success with some of the events. */
static void test_failures(void **state) {
  (void)state;
  static const struct {
    how_t how;
    const char *msg;
  } cases[] = {
      {BROKEN_IGNORED, "encoding event type Broken failed"},
      {BROKEN_REJECTED, "encoding event type Broken failed"},
      {REJECT_THEN_EMIT, "decide emitted Added after rejecting the command"},
      {RETURN_NEGATIVE, "decide returned -1 without esc_decision_reject"},
      {REJECT_CODE_0, "rejected the command with code 0 (codes must be > 0): "
                      "zero"},
      {STRAY, "decide emitted Stray, which the tally decider's event "
              "registry lacks"},
  };
  esc_decision d;
  esc__decision_init(&d);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(run(&d, cases[i].how, 1, &err), ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_msg_has(&err, cases[i].msg);
    assert_int_equal(d.failure.code, ESC_EINVAL);
    assert_int_equal(d.count, 0);
    assert_int_equal(d.reject_code, 0);
    /* the next run starts clean */
    assert_int_equal(run(&d, ADD, 1, &err), ESC_OK);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.failure.code, ESC_OK);
  }
  esc__decision_release(&d);
}

static void test_run_arguments(void **state) {
  (void)state;
  esc_decision d;
  esc_error err = ESC_ERROR_INIT;
  esc_decider no_decide = decider;
  no_decide.decide = NULL;
  esc__decision_init(&d);
  assert_int_equal(esc__decision_run(&d, &no_decide, NULL, NULL, &err),
                   ESC_EINVAL);
  assert_int_equal(esc__decision_run(NULL, &decider, NULL, NULL, NULL),
                   ESC_EINVAL);
  assert_int_equal(esc_decision_emit(NULL, &added_type, &(added_t){1}),
                   ESC_EINVAL);
  assert_int_equal(esc_decision_reject(NULL, 3, "x"), 3);
  esc__decision_release(&d);
}

/* ------------------------------------------------------------------------
 * States and folding
 * ------------------------------------------------------------------------ */

static void test_state_new_free(void **state) {
  (void)state;
  int released = 0;
  tally *t = esc__state_new(&decider);
  assert_non_null(t);
  assert_int_equal(t->total, 1000);
  assert_int_equal(t->events, 0);
  t->released = &released;
  esc__state_free(&decider, t);
  assert_int_equal(released, 1);
  esc__state_free(&decider, NULL);
}

static esc_recorded_event record(int64_t version, const char *type,
                                 const void *data, size_t len) {
  esc_recorded_event rec;
  memset(&rec, 0, sizeof rec);
  rec.stream_id = "tally-1";
  rec.stream_version = version;
  rec.type = type;
  rec.schema_version = 1;
  rec.data = data;
  rec.data_len = len;
  return rec;
}

static void test_fold_long_stream(void **state) {
  (void)state;
  enum { N = 10000 };
  struct esc__folder f;
  esc_error err = ESC_ERROR_INIT;
  tally *t = esc__state_new(&decider);
  int64_t want = t->total;
  assert_int_equal(esc__folder_init(&f, &decider, &err), ESC_OK);
  const void *chunk = NULL, *buf = NULL;
  for (int64_t v = 1; v <= N; v++) {
    unsigned char data[16];
    added_t ev = {v % 7 - 3};
    void *enc = NULL;
    size_t len = 0;
    assert_int_equal(esc_event_encode(&added_type, &ev, &enc, &len, &err),
                     ESC_OK);
    memcpy(data, enc, len);
    free(enc);
    want += ev.by;
    esc_recorded_event rec = record(v, "Added", data, len);
    assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_OK);
    /* Steady state: no new zone chunk, no new struct buffer. (ASan's
     * quarantine keeps a freed chunk's address from coming back, so in
     * the sanitizer build a chunk allocated and freed shows here too.) */
    if (v == 1) {
      chunk = f.zone.chunk_list.head;
      buf = f.buf;
    }
    assert_ptr_equal(f.zone.chunk_list.head, chunk);
    assert_ptr_equal(f.buf, buf);
  }
  assert_int_equal(t->total, want);
  assert_int_equal(t->events, N);
  esc__folder_release(&f);
  esc__folder_release(&f);
  esc__state_free(&decider, t);
}

/* A bulk event of n items, packed by hand. */
static void *bulk_payload(uint32_t n, size_t *len) {
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  assert_int_equal(msgpack_pack_array(&pk, n), 0);
  for (uint32_t i = 0; i < n; i++)
    assert_int_equal(msgpack_pack_uint32(&pk, i), 0);
  *len = sbuf.size;
  return msgpack_sbuffer_release(&sbuf);
}

/* Events bigger than the zone's first chunk make it grow, a few times at
 * most; after that they too fold without allocating. */
static void test_fold_big_events_settle(void **state) {
  (void)state;
  struct esc__folder f;
  esc_error err = ESC_ERROR_INIT;
  tally *t = esc__state_new(&decider);
  size_t len;
  void *data = bulk_payload(5000, &len);
  assert_int_equal(esc__folder_init(&f, &decider, &err), ESC_OK);
  const void *chunk = NULL;
  for (int64_t v = 1; v <= 40; v++) {
    esc_recorded_event rec = record(v, "Bulk", data, len);
    assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_OK);
    if (v == 20) /* see test_fold_long_stream on this check */
      chunk = f.zone.chunk_list.head;
    if (v > 20)
      assert_ptr_equal(f.zone.chunk_list.head, chunk);
  }
  assert_int_equal(t->bulk_items, 40 * 5000);
  assert_true(f.buf_size >= sizeof(bulk_t));
  free(data);
  esc__folder_release(&f);
  esc__state_free(&decider, t);
}

static void test_fold_errors(void **state) {
  (void)state;
  struct esc__folder f;
  esc_error err = ESC_ERROR_INIT;
  tally *t = esc__state_new(&decider);
  assert_int_equal(esc__folder_init(&f, &decider, &err), ESC_OK);

  esc_recorded_event rec = record(7, "Removed", "\x01", 1);
  assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_ENOTFOUND);
  assert_string_equal(err.msg,
                      "event tally-1@7: unknown event type \"Removed\"");
  rec = record(8, "Added", "\xdd\xff\xff\xff\xff", 5);
  assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_EINVAL);
  assert_msg_has(&err, "event tally-1@8: Added v1: msgpack: array32");
  rec = record(9, "Added", "\xc0", 1); /* nil */
  assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_EINVAL);
  assert_string_equal(err.msg,
                      "event tally-1@9: decoding Added v1: want {by: int}");
  assert_int_equal(t->events, 0); /* evolve never saw a bad event */
  rec = record(10, "Added",
               "\x81\xa2"
               "by\x05",
               5); /* {by: 5} */
  assert_int_equal(esc__folder_apply(&f, t, &rec, &err), ESC_OK);
  assert_int_equal(t->total, 1005);
  esc__folder_release(&f);
  esc__state_free(&decider, t);

  esc_decider no_events = decider;
  no_events.events = NULL;
  assert_int_equal(esc__folder_init(&f, &no_events, &err), ESC_EINVAL);
  esc__folder_release(&f); /* safe after a failed init */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_emit_and_rerun),
      cmocka_unit_test(test_many_events_grow),
      cmocka_unit_test(test_reject),
      cmocka_unit_test(test_reject_drops_at_once),
      cmocka_unit_test(test_failures),
      cmocka_unit_test(test_run_arguments),
      cmocka_unit_test(test_state_new_free),
      cmocka_unit_test(test_fold_long_stream),
      cmocka_unit_test(test_fold_big_events_settle),
      cmocka_unit_test(test_fold_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * The decider test kit: a scenario folds given events through the real
 * codec (upcasters included), decides one command at a time and checks
 * what came out.
 *
 * Every check is a function returning NULL or a malloc'ed message (see
 * testkit_int.h); the public calls only turn a message into a cmocka
 * failure. cmocka copies the message before it longjmps out of the test,
 * so the kit frees it first and a failing check leaks nothing of its own.
 */
#include "testkit_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

char *esc__event_render(const char *type_name, int32_t schema_version,
                        bool show_version, const void *data, size_t len) {
  esc_error err = ESC_ERROR_INIT;
  char *json = NULL;
  char *out;
  if (esc_msgpack_to_json(data, len, NULL, &json, &err) != ESC_OK)
    out =
        esc__kit_printf("%s <payload does not render: %s>", type_name, err.msg);
  else if (show_version)
    out =
        esc__kit_printf("%s v%" PRId32 " %s", type_name, schema_version, json);
  else
    out = esc__kit_printf("%s %s", type_name, json);
  free(json);
  return out;
}

static char *render_emitted(const struct esc__emitted *e, bool show_version) {
  return esc__event_render(e->type->name, e->type->schema_version, show_version,
                           e->data, e->len);
}

/* Appends ", "-separated renderings of the emitted events from..count. */
static void add_emitted_list(esc__kit_buf *b, const esc_decision *d,
                             size_t from) {
  for (size_t i = from; i < d->count; i++) {
    char *ev = render_emitted(&d->events[i], false);
    esc__kit_addf(b, "%s%s", i > from ? ", " : "", ev);
    free(ev);
  }
}

/* ------------------------------------------------------------------------
 * Scenario lifecycle
 * ------------------------------------------------------------------------ */

esc_scenario *esc__scenario_new(const esc_decider *decider, char **msg) {
  esc_error err = ESC_ERROR_INIT;
  *msg = NULL;
  if (!decider) {
    *msg = esc__kit_printf("scenario: the decider is NULL");
    return NULL;
  }
  if (!decider->category || !esc_decider_events(decider) || !decider->decide ||
      !decider->evolve) {
    *msg = esc__kit_printf("scenario: the decider lacks a category, registry, "
                           "evolve or decide");
    return NULL;
  }
  esc_scenario *s = calloc(1, sizeof *s);
  if (!s)
    esc__kit_oom();
  s->decider = decider;
  snprintf(s->stream_id, sizeof s->stream_id, "%s-test", decider->category);
  esc__decision_init(&s->decision);
  if (esc__folder_init(&s->folder, decider, &err) != ESC_OK) {
    *msg = esc__kit_printf("scenario: %s", err.msg);
    esc__decision_release(&s->decision);
    free(s);
    return NULL;
  }
  s->state = esc__state_new(decider);
  if (!s->state)
    esc__kit_oom();
  return s;
}

esc_scenario *esc_scenario_new_at(const esc_decider *decider, const char *file,
                                  int line) {
  char *msg = NULL;
  esc_scenario *s = esc__scenario_new(decider, &msg);
  if (!s) {
    print_error("ERROR: %s\n", msg);
    free(msg);
    _fail(file, line);
  }
  return s;
}

void esc_scenario_free(esc_scenario *s) {
  if (!s)
    return;
  esc__decision_release(&s->decision);
  esc__folder_release(&s->folder);
  esc__state_free(s->decider, s->state);
  free(s);
}

const void *esc_scenario_state(const esc_scenario *s) {
  return s->state;
}

size_t esc_scenario_emitted(const esc_scenario *s) {
  return s->decided && s->outcome == ESC_OK ? s->decision.count : 0;
}

/* ------------------------------------------------------------------------
 * Given: past events, folded as if read back from the log
 * ------------------------------------------------------------------------ */

char *esc__scenario_given_stored(esc_scenario *s, const char *type_name,
                                 int32_t schema_version, const void *data,
                                 size_t len) {
  esc_error err = ESC_ERROR_INIT;
  esc_recorded_event rec;
  int64_t version = s->version + 1;
  memset(&rec, 0, sizeof rec);
  rec.position.tx_id = (uint64_t)version;
  rec.position.global = version;
  rec.stream_id = s->stream_id;
  rec.stream_version = version;
  rec.id = esc_uuid_v4();
  rec.type = type_name;
  rec.schema_version = schema_version;
  rec.data = data;
  rec.data_len = len;
  rec.recorded_at_us = esc_now_us();
  if (esc__folder_apply(&s->folder, s->state, &rec, &err) != ESC_OK)
    return esc__kit_printf("given: event %" PRId64 " (%s) failed to fold: %s",
                           version, type_name, err.msg);
  s->version = version;
  return NULL;
}

char *esc__scenario_given(esc_scenario *s, const esc_event_type *type,
                          const void *event) {
  esc_error err = ESC_ERROR_INIT;
  void *data = NULL;
  size_t len = 0;
  if (esc_event_encode(type, event, &data, &len, &err) != ESC_OK)
    return esc__kit_printf("given: event %" PRId64 " (%s) failed to encode: %s",
                           s->version + 1, type->name, err.msg);
  char *msg = esc__scenario_given_stored(s, type->name, type->schema_version,
                                         data, len);
  free(data);
  return msg;
}

char *esc__scenario_given_json(esc_scenario *s, const char *type_name,
                               int32_t schema_version, const char *json) {
  esc_error err = ESC_ERROR_INIT;
  void *data = NULL;
  size_t len = 0;
  if (esc_json_to_msgpack(json, &data, &len, &err) != ESC_OK)
    return esc__kit_printf("given: event %" PRId64 " (%s): %s", s->version + 1,
                           type_name, err.msg);
  char *msg =
      esc__scenario_given_stored(s, type_name, schema_version, data, len);
  free(data);
  return msg;
}

/*
 * Hands a check's message to cmocka, which copies it, and ends the test.
 * cmocka longjmps out of the test, so the scenario is most likely never
 * freed: drop the big parts (emitted events, the folder's zone) now,
 * keeping it valid for an esc_scenario_free in a teardown.
 */
static void check(esc_scenario *s, char *msg, const char *file, int line) {
  if (!msg)
    return;
  if (s) {
    esc__decision_release(&s->decision);
    esc__folder_release(&s->folder);
  }
  print_error("ERROR: %s\n", msg);
  free(msg);
  _fail(file, line);
}

void esc_given_at(esc_scenario *s, const esc_event_type *type,
                  const void *event, const char *file, int line) {
  check(s, esc__scenario_given(s, type, event), file, line);
}

void esc_given_stored_at(esc_scenario *s, const char *type_name,
                         int32_t schema_version, const void *msgpack,
                         size_t len, const char *file, int line) {
  check(s,
        esc__scenario_given_stored(s, type_name, schema_version, msgpack, len),
        file, line);
}

void esc_given_json_at(esc_scenario *s, const char *type_name,
                       int32_t schema_version, const char *json,
                       const char *file, int line) {
  check(s, esc__scenario_given_json(s, type_name, schema_version, json), file,
        line);
}

/* ------------------------------------------------------------------------
 * When: decide one command
 * ------------------------------------------------------------------------ */

char *esc__scenario_when(esc_scenario *s, const void *command) {
  esc_error err = ESC_ERROR_INIT;
  esc__decision_release(&s->decision);
  s->cursor = 0;
  s->decided = false;
  esc_status rc =
      esc__decision_run(&s->decision, s->decider, s->state, command, &err);
  if (rc != ESC_OK && rc != ESC_EREJECTED)
    return esc__kit_printf("when: %s", s->decision.failure.code != ESC_OK
                                           ? s->decision.failure.msg
                                           : err.msg);
  s->decided = true;
  s->outcome = rc;
  return NULL;
}

void esc_when_at(esc_scenario *s, const void *command, const char *file,
                 int line) {
  check(s, esc__scenario_when(s, command), file, line);
}

/* ------------------------------------------------------------------------
 * Then: what the command produced
 * ------------------------------------------------------------------------ */

static char *not_decided(const char *what) {
  return esc__kit_printf("%s: no command was decided; call esc_when first",
                         what);
}

/* The mismatch message for emitted event n (from 1) against the expected
 * encoding. Versions show only when the names agree and they do not. */
static char *mismatch(size_t n, const struct esc__emitted *got,
                      const esc_event_type *type, const void *want,
                      size_t want_len) {
  bool same_name = strcmp(got->type->name, type->name) == 0;
  bool show_version =
      same_name && got->type->schema_version != type->schema_version;
  char *w = esc__event_render(type->name, type->schema_version, show_version,
                              want, want_len);
  char *g = render_emitted(got, show_version);
  const char *hint = "";
  if (strcmp(w, g) == 0)
    hint = " (same JSON, different msgpack bytes)";
  char *msg = esc__kit_printf("then: event %zu: expected %s but got %s%s", n, w,
                              g, hint);
  free(w);
  free(g);
  return msg;
}

static bool same_event(const struct esc__emitted *got,
                       const esc_event_type *type, const void *want,
                       size_t want_len) {
  return strcmp(got->type->name, type->name) == 0 &&
         got->type->schema_version == type->schema_version &&
         got->len == want_len &&
         (want_len == 0 || memcmp(got->data, want, want_len) == 0);
}

char *esc__scenario_then(esc_scenario *s, const esc_event_type *type,
                         const void *expected) {
  esc_error err = ESC_ERROR_INIT;
  void *want = NULL;
  size_t want_len = 0;
  size_t n = s->cursor + 1;
  char *msg = NULL;
  if (!s->decided)
    return not_decided("then");
  if (esc_event_encode(type, expected, &want, &want_len, &err) != ESC_OK)
    return esc__kit_printf(
        "then: event %zu: the expected %s failed to encode: %s", n, type->name,
        err.msg);
  char *w = esc__event_render(type->name, type->schema_version, false, want,
                              want_len);
  if (s->outcome == ESC_EREJECTED) {
    msg =
        esc__kit_printf("then: event %zu: expected %s but the command was "
                        "rejected with code %d: %s",
                        n, w, s->decision.reject_code, s->decision.reject_msg);
  } else if (s->cursor >= s->decision.count) {
    if (s->decision.count == 0)
      msg = esc__kit_printf("then: event %zu: expected %s but no events were "
                            "emitted",
                            n, w);
    else
      msg = esc__kit_printf("then: event %zu: expected %s but only %zu event%s "
                            "%s emitted",
                            n, w, s->decision.count,
                            esc__kit_plural(s->decision.count),
                            s->decision.count == 1 ? "was" : "were");
  } else {
    const struct esc__emitted *got = &s->decision.events[s->cursor];
    if (same_event(got, type, want, want_len))
      s->cursor++;
    else
      msg = mismatch(n, got, type, want, want_len);
  }
  free(w);
  free(want);
  return msg;
}

char *esc__scenario_then_end(const esc_scenario *s) {
  if (!s->decided)
    return not_decided("then_end");
  if (s->outcome == ESC_EREJECTED)
    return esc__kit_printf(
        "then_end: expected the command to be accepted but it "
        "was rejected with code %d: %s",
        s->decision.reject_code, s->decision.reject_msg);
  if (s->cursor >= s->decision.count)
    return NULL;
  esc__kit_buf b = ESC__KIT_BUF_INIT;
  size_t more = s->decision.count - s->cursor;
  esc__kit_addf(&b, "then_end: %zu more event%s emitted: ", more,
                esc__kit_plural(more));
  add_emitted_list(&b, &s->decision, s->cursor);
  return b.p;
}

char *esc__scenario_then_rejected(const esc_scenario *s, int code,
                                  const char *msg_part) {
  const esc_decision *d = &s->decision;
  if (!s->decided)
    return not_decided("then_rejected");
  if (s->outcome != ESC_EREJECTED) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    esc__kit_addf(&b,
                  "then_rejected: expected rejection %d but the command was "
                  "accepted with ",
                  code);
    if (d->count == 0)
      esc__kit_addf(&b, "no events");
    else {
      esc__kit_addf(&b, "%zu event%s: ", d->count, esc__kit_plural(d->count));
      add_emitted_list(&b, d, 0);
    }
    return b.p;
  }
  if (d->reject_code != code)
    return esc__kit_printf("then_rejected: expected rejection %d but got "
                           "rejection %d: %s",
                           code, d->reject_code, d->reject_msg);
  if (msg_part && !strstr(d->reject_msg, msg_part))
    return esc__kit_printf("then_rejected: rejection %d: message \"%s\" lacks "
                           "\"%s\"",
                           code, d->reject_msg, msg_part);
  if (d->count != 0)
    return esc__kit_printf("then_rejected: rejected, yet %zu event%s emitted",
                           d->count, d->count == 1 ? " was" : "s were");
  return NULL;
}

void esc_then_at(esc_scenario *s, const esc_event_type *type,
                 const void *expected, const char *file, int line) {
  check(s, esc__scenario_then(s, type, expected), file, line);
}

void esc_then_end_at(esc_scenario *s, const char *file, int line) {
  check(s, esc__scenario_then_end(s), file, line);
}

void esc_then_rejected_at(esc_scenario *s, int code, const char *msg_part,
                          const char *file, int line) {
  check(s, esc__scenario_then_rejected(s, code, msg_part), file, line);
}

/*
 * The process manager test kit: one instance of a process, driven through
 * the runtime's own core (esc__process_handle), with an in-memory instance
 * stream and a clock the test controls.
 *
 * As in scenario.c, every check returns NULL or a malloc'ed message and
 * the public calls turn a message into a cmocka failure.
 */
#include "testkit_int.h"

#include <esc_internal/process.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* One input as delivered, kept for redelivery; owns what d points to. */
typedef struct kit_input {
  esc__process_delivery d;
  esc_recorded_event ev;
  char *stream;
  char *type;
  void *data;
  char *message;
  char label[160]; /* "OrderConfirmed from order-1", for messages */
} kit_input;

/* One record of the instance stream (owned copies). */
typedef struct kit_record {
  esc_uuid id;
  const char *type; /* static: the record type names */
  void *data;
  size_t len;
} kit_record;

struct esc_process_scenario {
  const esc_process *p;
  bool started; /* inst is initialized (the first event named it) */
  esc__process_instance inst;
  int64_t clock;
  kit_record *stream;
  size_t stream_count, stream_cap;
  kit_input *inputs;
  size_t input_count, input_cap;
  /* The last when: */
  bool decided;
  char label[200]; /* "input 3 (<its label>)" */
  esc__process_step step;
  char *failure; /* decide (or the core) failed: why */
  size_t cursor; /* next decision a then looks at */
};

static void *grow(void *items, size_t *cap, size_t count, size_t size) {
  if (count < *cap)
    return items;
  size_t n = *cap ? *cap * 2 : 8;
  void *p = realloc(items, n * size);
  if (!p)
    esc__kit_oom();
  *cap = n;
  return p;
}

static char *dup_str(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d)
    esc__kit_oom();
  return d;
}

static void check(char *msg, const char *file, int line) {
  if (!msg)
    return;
  print_error("ERROR: %s\n", msg);
  free(msg);
  _fail(file, line);
}

/* ------------------------------------------------------------------------
 * Lifecycle, clock, instance stream
 * ------------------------------------------------------------------------ */

esc_process_scenario *esc_process_scenario_new_at(const esc_process *p,
                                                  const char *file, int line) {
  esc_error err = ESC_ERROR_INIT;
  if (!esc_process_valid(p, &err))
    check(esc__kit_printf("process scenario: %s", err.msg), file, line);
  esc_process_scenario *s = calloc(1, sizeof *s);
  if (!s)
    esc__kit_oom();
  s->p = p;
  s->clock = ESC_PROCESS_KIT_EPOCH;
  esc__process_step_init(&s->step);
  return s;
}

static void release_input(kit_input *in) {
  free(in->stream);
  free(in->type);
  free(in->data);
  free(in->message);
}

void esc_process_scenario_free(esc_process_scenario *s) {
  if (!s)
    return;
  esc__process_step_release(&s->step);
  esc__process_instance_release(&s->inst);
  for (size_t i = 0; i < s->stream_count; i++)
    free(s->stream[i].data);
  free(s->stream);
  for (size_t i = 0; i < s->input_count; i++)
    release_input(&s->inputs[i]);
  free(s->inputs);
  free(s->failure);
  free(s);
}

int64_t esc_process_clock(const esc_process_scenario *s) {
  return s->clock;
}

void esc_process_clock_set(esc_process_scenario *s, int64_t now_us) {
  s->clock = now_us;
}

void esc_process_clock_advance(esc_process_scenario *s, int64_t delta_us) {
  s->clock += delta_us;
}

const void *esc_process_scenario_state(const esc_process_scenario *s) {
  return s->started ? s->inst.state : NULL;
}

const esc_process_decisions *
esc_process_scenario_decisions(const esc_process_scenario *s) {
  return s->decided ? &s->step.decisions : NULL;
}

size_t esc_process_scenario_records(const esc_process_scenario *s) {
  return s->stream_count;
}

static void keep_records(esc_process_scenario *s, const esc__process_step *st) {
  for (size_t i = 0; i < st->count; i++) {
    s->stream =
        grow(s->stream, &s->stream_cap, s->stream_count, sizeof *s->stream);
    kit_record *r = &s->stream[s->stream_count++];
    r->id = st->records[i].id;
    r->type = st->records[i].type;
    r->len = st->records[i].data_len;
    r->data = malloc(r->len);
    if (!r->data)
      esc__kit_oom();
    memcpy(r->data, st->records[i].data, r->len);
  }
}

/* Folds the kept stream into a fresh instance, as a restart would. */
static char *reload(esc_process_scenario *s) {
  esc_error err = ESC_ERROR_INIT;
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  if (!s->started)
    return NULL;
  snprintf(instance, sizeof instance, "%s", s->inst.instance);
  esc__process_instance_release(&s->inst);
  if (esc__process_instance_init(&s->inst, s->p, instance, &err) != ESC_OK) {
    s->started = false;
    return esc__kit_printf("restart: %s", err.msg);
  }
  for (size_t i = 0; i < s->stream_count; i++) {
    esc_recorded_event rec;
    memset(&rec, 0, sizeof rec);
    rec.stream_id = s->inst.stream_id;
    rec.stream_version = (int64_t)i + 1;
    rec.id = s->stream[i].id;
    rec.type = s->stream[i].type;
    rec.schema_version = 1;
    rec.data = s->stream[i].data;
    rec.data_len = s->stream[i].len;
    if (esc__process_instance_apply(&s->inst, &rec, &err) != ESC_OK)
      return esc__kit_printf("restart: record %zu (%s) does not fold: %s",
                             i + 1, rec.type, err.msg);
  }
  return NULL;
}

void esc_process_restart_at(esc_process_scenario *s, const char *file,
                            int line) {
  check(reload(s), file, line);
}

/* ------------------------------------------------------------------------
 * Delivering inputs
 * ------------------------------------------------------------------------ */

static kit_input *new_input(esc_process_scenario *s) {
  s->inputs = grow(s->inputs, &s->input_cap, s->input_count, sizeof *s->inputs);
  kit_input *in = &s->inputs[s->input_count++];
  memset(in, 0, sizeof *in);
  in->d.time_us = s->clock;
  return in;
}

/* Starts the instance the event belongs to; a message when it belongs to
 * none (*dropped) or another, or cannot be routed. */
static char *route(esc_process_scenario *s, const kit_input *in,
                   const char **dropped) {
  esc_error err = ESC_ERROR_INIT;
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  bool mine = false, starts = false;
  if (esc__process_route(s->p, &in->ev, instance, &mine, &starts, &err))
    return esc__kit_printf("%s: %s", in->label, err.msg);
  if (!mine) {
    *dropped = "not for this process (its type, or correlate said so)";
    return NULL;
  }
  if (s->started) {
    if (strcmp(instance, s->inst.instance) != 0)
      return esc__kit_printf("%s: correlate names instance \"%s\", but the "
                             "scenario's instance is \"%s\"",
                             in->label, instance, s->inst.instance);
    return NULL;
  }
  if (esc__process_instance_init(&s->inst, s->p, instance, &err))
    return esc__kit_printf("%s: %s", in->label, err.msg);
  s->started = true;
  return NULL;
}

/* Hands input n (from 1) to the core; the result is the scenario's last
 * when. A message only for what a test cannot go on from. */
static char *deliver(esc_process_scenario *s, size_t n) {
  esc_error err = ESC_ERROR_INIT;
  kit_input *in = &s->inputs[n - 1];
  const char *dropped = NULL;
  esc__process_step_release(&s->step);
  free(s->failure);
  s->failure = NULL;
  s->cursor = 0;
  s->decided = true;
  snprintf(s->label, sizeof s->label, "input %zu (%s)", n, in->label);
  if (in->d.kind == ESC_PROCESS_INPUT_EVENT) {
    in->d.event = &in->ev; /* set here: the inputs array moves as it grows */
    char *msg = route(s, in, &dropped);
    if (msg)
      return msg;
  }
  if (dropped) {
    s->step.reason = dropped;
    return NULL;
  }
  if (esc__process_handle(&s->inst, &in->d, &s->step, &err) != ESC_OK) {
    s->failure = dup_str(err.msg);
    return reload(s); /* the instance ran ahead of its stream */
  }
  keep_records(s, &s->step);
  return NULL;
}

/* A given input must be handled. */
static char *deliver_given(esc_process_scenario *s) {
  size_t n = s->input_count;
  char *msg = deliver(s, n);
  if (!msg && s->failure)
    msg = esc__kit_printf("given: %s failed: %s", s->label, s->failure);
  else if (!msg && !s->step.handled)
    msg =
        esc__kit_printf("given: %s was dropped: %s", s->label, s->step.reason);
  s->decided = false;
  return msg;
}

static char *add_event(esc_process_scenario *s, const char *stream_id,
                       const esc_event_type *type, const void *event) {
  esc_error err = ESC_ERROR_INIT;
  void *data = NULL;
  size_t len = 0;
  if (!esc_stream_id_valid(stream_id, &err))
    return esc__kit_printf("event %s: %s", type->name, err.msg);
  if (esc_event_encode(type, event, &data, &len, &err))
    return esc__kit_printf("event %s: failed to encode: %s", type->name,
                           err.msg);
  kit_input *in = new_input(s);
  int64_t n = (int64_t)s->input_count;
  char name[32];
  int name_len = snprintf(name, sizeof name, "kit-event-%" PRId64, n);
  static const esc_uuid kit_ns = {{0x2f, 0x8a, 0x11, 0x5c, 0x40, 0x6e, 0x4b,
                                   0x09, 0x9a, 0x3d, 0x71, 0xc2, 0x05, 0xe8,
                                   0x6b, 0x1f}};
  in->stream = dup_str(stream_id);
  in->type = dup_str(type->name);
  in->data = data;
  in->ev.position.tx_id = (uint64_t)n;
  in->ev.position.global = n;
  in->ev.stream_id = in->stream;
  in->ev.stream_version = n;
  in->ev.id = esc_uuid_v5(&kit_ns, name, (size_t)name_len);
  in->ev.type = in->type;
  in->ev.schema_version = type->schema_version;
  in->ev.data = data;
  in->ev.data_len = len;
  in->ev.recorded_at_us = s->clock;
  in->d.kind = ESC_PROCESS_INPUT_EVENT;
  snprintf(in->label, sizeof in->label, "%s from %s", type->name, stream_id);
  return NULL;
}

/* Appends ", "-separated pending commands' streams to b. */
static void add_pending_commands(esc__kit_buf *b,
                                 const esc_process_scenario *s) {
  if (!s->started || s->inst.command_count == 0) {
    esc__kit_addf(b, "none");
    return;
  }
  for (size_t i = 0; i < s->inst.command_count; i++)
    esc__kit_addf(b, "%s%s to %s", i ? ", " : "",
                  s->inst.commands[i].type->name,
                  s->inst.commands[i].stream_id);
}

static char *add_outcome(esc_process_scenario *s, const char *stream_id,
                         bool accepted, int code, const char *message) {
  const struct esc__pending_command *c = NULL;
  for (size_t i = 0; s->started && i < s->inst.command_count && !c; i++)
    if (strcmp(s->inst.commands[i].stream_id, stream_id) == 0)
      c = &s->inst.commands[i];
  if (!c) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    esc__kit_addf(&b, "no command to %s is pending; pending: ", stream_id);
    add_pending_commands(&b, s);
    return b.p;
  }
  kit_input *in = new_input(s);
  in->d.kind = ESC_PROCESS_INPUT_OUTCOME;
  in->d.command_id = c->id;
  in->d.accepted = accepted;
  in->d.code = code;
  in->message = dup_str(message);
  in->d.message = in->message;
  if (accepted)
    snprintf(in->label, sizeof in->label, "%s to %s accepted", c->type->name,
             stream_id);
  else
    snprintf(in->label, sizeof in->label, "%s to %s rejected with %d",
             c->type->name, stream_id, code);
  return NULL;
}

static char *add_deadline(esc_process_scenario *s, const char *name) {
  const struct esc__pending_deadline *dl =
      s->started ? esc__process_instance_deadline(&s->inst, name) : NULL;
  if (!dl) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    esc__kit_addf(&b, "no deadline \"%s\" is pending; pending: ", name);
    for (size_t i = 0; s->started && i < s->inst.deadline_count; i++)
      esc__kit_addf(&b, "%s%s", i ? ", " : "", s->inst.deadlines[i].name);
    if (!s->started || s->inst.deadline_count == 0)
      esc__kit_addf(&b, "none");
    return b.p;
  }
  if (s->clock < dl->due_us)
    s->clock = dl->due_us;
  kit_input *in = new_input(s);
  in->d.kind = ESC_PROCESS_INPUT_DEADLINE;
  in->d.deadline_id = dl->id;
  snprintf(in->label, sizeof in->label, "deadline %s", name);
  return NULL;
}

/* Runs an add_* result: on success delivers as given or when. */
static void run(esc_process_scenario *s, char *msg, bool given,
                const char *what, const char *file, int line) {
  if (msg) {
    char *full = esc__kit_printf("%s: %s", what, msg);
    free(msg);
    check(full, file, line);
  }
  check(given ? deliver_given(s) : deliver(s, s->input_count), file, line);
}

void esc_process_given_event_at(esc_process_scenario *s, const char *stream_id,
                                const esc_event_type *type, const void *event,
                                const char *file, int line) {
  run(s, add_event(s, stream_id, type, event), true, "given", file, line);
}

void esc_process_given_accepted_at(esc_process_scenario *s,
                                   const char *stream_id, const char *file,
                                   int line) {
  run(s, add_outcome(s, stream_id, true, 0, ""), true, "given", file, line);
}

void esc_process_given_rejected_at(esc_process_scenario *s,
                                   const char *stream_id, int code,
                                   const char *message, const char *file,
                                   int line) {
  run(s, add_outcome(s, stream_id, false, code, message), true, "given", file,
      line);
}

void esc_process_given_deadline_at(esc_process_scenario *s, const char *name,
                                   const char *file, int line) {
  run(s, add_deadline(s, name), true, "given", file, line);
}

void esc_process_when_event_at(esc_process_scenario *s, const char *stream_id,
                               const esc_event_type *type, const void *event,
                               const char *file, int line) {
  run(s, add_event(s, stream_id, type, event), false, "when", file, line);
}

void esc_process_when_accepted_at(esc_process_scenario *s,
                                  const char *stream_id, const char *file,
                                  int line) {
  run(s, add_outcome(s, stream_id, true, 0, ""), false, "when", file, line);
}

void esc_process_when_rejected_at(esc_process_scenario *s,
                                  const char *stream_id, int code,
                                  const char *message, const char *file,
                                  int line) {
  run(s, add_outcome(s, stream_id, false, code, message), false, "when", file,
      line);
}

void esc_process_when_deadline_at(esc_process_scenario *s, const char *name,
                                  const char *file, int line) {
  run(s, add_deadline(s, name), false, "when", file, line);
}

void esc_process_when_redelivered_at(esc_process_scenario *s, size_t n,
                                     const char *file, int line) {
  if (n < 1 || n > s->input_count)
    check(esc__kit_printf("when_redelivered: no input %zu; the scenario has "
                          "%zu",
                          n, s->input_count),
          file, line);
  check(deliver(s, n), file, line);
}

/* ------------------------------------------------------------------------
 * Rendering decisions
 * ------------------------------------------------------------------------ */

/* "2024-01-01T00:15:00Z" (with .micros when not whole seconds). */
static void format_time(int64_t us, char *out, size_t size) {
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  char stamp[32] = "?";
  if (gmtime_r(&secs, &tm))
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  if (us % 1000000)
    snprintf(out, size, "%s.%06" PRId64 "Z", stamp, us % 1000000);
  else
    snprintf(out, size, "%sZ", stamp);
}

/* "at 2024-01-01T00:15:00Z (input +900s)". */
static char *render_due(int64_t due_us, int64_t input_us) {
  char when[48];
  format_time(due_us, when, sizeof when);
  int64_t delta = due_us - input_us;
  if (delta % 1000000 == 0)
    return esc__kit_printf("at %s (input %+" PRId64 "s)", when,
                           delta / 1000000);
  return esc__kit_printf("at %s (input %+" PRId64 "us)", when, delta);
}

static char *render_issue(const char *type, const char *stream,
                          const void *payload, size_t len) {
  char *ev = esc__event_render(type, 1, false, payload, len);
  char *out = esc__kit_printf("issue %s to %s", ev, stream);
  free(ev);
  return out;
}

static char *render_decision(const esc_process_scenario *s,
                             const esc_process_decision *d) {
  switch (d->kind) {
  case ESC_PROCESS_ISSUE:
    return render_issue(d->type->name, d->stream_id, d->payload,
                        d->payload_len);
  case ESC_PROCESS_SCHEDULE: {
    char *due = render_due(d->due_us, s->step.decisions.time_us);
    char *out = esc__kit_printf("schedule %s %s", d->deadline, due);
    free(due);
    return out;
  }
  case ESC_PROCESS_CANCEL:
    return esc__kit_printf("cancel %s", d->deadline);
  }
  return esc__kit_printf("(unknown decision %d)", (int)d->kind);
}

static void add_decision_list(esc__kit_buf *b, const esc_process_scenario *s,
                              size_t from) {
  size_t n = esc_process_decisions_count(&s->step.decisions);
  for (size_t i = from; i < n; i++) {
    char *r =
        render_decision(s, esc_process_decisions_at(&s->step.decisions, i));
    esc__kit_addf(b, "%s%zu: %s", i > from ? ", " : "", i + 1, r);
    free(r);
  }
}

/* ------------------------------------------------------------------------
 * Then
 * ------------------------------------------------------------------------ */

/*
 * The next decision for a then expecting `want` (rendered), or NULL and a
 * message in *msg saying what came instead: no when, a failure, a dropped
 * input, or no decision left.
 */
static const esc_process_decision *next(const esc_process_scenario *s,
                                        const char *what, const char *want,
                                        char **msg) {
  size_t n = s->cursor + 1;
  size_t count = esc_process_decisions_count(&s->step.decisions);
  *msg = NULL;
  if (!s->decided)
    *msg = esc__kit_printf("%s: no input was delivered; call a "
                           "esc_process_when_* first",
                           what);
  else if (s->failure)
    *msg = esc__kit_printf("%s: decision %zu: expected %s but %s failed: %s",
                           what, n, want, s->label, s->failure);
  else if (!s->step.handled)
    *msg = esc__kit_printf("%s: decision %zu: expected %s but %s was "
                           "dropped: %s",
                           what, n, want, s->label, s->step.reason);
  else if (s->cursor >= count && count == 0)
    *msg = esc__kit_printf("%s: decision %zu: expected %s but %s made no "
                           "decisions",
                           what, n, want, s->label);
  else if (s->cursor >= count)
    *msg =
        esc__kit_printf("%s: decision %zu: expected %s but %s made only "
                        "%zu decision%s",
                        what, n, want, s->label, count, esc__kit_plural(count));
  return *msg ? NULL : esc_process_decisions_at(&s->step.decisions, s->cursor);
}

static char *mismatch(const esc_process_scenario *s, const char *what,
                      const char *want, const esc_process_decision *got,
                      const char *hint) {
  char *g = render_decision(s, got);
  char *msg = esc__kit_printf("%s: decision %zu of %s: expected %s but got "
                              "%s%s",
                              what, s->cursor + 1, s->label, want, g, hint);
  free(g);
  return msg;
}

static bool same_target(const esc_process_decision *d,
                        const esc_process_command_type *type,
                        const char *stream_id) {
  return d->kind == ESC_PROCESS_ISSUE && d->type == type &&
         strcmp(d->stream_id, stream_id) == 0;
}

/* Compares the next decision with an expected issue whose payload is
 * want (msgpack); by bytes, or by rendered JSON when by_json. */
static char *then_issue(esc_process_scenario *s, const char *what,
                        const esc_process_command_type *type,
                        const char *stream_id, const void *want, size_t len,
                        bool by_json) {
  char *w = render_issue(type->name, stream_id, want, len);
  char *msg = NULL;
  const esc_process_decision *got = next(s, what, w, &msg);
  if (got) {
    bool same = same_target(got, type, stream_id);
    char *g = same ? render_issue(type->name, stream_id, got->payload,
                                  got->payload_len)
                   : NULL;
    if (same && by_json)
      same = strcmp(g, w) == 0;
    else if (same)
      same = got->payload_len == len && memcmp(got->payload, want, len) == 0;
    if (same)
      s->cursor++;
    else
      msg = mismatch(s, what, w, got,
                     g && strcmp(g, w) == 0
                         ? " (same JSON, different msgpack bytes)"
                         : "");
    free(g);
  }
  free(w);
  return msg;
}

static char *encode_command(const esc_process_command_type *type,
                            const void *command, msgpack_sbuffer *sb) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  if (type->encode(command, &pk) != 0 || sb->size == 0)
    return esc__kit_printf("then_issue: the expected %s failed to encode",
                           type->name);
  return NULL;
}

void esc_process_then_issue_at(esc_process_scenario *s,
                               const esc_process_command_type *type,
                               const char *stream_id, const void *expected,
                               const char *file, int line) {
  msgpack_sbuffer sb;
  char *msg = encode_command(type, expected, &sb);
  if (!msg)
    msg = then_issue(s, "then_issue", type, stream_id, sb.data, sb.size, false);
  msgpack_sbuffer_destroy(&sb);
  check(msg, file, line);
}

void esc_process_then_issue_json_at(esc_process_scenario *s,
                                    const esc_process_command_type *type,
                                    const char *stream_id, const char *json,
                                    const char *file, int line) {
  esc_error err = ESC_ERROR_INIT;
  void *want = NULL;
  size_t len = 0;
  char *msg = NULL;
  if (esc_json_to_msgpack(json, &want, &len, &err) != ESC_OK)
    msg = esc__kit_printf("then_issue_json: expected %s: %s", type->name,
                          err.msg);
  else
    msg = then_issue(s, "then_issue_json", type, stream_id, want, len, true);
  free(want);
  check(msg, file, line);
}

/* Decodes the decision's payload with its type and runs the check. */
static char *run_check(const esc_process_scenario *s,
                       const esc_process_decision *d,
                       esc_process_command_check fn, void *userdata) {
  esc_error err = ESC_ERROR_INIT;
  msgpack_zone zone;
  msgpack_object obj;
  size_t off = 0;
  char *msg = NULL;
  void *cmd = calloc(1, d->type->size);
  if (!cmd || !msgpack_zone_init(&zone, 1024))
    esc__kit_oom();
  if (msgpack_unpack(d->payload, d->payload_len, &off, &zone, &obj) !=
          MSGPACK_UNPACK_SUCCESS ||
      d->type->decode(&obj, cmd, &err) != ESC_OK)
    msg = esc__kit_printf("then_issue_check: decision %zu of %s: %s does not "
                          "decode: %s",
                          s->cursor + 1, s->label, d->type->name, err.msg);
  else if (!fn(cmd, userdata)) {
    char *g = render_decision(s, d);
    msg = esc__kit_printf("then_issue_check: decision %zu of %s: %s fails "
                          "the check",
                          s->cursor + 1, s->label, g);
    free(g);
  }
  msgpack_zone_destroy(&zone);
  free(cmd);
  return msg;
}

void esc_process_then_issue_check_at(esc_process_scenario *s,
                                     const esc_process_command_type *type,
                                     const char *stream_id,
                                     esc_process_command_check fn,
                                     void *userdata, const char *file,
                                     int line) {
  char *w = esc__kit_printf("issue %s to %s", type->name, stream_id);
  char *msg = NULL;
  const esc_process_decision *got = next(s, "then_issue_check", w, &msg);
  if (got && !same_target(got, type, stream_id))
    msg = mismatch(s, "then_issue_check", w, got, "");
  else if (got && !(msg = run_check(s, got, fn, userdata)))
    s->cursor++;
  free(w);
  check(msg, file, line);
}

static char *then_deadline(esc_process_scenario *s, const char *what,
                           esc_process_decision_kind kind, const char *name,
                           int64_t due_us) {
  char *w;
  if (kind == ESC_PROCESS_SCHEDULE) {
    char *due = render_due(due_us, s->step.decisions.time_us);
    w = esc__kit_printf("schedule %s %s", name, due);
    free(due);
  } else {
    w = esc__kit_printf("cancel %s", name);
  }
  char *msg = NULL;
  const esc_process_decision *got = next(s, what, w, &msg);
  if (got) {
    if (got->kind == kind && strcmp(got->deadline, name) == 0 &&
        (kind != ESC_PROCESS_SCHEDULE || got->due_us == due_us))
      s->cursor++;
    else
      msg = mismatch(s, what, w, got, "");
  }
  free(w);
  return msg;
}

void esc_process_then_schedule_at(esc_process_scenario *s, const char *name,
                                  int64_t due_us, const char *file, int line) {
  check(then_deadline(s, "then_schedule", ESC_PROCESS_SCHEDULE, name, due_us),
        file, line);
}

void esc_process_then_schedule_in_at(esc_process_scenario *s, const char *name,
                                     int64_t delay_us, const char *file,
                                     int line) {
  check(then_deadline(s, "then_schedule_in", ESC_PROCESS_SCHEDULE, name,
                      s->step.decisions.time_us + delay_us),
        file, line);
}

void esc_process_then_cancel_at(esc_process_scenario *s, const char *name,
                                const char *file, int line) {
  check(then_deadline(s, "then_cancel", ESC_PROCESS_CANCEL, name, 0), file,
        line);
}

/* A message when the last when did not run, failed or was dropped. */
static char *not_handled(const esc_process_scenario *s, const char *what) {
  if (!s->decided)
    return esc__kit_printf("%s: no input was delivered; call a "
                           "esc_process_when_* first",
                           what);
  if (s->failure)
    return esc__kit_printf("%s: %s failed: %s", what, s->label, s->failure);
  return NULL;
}

void esc_process_then_end_at(esc_process_scenario *s, const char *file,
                             int line) {
  char *msg = not_handled(s, "then_end");
  size_t count = esc_process_decisions_count(&s->step.decisions);
  if (!msg && !s->step.handled)
    msg = esc__kit_printf("then_end: %s was dropped: %s", s->label,
                          s->step.reason);
  if (!msg && s->cursor < count) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    size_t more = count - s->cursor;
    esc__kit_addf(&b, "then_end: %s made %zu more decision%s: ", s->label, more,
                  esc__kit_plural(more));
    add_decision_list(&b, s, s->cursor);
    msg = b.p;
  }
  check(msg, file, line);
}

void esc_process_then_nothing_at(esc_process_scenario *s, const char *file,
                                 int line) {
  char *msg = not_handled(s, "then_nothing");
  size_t count = esc_process_decisions_count(&s->step.decisions);
  if (!msg && count > 0) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    esc__kit_addf(&b, "then_nothing: expected no decisions but %s made %zu: ",
                  s->label, count);
    add_decision_list(&b, s, 0);
    msg = b.p;
  }
  check(msg, file, line);
}

void esc_process_then_failed_at(esc_process_scenario *s, const char *msg_part,
                                const char *file, int line) {
  char *msg = NULL;
  if (!s->decided)
    msg = not_handled(s, "then_failed");
  else if (!s->failure) {
    esc__kit_buf b = ESC__KIT_BUF_INIT;
    esc__kit_addf(&b, "then_failed: expected %s to fail but it ", s->label);
    if (!s->step.handled)
      esc__kit_addf(&b, "was dropped: %s", s->step.reason);
    else {
      esc__kit_addf(
          &b, "made %zu decision%s",
          esc_process_decisions_count(&s->step.decisions),
          esc__kit_plural(esc_process_decisions_count(&s->step.decisions)));
      if (esc_process_decisions_count(&s->step.decisions)) {
        esc__kit_addf(&b, ": ");
        add_decision_list(&b, s, 0);
      }
    }
    msg = b.p;
  } else if (msg_part && !strstr(s->failure, msg_part))
    msg = esc__kit_printf("then_failed: %s failed with \"%s\", which lacks "
                          "\"%s\"",
                          s->label, s->failure, msg_part);
  check(msg, file, line);
}

void esc_process_then_ended_at(esc_process_scenario *s, bool ended,
                               const char *file, int line) {
  bool is = s->started && s->inst.terminal;
  if (is != ended)
    check(esc__kit_printf("then_ended: expected the instance %s but it %s",
                          ended ? "to have ended" : "to go on",
                          is ? "has ended" : "goes on"),
          file, line);
}

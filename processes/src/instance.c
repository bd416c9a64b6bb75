/*
 * An instance folded from its stream, and the handling of one input.
 *
 * Live handling makes records and folds them through the same function
 * that loading uses (apply_record), so an instance handled live and one
 * loaded from its stream after a restart are the same by construction,
 * and every live input exercises the record codec.
 */
#include <esc_internal/process.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Lifecycle and lookups
 * ------------------------------------------------------------------------ */

esc_status esc__process_instance_init(esc__process_instance *inst,
                                      const esc_process *p,
                                      const char *instance, esc_error *err) {
  memset(inst, 0, sizeof *inst);
  if (!esc_process_valid(p, err))
    return ESC_EINVAL;
  esc_status rc = esc_process_stream_id(p->name, instance, inst->stream_id,
                                        sizeof inst->stream_id, err);
  if (rc != ESC_OK)
    return rc;
  snprintf(inst->instance, sizeof inst->instance, "%s", instance);
  inst->process = p;
  inst->state = calloc(1, p->state_size);
  if (!inst->state || !msgpack_zone_init(&inst->zone, 4096)) {
    free(inst->state);
    memset(inst, 0, sizeof *inst);
    return esc_error_set(err, ESC_ENOMEM, "process %s: out of memory", p->name);
  }
  if (p->init)
    p->init(inst->state, p->userdata);
  return ESC_OK;
}

void esc__process_instance_release(esc__process_instance *inst) {
  if (!inst || !inst->process)
    return;
  if (inst->process->release_state)
    inst->process->release_state(inst->state);
  free(inst->state);
  for (size_t i = 0; i < inst->command_count; i++)
    free(inst->commands[i].payload);
  free(inst->commands);
  free(inst->deadlines);
  free(inst->handled);
  free(inst->buf);
  msgpack_zone_destroy(&inst->zone);
  memset(inst, 0, sizeof *inst);
}

static bool same_id(const esc_uuid *a, const esc_uuid *b) {
  return memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

bool esc__process_instance_handled(const esc__process_instance *inst,
                                   const esc_uuid *input_id) {
  for (size_t i = 0; i < inst->handled_count; i++)
    if (same_id(&inst->handled[i], input_id))
      return true;
  return false;
}

const struct esc__pending_command *
esc__process_instance_command(const esc__process_instance *inst,
                              const esc_uuid *command_id) {
  for (size_t i = 0; i < inst->command_count; i++)
    if (same_id(&inst->commands[i].id, command_id))
      return &inst->commands[i];
  return NULL;
}

const struct esc__pending_deadline *
esc__process_instance_deadline(const esc__process_instance *inst,
                               const char *name) {
  for (size_t i = 0; i < inst->deadline_count; i++)
    if (strcmp(inst->deadlines[i].name, name) == 0)
      return &inst->deadlines[i];
  return NULL;
}

static const struct esc__pending_deadline *
deadline_by_id(const esc__process_instance *inst, const esc_uuid *id) {
  for (size_t i = 0; i < inst->deadline_count; i++)
    if (same_id(&inst->deadlines[i].id, id))
      return &inst->deadlines[i];
  return NULL;
}

/* Grows *items (of size bytes each) to hold one more; false when out of
 * memory. */
static bool grow(void **items, size_t *cap, size_t count, size_t size) {
  if (count < *cap)
    return true;
  size_t n = *cap ? *cap * 2 : 8;
  void *p = realloc(*items, n * size);
  if (!p)
    return false;
  *items = p;
  *cap = n;
  return true;
}

/* Scratch room for one decoded struct of size bytes, zeroed. */
static void *scratch(esc__process_instance *inst, size_t size) {
  if (size > inst->buf_size) {
    void *p = realloc(inst->buf, size);
    if (!p)
      return NULL;
    inst->buf = p;
    inst->buf_size = size;
  }
  memset(inst->buf, 0, size);
  return inst->buf;
}

/* ------------------------------------------------------------------------
 * Folding records
 * ------------------------------------------------------------------------ */

/* Where decide writes when a record is an input handled live; NULL while
 * loading. */
typedef struct live {
  esc__process_step *step;
  bool decide; /* false for an outcome after the instance ended */
} live;

static esc_status oom(const esc__process_instance *inst, esc_error *err) {
  return esc_error_set(err, ESC_ENOMEM, "%s: out of memory", inst->stream_id);
}

/* Evolves the input in, notes it handled, then (live) decides. */
static esc_status take_input(esc__process_instance *inst,
                             const esc_process_input *in, live *lv,
                             esc_error *err) {
  const esc_process *p = inst->process;
  if (!grow((void **)&inst->handled, &inst->handled_cap, inst->handled_count,
            sizeof *inst->handled))
    return oom(inst, err);
  inst->handled[inst->handled_count++] = in->id;
  p->evolve(inst->state, in, p->userdata);
  if (!lv || !lv->decide)
    return ESC_OK;
  esc_process_decisions *d = &lv->step->decisions;
  esc__process_decisions_init(d, p, inst->instance, &in->id, in->time_us);
  esc_status rc = p->decide(inst->state, in, d, p->userdata);
  if (d->failure.code == ESC_OK && rc != ESC_OK)
    esc_process_fail(d, "decide returned %s", esc_strerror(rc));
  if (d->failure.code != ESC_OK)
    return esc_error_set(err, d->failure.code, "%s: %s", inst->stream_id,
                         d->failure.msg);
  return ESC_OK;
}

static esc_status apply_event(esc__process_instance *inst,
                              const esc__process_record *r, live *lv,
                              esc_error *err) {
  const esc_event_type *type =
      esc_event_registry_find(inst->process->events, r->event_type);
  esc_recorded_event src;
  memset(&src, 0, sizeof src);
  src.position = r->position;
  src.stream_id = r->stream;
  src.stream_version = r->version;
  src.id = r->input;
  src.type = r->event_type;
  src.schema_version = r->schema_version;
  src.data = r->data;
  src.data_len = r->data_len;
  src.recorded_at_us = r->recorded_us;
  void *buf = type ? scratch(inst, type->size) : NULL;
  if (type && !buf)
    return oom(inst, err);
  const esc_event_type *got = NULL;
  esc_status rc = esc_event_decode(inst->process->events, &src, &inst->zone,
                                   buf, &got, err);
  if (rc != ESC_OK)
    return rc;
  esc_event ev = {got, buf, &src};
  esc_process_input in = {ESC_PROCESS_INPUT_EVENT,
                          r->input,
                          r->time_us,
                          inst->instance,
                          &ev,
                          NULL,
                          NULL};
  return take_input(inst, &in, lv, err);
}

static void drop_command(esc__process_instance *inst,
                         const struct esc__pending_command *c) {
  size_t i = (size_t)(c - inst->commands);
  free(inst->commands[i].payload);
  memmove(&inst->commands[i], &inst->commands[i + 1],
          (inst->command_count - i - 1) * sizeof *inst->commands);
  inst->command_count--;
}

static esc_status apply_outcome(esc__process_instance *inst,
                                const esc__process_record *r, live *lv,
                                esc_error *err) {
  const struct esc__pending_command *c =
      esc__process_instance_command(inst, &r->input);
  if (!c)
    return esc_error_set(err, ESC_ECORRUPT,
                         "%s@%lld: outcome of a command that is not pending",
                         inst->stream_id, (long long)inst->version + 1);
  msgpack_object obj;
  size_t off = 0;
  void *cmd = scratch(inst, c->type->size);
  if (!cmd)
    return oom(inst, err);
  /* The payload was checked when its CommandIssued was decoded. */
  if (msgpack_unpack(c->payload, c->payload_len, &off, &inst->zone, &obj) !=
      MSGPACK_UNPACK_SUCCESS)
    return esc_error_set(err, ESC_EINVAL, "%s: command %s does not unpack",
                         inst->stream_id, c->type->name);
  esc_status rc = c->type->decode(&obj, cmd, err);
  if (rc != ESC_OK)
    return rc;
  esc_process_outcome out = {c->type, c->stream_id, cmd,     r->accepted,
                             r->code, r->message,   c->index};
  esc_process_input in = {ESC_PROCESS_INPUT_OUTCOME,
                          r->input,
                          r->time_us,
                          inst->instance,
                          NULL,
                          NULL,
                          &out};
  /* The command is done whatever decide says: drop it after the call
   * (out points into it). */
  rc = take_input(inst, &in, lv, err);
  drop_command(inst, esc__process_instance_command(inst, &r->input));
  return rc;
}

static void drop_deadline(esc__process_instance *inst,
                          const struct esc__pending_deadline *dl) {
  if (!dl)
    return;
  size_t i = (size_t)(dl - inst->deadlines);
  memmove(&inst->deadlines[i], &inst->deadlines[i + 1],
          (inst->deadline_count - i - 1) * sizeof *inst->deadlines);
  inst->deadline_count--;
}

static esc_status apply_fired(esc__process_instance *inst,
                              const esc__process_record *r, live *lv,
                              esc_error *err) {
  drop_deadline(inst, deadline_by_id(inst, &r->input));
  esc_process_deadline dl = {r->name, r->due_us};
  esc_process_input in = {ESC_PROCESS_INPUT_DEADLINE,
                          r->input,
                          r->time_us,
                          inst->instance,
                          NULL,
                          &dl,
                          NULL};
  return take_input(inst, &in, lv, err);
}

static esc_status apply_issued(esc__process_instance *inst,
                               const esc__process_record *r,
                               const esc_uuid *record_id, esc_error *err) {
  const esc_process_command_type *type =
      esc__process_command_type(inst->process, r->event_type);
  if (!type)
    return esc_error_set(err, ESC_EINVAL,
                         "%s@%lld: command type \"%s\" is not one of "
                         "process %s",
                         inst->stream_id, (long long)inst->version + 1,
                         r->event_type, inst->process->name);
  if (!grow((void **)&inst->commands, &inst->command_cap, inst->command_count,
            sizeof *inst->commands))
    return oom(inst, err);
  struct esc__pending_command *c = &inst->commands[inst->command_count];
  memset(c, 0, sizeof *c);
  c->payload = malloc(r->data_len);
  if (!c->payload)
    return oom(inst, err);
  memcpy(c->payload, r->data, r->data_len);
  c->payload_len = r->data_len;
  c->id = r->id;
  c->input = r->input;
  c->index = r->index;
  c->type = type;
  c->correlation = inst->step_correlation;
  c->causation = inst->step_trigger;
  c->record = *record_id;
  snprintf(c->stream_id, sizeof c->stream_id, "%s", r->stream);
  inst->command_count++;
  return ESC_OK;
}

static esc_status apply_scheduled(esc__process_instance *inst,
                                  const esc__process_record *r,
                                  const esc_uuid *record_id, esc_error *err) {
  drop_deadline(inst, esc__process_instance_deadline(inst, r->name));
  if (!grow((void **)&inst->deadlines, &inst->deadline_cap,
            inst->deadline_count, sizeof *inst->deadlines))
    return oom(inst, err);
  struct esc__pending_deadline *dl = &inst->deadlines[inst->deadline_count++];
  memset(dl, 0, sizeof *dl);
  dl->id = r->id;
  dl->due_us = r->due_us;
  dl->correlation = inst->step_correlation;
  dl->record = *record_id;
  snprintf(dl->name, sizeof dl->name, "%s", r->name);
  return ESC_OK;
}

static esc_status apply_decoded(esc__process_instance *inst,
                                const esc__process_record *r,
                                const esc_uuid *record_id, live *lv,
                                esc_error *err) {
  switch (r->kind) {
  case ESC__REC_EVENT_RECEIVED:
    return apply_event(inst, r, lv, err);
  case ESC__REC_COMMAND_OUTCOME:
    return apply_outcome(inst, r, lv, err);
  case ESC__REC_DEADLINE_FIRED:
    return apply_fired(inst, r, lv, err);
  case ESC__REC_COMMAND_ISSUED:
    return apply_issued(inst, r, record_id, err);
  case ESC__REC_DEADLINE_SCHEDULED:
    return apply_scheduled(inst, r, record_id, err);
  case ESC__REC_DEADLINE_CANCELLED:
    drop_deadline(inst, esc__process_instance_deadline(inst, r->name));
    return ESC_OK;
  }
  return esc_error_set(err, ESC_EINVAL, "%s: unknown record", inst->stream_id);
}

static bool is_input_kind(esc__process_record_kind k) {
  return k == ESC__REC_EVENT_RECEIVED || k == ESC__REC_COMMAND_OUTCOME ||
         k == ESC__REC_DEADLINE_FIRED;
}

/* The correlation id in stored metadata; nil when there is none or it
 * does not decode (tracing is informational: it never fails a fold). */
static esc_uuid metadata_correlation(const void *data, size_t len) {
  esc_metadata m = ESC_METADATA_INIT;
  esc_error ignored = ESC_ERROR_INIT;
  if (!data || esc_metadata_decode(data, len, &m, NULL, 0, &ignored) != ESC_OK)
    return (esc_uuid){{0}};
  return m.correlation_id;
}

/* An input record starts a step: its decisions take the input's
 * correlation and trigger (see <esc_internal/process.h>). */
static void start_step(esc__process_instance *inst,
                       const esc_recorded_event *rec,
                       const esc__process_record *r) {
  inst->step_correlation =
      metadata_correlation(rec->metadata, rec->metadata_len);
  inst->step_trigger = r->kind == ESC__REC_EVENT_RECEIVED ? r->input : rec->id;
}

static esc_status apply_record(esc__process_instance *inst,
                               const esc_recorded_event *rec, live *lv,
                               esc_error *err) {
  esc__process_record r;
  if (rec->stream_version != inst->version + 1)
    return esc_error_set(err, ESC_ECORRUPT,
                         "%s: record at version %lld, expected %lld",
                         inst->stream_id, (long long)rec->stream_version,
                         (long long)inst->version + 1);
  msgpack_zone_clear(&inst->zone);
  esc_status rc = esc__process_record_decode(
      rec->type, rec->data, rec->data_len, &inst->zone, &r, err);
  if (rc == ESC_OK && is_input_kind(r.kind))
    start_step(inst, rec, &r);
  if (rc == ESC_OK)
    rc = apply_decoded(inst, &r, &rec->id, lv, err);
  if (rc != ESC_OK)
    return rc;
  inst->version++;
  /* Ended stays ended: an outcome folded after the end cannot revive it. */
  if (is_input_kind(r.kind) && inst->process->is_terminal && !inst->terminal)
    inst->terminal = inst->process->is_terminal(inst->state);
  return ESC_OK;
}

esc_status esc__process_instance_apply(esc__process_instance *inst,
                                       const esc_recorded_event *rec,
                                       esc_error *err) {
  return apply_record(inst, rec, NULL, err);
}

/* ------------------------------------------------------------------------
 * Handling one input
 * ------------------------------------------------------------------------ */

void esc__process_step_init(esc__process_step *s) {
  memset(s, 0, sizeof *s);
}

void esc__process_step_release(esc__process_step *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->count; i++)
    free((void *)s->records[i].data);
  free(s->records);
  free(s->metadata);
  esc__process_decisions_release(&s->decisions);
  memset(s, 0, sizeof *s);
}

/* Encodes r as the step's next record, then folds it into inst. */
static esc_status record(esc__process_instance *inst, esc__process_step *s,
                         const esc__process_record *r, live *lv,
                         esc_error *err) {
  if (!grow((void **)&s->records, &s->cap, s->count, sizeof *s->records))
    return oom(inst, err);
  esc_event_data *ev = &s->records[s->count];
  memset(ev, 0, sizeof *ev);
  void *data = NULL;
  size_t len = 0;
  esc_status rc = esc__process_record_encode(r, &data, &len, err);
  if (rc != ESC_OK)
    return rc;
  ev->id = esc__process_record_id(inst->process->name, inst->instance,
                                  &r->input, s->count);
  ev->type = esc__process_record_type(r->kind);
  ev->schema_version = 1;
  ev->data = data;
  ev->data_len = len;
  ev->metadata = s->metadata;
  ev->metadata_len = s->metadata_len;
  s->count++;
  esc_recorded_event rec;
  memset(&rec, 0, sizeof rec);
  rec.stream_id = inst->stream_id;
  rec.stream_version = inst->version + 1;
  rec.id = ev->id;
  rec.type = ev->type;
  rec.schema_version = 1;
  rec.data = data;
  rec.data_len = len;
  rec.metadata = s->metadata;
  rec.metadata_len = s->metadata_len;
  rec.recorded_at_us = r->time_us;
  return apply_record(inst, &rec, lv, err);
}

/* The decision record of item i, against what inst has pending now. */
static void decision_record(const esc__process_instance *inst,
                            struct esc__decision_item *it, size_t i,
                            const esc_uuid *input, esc__process_record *r) {
  const esc_process_decision *dp = &it->pub;
  memset(r, 0, sizeof *r);
  r->input = *input;
  r->index = (uint32_t)i;
  r->id = dp->id;
  if (dp->kind == ESC_PROCESS_ISSUE) {
    r->kind = ESC__REC_COMMAND_ISSUED;
    r->event_type = dp->type->name;
    r->stream = dp->stream_id;
    r->data = dp->payload;
    r->data_len = dp->payload_len;
    return;
  }
  const struct esc__pending_deadline *pending =
      esc__process_instance_deadline(inst, dp->deadline);
  r->name = dp->deadline;
  if (dp->kind == ESC_PROCESS_SCHEDULE) {
    r->kind = ESC__REC_DEADLINE_SCHEDULED;
    r->due_us = dp->due_us;
    if (pending)
      r->replaces = pending->id;
    return;
  }
  r->kind = ESC__REC_DEADLINE_CANCELLED;
  if (pending)
    it->pub.id = pending->id;
  r->id = it->pub.id;
}

static esc_status record_decisions(esc__process_instance *inst,
                                   esc__process_step *s, const esc_uuid *input,
                                   esc_error *err) {
  esc_process_decisions *d = &s->decisions;
  esc__process_record r;
  for (size_t i = 0; i < d->count; i++) {
    decision_record(inst, &d->items[i], i, input, &r);
    esc_status rc = record(inst, s, &r, NULL, err);
    if (rc != ESC_OK)
      return rc;
  }
  /* An ended instance's deadlines will never be wanted: say so in the
   * stream, so the runtime deletes them by following records. */
  for (size_t k = d->count; inst->terminal && inst->deadline_count > 0; k++) {
    const struct esc__pending_deadline *dl = &inst->deadlines[0];
    memset(&r, 0, sizeof r);
    r.kind = ESC__REC_DEADLINE_CANCELLED;
    r.input = *input;
    r.index = (uint32_t)k;
    r.id = dl->id;
    char name[ESC_PROCESS_DEADLINE_MAX + 1];
    snprintf(name, sizeof name, "%s", dl->name);
    r.name = name;
    esc_status rc = record(inst, s, &r, NULL, err);
    if (rc != ESC_OK)
      return rc;
  }
  return ESC_OK;
}

/* Why in must be dropped, or NULL to handle it. */
static const char *drop_reason(const esc__process_instance *inst,
                               const esc__process_delivery *in,
                               const esc_uuid *id) {
  const esc_process *p = inst->process;
  if (esc__process_instance_handled(inst, id))
    return "already handled";
  if (in->kind == ESC_PROCESS_INPUT_OUTCOME)
    return esc__process_instance_command(inst, id)
               ? NULL
               : "no such command pending in this instance";
  if (inst->terminal)
    return "the instance has ended";
  if (in->kind == ESC_PROCESS_INPUT_DEADLINE)
    return deadline_by_id(inst, id) ? NULL
                                    : "the deadline is not pending (cancelled, "
                                      "replaced or fired)";
  if (esc__process_lists(p->starts, in->event->type))
    return NULL;
  if (!esc__process_lists(p->continues, in->event->type))
    return "the event type is not one the process takes";
  return inst->version == 0 ? "the instance has not started" : NULL;
}

/* The input record of a delivery (strings borrowed from it). */
static void input_record(const esc__process_instance *inst,
                         const esc__process_delivery *in, const esc_uuid *id,
                         char *message, size_t message_size,
                         esc__process_record *r) {
  memset(r, 0, sizeof *r);
  r->input = *id;
  r->time_us = in->time_us;
  if (in->kind == ESC_PROCESS_INPUT_EVENT) {
    const esc_recorded_event *e = in->event;
    r->kind = ESC__REC_EVENT_RECEIVED;
    r->stream = e->stream_id;
    r->version = e->stream_version;
    r->position = e->position;
    r->event_type = e->type;
    r->schema_version = e->schema_version;
    r->data = e->data;
    r->data_len = e->data_len;
    r->recorded_us = e->recorded_at_us;
  } else if (in->kind == ESC_PROCESS_INPUT_DEADLINE) {
    const struct esc__pending_deadline *dl = deadline_by_id(inst, id);
    r->kind = ESC__REC_DEADLINE_FIRED;
    r->name = dl->name;
    r->due_us = dl->due_us;
  } else {
    /* Cut at a UTF-8 boundary, so the message stays text. */
    size_t len = in->message ? strnlen(in->message, message_size) : 0;
    if (len >= message_size) {
      len = message_size - 1;
      while (len > 0 && ((unsigned char)in->message[len] & 0xC0) == 0x80)
        len--;
    }
    if (len)
      memcpy(message, in->message, len);
    message[len] = '\0';
    r->kind = ESC__REC_COMMAND_OUTCOME;
    r->accepted = in->accepted;
    r->code = in->accepted ? 0 : (in->code > 0 ? in->code : 1);
    r->message = message;
  }
}

/* The metadata of the step's records: the input's correlation and
 * causation (the table in <esc_internal/process.h>). The input must be
 * one drop_reason lets through. */
static esc_status step_metadata(const esc__process_instance *inst,
                                const esc__process_delivery *in,
                                const esc_uuid *id, esc__process_step *s,
                                esc_error *err) {
  char actor[sizeof ESC_PROCESS_CATEGORY_PREFIX + ESC_PROCESS_NAME_MAX];
  esc_metadata m = ESC_METADATA_INIT;
  if (in->kind == ESC_PROCESS_INPUT_EVENT) {
    m.correlation_id =
        metadata_correlation(in->event->metadata, in->event->metadata_len);
    m.causation_id = *id;
  } else if (in->kind == ESC_PROCESS_INPUT_DEADLINE) {
    const struct esc__pending_deadline *dl = deadline_by_id(inst, id);
    m.correlation_id = dl->correlation;
    m.causation_id = dl->record;
  } else {
    const struct esc__pending_command *c =
        esc__process_instance_command(inst, id);
    m.correlation_id = c->correlation;
    m.causation_id = c->record;
  }
  /* An event without a correlation starts one: its own id. */
  if (esc_uuid_is_nil(&m.correlation_id) && in->kind == ESC_PROCESS_INPUT_EVENT)
    m.correlation_id = *id;
  snprintf(actor, sizeof actor, "%s%s", ESC_PROCESS_CATEGORY_PREFIX,
           inst->process->name);
  m.actor = actor;
  m.time_us = in->time_us;
  return esc_metadata_encode(&m, &s->metadata, &s->metadata_len, err);
}

static esc_uuid delivery_id(const esc__process_delivery *in) {
  if (in->kind == ESC_PROCESS_INPUT_EVENT)
    return in->event->id;
  return in->kind == ESC_PROCESS_INPUT_DEADLINE ? in->deadline_id
                                                : in->command_id;
}

esc_status esc__process_handle(esc__process_instance *inst,
                               const esc__process_delivery *in,
                               esc__process_step *out, esc_error *err) {
  char message[ESC_PROCESS_MESSAGE_MAX + 1];
  esc__process_record r;
  esc__process_step_release(out);
  if (in->kind == ESC_PROCESS_INPUT_EVENT && !in->event)
    return esc_error_set(err, ESC_EINVAL, "%s: an event input without event",
                         inst->stream_id);
  esc_uuid id = delivery_id(in);
  out->reason = drop_reason(inst, in, &id);
  if (out->reason)
    return ESC_OK;
  out->handled = true;
  input_record(inst, in, &id, message, sizeof message, &r);
  /* A deadline record borrows the pending entry's name, which folding
   * the record removes: keep a copy. */
  char name[ESC_PROCESS_DEADLINE_MAX + 1] = "";
  if (r.name) {
    snprintf(name, sizeof name, "%s", r.name);
    r.name = name;
  }
  live lv = {out, !inst->terminal};
  esc_status rc = step_metadata(inst, in, &id, out, err);
  if (rc == ESC_OK)
    rc = record(inst, out, &r, &lv, err);
  if (rc == ESC_OK)
    rc = record_decisions(inst, out, &id, err);
  return rc;
}

/* ------------------------------------------------------------------------
 * Routing an event to its instance
 * ------------------------------------------------------------------------ */

esc_status esc__process_route(const esc_process *p,
                              const esc_recorded_event *rec,
                              char instance[ESC_PROCESS_INSTANCE_MAX + 1],
                              bool *mine, bool *starts, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  *mine = false;
  *starts = esc__process_lists(p->starts, rec->type);
  instance[0] = '\0';
  if (!*starts && !esc__process_lists(p->continues, rec->type))
    return ESC_OK;
  const esc_event_type *type = esc_event_registry_find(p->events, rec->type);
  if (!type)
    return esc_error_set(err, ESC_EINVAL, "process %s: no type \"%s\"", p->name,
                         rec->type);
  msgpack_zone zone;
  void *buf = calloc(1, type->size ? type->size : 1);
  if (!buf || !msgpack_zone_init(&zone, 2048)) {
    free(buf);
    return esc_error_set(err, ESC_ENOMEM, "process %s: out of memory", p->name);
  }
  const esc_event_type *got = NULL;
  esc_status rc = esc_event_decode(p->events, rec, &zone, buf, &got, err);
  if (rc == ESC_OK) {
    esc_event ev = {got, buf, rec};
    *mine =
        p->correlate(&ev, instance, ESC_PROCESS_INSTANCE_MAX + 1, p->userdata);
    instance[ESC_PROCESS_INSTANCE_MAX] = '\0';
    if (*mine && !esc_process_instance_valid(instance, &inner))
      rc = esc_error_set(err, ESC_EINVAL, "process %s: %s@%lld: %s", p->name,
                         rec->stream_id, (long long)rec->stream_version,
                         inner.msg);
  }
  msgpack_zone_destroy(&zone);
  free(buf);
  if (rc != ESC_OK)
    *mine = false;
  return rc;
}

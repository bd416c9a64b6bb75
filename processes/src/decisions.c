/*
 * The decisions object: what decide emits, checked and encoded when it is
 * emitted (so the failure names the call that made it), with its id
 * derived at once from the input it is bound to.
 */
#include <esc_internal/process.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void esc__process_decisions_init(esc_process_decisions *d, const esc_process *p,
                                 const char *instance, const esc_uuid *input_id,
                                 int64_t time_us) {
  memset(d, 0, sizeof *d);
  d->process = p;
  d->instance = instance;
  d->input_id = *input_id;
  d->time_us = time_us;
}

void esc__process_decisions_release(esc_process_decisions *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->count; i++) {
    free(d->items[i].stream_id);
    free(d->items[i].deadline);
    free(d->items[i].payload);
  }
  free(d->items);
  d->items = NULL;
  d->count = d->cap = 0;
}

/* Records the first failure only: later calls usually fail because of it. */
static esc_status vfail(esc_process_decisions *d, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 0)))
#endif
    ;

static esc_status vfail(esc_process_decisions *d, const char *fmt, va_list ap) {
  if (d->failure.code == ESC_OK) {
    vsnprintf(d->failure.msg, sizeof d->failure.msg, fmt, ap);
    d->failure.code = ESC_EINVAL;
  }
  return ESC_EINVAL;
}

static esc_status fail(esc_process_decisions *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static esc_status fail(esc_process_decisions *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  esc_status rc = vfail(d, fmt, ap);
  va_end(ap);
  return rc;
}

esc_status esc_process_fail(esc_process_decisions *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  esc_status rc = vfail(d, fmt, ap);
  va_end(ap);
  return rc;
}

/* A new item of kind, its id derived from its index; NULL after a
 * failure (which it records). */
static struct esc__decision_item *add(esc_process_decisions *d,
                                      esc_process_decision_kind kind) {
  if (d->failure.code != ESC_OK)
    return NULL;
  if (d->count >= ESC_PROCESS_DECISIONS_MAX) {
    fail(d, "more than %d decisions for one input", ESC_PROCESS_DECISIONS_MAX);
    return NULL;
  }
  if (d->count == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    struct esc__decision_item *items = realloc(d->items, cap * sizeof *items);
    if (!items) {
      fail(d, "out of memory");
      d->failure.code = ESC_ENOMEM;
      return NULL;
    }
    d->items = items;
    d->cap = cap;
  }
  struct esc__decision_item *it = &d->items[d->count];
  memset(it, 0, sizeof *it);
  it->pub.kind = kind;
  it->pub.id = esc_process_decision_id(d->process->name, d->instance,
                                       &d->input_id, d->count);
  return it;
}

/* Keeps it: the item becomes part of the decisions. */
static void keep(esc_process_decisions *d) {
  d->count++;
}

static void drop(struct esc__decision_item *it) {
  free(it->stream_id);
  free(it->deadline);
  free(it->payload);
}

static bool command_allowed(const esc_process *p,
                            const esc_process_command_type *type) {
  for (size_t i = 0; p->commands && p->commands[i]; i++)
    if (p->commands[i] == type)
      return true;
  return false;
}

/* The stream must be one the type's decider executes on. */
static esc_status check_target(esc_process_decisions *d,
                               const esc_process_command_type *type,
                               const char *stream_id) {
  esc_error inner = ESC_ERROR_INIT;
  char category[ESC_CATEGORY_MAX + 1];
  if (!esc_stream_id_valid(stream_id, &inner))
    return fail(d, "issue %s: %s", type->name, inner.msg);
  esc_stream_category(stream_id, category, sizeof category);
  if (strcmp(category, type->decider->category) != 0)
    return fail(d, "issue %s to %s: its decider takes category \"%s\"",
                type->name, stream_id, type->decider->category);
  return ESC_OK;
}

static esc_status encode_command(esc_process_decisions *d,
                                 struct esc__decision_item *it,
                                 const esc_process_command_type *type,
                                 const void *command) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  esc_status rc = ESC_OK;
  if (type->encode(command, &pk) != 0 || sb.size == 0)
    rc = fail(d, "issue %s: the command failed to encode", type->name);
  else if (sb.size > ESC__PROCESS_RECORD_MAX_BYTES / 2)
    rc = fail(d, "issue %s: the command is %zu bytes, more than %d", type->name,
              sb.size, ESC__PROCESS_RECORD_MAX_BYTES / 2);
  if (rc == ESC_OK) {
    it->pub.payload_len = sb.size;
    it->payload = msgpack_sbuffer_release(&sb);
    it->pub.payload = it->payload;
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

esc_status esc_process_issue(esc_process_decisions *d,
                             const esc_process_command_type *type,
                             const char *stream_id, const void *command) {
  if (d->failure.code != ESC_OK)
    return ESC_EINVAL;
  if (!type || !command_allowed(d->process, type))
    return fail(d, "issue %s: not a command of process %s",
                type && type->name ? type->name : "(NULL)", d->process->name);
  if (!command)
    return fail(d, "issue %s: the command is NULL", type->name);
  esc_status rc = check_target(d, type, stream_id);
  if (rc != ESC_OK)
    return rc;
  struct esc__decision_item *it = add(d, ESC_PROCESS_ISSUE);
  if (!it)
    return ESC_EINVAL;
  it->pub.type = type;
  it->stream_id = strdup(stream_id);
  if (!it->stream_id) {
    drop(it);
    return fail(d, "out of memory");
  }
  it->pub.stream_id = it->stream_id;
  rc = encode_command(d, it, type, command);
  if (rc != ESC_OK) {
    drop(it);
    return rc;
  }
  keep(d);
  return ESC_OK;
}

/* A deadline decision of kind for name (checked). */
static struct esc__decision_item *deadline_item(esc_process_decisions *d,
                                                esc_process_decision_kind kind,
                                                const char *name) {
  esc_error inner = ESC_ERROR_INIT;
  if (d->failure.code != ESC_OK)
    return NULL;
  if (!esc__process_deadline_name_valid(name, &inner)) {
    fail(d, "%s: %s", kind == ESC_PROCESS_CANCEL ? "cancel" : "schedule",
         inner.msg);
    return NULL;
  }
  struct esc__decision_item *it = add(d, kind);
  if (!it)
    return NULL;
  it->deadline = strdup(name);
  if (!it->deadline) {
    fail(d, "out of memory");
    return NULL;
  }
  it->pub.deadline = it->deadline;
  return it;
}

esc_status esc_process_schedule(esc_process_decisions *d, const char *name,
                                int64_t due_us) {
  if (due_us < 0)
    return fail(d, "schedule %s: due time %lld is before the epoch",
                name ? name : "(NULL)", (long long)due_us);
  struct esc__decision_item *it = deadline_item(d, ESC_PROCESS_SCHEDULE, name);
  if (!it)
    return ESC_EINVAL;
  it->pub.due_us = due_us;
  keep(d);
  return ESC_OK;
}

esc_status esc_process_schedule_in(esc_process_decisions *d, const char *name,
                                   int64_t delay_us) {
  if (delay_us < 0 || d->time_us > INT64_MAX - delay_us)
    return fail(d, "schedule %s: delay %lld us is negative or too long",
                name ? name : "(NULL)", (long long)delay_us);
  return esc_process_schedule(d, name, d->time_us + delay_us);
}

/* The cancelled deadline's id is filled in when the decision is recorded
 * (esc__process_handle), since only the instance knows what is pending. */
esc_status esc_process_cancel(esc_process_decisions *d, const char *name) {
  struct esc__decision_item *it = deadline_item(d, ESC_PROCESS_CANCEL, name);
  if (!it)
    return ESC_EINVAL;
  memset(&it->pub.id, 0, sizeof it->pub.id);
  keep(d);
  return ESC_OK;
}

size_t esc_process_decisions_count(const esc_process_decisions *d) {
  return d ? d->count : 0;
}

const esc_process_decision *
esc_process_decisions_at(const esc_process_decisions *d, size_t i) {
  return d && i < d->count ? &d->items[i].pub : NULL;
}

const char *esc_process_decisions_failure(const esc_process_decisions *d) {
  return d && d->failure.code != ESC_OK ? d->failure.msg : NULL;
}

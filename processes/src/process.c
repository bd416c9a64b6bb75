/*
 * Names, the instance stream id, derived ids and the definition check.
 */
#include <esc_internal/process.h>

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

/* 1..max bytes of [a-z0-9_]; what names it in messages. */
static bool lower_name_valid(const char *name, size_t max, const char *what,
                             esc_error *err) {
  if (!name || !*name) {
    esc_error_set(err, ESC_EINVAL, "%s is empty", what);
    return false;
  }
  size_t len = strnlen(name, max + 1);
  if (len > max) {
    esc_error_set(err, ESC_EINVAL, "%s \"%.*s...\" is longer than %zu bytes",
                  what, 16, name, max);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
      continue;
    esc_error_set(err, ESC_EINVAL,
                  "%s \"%s\": byte %zu (0x%02x) is not allowed; use [a-z0-9_]",
                  what, name, i + 1, c);
    return false;
  }
  return true;
}

bool esc_process_name_valid(const char *name, esc_error *err) {
  return lower_name_valid(name, ESC_PROCESS_NAME_MAX, "process name", err);
}

bool esc__process_deadline_name_valid(const char *name, esc_error *err) {
  return lower_name_valid(name, ESC_PROCESS_DEADLINE_MAX, "deadline name", err);
}

/* An instance id ends a stream id, so it follows the store's rules for
 * stream ids (the store's own check says what is wrong), which also keeps
 * it from starting with '-'. */
bool esc_process_instance_valid(const char *instance, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!instance || !*instance) {
    esc_error_set(err, ESC_EINVAL, "instance id is empty");
    return false;
  }
  if (strnlen(instance, ESC_PROCESS_INSTANCE_MAX + 1) >
      ESC_PROCESS_INSTANCE_MAX) {
    esc_error_set(err, ESC_EINVAL,
                  "instance id \"%.16s...\" is longer than %d "
                  "bytes",
                  instance, ESC_PROCESS_INSTANCE_MAX);
    return false;
  }
  if (!esc_stream_id_valid(instance, &inner)) {
    esc_error_set(err, ESC_EINVAL, "instance id: %s", inner.msg);
    return false;
  }
  return true;
}

esc_status esc_process_stream_id(const char *process, const char *instance,
                                 char *out, size_t out_size, esc_error *err) {
  if (!esc_process_name_valid(process, err) ||
      !esc_process_instance_valid(instance, err))
    return ESC_EINVAL;
  int n = snprintf(out, out_size, "%s%s-%s", ESC_PROCESS_CATEGORY_PREFIX,
                   process, instance);
  if (n < 0 || (size_t)n >= out_size)
    return esc_error_set(err, ESC_EINVAL,
                         "process stream id of %s/%s does not fit %zu bytes",
                         process, instance, out_size);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Derived ids
 * ------------------------------------------------------------------------ */

/* The namespace of every id a process derives (a random v4, fixed
 * forever: changing it would issue every command again). */
static const esc_uuid PROCESS_NS = {{0x6b, 0x1e, 0x3c, 0x52, 0x9d, 0x07, 0x4a,
                                     0x8f, 0xb2, 0x41, 0x0c, 0xe5, 0x73, 0x9a,
                                     0x2d, 0x64}};

/*
 * UUIDv5 of: the 16 input id bytes, then "<tag>\0<process>\0<instance>\0
 * <index>". NUL cannot occur in the strings, so no two argument lists
 * give the same name; the tag keeps decision ids and record ids apart.
 */
static esc_uuid derive(const char *tag, const char *process,
                       const char *instance, const esc_uuid *input_id,
                       size_t index) {
  char name[16 + 16 + ESC_PROCESS_NAME_MAX + ESC_PROCESS_INSTANCE_MAX + 32];
  size_t len = 0;
  memcpy(name, input_id->bytes, 16);
  len = 16;
  const char *parts[] = {tag, process ? process : "", instance ? instance : ""};
  for (size_t i = 0; i < 3; i++) {
    size_t n = strnlen(parts[i], ESC_PROCESS_INSTANCE_MAX);
    memcpy(name + len, parts[i], n);
    len += n;
    name[len++] = '\0';
  }
  int n = snprintf(name + len, sizeof name - len, "%zu", index);
  len += (size_t)(n > 0 ? n : 0);
  return esc_uuid_v5(&PROCESS_NS, name, len);
}

esc_uuid esc_process_decision_id(const char *process, const char *instance,
                                 const esc_uuid *input_id, size_t index) {
  return derive("decision", process, instance, input_id, index);
}

esc_uuid esc__process_record_id(const char *process, const char *instance,
                                const esc_uuid *input_id, size_t n) {
  return derive("record", process, instance, input_id, n);
}

/* ------------------------------------------------------------------------
 * The definition
 * ------------------------------------------------------------------------ */

static bool type_list_valid(const esc_process *p, const char *const *list,
                            const char *what, esc_error *err) {
  for (size_t i = 0; list && list[i]; i++)
    if (!esc_event_registry_find(p->events, list[i])) {
      esc_error_set(err, ESC_EINVAL,
                    "process %s: %s type \"%s\" is not in its registry",
                    p->name, what, list[i]);
      return false;
    }
  return true;
}

static bool commands_valid(const esc_process *p, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  for (size_t i = 0; p->commands && p->commands[i]; i++) {
    const esc_process_command_type *t = p->commands[i];
    if (!esc_type_name_valid(t->name, &inner) || !t->decider ||
        !t->decider->category || !t->encode || !t->decode || !t->size) {
      esc_error_set(err, ESC_EINVAL,
                    "process %s: command %zu needs a valid name, a decider, "
                    "a size and a codec%s%s",
                    p->name, i + 1, inner.code ? ": " : "", inner.msg);
      return false;
    }
  }
  return true;
}

/* Snapshots need both codecs: a snapshot that can be written but never
 * read (or the other way round) is a configuration mistake. */
static bool snapshots_valid(const esc_process *p, esc_error *err) {
  if (p->snapshot_every < 0 ||
      (p->snapshot_every > 0 && (!p->encode_state || !p->decode_state))) {
    esc_error_set(err, ESC_EINVAL,
                  "process %s: snapshot_every must be >= 0, and > 0 needs "
                  "encode_state and decode_state",
                  p->name);
    return false;
  }
  return true;
}

bool esc_process_valid(const esc_process *p, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!p) {
    esc_error_set(err, ESC_EINVAL, "process definition is NULL");
    return false;
  }
  if (!esc_process_name_valid(p->name, &inner)) {
    esc_error_set(err, ESC_EINVAL, "process: %s", inner.msg);
    return false;
  }
  if (!p->events || !p->correlate || !p->evolve || !p->decide ||
      !p->state_size || !p->starts || !p->categories) {
    esc_error_set(err, ESC_EINVAL,
                  "process %s needs events, categories, starts, correlate, "
                  "evolve, decide and a state size",
                  p->name);
    return false;
  }
  for (size_t i = 0; p->categories[i]; i++)
    if (!esc_category_valid(p->categories[i], &inner)) {
      esc_error_set(err, ESC_EINVAL, "process %s: %s", p->name, inner.msg);
      return false;
    }
  return type_list_valid(p, p->starts, "start", err) &&
         type_list_valid(p, p->continues, "continue", err) &&
         commands_valid(p, err) && snapshots_valid(p, err);
}

/* The command type of the process called name, or NULL. */
const esc_process_command_type *esc__process_command_type(const esc_process *p,
                                                          const char *name) {
  for (size_t i = 0; p->commands && p->commands[i]; i++)
    if (strcmp(p->commands[i]->name, name) == 0)
      return p->commands[i];
  return NULL;
}

/* Whether type is among list. */
bool esc__process_lists(const char *const *list, const char *type) {
  for (size_t i = 0; list && list[i]; i++)
    if (strcmp(list[i], type) == 0)
      return true;
  return false;
}

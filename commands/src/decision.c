/*
 * The decision buffer decide writes into: events encoded at once (so the
 * caller's structs need not outlive decide), or a domain rejection, or a
 * failure to encode. esc__decision_run turns that into one status.
 *
 * Misuse by a decider is a programming error, reported as ESC_EINVAL
 * through d->failure rather than guessed around: a rejection code <= 0
 * (it could not be told from success), a negative return from decide
 * without a rejection, an emit after a rejection, and an event of a type
 * the decider's registry lacks. A failure outranks a rejection.
 */
#include "command_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FIRST_CAP = 4 };

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

static void clear_error(esc_error *e) {
  e->code = ESC_OK;
  e->sqlstate[0] = '\0';
  e->msg[0] = '\0';
}

static void drop_events(esc_decision *d) {
  for (size_t i = 0; i < d->count; i++)
    free(d->events[i].data);
  d->count = 0;
}

/* Empties d for another run, keeping the array so that retries after a
 * conflict do not allocate it again. */
static void reset(esc_decision *d) {
  drop_events(d);
  d->reject_code = 0;
  d->reject_msg[0] = '\0';
  clear_error(&d->failure);
}

void esc__decision_init(esc_decision *d) {
  memset(d, 0, sizeof *d);
  clear_error(&d->failure);
}

void esc__decision_release(esc_decision *d) {
  if (!d)
    return;
  reset(d);
  free(d->events);
  d->events = NULL;
  d->cap = 0;
}

/* ------------------------------------------------------------------------
 * What decide calls
 * ------------------------------------------------------------------------ */

static esc_status reserve_one(esc_decision *d, const esc_event_type *type) {
  if (d->count < d->cap)
    return ESC_OK;
  size_t cap = d->cap ? d->cap * 2 : FIRST_CAP;
  struct esc__emitted *ev = realloc(d->events, cap * sizeof *ev);
  if (!ev)
    return esc_error_set(&d->failure, ESC_ENOMEM,
                         "emitting %.64s: out of memory",
                         type && type->name ? type->name : "(null)");
  d->events = ev;
  d->cap = cap;
  return ESC_OK;
}

esc_status esc_decision_emit(esc_decision *d, const esc_event_type *type,
                             const void *event) {
  if (!d)
    return ESC_EINVAL;
  if (d->failure.code != ESC_OK) /* the first failure is the one reported */
    return d->failure.code;
  if (d->reject_code > 0)
    return esc_error_set(&d->failure, ESC_EINVAL,
                         "decide emitted %.64s after rejecting the command",
                         type && type->name ? type->name : "(null)");
  esc_status st = reserve_one(d, type);
  if (st != ESC_OK)
    return st;
  struct esc__emitted *e = &d->events[d->count];
  st = esc_event_encode(type, event, &e->data, &e->len, &d->failure);
  if (st != ESC_OK)
    return st;
  e->type = type;
  d->count++;
  return ESC_OK;
}

/* The last rejection wins; events emitted before it are dropped. */
int esc_decision_reject(esc_decision *d, int code, const char *fmt, ...) {
  if (!d)
    return code;
  d->reject_msg[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reject_msg, sizeof d->reject_msg, fmt, ap);
    va_end(ap);
  }
  drop_events(d);
  if (code > 0)
    d->reject_code = code;
  else if (d->failure.code == ESC_OK)
    esc_error_set(&d->failure, ESC_EINVAL,
                  "decide rejected the command with code %d (codes must be "
                  "> 0): %s",
                  code, d->reject_msg);
  return code;
}

/* ------------------------------------------------------------------------
 * Running decide
 * ------------------------------------------------------------------------ */

/* Folds decide's return value into d: a positive one without a rejection
 * is a rejection with a generic message, a negative one a failure. */
static void settle(esc_decision *d, int rc) {
  if (rc == 0 || d->reject_code > 0 || d->failure.code != ESC_OK)
    return;
  if (rc < 0) {
    esc_error_set(&d->failure, ESC_EINVAL,
                  "decide returned %d without esc_decision_reject", rc);
    return;
  }
  d->reject_code = rc;
  snprintf(d->reject_msg, sizeof d->reject_msg, "rejected with code %d", rc);
}

/* An event whose type the decider cannot look up would be stored and then
 * fail every later load of the stream, so it never leaves decide. */
static void check_registered(esc_decision *d, const esc_decider *decider) {
  for (size_t i = 0; i < d->count && d->failure.code == ESC_OK; i++) {
    const char *name = d->events[i].type->name;
    if (!esc_event_registry_find(esc_decider_events(decider), name))
      esc_error_set(&d->failure, ESC_EINVAL,
                    "decide emitted %.64s, which the %.64s decider's event "
                    "registry lacks; it could not be read back",
                    name, decider->category ? decider->category : "(null)");
  }
}

esc_status esc__decision_run(esc_decision *d, const esc_decider *decider,
                             const void *state, const void *command,
                             esc_error *err) {
  if (!d || !decider || !decider->decide)
    return esc_error_set(err, ESC_EINVAL,
                         "decide: decision, decider or decide is NULL");
  reset(d);
  settle(d, decider->decide(state, command, d));
  if (d->reject_code == 0)
    check_registered(d, decider);
  if (d->failure.code != ESC_OK) {
    drop_events(d);
    d->reject_code = 0;
    return esc_error_set(err, d->failure.code, "%s", d->failure.msg);
  }
  if (d->reject_code > 0) {
    drop_events(d);
    return esc_error_set(err, ESC_EREJECTED, "%s", d->reject_msg);
  }
  return ESC_OK;
}

/* The counter decider (see counter.h). */
#include "counter.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

static int incremented_encode(const void *event, msgpack_packer *pk) {
  const counter_incremented_t *e = event;
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "by");
  return msgpack_pack_int64(pk, e->by);
}

static esc_status incremented_decode(const msgpack_object *obj, void *event,
                                     esc_error *err) {
  counter_incremented_t *e = event;
  if (!esc_map_i64(obj, "by", &e->by)) {
    if (err) {
      err->code = ESC_EINVAL;
      snprintf(err->msg, sizeof err->msg,
               "Incremented: \"by\" must be an integer");
    }
    return ESC_EINVAL;
  }
  return ESC_OK;
}

static int reset_encode(const void *event, msgpack_packer *pk) {
  (void)event;
  return msgpack_pack_map(pk, 0);
}

static esc_status reset_decode(const msgpack_object *obj, void *event,
                               esc_error *err) {
  (void)obj;
  (void)event;
  (void)err;
  return ESC_OK;
}

const esc_event_type counter_incremented = {
    "Incremented",      1,   sizeof(counter_incremented_t), incremented_encode,
    incremented_decode, NULL};

const esc_event_type counter_reset = {
    "Reset", 1, sizeof(counter_reset_t), reset_encode, reset_decode, NULL};

/* ------------------------------------------------------------------------
 * The registry and deciders, built once
 * ------------------------------------------------------------------------ */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static esc_event_registry *registry;
static esc_decider plain, snapshots;

static void fill_decider(esc_decider *d, const esc_event_registry *reg,
                         int snapshot_every);

static void build(void) {
  esc_error err = ESC_ERROR_INIT;
  registry = esc_event_registry_new(&err);
  if (!registry ||
      esc_event_registry_add(registry, &counter_incremented, &err) != ESC_OK ||
      esc_event_registry_add(registry, &counter_reset, &err) != ESC_OK) {
    fprintf(stderr, "counter: cannot build the registry: %s\n", err.msg);
    abort();
  }
  fill_decider(&plain, registry, 0);
  fill_decider(&snapshots, registry, 100);
}

const esc_event_registry *counter_events(void) {
  pthread_once(&once, build);
  return registry;
}

const esc_decider *counter_decider(void) {
  pthread_once(&once, build);
  return &plain;
}

const esc_decider *counter_decider_snapshots(void) {
  pthread_once(&once, build);
  return &snapshots;
}

/* ------------------------------------------------------------------------
 * The decider
 * ------------------------------------------------------------------------ */

static void counter_init(void *state) {
  counter_state *s = state;
  s->value = 0;
  s->events = 0;
}

static void counter_evolve(void *state, const esc_event *event) {
  counter_state *s = state;
  if (event->type == &counter_incremented)
    s->value += ((const counter_incremented_t *)event->data)->by;
  else if (event->type == &counter_reset)
    s->value = 0;
  s->events++;
}

static int counter_decide(const void *state, const void *command,
                          esc_decision *d) {
  const counter_state *s = state;
  const counter_cmd *c = command;
  switch (c->kind) {
  case COUNTER_INCREMENT:
    if (c->by <= 0)
      return esc_decision_reject(
          d, COUNTER_EINVAL, "increment must be positive, got %" PRId64, c->by);
    esc_decision_emit(d, &counter_incremented,
                      &(counter_incremented_t){.by = c->by});
    return 0;
  case COUNTER_RESET:
    if (s->value != 0)
      esc_decision_emit(d, &counter_reset, &(counter_reset_t){0});
    return 0;
  case COUNTER_ADD_NOTHING:
    return 0;
  }
  return esc_decision_reject(d, COUNTER_EINVAL, "unknown command kind %d",
                             (int)c->kind);
}

/* ------------------------------------------------------------------------
 * Snapshots: {"value": v, "events": n}
 * ------------------------------------------------------------------------ */

static int counter_encode_state(const void *state, msgpack_packer *pk) {
  const counter_state *s = state;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "value");
  msgpack_pack_int64(pk, s->value);
  esc_pack_key(pk, "events");
  return msgpack_pack_int64(pk, s->events);
}

static esc_status counter_decode_state(const msgpack_object *obj, void *state,
                                       esc_error *err) {
  counter_state *s = state;
  if (!esc_map_i64(obj, "value", &s->value) ||
      !esc_map_i64(obj, "events", &s->events)) {
    if (err) {
      err->code = ESC_EINVAL;
      snprintf(err->msg, sizeof err->msg,
               "counter snapshot: \"value\" and \"events\" must be integers");
    }
    return ESC_EINVAL;
  }
  return ESC_OK;
}

static void fill_decider(esc_decider *d, const esc_event_registry *reg,
                         int snapshot_every) {
  memset(d, 0, sizeof *d);
  d->category = "counter";
  d->events = reg;
  d->state_size = sizeof(counter_state);
  d->init = counter_init;
  d->evolve = counter_evolve;
  d->decide = counter_decide;
  d->snapshot_every = snapshot_every;
  d->state_version = 1;
  d->encode_state = counter_encode_state;
  d->decode_state = counter_decode_state;
}

void counter_decider_init(esc_decider *d, int snapshot_every) {
  fill_decider(d, counter_events(), snapshot_every);
}

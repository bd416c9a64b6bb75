/*
 * <esc_internal/decide.h> - running a decider without a store: the
 * decision buffer, fresh states, and folding stored events into a state.
 * The command module executes with these; the test kit (and process
 * managers) run deciders through them too, so all agree on what a
 * decision is. Internal: not installed, never seen by users
 * (docs/architecture.md).
 */
#ifndef ESC_INTERNAL_DECIDE_H
#define ESC_INTERNAL_DECIDE_H

#include <esc/command.h>

/* One event decide emitted, encoded. */
struct esc__emitted {
  const esc_event_type *type;
  void *data; /* malloc'ed msgpack */
  size_t len;
};

struct esc_decision {
  struct esc__emitted *events;
  size_t count;
  size_t cap;
  int reject_code; /* > 0: rejected */
  char reject_msg[256];
  esc_error failure; /* code != ESC_OK: an event failed to encode, or
                        decide misused the API (see decision.c) */
};

void esc__decision_init(esc_decision *d);
/* Frees the emitted events and their array; the decision can be run
 * again after. Accepts NULL. */
void esc__decision_release(esc_decision *d);

/*
 * Runs decider->decide on state. Returns ESC_OK (events in d, possibly
 * none), ESC_EREJECTED (d->reject_code and d->reject_msg set, no events),
 * or ESC_EINVAL when an event failed to encode (d->failure says which).
 * A failure outranks a rejection. decide returning > 0 without calling
 * esc_decision_reject rejects with "rejected with code N"; returning < 0
 * without it, rejecting with a code <= 0, emitting after rejecting, and
 * emitting a type missing from decider->events are ESC_EINVAL. Earlier
 * contents of d are dropped first (its array is kept for reuse).
 */
esc_status esc__decision_run(esc_decision *d, const esc_decider *decider,
                             const void *state, const void *command,
                             esc_error *err);

/* A fresh state: calloc(state_size) then init. NULL when out of memory. */
void *esc__state_new(const esc_decider *decider);
/* release_state (when set), then free. Accepts NULL. */
void esc__state_free(const esc_decider *decider, void *state);

/*
 * Folds stored events into a state, reusing one zone and one struct buffer
 * across events so a long stream costs no allocation per event.
 */
struct esc__folder {
  const esc_decider *decider;
  msgpack_zone zone;
  void *buf; /* room for the largest registered type seen so far */
  size_t buf_size;
};

/* On failure f holds nothing and esc__folder_release is a no-op. */
esc_status esc__folder_init(struct esc__folder *f, const esc_decider *decider,
                            esc_error *err);
/* Decodes rec through the decider's registry (upcasting as needed) and
 * calls evolve. Errors name the stream, version and type. */
esc_status esc__folder_apply(struct esc__folder *f, void *state,
                             const esc_recorded_event *rec, esc_error *err);
void esc__folder_release(struct esc__folder *f);

#endif

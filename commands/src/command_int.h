/*
 * Internals of the command module shared between its files and the test
 * kit: the decision buffer and the folding of stored events into a state.
 * Not installed.
 */
#ifndef ESC_COMMAND_INT_H
#define ESC_COMMAND_INT_H

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

/* What loading a stream found (load.c). */
struct esc__load_info {
  int64_t version;          /* the stream version folded up to */
  int64_t snapshot_version; /* 0: started from the initial state */
  bool snapshot_ignored;
  char snapshot_note[128];
};

/*
 * Loads a stream into state (fresh from esc__state_new): the newest usable
 * snapshot, then every event after it. A missing stream is version 0; a
 * tombstoned one is ESC_EDELETED; a truncated one that no usable snapshot
 * covers is ESC_ETRUNCATED (load.c).
 */
esc_status esc__load(esc_store *store, const esc_decider *decider,
                     const char *stream_id, void *state,
                     struct esc__folder *folder, struct esc__load_info *info,
                     esc_error *err);

/* ESC_EINVAL unless stream is a valid id of the decider's category; the
 * message starts with what ("execute"). */
esc_status esc__check_target(const esc_decider *d, const char *stream,
                             const char *what, esc_error *err);

/* Encodes state (folded up to version) with d->encode_state and stores it
 * as the stream's snapshot (truncate.c). */
esc_status esc__snapshot_store(esc_store *store, const esc_decider *d,
                               const char *stream, int64_t version,
                               const void *state, esc_error *err);

/* Event i of a command: UUIDv5(command id, decimal i). */
esc_uuid esc__command_event_id(const esc_uuid *command_id, size_t i);

/*
 * Looks for an earlier execution of command cmd (first_result.c). *found
 * says whether there was one; r then holds its result with duplicate set:
 * the events it stored (also when truncation removed them since), or the
 * outcome recorded for one that stored none (domain_code > 0: rejected).
 * A command id used on another stream is ESC_EDUPLICATE.
 */
esc_status esc__first_result(esc_store *store, const char *stream,
                             const esc_uuid *cmd, esc_command_result *r,
                             bool *found, esc_error *err);

#endif

/*
 * <esc/command.h> - the command side: deciders, execution, snapshots.
 *
 * Domain logic is a decider: an initial state, evolve(state, event) that
 * folds one event into the state, and decide(state, command) that either
 * emits new events or rejects the command with a domain error. esc_execute
 * loads a stream (from its newest usable snapshot), folds it, decides, and
 * appends with the loaded version as the expected version, deciding again
 * on a conflict, a bounded number of times.
 *
 * The events a decider emits and folds are the event types of <esc/event.h>.
 *
 * Threading: deciders are immutable once built and may be
 * shared by threads; an esc_store is per thread (see <esc/store.h>); an
 * esc_store_pool hands stores to many threads.
 */
#ifndef ESC_COMMAND_H
#define ESC_COMMAND_H

#include <esc/event.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Deciders
 * ------------------------------------------------------------------------ */

/* What decide writes its outcome into. */
typedef struct esc_decision esc_decision;

/*
 * Emits one event (encoded at once; *event is not kept). Returns ESC_OK, or
 * ESC_EINVAL when encoding failed: decide may return at once, and the
 * command fails with ESC_EINVAL whatever decide returns.
 */
ESC_API esc_status esc_decision_emit(esc_decision *d,
                                     const esc_event_type *type,
                                     const void *event);

/*
 * Rejects the command with a domain error: code > 0 and a message meant for
 * a person ("order-42 is already shipped"). Returns code, so decide can end
 * with `return esc_decision_reject(d, ORDER_SHIPPED, "...", id);`. Events
 * emitted before are dropped. A code <= 0 is a programming error: the
 * command fails with ESC_EINVAL. The last rejection wins.
 */
ESC_API int esc_decision_reject(esc_decision *d, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Domain logic for one kind of stream. Filled by the user, usually as a
 * static const. state_size bytes of state are allocated and zeroed by the
 * runtime before init (NULL: zeroed is the initial state).
 */
typedef struct esc_decider {
  const char *category; /* streams are "<category>-<id>" */
  /* Must hold every type decide emits (else the command fails with
   * ESC_EINVAL: such an event could never be loaded again). */
  const esc_event_registry *events;
  size_t state_size;
  void (*init)(void *state);
  /* Folds one stored event into the state. Must not fail: an event that is
   * in the log happened. */
  void (*evolve)(void *state, const esc_event *event);
  /* Emits events with esc_decision_emit and returns 0, or returns
   * esc_decision_reject(...). Must not have side effects: it may run again
   * on a conflict. */
  int (*decide)(const void *state, const void *command, esc_decision *d);

  /* Snapshots (optional: snapshot_every 0 disables them). Every
   * snapshot_every events the state is stored with its stream version and
   * state_version; loading starts from the newest snapshot whose
   * state_version matches, and a snapshot that fails to decode is ignored
   * and the stream replayed. */
  int snapshot_every;
  int32_t state_version;
  int (*encode_state)(const void *state, msgpack_packer *pk);
  esc_status (*decode_state)(const msgpack_object *obj, void *state,
                             esc_error *err);
  /* Optional: frees what a state owns (not the state itself). */
  void (*release_state)(void *state);
  /* The registry, when events is NULL: called each time one is needed,
   * e.g. a function ESC_EVENT_REGISTRY defines (<esc/event.h>), so a
   * decider can be a static const without a build step. */
  const esc_event_registry *(*registry)(void);
} esc_decider;

/*
 * Defines `const esc_decider *fn(void)` returning a static const decider
 * of the designated initializers given, the accessor most domains write:
 *   ESC_DECIDER(account_decider, .category = "account",
 *               .state_size = sizeof(account_state),
 *               .registry = account_events, .evolve = evolve,
 *               .decide = decide)
 */
#define ESC_DECIDER(fn, ...)                                                   \
  const esc_decider *fn(void) {                                                \
    static const esc_decider decider = {__VA_ARGS__};                          \
    return &decider;                                                           \
  }

/* The decider's registry: events, else registry() when set, else NULL. */
ESC_API const esc_event_registry *esc_decider_events(const esc_decider *d);

/* ------------------------------------------------------------------------
 * Executing commands
 * ------------------------------------------------------------------------ */

typedef struct esc_command_options {
  /* Identifies the command: event ids are UUIDv5(command_id, index), so
   * executing the same command again returns the first result and appends
   * nothing. Nil: a random id (the call is then not idempotent). */
  esc_uuid command_id;
  esc_uuid correlation_id; /* nil: the command id */
  const char *actor;       /* recorded in metadata; may be NULL */
  int max_attempts;        /* decide+append attempts on conflict; default 25 */
  int backoff_ms;          /* first retry's backoff, doubled, jittered; 2 */
  int backoff_max_ms;      /* default 200 */
  /* What caused the command (the event a process manager reacted to,
   * say); nil: the command id itself. */
  esc_uuid causation_id;
  /* The user's own fields, written into every event's metadata (limits:
   * esc_metadata_field in <esc/store.h>); borrowed for the call. */
  const esc_metadata_field *metadata;
  size_t metadata_count;
} esc_command_options;

#define ESC_COMMAND_OPTIONS_INIT                                               \
  { {{0}}, {{0}}, NULL, 0, 0, 0, {{0}}, NULL, 0 }

typedef struct esc_command_result {
  size_t event_count;    /* events appended (0: the command changed nothing) */
  int64_t first_version; /* of the first appended event */
  int64_t version;       /* the stream's version after the command */
  esc_position position; /* read-your-writes token of the last event */
  esc_uuid command_id;   /* the id used (generated when none was given) */
  int attempts;          /* decide+append rounds it took (1: no conflict) */
  bool duplicate;        /* executed before: this is the first result */
  int domain_code;       /* > 0 when the decider rejected the command */
  char domain_msg[256];
  int64_t snapshot_version; /* the snapshot loading started from; 0: none */
  /* A snapshot was found but not used (old state_version or it failed to
   * decode); the stream was replayed instead. Says why, for logs. */
  bool snapshot_ignored;
  char snapshot_note[128];
} esc_command_result;

/*
 * Executes one command against one stream. Returns ESC_OK when the events
 * were appended (or there were none, or the command had been executed
 * before), ESC_EREJECTED when decide rejected the command (result has code
 * and message; nothing was appended), ESC_ECONFLICT when every attempt
 * lost a race, or a store error. The stream id's category must be the
 * decider's. Every event carries metadata: correlation id, causation id
 * (the options' causation id, else the command id), actor, time, and the
 * options' own fields (ESC_EINVAL naming the field when one breaks the
 * limits of esc_metadata_field).
 *
 * An append whose reply was lost (ESC_EUNKNOWN from the store) is settled
 * here when the server can be reached: the next attempt uses the same
 * event ids, so it appends them or returns what the lost one stored (with
 * duplicate = true). When it cannot be reached, esc_execute returns
 * ESC_EUNKNOWN: the command may have been applied; execute it again with
 * the same command_id (result->command_id) to settle it.
 */
ESC_API esc_status esc_execute(esc_store *store, const esc_decider *decider,
                               const char *stream_id, const void *command,
                               const esc_command_options *opts,
                               esc_command_result *result, esc_error *err);

/*
 * Loads a stream's current state without deciding anything (for queries
 * and tests): newest usable snapshot, then the events after it. state must
 * hold decider->state_size bytes; call decider->release_state (if any) when
 * done. *version (may be NULL) gets the version folded up to.
 */
ESC_API esc_status esc_load_state(esc_store *store, const esc_decider *decider,
                                  const char *stream_id, void *state,
                                  int64_t *version, esc_error *err);

/*
 * Truncates a stream below version `before` without losing its state: it
 * loads the state with the decider, stores it as the stream's snapshot at
 * the version loaded (the stream's current one), and only then truncates
 * (esc_stream_truncate, which a snapshot at or after the last removed
 * version lets through). Loading the stream afterwards starts from that
 * snapshot, so the state is the one a full replay gave. *removed (may be
 * NULL) gets the count. Needs the owner role.
 *
 * The decider must keep snapshots (snapshot_every > 0, encode_state and
 * decode_state), else ESC_EINVAL: without them a truncated stream could
 * never be loaded. ESC_ETRUNCATED when the stream cannot be loaded (it
 * was truncated before without a snapshot) or its snapshot could not be
 * replaced by a usable one; nothing is removed then.
 */
ESC_API esc_status esc_truncate_stream(esc_store *store,
                                       const esc_decider *decider,
                                       const char *stream_id, int64_t before,
                                       const char *reason, int64_t *removed,
                                       esc_error *err);

/*
 * Every esc_execute call of this process since it started (all threads):
 * how long each took end to end (load, decide, append, retries) and how
 * it ended. Relaxed atomics, as esc_append_metrics.
 */
typedef struct esc_command_metrics {
  esc_latency duration;
  uint64_t conflicts;  /* attempts that lost a race to a concurrent writer */
  uint64_t retries;    /* attempts after the first (conflicts, lost replies) */
  uint64_t duplicates; /* commands answered by their first result */
  uint64_t rejected;   /* decided ESC_EREJECTED */
  uint64_t failures;   /* failed otherwise (conflicts to the end included) */
} esc_command_metrics;

ESC_API void esc_command_metrics_read(esc_command_metrics *out);

/* ------------------------------------------------------------------------
 * A pool of stores for many threads
 * ------------------------------------------------------------------------ */

typedef struct esc_store_pool esc_store_pool;

/* Opens size stores (connections) up front. NULL and err on failure. */
ESC_API esc_store_pool *esc_store_pool_new(const char *conninfo,
                                           const esc_store_options *opts,
                                           size_t size, esc_error *err);
/* All stores must have been released. Accepts NULL. */
ESC_API void esc_store_pool_free(esc_store_pool *pool);
/* Blocks until a store is free; the pool is thread-safe. */
ESC_API esc_store *esc_store_pool_acquire(esc_store_pool *pool);
ESC_API void esc_store_pool_release(esc_store_pool *pool, esc_store *store);

/* esc_execute with a store borrowed from the pool for the call. */
ESC_API esc_status esc_execute_pooled(
    esc_store_pool *pool, const esc_decider *decider, const char *stream_id,
    const void *command, const esc_command_options *opts,
    esc_command_result *result, esc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ESC_COMMAND_H */

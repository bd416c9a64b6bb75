/*
 * Internals of the projections module, shared between its files. Not
 * installed. The Redis key layout and connections, which queries share,
 * are in <esc_internal/readmodel.h>.
 */
#ifndef ESC_PROJECTION_INT_H
#define ESC_PROJECTION_INT_H

#include <esc/projection.h>
#include <esc_internal/pg.h>
#include <esc_internal/readmodel.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

/* ------------------------------------------------------- partition.c -- */

/* FNV-1a, 64 bits: stable across machines, processes and versions. */
uint64_t esc__fnv1a64(const void *data, size_t len);
/* The partition (0..partitions-1) a stream belongs to. */
int esc__partition_of(const char *stream_id, int partitions);

/* ----------------------------------------------------------- batch.c -- */

/*
 * The batch a handler writes into: every queued command's arguments in one
 * flat list, each command preceded by its argument count, ready to be sent
 * as ARGV of the apply script.
 */
/* Bytes that never move once handed out: a chain of chunks, each twice
 * the size of the one before; emptying keeps only the newest (biggest), so
 * a steady load stops allocating. */
struct esc__arena {
  struct esc__chunk *head; /* newest */
  size_t len;              /* used of head */
  size_t cap;              /* size of head */
};

/* An event of the batch that queued commands: where the checkpoint stood
 * before it (the previous event read, or the batch's start), its own
 * position, and how many commands it queued. */
struct esc__ctx_event {
  esc_position before;
  esc_position at;
  size_t ncommands;
};

struct esc_projection_ctx {
  const esc_projection *projection;
  int partition;
  int64_t generation;
  char prefix[ESC__KEY_MAX]; /* "NS:P:g<G>:" */

  char **args; /* binary-safe copies in `bytes` */
  size_t *arglens;
  size_t nargs;
  size_t cap;
  size_t ncommands;
  size_t arg_bytes; /* sum of arglens: what the batch sends, the byte
                       budget's measure */
  struct esc__arena bytes;

  /* Where the current event's commands began, to drop them on failure. */
  size_t event_nargs;
  size_t event_ncommands;

  /* Which event each command belongs to (esc__ctx_end_event), so a
   * command that fails in Redis is attributed to one event: only events
   * that queued commands are listed, in order. */
  struct esc__ctx_event *events;
  size_t nevents;
  size_t events_cap;

  /* Scratch strings (esc_ctx_key, esc_ctx_i64) for the current event. */
  struct esc__arena scratch;
  bool scratch_failed; /* an allocation failed during this event */
};

/* base: the projection's key base ("NS:P", esc__key_base), copied. */
void esc__ctx_init(esc_projection_ctx *ctx, const esc_projection *p,
                   const char *base, int partition, int64_t generation);
/* Starts an event: marks the batch and clears the scratch strings. */
void esc__ctx_begin_event(esc_projection_ctx *ctx);
/* Drops the commands queued since esc__ctx_begin_event. */
void esc__ctx_drop_event(esc_projection_ctx *ctx);
/* Ends an event whose handler succeeded: records which commands are its
 * (none: nothing is recorded). ESC_ENOMEM drops them, as a failed event. */
esc_status esc__ctx_end_event(esc_projection_ctx *ctx, esc_position before,
                              esc_position at);
/* Takes back the event just ended (esc__ctx_end_event, or one that
 * queued nothing): its commands are dropped and it is no longer listed,
 * so the batch ends before it. */
void esc__ctx_undo_event(esc_projection_ctx *ctx);
/* Empties the batch (keeps the memory). */
void esc__ctx_reset(esc_projection_ctx *ctx);
void esc__ctx_release(esc_projection_ctx *ctx);

/* ----------------------------------------------------------- redis.c -- */

enum esc__apply_outcome {
  ESC__APPLIED,        /* commands and checkpoint applied */
  ESC__STALE,          /* checkpoint was not the expected one: re-read */
  ESC__VANISHED,       /* checkpoint or generation key is gone: Redis lost
                          data; rebuild */
  ESC__MOVED,          /* the serving generation is not the expected one */
  ESC__COMMAND_FAILED, /* a command failed; the events before its event
                          were applied, the checkpoint is just before it
                          and the commands of it that took effect are
                          recorded (see apply.lua) */
  ESC__NOT_RUN,        /* NOSCRIPT: the script was not loaded, nothing ran;
                          the next send loads it */
  ESC__REFUSED         /* a command was refused for a passing reason
                          (OOM, READONLY) before anything was written */
};

struct esc__apply_result {
  enum esc__apply_outcome outcome;
  char checkpoint[ESC_POSITION_TOKEN_MAX]; /* current, when STALE */
  int64_t generation;                      /* current, when MOVED */
  size_t failed_command;                   /* index, when COMMAND_FAILED */
  char error[200];                         /* Redis's text, likewise */
  /* When COMMAND_FAILED: the event the command belongs to (its index in
   * the batch's events, its position and the checkpoint before it, which
   * the checkpoint is now) and how many of its commands took effect. */
  size_t failed_event;
  esc_position failed_at;
  esc_position failed_before;
  size_t commands_done;
};

/* Whether a Redis error is passing (the server is loading, busy, a
 * replica, out of memory): worth retrying as it is, never a reason to
 * park an event. */
bool esc__redis_error_transient(const char *error);

/* Where a batch goes and the compare-and-set that guards it. */
struct esc__apply_request {
  const char *generation_key;
  int64_t serving_generation;
  const char *checkpoint_key;
  const char *expected; /* "": the checkpoint key must be absent */
  const char *new_checkpoint;
  const char *guard_key; /* NULL, or a key that must be absent and is
                            then set (dead letter retries) */
  size_t skip;           /* with a guard: commands of the event that took
                            effect before (the dead letter's record) */
};

/*
 * The atomic unit of a projection (one EVALSHA of the apply script):
 * if GET generation_key == serving_generation and GET checkpoint_key ==
 * expected, run the batch's commands in order and SET checkpoint_key
 * new_checkpoint (and the guard key, if any). The batch's events
 * (esc__ctx_end_event) tell which command is whose; commands after the
 * last recorded event count as one more event ending at new_checkpoint.
 * The partial record is the checkpoint key + ":partial".
 *
 * esc__redis_apply_send writes it out and returns, so the caller can work
 * while Redis runs it; esc__redis_apply_receive reads its reply. One apply
 * may be in flight; any other command first reads and drops its reply.
 * esc__redis_apply does both, loading the script again once on NOSCRIPT.
 */
esc_status esc__redis_apply_send(esc__redis *r,
                                 const struct esc__apply_request *req,
                                 const esc_projection_ctx *batch,
                                 esc_error *err);
esc_status esc__redis_apply_receive(esc__redis *r,
                                    struct esc__apply_result *out,
                                    esc_error *err);
esc_status esc__redis_apply(esc__redis *r, const struct esc__apply_request *req,
                            const esc_projection_ctx *batch,
                            struct esc__apply_result *out, esc_error *err);

/*
 * Switches a projection from generation from to to when every partition
 * has caught up (SCARD ready_key == partitions): sets the generation and
 * version keys and deletes the rebuild keys, atomically. *switched tells.
 */
esc_status esc__redis_switch(esc__redis *r, const char *base, int64_t from,
                             int64_t to, int32_t version, int partitions,
                             bool *switched, esc_error *err);

/*
 * Deletes up to about `budget` keys matching "NS:P:g<G>:*" (base "NS:P")
 * with SCAN + UNLINK, resuming at *cursor (start with 0); *cursor is 0
 * again when done.
 */
esc_status esc__redis_delete_generation(esc__redis *r, const char *base,
                                        int64_t generation, uint64_t *cursor,
                                        size_t budget, esc_error *err);

/* -------------------------------------------------------- legacy.c -- */

/* ESC_EBUSY, saying how to move them, when Redis holds this store's keys
 * of projection proj from a release before key namespaces ("P:generation"
 * exists, and "P:owner" is absent or this store's identity); ESC_OK when
 * there are none, or they belong to another store. A worker asks before
 * it creates a generation in its namespace: building one beside the old
 * keys would serve an empty model while the old one is forgotten. */
esc_status esc__legacy_refuse(esc__redis *r, const char *proj,
                              const char *identity, const char *schema,
                              esc_error *err);

/* ----------------------------------------------------------- lease.c -- */

/* The advisory lock key of a partition's lease: of partition `partition`
 * in the layout of `partitions`, so two layouts never share a lease. */
int64_t esc__lease_key(const char *schema, const char *proj, int partitions,
                       int partition);
/* pg_try_advisory_lock on conn (a connection used for nothing else). */
esc_status esc__lease_try(PGconn *conn, int64_t key, bool *got, esc_error *err);
esc_status esc__lease_release(PGconn *conn, int64_t key, esc_error *err);
/* Whether conn still holds the lease (the connection is alive and the lock
 * is in pg_locks for this backend). */
bool esc__lease_held(PGconn *conn, int64_t key);

/* -------------------------------------------------------- registry.c -- */

/* A projection's partition layout as the store records it, and whether
 * `esc rebuild NAME` asked for a rebuild not yet started. */
struct esc__layout {
  int partitions;         /* the layout; set by the first registration */
  int repartition_to;     /* a pending change to this count; 0: none */
  bool rebuild_requested; /* (esc__registry_read only) */
};

/* Records that a worker runs p (name, version, categories; the partition
 * count only when the projection is new) and returns the layout. */
esc_status esc__registry_upsert(PGconn *conn, const char *schema,
                                const esc_projection *p,
                                struct esc__layout *layout, esc_error *err);
/* Records that a worker runs subscription p (its projection-shaped
 * definition; the first registration sets the layout and makes its
 * checkpoints at start) and returns the layout and the generation of its
 * checkpoints. ECONFLICT when a projection has the name. */
esc_status esc__registry_subscribe(PGconn *conn, const char *schema,
                                   const esc_projection *p,
                                   const esc_position *start,
                                   struct esc__layout *layout,
                                   int64_t *generation, esc_error *err);
/* Reads the registry row of name; *found false when there is none (then
 * *out is a layout of 1 and nothing requested). */
esc_status esc__registry_read(PGconn *conn, const char *schema,
                              const char *name, struct esc__layout *out,
                              bool *found, esc_error *err);
/* A rebuild with `partitions` partitions switched: when that was the
 * pending repartition, it becomes the layout. */
esc_status esc__registry_layout_switched(PGconn *conn, const char *schema,
                                         const char *name, int partitions,
                                         esc_error *err);
/* Marks the request taken (a rebuild started). */
esc_status esc__registry_rebuild_taken(PGconn *conn, const char *schema,
                                       const char *name, esc_error *err);

/* ------------------------------------------------------ deadletter.c -- */

/* Parks ev with why it failed, after how many attempts, and how many of
 * its commands took effect in Redis (0 for a handler error). */
esc_status esc__dead_letter_park(PGconn *conn, const char *schema,
                                 const char *proj, int partition,
                                 const esc_recorded_event *ev,
                                 const char *error, int attempts,
                                 size_t commands_applied, esc_error *err);
/* Letters of this projection partition in state "retry". *out malloc'ed. */
esc_status esc__dead_letter_take_retries(PGconn *conn, const char *schema,
                                         const char *proj, int partition,
                                         esc_dead_letter **out, size_t *count,
                                         esc_error *err);
/* Resolved (ok) or parked again with a new error and, unless
 * commands_applied < 0, how many of its commands have taken effect. */
esc_status esc__dead_letter_finish(PGconn *conn, const char *schema, int64_t id,
                                   bool ok, const char *error,
                                   int commands_applied, esc_error *err);

#endif

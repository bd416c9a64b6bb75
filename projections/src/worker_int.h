/*
 * The worker's own structures, shared by worker.c (lifecycle and loop),
 * track.c (one batch: read, handle, apply) and generation.c (serving
 * generation, rebuilds, the switch, deleting old keys).
 */
#ifndef ESC_WORKER_INT_H
#define ESC_WORKER_INT_H

#include "projection_int.h"
#include <esc_internal/stats.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* An event whose commands failed inside Redis (track.c): it is retried
 * after a pause (the checkpoint is just before it), then given up on per
 * the projection's on_error, as a handler error is. Passing failures (OOM,
 * a replica) are retried without end and never counted. */
struct redis_failure {
  bool pending;         /* a failure waits for its retry */
  bool give_up;         /* attempts spent: park or stop when it comes next */
  esc_position at;      /* the event (START: not known, nothing written) */
  int attempts;         /* failures of that event in a row */
  int passing;          /* passing failures in a row (for the pause) */
  size_t done;          /* of its commands, how many took effect */
  int64_t retry_ms;     /* when the track may run again */
  char error[200];      /* Redis's text */
};

/* One generation of one partition being written: the live track writes the
 * serving generation, the rebuild track the next one. */
struct track {
  int64_t generation; /* 0: not set up */
  esc_position checkpoint;
  bool has_checkpoint; /* false: start of the log */
  int64_t processed;   /* events handled since the track was set up */
  bool idle;           /* the last read found nothing */
  bool stopped;        /* a handler or Redis error with ESC_ON_ERROR_STOP
                          (or a "failed ..." checkpoint of old), or a
                          vanished checkpoint: it waits for someone to
                          look (a rebuild clears it) */
  char stop_reason[200]; /* set when an error stopped it: what and why */
  struct redis_failure failure;
  esc_projection_ctx ctx;
  /* Progress of a long replay (track.c, report_progress). */
  int64_t busy_since_ms;   /* 0: idle */
  int64_t progress_ms;     /* when the last line was logged (or due) */
  int64_t progress_events; /* processed then */
  int64_t progress_global; /* the checkpoint's global position then */
  bool reported;           /* a line was logged since it got busy */
};

struct proj;

/* What a partition's batches did (worker_metrics.c): the worker thread's
 * own figures, copied into part.pub under the metrics lock. */
struct part_counts {
  int64_t applied;
  int64_t batches;
  int64_t parked;
  int64_t retried;
  uint64_t buckets[ESC_BATCH_DURATION_BUCKETS + 1];
  double seconds;
};

/* A projection partition this worker may run. */
struct part {
  size_t proj_index; /* into esc_worker.projs, which may move while adding */
  struct proj *proj; /* set when the run starts */
  int index;
  PGconn *lease_conn;
  int64_t lease_key;
  bool leased;
  int64_t next_lease_ms;   /* when to try (or check) the lease next */
  int64_t next_retries_ms; /* when to look for dead letter retries next */
  bool ready;              /* set up against the current generation */
  /* The rebuild track caught up with the live one: from then on the live
   * track applies nothing the rebuild has not (track.c), so whenever the
   * switch comes the new generation holds all the serving one does and no
   * reader sees a total go back. */
  bool rebuild_caught_up;
  struct track live;
  struct track rebuild;
  struct part_counts counts; /* the worker thread's */
  esc_partition_metrics pub; /* under esc_worker.metrics_lock */
};

/* The worker's connections and loop as esc_worker_metrics_get reports
 * them; under esc_worker.metrics_lock. */
struct conn_metrics {
  bool running;
  int64_t round_ms; /* when a round last ended; 0: none yet */
  bool up[2];       /* by enum esc__conn */
  bool ever[2];     /* connected once: the next connection is a reconnect */
  int64_t reconnects[2];
  char last_error[256];
  bool replica;         /* a standby is configured (pg_read_url) */
  bool replica_reading; /* and the log is read from it now */
  int64_t replica_lag_events;
};

/* The worker's standby (replica.c): when it was first seen behind the
 * primary (0: not behind), whether it is abandoned and when to look at
 * it again, with the primary's head at that look (mark). */
struct replica_state {
  int64_t behind_since_ms;
  bool abandoned;
  int64_t recheck_ms;
  esc_position mark;
  bool has_mark;
  int64_t lag_events; /* primary head minus standby head, last look */
};

/* What differs between a projection and a durable subscription: how a
 * held partition's tracks take a step (the apply step: handlers queueing
 * Redis commands applied with the checkpoint in one script, vs. handlers
 * delivering, then a PostgreSQL checkpoint) and its periodic
 * bookkeeping. worker.c runs the leases,
 * rounds, waits, reconnects and dead letter retries for both; track.c
 * runs handlers, retries and give-ups for both. */
struct esc__consumer_ops {
  esc_consumer_kind kind;
  /* Steps the tracks of a partition whose lease this worker holds;
   * *worked when they handled events. */
  esc_status (*step)(esc_worker *w, struct part *pt, bool *worked,
                     esc_error *err);
  /* pj's part of a round's bookkeeping (rebuild requests, layout). */
  esc_status (*bookkeeping)(esc_worker *w, struct proj *pj, int64_t now,
                            esc_error *err);
};
extern const struct esc__consumer_ops esc__projection_ops;
extern const struct esc__consumer_ops esc__subscription_ops;

/* How often a consumer looks at its registry row and dead letters. */
#define ESC__BOOKKEEPING_MS 1000

/* Per projection (or subscription): the generation picture shared by its
 * partitions. */
struct proj {
  const esc_projection *def; /* a subscription's: built from it (sub_def) */
  const struct esc__consumer_ops *ops;
  /* A subscription: its definition, the projection-shaped copy that the
   * shared code reads (name, filters, partitions, registry, on_error,
   * max_attempts; no handler), and the generation of its checkpoints
   * (its layout's, from registration). NULL/0 for a projection. */
  const esc_subscription *sub;
  esc_projection *sub_def;
  int64_t sub_generation;
  int64_t serving;           /* the generation queries read; 0: unknown yet */
  int serving_partitions;    /* the serving generation was built with; its
                                live tracks run only when the definition has as
                                many */
  int64_t building;          /* the generation a rebuild writes that this
                                worker runs (its version and partition count);
                                0: none */
  int64_t rebuilding;        /* the generation of any rebuild in progress,
                                this worker's or not; 0: none */
  int rebuild_partitions;    /* and its partition count */
  struct esc__layout layout; /* the store's (PostgreSQL), read at
                                registration and every bookkeeping round */
  int64_t deleting; /* an old generation whose keys are being deleted */
  uint64_t delete_cursor;
  int64_t delete_after_ms; /* a grace period after the switch */
  int64_t next_request_ms; /* when to look for `esc rebuild` requests */
  bool registered;
  char base[ESC__KEY_MAX]; /* "NS:P", where its keys start; "" until the
                              namespace is known (connect_all) */
};

struct esc_worker {
  esc_worker_options opts;
  char *schema;
  char identity[37];  /* the store's (esc_store_identity); "" until read */
  /* Where every Redis key of the store starts (esc__namespace): the
   * configured prefix from the start, else derived once identity is
   * read; "" until then. */
  char ns[ESC__NAMESPACE_SIZE];
  bool order_checked; /* the log's recorded order check was read: clean */
  char *pg_url;
  char *redis_url;
  esc_store *store; /* the primary: heads, waits (and reads, without a
                       standby) */
  char *pg_read_url; /* a standby to read the log from; NULL: none */
  esc_store *reader; /* on it; NULL until connected (esc__reader) */
  struct replica_state replica;
  PGconn *pg;       /* registry and dead letters */
  esc__redis *redis;
  struct proj *projs;
  size_t nprojs;
  struct part *parts;
  size_t nparts;
  /* Set by esc_worker_stop from any thread or a signal handler: an atomic
   * (lock-free, so async-signal-safe), where volatile would be a data
   * race between threads. */
  atomic_int stop;
  /* Decoding events for handlers. */
  msgpack_zone zone;
  void *decoded;
  size_t decoded_size;
  esc_position round_head; /* $all head readable where the log is read,
                              when the current round began */
  esc_position primary_head; /* and on the primary */
  bool has_round_head;     /* taken for this round (see round_once) */
  bool last_round_worked;
  int64_t last_failure_ms; /* when a round last failed (back_off) */
  char last_failure[256];  /* and why ("" after a good round) */
  uint64_t jitter;         /* state of esc__backoff_ms's random numbers */
  esc_worker_stats stats;  /* what reads and batches held (track.c) */
  /* Guards every part's pub, conn, and parts/nparts themselves against
   * esc_worker_metrics_get on another thread (worker_metrics.c). */
  pthread_mutex_t metrics_lock;
  struct conn_metrics conn;
};

/* worker.c */
int64_t esc__now_ms(void);
/* A consumer's name ([a-z0-9_], 1..48) and categories are valid. */
esc_status esc__check_names(const char *name, const char *const *categories,
                            esc_error *err);
/* Adds a consumer: a projection (sub NULL), or a subscription with the
 * projection-shaped definition built from it (sub_def, malloc'ed, owned
 * by the worker from now on, even on failure). */
esc_status esc__worker_enlist(esc_worker *w, const esc_projection *p,
                              const esc_subscription *sub,
                              esc_projection *sub_def, esc_error *err);
/* The pause before retry number `attempt` (1, 2, ...): base doubling per
 * attempt up to cap, then a random part of it taken off (at most half),
 * so workers failing together do not retry together. */
int esc__backoff_ms(esc_worker *w, int attempt, int base_ms, int cap_ms);
void esc__worker_log(esc_worker *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* esc__worker_log about partition pt (may be NULL) and event e (may be
 * NULL), at level: the records of opts.log_records carry them. */
void esc__worker_log_at(esc_worker *w, esc_log_level level,
                        const struct part *pt, const esc_recorded_event *e,
                        const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* The byte budget of reads and batches (opts.max_batch_bytes, checked
 * by esc_worker_new, or the default). */
size_t esc__batch_bytes(const esc_worker *w);

/* replica.c: reading the log from a standby. */
/* Copies the configured standby URL (options, else ESC_PG_READ_URL). */
esc_status esc__replica_configure(esc_worker *w, esc_error *err);
/* Where events are read: the standby, unless none or abandoned. */
esc_store *esc__reader(const esc_worker *w);
/* Opens the standby's store if configured and not open; an unreachable
 * one is an error until it is abandoned (replica_max_lag_ms). */
esc_status esc__replica_connect(esc_worker *w, const esc_store_options *so,
                                esc_error *err);
void esc__replica_forget(esc_worker *w);
/* Takes round_head (where the log is read) and primary_head, and follows
 * the standby's lag (abandoning or taking it back). */
esc_status esc__replica_heads(esc_worker *w, esc_error *err);
/* The idle wait of a round: for a wake-up from the primary, or briefly
 * while the standby replays what the primary has. */
void esc__replica_wait(esc_worker *w, int max_ms, int poll_ms);
void esc__replica_publish(esc_worker *w);

/* worker_metrics.c: the figures esc_worker_metrics_get copies. Every
 * function but _get runs on the worker's thread. */
enum esc__conn { ESC__CONN_PG = 0, ESC__CONN_REDIS = 1 };
/* A connection of that kind was opened (ok) or could not be. */
void esc__metrics_connected(esc_worker *w, enum esc__conn which, bool ok);
/* A connection of that kind turned out broken. */
void esc__metrics_lost(esc_worker *w, enum esc__conn which);
/* A round ended; failure: why it failed, NULL for a good one. */
void esc__metrics_round(esc_worker *w, const char *failure);
void esc__metrics_running(esc_worker *w, bool running);
/* Copies pt's state and counts into pt->pub. */
void esc__metrics_publish(esc_worker *w, struct part *pt);
/* Redis applied a batch of pt's of `events` events in `seconds`. */
void esc__metrics_batch(struct part *pt, size_t events, double seconds);

/* track.c: what projections and subscriptions share. */
/* Whether e is for pt: its categories, event types and partition. */
bool esc__track_wanted(const struct part *pt, const esc_recorded_event *e);
/* Runs e through t's handler (a projection's into t->ctx, a
 * subscription's delivery), or gives up on it per on_error (parked, or t
 * stopped: *stop). A subscription handler's passing error leaves e
 * pending in t->failure for a retry after a pause (*stop too). before:
 * the checkpoint before e (projections). */
esc_status esc__track_take(esc_worker *w, struct part *pt, struct track *t,
                           const esc_recorded_event *e, esc_position before,
                           bool *stop, esc_error *err);
/* Counts a page read into the worker's stats; whether more may follow. */
bool esc__track_note_read(esc_worker *w, const esc_events *ev, size_t batch);
/* A batch of `taken` events moved t to upto. */
void esc__track_moved_to(struct track *t, esc_position upto, size_t taken);
/* Called after every step of a track: progress lines of long replays. */
void esc__track_report_progress(esc_worker *w, const struct part *pt,
                                struct track *t, bool worked);
/* How long one track may keep going while it has full pages to do. */
int64_t esc__track_burst_end(const esc_worker *w, const struct track *t);

/* Whether a subscription handler's status is passing (retried without
 * end, never parked): ECONN, ETIMEDOUT, EBUSY, EUNKNOWN. */
bool esc__handler_passing(esc_status rc);

/* subscription.c: registers pj's subscription in the store (the first
 * registration makes its checkpoints, at the start its definition asks
 * for) and reads back its layout and generation. */
esc_status esc__subscription_register(esc_worker *w, struct proj *pj,
                                      esc_error *err);
/* subscription.c: one delivery attempt of a decoded event to pt's
 * subscription handler. */
esc_status esc__subscription_deliver(esc_worker *w, const struct part *pt,
                                     const esc_event *ev, int attempt,
                                     esc_error *err);

/* track.c: reads and applies one batch; *worked when it handled events.
 * Connection errors come back for the caller to reconnect. */
esc_status esc__track_step(esc_worker *w, struct part *pt, struct track *t,
                           bool *worked, esc_error *err);
/* Re-runs parked events whose retry was requested. */
esc_status esc__track_retry_dead_letters(esc_worker *w, struct part *pt,
                                         esc_error *err);

/* layout.c */
/* The partition count of a definition (0 means 1). */
int esc__def_partitions(const esc_projection *p);
/* The count new generations get: a pending repartition's, else the
 * layout's. */
int esc__layout_target(const struct esc__layout *l);
/* Whether this worker's count may run pj under pj->layout; ECONFLICT
 * with a message naming both counts (and logged) when not. */
esc_status esc__layout_admit(esc_worker *w, const struct proj *pj,
                             esc_error *err);
/* Registers pj (a projection or a subscription) and admits it (on start,
 * and when its row is gone). */
esc_status esc__layout_register(esc_worker *w, struct proj *pj, esc_error *err);
/* Re-reads pj->layout (a repartition or another worker's switch changes
 * it), admits it again, and finishes in PostgreSQL a switch to the pending
 * count that Redis already serves. *requested: an `esc rebuild` request
 * is pending. */
esc_status esc__layout_refresh(esc_worker *w, struct proj *pj, bool *requested,
                               esc_error *err);

/* generation.c */
/* Reads (or creates) the serving generation and whether a rebuild runs. */
esc_status esc__generation_load(esc_worker *w, struct proj *pj, esc_error *err);
/* Points a partition's tracks at the projection's generations, reading
 * their checkpoints from Redis. */
esc_status esc__generation_setup(esc_worker *w, struct part *pt,
                                 esc_error *err);
/* Starts a rebuild into serving + 1 when the version changed or one was
 * requested. */
esc_status esc__generation_check_rebuild(esc_worker *w, struct proj *pj,
                                         esc_error *err);
/* After a rebuild step: marks the partition ready when it caught up with
 * the live track and switches when every partition is ready. */
esc_status esc__generation_try_switch(esc_worker *w, struct part *pt,
                                      esc_error *err);
/* The serving generation changed or vanished under us: reload. */
esc_status esc__generation_reload(esc_worker *w, struct proj *pj,
                                  esc_error *err);
/* Track t's checkpoint or the generation key vanished (Redis lost data):
 * without a generation, build a fresh one; without a checkpoint, stop t and
 * rebuild beside the serving generation. */
esc_status esc__generation_vanished(esc_worker *w, struct part *pt,
                                    struct track *t, esc_error *err);
/* Deletes a slice of an old generation's keys, if any are pending. */
esc_status esc__generation_delete_step(esc_worker *w, struct proj *pj,
                                       esc_error *err);

#endif

/*
 * The worker's own structures, shared by worker.c (lifecycle and loop),
 * track.c (one batch: read, handle, apply) and generation.c (serving
 * generation, rebuilds, the switch, deleting old keys).
 */
#ifndef ESC_WORKER_INT_H
#define ESC_WORKER_INT_H

#include "projection_int.h"

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
};

/* Per projection: the generation picture shared by its partitions. */
struct proj {
  const esc_projection *def;
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
  esc_store *store; /* reads and waits */
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
  esc_position round_head; /* $all head when the current round began */
  bool has_round_head;     /* taken for this round (see round_once) */
  bool last_round_worked;
  int64_t last_failure_ms; /* when a round last failed (back_off) */
  char last_failure[256];  /* and why ("" after a good round) */
  uint64_t jitter;         /* state of esc__backoff_ms's random numbers */
  esc_worker_stats stats;  /* what reads and batches held (track.c) */
};

/* worker.c */
int64_t esc__now_ms(void);
/* The pause before retry number `attempt` (1, 2, ...): base doubling per
 * attempt up to cap, then a random part of it taken off (at most half),
 * so workers failing together do not retry together. */
int esc__backoff_ms(esc_worker *w, int attempt, int base_ms, int cap_ms);
void esc__worker_log(esc_worker *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The byte budget of reads and batches (opts.max_batch_bytes, checked
 * by esc_worker_new, or the default). */
size_t esc__batch_bytes(const esc_worker *w);

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
/* Registers pj and admits it (on start, and when its row is gone). */
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

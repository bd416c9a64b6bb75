/*
 * <esc/projection.h> - projections: the event log turned into read models
 * in Redis, exactly once.
 *
 * A projection is a handler that receives events in subscription order and
 * queues Redis commands into a batch through a context; it never talks to
 * Redis itself. A worker (esc_worker) reads a batch of events, runs the
 * handler on each, and sends the batch's commands together with a
 * compare-and-set of the checkpoint as one Lua script (EVALSHA): either all
 * of it applies, with the checkpoint moving from the value the worker read
 * to the batch's last position, or none of it does. The checkpoint is the
 * fencing token: a worker with a stale view (a duplicate delivery, a zombie
 * after failover) gets its batch refused and re-reads. Non-idempotent
 * commands (INCRBY, ZINCRBY, LPUSH) are therefore safe in handlers.
 *
 * Every Redis key of a store starts with the store's namespace NS: a
 * configured key prefix, else "esc-" and the store's identity
 * (esc_store_identity), so stores in two schemas or two databases can share
 * one Redis database without seeing each other's keys. Keys of a projection
 * live under "NS:<name>:g<generation>:"; the generation that queries read
 * is the value of "NS:<name>:generation". A rebuild builds
 * generation g+1 from the start of the log while g keeps serving, then
 * switches atomically and deletes g's keys in the background.
 *
 * One worker is active per projection partition: it holds a PostgreSQL
 * advisory lock (the lease) on a dedicated connection; others wait as
 * standbys and take over within lease_poll_ms of its death. A projection
 * with N partitions splits events by a stable hash of the stream id, so
 * several processes share the work and each stream stays in order.
 *
 * The partition count is the store's: the first worker to register a
 * projection sets it, and a worker configured with another count refuses
 * to run it (ESC_ECONFLICT, naming both counts) instead of applying
 * beside workers of the first. esc_projection_repartition changes it.
 *
 * The same worker runs durable subscriptions (esc_subscription, below):
 * handlers with side effects outside Redis, delivered at least once, with
 * their checkpoints in PostgreSQL.
 *
 * Threading: an esc_worker runs on the thread that calls esc_worker_run;
 * esc_worker_stop may be called from a signal handler or another thread.
 */
#ifndef ESC_PROJECTION_H
#define ESC_PROJECTION_H

#include <esc/event.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * The handler's context: queueing Redis commands into the batch
 * ------------------------------------------------------------------------ */

typedef struct esc_projection_ctx esc_projection_ctx;

/*
 * A key in the projection's namespace of the generation being written:
 * "NS:<name>:g<generation>:" followed by the printf-formatted suffix. The
 * string lives until the handler returns.
 */
ESC_API const char *esc_ctx_key(esc_projection_ctx *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* An integer as a decimal string living until the handler returns. */
ESC_API const char *esc_ctx_i64(esc_projection_ctx *ctx, int64_t value);

/*
 * Queues one Redis command, argv style and binary-safe (argvlen NULL: the
 * arguments are NUL-terminated strings). Arguments are copied. Keys must be
 * the projection's own (esc_ctx_key); commands must not read (their replies
 * are discarded) and should not fail at run time: Redis applies a script's
 * writes up to a failing command, so a failing command (say INCRBY on a
 * string) stops the partition with an error rather than risk applying part
 * of a batch twice.
 */
ESC_API esc_status esc_ctx_command(esc_projection_ctx *ctx, int argc,
                                   const char *const *argv,
                                   const size_t *argvlen);

/* esc_ctx_command with NUL-terminated string arguments, NULL-terminated:
 * esc_ctx_cmd(ctx, "HSET", key, "status", "paid", NULL). */
ESC_API esc_status esc_ctx_cmd(esc_projection_ctx *ctx, const char *arg0, ...);

/* A command of one key and one integer, the shape of SET, INCRBY and
 * DECRBY on counters: esc_ctx_cmd_i64(ctx, "INCRBY", key, amount).
 * ESC_EINVAL for a NULL ctx, cmd or key; ESC_ENOMEM after a failed
 * scratch allocation of this event, as esc_ctx_command. */
ESC_API esc_status esc_ctx_cmd_i64(esc_projection_ctx *ctx, const char *cmd,
                                   const char *key, int64_t value);

/* The partition and generation this batch is for. */
ESC_API int esc_ctx_partition(const esc_projection_ctx *ctx);
ESC_API int64_t esc_ctx_generation(const esc_projection_ctx *ctx);

/* ------------------------------------------------------------------------
 * Defining a projection
 * ------------------------------------------------------------------------ */

/*
 * Handles one event: queue commands with esc_ctx_*. event->type and
 * event->data are set when the projection has a registry that knows the
 * type (else NULL); event->recorded is always set. A non-OK return is a
 * handler error: the event is retried with backoff, then parked as a dead
 * letter or stops the partition, per on_error. Commands queued by a failed
 * call are dropped.
 */
typedef esc_status (*esc_projection_handler)(esc_projection_ctx *ctx,
                                             const esc_event *event,
                                             void *userdata, esc_error *err);

typedef enum esc_on_error {
  ESC_ON_ERROR_PARK = 0, /* park the event as a dead letter and move on */
  ESC_ON_ERROR_STOP = 1  /* stop the partition until someone intervenes */
} esc_on_error;

typedef struct esc_projection {
  const char *name; /* [a-z0-9_]+, at most 48 bytes: the key prefix */
  int32_t version;  /* bump it to rebuild into a new generation; >= 1 */
  /* NULL-terminated list of categories to follow; NULL: every event. */
  const char *const *categories;
  /* NULL-terminated list of event types to handle; NULL: all. Other events
   * still move the checkpoint. */
  const char *const *event_types;
  int partitions;                   /* >= 1; 0 means 1 */
  const esc_event_registry *events; /* optional: decode for the handler */
  esc_projection_handler handle;
  void *userdata;
  esc_on_error on_error;
  int max_attempts; /* handler attempts per event before on_error; 3 */
  /* The registry, when events is NULL: called when one is needed, e.g. a
   * function ESC_EVENT_REGISTRY defines (as esc_decider's registry). */
  const esc_event_registry *(*registry)(void);
} esc_projection;

/* Defines `const esc_projection *fn(void)` returning a static const
 * projection of the designated initializers given (as ESC_DECIDER). */
#define ESC_PROJECTION(fn, ...)                                                \
  const esc_projection *fn(void) {                                             \
    static const esc_projection projection = {__VA_ARGS__};                    \
    return &projection;                                                        \
  }

/* ------------------------------------------------------------------------
 * Durable subscriptions: side effects outside Redis, at least once
 * ------------------------------------------------------------------------ */

/*
 * A durable subscription (esc_subscription) hands events to a handler that
 * does something outside the read models: call another service, send mail,
 * write another database, drive a process manager. It runs on an
 * esc_worker beside projections (esc_worker_add_subscription) and uses
 * their machinery unchanged: the same lease per partition (one active
 * worker, standbys take over within lease_poll_ms), the same partitions
 * (a stable hash of the stream id; the layout is the store's, set by the
 * first registration, and a worker of another count refuses), the same
 * wake-ups, the same handler retries and dead letters (esc_dead_letters_*,
 * `esc dead-letters`), and it is listed by esc_projection_status and
 * counted in the worker's metrics with kind ESC_CONSUMER_SUBSCRIPTION.
 * Its checkpoint lives in PostgreSQL, not Redis: losing Redis changes
 * nothing about what it has done.
 *
 * The contract:
 *
 * - At-least-once, in order, per partition. Within a partition the
 *   handler sees events in subscription order (<esc/store.h>), which
 *   agrees with stream order: of two events of one stream the lower
 *   version comes first. Each run of a partition (from a worker taking
 *   its lease until it stops or loses it) starts at the checkpoint and
 *   delivers every following event of the partition, none skipped.
 *   Events after the checkpoint may have been delivered before (a crash,
 *   a failover, a lost reply): at most one batch (the worker's
 *   batch_size events) of them per interruption.
 * - The checkpoint moves only after the handler returned ESC_OK for every
 *   event up to it (or the event was parked, see below), and only by a
 *   compare-and-set in PostgreSQL from the value the worker read, made
 *   only while its session holds the partition's lease: a worker that
 *   lost its lease, or a zombie after failover, can neither move it back
 *   nor move it at all. The server refuses a checkpoint that moves
 *   backwards.
 * - Idempotency key: every delivery carries key =
 *   esc_subscription_key(subscription, event id), a UUIDv5 with the event
 *   id as namespace and the subscription's name as name. It is the same
 *   on every redelivery, after restarts, failovers and layout changes
 *   (it depends on neither position nor partition), and differs between
 *   subscriptions, so two subscriptions calling one downstream service do
 *   not dedupe each other. Handlers dedupe on it (a unique column, an
 *   Idempotency-Key header): then each effect happens once.
 * - Errors. ESC_ECONN, ESC_ETIMEDOUT, ESC_EBUSY and ESC_EUNKNOWN from the
 *   handler are passing (the other side is down or slow, an outcome is
 *   unknown and must be retried with the same key): the partition pauses
 *   with capped, jittered backoff and the same event is delivered again,
 *   without end and never parked. Any other non-OK return is a handler
 *   error: retried up to max_attempts with the projections' backoff, then
 *   per on_error parked as a dead letter (the partition moves on; `esc
 *   dead-letters retry` delivers it again, to the same handler with the
 *   same key) or the partition stops (restarting the worker delivers the
 *   event again). Failures of esc's own servers (PostgreSQL unreachable)
 *   are retried by the worker, never parked.
 * - The handler runs on the worker's thread, one event at a time per
 *   worker; it may block (it holds up that worker's other partitions).
 */

/* What a subscription's handler gets. Everything is borrowed until the
 * handler returns. */
typedef struct esc_delivery {
  const char *subscription; /* the subscription's name */
  int partition;
  /* The event, decoded as for a projection: type and data set when the
   * subscription has a registry that knows the type, else NULL;
   * event->recorded (stream, version, position, id, raw bytes) always. */
  const esc_event *event;
  esc_uuid key; /* esc_subscription_key(subscription, event id) */
  int attempt;  /* 1, 2, ... up to max_attempts: this try's attempts at
                   the event (counting starts again at 1 after a passing
                   failure, a restart, and for a retried dead letter) */
} esc_delivery;

/* Handles one delivery. ESC_OK: done (the checkpoint may move past it).
 * See the contract above for what other returns do; err says why. */
typedef esc_status (*esc_subscription_handler)(const esc_delivery *d,
                                               void *userdata, esc_error *err);

/* Where a subscription registered for the first time starts. */
typedef enum esc_subscription_start {
  ESC_SUBSCRIPTION_FROM_BEGINNING = 0, /* every event of the log */
  ESC_SUBSCRIPTION_FROM_NOW = 1 /* events after the head at registration */
} esc_subscription_start;

typedef struct esc_subscription {
  /* [a-z0-9_]+, at most 48 bytes; unique among the store's projections
   * and subscriptions (they share one registry, leases and dead letters) */
  const char *name;
  /* NULL-terminated list of categories to follow; NULL: every event. */
  const char *const *categories;
  /* NULL-terminated list of event types to deliver; NULL: all. Other
   * events still move the checkpoint. */
  const char *const *event_types;
  int partitions;                   /* >= 1; 0 means 1 */
  const esc_event_registry *events; /* optional: decode for the handler */
  esc_subscription_handler handle;
  void *userdata;
  esc_on_error on_error;
  int max_attempts; /* handler attempts per event before on_error; 3 */
  /* Only read when the store registers the subscription the first time. */
  esc_subscription_start start;
  /* Optional: work of the subscriber's own that must run only where the
   * subscription runs (a process manager fires its due deadlines and
   * retries its failing instances here). Called on the worker's thread
   * after each step of each partition this worker holds the lease of
   * (at least every poll_ms), with that partition's index; *worked set
   * true when it did something (the worker then does not sleep). Return
   * ESC_OK, or ESC_ECONN / ESC_ETIMEDOUT / ESC_EIO for a server that is
   * away (the worker backs off and reconnects); any other error stops
   * the worker's run. NULL: none. */
  esc_status (*tick)(int partition, bool *worked, void *userdata,
                     esc_error *err);
  /* Optional: called with userdata by esc_worker_free, after the worker
   * stopped using the subscription, for a subscription built by a
   * library on the user's behalf (esc_worker_add_process): it may free
   * the subscription itself. NULL: the caller owns it. */
  void (*release)(void *userdata);
  /* How metrics label it: ESC_CONSUMER_SUBSCRIPTION (also 0) or
   * ESC_CONSUMER_PROCESS (a process manager's subscription). */
  int kind;
} esc_subscription;

#define ESC_SUBSCRIPTION_INIT                                                  \
  { NULL, NULL, NULL, 0, NULL, NULL, NULL, ESC_ON_ERROR_PARK, 0,               \
    ESC_SUBSCRIPTION_FROM_BEGINNING, NULL, NULL, 0 }

/* The idempotency key of event_id's delivery to subscription: UUIDv5
 * (namespace event_id, name the subscription's name). */
ESC_API esc_uuid esc_subscription_key(const char *subscription,
                                      const esc_uuid *event_id);

/* What a line of esc_projection_status, or a partition of
 * esc_worker_metrics, belongs to. */
typedef enum esc_consumer_kind {
  ESC_CONSUMER_PROJECTION = 0,
  ESC_CONSUMER_SUBSCRIPTION = 1,
  ESC_CONSUMER_PROCESS = 2 /* a process manager's subscription (metrics) */
} esc_consumer_kind;

/* "projection", "subscription", "process": the CLI's kind column and the
 * metrics' label name. Static storage. */
ESC_API const char *esc_consumer_kind_name(esc_consumer_kind kind);

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------ */

typedef struct esc_worker esc_worker;

typedef struct esc_worker_options {
  const char *pg_url;    /* NULL: ESC_PG_URL, else the local server */
  const char *redis_url; /* NULL: ESC_REDIS_URL, else the local server */
  const char *schema;    /* event store schema; NULL: "esc" */
  int batch_size;        /* events per batch; default 500 */
  int poll_ms;           /* fallback poll while idle; default 1000 */
  int lease_poll_ms;     /* how often a standby tries the lease; 1000 */
  /* Which partitions this worker may run (indexes into every projection's
   * partitions); NULL: all of them. */
  const int *partitions;
  size_t partition_count;
  /* Progress and events worth a log line (takeover, rebuild progress,
   * parked events, reconnects). NULL: silent. */
  void (*log)(void *userdata, const char *line);
  void *log_userdata;
  /* How often a long replay (a first build, a rebuild, a worker far
   * behind) logs where it is, how fast it goes and how long it has to
   * go; default 5000 ms. */
  int progress_ms;
  /* The byte budget of a batch, so that a worker's memory is bounded by
   * bytes as well as by batch_size: a read from PostgreSQL stops before
   * the event that would take its data and metadata beyond it, and a
   * batch stops before the event whose commands would take the batch's
   * command arguments beyond it. A single event bigger than the budget
   * goes alone. 0: ESC_WORKER_BATCH_BYTES_DEFAULT; more than
   * ESC_WORKER_BATCH_BYTES_MAX is refused (ESC_EINVAL). */
  size_t max_batch_bytes;
  /* The namespace every Redis key of the store starts with
   * ([A-Za-z0-9_.-], 1..ESC_KEY_PREFIX_MAX bytes; esc_worker_new refuses
   * others with ESC_EINVAL). NULL: ESC_KEY_PREFIX when set, else derived
   * from the store's identity (esc_key_namespace). Queries and status
   * must be given the same. Borrowed for the esc_worker_new call. */
  const char *key_prefix;
  /* Log through esc_log (<esc/store.h>: ESC_LOG_FORMAT=json for JSON
   * lines) as component log_component (NULL: "worker"), each record with
   * its projection or subscription, partition and event (id, position,
   * correlation and causation ids) where it has them. The line callback
   * above, when set, gets the same text. */
  bool log_records;
  const char *log_component;
  /* Where the log is read from: a hot standby of pg_url's server
   * (PostgreSQL streaming replication), so that catching up loads it and
   * not the primary. NULL: ESC_PG_READ_URL when set, else pg_url. Leases,
   * checkpoints, the registry, dead letters and every write stay on
   * pg_url; "" reads from pg_url whatever the environment says. The
   * gap-free horizon holds on the standby as on the primary
   * (its snapshots see the primary's transactions in progress as in
   * progress). See docs/scaling.md. */
  const char *pg_read_url;
  /* A standby behind the primary for longer than this (ms) is abandoned:
   * the log is read from pg_url until the standby has caught up again
   * (checked every ESC_WORKER_REPLICA_RECHECK_MS). 0: never abandon. */
  int replica_max_lag_ms;
} esc_worker_options;

#define ESC_WORKER_OPTIONS_INIT                                                \
  {                                                                            \
    NULL, NULL, NULL, 0, 0, 0, NULL, 0, NULL, NULL, 0, 0, NULL, false, NULL,   \
        NULL, 0                                                                \
  }

/* How often an abandoned standby is looked at again. */
#define ESC_WORKER_REPLICA_RECHECK_MS 5000

/* 4 MiB: four events of the store's default largest size. */
#define ESC_WORKER_BATCH_BYTES_DEFAULT ((size_t)4 << 20)
/* 1 GiB: Redis's default client-query-buffer-limit, past which it drops
 * the connection instead of running the batch. */
#define ESC_WORKER_BATCH_BYTES_MAX ((size_t)1 << 30)

/* The longest key prefix (namespace) there can be. */
#define ESC_KEY_PREFIX_MAX 64

/*
 * The namespace the store's Redis keys start with, into out (size >=
 * ESC_KEY_PREFIX_MAX + 1): key_prefix when not NULL, else ESC_KEY_PREFIX
 * when set, else "esc-<identity>" from the store (stable across restarts
 * and processes, different for every schema and database). Code of your
 * own that keeps state in Redis beside the projections (a saga's
 * checkpoint) names its keys "<namespace>:<name>...". ESC_EINVAL for an
 * invalid prefix (the message says which byte), else what reading the
 * identity returned.
 */
ESC_API esc_status esc_key_namespace(esc_store *store, const char *key_prefix,
                                     char *out, size_t size, esc_error *err);

/* The Redis URL esc_worker_new(NULL-url) would use (static storage). */
ESC_API const char *esc_default_redis_url(void);

/*
 * A hiredis connection for code of your own that needs Redis beside the
 * worker (a saga's checkpoint, a custom read): url as the worker takes it,
 * redis://[[user:]password@]host[:port][/db] (NULL: esc_default_redis_url),
 * connected with a 5 s time-out, commands timing out after 30 s, AUTH and
 * SELECT done. Free it with redisFree. NULL and ESC_EINVAL for a bad URL,
 * ESC_ECONN when the server cannot be reached or refuses AUTH/SELECT.
 */
struct redisContext;
ESC_API struct redisContext *esc_redis_connect(const char *url, esc_error *err);

/*
 * A lease for work of your own that must run in one process at a time (a
 * saga, a scheduled job): what projection partitions use, a PostgreSQL
 * advisory lock held on a connection of its own, named by schema (NULL:
 * "esc") and name ([a-z0-9_], up to 48 bytes; its key space is apart from
 * the projections'). The server frees it when the holder dies or its
 * connection breaks.
 *
 * esc_lease_hold takes the lease when it is free and otherwise tells
 * whether this process still holds it; call it every second or so and
 * work only while *held. Like a projection worker's, the lease decides who
 * works, not what is safe: a holder cut off from the server believes it
 * holds it a little longer, so the work itself must stay idempotent.
 * ESC_ECONN when PostgreSQL cannot be reached (*held false; the next call
 * connects again).
 */
typedef struct esc_lease esc_lease;
ESC_API esc_lease *esc_lease_new(const char *pg_url, const char *schema,
                                 const char *name, esc_error *err);
ESC_API esc_status esc_lease_hold(esc_lease *lease, bool *held, esc_error *err);
ESC_API void esc_lease_free(esc_lease *lease);

ESC_API esc_worker *esc_worker_new(const esc_worker_options *opts,
                                   esc_error *err);
ESC_API void esc_worker_free(esc_worker *w);

/* Adds a projection (borrowed: it must outlive the worker). ESC_EINVAL for
 * an invalid definition. */
ESC_API esc_status esc_worker_add(esc_worker *w, const esc_projection *p,
                                  esc_error *err);

/* Adds a durable subscription (borrowed: it must outlive the worker). It
 * runs beside the worker's projections, on the same leases, wake-ups and
 * loop; a worker running only subscriptions never connects to Redis.
 * ESC_EINVAL for an invalid definition. Registering it in the store
 * (first run) refuses a name a projection has (ESC_ECONFLICT). */
ESC_API esc_status esc_worker_add_subscription(esc_worker *w,
                                               const esc_subscription *s,
                                               esc_error *err);

/*
 * Runs until esc_worker_stop (then returns ESC_OK after finishing the batch
 * in flight) or a fatal error. Reconnects to PostgreSQL and Redis with
 * backoff and resumes from the checkpoints.
 */
ESC_API esc_status esc_worker_run(esc_worker *w, esc_error *err);

/*
 * Runs until every partition this worker holds has caught up with the log
 * as it was when the call began (or timeout_ms passes: ESC_ETIMEDOUT).
 * For tests and one-shot catch-ups.
 */
ESC_API esc_status esc_worker_run_until_caught_up(esc_worker *w, int timeout_ms,
                                                  esc_error *err);

/* Asks esc_worker_run to return after the batch in flight. Async-signal
 * safe. */
ESC_API void esc_worker_stop(esc_worker *w);

/*
 * What a worker's reads and batches have held since esc_worker_new: the
 * measure of its memory that does not depend on the allocator. A worker
 * holds about four budgets at once (the page being handled, the next one
 * being read, the batch being built, the one Redis is running).
 */
typedef struct esc_worker_stats {
  int64_t reads;           /* pages read from PostgreSQL */
  int64_t batches;         /* batches sent to Redis */
  size_t peak_read_events; /* the most events one page held */
  size_t peak_read_bytes;  /* the most data + metadata bytes one page held */
  size_t peak_batch_bytes; /* the most command argument bytes of a batch */
} esc_worker_stats;

/* Copies w's figures into *out. Call it on the thread that runs w, or
 * when it is not running. */
ESC_API void esc_worker_get_stats(const esc_worker *w, esc_worker_stats *out);

/*
 * What a worker did since esc_worker_new, per partition it may run and per
 * connection: the process-local half of its metrics (<esc/metrics.h>
 * renders them; esc_projection_status has the store's half: lag, dead
 * letters, generations, as any process sees them).
 *
 * The batch duration is the time from sending a batch to Redis to reading
 * its reply (the apply script's run plus the round trip); its histogram
 * has a bucket per bound below and one beyond the last (+Inf).
 */
#define ESC_BATCH_DURATION_BUCKETS ESC_LATENCY_BUCKETS
#define esc_batch_duration_bounds esc_latency_bounds

typedef struct esc_partition_metrics {
  char projection[49];
  int partition;
  bool leased;        /* this worker holds the partition's lease */
  bool stopped;       /* its live track stopped on an error */
  int64_t generation; /* the generation its live track writes; 0: unknown */
  int64_t checkpoint; /* the global position its live track applied up to,
                         as this worker last knew it (0: start) */
  int64_t events_applied; /* events that batches Redis applied moved the
                             checkpoint past (live and rebuild tracks) */
  int64_t batches;        /* batches Redis applied */
  /* batch durations per bucket (not cumulative), the last beyond the
   * last bound; their sum in seconds */
  uint64_t batch_buckets[ESC_BATCH_DURATION_BUCKETS + 1];
  double batch_seconds;
  int64_t dead_letters_parked;  /* events this worker parked */
  int64_t dead_letters_retried; /* parked events it applied on request */
  /* A projection's or a subscription's (projection[] holds either's
   * name). For a subscription a batch is its handler calls plus the
   * checkpoint write, and events_applied counts events delivered. */
  esc_consumer_kind kind;
} esc_partition_metrics;

typedef struct esc_worker_metrics {
  bool running;          /* inside esc_worker_run or _run_until_caught_up */
  double since_round_s;  /* seconds since its loop last finished a round;
                            < 0 before the first */
  bool pg_up, redis_up;  /* its last connection attempt or use succeeded */
  int64_t pg_reconnects; /* connections opened again after a failure */
  int64_t redis_reconnects;
  char last_error[256]; /* why its last round failed; "" after a good one */
  size_t count;
  esc_partition_metrics *parts; /* count entries, malloc'ed */
  /* With a standby (pg_read_url): whether the log is read from it now
   * (false while abandoned for the primary) and how many events it was
   * behind the primary at the last idle round. */
  bool replica, replica_reading;
  int64_t replica_lag_events;
} esc_worker_metrics;

/*
 * Copies w's metrics into *out (release it with esc_worker_metrics_release).
 * Safe from any thread while w runs: the worker publishes its figures
 * under a lock after every step of a partition, and this copies them under
 * the same lock. Only esc_worker_free must not run meanwhile. ESC_ENOMEM
 * when the copy cannot be allocated (*out is then empty).
 */
ESC_API esc_status esc_worker_metrics_get(esc_worker *w,
                                          esc_worker_metrics *out,
                                          esc_error *err);
ESC_API void esc_worker_metrics_release(esc_worker_metrics *m);

/* ------------------------------------------------------------------------
 * Administration (the CLI's `projections`, `rebuild`, `dead-letters`)
 * ------------------------------------------------------------------------ */

typedef struct esc_partition_status {
  char projection[49];
  int partition;
  int partitions;
  int32_t version;
  int64_t generation;      /* serving; 0: not built yet */
  esc_position checkpoint; /* of the serving generation */
  int64_t lag_events;      /* readable events after the checkpoint:
                              counted up to 10000, estimated past that
                              (lag_estimated) so a status stays cheap */
  double lag_seconds;      /* age of the oldest of them; 0: none */
  int lease_pid;           /* backend pid of the lease; 0: none */
  char lease_holder[64];   /* the holder's application_name */
  int64_t dead_letters;    /* parked, not yet resolved */
  bool rebuilding;
  int64_t rebuild_generation;
  esc_position rebuild_checkpoint;
  int64_t rebuild_lag_events;
  bool foreign;       /* its Redis keys belong to another event store (P:owner,
                         two stores configured with one key prefix):
                         the numbers above are not this store's, and this
                         store's workers refuse to run it */
  int repartition_to; /* a pending change of the layout to this many
                         partitions (esc_projection_repartition); 0:
                         none */
  int rebuild_partitions; /* the rebuild's partition count, when
                             rebuilding */
  /* A line of a rebuild into another layout (a repartition): partition
   * `partition` of rebuild_partitions. These follow the serving layout's
   * lines; only the rebuild fields and the lease are theirs. */
  bool rebuild_only;
  /* What the partition does, for monitoring that must never go blind:
   *   "running"  a worker holds its lease
   *   "idle"     no worker holds it (none runs it, or all are down)
   *   "stopped"  its checkpoint records a failure (on_error STOP, or a
   *              command Redis refused): reason says which, checkpoint is
   *              where it stopped; a rebuild clears it
   *   "unknown"  Redis could not be read: reason says why; generation,
   *              checkpoints and lag are not known, the rest (lease, dead
   *              letters, layout) is PostgreSQL's and shown
   * A rebuild track that stopped says so in reason ("rebuild: ...") and
   * leaves state to the serving generation. */
  char state[16];
  char reason[256];
  /* A projection's line or a subscription's (projection[] holds either's
   * name). A subscription's checkpoint, generation (its layout's, 1 for
   * the first) and state come from PostgreSQL: they are known when Redis
   * is not; it never rebuilds, is never foreign and holds no Redis keys. */
  esc_consumer_kind kind;
  /* lag_events passed the 10000 events a status counts: the rest is
   * estimated from positions (the events counted per position of the
   * span counted, times the positions up to the newest);
   * rebuild_lag_events is estimated the same way. */
  bool lag_estimated;
} esc_partition_status;

/* The status of every partition of every projection and subscription a
 * worker has registered, in name order: the lines of the store's layout
 * (`partitions` each), then, while a repartition rebuilds, those of the
 * new layout (rebuild_only). `kind` tells projections and subscriptions
 * apart.
 * Redis keys are read in the store's namespace: key_prefix as the
 * workers' (esc_worker_options), NULL for the same default. *out is
 * malloc'ed (the caller frees); *count entries. */
ESC_API esc_status esc_projection_status(const char *pg_url,
                                         const char *redis_url,
                                         const char *schema,
                                         const char *key_prefix,
                                         esc_partition_status **out,
                                         size_t *count, esc_error *err);

/*
 * esc_projection_status for a caller that asks often, a metrics endpoint
 * on every scrape: the monitor keeps its sessions (two PostgreSQL logins
 * and a Redis connection, which cost more than the status itself) from
 * one call to the next. A call that fails closes them and the next one
 * connects afresh; while Redis is away each call tries it again. The
 * arguments are esc_projection_status's, copied. Not for several threads
 * at once.
 */
typedef struct esc_projection_monitor esc_projection_monitor;
ESC_API esc_projection_monitor *
esc_projection_monitor_new(const char *pg_url, const char *redis_url,
                           const char *schema, const char *key_prefix,
                           esc_error *err);
ESC_API esc_status esc_projection_monitor_status(esc_projection_monitor *m,
                                                 esc_partition_status **out,
                                                 size_t *count,
                                                 esc_error *err);
ESC_API void esc_projection_monitor_free(esc_projection_monitor *m);

/*
 * Moves projection's Redis keys from the names of a release before key
 * namespaces ("P:generation", "P:g<G>:...") to the store's namespace
 * ("NS:P:..."; key_prefix as the workers'), so that the model serves on
 * and every partition resumes from its checkpoint: nothing is rebuilt or
 * applied again (docs/decisions/0014-key-namespace-upgrade.md). Until
 * then, workers of this release refuse the projection (ESC_EBUSY) rather
 * than build an empty model beside the old one.
 *
 * Run it with the store's workers stopped: it holds every lease of the
 * projection's layout while it moves, and refuses with ESC_EBUSY when a
 * worker holds one. ESC_ECONFLICT when the old keys belong to another
 * store ("P:owner") or a key's new name is taken; no key is overwritten.
 * An interrupted run is finished by running it again. *moved (may be
 * NULL): how many keys moved; 0 when there was nothing to move.
 */
ESC_API esc_status esc_projection_move_keys(const char *pg_url,
                                            const char *redis_url,
                                            const char *schema,
                                            const char *key_prefix,
                                            const char *projection,
                                            size_t *moved, esc_error *err);

/* Asks the workers of a projection to rebuild it into a new generation.
 * ESC_ENOTFOUND for an unknown projection (a subscription is not one: it
 * has no read model to rebuild). */
ESC_API esc_status esc_projection_request_rebuild(const char *pg_url,
                                                  const char *schema,
                                                  const char *name,
                                                  esc_error *err);

/*
 * Changes the partition layout of projection name to `partitions`: the
 * store records the new count as pending (repartition_to) and requests a
 * rebuild. Workers configured with that many partitions build a new
 * generation with the new layout while the current one keeps serving (its
 * workers keep it up to date); the switch makes the new count the layout,
 * and workers of the old count refuse from then on. Without a worker of
 * the new count the rebuild waits (esc_projection_status shows it).
 *
 * *started (may be NULL): a repartition to that count is under way, this
 * request's or an earlier one's; false when the layout has that count
 * already (nothing to do, ESC_OK). ESC_ENOTFOUND for an unknown
 * projection, ESC_ECONFLICT while a repartition to another count is under
 * way, ESC_EINVAL for a count below 1 or a subscription (its layout
 * cannot change yet: docs/decisions/0017-durable-subscriptions.md).
 */
ESC_API esc_status esc_projection_repartition(const char *pg_url,
                                              const char *schema,
                                              const char *name, int partitions,
                                              bool *started, esc_error *err);

typedef struct esc_dead_letter {
  int64_t id;
  char projection[49];
  int partition;
  esc_position position;
  esc_uuid event_id;
  char stream_id[ESC_STREAM_ID_MAX + 1];
  int64_t stream_version;
  char event_type[ESC_TYPE_NAME_MAX + 1];
  char error[256];
  int attempts;
  int64_t parked_at_us;
  char state[16]; /* "parked", "retry" (requested), "resolved", "discarded" */
  /* How many of the event's Redis commands took effect before one failed
   * in Redis (Redis has no rollback); a retry runs only the rest. 0 for a
   * handler error. */
  int commands_applied;
} esc_dead_letter;

/* Lists dead letters (of one projection, or all for NULL), unresolved
 * ones only unless all is true. *out malloc'ed; the caller frees. */
ESC_API esc_status esc_dead_letters_list(const char *pg_url, const char *schema,
                                         const char *projection, bool all,
                                         esc_dead_letter **out, size_t *count,
                                         esc_error *err);
/* What esc_dead_letters_act does to the letters it selects. */
typedef enum esc_dead_letter_action {
  /* parked -> retry: the letter's worker applies the event again (once,
   * guarded in Redis, skipping the commands that took effect before) and
   * resolves it, or parks it again with the new error */
  ESC_DEAD_LETTER_RETRY,
  /* parked or retry -> discarded: given up on for good (recorded, not
   * deleted) */
  ESC_DEAD_LETTER_DISCARD
} esc_dead_letter_action;

/*
 * Which open letters esc_dead_letters_act selects: those that match every
 * field that is set (all fields unset: every open letter). Borrowed: the
 * strings and ids stay the caller's.
 *
 *   projection   NULL: any; else that projection's letters
 *   parked_since 0: any; else letters last parked at or after this time
 *                (microseconds since the Unix epoch, as parked_at_us)
 *   error_like   NULL: any; else an SQL LIKE pattern the error must match:
 *                '%' any run of characters, '_' any one, '\' escapes
 *                them; case-sensitive ("%timeout%")
 *   ids, nids    nids 0: any; else only these letters. Unlike the other
 *                fields they are a demand: each must exist, match the
 *                other fields and be in a state the action applies to,
 *                or the call fails and changes nothing
 */
typedef struct esc_dead_letter_filter {
  const char *projection;
  int64_t parked_since;
  const char *error_like;
  const int64_t *ids;
  size_t nids;
} esc_dead_letter_filter;

#define ESC_DEAD_LETTER_FILTER_INIT                                            \
  { NULL, 0, NULL, NULL, 0 }

/*
 * Selects the open letters that filter matches (NULL: every open one) and
 * the action applies to, and retries or discards them all in one
 * transaction: all of them or, on failure, none. With dry_run nothing
 * changes; *out lists what would.
 *
 * *out (malloc'ed, the caller frees; NULL when *count is 0) gets the
 * letters acted on, oldest first, in their new state (with dry_run: in
 * their current one). Nothing matching is ESC_OK with *count 0. Fails
 * with ESC_EINVAL for an invalid projection name; for an id of filter->ids
 * ESC_ENOTFOUND when there is no such letter and ESC_EINVAL when its
 * state refuses the action or it does not match the other fields, the
 * message naming the id and the state.
 *
 * Writes as the role of pg_url, directly (the table's owner or a role
 * granted UPDATE on <schema>.dead_letters: an operator's, not a worker's).
 */
ESC_API esc_status esc_dead_letters_act(const char *pg_url, const char *schema,
                                        esc_dead_letter_action action,
                                        const esc_dead_letter_filter *filter,
                                        bool dry_run, esc_dead_letter **out,
                                        size_t *count, esc_error *err);

/* Marks a parked letter for retry: esc_dead_letters_act(RETRY) of one id. */
ESC_API esc_status esc_dead_letter_retry(const char *pg_url, const char *schema,
                                         int64_t id, esc_error *err);
/* Gives up on a parked letter (or one awaiting retry) for good:
 * esc_dead_letters_act(DISCARD) of one id. */
ESC_API esc_status esc_dead_letter_discard(const char *pg_url,
                                           const char *schema, int64_t id,
                                           esc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ESC_PROJECTION_H */

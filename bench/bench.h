/*
 * esc-bench internals: configuration, timing, the phase runner, payloads,
 * PostgreSQL helpers, raw baselines and the scenario registry.
 *
 * A scenario measures the esc side and a raw baseline for the same work in
 * the same run, alternating short phases of each (A B B A ...) so drift on a
 * noisy machine hits both sides alike, and reports esc / raw as a ratio.
 *
 * A group of scenarios (append, command, project, process) lives in its own
 * file and exports a scenario table; main.c lists the tables.
 *
 * Errors: helpers return 0 on success and -1 on failure, after writing a
 * message into the caller's err[errlen] buffer.
 */
#ifndef ESC_BENCH_H
#define ESC_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <esc/store.h>
#include <libpq-fe.h>

#define BENCH_ERR_MAX 512

/* ------------------------------------------------------------------------
 * Configuration (main.c)
 * ------------------------------------------------------------------------ */

typedef struct bench_config {
  const char *pg_url;    /* resolved: --pg, ESC_PG_URL, or the default */
  const char *redis_url; /* --redis or ESC_REDIS_URL; NULL when unset */
  const char *schema;    /* esc schema; the raw baseline uses <schema>_raw */
  double seconds;        /* measured seconds per side, over all rounds */
  int rounds;            /* alternations of baseline and esc phases */
  bool checkpoint;       /* CHECKPOINT before each phase (when allowed) */
  int64_t events;        /* --events: the project group's catch-up log
                            length; 0: the scenario's default */
  bool refill;           /* --refill: rebuild that log even if reusable */
} bench_config;

/* ------------------------------------------------------------------------
 * Timing (timing.c)
 * ------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/*
 * Peak resident set size: bench_rss_reset starts a window (Linux's
 * /proc/self/clear_refs "5" resets the high-water mark) and returns
 * whether it could; bench_peak_rss_mb is the peak since, in MiB
 * (getrusage ru_maxrss), or since the process started when the reset
 * failed. Process-wide: every thread's memory counts.
 */
bool bench_rss_reset(void);
double bench_peak_rss_mb(void);

/*
 * A log-linear latency histogram in nanoseconds: values below 64 ns are
 * exact, above that each power of two is split into 32 buckets, so a
 * reported percentile is within about 1.6% of the true value. Caller memory;
 * about 15 KiB, so keep it on the heap.
 */
#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_BUCKETS                                                     \
  ((1u << BENCH_HIST_SUB_BITS) +                                               \
   (64u - BENCH_HIST_SUB_BITS) * (1u << (BENCH_HIST_SUB_BITS - 1)))

typedef struct bench_hist {
  uint64_t count;
  uint64_t min_ns;
  uint64_t max_ns;
  double sum_ns;
  uint64_t buckets[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_init(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t ns);
void bench_hist_merge(bench_hist *into, const bench_hist *from);
/* The q-quantile (0 < q <= 1) in milliseconds; NAN when h is empty. */
double bench_hist_quantile_ms(const bench_hist *h, double q);

/* ------------------------------------------------------------------------
 * Phase runner (runner.c): N worker threads doing timed operations
 * ------------------------------------------------------------------------ */

/*
 * Callbacks a phase runs on each worker thread. Each returns 0, or -1 after
 * filling err. `shared` is bench_phase.shared.
 */
typedef struct bench_worker_ops {
  /* Connects and prepares worker `index`; *worker gets its state. Untimed. */
  int (*setup)(void *shared, int index, void **worker, char *err,
               size_t errlen);
  /* Prepares the next operation (generates its events). Untimed. */
  int (*prepare)(void *worker, char *err, size_t errlen);
  /* The timed operation; *units gets the events (or other units) done. */
  int (*exec)(void *worker, uint64_t *units, char *err, size_t errlen);
  /* Frees the worker; accepts NULL. */
  void (*teardown)(void *worker);
} bench_worker_ops;

typedef struct bench_phase {
  const char *label; /* "esc" or "raw", for messages */
  const bench_worker_ops *ops;
  void *shared;
  int threads;
  double seconds;
  int warmup_ops; /* untimed operations per worker before the start */
} bench_phase;

/* What the phases of one side of a scenario added up to. */
typedef struct bench_tally {
  uint64_t ops;
  uint64_t units;
  double seconds;
  bench_hist *hist; /* latency of each exec(); owned, see below */
} bench_tally;

int bench_tally_init(bench_tally *t, char *err, size_t errlen);
void bench_tally_release(bench_tally *t);
/* units per second; 0 when nothing was measured */
double bench_tally_rate(const bench_tally *t);

/*
 * Runs one phase: all workers set up and warm up, start together, and run
 * operations until the phase's time is up. Only operations that completed
 * before the deadline count. Adds ops, units, seconds and latencies to
 * tally. Returns -1 with err filled if any worker failed.
 */
/* Whether phase i of a scenario is the esc side. Phases go baseline esc |
 * esc baseline | baseline esc ...: within every two rounds each side runs
 * first once, so a linear drift of the machine cancels out. */
bool bench_esc_phase(int i);

int bench_run_phase(const bench_phase *p, bench_tally *tally, char *err,
                    size_t errlen);

/* ------------------------------------------------------------------------
 * Event payloads (payload.c)
 * ------------------------------------------------------------------------ */

#define BENCH_DATA_LEN 100 /* bytes of msgpack per event's data */
#define BENCH_EVENT_TYPE "ItemAdded"

/*
 * n events for one append: fresh v4 ids, a BENCH_DATA_LEN-byte msgpack map
 * as data, and one metadata map (correlation id, causation id, actor, time)
 * shared by the batch, as one command's events would share it.
 */
typedef struct bench_payload {
  esc_event_data *events;
  size_t n;
  unsigned char *data; /* n * BENCH_DATA_LEN bytes */
  void *metadata;      /* from esc_metadata_encode */
  size_t metadata_len;
  char actor[32];
  uint64_t seq;
} bench_payload;

int bench_payload_init(bench_payload *p, size_t n, int writer, char *err,
                       size_t errlen);
/* Fills every event afresh for an append to stream_id. */
int bench_payload_fill(bench_payload *p, const char *stream_id, char *err,
                       size_t errlen);
void bench_payload_release(bench_payload *p);

/* ------------------------------------------------------------------------
 * PostgreSQL helpers (db.c)
 * ------------------------------------------------------------------------ */

/* A libpq connection to cfg->pg_url, application_name "esc-bench". */
PGconn *bench_pg_connect(const bench_config *cfg, char *err, size_t errlen);
/* The first line of the error of res (or of conn when res is NULL), in a
 * thread-local buffer valid until the next call on this thread. */
const char *bench_pg_error(PGconn *conn, const PGresult *res);
/* Takes a session advisory lock on cfg->schema so two runs never drop each
 * other's tables; fails when another run holds it. */
int bench_pg_lock_schema(const bench_config *cfg, PGconn *conn, char *err,
                         size_t errlen);
/* Runs parameterless SQL; any result status but OK fails. */
int bench_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen);
/* Runs a query returning one integer (e.g. a count). */
int bench_pg_query_i64(PGconn *conn, const char *sql, int64_t *out, char *err,
                       size_t errlen);
/* The quoted form of identifier name; malloc'ed, the caller frees it. */
char *bench_pg_ident(PGconn *conn, const char *name, char *err, size_t errlen);
/* CHECKPOINT, so phases start with the same amount of dirty data. Warns
 * once and carries on if the role may not checkpoint. */
void bench_pg_checkpoint(const bench_config *cfg, PGconn *admin);
/* Prints server version and durability settings to stderr. */
void bench_pg_describe(PGconn *conn);
/* An esc store on cfg->schema. */
esc_store *bench_esc_open(const bench_config *cfg, char *err, size_t errlen);
/* The same whose appends go through gc (NULL: none). */
esc_store *bench_esc_open_group(const bench_config *cfg, esc_group_commit *gc,
                                char *err, size_t errlen);
/* The same with synchronous_commit off, for untimed fills (falls back to a
 * plain store when the URL sets its own options). */
esc_store *bench_esc_open_async(const bench_config *cfg, char *err,
                                size_t errlen);
/* Drops cfg->schema and migrates it again with esc_store_migrate. */
int bench_esc_reset(const bench_config *cfg, PGconn *admin, char *err,
                    size_t errlen);

/* ------------------------------------------------------------------------
 * Raw baselines (baseline.c)
 * ------------------------------------------------------------------------ */

/* The baseline DDL with ident (a quoted schema) filled in; -1 if it does
 * not fit in size bytes. */
int bench_raw_ddl(const char *ident, char *out, size_t size);
/* Drops and re-creates the raw schema <schema>_raw with its events table. */
int bench_raw_reset(const bench_config *cfg, PGconn *admin, char *err,
                    size_t errlen);
/* SELECT count(*) of the raw events table. */
int bench_raw_count(const bench_config *cfg, PGconn *admin, int64_t *out,
                    char *err, size_t errlen);

/*
 * One connection inserting `batch` rows per transaction into the raw table
 * with a prepared multi-row INSERT and binary parameters.
 */
typedef struct bench_raw_writer bench_raw_writer;

bench_raw_writer *bench_raw_writer_new(const bench_config *cfg, size_t batch,
                                       char *err, size_t errlen);
/* Inserts events[0..batch) into stream_id as versions first_version... */
int bench_raw_insert(bench_raw_writer *w, const char *stream_id,
                     int64_t first_version, const esc_event_data *events,
                     char *err, size_t errlen);
void bench_raw_writer_free(bench_raw_writer *w);

/* ------------------------------------------------------------------------
 * Scenarios and output (main.c and the group files)
 * ------------------------------------------------------------------------ */

/* An extra numeric field of a scenario's JSON line. */
typedef struct bench_field {
  const char *key;
  double value;
  bool is_int;
} bench_field;

#define BENCH_MAX_FIELDS 16

/* One scenario's result: one JSON line. NAN prints as null. */
typedef struct bench_output {
  double value;
  const char *unit;
  double baseline;
  const char *baseline_name;
  double target_ratio;
  double seconds;
  int rounds;
  double p50_ms, p99_ms;
  double baseline_p50_ms, baseline_p99_ms;
  bench_field fields[BENCH_MAX_FIELDS];
  size_t n_fields;
} bench_output;

void bench_output_init(bench_output *out);
void bench_output_add(bench_output *out, const char *key, double value,
                      bool is_int);

typedef struct bench_scenario bench_scenario;
#define BENCH_SKIPPED 1

struct bench_scenario {
  const char *name;
  const char *summary;
  /* Runs the scenario and fills out; -1 with err filled on failure,
   * BENCH_SKIPPED with err saying why when it cannot run here (a
   * standby it needs is not configured, say). */
  int (*run)(const bench_config *cfg, const bench_scenario *sc,
             bench_output *out, char *err, size_t errlen);
  const void *params; /* the group's own parameters */
};

typedef struct bench_group {
  const char *name;
  const bench_scenario *scenarios;
  size_t count;
} bench_group;

/* The append group (append.c). */
extern const bench_group bench_append_group;
/* The command group (command.c). */
extern const bench_group bench_command_group;
/* The project group (project.c). */
extern const bench_group bench_project_group;
/* The process group (process.c): needs the order sample. */
extern const bench_group bench_process_group;
extern const bench_group bench_read_group;

/* Writes a message to stderr, prefixed "esc-bench: ". */
void bench_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* snprintf into err that never fails the caller's own formatting. */
void bench_errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif

/*
 * The project group's internals: what project.c (the event, the projection,
 * the Redis and page-query helpers, the raw apply and the scenario table)
 * shares with project_catchup.c and project_latency.c. Nothing outside the
 * group includes it.
 *
 * Errors: as in bench.h, helpers return 0 on success and -1 on failure,
 * after writing a message into the caller's err[errlen] buffer. Nothing
 * here holds global state but the event registry, built once; every
 * redisContext and PGconn belongs to the thread that uses it.
 */
#ifndef ESC_BENCH_PROJECT_INT_H
#define ESC_BENCH_PROJECT_INT_H

#include "bench.h"

#include <esc/projection.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ITEMS 1000 /* distinct items: counters and zset members */
#define OID_INT8 20
#define OID_INT4 23
#define OID_TEXT 25
#define OID_BYTEA 17
#define OID_UUID 2950
#define OID_XID8 5069
#define PG_NAME_MAX 63

struct project_params {
  int batch;           /* worker batch size; the raw page size too */
  double target_ratio; /* catch-up */
  int rate;            /* latency: appends per second */
  double target_p99_ms;
  /* catch-up: > 0 compares esc with its metrics endpoint on, scraped
   * every scrape_ms, against esc without it (instead of against raw) */
  int scrape_ms;
  /* catch-up: compares esc reading the log from the standby of
   * ESC_PG_READ_URL against esc reading it from the primary */
  bool replica;
};

/* ------------------------------------------------------------------------
 * The event and the projection (project.c)
 * ------------------------------------------------------------------------ */

typedef struct item_scored {
  char item[32];
  int64_t points;
} item_scored;

/* ItemScored {item, points, note}: about 100 bytes of msgpack. */
extern const esc_event_type scored_type;

/* Fills *p for the projection "scores" under name (borrowed: it must
 * outlive the worker). Follows $all (the schemas hold nothing else); a
 * failing event stops the partition, so a broken bench cannot pass by
 * parking events. p->events is NULL when the registry could not be built. */
void scores_projection(esc_projection *p, const char *name);
/* Event i of a log: item i % ITEMS, points 1 + i % 7. */
void event_content(int64_t i, item_scored *e);
/* Per-item totals of events [0, n) into per_item[ITEMS]; returns their
 * sum. */
int64_t expected_totals(int64_t n, int64_t *per_item);

/* ------------------------------------------------------------------------
 * Small helpers: big-endian, load, sleeping (project.c)
 * ------------------------------------------------------------------------ */

void put_be64(unsigned char *out, uint64_t v);
uint64_t get_be64(const char *p);
/* The 1-minute load average on stderr (Linux), to judge how noisy a
 * phase's figure is: other jobs on the machine hit the side whose round
 * trips they delay. */
void log_load(const char *what);
/* Sleeps ns nanoseconds, resuming after signals. */
void sleep_ns(uint64_t ns);

/* ------------------------------------------------------------------------
 * Redis (hiredis) for the raw sides, the checker and the checks (project.c)
 * ------------------------------------------------------------------------ */

/* cfg->redis_url, or the library's default when unset or empty. */
const char *redis_url_of(const bench_config *cfg);
/*
 * A connection to url: redis://[[user]:password@][host][:port][/db],
 * without %-escapes (the library's parser takes those; the bench's servers
 * need none). The caller frees it with redisFree; NULL with err filled.
 */
redisContext *redis_open(const char *url, char *err, size_t errlen);
/* GET key into out[size]; *exists false for nil. */
int redis_get(redisContext *c, const char *key, char *out, size_t size,
              bool *exists, char *err, size_t errlen);
/* Deletes every key starting with prefix (SCAN + UNLINK); *count (may be
 * NULL) gets how many. The prefix never holds glob characters (names are
 * [a-z0-9_:]). */
int redis_delete_prefix(redisContext *c, const char *prefix, uint64_t *count,
                        char *err, size_t errlen);
/* Deletes every key of projection or raw prefix `name` ("<name>:*") after
 * a phase; a failure is only logged, under the scenario's name. */
void delete_keys(redisContext *c, const char *scenario, const char *name);

/* The key prefix the benchmarks' esc workers are given, so that their
 * keys ("pbench:<name>:...") are found without reading the store's
 * identity. */
#define BENCH_KEY_PREFIX "pbench"

/*
 * Checks a side's read model against the totals: every counter
 * <prefix>item:item-NNNN and every score of <prefix>leaderboard must equal
 * expect[]. *sum gets the sum of the counters.
 */
int verify_totals(redisContext *c, const char *prefix, const int64_t *expect,
                  int64_t *sum, char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * PostgreSQL helpers (project.c)
 * ------------------------------------------------------------------------ */

/* cfg with another schema (name points into caller storage). */
bench_config with_schema(const bench_config *cfg, const char *name);
/* Removes a projection's registry row (the schema may be reused); errors
 * are ignored. ident is the quoted schema. */
void forget_projection(PGconn *admin, const char *ident, const char *name);
/* The raw read into out[size]: keyset page after ($1, $2) below the
 * horizon, at most $3 rows. Returns out. */
const char *raw_read_sql(const char *ident, char *out, size_t size);
/* PQprepare that fails on any status but COMMAND_OK. */
int prepare(PGconn *conn, const char *name, const char *sql, int nparams,
            const Oid *types, char *err, size_t errlen);
/* Sends the prepared "raw_page" query after (tx, global) (binary
 * parameters and results). */
int send_page(PGconn *conn, uint64_t tx, int64_t global, int limit, char *err,
              size_t errlen);
/* The page query's result (and the end of its results), which must have
 * `fields` columns in binary; the caller clears it. NULL with err
 * filled; err must start empty. */
PGresult *get_page(PGconn *conn, int fields, char *err, size_t errlen);

/* ------------------------------------------------------------------------
 * The raw apply: one page as one MULTI/EXEC, pipelined (project.c)
 * ------------------------------------------------------------------------ */

struct raw_applier {
  redisContext *redis;
  char prefix[64]; /* "<name>:" */
  char lb_key[96];
  char cp_key[96];
  msgpack_zone zone;
  int64_t events;
  int64_t points;
};

/* Connects to redis_url and names the keys after name ("<name>:item:...",
 * "<name>:leaderboard", "<name>:checkpoint"); after success the caller
 * releases it with applier_release. */
int applier_init(struct raw_applier *a, const char *redis_url, const char *name,
                 char *err, size_t errlen);
void applier_release(struct raw_applier *a);
/* Applies a non-empty page of (tx_id, global_position, data) rows: queues
 * MULTI, two commands per row, SET checkpoint, EXEC; reads every reply and
 * checks that nothing failed. */
int raw_apply(struct raw_applier *a, const PGresult *page, char *err,
              size_t errlen);

/* ------------------------------------------------------------------------
 * The scenarios (bench_scenario.run)
 * ------------------------------------------------------------------------ */

/* project-catchup (project_catchup.c) */
/* The catch-up log of n events ("score-<k>" streams of 100, category
 * "score") in <cfg->schema>_proj_<n>: reused when a fill of exactly n
 * events is there (unless --refill), else filled now (untimed). schema
 * and *pcfg name it; *ident is its quoted name, the caller's to free. */
int catchup_log_ready(const bench_config *cfg, PGconn *admin, int64_t n,
                      char *schema, size_t schema_size, bench_config *pcfg,
                      char **ident, bool *reused, char *err, size_t errlen);
int run_catchup(const bench_config *cfg, const bench_scenario *sc,
                bench_output *out, char *err, size_t errlen);
/* project-latency (project_latency.c) */
int run_latency(const bench_config *cfg, const bench_scenario *sc,
                bench_output *out, char *err, size_t errlen);

#endif

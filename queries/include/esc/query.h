/*
 * <esc/query.h> - reading projections' read models in Redis.
 *
 * A query names a projection and a key suffix; esc resolves the generation
 * that projection currently serves ("NS:<name>:generation", checked on
 * every read in the same round trip, so a rebuild's switch is noticed at
 * once) and reads "NS:<name>:g<generation>:<suffix>" with plain Redis
 * commands. NS is the store's key namespace (esc_key_namespace), resolved
 * once when the query is made: a query of one store never reads another
 * store's models, even in the same Redis database.
 *
 * Read-your-writes: a command's result carries a position token; a query
 * can wait (with a timeout) until the projection has passed it. A session
 * remembers the newest position it has seen, so its reads are monotonic.
 *
 * Threading: an esc_query is one Redis connection and is not thread-safe;
 * use one per thread.
 */
#ifndef ESC_QUERY_H
#define ESC_QUERY_H

#include <esc/projection.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esc_query esc_query;

/* Which Redis, and which store's keys in it. */
typedef struct esc_query_options {
  const char *redis_url; /* NULL: ESC_REDIS_URL, else the local server */
  /* The namespace, as the workers' (esc_worker_options.key_prefix): NULL:
   * ESC_KEY_PREFIX when set, else derived from the store's identity, read
   * from `store` when given (borrowed for the call), else from a store
   * opened on pg_url (NULL: ESC_PG_URL) and schema (NULL: "esc") for the
   * call. */
  const char *key_prefix;
  esc_store *store;
  const char *pg_url;
  const char *schema;
} esc_query_options;

#define ESC_QUERY_OPTIONS_INIT                                                 \
  { NULL, NULL, NULL, NULL, NULL }

/* Resolves the namespace and connects to Redis (opts NULL: every default).
 * NULL and err on failure: ESC_EINVAL for an invalid key prefix, else what
 * reading the store's identity or connecting returned. */
ESC_API esc_query *esc_query_new(const esc_query_options *opts,
                                 esc_error *err);
ESC_API void esc_query_free(esc_query *q);

/* The namespace the query reads in (owned by q). */
ESC_API const char *esc_query_namespace(const esc_query *q);

/*
 * The generation a projection serves now; ESC_ENOTFOUND when it has never
 * been built (no worker has run it yet).
 */
ESC_API esc_status esc_query_generation(esc_query *q, const char *projection,
                                        int64_t *generation, esc_error *err);

/* ------------------------------------------------------------------------
 * Reads. Each resolves the generation and reads in one round trip; a
 * missing key reads as empty (exists false, count 0).
 * ------------------------------------------------------------------------ */

/* A string or integer key (GET). value gets up to size - 1 bytes. */
ESC_API esc_status esc_query_get(esc_query *q, const char *projection,
                                 const char *suffix, char *value, size_t size,
                                 bool *exists, esc_error *err);

/* An integer key (GET, parsed); 0 when missing. */
ESC_API esc_status esc_query_counter(esc_query *q, const char *projection,
                                     const char *suffix, int64_t *value,
                                     esc_error *err);

/* An integer key that must exist: ESC_ENOTFOUND naming the projection
 * and suffix when it does not, ESC_EINVAL when its value is not a
 * decimal int64 (a model written by something else). *value is set only
 * on ESC_OK. */
ESC_API esc_status esc_query_int(esc_query *q, const char *projection,
                                 const char *suffix, int64_t *value,
                                 esc_error *err);

/* Name/value pairs (a hash), or members with scores (a sorted set), or
 * members (a set). Strings are NUL-terminated; release frees them. */
typedef struct esc_query_item {
  char *name;
  char *value;  /* hashes */
  double score; /* sorted sets */
} esc_query_item;

typedef struct esc_query_items {
  esc_query_item *items;
  size_t count;
} esc_query_items;

#define ESC_QUERY_ITEMS_INIT                                                   \
  { NULL, 0 }
ESC_API void esc_query_items_release(esc_query_items *items);

/* HGETALL. */
ESC_API esc_status esc_query_hash(esc_query *q, const char *projection,
                                  const char *suffix, esc_query_items *out,
                                  esc_error *err);
/* ZRANGE (by rank, highest first when reverse) WITHSCORES. */
ESC_API esc_status esc_query_zrange(esc_query *q, const char *projection,
                                    const char *suffix, int64_t start,
                                    int64_t stop, bool reverse,
                                    esc_query_items *out, esc_error *err);
/* SMEMBERS. */
ESC_API esc_status esc_query_set(esc_query *q, const char *projection,
                                 const char *suffix, esc_query_items *out,
                                 esc_error *err);

/* ------------------------------------------------------------------------
 * Read-your-writes
 * ------------------------------------------------------------------------ */

/*
 * Waits until every partition of the projection's serving generation has a
 * checkpoint at or after token, or timeout_ms passes (ESC_ETIMEDOUT). The
 * partitions are the serving generation's own, read from Redis with its
 * checkpoints. partitions <= 0: use them; > 0: a check that the caller
 * agrees, ESC_EINVAL when the generation has another count (a smaller one
 * would return before some partitions got there).
 */
ESC_API esc_status esc_query_wait(esc_query *q, const char *projection,
                                  int partitions, const esc_position *token,
                                  int timeout_ms, esc_error *err);

/* Monotonic reads: a session remembers the newest token it has seen or
 * written; waiting on it before a read never shows an older state. */
typedef struct esc_query_session {
  esc_position seen;
} esc_query_session;

#define ESC_QUERY_SESSION_INIT                                                 \
  { ESC_POSITION_START }

/* Records a token (a command's result, or a checkpoint read). */
ESC_API void esc_query_session_observe(esc_query_session *s,
                                       const esc_position *token);

/* esc_query_wait on the session's newest token. */
ESC_API esc_status esc_query_session_wait(esc_query *q,
                                          const esc_query_session *s,
                                          const char *projection,
                                          int partitions, int timeout_ms,
                                          esc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ESC_QUERY_H */

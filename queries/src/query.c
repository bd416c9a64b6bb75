/*
 * Queries: each read runs a tiny script that resolves the projection's
 * serving generation and runs the read on "NS:<name>:g<G>:<suffix>" (NS:
 * the store's key namespace, resolved once in esc_query_new) in the
 * same step, so a read can never mix generations and a rebuild's switch is
 * seen by the very next read (docs/decisions/0005-queries-resolve-the-
 * generation-in-the-read.md).
 */
#include <esc/query.h>

#include <esc_internal/readmodel.h>
#include "reply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* KEYS[1] = "NS:<name>:generation"; ARGV = "NS:<name>", suffix, command,
 * args...
 * Returns {false} when the projection has no generation, else
 * {generation, reply}. */
static const char READ_SCRIPT[] =
    "local g = redis.call('GET', KEYS[1]) "
    "if not g then return {false} end "
    "local key = ARGV[1] .. ':g' .. g .. ':' .. ARGV[2] "
    "return {g, redis.call(ARGV[3], key, unpack(ARGV, 4))}";

/* KEYS = "NS:<name>:generation", "NS:<name>:partitions"; ARGV =
 * "NS:<name>", count.
 * Returns {false}, or {generation, its partition count, checkpoint of p0
 * or false, p1, ...}: the layout is the serving generation's own, read in
 * the same step as its checkpoints (ARGV[2] only for a generation written
 * before workers recorded the layout). */
static const char CHECKPOINTS_SCRIPT[] =
    "local g = redis.call('GET', KEYS[1]) "
    "if not g then return {false} end "
    "local n = tonumber(redis.call('GET', KEYS[2]) or ARGV[2]) "
    "local out = {g, n} "
    "for p = 0, n - 1 do "
    "  out[#out + 1] = redis.call('GET', ARGV[1] .. ':g' .. g .. ':p' .. p "
    "    .. ':checkpoint') or false "
    "end "
    "return out";

struct esc_query {
  esc__redis *redis;
  char ns[ESC__NAMESPACE_SIZE];
};

/* The namespace the options name: the configured prefix, else the store's
 * (the caller's, or one opened for this). */
static esc_status resolve_namespace(const esc_query_options *o, char *ns,
                                    esc_error *err) {
  const char *configured = esc__key_prefix_configured(o->key_prefix);
  if (configured || o->store)
    return esc_key_namespace(o->store, configured, ns, ESC__NAMESPACE_SIZE,
                             err);
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = o->schema;
  so.app_name = "esc-query";
  esc_store *st = esc_store_open(o->pg_url, &so, err);
  if (!st)
    return err && err->code ? err->code : ESC_ECONN;
  esc_status rc = esc_key_namespace(st, NULL, ns, ESC__NAMESPACE_SIZE, err);
  esc_store_free(st);
  return rc;
}

esc_query *esc_query_new(const esc_query_options *opts, esc_error *err) {
  esc_query_options defaults = ESC_QUERY_OPTIONS_INIT;
  const esc_query_options *o = opts ? opts : &defaults;
  esc_query *q = calloc(1, sizeof *q);
  if (!q) {
    esc_error_set(err, ESC_ENOMEM, "query: out of memory");
    return NULL;
  }
  if (resolve_namespace(o, q->ns, err) != ESC_OK) {
    free(q);
    return NULL;
  }
  q->redis = esc__redis_connect(o->redis_url, err);
  if (!q->redis) {
    free(q);
    return NULL;
  }
  return q;
}

const char *esc_query_namespace(const esc_query *q) {
  return q->ns;
}

void esc_query_free(esc_query *q) {
  if (!q)
    return;
  esc__redis_free(q->redis);
  free(q);
}

void esc_query_items_release(esc_query_items *items) {
  if (!items)
    return;
  for (size_t i = 0; i < items->count; i++) {
    free(items->items[i].name);
    free(items->items[i].value);
  }
  free(items->items);
  items->items = NULL;
  items->count = 0;
}

/* --------------------------------------------------------- the script -- */

/* Runs the read script; *reply is the command's reply (owned by *whole,
 * which the caller frees), NULL with ESC_ENOTFOUND when never built. */
static esc_status read_model(esc_query *q, const char *projection,
                             const char *suffix, int argc, const char **args,
                             redisReply **whole, const redisReply **reply,
                             esc_error *err) {
  char gen_key[ESC__KEY_MAX], base[ESC__KEY_MAX];
  const char *argv[16];
  *whole = NULL;
  *reply = NULL;
  if (!esc__projection_name_valid(projection, err))
    return ESC_EINVAL;
  if (argc < 1 || argc > 10)
    return esc_error_set(err, ESC_EINVAL, "query: bad argument count");
  esc__key_base(base, sizeof base, q->ns, projection);
  esc__key_generation(gen_key, sizeof gen_key, base);
  int n = 0;
  argv[n++] = "EVAL";
  argv[n++] = READ_SCRIPT;
  argv[n++] = "1";
  argv[n++] = gen_key;
  argv[n++] = base;
  argv[n++] = suffix;
  for (int i = 0; i < argc; i++)
    argv[n++] = args[i];
  esc_status rc = esc__redis_run(q->redis, n, argv, NULL, whole, err);
  if (rc)
    return rc;
  return esc__query_unwrap(*whole, projection, reply, err);
}

/* -------------------------------------------------------------- reads -- */

esc_status esc_query_generation(esc_query *q, const char *projection,
                                int64_t *generation, esc_error *err) {
  char key[ESC__KEY_MAX], base[ESC__KEY_MAX], value[32];
  bool exists = false;
  if (!esc__projection_name_valid(projection, err))
    return ESC_EINVAL;
  esc__key_base(base, sizeof base, q->ns, projection);
  esc__key_generation(key, sizeof key, base);
  esc_status rc =
      esc__redis_get(q->redis, key, value, sizeof value, &exists, err);
  if (!rc && !exists)
    return esc_error_set(err, ESC_ENOTFOUND,
                         "projection %s has not been built yet", projection);
  if (!rc)
    *generation = strtoll(value, NULL, 10);
  return rc;
}

esc_status esc_query_get(esc_query *q, const char *projection,
                         const char *suffix, char *value, size_t size,
                         bool *exists, esc_error *err) {
  redisReply *whole;
  const redisReply *r;
  const char *args[] = {"GET"};
  esc_status rc = read_model(q, projection, suffix, 1, args, &whole, &r, err);
  *exists = false;
  if (!rc)
    rc = esc__query_value(r, projection, value, size, exists, err);
  freeReplyObject(whole);
  return rc;
}

esc_status esc_query_counter(esc_query *q, const char *projection,
                             const char *suffix, int64_t *value,
                             esc_error *err) {
  char text[32];
  bool exists = false;
  esc_status rc =
      esc_query_get(q, projection, suffix, text, sizeof text, &exists, err);
  *value = !rc && exists ? strtoll(text, NULL, 10) : 0;
  return rc;
}

esc_status esc_query_int(esc_query *q, const char *projection,
                         const char *suffix, int64_t *value, esc_error *err) {
  char text[32], *end = NULL;
  bool exists = false;
  esc_status rc =
      esc_query_get(q, projection, suffix, text, sizeof text, &exists, err);
  if (rc)
    return rc;
  if (!exists)
    return esc_error_set(err, ESC_ENOTFOUND, "%s: no %s", projection, suffix);
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end)
    return esc_error_set(err, ESC_EINVAL,
                         "%s: %s holds '%.32s', not an integer", projection,
                         suffix, text);
  *value = (int64_t)v;
  return ESC_OK;
}

esc_status esc_query_hash(esc_query *q, const char *projection,
                          const char *suffix, esc_query_items *out,
                          esc_error *err) {
  redisReply *whole;
  const redisReply *r;
  const char *args[] = {"HGETALL"};
  esc_status rc = read_model(q, projection, suffix, 1, args, &whole, &r, err);
  if (!rc)
    rc = esc__query_items(r, projection, 2, false, out, err);
  freeReplyObject(whole);
  return rc;
}

esc_status esc_query_zrange(esc_query *q, const char *projection,
                            const char *suffix, int64_t start, int64_t stop,
                            bool reverse, esc_query_items *out,
                            esc_error *err) {
  redisReply *whole;
  const redisReply *r;
  char from[24], to[24];
  snprintf(from, sizeof from, "%" PRId64, start);
  snprintf(to, sizeof to, "%" PRId64, stop);
  const char *fwd[] = {"ZRANGE", from, to, "WITHSCORES"};
  const char *rev[] = {"ZRANGE", from, to, "REV", "WITHSCORES"};
  esc_status rc = read_model(q, projection, suffix, reverse ? 5 : 4,
                             reverse ? rev : fwd, &whole, &r, err);
  if (!rc)
    rc = esc__query_items(r, projection, 2, true, out, err);
  freeReplyObject(whole);
  return rc;
}

esc_status esc_query_set(esc_query *q, const char *projection,
                         const char *suffix, esc_query_items *out,
                         esc_error *err) {
  redisReply *whole;
  const redisReply *r;
  const char *args[] = {"SMEMBERS"};
  esc_status rc = read_model(q, projection, suffix, 1, args, &whole, &r, err);
  if (!rc)
    rc = esc__query_items(r, projection, 1, false, out, err);
  freeReplyObject(whole);
  return rc;
}

/* ---------------------------------------------------- read-your-writes -- */

/* Whether every partition's checkpoint is at or after token. hint > 0 is
 * the caller's idea of the partition count: checked, never trusted (a
 * smaller one would skip partitions and return early). */
static esc_status passed(esc_query *q, const char *projection, int hint,
                         const esc_position *token, bool *yes, esc_error *err) {
  char gen_key[ESC__KEY_MAX], parts_key[ESC__KEY_MAX], base[ESC__KEY_MAX],
      count[16];
  redisReply *r = NULL;
  *yes = false;
  esc__key_base(base, sizeof base, q->ns, projection);
  esc__key_generation(gen_key, sizeof gen_key, base);
  esc__key_partitions(parts_key, sizeof parts_key, base);
  snprintf(count, sizeof count, "%d", hint > 0 ? hint : 1);
  const char *argv[] = {"EVAL",    CHECKPOINTS_SCRIPT, "2",  gen_key,
                        parts_key, base,               count};
  esc_status rc = esc__redis_run(q->redis, 7, argv, NULL, &r, err);
  if (rc)
    return rc;
  rc = esc__query_passed(r, projection, hint, token, yes, err);
  freeReplyObject(r);
  return rc;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

esc_status esc_query_wait(esc_query *q, const char *projection, int partitions,
                          const esc_position *token, int timeout_ms,
                          esc_error *err) {
  int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
  long pause_us = 200;
  if (!esc__projection_name_valid(projection, err))
    return ESC_EINVAL;
  for (;;) {
    bool yes = false;
    esc_status rc = passed(q, projection, partitions, token, &yes, err);
    if (rc || yes)
      return rc;
    if (now_ms() >= deadline) {
      char t[ESC_POSITION_TOKEN_MAX];
      esc_position_format(token, t);
      return esc_error_set(err, ESC_ETIMEDOUT,
                           "projection %s has not reached %s within %d ms",
                           projection, t, timeout_ms);
    }
    /* Short at first (a worker usually needs a millisecond or two), then
     * backing off to 10 ms. */
    struct timespec ts = {0, pause_us * 1000};
    nanosleep(&ts, NULL);
    pause_us = pause_us * 2 > 10000 ? 10000 : pause_us * 2;
  }
}

void esc_query_session_observe(esc_query_session *s,
                               const esc_position *token) {
  if (esc_position_cmp(token, &s->seen) > 0)
    s->seen = *token;
}

esc_status esc_query_session_wait(esc_query *q, const esc_query_session *s,
                                  const char *projection, int partitions,
                                  int timeout_ms, esc_error *err) {
  return esc_query_wait(q, projection, partitions, &s->seen, timeout_ms, err);
}

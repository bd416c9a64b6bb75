/*
 * The project group: projection workers (esc_worker) against raw
 * libpq + msgpack-c + hiredis loops doing the same work in the same run.
 *
 * Both scenarios run one projection, "scores": events ItemScored {item,
 * points, note} (about 100 bytes of msgpack); for each the handler queues
 *   INCRBY <prefix>item:<item> points
 *   ZINCRBY <prefix>leaderboard points <item>
 * i.e. two Redis writes per event. The esc side decodes through an event
 * registry (what a projection normally does); the raw side unpacks the
 * same payload with msgpack-c and takes the same two fields.
 *
 * project-catchup: a fresh projection catches up over N events (default
 * 1,000,000) already in the log. The log lives in its own schema,
 * <schema>_proj_<N>, which is filled once (untimed, esc_append_many,
 * synchronous_commit off, then VACUUM) and reused by later runs as long as
 * it holds exactly that data (--refill forces a new fill). The esc side
 * times esc_worker_run_until_caught_up of one worker (batch 500); the raw
 * side reads the same rows by keyset pagination on (tx_id,
 * global_position) below the subscription horizon, binary results, the
 * next page's query sent before the current page is processed, and sends
 * each page's commands plus a checkpoint SET as one pipelined MULTI/EXEC.
 * Afterwards both sides' counters and leaderboard are checked, item by
 * item, against the totals the fill implies.
 *
 * project-latency: a writer appends single events at a fixed rate (1000/s)
 * while a projection follows; a checker polls the projection's checkpoint
 * key every 0.2 ms and marks every event at or below it as visible at
 * that moment. Latency = visible - the moment the append was sent. The esc
 * side is esc_append + esc_worker_run; the raw side is a one-statement
 * INSERT ... pg_notify into a plain table and a consumer that LISTENs,
 * reads new rows (same query shape as above) when woken and applies them
 * with MULTI/EXEC as in the catch-up baseline. Each phase starts from a
 * freshly migrated schema (<schema>_plat, <schema>_plat_raw).
 *
 * Every projection name and raw key prefix carries the process id and the
 * phase, and every key written is deleted after the phase's check.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <esc/projection.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_EVENTS INT64_C(1000000)
#define ITEMS 1000            /* distinct items: counters and zset members */
#define NOTE_LEN 60           /* padding, so data is ~100 bytes */
#define EVENTS_PER_STREAM 100 /* catch-up log: "score-<k>" streams */
#define STREAMS_PER_CALL 100  /* esc_append_many requests per fill call */
#define FILL_LAYOUT 1         /* bump when the fill's content changes */
#define CATCHUP_TIMEOUT_MS (3600 * 1000)
#define LAT_STREAMS 100
#define LAT_WARMUP 100     /* first events of a phase, not measured */
#define LAT_POLL_NS 200000 /* checker: 0.2 ms between checkpoint reads */
#define LAT_DRAIN_MS 10000 /* how long the end of a phase may take */
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
};

/* ------------------------------------------------------------------------
 * The event and the projection
 * ------------------------------------------------------------------------ */

typedef struct item_scored {
  char item[32];
  int64_t points;
} item_scored;

static int scored_encode(const void *event, msgpack_packer *pk) {
  const item_scored *e = event;
  char note[NOTE_LEN];
  memset(note, 'x', sizeof note);
  msgpack_pack_map(pk, 3);
  esc_pack_key(pk, "item");
  esc_pack_str(pk, e->item);
  esc_pack_key(pk, "points");
  msgpack_pack_int64(pk, e->points);
  esc_pack_key(pk, "note");
  msgpack_pack_str(pk, sizeof note);
  msgpack_pack_str_body(pk, note, sizeof note);
  return 0;
}

static esc_status scored_decode(const msgpack_object *obj, void *event,
                                esc_error *err) {
  item_scored *e = event;
  if (!esc_map_str(obj, "item", e->item, sizeof e->item) ||
      !esc_map_i64(obj, "points", &e->points))
    return esc_error_set(err, ESC_EINVAL, "ItemScored needs item and points");
  return ESC_OK;
}

static const esc_event_type scored_type = {
    "ItemScored", 1, sizeof(item_scored), scored_encode, scored_decode, NULL};

static esc_event_registry *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void build_registry(void) {
  registry = esc_event_registry_new(NULL);
  if (registry && esc_event_registry_add(registry, &scored_type, NULL)) {
    esc_event_registry_free(registry);
    registry = NULL;
  }
}

static const esc_event_registry *scored_events(void) {
  pthread_once(&registry_once, build_registry);
  return registry;
}

/* The handler: two writes per event. */
static esc_status scores_handle(esc_projection_ctx *ctx, const esc_event *event,
                                void *userdata, esc_error *err) {
  (void)userdata;
  (void)err;
  const item_scored *e = event->data;
  if (!e)
    return ESC_OK; /* not an ItemScored */
  const char *n = esc_ctx_i64(ctx, e->points);
  esc_status rc =
      esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "item:%s", e->item), n, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "ZINCRBY", esc_ctx_key(ctx, "leaderboard"), n,
                     e->item, NULL);
  return rc;
}

/* Follows $all (the schemas hold nothing else); a failing event stops the
 * partition, so a broken bench cannot pass by parking events. */
static void scores_projection(esc_projection *p, const char *name) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->version = 1;
  p->partitions = 1;
  p->events = scored_events();
  p->handle = scores_handle;
  p->on_error = ESC_ON_ERROR_STOP;
  p->max_attempts = 1;
}

/* Event i of a log: item i % ITEMS, points 1 + i % 7. */
static void event_content(int64_t i, item_scored *e) {
  snprintf(e->item, sizeof e->item, "item-%04d", (int)(i % ITEMS));
  e->points = 1 + i % 7;
}

/* Per-item totals of events [0, n); returns their sum. */
static int64_t expected_totals(int64_t n, int64_t *per_item) {
  int64_t sum = 0;
  memset(per_item, 0, ITEMS * sizeof *per_item);
  for (int64_t i = 0; i < n; i++) {
    per_item[i % ITEMS] += 1 + i % 7;
    sum += 1 + i % 7;
  }
  return sum;
}

/* The raw side's decoding: msgpack-c, the map's "item" and "points". */
static int raw_decode(const char *data, size_t len, msgpack_zone *zone,
                      const char **item, size_t *item_len, int64_t *points) {
  msgpack_object obj;
  size_t off = 0;
  bool have_item = false, have_points = false;
  msgpack_zone_clear(zone);
  if (msgpack_unpack(data, len, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS ||
      obj.type != MSGPACK_OBJECT_MAP)
    return -1;
  for (uint32_t k = 0; k < obj.via.map.size; k++) {
    const msgpack_object_kv *kv = &obj.via.map.ptr[k];
    if (kv->key.type != MSGPACK_OBJECT_STR)
      continue;
    const msgpack_object_str *key = &kv->key.via.str;
    if (key->size == 4 && memcmp(key->ptr, "item", 4) == 0 &&
        kv->val.type == MSGPACK_OBJECT_STR) {
      *item = kv->val.via.str.ptr;
      *item_len = kv->val.via.str.size;
      have_item = true;
    } else if (key->size == 6 && memcmp(key->ptr, "points", 6) == 0) {
      if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
          kv->val.via.u64 <= INT64_MAX)
        *points = (int64_t)kv->val.via.u64;
      else if (kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *points = kv->val.via.i64;
      else
        return -1;
      have_points = true;
    }
  }
  return have_item && have_points && *item_len < 32 ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Small helpers: big-endian, positions, time
 * ------------------------------------------------------------------------ */

static void put_be64(unsigned char *out, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (unsigned char)v;
    v >>= 8;
  }
}

static uint64_t get_be64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | u[i];
  return v;
}

static void put_be32(unsigned char *out, uint32_t v) {
  for (int i = 3; i >= 0; i--) {
    out[i] = (unsigned char)v;
    v >>= 8;
  }
}

/* The 1-minute load average on stderr (Linux), to judge how noisy a
 * phase's figure is: other jobs on the machine hit the side whose round
 * trips they delay. */
static void log_load(const char *what) {
  FILE *f = fopen("/proc/loadavg", "r");
  double l1 = 0;
  if (!f)
    return;
  if (fscanf(f, "%lf", &l1) == 1)
    bench_log("%s: load average %.2f (%ld CPUs)", what, l1,
              sysconf(_SC_NPROCESSORS_ONLN));
  fclose(f);
}

/* CPU time of the calling thread, in seconds. */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void sleep_until_ns(uint64_t when) {
  struct timespec ts = {(time_t)(when / 1000000000u),
                        (long)(when % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* ------------------------------------------------------------------------
 * Redis (hiredis) for the raw sides, the checker and the checks
 * ------------------------------------------------------------------------ */

static const char *redis_url_of(const bench_config *cfg) {
  return cfg->redis_url && *cfg->redis_url ? cfg->redis_url
                                           : esc_default_redis_url();
}

/*
 * redis://[[user]:password@][host][:port][/db], without %-escapes (the
 * library's parser takes those; the bench's servers need none).
 */
static redisContext *redis_open(const char *url, char *err, size_t errlen) {
  char host[256] = "127.0.0.1", user[128] = "", pass[256] = "";
  long port = 6379, db = 0;
  const char *s, *at, *end, *colon;
  struct timeval tv = {5, 0};

  if (strncmp(url, "redis://", 8) != 0) {
    bench_errf(err, errlen, "redis URL %s: must start with redis://", url);
    return NULL;
  }
  s = url + 8;
  end = s + strcspn(s, "/");
  at = NULL;
  for (const char *p = s; p < end; p++)
    if (*p == '@')
      at = p;
  if (at) {
    const char *c = memchr(s, ':', (size_t)(at - s));
    if (c) {
      snprintf(user, sizeof user, "%.*s", (int)(c - s), s);
      snprintf(pass, sizeof pass, "%.*s", (int)(at - c - 1), c + 1);
    } else {
      snprintf(pass, sizeof pass, "%.*s", (int)(at - s), s);
    }
    s = at + 1;
  }
  colon = memchr(s, ':', (size_t)(end - s));
  if ((colon ? colon : end) > s)
    snprintf(host, sizeof host, "%.*s", (int)((colon ? colon : end) - s), s);
  if (colon)
    port = strtol(colon + 1, NULL, 10);
  if (*end == '/' && end[1])
    db = strtol(end + 1, NULL, 10);

  redisContext *c = redisConnectWithTimeout(host, (int)port, tv);
  if (!c || c->err) {
    bench_errf(err, errlen, "redis %s:%ld: %s", host, port,
               c ? c->errstr : "out of memory");
    if (c)
      redisFree(c);
    return NULL;
  }
  redisReply *r = NULL;
  if (pass[0]) {
    const char *argv[3] = {"AUTH", user[0] ? user : pass, pass};
    r = redisCommandArgv(c, user[0] ? 3 : 2, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
      goto out_fail;
    freeReplyObject(r);
  }
  if (db) {
    char d[24];
    snprintf(d, sizeof d, "%ld", db);
    const char *argv[2] = {"SELECT", d};
    r = redisCommandArgv(c, 2, argv, NULL);
    if (!r || r->type == REDIS_REPLY_ERROR)
      goto out_fail;
    freeReplyObject(r);
  }
  return c;
out_fail:
  bench_errf(err, errlen, "redis %s:%ld: %s", host, port,
             r ? r->str : c->errstr);
  if (r)
    freeReplyObject(r);
  redisFree(c);
  return NULL;
}

/* One command; error replies and I/O errors fail. */
static redisReply *redis_run(redisContext *c, int argc, const char **argv,
                             const size_t *lens, char *err, size_t errlen) {
  redisReply *r = redisCommandArgv(c, argc, argv, lens);
  if (!r) {
    bench_errf(err, errlen, "redis %s: %s", argv[0], c->errstr);
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    bench_errf(err, errlen, "redis %s: %s", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

/* GET key into out; *exists false for nil. */
static int redis_get(redisContext *c, const char *key, char *out, size_t size,
                     bool *exists, char *err, size_t errlen) {
  const char *argv[2] = {"GET", key};
  redisReply *r = redis_run(c, 2, argv, NULL, err, errlen);
  int rc = 0;
  *exists = false;
  out[0] = '\0';
  if (!r)
    return -1;
  if (r->type == REDIS_REPLY_STRING && r->len < size) {
    memcpy(out, r->str, r->len);
    out[r->len] = '\0';
    *exists = true;
  } else if (r->type != REDIS_REPLY_NIL) {
    bench_errf(err, errlen, "redis GET %s: unexpected reply", key);
    rc = -1;
  }
  freeReplyObject(r);
  return rc;
}

/* Deletes every key starting with prefix (SCAN + UNLINK); *count gets how
 * many. The prefix never holds glob characters (names are [a-z0-9_:]). */
static int redis_delete_prefix(redisContext *c, const char *prefix,
                               uint64_t *count, char *err, size_t errlen) {
  char pattern[256], cursor[32] = "0";
  snprintf(pattern, sizeof pattern, "%s*", prefix);
  if (count)
    *count = 0;
  do {
    const char *argv[6] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *r = redis_run(c, 6, argv, NULL, err, errlen);
    if (!r)
      return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
      freeReplyObject(r);
      bench_errf(err, errlen, "redis SCAN: unexpected reply");
      return -1;
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    redisReply *keys = r->element[1];
    if (keys->elements > 0) {
      size_t n = keys->elements + 1;
      const char **argv2 = malloc(n * sizeof *argv2);
      size_t *lens = malloc(n * sizeof *lens);
      redisReply *u = NULL;
      if (argv2 && lens) {
        argv2[0] = "UNLINK";
        lens[0] = 6;
        for (size_t i = 0; i < keys->elements; i++) {
          argv2[i + 1] = keys->element[i]->str;
          lens[i + 1] = keys->element[i]->len;
        }
        u = redis_run(c, (int)n, argv2, lens, err, errlen);
      } else {
        bench_errf(err, errlen, "out of memory");
      }
      free(argv2);
      free(lens);
      if (!u) {
        freeReplyObject(r);
        return -1;
      }
      freeReplyObject(u);
      if (count)
        *count += keys->elements;
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return 0;
}

/*
 * Checks a side's read model against the totals: every counter
 * <prefix>item:item-NNNN and every score of <prefix>leaderboard must equal
 * expect[]. *sum gets the sum of the counters.
 */
static int verify_totals(redisContext *c, const char *prefix,
                         const int64_t *expect, int64_t *sum, char *err,
                         size_t errlen) {
  enum { NKEYS = ITEMS + 1 };
  char(*keys)[96] = malloc(NKEYS * sizeof *keys);
  const char **argv = malloc(NKEYS * sizeof *argv);
  redisReply *r = NULL;
  int rc = -1;
  *sum = 0;
  if (!keys || !argv) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  argv[0] = "MGET";
  for (int k = 0; k < ITEMS; k++) {
    snprintf(keys[k], sizeof keys[k], "%sitem:item-%04d", prefix, k);
    argv[k + 1] = keys[k];
  }
  r = redis_run(c, NKEYS, argv, NULL, err, errlen);
  if (!r)
    goto out;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != ITEMS) {
    bench_errf(err, errlen, "redis MGET: unexpected reply");
    goto out;
  }
  for (int k = 0; k < ITEMS; k++) {
    const redisReply *e = r->element[k];
    int64_t v = e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
    if (v != expect[k]) {
      bench_errf(err, errlen,
                 "%sitem:item-%04d is %" PRId64 ", expected %" PRId64, prefix,
                 k, v, expect[k]);
      goto out;
    }
    *sum += v;
  }
  freeReplyObject(r);

  char lb[96];
  snprintf(lb, sizeof lb, "%sleaderboard", prefix);
  const char *zargv[5] = {"ZRANGE", lb, "0", "-1", "WITHSCORES"};
  r = redis_run(c, 5, zargv, NULL, err, errlen);
  if (!r)
    goto out;
  int64_t expect_members = 0;
  for (int k = 0; k < ITEMS; k++)
    expect_members += expect[k] != 0;
  if (r->type != REDIS_REPLY_ARRAY ||
      r->elements != (size_t)(2 * expect_members)) {
    bench_errf(err, errlen, "%s has %zu members, expected %" PRId64, lb,
               r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0,
               expect_members);
    goto out;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *m = r->element[i], *s = r->element[i + 1];
    int k = -1;
    if (m->type != REDIS_REPLY_STRING || s->type != REDIS_REPLY_STRING ||
        sscanf(m->str, "item-%4d", &k) != 1 || k < 0 || k >= ITEMS ||
        strtod(s->str, NULL) != (double)expect[k]) {
      bench_errf(err, errlen, "%s: member %s has score %s, expected %" PRId64,
                 lb, m->type == REDIS_REPLY_STRING ? m->str : "?",
                 s->type == REDIS_REPLY_STRING ? s->str : "?",
                 k >= 0 && k < ITEMS ? expect[k] : 0);
      goto out;
    }
  }
  rc = 0;
out:
  if (r)
    freeReplyObject(r);
  free(keys);
  free(argv);
  return rc;
}

/* ------------------------------------------------------------------------
 * PostgreSQL helpers
 * ------------------------------------------------------------------------ */

/* cfg with another schema (name points into caller storage). */
static bench_config with_schema(const bench_config *cfg, const char *name) {
  bench_config c = *cfg;
  c.schema = name;
  return c;
}

static int drop_schema(PGconn *admin, const char *schema, char *err,
                       size_t errlen) {
  char sql[160];
  char *ident = bench_pg_ident(admin, schema, err, errlen);
  if (!ident)
    return -1;
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", ident);
  free(ident);
  return bench_pg_exec(admin, sql, err, errlen);
}

/* "tx/global" of the newest event of schema ident ("" when empty). */
static int last_position(PGconn *admin, const char *ident, char *out,
                         size_t size, char *err, size_t errlen) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT tx_id::text || '/' || global_position FROM %s.events "
           "ORDER BY tx_id DESC, global_position DESC LIMIT 1",
           ident);
  PGresult *res = PQexec(admin, sql);
  int rc = 0;
  out[0] = '\0';
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    bench_errf(err, errlen, "%s", bench_pg_error(admin, res));
    rc = -1;
  } else if (PQntuples(res) == 1) {
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
  }
  PQclear(res);
  return rc;
}

/* Removes a projection's registry row (the schema may be reused). */
static void forget_projection(PGconn *admin, const char *ident,
                              const char *name) {
  char sql[256];
  const char *params[1] = {name};
  snprintf(sql, sizeof sql, "DELETE FROM %s.projections WHERE name = $1",
           ident);
  PQclear(PQexecParams(admin, sql, 1, NULL, params, NULL, NULL, 0));
}

/* The raw read: keyset page after ($1, $2) below the horizon. */
static const char *raw_read_sql(const char *ident, char *out, size_t size) {
  snprintf(out, size,
           "SELECT tx_id, global_position, data FROM %s.events"
           " WHERE (tx_id, global_position) > ($1, $2)"
           " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
           " ORDER BY tx_id, global_position LIMIT $3",
           ident);
  return out;
}

static int prepare(PGconn *conn, const char *name, const char *sql, int nparams,
                   const Oid *types, char *err, size_t errlen) {
  PGresult *res = PQprepare(conn, name, sql, nparams, types);
  int rc = 0;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    bench_errf(err, errlen, "prepare %s: %s", name, bench_pg_error(conn, res));
    rc = -1;
  }
  PQclear(res);
  return rc;
}

/* Sends the page query after pos (binary parameters and results). */
static int send_page(PGconn *conn, uint64_t tx, int64_t global, int limit,
                     char *err, size_t errlen) {
  unsigned char tx_be[8], g_be[8], lim_be[8];
  put_be64(tx_be, tx);
  put_be64(g_be, (uint64_t)global);
  put_be64(lim_be, (uint64_t)limit);
  const char *values[3] = {(const char *)tx_be, (const char *)g_be,
                           (const char *)lim_be};
  int lengths[3] = {8, 8, 8}, formats[3] = {1, 1, 1};
  if (!PQsendQueryPrepared(conn, "raw_page", 3, values, lengths, formats, 1)) {
    bench_errf(err, errlen, "send page: %s", bench_pg_error(conn, NULL));
    return -1;
  }
  return 0;
}

/* The page query's result (and the end of its results). */
static PGresult *get_page(PGconn *conn, char *err, size_t errlen) {
  PGresult *page = NULL, *res;
  while ((res = PQgetResult(conn)) != NULL) {
    if (PQresultStatus(res) == PGRES_TUPLES_OK && !page) {
      page = res;
      continue;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
      bench_errf(err, errlen, "page: %s", bench_pg_error(conn, res));
    PQclear(res);
    if (page) {
      PQclear(page);
      page = NULL;
    }
  }
  if (page && (PQnfields(page) != 3 || PQfformat(page, 0) != 1)) {
    bench_errf(err, errlen, "page: unexpected reply shape");
    PQclear(page);
    page = NULL;
  } else if (!page && !err[0]) {
    bench_errf(err, errlen, "page: no result: %s", bench_pg_error(conn, NULL));
  }
  return page;
}

/* ------------------------------------------------------------------------
 * The raw apply: one page as one MULTI/EXEC, pipelined
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

static int applier_init(struct raw_applier *a, const char *redis_url,
                        const char *name, char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (!msgpack_zone_init(&a->zone, 4096)) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  snprintf(a->prefix, sizeof a->prefix, "%s:", name);
  snprintf(a->lb_key, sizeof a->lb_key, "%sleaderboard", a->prefix);
  snprintf(a->cp_key, sizeof a->cp_key, "%scheckpoint", a->prefix);
  a->redis = redis_open(redis_url, err, errlen);
  return a->redis ? 0 : -1;
}

static void applier_release(struct raw_applier *a) {
  if (a->redis)
    redisFree(a->redis);
  a->redis = NULL;
  msgpack_zone_destroy(&a->zone);
}

/* Queues MULTI, two commands per row, SET checkpoint, EXEC; reads every
 * reply and checks that nothing failed. */
static int raw_apply(struct raw_applier *a, const PGresult *page, char *err,
                     size_t errlen) {
  int n = PQntuples(page);
  redisContext *c = a->redis;
  const char *multi = "MULTI", *exec = "EXEC";
  redisAppendCommandArgv(c, 1, &multi, NULL);
  for (int r = 0; r < n; r++) {
    const char *item = NULL;
    size_t item_len = 0;
    int64_t points = 0;
    char key[128], pts[24];
    if (raw_decode(PQgetvalue(page, r, 2), (size_t)PQgetlength(page, r, 2),
                   &a->zone, &item, &item_len, &points) != 0) {
      bench_errf(err, errlen, "raw: undecodable event at global %" PRIu64,
                 get_be64(PQgetvalue(page, r, 1)));
      return -1;
    }
    int klen = snprintf(key, sizeof key, "%sitem:%.*s", a->prefix,
                        (int)item_len, item);
    int plen = snprintf(pts, sizeof pts, "%" PRId64, points);
    const char *incr[3] = {"INCRBY", key, pts};
    size_t incr_l[3] = {6, (size_t)klen, (size_t)plen};
    const char *zinc[4] = {"ZINCRBY", a->lb_key, pts, item};
    size_t zinc_l[4] = {7, strlen(a->lb_key), (size_t)plen, item_len};
    redisAppendCommandArgv(c, 3, incr, incr_l);
    redisAppendCommandArgv(c, 4, zinc, zinc_l);
    a->points += points;
  }
  char cp[48];
  snprintf(cp, sizeof cp, "%" PRIu64 "/%" PRIu64,
           get_be64(PQgetvalue(page, n - 1, 0)),
           get_be64(PQgetvalue(page, n - 1, 1)));
  const char *set[3] = {"SET", a->cp_key, cp};
  redisAppendCommandArgv(c, 3, set, NULL);
  redisAppendCommandArgv(c, 1, &exec, NULL);

  /* MULTI, 2n + 1 QUEUED, EXEC */
  int replies = 2 * n + 3;
  int rc = 0;
  for (int i = 0; i < replies; i++) {
    void *v = NULL;
    if (redisGetReply(c, &v) != REDIS_OK || !v) {
      bench_errf(err, errlen, "raw: redis: %s", c->errstr);
      return -1;
    }
    redisReply *rep = v;
    if (rep->type == REDIS_REPLY_ERROR) {
      bench_errf(err, errlen, "raw: redis: %s", rep->str);
      rc = -1;
    } else if (i == replies - 1) {
      if (rep->type != REDIS_REPLY_ARRAY ||
          rep->elements != (size_t)(2 * n + 1)) {
        bench_errf(err, errlen, "raw: EXEC: unexpected reply");
        rc = -1;
      } else {
        for (size_t k = 0; k < rep->elements && rc == 0; k++)
          if (rep->element[k]->type == REDIS_REPLY_ERROR) {
            bench_errf(err, errlen, "raw: command %zu: %s", k,
                       rep->element[k]->str);
            rc = -1;
          }
      }
    }
    freeReplyObject(rep);
  }
  a->events += n;
  return rc;
}

/* ========================================================================
 * project-catchup
 * ======================================================================== */

/* Fills the catch-up schema with events [0, n): streams "score-<k>" of
 * EVENTS_PER_STREAM events, STREAMS_PER_CALL streams per esc_append_many. */
static int fill_log(const bench_config *pcfg, PGconn *admin, const char *ident,
                    int64_t n, char *err, size_t errlen) {
  size_t per_call = (size_t)STREAMS_PER_CALL * EVENTS_PER_STREAM;
  esc_event_data *events = calloc(per_call, sizeof *events);
  void **data = calloc(per_call, sizeof *data);
  esc_append_request reqs[STREAMS_PER_CALL];
  char names[STREAMS_PER_CALL][32];
  esc_metadata m = ESC_METADATA_INIT;
  esc_error e = ESC_ERROR_INIT;
  void *meta = NULL;
  size_t meta_len = 0;
  esc_store *st = NULL;
  int rc = -1;
  uint64_t t0 = bench_now_ns(), last_log = t0;

  if (!events || !data) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  bench_log("project-catchup: filling %s with %" PRId64 " events (untimed)",
            pcfg->schema, n);
  if (bench_esc_reset(pcfg, admin, err, errlen) != 0)
    goto out;
  m.correlation_id = esc_uuid_v4();
  m.causation_id = m.correlation_id;
  m.actor = "bench-fill";
  m.time_us = esc_now_us();
  if (esc_metadata_encode(&m, &meta, &meta_len, &e) != ESC_OK) {
    bench_errf(err, errlen, "fill: metadata: %s", e.msg);
    goto out;
  }
  st = bench_esc_open_async(pcfg, err, errlen);
  if (!st)
    goto out;

  for (int64_t done = 0; done < n;) {
    size_t nreq = 0, nev = 0;
    while (done < n && nreq < STREAMS_PER_CALL) {
      int64_t k = done / EVENTS_PER_STREAM;
      size_t first = nev;
      snprintf(names[nreq], sizeof names[nreq], "score-%" PRId64, k);
      while (done < n && (nev == first || done % EVENTS_PER_STREAM != 0)) {
        item_scored ev;
        size_t len = 0;
        event_content(done, &ev);
        if (esc_event_encode(&scored_type, &ev, &data[nev], &len, &e) !=
            ESC_OK) {
          bench_errf(err, errlen, "fill: encode: %s", e.msg);
          goto out_free_data;
        }
        events[nev] = (esc_event_data){
            esc_uuid_v4(), scored_type.name, 1, data[nev], len, meta, meta_len};
        nev++;
        done++;
      }
      reqs[nreq] = (esc_append_request){.stream_id = names[nreq],
                                        .expected = ESC_EXPECT_NO_STREAM,
                                        .events = events + first,
                                        .n = nev - first};
      nreq++;
    }
    if (esc_append_many(st, reqs, nreq, &e) != ESC_OK) {
      bench_errf(err, errlen, "fill: esc_append_many: %s: %s",
                 esc_strerror(e.code), e.msg);
      goto out_free_data;
    }
    for (size_t r = 0; r < nreq; r++)
      if (reqs[r].status != ESC_OK) {
        bench_errf(err, errlen, "fill %s: %s: %s", names[r],
                   esc_strerror(reqs[r].status), reqs[r].error.msg);
        goto out_free_data;
      }
    for (size_t i = 0; i < nev; i++) {
      free(data[i]);
      data[i] = NULL;
    }
    uint64_t now = bench_now_ns();
    if (now - last_log > 5000000000u || done == n) {
      last_log = now;
      bench_log("project-catchup: filled %" PRId64 " of %" PRId64
                " events (%.0f/s)",
                done, n, (double)done / ((double)(now - t0) / 1e9));
    }
    continue;
  out_free_data:
    for (size_t i = 0; i < nev; i++)
      free(data[i]);
    goto out;
  }

  /* Hint bits and the visibility map now, so neither side's first read
   * pays for them; and the marker that lets later runs reuse the log. */
  {
    char sql[512];
    uint64_t tv = bench_now_ns();
    snprintf(sql, sizeof sql, "VACUUM (ANALYZE) %s.events", ident);
    if (bench_pg_exec(admin, sql, err, errlen) != 0)
      goto out;
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s.bench_fill (events bigint NOT NULL, layout int "
             "NOT NULL, filled_at timestamptz NOT NULL DEFAULT now());"
             " INSERT INTO %s.bench_fill (events, layout) VALUES (%" PRId64
             ", %d)",
             ident, ident, n, FILL_LAYOUT);
    if (bench_pg_exec(admin, sql, err, errlen) != 0)
      goto out;
    bench_log("project-catchup: filled in %.1f s (VACUUM %.1f s)",
              (double)(bench_now_ns() - t0) / 1e9,
              (double)(bench_now_ns() - tv) / 1e9);
  }
  rc = 0;
out:
  esc_store_free(st);
  free(events);
  free(data);
  free(meta);
  return rc;
}

/* Whether the schema holds exactly the fill of n events. */
static bool log_reusable(PGconn *admin, const char *ident, int64_t n) {
  char sql[256], err[BENCH_ERR_MAX];
  int64_t v = -1;
  snprintf(sql, sizeof sql,
           "SELECT coalesce((SELECT events FROM %s.bench_fill WHERE layout = "
           "%d), -1)",
           ident, FILL_LAYOUT);
  if (bench_pg_query_i64(admin, sql, &v, err, sizeof err) != 0 || v != n)
    return false;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", ident);
  if (bench_pg_query_i64(admin, sql, &v, err, sizeof err) != 0 || v != n)
    return false;
  return true;
}

/* What both sides of a catch-up share. */
struct catchup {
  const bench_config *cfg;
  const struct project_params *pp;
  bench_config pcfg; /* cfg on the catch-up schema */
  char schema[PG_NAME_MAX + 1];
  char *ident;
  int64_t n;
  int64_t *expect;
  int64_t expect_sum;
  char last_pos[48];
  PGconn *admin;
  redisContext *redis; /* checks and clean-up */
  const char *redis_url;
  /* results */
  double esc_seconds, raw_seconds;
  double esc_cpu, raw_cpu; /* client CPU time of the measured loops */
  int64_t esc_events, raw_events;
  int64_t esc_sum, raw_sum;
  int phase;
};

/* Progress of an esc catch-up, from its checkpoint in Redis. */
struct progress {
  const char *redis_url;
  char name[64];
  int64_t n;
  uint64_t t0;
  atomic_bool stop;
};

static void *progress_main(void *arg) {
  struct progress *p = arg;
  char err[BENCH_ERR_MAX];
  redisContext *c = redis_open(p->redis_url, err, sizeof err);
  uint64_t next = p->t0 + 5000000000u;
  while (c && !atomic_load(&p->stop)) {
    sleep_ns(100000000u);
    uint64_t now = bench_now_ns();
    if (now < next)
      continue;
    next = now + 5000000000u;
    char key[128], gen[32], cp[64];
    bool exists = false;
    snprintf(key, sizeof key, "%s:generation", p->name);
    if (redis_get(c, key, gen, sizeof gen, &exists, err, sizeof err) != 0 ||
        !exists)
      continue;
    snprintf(key, sizeof key, "%s:g%s:p0:checkpoint", p->name, gen);
    if (redis_get(c, key, cp, sizeof cp, &exists, err, sizeof err) != 0 ||
        !exists)
      continue;
    const char *slash = strchr(cp, '/');
    long long at = slash ? strtoll(slash + 1, NULL, 10) : 0;
    bench_log("project-catchup esc: at global position %lld of ~%" PRId64
              " (%.0f events/s)",
              at, p->n, (double)at / ((double)(now - p->t0) / 1e9));
  }
  if (c)
    redisFree(c);
  return NULL;
}

static int catchup_esc(struct catchup *cu, char *err, size_t errlen) {
  char name[64], prefix[128], gen[32], key[160], cp[64];
  esc_projection proj;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  esc_worker *w = NULL;
  struct progress prog;
  pthread_t thread;
  bool exists = false, started = false;
  int rc = -1;

  snprintf(name, sizeof name, "pbench_c%d_%d", (int)getpid(), cu->phase);
  scores_projection(&proj, name);
  if (!proj.events) {
    bench_errf(err, errlen, "event registry: out of memory");
    return -1;
  }
  o.pg_url = cu->cfg->pg_url;
  o.redis_url = cu->redis_url;
  o.schema = cu->schema;
  o.batch_size = cu->pp->batch;
  w = esc_worker_new(&o, &e);
  if (!w || esc_worker_add(w, &proj, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc worker: %s", e.msg);
    goto out;
  }

  memset(&prog, 0, sizeof prog);
  prog.redis_url = cu->redis_url;
  snprintf(prog.name, sizeof prog.name, "%s", name);
  prog.n = cu->n;
  prog.t0 = bench_now_ns();
  atomic_init(&prog.stop, false);
  started = pthread_create(&thread, NULL, progress_main, &prog) == 0;

  uint64_t t0 = bench_now_ns();
  double cpu0 = thread_cpu_s();
  esc_status st = esc_worker_run_until_caught_up(w, CATCHUP_TIMEOUT_MS, &e);
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  double cpu = thread_cpu_s() - cpu0;
  if (started) {
    atomic_store(&prog.stop, true);
    pthread_join(thread, NULL);
  }
  esc_worker_free(w);
  w = NULL;
  if (st != ESC_OK) {
    bench_errf(err, errlen, "esc_worker_run_until_caught_up: %s: %s",
               esc_strerror(st), e.msg);
    goto out;
  }

  /* The read model: every counter, every score, and the checkpoint. */
  snprintf(key, sizeof key, "%s:generation", name);
  if (redis_get(cu->redis, key, gen, sizeof gen, &exists, err, errlen) != 0)
    goto out;
  if (!exists) {
    bench_errf(err, errlen, "%s is missing after the catch-up", key);
    goto out;
  }
  snprintf(prefix, sizeof prefix, "%s:g%s:", name, gen);
  snprintf(key, sizeof key, "%sp0:checkpoint", prefix);
  if (redis_get(cu->redis, key, cp, sizeof cp, &exists, err, errlen) != 0)
    goto out;
  if (strcmp(cp, cu->last_pos) != 0) {
    bench_errf(err, errlen, "esc checkpoint %s, but the log ends at %s", cp,
               cu->last_pos);
    goto out;
  }
  int64_t sum = 0;
  if (verify_totals(cu->redis, prefix, cu->expect, &sum, err, errlen) != 0)
    goto out;
  cu->esc_seconds += secs;
  cu->esc_cpu += cpu;
  cu->esc_events += cu->n;
  cu->esc_sum = sum;
  bench_log("project-catchup esc: %" PRId64 " events in %.2f s: %.0f events/s"
            " (client CPU %.2f s; counters sum to %" PRId64 ", as expected)",
            cu->n, secs, (double)cu->n / secs, cpu, sum);
  rc = 0;
out:
  esc_worker_free(w);
  {
    char e2[BENCH_ERR_MAX];
    char pfx[80];
    snprintf(pfx, sizeof pfx, "%s:", name);
    if (redis_delete_prefix(cu->redis, pfx, NULL, e2, sizeof e2) != 0)
      bench_log("project-catchup: deleting %s*: %s", pfx, e2);
  }
  forget_projection(cu->admin, cu->ident, name);
  return rc;
}

static int catchup_raw(struct catchup *cu, char *err, size_t errlen) {
  char name[64], sql[512];
  struct raw_applier a;
  PGconn *conn = NULL;
  PGresult *page = NULL;
  const Oid types[3] = {OID_XID8, OID_INT8, OID_INT8};
  int rc = -1;
  bool applier = false;

  snprintf(name, sizeof name, "pbench_rc%d_%d", (int)getpid(), cu->phase);
  if (applier_init(&a, cu->redis_url, name, err, errlen) != 0)
    goto out;
  applier = true;
  conn = bench_pg_connect(cu->cfg, err, errlen);
  if (!conn ||
      prepare(conn, "raw_page", raw_read_sql(cu->ident, sql, sizeof sql), 3,
              types, err, errlen) != 0)
    goto out;

  uint64_t t0 = bench_now_ns(), last_log = t0;
  double cpu0 = thread_cpu_s();
  if (send_page(conn, 0, 0, cu->pp->batch, err, errlen) != 0)
    goto out;
  for (;;) {
    err[0] = '\0';
    page = get_page(conn, err, errlen);
    if (!page)
      goto out;
    int n = PQntuples(page);
    if (n == 0)
      break;
    /* the next page's query goes out before this one is processed */
    if (send_page(conn, get_be64(PQgetvalue(page, n - 1, 0)),
                  (int64_t)get_be64(PQgetvalue(page, n - 1, 1)), cu->pp->batch,
                  err, errlen) != 0)
      goto out;
    if (raw_apply(&a, page, err, errlen) != 0)
      goto out;
    PQclear(page);
    page = NULL;
    uint64_t now = bench_now_ns();
    if (now - last_log > 5000000000u) {
      last_log = now;
      bench_log("project-catchup raw: %" PRId64 " of %" PRId64
                " events (%.0f events/s)",
                a.events, cu->n, (double)a.events / ((double)(now - t0) / 1e9));
    }
  }
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  double cpu = thread_cpu_s() - cpu0;

  char cp[64], prefix[80];
  bool exists = false;
  if (a.events != cu->n) {
    bench_errf(err, errlen, "raw read %" PRId64 " events, expected %" PRId64,
               a.events, cu->n);
    goto out;
  }
  if (redis_get(cu->redis, a.cp_key, cp, sizeof cp, &exists, err, errlen) != 0)
    goto out;
  if (strcmp(cp, cu->last_pos) != 0) {
    bench_errf(err, errlen, "raw checkpoint %s, but the log ends at %s", cp,
               cu->last_pos);
    goto out;
  }
  int64_t sum = 0;
  snprintf(prefix, sizeof prefix, "%s:", name);
  if (verify_totals(cu->redis, prefix, cu->expect, &sum, err, errlen) != 0)
    goto out;
  cu->raw_seconds += secs;
  cu->raw_cpu += cpu;
  cu->raw_events += a.events;
  cu->raw_sum = sum;
  bench_log("project-catchup raw: %" PRId64 " events in %.2f s: %.0f events/s"
            " (client CPU %.2f s; counters sum to %" PRId64 ", as expected)",
            a.events, secs, (double)a.events / secs, cpu, sum);
  rc = 0;
out:
  if (page)
    PQclear(page);
  PQfinish(conn);
  if (applier)
    applier_release(&a);
  {
    char e2[BENCH_ERR_MAX], pfx[80];
    snprintf(pfx, sizeof pfx, "%s:", name);
    if (redis_delete_prefix(cu->redis, pfx, NULL, e2, sizeof e2) != 0)
      bench_log("project-catchup: deleting %s*: %s", pfx, e2);
  }
  return rc;
}

static int run_catchup(const bench_config *cfg, const bench_scenario *sc,
                       bench_output *out, char *err, size_t errlen) {
  const struct project_params *pp = sc->params;
  struct catchup cu;
  bool reused = false;
  int rc = -1;

  memset(&cu, 0, sizeof cu);
  cu.cfg = cfg;
  cu.pp = pp;
  cu.n = cfg->events > 0 ? cfg->events : DEFAULT_EVENTS;
  cu.redis_url = redis_url_of(cfg);
  if ((size_t)snprintf(cu.schema, sizeof cu.schema, "%s_proj_%" PRId64,
                       cfg->schema, cu.n) >= sizeof cu.schema) {
    bench_errf(err, errlen, "schema name %s_proj_%" PRId64 " is too long",
               cfg->schema, cu.n);
    return -1;
  }
  cu.pcfg = with_schema(cfg, cu.schema);
  cu.expect = malloc(ITEMS * sizeof *cu.expect);
  if (!cu.expect) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  cu.expect_sum = expected_totals(cu.n, cu.expect);
  cu.admin = bench_pg_connect(cfg, err, errlen);
  if (!cu.admin)
    goto out;
  cu.redis = redis_open(cu.redis_url, err, errlen);
  if (!cu.redis)
    goto out;
  cu.ident = bench_pg_ident(cu.admin, cu.schema, err, errlen);
  if (!cu.ident)
    goto out;

  reused = !cfg->refill && log_reusable(cu.admin, cu.ident, cu.n);
  if (reused) {
    /* a newer library may have added migrations since the fill */
    esc_store *st = bench_esc_open(&cu.pcfg, err, errlen);
    esc_error e = ESC_ERROR_INIT;
    if (!st)
      goto out;
    esc_status ms = esc_store_migrate(st, NULL, &e);
    esc_store_free(st);
    if (ms != ESC_OK) {
      bench_errf(err, errlen, "esc_store_migrate: %s", e.msg);
      goto out;
    }
    bench_log("project-catchup: reusing the %" PRId64 " events in %s "
              "(--refill to append them afresh)",
              cu.n, cu.schema);
  } else if (fill_log(&cu.pcfg, cu.admin, cu.ident, cu.n, err, errlen) != 0) {
    goto out;
  }
  if (last_position(cu.admin, cu.ident, cu.last_pos, sizeof cu.last_pos, err,
                    errlen) != 0)
    goto out;
  /* the fill's (and VACUUM's) dirty pages written now, not mid-phase */
  bench_pg_checkpoint(cfg, cu.admin);
  log_load("project-catchup");

  /* raw esc | esc raw | ...: each side replays the whole log per phase */
  for (int r = 0; r < cfg->rounds; r++) {
    bool esc_first = r % 2 == 1;
    for (int k = 0; k < 2; k++) {
      bool esc = (k == 0) == esc_first;
      cu.phase = 2 * r + k;
      if ((esc ? catchup_esc(&cu, err, errlen)
               : catchup_raw(&cu, err, errlen)) != 0)
        goto out;
    }
  }
  log_load("project-catchup");
  if (cu.esc_sum != cu.raw_sum || cu.esc_sum != cu.expect_sum) {
    bench_errf(err, errlen,
               "totals differ: esc %" PRId64 ", raw %" PRId64
               ", expected %" PRId64,
               cu.esc_sum, cu.raw_sum, cu.expect_sum);
    goto out;
  }

  out->value = (double)cu.esc_events / cu.esc_seconds;
  out->unit = "events/s";
  out->baseline = (double)cu.raw_events / cu.raw_seconds;
  out->baseline_name = "raw-libpq-keyset-hiredis-multi";
  out->target_ratio = pp->target_ratio;
  out->seconds = cu.esc_seconds;
  out->rounds = cfg->rounds;
  bench_output_add(out, "events", (double)cu.n, true);
  bench_output_add(out, "batch_size", pp->batch, true);
  bench_output_add(out, "writes_per_event", 2, true);
  bench_output_add(out, "items", ITEMS, true);
  bench_output_add(out, "counter_sum", (double)cu.esc_sum, true);
  bench_output_add(out, "baseline_counter_sum", (double)cu.raw_sum, true);
  bench_output_add(out, "baseline_seconds", cu.raw_seconds, false);
  bench_output_add(out, "client_cpu_us_per_event",
                   cu.esc_cpu * 1e6 / (double)cu.esc_events, false);
  bench_output_add(out, "baseline_client_cpu_us_per_event",
                   cu.raw_cpu * 1e6 / (double)cu.raw_events, false);
  bench_output_add(out, "fill_reused", reused ? 1 : 0, true);
  rc = 0;
out:
  free(cu.ident);
  free(cu.expect);
  if (cu.redis)
    redisFree(cu.redis);
  PQfinish(cu.admin);
  return rc;
}

/* ========================================================================
 * project-latency
 * ======================================================================== */

struct lat_slot {
  esc_position pos;
  uint64_t send_ns;
  uint64_t done_ns; /* the append returned */
  uint64_t visible_ns;
};

/* One phase: the writer fills slots in order, the checker marks them. */
struct lat_phase {
  struct lat_slot *slots;
  atomic_size_t published;
  atomic_size_t visible;
  atomic_bool stop;
  const char *redis_url;
  char cp_key[160];
  atomic_int failed;
  char err[BENCH_ERR_MAX];
};

static void *checker_main(void *arg) {
  struct lat_phase *ph = arg;
  redisContext *c = redis_open(ph->redis_url, ph->err, sizeof ph->err);
  size_t next = 0;
  if (!c) {
    ph->failed = 1;
    return NULL;
  }
  while (!atomic_load(&ph->stop)) {
    char cp[64];
    bool exists = false;
    if (redis_get(c, ph->cp_key, cp, sizeof cp, &exists, ph->err,
                  sizeof ph->err) != 0) {
      ph->failed = 1;
      break;
    }
    uint64_t now = bench_now_ns();
    esc_position at;
    if (exists && esc_position_parse(cp, &at, NULL) == ESC_OK) {
      size_t n = atomic_load_explicit(&ph->published, memory_order_acquire);
      while (next < n && esc_position_cmp(&ph->slots[next].pos, &at) <= 0)
        ph->slots[next++].visible_ns = now;
      atomic_store_explicit(&ph->visible, next, memory_order_release);
    }
    sleep_ns(LAT_POLL_NS);
  }
  redisFree(c);
  return NULL;
}

/* A writer: prepare event i (untimed), then append it (timed). */
struct lat_writer {
  int (*prepare)(void *self, int64_t i, char *err, size_t errlen);
  int (*append)(void *self, esc_position *pos, char *err, size_t errlen);
  void *self;
};

/* What the side's measurements add up to over its phases. */
struct lat_side {
  bench_hist *visible; /* append sent -> visible in Redis */
  bench_hist *append;  /* the append call */
  bench_hist *after;   /* append returned -> visible: the projection's part */
  uint64_t events;
  double late_max_ms; /* how far the writer fell behind its schedule */
  double seconds;
};

static int lat_side_init(struct lat_side *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->visible = malloc(sizeof *s->visible);
  s->append = malloc(sizeof *s->append);
  s->after = malloc(sizeof *s->after);
  if (!s->visible || !s->append || !s->after) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  bench_hist_init(s->visible);
  bench_hist_init(s->append);
  bench_hist_init(s->after);
  return 0;
}

static void lat_side_release(struct lat_side *s) {
  free(s->visible);
  free(s->append);
  free(s->after);
}

/*
 * Runs the writer at rate/s for `count` events while the checker watches
 * ph->cp_key, waits until all are visible, and records the latencies of
 * all but the first LAT_WARMUP into side. The projection (worker or raw
 * consumer) is running already.
 */
static int lat_drive(struct lat_phase *ph, const struct lat_writer *wr,
                     int rate, size_t count, struct lat_side *side, char *err,
                     size_t errlen) {
  pthread_t checker;
  uint64_t period = 1000000000u / (uint64_t)rate;
  int rc = -1;

  atomic_init(&ph->published, 0);
  atomic_init(&ph->visible, 0);
  atomic_init(&ph->stop, false);
  if (pthread_create(&checker, NULL, checker_main, ph) != 0) {
    bench_errf(err, errlen, "cannot start the checker thread");
    return -1;
  }
  uint64_t t0 = bench_now_ns() + 10000000u;
  double late_max = 0;
  for (size_t i = 0; i < count; i++) {
    uint64_t due = t0 + i * period;
    if (wr->prepare(wr->self, (int64_t)i, err, errlen) != 0)
      goto out_stop;
    sleep_until_ns(due);
    struct lat_slot *s = &ph->slots[i];
    s->send_ns = bench_now_ns();
    if (s->send_ns > due && (double)(s->send_ns - due) / 1e6 > late_max)
      late_max = (double)(s->send_ns - due) / 1e6;
    if (wr->append(wr->self, &s->pos, err, errlen) != 0)
      goto out_stop;
    s->done_ns = bench_now_ns();
    atomic_store_explicit(&ph->published, i + 1, memory_order_release);
    if (ph->failed)
      break;
  }
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  uint64_t deadline = bench_now_ns() + (uint64_t)LAT_DRAIN_MS * 1000000u;
  while (!ph->failed &&
         atomic_load_explicit(&ph->visible, memory_order_acquire) < count &&
         bench_now_ns() < deadline)
    sleep_ns(1000000u);
  if (ph->failed) {
    bench_errf(err, errlen, "checker: %s", ph->err);
    goto out_stop;
  }
  size_t seen = atomic_load_explicit(&ph->visible, memory_order_acquire);
  if (seen < count) {
    bench_errf(err, errlen,
               "%zu of %zu events not visible in Redis %d ms after the last "
               "append",
               count - seen, count, LAT_DRAIN_MS);
    goto out_stop;
  }
  for (size_t i = LAT_WARMUP; i < count; i++) {
    const struct lat_slot *s = &ph->slots[i];
    uint64_t v = s->visible_ns > s->send_ns ? s->visible_ns : s->send_ns;
    bench_hist_record(side->visible, v - s->send_ns);
    bench_hist_record(side->append, s->done_ns - s->send_ns);
    /* 0 when the checker saw it before the writer got its reply back */
    bench_hist_record(side->after, v > s->done_ns ? v - s->done_ns : 0);
  }
  side->events += count - LAT_WARMUP;
  side->seconds += secs;
  if (late_max > side->late_max_ms)
    side->late_max_ms = late_max;
  rc = 0;
out_stop:
  atomic_store(&ph->stop, true);
  pthread_join(checker, NULL);
  return rc;
}

/* ---------------------------------------------------------- esc side -- */

struct esc_writer {
  esc_store *st;
  void *meta;
  size_t meta_len;
  char stream[32];
  esc_event_data ev;
  void *data;
  int64_t points;
};

static int esc_writer_prepare(void *self, int64_t i, char *err, size_t errlen) {
  struct esc_writer *w = self;
  item_scored e;
  size_t len = 0;
  esc_error ee = ESC_ERROR_INIT;
  event_content(i, &e);
  free(w->data);
  w->data = NULL;
  if (esc_event_encode(&scored_type, &e, &w->data, &len, &ee) != ESC_OK) {
    bench_errf(err, errlen, "encode: %s", ee.msg);
    return -1;
  }
  snprintf(w->stream, sizeof w->stream, "lat-%d", (int)(i % LAT_STREAMS));
  w->ev = (esc_event_data){esc_uuid_v4(), scored_type.name, 1,          w->data,
                           len,           w->meta,          w->meta_len};
  w->points += e.points;
  return 0;
}

static int esc_writer_append(void *self, esc_position *pos, char *err,
                             size_t errlen) {
  struct esc_writer *w = self;
  esc_append_result res;
  esc_error e = ESC_ERROR_INIT;
  if (esc_append(w->st, w->stream, ESC_EXPECT_ANY, &w->ev, 1, &res, &e) !=
      ESC_OK) {
    bench_errf(err, errlen, "esc_append: %s: %s", esc_strerror(e.code), e.msg);
    return -1;
  }
  *pos = res.position;
  return 0;
}

struct worker_thread {
  esc_worker *w;
  esc_status rc;
  esc_error e;
  atomic_bool done; /* esc_worker_run returned */
};

static void *worker_main(void *arg) {
  struct worker_thread *t = arg;
  t->rc = esc_worker_run(t->w, &t->e);
  atomic_store(&t->done, true);
  return NULL;
}

/* The shared metadata of a latency phase's events. */
static int lat_metadata(void **meta, size_t *len, char *err, size_t errlen) {
  esc_metadata m = ESC_METADATA_INIT;
  esc_error e = ESC_ERROR_INIT;
  m.correlation_id = esc_uuid_v4();
  m.causation_id = m.correlation_id;
  m.actor = "bench-latency";
  m.time_us = esc_now_us();
  if (esc_metadata_encode(&m, meta, len, &e) != ESC_OK) {
    bench_errf(err, errlen, "metadata: %s", e.msg);
    return -1;
  }
  return 0;
}

struct lat_ctx {
  const bench_config *cfg;
  const struct project_params *pp;
  PGconn *admin;
  redisContext *redis;
  const char *redis_url;
  char schema[PG_NAME_MAX + 1];
  char raw_schema[PG_NAME_MAX + 1];
  size_t count; /* events per phase, warm-up included */
  int64_t *expect;
  int phase;
};

static int latency_esc(struct lat_ctx *lc, struct lat_side *side, char *err,
                       size_t errlen) {
  bench_config pcfg = with_schema(lc->cfg, lc->schema);
  char name[64], key[128], gen[32], prefix[128];
  esc_projection proj;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  struct worker_thread wt = {NULL, ESC_OK, ESC_ERROR_INIT, false};
  struct esc_writer wr;
  struct lat_phase ph;
  pthread_t thread;
  bool running = false, exists = false;
  int rc = -1;

  memset(&wr, 0, sizeof wr);
  memset(&ph, 0, sizeof ph);
  snprintf(name, sizeof name, "pbench_l%d_%d", (int)getpid(), lc->phase);
  if (bench_esc_reset(&pcfg, lc->admin, err, errlen) != 0)
    goto out;
  bench_pg_checkpoint(lc->cfg, lc->admin);
  scores_projection(&proj, name);
  o.pg_url = lc->cfg->pg_url;
  o.redis_url = lc->redis_url;
  o.schema = lc->schema;
  o.batch_size = lc->pp->batch;
  wt.w = esc_worker_new(&o, &e);
  if (!wt.w || esc_worker_add(wt.w, &proj, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc worker: %s", e.msg);
    goto out;
  }
  if (pthread_create(&thread, NULL, worker_main, &wt) != 0) {
    bench_errf(err, errlen, "cannot start the worker thread");
    goto out;
  }
  running = true;

  /* The worker is up once it has created the projection's generation. */
  snprintf(key, sizeof key, "%s:generation", name);
  for (int i = 0; i < 10000 && !exists && !atomic_load(&wt.done); i++) {
    if (redis_get(lc->redis, key, gen, sizeof gen, &exists, err, errlen) != 0)
      goto out;
    if (!exists)
      sleep_ns(1000000u);
  }
  if (!exists) {
    if (atomic_load(&wt.done))
      bench_errf(err, errlen, "esc_worker_run: %s: %s", esc_strerror(wt.rc),
                 wt.e.msg);
    else
      bench_errf(err, errlen, "the worker did not start in 10 s");
    goto out;
  }
  snprintf(prefix, sizeof prefix, "%s:g%s:", name, gen);

  wr.st = bench_esc_open(&pcfg, err, errlen);
  if (!wr.st || lat_metadata(&wr.meta, &wr.meta_len, err, errlen) != 0)
    goto out;
  ph.slots = calloc(lc->count, sizeof *ph.slots);
  if (!ph.slots) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  ph.redis_url = lc->redis_url;
  snprintf(ph.cp_key, sizeof ph.cp_key, "%sp0:checkpoint", prefix);
  struct lat_writer writer = {esc_writer_prepare, esc_writer_append, &wr};
  if (lat_drive(&ph, &writer, lc->pp->rate, lc->count, side, err, errlen) != 0)
    goto out;

  esc_worker_stop(wt.w);
  pthread_join(thread, NULL);
  running = false;
  if (wt.rc != ESC_OK) {
    bench_errf(err, errlen, "esc_worker_run: %s: %s", esc_strerror(wt.rc),
               wt.e.msg);
    goto out;
  }
  int64_t sum = 0;
  expected_totals((int64_t)lc->count, lc->expect);
  if (verify_totals(lc->redis, prefix, lc->expect, &sum, err, errlen) != 0)
    goto out;
  if (sum != wr.points) {
    bench_errf(err, errlen,
               "esc counters sum to %" PRId64 ", appended %" PRId64, sum,
               wr.points);
    goto out;
  }
  rc = 0;
out:
  if (running) {
    esc_worker_stop(wt.w);
    pthread_join(thread, NULL);
  }
  esc_worker_free(wt.w);
  esc_store_free(wr.st);
  free(wr.data);
  free(wr.meta);
  free(ph.slots);
  {
    char e2[BENCH_ERR_MAX], pfx[80];
    char *ident = bench_pg_ident(lc->admin, lc->schema, e2, sizeof e2);
    snprintf(pfx, sizeof pfx, "%s:", name);
    if (redis_delete_prefix(lc->redis, pfx, NULL, e2, sizeof e2) != 0)
      bench_log("project-latency: deleting %s*: %s", pfx, e2);
    if (ident)
      forget_projection(lc->admin, ident, name);
    free(ident);
  }
  return rc;
}

/* ---------------------------------------------------------- raw side -- */

#define RAW_COLS 7

struct raw_writer {
  PGconn *conn;
  void *meta;
  size_t meta_len;
  /* the next row's parameters */
  char stream[32];
  unsigned char version_be[8];
  esc_uuid id;
  unsigned char sv_be[4];
  void *data;
  size_t data_len;
  int64_t points;
};

static int raw_writer_prepare(void *self, int64_t i, char *err, size_t errlen) {
  struct raw_writer *w = self;
  item_scored e;
  esc_error ee = ESC_ERROR_INIT;
  event_content(i, &e);
  free(w->data);
  w->data = NULL;
  if (esc_event_encode(&scored_type, &e, &w->data, &w->data_len, &ee) !=
      ESC_OK) {
    bench_errf(err, errlen, "encode: %s", ee.msg);
    return -1;
  }
  snprintf(w->stream, sizeof w->stream, "lat-%d", (int)(i % LAT_STREAMS));
  put_be64(w->version_be, (uint64_t)(i / LAT_STREAMS + 1));
  w->id = esc_uuid_v4();
  put_be32(w->sv_be, 1);
  w->points += e.points;
  return 0;
}

static int raw_writer_append(void *self, esc_position *pos, char *err,
                             size_t errlen) {
  struct raw_writer *w = self;
  const char *values[RAW_COLS] = {
      w->stream,        (const char *)w->version_be, (const char *)w->id.bytes,
      scored_type.name, (const char *)w->sv_be,      w->data,
      w->meta};
  int lengths[RAW_COLS] = {(int)strlen(w->stream),
                           8,
                           16,
                           (int)strlen(scored_type.name),
                           4,
                           (int)w->data_len,
                           (int)w->meta_len};
  int formats[RAW_COLS] = {1, 1, 1, 1, 1, 1, 1};
  PGresult *res = PQexecPrepared(w->conn, "raw_insert", RAW_COLS, values,
                                 lengths, formats, 1);
  int rc = -1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
    bench_errf(err, errlen, "raw insert: %s", bench_pg_error(w->conn, res));
  else {
    pos->tx_id = get_be64(PQgetvalue(res, 0, 0));
    pos->global = (int64_t)get_be64(PQgetvalue(res, 0, 1));
    rc = 0;
  }
  PQclear(res);
  return rc;
}

/* The raw consumer: LISTEN, read new rows when woken, apply them. */
struct raw_consumer {
  const bench_config *cfg;
  const char *ident; /* the raw schema, quoted */
  const char *redis_url;
  const char *channel;
  char name[64];
  int batch;
  atomic_bool ready;
  atomic_bool stop;
  atomic_int failed;
  char err[BENCH_ERR_MAX];
  int64_t events, wakeups;
};

/* Consumes pending notifications; true if there were any. */
static bool drain_notifies(PGconn *conn) {
  bool any = false;
  PGnotify *n;
  PQconsumeInput(conn);
  while ((n = PQnotifies(conn)) != NULL) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

static void *consumer_main(void *arg) {
  struct raw_consumer *rcn = arg;
  struct raw_applier a;
  char sql[512], *err = rcn->err;
  size_t errlen = sizeof rcn->err;
  const Oid types[3] = {OID_XID8, OID_INT8, OID_INT8};
  PGconn *conn = NULL;
  uint64_t tx = 0;
  int64_t global = 0;
  bool applier = false;

  if (applier_init(&a, rcn->redis_url, rcn->name, err, errlen) != 0)
    goto out;
  applier = true;
  conn = bench_pg_connect(rcn->cfg, err, errlen);
  if (!conn)
    goto out;
  snprintf(sql, sizeof sql, "LISTEN %s", rcn->channel);
  if (bench_pg_exec(conn, sql, err, errlen) != 0 ||
      prepare(conn, "raw_page", raw_read_sql(rcn->ident, sql, sizeof sql), 3,
              types, err, errlen) != 0)
    goto out;
  atomic_store(&rcn->ready, true);

  while (!atomic_load(&rcn->stop)) {
    err[0] = '\0';
    if (send_page(conn, tx, global, rcn->batch, err, errlen) != 0)
      goto out;
    PGresult *page = get_page(conn, err, errlen);
    if (!page)
      goto out;
    int n = PQntuples(page);
    if (n > 0) {
      tx = get_be64(PQgetvalue(page, n - 1, 0));
      global = (int64_t)get_be64(PQgetvalue(page, n - 1, 1));
      int rc = raw_apply(&a, page, err, errlen);
      PQclear(page);
      if (rc != 0)
        goto out;
      continue; /* more may have come meanwhile */
    }
    PQclear(page);
    /* A notification that arrived during the read is queued already. */
    if (drain_notifies(conn))
      continue;
    struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
    if (poll(&pfd, 1, 100) < 0 && errno != EINTR) {
      bench_errf(err, errlen, "poll: %s", strerror(errno));
      goto out;
    }
    drain_notifies(conn);
    rcn->wakeups++;
    if (PQstatus(conn) != CONNECTION_OK) {
      bench_errf(err, errlen, "raw consumer: %s", bench_pg_error(conn, NULL));
      goto out;
    }
  }
  rcn->events = a.events;
  PQfinish(conn);
  applier_release(&a);
  return NULL;
out:
  rcn->failed = 1;
  atomic_store(&rcn->ready, true);
  PQfinish(conn);
  if (applier)
    applier_release(&a);
  return NULL;
}

static int latency_raw(struct lat_ctx *lc, struct lat_side *side, char *err,
                       size_t errlen) {
  char ddl[2048], sql[1024], channel[64], prefix[96];
  char *ident = NULL;
  struct raw_writer wr;
  struct raw_consumer rcn;
  struct lat_phase ph;
  pthread_t thread;
  bool running = false;
  int rc = -1;
  const Oid types[RAW_COLS] = {OID_TEXT, OID_INT8,  OID_UUID, OID_TEXT,
                               OID_INT4, OID_BYTEA, OID_BYTEA};

  memset(&wr, 0, sizeof wr);
  memset(&rcn, 0, sizeof rcn);
  memset(&ph, 0, sizeof ph);
  snprintf(channel, sizeof channel, "pbench_lat_%d", (int)getpid());
  snprintf(rcn.name, sizeof rcn.name, "pbench_rl%d_%d", (int)getpid(),
           lc->phase);
  snprintf(prefix, sizeof prefix, "%s:", rcn.name);

  if (drop_schema(lc->admin, lc->raw_schema, err, errlen) != 0)
    goto out;
  ident = bench_pg_ident(lc->admin, lc->raw_schema, err, errlen);
  if (!ident)
    goto out;
  if (bench_raw_ddl(ident, ddl, sizeof ddl) != 0) {
    bench_errf(err, errlen, "raw DDL too long");
    goto out;
  }
  if (bench_pg_exec(lc->admin, ddl, err, errlen) != 0)
    goto out;
  bench_pg_checkpoint(lc->cfg, lc->admin);

  rcn.cfg = lc->cfg;
  rcn.ident = ident;
  rcn.redis_url = lc->redis_url;
  rcn.channel = channel;
  rcn.batch = lc->pp->batch;
  atomic_init(&rcn.ready, false);
  atomic_init(&rcn.stop, false);
  if (pthread_create(&thread, NULL, consumer_main, &rcn) != 0) {
    bench_errf(err, errlen, "cannot start the raw consumer");
    goto out;
  }
  running = true;
  while (!atomic_load(&rcn.ready))
    sleep_ns(1000000u);
  if (rcn.failed) {
    bench_errf(err, errlen, "raw consumer: %s", rcn.err);
    goto out;
  }

  wr.conn = bench_pg_connect(lc->cfg, err, errlen);
  if (!wr.conn || lat_metadata(&wr.meta, &wr.meta_len, err, errlen) != 0)
    goto out;
  snprintf(sql, sizeof sql,
           "WITH ins AS (INSERT INTO %s.events (stream_id, stream_version,"
           " event_id, event_type, schema_version, data, metadata)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7)"
           " RETURNING tx_id, global_position)"
           " SELECT ins.tx_id, ins.global_position FROM ins,"
           " pg_notify('%s', '') AS n",
           ident, channel);
  if (prepare(wr.conn, "raw_insert", sql, RAW_COLS, types, err, errlen) != 0)
    goto out;

  ph.slots = calloc(lc->count, sizeof *ph.slots);
  if (!ph.slots) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  ph.redis_url = lc->redis_url;
  snprintf(ph.cp_key, sizeof ph.cp_key, "%scheckpoint", prefix);
  struct lat_writer writer = {raw_writer_prepare, raw_writer_append, &wr};
  if (lat_drive(&ph, &writer, lc->pp->rate, lc->count, side, err, errlen) != 0)
    goto out;

  atomic_store(&rcn.stop, true);
  pthread_join(thread, NULL);
  running = false;
  if (rcn.failed) {
    bench_errf(err, errlen, "raw consumer: %s", rcn.err);
    goto out;
  }
  int64_t sum = 0;
  expected_totals((int64_t)lc->count, lc->expect);
  if (verify_totals(lc->redis, prefix, lc->expect, &sum, err, errlen) != 0)
    goto out;
  if (sum != wr.points || rcn.events != (int64_t)lc->count) {
    bench_errf(err, errlen,
               "raw counters sum to %" PRId64 " over %" PRId64
               " events; appended %" PRId64 " over %zu",
               sum, rcn.events, wr.points, lc->count);
    goto out;
  }
  rc = 0;
out:
  if (running) {
    atomic_store(&rcn.stop, true);
    pthread_join(thread, NULL);
  }
  PQfinish(wr.conn);
  free(wr.data);
  free(wr.meta);
  free(ph.slots);
  free(ident);
  {
    char e2[BENCH_ERR_MAX];
    if (redis_delete_prefix(lc->redis, prefix, NULL, e2, sizeof e2) != 0)
      bench_log("project-latency: deleting %s*: %s", prefix, e2);
  }
  return rc;
}

static int run_latency(const bench_config *cfg, const bench_scenario *sc,
                       bench_output *out, char *err, size_t errlen) {
  const struct project_params *pp = sc->params;
  struct lat_ctx lc;
  struct lat_side esc = {0}, raw = {0};
  double phase_s = cfg->seconds / cfg->rounds;
  int rc = -1;

  memset(&lc, 0, sizeof lc);
  lc.cfg = cfg;
  lc.pp = pp;
  lc.redis_url = redis_url_of(cfg);
  lc.count = (size_t)(phase_s * pp->rate) + LAT_WARMUP;
  snprintf(lc.schema, sizeof lc.schema, "%s_plat", cfg->schema);
  snprintf(lc.raw_schema, sizeof lc.raw_schema, "%s_plat_raw", cfg->schema);
  if (lat_side_init(&esc, err, errlen) != 0 ||
      lat_side_init(&raw, err, errlen) != 0)
    goto out;
  lc.expect = malloc(ITEMS * sizeof *lc.expect);
  if (!lc.expect) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  lc.admin = bench_pg_connect(cfg, err, errlen);
  if (!lc.admin)
    goto out;
  lc.redis = redis_open(lc.redis_url, err, errlen);
  if (!lc.redis)
    goto out;

  log_load("project-latency");
  for (int r = 0; r < cfg->rounds; r++) {
    bool esc_first = r % 2 == 1;
    for (int k = 0; k < 2; k++) {
      bool is_esc = (k == 0) == esc_first;
      struct lat_side *side = is_esc ? &esc : &raw;
      bench_hist before = *side->visible;
      lc.phase = 2 * r + k;
      if ((is_esc ? latency_esc(&lc, side, err, errlen)
                  : latency_raw(&lc, side, err, errlen)) != 0)
        goto out;
      /* this phase alone, for the log */
      bench_hist *ph = malloc(sizeof *ph);
      if (ph) {
        *ph = *side->visible;
        for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++)
          ph->buckets[b] -= before.buckets[b];
        ph->count -= before.count;
        bench_log("project-latency %s: %" PRIu64
                  " events at %d/s: p50 %.3f ms, p99 %.3f ms",
                  is_esc ? "esc" : "raw", ph->count, pp->rate,
                  bench_hist_quantile_ms(ph, 0.50),
                  bench_hist_quantile_ms(ph, 0.99));
        free(ph);
      }
    }
  }

  log_load("project-latency");
  out->value = bench_hist_quantile_ms(esc.visible, 0.99);
  out->unit = "ms";
  out->baseline = bench_hist_quantile_ms(raw.visible, 0.99);
  out->baseline_name = "raw-insert-notify-listen-hiredis-multi";
  out->seconds = esc.seconds;
  out->rounds = cfg->rounds;
  out->p50_ms = bench_hist_quantile_ms(esc.visible, 0.50);
  out->p99_ms = out->value;
  out->baseline_p50_ms = bench_hist_quantile_ms(raw.visible, 0.50);
  out->baseline_p99_ms = out->baseline;
  bench_output_add(out, "target_p99_ms", pp->target_p99_ms, false);
  bench_output_add(out, "rate", pp->rate, true);
  bench_output_add(out, "events", (double)esc.events, true);
  bench_output_add(out, "baseline_events", (double)raw.events, true);
  bench_output_add(out, "max_ms", (double)esc.visible->max_ns / 1e6, false);
  bench_output_add(out, "baseline_max_ms", (double)raw.visible->max_ns / 1e6,
                   false);
  bench_output_add(out, "append_p50_ms",
                   bench_hist_quantile_ms(esc.append, 0.5), false);
  bench_output_add(out, "append_p99_ms",
                   bench_hist_quantile_ms(esc.append, 0.99), false);
  bench_output_add(out, "baseline_append_p50_ms",
                   bench_hist_quantile_ms(raw.append, 0.5), false);
  bench_output_add(out, "baseline_append_p99_ms",
                   bench_hist_quantile_ms(raw.append, 0.99), false);
  bench_output_add(out, "projection_p50_ms",
                   bench_hist_quantile_ms(esc.after, 0.5), false);
  bench_output_add(out, "projection_p99_ms",
                   bench_hist_quantile_ms(esc.after, 0.99), false);
  bench_output_add(out, "baseline_projection_p50_ms",
                   bench_hist_quantile_ms(raw.after, 0.5), false);
  bench_output_add(out, "baseline_projection_p99_ms",
                   bench_hist_quantile_ms(raw.after, 0.99), false);
  bench_output_add(out, "writer_late_max_ms", esc.late_max_ms, false);
  bench_output_add(out, "baseline_writer_late_max_ms", raw.late_max_ms, false);
  rc = 0;
out:
  lat_side_release(&esc);
  lat_side_release(&raw);
  free(lc.expect);
  if (lc.redis)
    redisFree(lc.redis);
  PQfinish(lc.admin);
  return rc;
}

/* ------------------------------------------------------------------------
 * The group
 * ------------------------------------------------------------------------ */

static const struct project_params p_catchup = {500, 0.6, 0, NAN};
static const struct project_params p_latency = {500, NAN, 1000, 10.0};

static const bench_scenario project_scenarios[] = {
    {"project-catchup",
     "a fresh projection catching up over 1M events (--events), 2 Redis "
     "writes each",
     run_catchup, &p_catchup},
    {"project-latency",
     "append -> visible in Redis at 1000 appends/s, one writer", run_latency,
     &p_latency},
};

const bench_group bench_project_group = {"project", project_scenarios,
                                         sizeof(project_scenarios) /
                                             sizeof(project_scenarios[0])};

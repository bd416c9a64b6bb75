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
 * This file holds what both scenarios share: the event and the projection,
 * the raw side's decoding and apply, the Redis and page-query helpers, and
 * the scenario table. project-catchup lives in project_catchup.c,
 * project-latency in project_latency.c; project_int.h declares what they
 * share.
 *
 * Every projection name and raw key prefix carries the process id and the
 * phase, and every key written is deleted after the phase's check.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "project_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOTE_LEN 60 /* padding, so data is ~100 bytes */

/* ------------------------------------------------------------------------
 * The event and the projection
 * ------------------------------------------------------------------------ */

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

const esc_event_type scored_type = {
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
void scores_projection(esc_projection *p, const char *name) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->version = 1;
  p->partitions = 1;
  p->events = scored_events();
  p->handle = scores_handle;
  p->on_error = ESC_ON_ERROR_STOP;
  p->max_attempts = 1;
}

void event_content(int64_t i, item_scored *e) {
  snprintf(e->item, sizeof e->item, "item-%04d", (int)(i % ITEMS));
  e->points = 1 + i % 7;
}

int64_t expected_totals(int64_t n, int64_t *per_item) {
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
 * Small helpers: big-endian, load, sleeping
 * ------------------------------------------------------------------------ */

void put_be64(unsigned char *out, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    out[i] = (unsigned char)v;
    v >>= 8;
  }
}

uint64_t get_be64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | u[i];
  return v;
}

void log_load(const char *what) {
  FILE *f = fopen("/proc/loadavg", "r");
  double l1 = 0;
  if (!f)
    return;
  if (fscanf(f, "%lf", &l1) == 1)
    bench_log("%s: load average %.2f (%ld CPUs)", what, l1,
              sysconf(_SC_NPROCESSORS_ONLN));
  fclose(f);
}

void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ------------------------------------------------------------------------
 * Redis (hiredis) for the raw sides, the checker and the checks
 * ------------------------------------------------------------------------ */

const char *redis_url_of(const bench_config *cfg) {
  return cfg->redis_url && *cfg->redis_url ? cfg->redis_url
                                           : esc_default_redis_url();
}

redisContext *redis_open(const char *url, char *err, size_t errlen) {
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

void delete_keys(redisContext *c, const char *scenario, const char *name) {
  char e2[BENCH_ERR_MAX], pfx[80];
  snprintf(pfx, sizeof pfx, "%s:", name);
  if (redis_delete_prefix(c, pfx, NULL, e2, sizeof e2) != 0)
    bench_log("%s: deleting %s*: %s", scenario, pfx, e2);
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

int redis_get(redisContext *c, const char *key, char *out, size_t size,
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

int redis_delete_prefix(redisContext *c, const char *prefix, uint64_t *count,
                        char *err, size_t errlen) {
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

int verify_totals(redisContext *c, const char *prefix, const int64_t *expect,
                  int64_t *sum, char *err, size_t errlen) {
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

bench_config with_schema(const bench_config *cfg, const char *name) {
  bench_config c = *cfg;
  c.schema = name;
  return c;
}

void forget_projection(PGconn *admin, const char *ident, const char *name) {
  char sql[256];
  const char *params[1] = {name};
  snprintf(sql, sizeof sql, "DELETE FROM %s.projections WHERE name = $1",
           ident);
  PQclear(PQexecParams(admin, sql, 1, NULL, params, NULL, NULL, 0));
}

const char *raw_read_sql(const char *ident, char *out, size_t size) {
  snprintf(out, size,
           "SELECT tx_id, global_position, data FROM %s.events"
           " WHERE (tx_id, global_position) > ($1, $2)"
           " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
           " ORDER BY tx_id, global_position LIMIT $3",
           ident);
  return out;
}

int prepare(PGconn *conn, const char *name, const char *sql, int nparams,
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

int send_page(PGconn *conn, uint64_t tx, int64_t global, int limit, char *err,
              size_t errlen) {
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

PGresult *get_page(PGconn *conn, int fields, char *err, size_t errlen) {
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
  if (page && (PQnfields(page) != fields || PQfformat(page, 0) != 1)) {
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

int applier_init(struct raw_applier *a, const char *redis_url, const char *name,
                 char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (!msgpack_zone_init(&a->zone, 4096)) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  snprintf(a->prefix, sizeof a->prefix, "%s:", name);
  snprintf(a->lb_key, sizeof a->lb_key, "%sleaderboard", a->prefix);
  snprintf(a->cp_key, sizeof a->cp_key, "%scheckpoint", a->prefix);
  a->redis = redis_open(redis_url, err, errlen);
  if (!a->redis)
    msgpack_zone_destroy(&a->zone);
  return a->redis ? 0 : -1;
}

void applier_release(struct raw_applier *a) {
  if (a->redis)
    redisFree(a->redis);
  a->redis = NULL;
  msgpack_zone_destroy(&a->zone);
}

int raw_apply(struct raw_applier *a, const PGresult *page, char *err,
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

/* ------------------------------------------------------------------------
 * The group
 * ------------------------------------------------------------------------ */

static const struct project_params p_catchup = {500, 0.6, 0, NAN, 0, false};
/* scraped every second: 15 times as often as docs/operations/prometheus.yml */
static const struct project_params p_catchup_metrics = {500, 0.97, 0, NAN,
                                                        1000, false};
/* On one machine the standby shares the primary's cores: no target. */
static const struct project_params p_catchup_replica = {500, NAN, 0, NAN, 0,
                                                        true};
static const struct project_params p_latency = {500, NAN, 1000, 10.0, 0,
                                                false};

static const bench_scenario project_scenarios[] = {
    {"project-catchup",
     "a fresh projection catching up over 1M events (--events), 2 Redis "
     "writes each",
     run_catchup, &p_catchup},
    {"project-catchup-metrics",
     "project-catchup with the worker's metrics endpoint on and scraped "
     "every second, against the same catch-up without it",
     run_catchup, &p_catchup_metrics},
    {"project-catchup-replica",
     "project-catchup reading the log from the hot standby of "
     "ESC_PG_READ_URL (scripts/servers start --replica), against the same "
     "catch-up reading the primary",
     run_catchup, &p_catchup_replica},
    {"project-latency",
     "append -> visible in Redis at 1000 appends/s, one writer", run_latency,
     &p_latency},
};

const bench_group bench_project_group = {"project", project_scenarios,
                                         sizeof(project_scenarios) /
                                             sizeof(project_scenarios[0])};

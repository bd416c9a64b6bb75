/*
 * The project group's latency scenario; the event, the projection and the
 * helpers it shares with project-catchup are in project.c.
 *
 * project-latency: a writer appends single events at a fixed rate (1000/s)
 * while a projection follows; a checker polls the projection's checkpoint
 * key every 0.2 ms and marks every event at or below it as visible at
 * that moment. Latency = visible - the moment the append was sent. The esc
 * side is esc_append + esc_worker_run; the raw side is a one-statement
 * INSERT ... pg_notify into a plain table and a consumer that LISTENs,
 * reads new rows when woken (the keyset query of the catch-up baseline)
 * and applies them with MULTI/EXEC as that baseline does. Each phase starts
 * from a freshly migrated schema (<schema>_plat, <schema>_plat_raw).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "project_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LAT_STREAMS 100
#define LAT_WARMUP 100     /* first events of a phase, not measured */
#define LAT_POLL_NS 200000 /* checker: 0.2 ms between checkpoint reads */
#define LAT_DRAIN_MS 10000 /* how long the end of a phase may take */

static void put_be32(unsigned char *out, uint32_t v) {
  for (int i = 3; i >= 0; i--) {
    out[i] = (unsigned char)v;
    v >>= 8;
  }
}

static void sleep_until_ns(uint64_t when) {
  struct timespec ts = {(time_t)(when / 1000000000u),
                        (long)(when % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
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
  double rss_mb; /* the highest peak RSS of its phases */
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
static int lat_drive(struct lat_phase *ph, const char *redis_url,
                     const char *cp_key, const struct lat_writer *wr, int rate,
                     size_t count, struct lat_side *side, char *err,
                     size_t errlen) {
  pthread_t checker;
  uint64_t period = 1000000000u / (uint64_t)rate;
  int rc = -1;

  ph->slots = calloc(count, sizeof *ph->slots); /* the caller frees them */
  if (!ph->slots) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  ph->redis_url = redis_url;
  snprintf(ph->cp_key, sizeof ph->cp_key, "%s", cp_key);
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
  char name[64], key[160], gen[32], prefix[128];
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
  o.pg_read_url = ""; /* the primary, whatever ESC_PG_READ_URL says */
  o.redis_url = lc->redis_url;
  o.schema = lc->schema;
  o.key_prefix = BENCH_KEY_PREFIX;
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
  snprintf(key, sizeof key, BENCH_KEY_PREFIX ":%s:generation", name);
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
  snprintf(prefix, sizeof prefix, BENCH_KEY_PREFIX ":%s:g%s:", name, gen);

  wr.st = bench_esc_open(&pcfg, err, errlen);
  if (!wr.st || lat_metadata(&wr.meta, &wr.meta_len, err, errlen) != 0)
    goto out;
  snprintf(key, sizeof key, "%sp0:checkpoint", prefix);
  struct lat_writer writer = {esc_writer_prepare, esc_writer_append, &wr};
  if (lat_drive(&ph, lc->redis_url, key, &writer, lc->pp->rate, lc->count, side,
                err, errlen) != 0)
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
  snprintf(prefix, sizeof prefix, BENCH_KEY_PREFIX ":%s", name);
  delete_keys(lc->redis, "project-latency", prefix);
  {
    char e2[BENCH_ERR_MAX];
    char *ident = bench_pg_ident(lc->admin, lc->schema, e2, sizeof e2);
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
    PGresult *page = get_page(conn, 3, err, errlen);
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

  char cp_key[160];
  snprintf(cp_key, sizeof cp_key, "%scheckpoint", prefix);
  struct lat_writer writer = {raw_writer_prepare, raw_writer_append, &wr};
  if (lat_drive(&ph, lc->redis_url, cp_key, &writer, lc->pp->rate, lc->count,
                side, err, errlen) != 0)
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
  delete_keys(lc->redis, "project-latency", rcn.name);
  return rc;
}

int run_latency(const bench_config *cfg, const bench_scenario *sc,
                bench_output *out, char *err, size_t errlen) {
  const struct project_params *pp = sc->params;
  struct lat_ctx lc;
  struct lat_side esc = {0}, raw = {0};
  double phase_s = cfg->seconds / cfg->rounds;
  bool rss_per_phase = true;
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
  for (lc.phase = 0; lc.phase < 2 * cfg->rounds; lc.phase++) {
    bool is_esc = bench_esc_phase(lc.phase);
    struct lat_side *side = is_esc ? &esc : &raw;
    bench_hist before = *side->visible;
    rss_per_phase &= bench_rss_reset();
    if ((is_esc ? latency_esc(&lc, side, err, errlen)
                : latency_raw(&lc, side, err, errlen)) != 0)
      goto out;
    double rss = bench_peak_rss_mb();
    side->rss_mb = rss > side->rss_mb ? rss : side->rss_mb;
    /* this phase alone, for the log */
    bench_hist *ph = malloc(sizeof *ph);
    if (ph) {
      *ph = *side->visible;
      for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++)
        ph->buckets[b] -= before.buckets[b];
      ph->count -= before.count;
      bench_log("project-latency %s: %" PRIu64
                " events at %d/s: p50 %.3f ms, p99 %.3f ms, peak RSS "
                "%.1f MiB",
                is_esc ? "esc" : "raw", ph->count, pp->rate,
                bench_hist_quantile_ms(ph, 0.50),
                bench_hist_quantile_ms(ph, 0.99), rss);
      free(ph);
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
  bench_output_add(out, "peak_rss_mb", esc.rss_mb, false);
  bench_output_add(out, "baseline_peak_rss_mb", raw.rss_mb, false);
  bench_output_add(out, "rss_per_phase", rss_per_phase ? 1 : 0, true);
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

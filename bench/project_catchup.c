/*
 * The project group's catch-up scenario; the event, the projection and the
 * helpers it shares with project-latency are in project.c.
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
 * project-catchup-metrics: the same catch-up by esc twice per round, once
 * with the worker's metrics endpoint (<esc/metrics.h>) on and a thread
 * scraping /metrics every scrape_ms (far more often than Prometheus's
 * usual 15 s), once without: the ratio is the cost of the metrics.
 *
 * project-catchup-replica: the same catch-up by esc twice per round, once
 * reading the log from the hot standby of ESC_PG_READ_URL, once from the
 * primary (the baseline). Skipped without a standby. On one machine the
 * two servers share its cores: the ratio is the cost of reading through
 * a standby, not a gain (docs/scaling.md).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "project_int.h"

#include "httpget.h"

#include <esc/metrics.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_EVENTS INT64_C(1000000)
#define EVENTS_PER_STREAM 100 /* catch-up log: "score-<k>" streams */
#define STREAMS_PER_CALL 100  /* esc_append_many requests per fill call */
#define FILL_LAYOUT 1         /* bump when the fill's content changes */
#define CATCHUP_TIMEOUT_MS (3600 * 1000)

/* CPU time of the calling thread, in seconds. */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
  int64_t scrapes, scrape_failures; /* project-catchup-metrics */
  const char *read_url; /* project-catchup-replica: the standby */
  double esc_rss_mb, raw_rss_mb; /* the highest peak RSS of a phase */
  bool rss_per_phase;            /* false: the peaks are the process's */
  int phase;
};

/* A side's checkpoint must be the log's last position after a phase. */
static int check_checkpoint(const struct catchup *cu, const char *side,
                            const char *key, char *err, size_t errlen) {
  char cp[64];
  bool exists = false;
  if (redis_get(cu->redis, key, cp, sizeof cp, &exists, err, errlen) != 0)
    return -1;
  if (!exists || strcmp(cp, cu->last_pos) != 0) {
    bench_errf(err, errlen, "%s checkpoint %s, but the log ends at %s", side,
               exists ? cp : "(missing)", cu->last_pos);
    return -1;
  }
  return 0;
}

/* The worker's own log lines (its progress every 5 s among them). */
static void worker_log(void *userdata, const char *line) {
  (void)userdata;
  bench_log("project-catchup esc: %s", line);
}

/* project-catchup-metrics: scrapes an endpoint until told to stop. */
struct scraper {
  int port;
  int every_ms;
  atomic_bool stop;
  int64_t scrapes, failures;
  pthread_t thread;
};

static void *scrape(void *arg) {
  struct scraper *s = arg;
  while (!atomic_load(&s->stop)) {
    char *body = NULL;
    int status = esc_test_http_get(s->port, "/metrics", 10000, &body);
    s->scrapes++;
    s->failures += status != 200 || !strstr(body, "esc_projection_");
    free(body);
    for (int slept = 0; slept < s->every_ms && !atomic_load(&s->stop);
         slept += 10)
      sleep_ns(10 * 1000000ull);
  }
  return NULL;
}

/* The endpoint and its scraper for w (metrics on); NULL on failure. */
static esc_metrics_server *start_metrics(struct catchup *cu, esc_worker *w,
                                         struct scraper *s, char *err,
                                         size_t errlen) {
  esc_metrics_server_options mo = ESC_METRICS_SERVER_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  mo.listen = "127.0.0.1:0";
  mo.worker = w;
  mo.pg_url = cu->cfg->pg_url;
  mo.redis_url = cu->redis_url;
  mo.schema = cu->schema;
  mo.key_prefix = BENCH_KEY_PREFIX;
  esc_metrics_server *srv = esc_metrics_server_start(&mo, &e);
  if (!srv) {
    bench_errf(err, errlen, "metrics server: %s", e.msg);
    return NULL;
  }
  *s = (struct scraper){.port = esc_metrics_server_port(srv),
                        .every_ms = cu->pp->scrape_ms};
  atomic_init(&s->stop, false);
  if (pthread_create(&s->thread, NULL, scrape, s) != 0) {
    esc_metrics_server_free(srv);
    bench_errf(err, errlen, "scraper thread: cannot start");
    return NULL;
  }
  return srv;
}

static void stop_metrics(struct catchup *cu, esc_metrics_server *srv,
                         struct scraper *s) {
  if (!srv)
    return;
  atomic_store(&s->stop, true);
  pthread_join(s->thread, NULL);
  esc_metrics_server_free(srv);
  cu->scrapes += s->scrapes;
  cu->scrape_failures += s->failures;
}

/* One catch-up by esc. variant: the scenario's other side (metrics on,
 * or reading the standby) against the plain one, which is the baseline
 * of those scenarios. */
static int catchup_esc(struct catchup *cu, bool variant, char *err,
                       size_t errlen) {
  char name[64], prefix[128], gen[32], key[160];
  esc_projection proj;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  esc_worker *w = NULL;
  esc_metrics_server *srv = NULL;
  struct scraper scraper;
  bool exists = false;
  int rc = -1;
  bool metrics = variant && cu->pp->scrape_ms > 0;
  bool standby = variant && cu->pp->replica;
  bool base = (cu->pp->scrape_ms > 0 || cu->pp->replica) && !variant;
  const char *side = metrics ? "esc with metrics"
                     : standby ? "esc reading the standby"
                               : "esc";

  snprintf(name, sizeof name, "pbench_c%d_%d", (int)getpid(), cu->phase);
  scores_projection(&proj, name);
  if (!proj.events) {
    bench_errf(err, errlen, "event registry: out of memory");
    return -1;
  }
  o.pg_url = cu->cfg->pg_url;
  /* "": the primary, whatever ESC_PG_READ_URL says */
  o.pg_read_url = standby ? cu->read_url : "";
  o.redis_url = cu->redis_url;
  o.schema = cu->schema;
  o.key_prefix = BENCH_KEY_PREFIX;
  o.batch_size = cu->pp->batch;
  o.log = worker_log;
  w = esc_worker_new(&o, &e);
  if (!w || esc_worker_add(w, &proj, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc worker: %s", e.msg);
    goto out;
  }
  if (metrics && !(srv = start_metrics(cu, w, &scraper, err, errlen)))
    goto out;

  uint64_t t0 = bench_now_ns();
  double cpu0 = thread_cpu_s();
  esc_status st = esc_worker_run_until_caught_up(w, CATCHUP_TIMEOUT_MS, &e);
  double secs = (double)(bench_now_ns() - t0) / 1e9;
  double cpu = thread_cpu_s() - cpu0;
  stop_metrics(cu, srv, &scraper);
  srv = NULL;
  esc_worker_free(w);
  w = NULL;
  if (st != ESC_OK) {
    bench_errf(err, errlen, "esc_worker_run_until_caught_up: %s: %s",
               esc_strerror(st), e.msg);
    goto out;
  }

  /* The read model: every counter, every score, and the checkpoint. */
  snprintf(key, sizeof key, BENCH_KEY_PREFIX ":%s:generation", name);
  if (redis_get(cu->redis, key, gen, sizeof gen, &exists, err, errlen) != 0)
    goto out;
  if (!exists) {
    bench_errf(err, errlen, "%s is missing after the catch-up", key);
    goto out;
  }
  snprintf(prefix, sizeof prefix, BENCH_KEY_PREFIX ":%s:g%s:", name, gen);
  snprintf(key, sizeof key, "%sp0:checkpoint", prefix);
  if (check_checkpoint(cu, "esc", key, err, errlen) != 0)
    goto out;
  int64_t sum = 0;
  if (verify_totals(cu->redis, prefix, cu->expect, &sum, err, errlen) != 0)
    goto out;
  *(base ? &cu->raw_seconds : &cu->esc_seconds) += secs;
  *(base ? &cu->raw_cpu : &cu->esc_cpu) += cpu;
  *(base ? &cu->raw_events : &cu->esc_events) += cu->n;
  *(base ? &cu->raw_sum : &cu->esc_sum) = sum;
  bench_log("project-catchup %s: %" PRId64 " events in %.2f s: %.0f events/s"
            " (client CPU %.2f s; counters sum to %" PRId64 ", as expected)",
            side, cu->n, secs, (double)cu->n / secs, cpu, sum);
  rc = 0;
out:
  stop_metrics(cu, srv, &scraper);
  esc_worker_free(w);
  snprintf(prefix, sizeof prefix, BENCH_KEY_PREFIX ":%s", name);
  delete_keys(cu->redis, "project-catchup", prefix);
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
    page = get_page(conn, 3, err, errlen);
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

  char prefix[80];
  if (a.events != cu->n) {
    bench_errf(err, errlen, "raw read %" PRId64 " events, expected %" PRId64,
               a.events, cu->n);
    goto out;
  }
  if (check_checkpoint(cu, "raw", a.cp_key, err, errlen) != 0)
    goto out;
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
  delete_keys(cu->redis, "project-catchup", name);
  return rc;
}

/* One side's replay of the whole log, with its peak RSS. */
static int catchup_phase(struct catchup *cu, char *err, size_t errlen) {
  bool is_esc = bench_esc_phase(cu->phase);
  bool vs_esc = cu->pp->scrape_ms > 0 || cu->pp->replica;
  cu->rss_per_phase &= bench_rss_reset();
  int rc = vs_esc     ? catchup_esc(cu, is_esc, err, errlen)
           : is_esc   ? catchup_esc(cu, false, err, errlen)
                      : catchup_raw(cu, err, errlen);
  if (rc != 0)
    return -1;
  double rss = bench_peak_rss_mb();
  double *peak = is_esc ? &cu->esc_rss_mb : &cu->raw_rss_mb;
  *peak = rss > *peak ? rss : *peak;
  bench_log("project-catchup %s: peak RSS %.1f MiB", is_esc ? "esc" : "raw",
            rss);
  return 0;
}

int catchup_log_ready(const bench_config *cfg, PGconn *admin, int64_t n,
                      char *schema, size_t schema_size, bench_config *pcfg,
                      char **ident, bool *reused, char *err, size_t errlen) {
  *ident = NULL;
  if ((size_t)snprintf(schema, schema_size, "%s_proj_%" PRId64, cfg->schema,
                       n) >= schema_size) {
    bench_errf(err, errlen, "schema name %s_proj_%" PRId64 " is too long",
               cfg->schema, n);
    return -1;
  }
  *pcfg = with_schema(cfg, schema);
  *ident = bench_pg_ident(admin, schema, err, errlen);
  if (!*ident)
    return -1;
  *reused = !cfg->refill && log_reusable(admin, *ident, n);
  if (!*reused)
    return fill_log(pcfg, admin, *ident, n, err, errlen);
  /* a newer library may have added migrations since the fill */
  esc_store *st = bench_esc_open(pcfg, err, errlen);
  esc_error e = ESC_ERROR_INIT;
  if (!st)
    return -1;
  esc_status ms = esc_store_migrate(st, NULL, &e);
  esc_store_free(st);
  if (ms != ESC_OK) {
    bench_errf(err, errlen, "esc_store_migrate: %s", e.msg);
    return -1;
  }
  bench_log("project-catchup: reusing the %" PRId64 " events in %s "
            "(--refill to append them afresh)",
            n, schema);
  return 0;
}
int run_catchup(const bench_config *cfg, const bench_scenario *sc,
                bench_output *out, char *err, size_t errlen) {
  const struct project_params *pp = sc->params;
  struct catchup cu;
  bool reused = false;
  int rc = -1;

  memset(&cu, 0, sizeof cu);
  cu.cfg = cfg;
  cu.pp = pp;
  cu.read_url = getenv("ESC_PG_READ_URL");
  if (pp->replica && (!cu.read_url || !*cu.read_url)) {
    bench_errf(err, errlen,
               "no standby: set ESC_PG_READ_URL (scripts/servers start "
               "--replica; eval \"$(scripts/servers env --replica)\")");
    return BENCH_SKIPPED;
  }
  cu.n = cfg->events > 0 ? cfg->events : DEFAULT_EVENTS;
  cu.redis_url = redis_url_of(cfg);
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
  if (catchup_log_ready(cfg, cu.admin, cu.n, cu.schema, sizeof cu.schema,
                        &cu.pcfg, &cu.ident, &reused, err, errlen) != 0)
    goto out;
  if (last_position(cu.admin, cu.ident, cu.last_pos, sizeof cu.last_pos, err,
                    errlen) != 0)
    goto out;
  /* the fill's (and VACUUM's) dirty pages written now, not mid-phase */
  bench_pg_checkpoint(cfg, cu.admin);
  log_load("project-catchup");

  /* each side replays the whole log per phase */
  cu.rss_per_phase = true;
  for (cu.phase = 0; cu.phase < 2 * cfg->rounds; cu.phase++)
    if (catchup_phase(&cu, err, errlen) != 0)
      goto out;
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
  out->baseline_name = pp->scrape_ms > 0 ? "esc-without-metrics"
                      : pp->replica      ? "esc-reading-the-primary"
                                         : "raw-libpq-keyset-hiredis-multi";
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
  if (pp->scrape_ms > 0) {
    bench_output_add(out, "scrape_ms", pp->scrape_ms, true);
    bench_output_add(out, "scrapes", (double)cu.scrapes, true);
    bench_output_add(out, "scrape_failures", (double)cu.scrape_failures,
                     true);
  }
  bench_output_add(out, "peak_rss_mb", cu.esc_rss_mb, false);
  bench_output_add(out, "baseline_peak_rss_mb", cu.raw_rss_mb, false);
  bench_output_add(out, "rss_per_phase", cu.rss_per_phase ? 1 : 0, true);
  rc = 0;
out:
  free(cu.ident);
  free(cu.expect);
  if (cu.redis)
    redisFree(cu.redis);
  PQfinish(cu.admin);
  return rc;
}

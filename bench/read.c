/*
 * The read group: reading one category in subscription order, 1000
 * events per page, as a subscriber that catches up does (without Redis:
 * the projection's cost is project-catchup's).
 *
 * read-category-1000: the log of project-catchup (<schema>_proj_<N>,
 * --events, default 200,000; reused between runs) read whole per phase.
 * The esc side pages with esc_read_all(store, "score", ...), which hands
 * back every event decoded (ids, positions, type, data, metadata); the
 * raw side sends the same keyset query by hand (same columns, same
 * category condition, binary results) and touches each row's values.
 * bench/peers runs the same read against Message DB and Emmett.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "project_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 1000
#define DEFAULT_EVENTS INT64_C(200000)
#define CATEGORY "score"

/* What the raw side reads: what esc_read_all reads, by hand. */
static void raw_sql(const char *ident, char *out, size_t size) {
  snprintf(out, size,
           "SELECT tx_id, global_position, stream_id, stream_version,"
           " event_id, event_type, schema_version, data, metadata,"
           " recorded_at FROM %s.events"
           " WHERE split_part(stream_id, '-', 1) = '" CATEGORY "'"
           " AND (tx_id, global_position) > ($1, $2)"
           " AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
           " ORDER BY split_part(stream_id, '-', 1), tx_id, global_position"
           " LIMIT $3",
           ident);
}

/* One pass over the category by esc; the events read. */
static int read_esc(const bench_config *pcfg, int64_t *events, char *err,
                    size_t errlen) {
  esc_store *st = bench_esc_open(pcfg, err, errlen);
  if (!st)
    return -1;
  esc_events ev = ESC_EVENTS_INIT;
  esc_error e = ESC_ERROR_INIT;
  esc_position at = ESC_POSITION_START;
  int rc = 0;
  *events = 0;
  do {
    if (esc_read_all(st, CATEGORY, at, PAGE, &ev, &e) != ESC_OK) {
      bench_errf(err, errlen, "esc_read_all: %s", e.msg);
      rc = -1;
      break;
    }
    *events += (int64_t)ev.count;
    at = ev.next;
  } while (ev.count > 0);
  esc_events_release(&ev);
  esc_store_free(st);
  return rc;
}

/* One pass by hand; the events read, and a sum over their bytes so the
 * values are touched as esc's decoding touches them. */
static int read_raw(const bench_config *pcfg, const char *ident,
                    int64_t *events, char *err, size_t errlen) {
  char sql[768];
  PGconn *c = bench_pg_connect(pcfg, err, errlen);
  if (!c)
    return -1;
  raw_sql(ident, sql, sizeof sql);
  static const Oid types[3] = {5069 /* xid8 */, 20, 20};
  int rc = prepare(c, "raw_page", sql, 3, types, err, errlen);
  uint64_t tx = 0, touched = 0;
  int64_t global = 0;
  *events = 0;
  for (int rows = 1; rc == 0 && rows > 0;) {
    PGresult *page = NULL;
    if (send_page(c, tx, global, PAGE, err, errlen) != 0 ||
        !(page = get_page(c, 10, err, errlen))) {
      rc = -1;
      break;
    }
    rows = PQntuples(page);
    for (int r = 0; r < rows; r++)
      for (int f = 0; f < PQnfields(page); f++)
        touched += (uint64_t)PQgetlength(page, r, f);
    if (rows > 0) {
      tx = get_be64(PQgetvalue(page, rows - 1, 0));
      global = (int64_t)get_be64(PQgetvalue(page, rows - 1, 1));
    }
    *events += rows;
    PQclear(page);
  }
  if (rc == 0 && touched == 0 && *events > 0) {
    bench_errf(err, errlen, "raw read: %" PRId64 " rows without bytes",
               *events);
    rc = -1;
  }
  PQfinish(c);
  return rc;
}

static int run_read(const bench_config *cfg, const bench_scenario *sc,
                    bench_output *out, char *err, size_t errlen) {
  (void)sc;
  int64_t n = cfg->events > 0 ? cfg->events : DEFAULT_EVENTS;
  char schema[PG_NAME_MAX + 1];
  bench_config pcfg;
  char *ident = NULL;
  bool reused = false;
  double t[2] = {0, 0};
  int64_t got[2] = {0, 0};
  int rc = -1;
  PGconn *admin = bench_pg_connect(cfg, err, errlen);
  if (!admin)
    return -1;
  if (catchup_log_ready(cfg, admin, n, schema, sizeof schema, &pcfg, &ident,
                        &reused, err, errlen) != 0)
    goto out;
  bench_pg_checkpoint(cfg, admin);
  for (int phase = 0; phase < 2 * cfg->rounds; phase++) {
    bool esc = bench_esc_phase(phase);
    int64_t events = 0;
    uint64_t t0 = bench_now_ns();
    if ((esc ? read_esc(&pcfg, &events, err, errlen)
             : read_raw(&pcfg, ident, &events, err, errlen)) != 0)
      goto out;
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    if (events != n) {
      bench_errf(err, errlen, "%s read %" PRId64 " of %" PRId64 " events",
                 esc ? "esc" : "raw", events, n);
      goto out;
    }
    bench_log("read-category-1000 %s: %" PRId64 " events in %.2f s",
              esc ? "esc" : "raw", events, secs);
    t[esc] += secs;
    got[esc] += events;
  }
  out->value = (double)got[1] / t[1];
  out->unit = "events/s";
  out->baseline = (double)got[0] / t[0];
  out->baseline_name = "raw-libpq-keyset-1000";
  out->seconds = t[1];
  out->rounds = cfg->rounds;
  bench_output_add(out, "events", (double)n, true);
  bench_output_add(out, "page", PAGE, true);
  bench_output_add(out, "fill_reused", reused ? 1 : 0, true);
  rc = 0;
out:
  free(ident);
  PQfinish(admin);
  return rc;
}

static const bench_scenario read_scenarios[] = {
    {"read-category-1000",
     "one category read whole in subscription order, 1000 events a page "
     "(the project-catchup log, --events; default 200000)",
     run_read, NULL},
};

const bench_group bench_read_group = {
    "read", read_scenarios, sizeof read_scenarios / sizeof *read_scenarios};

/*
 * The process group: orders per second through a process manager, the
 * order sample's fulfillment process (samples/order/fulfillment_process.c),
 * from an order's confirmation to its OrderReady, against the same
 * commands issued by a plain loop, measured in the same run.
 *
 * Each order has one line (of one of PROC_SKUS products, round-robin, so
 * that reservations rarely meet on one inventory stream). The commands
 * an order needs are the same on both sides: place and confirm (the
 * customer's), reserve its line's stock and mark it ready (the
 * fulfillment's).
 *
 * esc side: an esc_worker runs the fulfillment process (esc_worker_add_
 * process: a durable subscription, the instance stream, commands through
 * esc_execute with decision ids, the payment deadline in PostgreSQL). A
 * loader thread places and confirms orders, keeping at most `window`
 * confirmed orders that are not ready yet (before confirming order i it
 * waits for order i - window's OrderReady), for the phase's seconds; then
 * the orders in flight finish and the worker stops.
 *
 * baseline: one thread, the four commands of each order one after the
 * other through esc_execute: what the process does, without a process.
 *
 * Both sides are measured the same way, from the log afterwards: an
 * order's end-to-end latency is its OrderReady's recorded_at minus its
 * OrderConfirmed's (server clock); the rate is orders ready / (last
 * OrderReady - first OrderConfirmed). The first PROC_WARMUP orders of a
 * phase (named w<i>; the measured ones m<i>) are left out, and the
 * phase's seconds start after them. Each phase runs
 * on a freshly migrated schema, stocked untimed.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"
#include "order.h"

#include <esc/process.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROC_SKUS 256
#define PROC_WARMUP 20
#define PROC_DRAIN_NS (60 * 1000000000ull) /* the orders in flight */

struct process_params {
  int window;     /* esc side: confirmed orders not yet ready, at most */
  int partitions; /* of the process's subscription */
};

/* What one phase's orders came to, from the log. */
struct proc_result {
  uint64_t orders;
  double span_s; /* first confirmation to last ready */
};

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------ */

static int execute(esc_store *st, const esc_decider *d, const char *stream,
                   const void *cmd, char *err, size_t errlen) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  esc_command_result res;
  esc_error e = ESC_ERROR_INIT;
  if (esc_execute(st, d, stream, cmd, &o, &res, &e) == ESC_OK &&
      res.domain_code == 0)
    return 0;
  bench_errf(err, errlen, "%s: %s %s", stream, e.msg, res.domain_msg);
  return -1;
}

static void order_name(char *out, size_t size, uint64_t i) {
  snprintf(out, size, "%s%" PRIu64, i < PROC_WARMUP ? "w" : "m", i);
}

static void sku_name(char *out, size_t size, uint64_t i) {
  snprintf(out, size, "s%" PRIu64, i % PROC_SKUS);
}

/* Places and confirms order i (id into id[32]). */
static int place_confirm(esc_store *st, uint64_t i, char id[32], char *err,
                         size_t errlen) {
  char stream[48];
  order_line line = {"", 1, 100};
  order_name(id, 32, i);
  sku_name(line.sku, sizeof line.sku, i);
  snprintf(stream, sizeof stream, "order-%s", id);
  order_cmd place = {.kind = ORDER_PLACE,
                     .customer = "bench",
                     .lines = &line,
                     .line_count = 1};
  order_cmd confirm = {.kind = ORDER_CONFIRM};
  if (execute(st, order_decider(), stream, &place, err, errlen) != 0)
    return -1;
  return execute(st, order_decider(), stream, &confirm, err, errlen);
}

/* What the fulfillment process does for order i: reserve, mark ready. */
static int reserve_ready(esc_store *st, uint64_t i, const char *id, char *err,
                         size_t errlen) {
  char stream[48], sku[16];
  sku_name(sku, sizeof sku, i);
  snprintf(stream, sizeof stream, "inventory-%s", sku);
  inventory_cmd reserve = {INVENTORY_RESERVE, 1, id};
  if (execute(st, inventory_decider(), stream, &reserve, err, errlen) != 0)
    return -1;
  order_cmd ready = {.kind = ORDER_MARK_READY};
  snprintf(stream, sizeof stream, "order-%s", id);
  return execute(st, order_decider(), stream, &ready, err, errlen);
}

static int stock(esc_store *st, char *err, size_t errlen) {
  char stream[48], sku[16];
  inventory_cmd in = {INVENTORY_STOCK_IN, INT64_C(1000000000), NULL};
  for (uint64_t k = 0; k < PROC_SKUS; k++) {
    sku_name(sku, sizeof sku, k);
    snprintf(stream, sizeof stream, "inventory-%s", sku);
    if (execute(st, inventory_decider(), stream, &in, err, errlen) != 0)
      return -1;
  }
  return 0;
}

/* Whether order id has its OrderReady (version 3 of a one-line order). */
static int is_ready(esc_store *st, const char *id, bool *ready, char *err,
                    size_t errlen) {
  char stream[48];
  esc_events ev = ESC_EVENTS_INIT;
  esc_error e = ESC_ERROR_INIT;
  snprintf(stream, sizeof stream, "order-%s", id);
  esc_status rc = esc_read_stream(st, stream, 3, ESC_FORWARD, 1, &ev, &e);
  *ready = rc == ESC_OK && ev.count == 1 &&
           strcmp(ev.items[0].type, "OrderReady") == 0;
  esc_events_release(&ev);
  if (rc == ESC_OK)
    return 0;
  bench_errf(err, errlen, "read %s: %s", stream, e.msg);
  return -1;
}

/* Waits until order i is ready, at most until deadline_ns. */
static int wait_ready(esc_store *st, uint64_t i, uint64_t deadline_ns,
                      char *err, size_t errlen) {
  char id[32];
  bool ready = false;
  order_name(id, sizeof id, i);
  while (is_ready(st, id, &ready, err, errlen) == 0 && !ready) {
    if (bench_now_ns() > deadline_ns) {
      bench_errf(err, errlen, "order %s is not ready after %.0f s", id,
                 (double)PROC_DRAIN_NS / 1e9);
      return -1;
    }
    /* 1 ms: the latency is taken from the log, so a coarser poll only
     * delays the next confirmation, and keeps the loader from taking a
     * core (of the two here) from the worker and the server. */
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return ready ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Measuring from the log
 * ------------------------------------------------------------------------ */

static const char SQL_LATENCIES[] =
    "SELECT (extract(epoch FROM c.recorded_at) * 1e6)::int8,"
    " (extract(epoch FROM r.recorded_at) * 1e6)::int8"
    " FROM %s.events c JOIN %s.events r ON r.stream_id = c.stream_id"
    " AND r.event_type = 'OrderReady'"
    " WHERE c.event_type = 'OrderConfirmed' AND c.stream_id LIKE 'order-m%%'";

/* Adds every measured order's latency to hist and its count and span to
 * *out. */
static int measure(const bench_config *cfg, PGconn *admin, bench_hist *hist,
                   struct proc_result *out, char *err, size_t errlen) {
  char sql[512];
  char *ident = bench_pg_ident(admin, cfg->schema, err, errlen);
  if (!ident)
    return -1;
  snprintf(sql, sizeof sql, SQL_LATENCIES, ident, ident);
  free(ident);
  PGresult *res = PQexec(admin, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    bench_errf(err, errlen, "latencies: %s", bench_pg_error(admin, res));
    PQclear(res);
    return -1;
  }
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (int i = 0; i < PQntuples(res); i++) {
    int64_t c = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    int64_t r = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    bench_hist_record(hist, r > c ? (uint64_t)(r - c) * 1000u : 0);
    first = c < first ? c : first;
    last = r > last ? r : last;
  }
  out->orders += (uint64_t)PQntuples(res);
  if (PQntuples(res) > 0)
    out->span_s += (double)(last - first) / 1e6;
  PQclear(res);
  return 0;
}

/* ------------------------------------------------------------------------
 * The esc side: a worker running the process, a loader thread
 * ------------------------------------------------------------------------ */

struct loader {
  const bench_config *cfg;
  const struct process_params *pp;
  double seconds;
  esc_worker *w;
  uint64_t orders; /* placed and confirmed */
  int failed;
  char err[BENCH_ERR_MAX];
};

/* When a phase that started with its warm-up ends: the phase's seconds
 * after the warm-up's last order (*end 0 until then). */
static bool phase_over(uint64_t orders, double seconds, uint64_t *end) {
  if (orders < PROC_WARMUP)
    return false;
  if (*end == 0)
    *end = bench_now_ns() + (uint64_t)(seconds * 1e9);
  return bench_now_ns() >= *end;
}

static int load(struct loader *l, esc_store *st) {
  uint64_t end = 0;
  uint64_t window = (uint64_t)l->pp->window;
  char id[32];
  while (!phase_over(l->orders, l->seconds, &end)) {
    if (l->orders >= window &&
        wait_ready(st, l->orders - window, bench_now_ns() + PROC_DRAIN_NS,
                   l->err, sizeof l->err) != 0)
      return -1;
    if (place_confirm(st, l->orders, id, l->err, sizeof l->err) != 0)
      return -1;
    l->orders++;
  }
  /* The orders still in flight (every one before them was waited for);
   * partitions finish them in any order. */
  uint64_t deadline = bench_now_ns() + PROC_DRAIN_NS;
  for (uint64_t i = l->orders > window ? l->orders - window : 0;
       i < l->orders; i++)
    if (wait_ready(st, i, deadline, l->err, sizeof l->err) != 0)
      return -1;
  return 0;
}

static void *loader_main(void *arg) {
  struct loader *l = arg;
  esc_store *st = bench_esc_open(l->cfg, l->err, sizeof l->err);
  l->failed = !st || load(l, st) != 0;
  esc_store_free(st);
  esc_worker_stop(l->w);
  return NULL;
}

static esc_worker *process_worker(const bench_config *cfg,
                                  const struct process_params *pp,
                                  const esc_process *p, char *err,
                                  size_t errlen) {
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  esc_process_options po = ESC_PROCESS_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  wo.pg_url = cfg->pg_url;
  wo.schema = cfg->schema;
  esc_worker *w = esc_worker_new(&wo, &e);
  if (!w) {
    bench_errf(err, errlen, "esc_worker_new: %s", e.msg);
    return NULL;
  }
  po.pg_url = cfg->pg_url;
  po.schema = cfg->schema;
  po.partitions = pp->partitions;
  if (esc_worker_add_process(w, p, &po, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc_worker_add_process: %s", e.msg);
    esc_worker_free(w);
    return NULL;
  }
  return w;
}

static int esc_side(const bench_config *cfg, const struct process_params *pp,
                    double seconds, uint64_t *orders, char *err,
                    size_t errlen) {
  static const order_fulfillment_options fo = ORDER_FULFILLMENT_OPTIONS_INIT;
  esc_process p;
  esc_error e = ESC_ERROR_INIT;
  order_fulfillment_init(&p, &fo);
  esc_worker *w = process_worker(cfg, pp, &p, err, errlen);
  if (!w)
    return -1;
  struct loader l = {cfg, pp, seconds, w, 0, 0, ""};
  pthread_t t;
  if (pthread_create(&t, NULL, loader_main, &l) != 0) {
    bench_errf(err, errlen, "cannot start the loader thread");
    esc_worker_free(w);
    return -1;
  }
  esc_status rc = esc_worker_run(w, &e);
  if (rc != ESC_OK) /* the loader would wait for it in vain */
    bench_errf(err, errlen, "esc_worker_run: %s", e.msg);
  pthread_join(t, NULL);
  esc_worker_free(w);
  if (rc == ESC_OK && l.failed)
    bench_errf(err, errlen, "loader: %s", l.err);
  *orders = l.orders;
  return rc == ESC_OK && !l.failed ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * The baseline: the same commands in a plain loop
 * ------------------------------------------------------------------------ */

static int base_side(const bench_config *cfg, double seconds, uint64_t *orders,
                     char *err, size_t errlen) {
  esc_store *st = bench_esc_open(cfg, err, errlen);
  uint64_t end = 0;
  char id[32];
  int rc = st ? 0 : -1;
  *orders = 0;
  while (rc == 0 && !phase_over(*orders, seconds, &end)) {
    rc = place_confirm(st, *orders, id, err, errlen);
    if (rc == 0)
      rc = reserve_ready(st, *orders, id, err, errlen);
    *orders += rc == 0;
  }
  esc_store_free(st);
  return rc;
}

/* ------------------------------------------------------------------------
 * The scenario
 * ------------------------------------------------------------------------ */

static int run_side(const bench_config *cfg, const bench_scenario *sc,
                    PGconn *admin, bool esc, double seconds, bench_hist *hist,
                    struct proc_result *out, char *err, size_t errlen) {
  const struct process_params *pp = sc->params;
  struct proc_result phase = {0, 0};
  uint64_t orders = 0;
  esc_store *st = NULL;
  if (bench_esc_reset(cfg, admin, err, errlen) != 0 ||
      !(st = bench_esc_open(cfg, err, errlen)))
    return -1;
  int rc = stock(st, err, errlen);
  esc_store_free(st);
  if (rc != 0)
    return -1;
  bench_pg_checkpoint(cfg, admin);
  rc = esc ? esc_side(cfg, pp, seconds, &orders, err, errlen)
           : base_side(cfg, seconds, &orders, err, errlen);
  if (rc != 0 || measure(cfg, admin, hist, &phase, err, errlen) != 0)
    return -1;
  if (phase.orders + PROC_WARMUP != orders) {
    bench_errf(err, errlen, "%s side: %" PRIu64 " orders, %" PRIu64
               " of them measured ready (+%d warm-up)",
               esc ? "esc" : "baseline", orders, phase.orders, PROC_WARMUP);
    return -1;
  }
  out->orders += phase.orders;
  out->span_s += phase.span_s;
  bench_log("%s %s: %.0f orders/s (%" PRIu64 " orders)", sc->name,
            esc ? "esc" : "baseline",
            phase.span_s > 0 ? (double)phase.orders / phase.span_s : 0.0,
            phase.orders);
  return 0;
}

static double rate(const struct proc_result *r) {
  return r->span_s > 0 ? (double)r->orders / r->span_s : NAN;
}

static int run_process(const bench_config *cfg, const bench_scenario *sc,
                       bench_output *out, char *err, size_t errlen) {
  const struct process_params *pp = sc->params;
  struct proc_result esc = {0, 0}, base = {0, 0};
  bench_hist *hist[2] = {malloc(sizeof(bench_hist)), malloc(sizeof(bench_hist))};
  double phase_s = cfg->seconds / cfg->rounds;
  PGconn *admin = NULL;
  int rc = -1;
  if (!hist[0] || !hist[1]) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  bench_hist_init(hist[0]);
  bench_hist_init(hist[1]);
  admin = bench_pg_connect(cfg, err, errlen);
  if (!admin)
    goto out;
  for (int i = 0; i < 2 * cfg->rounds; i++) {
    bool side_esc = bench_esc_phase(i);
    if (run_side(cfg, sc, admin, side_esc, phase_s, hist[side_esc ? 1 : 0],
                 side_esc ? &esc : &base, err, errlen) != 0)
      goto out;
  }
  out->value = rate(&esc);
  out->unit = "orders/s";
  out->baseline = rate(&base);
  out->baseline_name = "esc-execute-loop-4cmd";
  out->seconds = esc.span_s;
  out->rounds = cfg->rounds;
  out->p50_ms = bench_hist_quantile_ms(hist[1], 0.50);
  out->p99_ms = bench_hist_quantile_ms(hist[1], 0.99);
  out->baseline_p50_ms = bench_hist_quantile_ms(hist[0], 0.50);
  out->baseline_p99_ms = bench_hist_quantile_ms(hist[0], 0.99);
  bench_output_add(out, "window", pp->window, true);
  bench_output_add(out, "partitions", pp->partitions, true);
  bench_output_add(out, "orders", (double)esc.orders, true);
  bench_output_add(out, "baseline_orders", (double)base.orders, true);
  rc = 0;
out:
  PQfinish(admin);
  free(hist[0]);
  free(hist[1]);
  return rc;
}

static const struct process_params p_window = {16, 1};
static const struct process_params p_one = {1, 1};
static const struct process_params p_four = {16, 4};

static const bench_scenario process_scenarios[] = {
    {"process",
     "orders confirm -> ready through the fulfillment process, 16 in flight",
     run_process, &p_window},
    {"process-4p", "process with 4 partitions on one worker",
     run_process, &p_four},
    {"process-1",
     "the same, one order in flight: end-to-end latency without queueing",
     run_process, &p_one},
};

const bench_group bench_process_group = {"process", process_scenarios,
                                         sizeof(process_scenarios) /
                                             sizeof(process_scenarios[0])};

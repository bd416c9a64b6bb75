/*
 * order-worker - runs the order domain's read side and its fulfillment:
 * the six projections (order_projections) and the fulfillment process
 * (order_fulfillment_init, <esc/process.h>) on one esc_worker.
 *
 *   order-worker [--pg URL] [--redis URL] [--schema S] [--partitions N]
 *                [--payment-timeout DURATION] [--metrics-listen HOST:PORT]
 *                [--ready-max-lag S] [--once] [--help]
 *
 * The worker runs in a thread (esc_worker_run). The process rides on it
 * as a durable subscription: its partitions are leased like the
 * projections' (of several order-workers, each partition runs in one and
 * the others stand by), its state is its instance streams in PostgreSQL
 * and its checkpoint is there too, so a Redis flush changes nothing about
 * what it has done. SIGTERM or SIGINT stops it after the work in flight.
 * With --once it catches up until a pass leaves the log as it found it
 * (the process's commands are events the projections and the process
 * need to see), then exits.
 *
 * With --metrics-listen it serves Prometheus /metrics and /health/live,
 * /health/ready over HTTP (<esc/metrics.h>) while it runs.
 *
 * Log lines (the worker's progress, parked instances) go to stderr with a
 * UTC timestamp. Exit codes: 0 ok, 1 error, 2 usage, 5 connection.
 */
#include "order.h"

#include <esc/metrics.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK_ = 0, EXIT_ERROR_ = 1, EXIT_USAGE_ = 2, EXIT_CONN_ = 5 };

enum { IDLE_SLEEP_MS = 250, ONCE_SLICE_MS = 1000 };

typedef struct options {
  const char *pg_url, *redis_url, *schema;
  const char *pg_read_url;    /* NULL: ESC_PG_READ_URL, else pg_url */
  int64_t replica_max_lag_us; /* 0: never abandon the standby */
  int partitions;
  int64_t payment_timeout_us;
  bool once;
  const char *metrics_listen; /* NULL: no HTTP endpoint */
  double ready_max_lag_s;     /* 0: the library's default */
} options;

static volatile sig_atomic_t stopping;
static esc_worker *worker; /* for the signal handler */

/* ------------------------------------------------------------------------
 * Logging and signals
 * ------------------------------------------------------------------------ */

static void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void say(const char *fmt, ...) {
  char line[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  esc_log_context c = ESC_LOG_CONTEXT_INIT;
  c.component = "order-worker";
  esc_log(ESC_LOG_INFO, &c, "%s", line);
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
  if (worker)
    esc_worker_stop(worker);
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* Sleeps ms; a signal cuts it short. */
static void nap(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int exit_for(esc_status rc) {
  return rc == ESC_ECONN ? EXIT_CONN_ : rc ? EXIT_ERROR_ : EXIT_OK_;
}

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

static void help(FILE *out) {
  fputs(
      "usage: order-worker [--pg URL] [--redis URL] [--schema S]\n"
      "                    [--pg-read URL] [--replica-max-lag DURATION]\n"
      "                    [--partitions N] [--payment-timeout DURATION]\n"
      "                    [--metrics-listen HOST:PORT] [--ready-max-lag S]\n"
      "                    [--once] [--help]\n"
      "\n"
      "Runs the order domain's projections (order_details,\n"
      "orders_by_customer, orders_by_status, top_products, revenue, stock)\n"
      "and the fulfillment process until SIGTERM or SIGINT. Of several\n"
      "order-workers, each partition runs in one and the others stand by.\n"
      "\n"
      "  --pg URL          PostgreSQL (default: ESC_PG_URL, else the local\n"
      "                    server)\n"
      "  --redis URL       Redis, redis://[[user:]password@]host[:port][/db]\n"
      "                    (default: ESC_REDIS_URL, else the local server)\n"
      "  --schema S        event store schema (default: esc)\n"
      "  --pg-read URL     read the log from this hot standby of --pg's\n"
      "                    server (default: ESC_PG_READ_URL, else --pg);\n"
      "                    leases, checkpoints and commands stay on --pg\n"
      "  --replica-max-lag DURATION\n"
      "                    read from --pg while the standby has been behind\n"
      "                    longer than this (e.g. 30s); default: never\n"
      "  --partitions N    partitions of every projection, 1 to 1024\n"
      "                    (default 1); every worker and query of a\n"
      "                    deployment must agree\n"
      "  --payment-timeout DURATION\n"
      "                    how long a ready order waits for its payment\n"
      "                    before it is cancelled and its stock released:\n"
      "                    a number and s, m or h (default 15m)\n"
      "  --metrics-listen HOST:PORT\n"
      "                    serve Prometheus metrics (GET /metrics) and health\n"
      "                    checks (GET /health/live, /health/ready) over\n"
      "                    HTTP, e.g. 127.0.0.1:9464; HOST is an IPv4\n"
      "                    address, [IPv6] or localhost; an address beyond\n"
      "                    loopback (0.0.0.0:9464) exposes them to the\n"
      "                    network; off when not given\n"
      "  --ready-max-lag S /health/ready fails while a partition this process\n"
      "                    holds lags more than S seconds (default 60; 0: no\n"
      "                    bound)\n"
      "  --once            catch up with the log (projections and process)\n"
      "                    and exit\n"
      "  --help            this text\n"
      "\n"
      "Exit codes: 0 ok, 1 error, 2 usage, 5 connection.\n",
      out);
}

static int usage(const char *fmt, const char *arg) {
  fputs("order-worker: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\n(order-worker --help for usage)\n", stderr);
  return EXIT_USAGE_;
}

/* "90", "90s", "15m", "2h" into microseconds, > 0 and at most a week. */
static bool parse_duration(const char *text, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  long long unit = 1;
  if (*end == 'm')
    unit = 60;
  else if (*end == 'h')
    unit = 3600;
  if (*end == 's' || unit > 1)
    end++;
  if (errno || end == text || *end || v < 1 || v * unit > 7 * 24 * 3600)
    return false;
  *out = (int64_t)(v * unit) * 1000000;
  return true;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, options *o) {
  static const struct option longopts[] = {
      {"pg", required_argument, NULL, 'p'},
      {"redis", required_argument, NULL, 'r'},
      {"schema", required_argument, NULL, 's'},
      {"pg-read", required_argument, NULL, 'P'},
      {"replica-max-lag", required_argument, NULL, 'L'},
      {"partitions", required_argument, NULL, 'n'},
      {"payment-timeout", required_argument, NULL, 't'},
      {"once", no_argument, NULL, 'o'},
      {"metrics-listen", required_argument, NULL, 'm'},
      {"ready-max-lag", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
    char *end;
    long v;
    switch (c) {
    case 'p':
      o->pg_url = optarg;
      break;
    case 'r':
      o->redis_url = optarg;
      break;
    case 's':
      o->schema = optarg;
      break;
    case 'P':
      o->pg_read_url = optarg;
      break;
    case 'L':
      if (!parse_duration(optarg, &o->replica_max_lag_us))
        return usage("--replica-max-lag '%s': a number and s, m or h "
                     "(e.g. 30s)",
                     optarg);
      break;
    case 'n':
      errno = 0;
      v = strtol(optarg, &end, 10);
      if (errno || !*optarg || *end || v < 1 || v > 1024)
        return usage("--partitions '%s': a number from 1 to 1024", optarg);
      o->partitions = (int)v;
      break;
    case 't':
      if (!parse_duration(optarg, &o->payment_timeout_us))
        return usage("--payment-timeout '%s': a number and s, m or h "
                     "(e.g. 15m)",
                     optarg);
      break;
    case 'o':
      o->once = true;
      break;
    case 'm': {
      /* Typing a non-loopback address here is the explicit choice. */
      esc_error err = ESC_ERROR_INIT;
      if (esc_metrics_listen_check(optarg, true, &err))
        return usage("--metrics-listen: %s", err.msg);
      o->metrics_listen = optarg;
      break;
    }
    case 'l': {
      errno = 0;
      double d = strtod(optarg, &end);
      if (errno || !*optarg || *end || !(d >= 0) || d > 1e9)
        return usage("--ready-max-lag '%s': seconds, 0 or more", optarg);
      o->ready_max_lag_s = d > 0 ? d : -1; /* 0 here: no bound */
      break;
    }
    case 'h':
      help(stdout);
      return EXIT_OK_;
    case ':':
      return usage("option '%s' needs a value", argv[optind - 1]);
    default:
      return usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    return usage("unexpected argument '%s'", argv[optind]);
  return -1;
}

/* ------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------ */

typedef struct runner {
  esc_worker *w;
  esc_status rc;
  esc_error err;
  atomic_bool done; /* set by the worker thread when run returns */
} runner;

static void *run_worker(void *arg) {
  runner *r = arg;
  r->rc = esc_worker_run(r->w, &r->err);
  atomic_store(&r->done, true);
  return NULL;
}

/* Catches the worker up with the log, however long that takes (a signal
 * stops it); says every 10 s why it is not done yet, e.g. another worker
 * holding a partition. */
static esc_status catch_up(esc_worker *w) {
  esc_status rc = ESC_OK;
  esc_error err = ESC_ERROR_INIT;
  for (int slice = 1; !stopping; slice++) {
    rc = esc_worker_run_until_caught_up(w, ONCE_SLICE_MS, &err);
    if (rc != ESC_ETIMEDOUT)
      break;
    if (slice % 10 == 0)
      say("still catching up (%s)", err.msg);
  }
  if (rc && !stopping)
    say("%s", err.msg);
  return stopping ? ESC_OK : rc;
}

/* --once: catch-ups until one leaves the log's newest position where it
 * found it (the process's commands append events that the projections and
 * the process must see). */
static esc_status run_once(esc_worker *w, esc_store *store) {
  for (int round = 1; !stopping; round++) {
    int64_t before = 0, after = 0;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_store_newest(store, &before, &err);
    if (!rc)
      rc = catch_up(w);
    if (!rc)
      rc = esc_store_newest(store, &after, &err);
    if (rc) {
      if (err.msg[0])
        say("%s", err.msg);
      return rc;
    }
    say("round %d: caught up to %lld", round, (long long)after);
    if (after == before)
      break;
  }
  return ESC_OK;
}

/* The long run: the worker in a thread until a signal or its failure. */
static esc_status run_forever(esc_worker *w) {
  runner r = {w, ESC_OK, ESC_ERROR_INIT, false};
  pthread_t thread;
  sigset_t block, old;
  /* Signals go to this thread, whose naps they cut short. */
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int e = pthread_create(&thread, NULL, run_worker, &r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (e) {
    say("cannot start the worker thread: %s", strerror(e));
    return ESC_ENOMEM;
  }
  say("running 6 projections and the fulfillment process");
  while (!stopping && !atomic_load(&r.done))
    nap(IDLE_SLEEP_MS);
  esc_worker_stop(w);
  pthread_join(thread, NULL);
  if (r.rc)
    say("worker stopped: %s", r.err.msg);
  return r.rc;
}

static void process_log(void *userdata, const char *line) {
  (void)userdata;
  say("%s", line);
}

/* The worker with the six projections and the fulfillment process. */
static esc_worker *worker_new(const options *o, esc_process *process,
                              const order_fulfillment_options *fo,
                              esc_error *err) {
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  wo.pg_url = o->pg_url;
  wo.pg_read_url = o->pg_read_url;
  wo.replica_max_lag_ms = (int)(o->replica_max_lag_us / 1000);
  wo.redis_url = o->redis_url;
  wo.schema = o->schema;
  wo.log_records = true; /* one format: ESC_LOG_FORMAT=json for JSON */
  wo.log_component = "order-worker";
  esc_worker *w = esc_worker_new(&wo, err);
  if (!w)
    return NULL;
  const esc_projection *p = order_projections(o->partitions);
  esc_status rc = ESC_OK;
  for (int i = 0; !rc && i < ORDER_PROJECTION_COUNT; i++)
    rc = esc_worker_add(w, &p[i], err);
  order_fulfillment_init(process, fo);
  esc_process_options po = ESC_PROCESS_OPTIONS_INIT;
  po.pg_url = o->pg_url;
  po.schema = o->schema;
  po.partitions = o->partitions;
  po.log = process_log;
  if (!rc)
    rc = esc_worker_add_process(w, process, &po, err);
  if (rc) {
    esc_worker_free(w);
    return NULL;
  }
  return w;
}

static int run(const options *o) {
  esc_error err = ESC_ERROR_INIT;
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = o->schema;
  so.app_name = "order-worker";
  esc_store *store = esc_store_open(o->pg_url, &so, &err);
  if (!store) {
    say("%s", err.msg);
    return exit_for(err.code ? err.code : ESC_ECONN);
  }
  esc_status rc = ESC_OK;
  esc_metrics_server *metrics = NULL;
  esc_process process;
  order_fulfillment_options fo = {o->payment_timeout_us};
  esc_worker *w = worker_new(o, &process, &fo, &err);
  if (!w) {
    rc = err.code ? err.code : ESC_ECONN;
    say("%s", err.msg);
    goto out;
  }
  if (o->metrics_listen) {
    esc_metrics_server_options mo = ESC_METRICS_SERVER_OPTIONS_INIT;
    mo.listen = o->metrics_listen;
    mo.allow_remote = true; /* given on the command line: chosen */
    mo.worker = w;
    mo.pg_url = o->pg_url;
    mo.redis_url = o->redis_url;
    mo.schema = o->schema;
    mo.ready_max_lag_s = o->ready_max_lag_s;
    if (!(metrics = esc_metrics_server_start(&mo, &err))) {
      rc = err.code;
      say("%s", err.msg);
      goto out;
    }
    say("metrics on http://%s/metrics (port %d)", o->metrics_listen,
        esc_metrics_server_port(metrics));
  }
  worker = w;
  install_signals();
  rc = o->once ? run_once(w, store) : run_forever(w);
  worker = NULL;
  say("stopped%s", rc ? " with an error" : "");
out:
  esc_metrics_server_free(metrics); /* before the worker it reads */
  esc_worker_free(w);
  esc_store_free(store);
  return exit_for(rc);
}

int main(int argc, char **argv) {
  options o = {.partitions = 1,
               .payment_timeout_us = ORDER_PAYMENT_TIMEOUT_US_DEFAULT};
  int code = parse_args(argc, argv, &o);
  if (code >= 0)
    return code;
  return run(&o);
}

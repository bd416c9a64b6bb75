/*
 * order-worker - runs the order domain's read side: the six projections
 * (order_projections) in an esc_worker and the fulfillment saga, in one
 * process.
 *
 *   order-worker [--pg URL] [--redis URL] [--schema S] [--partitions N]
 *                [--metrics-listen HOST:PORT] [--ready-max-lag S]
 *                [--once] [--help]
 *
 * The worker runs in a thread (esc_worker_run); the saga loops in the main
 * thread on its own store connection, while this process holds the saga's
 * lease (esc_lease "fulfillment"): of several order-workers, one runs the
 * saga and the others stand by, as they do for projection partitions.
 * SIGTERM or SIGINT stops both after the work in flight. With --once it
 * alternates catching the projections up and running the saga until a
 * saga pass finds nothing new, then exits: every event there was at that
 * point is projected and fulfilled (--once runs the saga without the
 * lease; the saga's command ids make a second runner harmless).
 *
 * With --metrics-listen it serves Prometheus /metrics and /health/live,
 * /health/ready over HTTP (<esc/metrics.h>) while it runs.
 *
 * Log lines (the worker's progress, the saga's compensations) go to
 * stderr with a UTC timestamp. Exit codes: 0 ok, 1 error, 2 usage,
 * 5 connection.
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

enum {
  SAGA_BATCH = 100,
  IDLE_SLEEP_MS = 250,
  RETRY_SLEEP_MS = 1000,
  LEASE_POLL_MS = 1000,
  ONCE_SLICE_MS = 1000
};

typedef struct options {
  const char *pg_url, *redis_url, *schema;
  int partitions;
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
      "                    [--partitions N] [--metrics-listen HOST:PORT]\n"
      "                    [--ready-max-lag S] [--once] [--help]\n"
      "\n"
      "Runs the order domain's projections (order_details,\n"
      "orders_by_customer, orders_by_status, top_products, revenue, stock)\n"
      "and the fulfillment saga until SIGTERM or SIGINT. Of several\n"
      "order-workers, one runs the saga (a lease) and the others stand by.\n"
      "\n"
      "  --pg URL          PostgreSQL (default: ESC_PG_URL, else the local\n"
      "                    server)\n"
      "  --redis URL       Redis, redis://[[user:]password@]host[:port][/db]\n"
      "                    (default: ESC_REDIS_URL, else the local server)\n"
      "  --schema S        event store schema (default: esc)\n"
      "  --partitions N    partitions of every projection, 1 to 1024\n"
      "                    (default 1); every worker and query of a\n"
      "                    deployment must agree\n"
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
      "  --once            catch up with the log, run the saga, and exit\n"
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

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, options *o) {
  static const struct option longopts[] = {
      {"pg", required_argument, NULL, 'p'},
      {"redis", required_argument, NULL, 'r'},
      {"schema", required_argument, NULL, 's'},
      {"partitions", required_argument, NULL, 'n'},
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
    case 'n':
      errno = 0;
      v = strtol(optarg, &end, 10);
      if (errno || !*optarg || *end || v < 1 || v > 1024)
        return usage("--partitions '%s': a number from 1 to 1024", optarg);
      o->partitions = (int)v;
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

/* Runs saga steps until one finds nothing; *total gets what was handled.
 * Connection errors are retried (the saga and the store reconnect). */
static esc_status drain_saga(order_saga *saga, size_t *total) {
  *total = 0;
  while (!stopping) {
    size_t n = 0;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = order_saga_step(saga, SAGA_BATCH, &n, &err);
    *total += n;
    if (rc == ESC_ECONN || rc == ESC_ECONFLICT) {
      say("fulfillment: %s; retrying", err.msg);
      nap(RETRY_SLEEP_MS);
      continue;
    }
    if (rc) {
      say("fulfillment: %s", err.msg);
      return rc;
    }
    if (n == 0)
      break;
  }
  return ESC_OK;
}

/* Catches the projections up with the log, however long that takes (a
 * signal stops it); says every 10 s why it is not done yet, e.g. another
 * worker holding a partition. */
static esc_status catch_up(esc_worker *w) {
  esc_status rc = ESC_OK;
  esc_error err = ESC_ERROR_INIT;
  for (int slice = 1; !stopping; slice++) {
    rc = esc_worker_run_until_caught_up(w, ONCE_SLICE_MS, &err);
    if (rc != ESC_ETIMEDOUT)
      break;
    if (slice % 10 == 0)
      say("projections: still catching up (%s)", err.msg);
  }
  if (rc && !stopping)
    say("projections: %s", err.msg);
  return stopping ? ESC_OK : rc;
}

/* --once: projections and saga alternately until a saga pass after a
 * catch-up handles nothing (the saga's own commands are events the
 * projections and the saga need to see). */
static esc_status run_once(esc_worker *w, order_saga *saga) {
  for (int round = 1; !stopping; round++) {
    size_t handled = 0;
    esc_status rc = drain_saga(saga, &handled);
    if (rc)
      return rc;
    if ((rc = catch_up(w)))
      return rc;
    say("round %d: saga handled %zu events, projections caught up", round,
        handled);
    if (handled == 0)
      break;
  }
  return ESC_OK;
}

/* The saga's lease, as the main loop sees it. */
typedef struct saga_turn {
  esc_lease *lease;
  bool held;
  bool told;            /* said once what this process does */
  long long next_check; /* CLOCK_MONOTONIC ms */
} saga_turn;

static long long monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether this process runs the saga now: takes or checks its lease every
 * LEASE_POLL_MS (a standby takes over within about that long of the
 * holder's end) and says so when that changes. */
static bool my_turn(saga_turn *t) {
  long long now = monotonic_ms();
  if (t->told && now < t->next_check)
    return t->held;
  t->next_check = now + LEASE_POLL_MS;
  bool was = t->held;
  esc_error err = ESC_ERROR_INIT;
  if (esc_lease_hold(t->lease, &t->held, &err))
    say("fulfillment: lease: %s; retrying", err.msg);
  if (t->held && (!t->told || !was))
    say("fulfillment: this process runs the saga");
  else if (!t->held && (!t->told || was))
    say("fulfillment: standing by; another order-worker runs the saga");
  t->told = true;
  return t->held;
}

/* The long run: the worker in a thread, the saga here, until a signal or
 * the worker fails. */
static esc_status run_forever(esc_worker *w, order_saga *saga,
                              esc_lease *lease) {
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
  say("running 6 projections and the fulfillment saga");
  esc_status rc = ESC_OK;
  saga_turn turn = {lease, false, false, 0};
  while (!stopping && !atomic_load(&r.done)) {
    size_t n = 0;
    esc_error err = ESC_ERROR_INIT;
    if (!my_turn(&turn)) {
      nap(IDLE_SLEEP_MS);
      continue;
    }
    esc_status step = order_saga_step(saga, SAGA_BATCH, &n, &err);
    if (step) {
      say("fulfillment: %s; retrying", err.msg);
      nap(RETRY_SLEEP_MS);
    } else if (n == 0) {
      nap(IDLE_SLEEP_MS);
    }
  }
  esc_worker_stop(w);
  pthread_join(thread, NULL);
  if (r.rc) {
    say("projections stopped: %s", r.err.msg);
    rc = r.rc;
  }
  return rc;
}

static int run(const options *o) {
  esc_error err = ESC_ERROR_INIT;
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = o->schema;
  so.app_name = "order-worker saga";
  esc_store *store = esc_store_open(o->pg_url, &so, &err);
  if (!store) {
    say("%s", err.msg);
    return exit_for(err.code ? err.code : ESC_ECONN);
  }
  esc_status rc = ESC_OK;
  order_saga *saga = NULL;
  esc_lease *lease = NULL;
  esc_metrics_server *metrics = NULL;
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  wo.pg_url = o->pg_url;
  wo.redis_url = o->redis_url;
  wo.schema = o->schema;
  wo.log_records = true; /* one format: ESC_LOG_FORMAT=json for JSON */
  wo.log_component = "order-worker";
  esc_worker *w = esc_worker_new(&wo, &err);
  if (!w) {
    rc = err.code ? err.code : ESC_ECONN;
    say("%s", err.msg);
    goto out;
  }
  const esc_projection *p = order_projections(o->partitions);
  for (int i = 0; !rc && i < ORDER_PROJECTION_COUNT; i++)
    if ((rc = esc_worker_add(w, &p[i], &err)))
      say("%s", err.msg);
  if (rc)
    goto out;
  if (!(saga = order_saga_new(store, o->redis_url, &err)) ||
      !(lease = esc_lease_new(o->pg_url, o->schema, "fulfillment", &err))) {
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
  rc = o->once ? run_once(w, saga) : run_forever(w, saga, lease);
  worker = NULL;
  say("stopped%s", rc ? " with an error" : "");
out:
  esc_metrics_server_free(metrics); /* before the worker it reads */
  esc_lease_free(lease);
  order_saga_free(saga);
  esc_worker_free(w);
  esc_store_free(store);
  return exit_for(rc);
}

int main(int argc, char **argv) {
  options o = {NULL, NULL, NULL, 1, false, NULL, 0};
  int code = parse_args(argc, argv, &o);
  if (code >= 0)
    return code;
  return run(&o);
}

/*
 * order-demo - the order domain end to end, checked against the log.
 *
 * It migrates the store, resets the six read models (their Redis keys: the
 * worker then rebuilds them from the log), runs the projection worker and
 * the fulfillment process in this process, stocks the products (a few of them
 * scarce), and lets many customers place, change, confirm, pay, ship and
 * cancel orders concurrently, one esc_store per thread. When every order is
 * done and the fulfillment process and the projections have caught up, it prints a
 * summary read from Redis, then recomputes every read model from the log
 * (every event of the categories order and inventory, decoded with the
 * domain's registry and mapped exactly as samples/order/projections.c
 * maps it; each order's state also folded with the order decider) and
 * compares. It ends with "read models verified against the log", or lists
 * each difference and exits 1.
 *
 * The demo owns the read models' keys while it runs: do not run order-worker
 * against the same Redis at the same time. It assumes it is the only writer
 * of the schema's order and inventory streams while it checks.
 *
 * Files, in the order the demo runs them: main.c (options and the flow),
 * reset.c (resetting the read models in Redis), workers.c (the worker and
 * the fulfillment process on threads), shop.c (the catalog and its stock), simulate.c
 * (the customers), recompute.c with models.c (the read models recomputed
 * from the log), report.c (the summary) and verify.c (the comparison);
 * demo.h and util.c hold what they share.
 */
#include "demo.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static const char HELP[] =
    "Usage: order-demo [options]\n"
    "\n"
    "Runs the order domain end to end: migrates the store, resets and\n"
    "rebuilds the six read models (with --partitions as their partition\n"
    "layout: an order-worker of another count then stops), runs the\n"
    "projection worker and the fulfillment process in this process,\n"
    "simulates customers placing, paying, shipping and cancelling orders\n"
    "concurrently, prints a summary, and checks every read model against\n"
    "a recomputation from the log.\n"
    "\n"
    "Options:\n"
    "  --pg URL         PostgreSQL (default: ESC_PG_URL, else the local "
    "server)\n"
    "  --redis URL      Redis (default: ESC_REDIS_URL, else the local "
    "server)\n"
    "  --schema S       event store schema (default: esc)\n"
    "  --customers N    distinct customers (default: 40)\n"
    "  --orders N       orders to simulate (default: 400)\n"
    "  --threads N      concurrent customers, one connection each "
    "(default: 8)\n"
    "  --partitions N   partitions of each projection (default: 2)\n"
    "  --seed N         random seed (default: from the clock; printed)\n"
    "  --verbose        print the worker's log and every rejected command\n"
    "  --help           this help\n"
    "\n"
    "Exit status: 0 when the read models equal the recomputation, 1 when\n"
    "they differ or something failed, 2 for a usage error.\n";

/* Returns -1 to go on, else the exit status. */
static int parse_options(demo_opts *o, int argc, char **argv) {
  enum {
    PG = 1000,
    REDIS,
    SCHEMA,
    CUSTOMERS,
    ORDERS,
    THREADS,
    PARTS,
    SEED,
    VERBOSE,
    HELP_
  };
  static const struct option longopts[] = {
      {"pg", required_argument, NULL, PG},
      {"redis", required_argument, NULL, REDIS},
      {"schema", required_argument, NULL, SCHEMA},
      {"customers", required_argument, NULL, CUSTOMERS},
      {"orders", required_argument, NULL, ORDERS},
      {"threads", required_argument, NULL, THREADS},
      {"partitions", required_argument, NULL, PARTS},
      {"seed", required_argument, NULL, SEED},
      {"verbose", no_argument, NULL, VERBOSE},
      {"help", no_argument, NULL, HELP_},
      {NULL, 0, NULL, 0}};
  opterr = 0;
  for (;;) {
    long long v = 0;
    int c = getopt_long(argc, argv, ":h", longopts, NULL);
    if (c == -1)
      break;
    const char *bad = NULL;
    switch (c) {
    case PG:
      o->pg_url = optarg;
      break;
    case REDIS:
      o->redis_url = optarg;
      break;
    case SCHEMA:
      o->schema = optarg;
      break;
    case CUSTOMERS:
      if (!parse_int(optarg, 1, 100000, &v))
        bad = "--customers: 1 to 100000";
      o->customers = (int)v;
      break;
    case ORDERS:
      if (!parse_int(optarg, 1, 1000000, &v))
        bad = "--orders: 1 to 1000000";
      o->orders = (int)v;
      break;
    case THREADS:
      if (!parse_int(optarg, 1, 256, &v))
        bad = "--threads: 1 to 256";
      o->threads = (int)v;
      break;
    case PARTS:
      if (!parse_int(optarg, 1, 64, &v))
        bad = "--partitions: 1 to 64";
      o->partitions = (int)v;
      break;
    case SEED:
      if (!parse_int(optarg, 0, INT64_MAX, &v))
        bad = "--seed: a number >= 0";
      o->seed = (uint64_t)v;
      break;
    case VERBOSE:
      o->verbose = true;
      break;
    case 'h':
    case HELP_:
      fputs(HELP, stdout);
      return 0;
    case ':':
      fprintf(stderr, "order-demo: option '%s' needs a value\n",
              argv[optind - 1]);
      return 2;
    default:
      fprintf(stderr, "order-demo: unknown option '%s'\n", argv[optind - 1]);
      return 2;
    }
    if (bad) {
      fprintf(stderr, "order-demo: '%s' is not valid for %s\n", optarg, bad);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "order-demo: unexpected argument '%s' (see --help)\n",
            argv[optind]);
    return 2;
  }
  return -1;
}

/* ------------------------------------------------------------------------
 * Failing, from any thread
 * ------------------------------------------------------------------------ */

/* Records the first error of any thread and tells every thread to stop. */
void demo_fail(demo *d, const char *who, const esc_error *err) {
  pthread_mutex_lock(&d->lock);
  if (!atomic_load(&d->failed)) {
    d->first_err = *err;
    fprintf(stderr, "order-demo: %s: %s (%s)\n", who, err->msg,
            esc_strerror(err->code));
  }
  atomic_store(&d->failed, true);
  pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

/* A short tag for this run: the time in base 36. */
static void run_tag(char out[16]) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  char tmp[16];
  uint64_t t = (uint64_t)time(NULL) * 100 + (uint64_t)getpid() % 100;
  size_t n = 0;
  do {
    tmp[n++] = digits[t % 36];
    t /= 36;
  } while (t && n < sizeof tmp - 1);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

static int fail(const char *what, const esc_error *err) {
  fprintf(stderr, "order-demo: %s: %s (%s)\n", what, err->msg,
          esc_strerror(err->code));
  return 1;
}

/* Everything after the options; returns the exit status. */
static int run_demo(demo *d) {
  esc_error err = ESC_ERROR_INIT;
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = d->o.schema;
  so.app_name = "order-demo";
  int status = 1, applied = 0;
  bool saga_started = false, worker_started = false;
  esc_query *q = NULL;
  model m;
  memset(&m, 0, sizeof m);

  esc_store *st = esc_store_open(d->o.pg_url, &so, &err);
  if (!st)
    return fail("connecting to PostgreSQL", &err);
  if (esc_store_migrate(st, &applied, &err)) {
    fail("migrating the event store", &err);
    goto out;
  }
  printf("- event store schema %s ready (%d migration(s) applied)\n",
         d->o.schema, applied);

  long long deleted = 0;
  if (reset_read_models(&d->o, st, d->projections, &deleted, &err)) {
    fail("resetting the read models in Redis", &err);
    goto out;
  }
  printf("- read models reset (%lld Redis keys deleted): the worker "
         "rebuilds them from the whole log\n",
         deleted);

  if (start_worker(d, &err)) {
    fail("starting the projection worker", &err);
    goto out;
  }
  worker_started = true;
  if (start_saga(d, &err)) {
    fail("starting the fulfillment process", &err);
    goto out;
  }
  saga_started = true;
  printf("- running in this process: a worker for the %d projections "
         "(%d partitions each) and the fulfillment process\n",
         ORDER_PROJECTION_COUNT, d->o.partitions);

  if (stock_products(d, st, &err)) {
    fail("stocking products", &err);
    goto out;
  }

  printf("- %d customers place %d orders on %d threads (orders %s-0001 "
         "...):\n",
         d->o.customers, d->o.orders, d->o.threads, d->run);
  fflush(stdout);
  int64_t t0 = now_ms();
  if (run_customers(d, &err)) {
    fail("starting the customers", &err);
    goto out;
  }
  double seconds = (double)(now_ms() - t0) / 1000.0;
  if (atomic_load(&d->failed))
    goto out; /* reported where it happened */

  /* The saga finishes what the last commands triggered; then the log is
   * final and can be read whole. */
  atomic_store(&d->saga_stop, true);
  pthread_join(d->saga_thread, NULL);
  saga_started = false;
  if (atomic_load(&d->failed))
    goto out;
  int64_t t1 = now_ms();
  if (recompute(st, &m, &err)) {
    fail("reading the log", &err);
    goto out;
  }
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.redis_url = d->o.redis_url;
  qo.store = st;
  if (!(q = esc_query_new(&qo, &err))) {
    fail("connecting to Redis", &err);
    goto out;
  }
  printf("- all orders done in %.1f s; waiting for the projections to catch "
         "up with the log\n",
         seconds);
  fflush(stdout);
  if (await_projections(d, q, &m, &err)) {
    fail("waiting for the projections", &err);
    if (err.code == ESC_ETIMEDOUT)
      fprintf(stderr, "order-demo: is another worker (order-worker) holding "
                      "the projections' leases? See `esc projections`.\n");
    goto out;
  }
  printf("- projections caught up %.1f s later\n",
         (double)(now_ms() - t1) / 1000.0);
  stop_background(d, saga_started, worker_started);
  worker_started = false;
  if (atomic_load(&d->failed))
    goto out;

  if (print_summary(d, q, &m, seconds, &err)) {
    fail("reading the summary", &err);
    goto out;
  }
  long diffs = verify(d, q, &m);
  if (diffs) {
    printf("\nread models DIFFER from the log: %ld difference(s)\n", diffs);
    goto out;
  }
  printf("\nread models verified against the log\n");
  status = 0;
out:
  fflush(stdout);
  stop_background(d, saga_started, worker_started);
  esc_query_free(q);
  model_free(&m);
  esc_store_free(st);
  return status;
}

int main(int argc, char **argv) {
  static demo d; /* large; zeroed */
  d.o = (demo_opts){NULL, NULL, "esc", 40, 400, 8, 2, 0, false};
  d.o.seed = (uint64_t)time(NULL);
  int rc = parse_options(&d.o, argc, argv);
  if (rc >= 0)
    return rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_mutex_init(&d.lock, NULL);
  run_tag(d.run);
  d.projections = order_projections(d.o.partitions);
  printf("order-demo: %d orders, %d customers, %d threads, seed %" PRIu64
         ", schema %s\n",
         d.o.orders, d.o.customers, d.o.threads, d.o.seed, d.o.schema);
  rc = run_demo(&d);
  pthread_mutex_destroy(&d.lock);
  return rc;
}

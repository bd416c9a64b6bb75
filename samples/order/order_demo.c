/*
 * order-demo - the order domain end to end, checked against the log.
 *
 * It migrates the store, resets the six read models (their Redis keys: the
 * worker then rebuilds them from the log), runs the projection worker and
 * the fulfillment saga in this process, stocks the products (a few of them
 * scarce), and lets many customers place, change, confirm, pay, ship and
 * cancel orders concurrently, one esc_store per thread. When every order is
 * done and the saga and the projections have caught up, it prints a
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
 */
#include "order.h"

#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SAGA_KEYS "fulfillment:*"
#define SAGA_TIMEOUT_MS 60000      /* a customer waiting for the saga */
#define CATCH_UP_TIMEOUT_MS 120000 /* the projections at the end */
#define PROGRESS_EVERY 50
#define MAX_SHOWN_DIFFS 20 /* per read model */

/* ------------------------------------------------------------------------
 * The shop: products, prices (cents), how popular, how much stock
 * ------------------------------------------------------------------------ */

typedef struct product {
  const char *sku;
  int64_t price;
  int weight;  /* relative popularity */
  bool scarce; /* stocked for a fraction of the demand */
} product;

static const product CATALOG[] = {
    {"book-42", 1250, 10, false}, {"pen-7", 150, 10, false},
    {"mug-3", 899, 8, false},     {"notebook-4", 350, 8, false},
    {"cable-9", 499, 7, false},   {"lamp-5", 3499, 5, false},
    {"poster-6", 1200, 5, false}, {"headphones-8", 5999, 4, true},
    {"chair-2", 8900, 3, true},   {"desk-1", 24900, 2, true},
};
#define CATALOG_SIZE ((int)(sizeof CATALOG / sizeof CATALOG[0]))

static const char *const CARRIERS[] = {"dhl", "ups", "post"};

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

typedef struct demo_opts {
  const char *pg_url;    /* NULL: ESC_PG_URL, else the local server */
  const char *redis_url; /* NULL: ESC_REDIS_URL, else the local server */
  const char *schema;
  int customers, orders, threads, partitions;
  uint64_t seed;
  bool verbose;
} demo_opts;

static const char HELP[] =
    "Usage: order-demo [options]\n"
    "\n"
    "Runs the order domain end to end: migrates the store, resets and\n"
    "rebuilds the six read models, runs the projection worker and the\n"
    "fulfillment saga in this process, simulates customers placing, paying,\n"
    "shipping and cancelling orders concurrently, prints a summary, and\n"
    "checks every read model against a recomputation from the log.\n"
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

static bool parse_int(const char *text, long long min, long long max,
                      long long *out) {
  char *end = NULL;
  errno = 0;
  if (!text[0] || text[0] == ' ' || text[0] == '+' || text[0] == '-')
    return false;
  long long v = strtoll(text, &end, 10);
  if (errno || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

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
 * Small helpers
 * ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* splitmix64: small, good enough, one state per thread. */
static uint64_t rnd_next(uint64_t *s) {
  uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static int rnd_below(uint64_t *s, int n) {
  return (int)(rnd_next(s) % (uint64_t)n);
}

static bool chance(uint64_t *s, int percent) {
  return rnd_below(s, 100) < percent;
}

/* Cents as "12.50" into out[32]. */
static const char *money(int64_t cents, char out[32]) {
  uint64_t abs = cents < 0 ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
  snprintf(out, 32, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", abs / 100,
           abs % 100);
  return out;
}

/* What follows "<category>-" in a stream id, as projections.c has it. */
static const char *stream_entity(const char *stream_id) {
  const char *dash = strchr(stream_id, '-');
  return dash ? dash + 1 : stream_id;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

static void oom(void) {
  fputs("order-demo: out of memory\n", stderr);
  exit(1);
}

static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom();
  return q;
}

static char *xstrdup(const char *s) {
  char *p = dup_str(s);
  if (!p)
    oom();
  return p;
}

/* ------------------------------------------------------------------------
 * Redis: just enough to reset the read models the demo owns
 * ------------------------------------------------------------------------ */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..len) into out (size bytes); false when malformed
 * or too long. */
static bool url_part(const char *s, size_t len, char *out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      int h = len - i >= 3 ? hex_digit(s[i + 1]) : -1;
      int l = len - i >= 3 ? hex_digit(s[i + 2]) : -1;
      if (h < 0 || l < 0 || (h == 0 && l == 0))
        return false;
      c = (char)(h * 16 + l);
      i += 2;
    }
    if (o + 1 >= size)
      return false;
    out[o++] = c;
  }
  out[o] = '\0';
  return true;
}

/* redis://[[user]:password@][host][:port][/db], as esc reads it. */
typedef struct redis_addr {
  char host[256], user[128], password[256];
  int port, db;
  bool has_user, has_password;
} redis_addr;

static bool parse_redis_url(const char *url, redis_addr *a) {
  memset(a, 0, sizeof *a);
  if (strncmp(url, "redis://", 8) != 0)
    return false;
  const char *s = url + 8, *slash = strchr(s, '/');
  const char *end = slash ? slash : s + strlen(s), *at = NULL;
  for (const char *p = s; p < end; p++)
    if (*p == '@')
      at = p;
  if (at) {
    const char *colon = memchr(s, ':', (size_t)(at - s));
    const char *pw = colon ? colon + 1 : s;
    if (colon && colon > s) {
      if (!url_part(s, (size_t)(colon - s), a->user, sizeof a->user))
        return false;
      a->has_user = true;
    }
    if (!url_part(pw, (size_t)(at - pw), a->password, sizeof a->password))
      return false;
    a->has_password = true;
    s = at + 1;
  }
  const char *host = s, *host_end;
  if (*s == '[') {
    host = s + 1;
    host_end = memchr(host, ']', (size_t)(end - host));
    if (!host_end)
      return false;
    s = host_end + 1;
  } else {
    host_end = memchr(s, ':', (size_t)(end - s));
    if (!host_end)
      host_end = end;
    s = host_end;
  }
  size_t hlen = (size_t)(host_end - host);
  if (hlen >= sizeof a->host)
    return false;
  if (hlen == 0)
    strcpy(a->host, "127.0.0.1");
  else
    memcpy(a->host, host, hlen);
  long long v = 6379;
  if (s < end && *s == ':') {
    char port[8];
    size_t plen = (size_t)(end - s - 1);
    if (plen == 0 || plen >= sizeof port)
      return false;
    memcpy(port, s + 1, plen);
    port[plen] = '\0';
    if (!parse_int(port, 1, 65535, &v))
      return false;
  } else if (s < end) {
    return false;
  }
  a->port = (int)v;
  v = 0;
  if (slash && slash[1] && !parse_int(slash + 1, 0, 1000000, &v))
    return false;
  a->db = (int)v;
  return true;
}

/* Runs a command given as NUL-terminated strings; the reply or NULL with
 * err filled (also for an error reply). */
static redisReply *redis_cmd(redisContext *c, esc_error *err, int argc,
                             const char **argv) {
  redisReply *r = redisCommandArgv(c, argc, argv, NULL);
  if (!r) {
    esc_error_set(err, ESC_ECONN, "redis: %s", c->errstr);
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    esc_error_set(err, ESC_EIO, "redis %s: %.200s", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

static redisContext *redis_open(const char *url, esc_error *err) {
  redis_addr a;
  if (!url)
    url = esc_default_redis_url();
  if (!parse_redis_url(url, &a)) {
    esc_error_set(err, ESC_EINVAL,
                  "redis URL \"%.120s\": expected "
                  "redis://[[user]:password@][host][:port][/db]",
                  url);
    return NULL;
  }
  struct timeval tv = {5, 0};
  redisContext *c = redisConnectWithTimeout(a.host, a.port, tv);
  if (!c || c->err) {
    esc_error_set(err, ESC_ECONN, "redis %s:%d: %s", a.host, a.port,
                  c ? c->errstr : "out of memory");
    redisFree(c);
    return NULL;
  }
  char db[16];
  snprintf(db, sizeof db, "%d", a.db);
  const char *auth2[] = {"AUTH", a.user, a.password};
  const char *auth1[] = {"AUTH", a.password};
  const char *select[] = {"SELECT", db};
  redisReply *r = NULL;
  if (a.has_password) {
    r = a.has_user ? redis_cmd(c, err, 3, auth2) : redis_cmd(c, err, 2, auth1);
    if (!r)
      goto fail;
    freeReplyObject(r);
  }
  if (a.db != 0) {
    if (!(r = redis_cmd(c, err, 2, select)))
      goto fail;
    freeReplyObject(r);
  }
  return c;
fail:
  redisFree(c);
  return NULL;
}

/* Deletes every key matching pattern (SCAN + UNLINK, never KEYS). */
static esc_status redis_delete_matching(redisContext *c, const char *pattern,
                                        long long *deleted, esc_error *err) {
  char cursor[32] = "0";
  do {
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *r = redis_cmd(c, err, 6, scan);
    if (!r)
      return err->code;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      freeReplyObject(r);
      return esc_error_set(err, ESC_EIO, "redis SCAN: unexpected reply");
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    redisReply *keys = r->element[1];
    if (keys->elements > 0) {
      const char **argv = xrealloc(NULL, (keys->elements + 1) * sizeof *argv);
      argv[0] = "UNLINK";
      for (size_t i = 0; i < keys->elements; i++)
        argv[i + 1] = keys->element[i]->str;
      redisReply *u = redis_cmd(c, err, (int)keys->elements + 1, argv);
      free(argv);
      if (!u) {
        freeReplyObject(r);
        return err->code;
      }
      *deleted += u->type == REDIS_REPLY_INTEGER ? u->integer : 0;
      freeReplyObject(u);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return ESC_OK;
}

/*
 * Resets the demo's read models: every key of the six projections, so the
 * worker starts a fresh generation and rebuilds it from the whole log. The
 * saga's checkpoint is kept when it is still a position in this log (the
 * saga resumes where it was; replaying it would re-issue every command of
 * every earlier run, harmless but slow) and deleted when it is ahead of
 * the log's head, i.e. left over from a log that was reset.
 */
static esc_status reset_read_models(const demo_opts *o, esc_store *st,
                                    const esc_projection *projections,
                                    long long *deleted, bool *saga_reset,
                                    esc_error *err) {
  redisContext *c = redis_open(o->redis_url, err);
  if (!c)
    return err->code;
  esc_status rc = ESC_OK;
  *deleted = 0;
  *saga_reset = false;
  for (int i = 0; !rc && i < ORDER_PROJECTION_COUNT; i++) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%s:*", projections[i].name);
    rc = redis_delete_matching(c, pattern, deleted, err);
  }
  const char *get[] = {"GET", "fulfillment:checkpoint"};
  redisReply *r = rc ? NULL : redis_cmd(c, err, 2, get);
  if (!rc && !r)
    rc = err->code;
  if (r && r->type == REDIS_REPLY_STRING) {
    esc_position saga_at, head;
    bool stale = esc_position_parse(r->str, &saga_at, NULL) != ESC_OK;
    if (!stale && !(rc = esc_store_head(st, &head, err)))
      stale = esc_position_cmp(&saga_at, &head) > 0;
    if (!rc && stale) {
      long long n = 0;
      rc = redis_delete_matching(c, SAGA_KEYS, &n, err);
      *saga_reset = true;
    }
  }
  freeReplyObject(r);
  redisFree(c);
  return rc;
}

/* ------------------------------------------------------------------------
 * The demo's shared state
 * ------------------------------------------------------------------------ */

typedef struct counters {
  long placed, confirmed, paid, shipped;
  long cancelled_stock;    /* by the saga: a reservation was refused */
  long cancelled_customer; /* by the customer, before or after paying */
  long rejected;           /* other domain rejections (races) */
  long done;
} counters;

typedef struct demo {
  demo_opts o;
  char run[16]; /* this run's tag: order ids are <run>-<n> */
  const esc_projection *projections;

  esc_worker *worker;
  pthread_t worker_thread;
  esc_status worker_rc;
  esc_error worker_err;

  order_saga *saga;
  esc_store *saga_store;
  pthread_t saga_thread;
  atomic_bool saga_stop; /* return once idle */
  esc_status saga_rc;
  esc_error saga_err;

  atomic_bool failed; /* a thread hit an error: everyone stops */
  atomic_int next_order;
  atomic_long commands;

  pthread_mutex_t lock; /* guards n, first_err, and progress output */
  counters n;
  esc_error first_err;
} demo;

/* Records the first error of any thread and tells every thread to stop. */
static void demo_fail(demo *d, const char *who, const esc_error *err) {
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
 * The worker and the saga, each on its own thread
 * ------------------------------------------------------------------------ */

static void worker_log(void *userdata, const char *line) {
  (void)userdata;
  printf("  worker: %s\n", line);
  fflush(stdout);
}

static void *worker_main(void *arg) {
  demo *d = arg;
  d->worker_rc = esc_worker_run(d->worker, &d->worker_err);
  if (d->worker_rc)
    demo_fail(d, "projection worker", &d->worker_err);
  return NULL;
}

static esc_status start_worker(demo *d, esc_error *err) {
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  wo.pg_url = d->o.pg_url;
  wo.redis_url = d->o.redis_url;
  wo.schema = d->o.schema;
  wo.poll_ms = 200;
  if (d->o.verbose)
    wo.log = worker_log;
  d->worker = esc_worker_new(&wo, err);
  if (!d->worker)
    return err->code;
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++)
    if (esc_worker_add(d->worker, &d->projections[i], err))
      return err->code;
  if (pthread_create(&d->worker_thread, NULL, worker_main, d))
    return esc_error_set(err, ESC_ENOMEM, "cannot start the worker thread");
  return ESC_OK;
}

/* Steps the saga until told to stop and it has been idle a little while
 * (so nothing the last commands triggered is left undone). */
static void *saga_main(void *arg) {
  demo *d = arg;
  int idle = 0;
  while (!atomic_load(&d->failed)) {
    size_t handled = 0;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = order_saga_step(d->saga, 200, &handled, &err);
    if (rc) {
      d->saga_rc = rc;
      d->saga_err = err;
      demo_fail(d, "fulfillment saga", &err);
      break;
    }
    if (handled > 0) {
      idle = 0;
      continue;
    }
    if (atomic_load(&d->saga_stop) && ++idle >= 5)
      break;
    sleep_ms(atomic_load(&d->saga_stop) ? 20 : 3);
  }
  return NULL;
}

static esc_status start_saga(demo *d, esc_error *err) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = d->o.schema;
  so.app_name = "order-demo saga";
  d->saga_store = esc_store_open(d->o.pg_url, &so, err);
  if (!d->saga_store)
    return err->code;
  d->saga = order_saga_new(d->saga_store, d->o.redis_url, err);
  if (!d->saga)
    return err->code;
  if (pthread_create(&d->saga_thread, NULL, saga_main, d))
    return esc_error_set(err, ESC_ENOMEM, "cannot start the saga thread");
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Stock
 * ------------------------------------------------------------------------ */

/* Plenty of every product, except the scarce ones: about a third of what
 * the orders will ask for, so the saga cancels some orders. */
static int64_t stock_for(const demo_opts *o, const product *p) {
  return p->scarce ? (o->orders + 7) / 8 : (int64_t)o->orders * 2;
}

static esc_status stock_products(demo *d, esc_store *st, esc_error *err) {
  char scarce[160] = "";
  for (int i = 0; i < CATALOG_SIZE; i++) {
    char stream[ESC_STREAM_ID_MAX + 1];
    inventory_cmd cmd = {INVENTORY_STOCK_IN, stock_for(&d->o, &CATALOG[i]),
                         NULL};
    esc_command_options co = ESC_COMMAND_OPTIONS_INIT;
    esc_command_result r;
    co.actor = "order-demo";
    snprintf(stream, sizeof stream, "inventory-%s", CATALOG[i].sku);
    esc_status rc =
        esc_execute(st, inventory_decider(), stream, &cmd, &co, &r, err);
    if (rc == ESC_EREJECTED)
      return esc_error_set(err, ESC_EREJECTED, "stock in %s: %s",
                           CATALOG[i].sku, r.domain_msg);
    if (rc)
      return rc;
    if (CATALOG[i].scarce) {
      size_t len = strlen(scarce);
      snprintf(scarce + len, sizeof scarce - len, "%s%s", len ? ", " : "",
               CATALOG[i].sku);
    }
  }
  printf("- stocked %d products: %" PRId64 " units each, but only %" PRId64
         " of the scarce %s\n",
         CATALOG_SIZE, stock_for(&d->o, &CATALOG[0]),
         stock_for(&d->o, &CATALOG[CATALOG_SIZE - 1]), scarce);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Customers
 * ------------------------------------------------------------------------ */

typedef struct shopper {
  demo *d;
  int index;
  uint64_t rng;
  esc_store *store;
  pthread_t thread;
} shopper;

/* One order as its customer sees it. */
typedef struct cart {
  char id[ORDER_ID_MAX];
  char stream[ESC_STREAM_ID_MAX + 1];
  char customer[ORDER_CUSTOMER_MAX];
  order_line lines[ORDER_MAX_LINES];
  int count;
} cart;

static int64_t cart_total(const cart *c) {
  int64_t total = 0;
  for (int i = 0; i < c->count; i++)
    total += c->lines[i].qty * c->lines[i].price;
  return total;
}

static bool in_cart(const cart *c, const char *sku) {
  for (int i = 0; i < c->count; i++)
    if (strcmp(c->lines[i].sku, sku) == 0)
      return true;
  return false;
}

/* A product by popularity that is not in the cart yet (NULL: none left). */
static const product *pick_product(uint64_t *rng, const cart *c) {
  int total = 0;
  for (int i = 0; i < CATALOG_SIZE; i++)
    if (!in_cart(c, CATALOG[i].sku))
      total += CATALOG[i].weight;
  if (total == 0)
    return NULL;
  int pick = rnd_below(rng, total);
  for (int i = 0; i < CATALOG_SIZE; i++) {
    if (in_cart(c, CATALOG[i].sku))
      continue;
    if (pick < CATALOG[i].weight)
      return &CATALOG[i];
    pick -= CATALOG[i].weight;
  }
  return NULL;
}

static order_line line_of(uint64_t *rng, const product *p) {
  order_line l;
  memset(&l, 0, sizeof l);
  snprintf(l.sku, sizeof l.sku, "%s", p->sku);
  l.qty = 1 + rnd_below(rng, 3);
  l.price = p->price;
  return l;
}

/* Executes an order command: ESC_OK, ESC_EREJECTED (a domain answer; the
 * message is in r), or a failure. */
static esc_status order_exec(shopper *s, const cart *c, const order_cmd *cmd,
                             esc_command_result *r, esc_error *err) {
  esc_command_options co = ESC_COMMAND_OPTIONS_INIT;
  co.actor = c->customer;
  atomic_fetch_add(&s->d->commands, 1);
  return esc_execute(s->store, order_decider(), c->stream, cmd, &co, r, err);
}

static esc_status load_order(shopper *s, const cart *c, order_state *st,
                             esc_error *err) {
  const esc_decider *dec = order_decider();
  memset(st, 0, sizeof *st);
  esc_status rc = esc_load_state(s->store, dec, c->stream, st, NULL, err);
  if (dec->release_state)
    dec->release_state(st);
  return rc;
}

/* Waits until the saga decided on a confirmed order: stock reserved (the
 * order is ready, or paid and reserved) or the order cancelled. */
static esc_status await_saga(shopper *s, const cart *c, order_state *st,
                             esc_error *err) {
  int64_t deadline = now_ms() + SAGA_TIMEOUT_MS;
  int pause = 2;
  for (;;) {
    esc_status rc = load_order(s, c, st, err);
    if (rc)
      return rc;
    if (st->reserved || st->status == ORDER_STATUS_CANCELLED)
      return ESC_OK;
    if (atomic_load(&s->d->failed))
      return esc_error_set(err, ESC_EIO, "stopped");
    if (now_ms() > deadline)
      return esc_error_set(err, ESC_ETIMEDOUT,
                           "%s: the saga did not reserve or cancel it "
                           "within %d s",
                           c->stream, SAGA_TIMEOUT_MS / 1000);
    sleep_ms(pause);
    pause = pause * 2 > 50 ? 50 : pause * 2;
  }
}

typedef enum outcome {
  OUT_SHIPPED,
  OUT_CANCELLED_STOCK,
  OUT_CANCELLED_CUSTOMER,
  OUT_REJECTED
} outcome;

/* A command was rejected: the saga may have cancelled the order meanwhile
 * (lack of stock); anything else is a race worth a note. */
static esc_status after_rejection(shopper *s, const cart *c,
                                  const esc_command_result *r, outcome *out,
                                  esc_error *err) {
  order_state st;
  esc_status rc = load_order(s, c, &st, err);
  if (rc)
    return rc;
  if (st.status == ORDER_STATUS_CANCELLED) {
    *out = OUT_CANCELLED_STOCK;
  } else {
    *out = OUT_REJECTED;
    if (s->d->o.verbose)
      printf("  %s: rejected: %s\n", c->stream, r->domain_msg);
  }
  return ESC_OK;
}

/* Runs an order command and returns from the calling function unless it
 * went through; a rejection decides the outcome. */
#define STEP(cmd)                                                              \
  do {                                                                         \
    esc_status rc_ = order_exec(s, c, (cmd), &r, err);                         \
    if (rc_ == ESC_EREJECTED)                                                  \
      return after_rejection(s, c, &r, out, err);                              \
    if (rc_)                                                                   \
      return rc_;                                                              \
  } while (0)

static void count(demo *d, long *field) {
  pthread_mutex_lock(&d->lock);
  (*field)++;
  pthread_mutex_unlock(&d->lock);
}

/* One customer's order, from the cart to the parcel (or not). */
static esc_status shop(shopper *s, cart *c, outcome *out, esc_error *err) {
  demo *d = s->d;
  uint64_t *rng = &s->rng;
  esc_command_result r;

  int want = 1 + rnd_below(rng, 3);
  for (int i = 0; i < want; i++) /* 3 of 10 products: never NULL */
    c->lines[c->count++] = line_of(rng, pick_product(rng, c));
  order_cmd place = {.kind = ORDER_PLACE,
                     .customer = c->customer,
                     .lines = c->lines,
                     .line_count = c->count};
  STEP(&place);
  count(d, &d->n.placed);

  const product *extra = chance(rng, 25) ? pick_product(rng, c) : NULL;
  if (extra) {
    order_cmd add = {.kind = ORDER_ADD_ITEM, .line = line_of(rng, extra)};
    STEP(&add);
    c->lines[c->count++] = add.line;
  }
  if (c->count > 1 && chance(rng, 10)) {
    int k = rnd_below(rng, c->count);
    order_cmd rm = {.kind = ORDER_REMOVE_ITEM};
    rm.line = c->lines[k];
    STEP(&rm);
    c->lines[k] = c->lines[--c->count];
  }
  if (chance(rng, 4)) {
    order_cmd cancel = {.kind = ORDER_CANCEL, .reason = "changed my mind"};
    STEP(&cancel);
    *out = OUT_CANCELLED_CUSTOMER;
    return ESC_OK;
  }

  order_cmd confirm = {.kind = ORDER_CONFIRM};
  STEP(&confirm);
  count(d, &d->n.confirmed);

  /* Some pay at once, before the saga has reserved the stock. */
  bool paid = false;
  if (chance(rng, 30)) {
    order_cmd pay = {.kind = ORDER_PAY, .amount = cart_total(c)};
    STEP(&pay);
    count(d, &d->n.paid);
    paid = true;
  }
  order_state st;
  esc_status rc = await_saga(s, c, &st, err);
  if (rc)
    return rc;
  if (st.status == ORDER_STATUS_CANCELLED) {
    *out = OUT_CANCELLED_STOCK;
    return ESC_OK;
  }
  if (!paid) {
    order_cmd pay = {.kind = ORDER_PAY, .amount = st.total};
    STEP(&pay);
    count(d, &d->n.paid);
  }
  if (chance(rng, 6)) {
    order_cmd cancel = {.kind = ORDER_CANCEL, .reason = "customer request"};
    STEP(&cancel);
    *out = OUT_CANCELLED_CUSTOMER;
    return ESC_OK;
  }
  order_cmd ship = {.kind = ORDER_SHIP, .carrier = CARRIERS[rnd_below(rng, 3)]};
  STEP(&ship);
  *out = OUT_SHIPPED;
  return ESC_OK;
}

static void print_progress(const demo *d) {
  const counters *n = &d->n;
  printf("  %4ld/%d orders done: %ld placed, %ld confirmed, %ld paid, "
         "%ld shipped, %ld cancelled (%ld for lack of stock)\n",
         n->done, d->o.orders, n->placed, n->confirmed, n->paid, n->shipped,
         n->cancelled_stock + n->cancelled_customer, n->cancelled_stock);
  fflush(stdout);
}

static void finish(demo *d, outcome o) {
  pthread_mutex_lock(&d->lock);
  switch (o) {
  case OUT_SHIPPED:
    d->n.shipped++;
    break;
  case OUT_CANCELLED_STOCK:
    d->n.cancelled_stock++;
    break;
  case OUT_CANCELLED_CUSTOMER:
    d->n.cancelled_customer++;
    break;
  case OUT_REJECTED:
    d->n.rejected++;
    break;
  }
  d->n.done++;
  if (d->n.done % PROGRESS_EVERY == 0 || d->n.done == d->o.orders)
    print_progress(d);
  pthread_mutex_unlock(&d->lock);
}

static void *shopper_main(void *arg) {
  shopper *s = arg;
  demo *d = s->d;
  while (!atomic_load(&d->failed)) {
    int i = atomic_fetch_add(&d->next_order, 1);
    if (i >= d->o.orders)
      break;
    cart c;
    memset(&c, 0, sizeof c);
    snprintf(c.id, sizeof c.id, "%s-%04d", d->run, i + 1);
    snprintf(c.stream, sizeof c.stream, "order-%s", c.id);
    snprintf(c.customer, sizeof c.customer, "customer-%02d",
             1 + rnd_below(&s->rng, d->o.customers));
    outcome o = OUT_REJECTED;
    esc_error err = ESC_ERROR_INIT;
    if (shop(s, &c, &o, &err)) {
      demo_fail(d, c.stream, &err);
      break;
    }
    finish(d, o);
  }
  return NULL;
}

/* Runs the customers; returns once every one is done (or one failed). */
static esc_status run_customers(demo *d, esc_error *err) {
  int n = d->o.threads;
  shopper *shoppers = xrealloc(NULL, (size_t)n * sizeof *shoppers);
  esc_status rc = ESC_OK;
  int started = 0;
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = d->o.schema;
  so.app_name = "order-demo customer";
  for (; started < n; started++) {
    shopper *s = &shoppers[started];
    s->d = d;
    s->index = started;
    s->rng = d->o.seed * 1000003u + (uint64_t)started;
    s->store = esc_store_open(d->o.pg_url, &so, err);
    if (!s->store) {
      rc = err->code;
      break;
    }
    if (pthread_create(&s->thread, NULL, shopper_main, s)) {
      esc_store_free(s->store);
      rc = esc_error_set(err, ESC_ENOMEM, "cannot start a customer thread");
      break;
    }
  }
  if (rc)
    atomic_store(&d->failed, true);
  for (int i = 0; i < started; i++) {
    pthread_join(shoppers[i].thread, NULL);
    esc_store_free(shoppers[i].store);
  }
  free(shoppers);
  return rc;
}

/* ------------------------------------------------------------------------
 * Models of the read models: a hash, a sorted set, a string map
 * ------------------------------------------------------------------------ */

typedef struct hfield {
  char *name, *value;
} hfield;

typedef struct hmodel { /* a Redis hash */
  hfield *f;
  size_t n, cap;
} hmodel;

static hfield *hm_find(const hmodel *h, const char *name) {
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->f[i].name, name) == 0)
      return &h->f[i];
  return NULL;
}

static void hm_set(hmodel *h, const char *name, const char *value) {
  hfield *f = hm_find(h, name);
  if (f) {
    free(f->value);
    f->value = xstrdup(value);
    return;
  }
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 8;
    h->f = xrealloc(h->f, h->cap * sizeof *h->f);
  }
  h->f[h->n].name = xstrdup(name);
  h->f[h->n].value = xstrdup(value);
  h->n++;
}

static void hm_set_i64(hmodel *h, const char *name, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  hm_set(h, name, buf);
}

static void hm_incr(hmodel *h, const char *name, int64_t delta) {
  hfield *f = hm_find(h, name);
  int64_t v = f ? strtoll(f->value, NULL, 10) : 0;
  hm_set_i64(h, name, v + delta);
}

static void hm_del(hmodel *h, const char *name) {
  hfield *f = hm_find(h, name);
  if (!f)
    return;
  free(f->name);
  free(f->value);
  *f = h->f[--h->n];
}

static void hm_free(hmodel *h) {
  for (size_t i = 0; i < h->n; i++) {
    free(h->f[i].name);
    free(h->f[i].value);
  }
  free(h->f);
}

typedef struct zentry {
  char *member;
  double score;
} zentry;

typedef struct zmodel { /* a Redis sorted set */
  zentry *e;
  size_t n, cap;
} zmodel;

static zentry *zm_find(const zmodel *z, const char *member) {
  for (size_t i = 0; i < z->n; i++)
    if (strcmp(z->e[i].member, member) == 0)
      return &z->e[i];
  return NULL;
}

static void zm_incr(zmodel *z, const char *member, double delta, bool set) {
  zentry *e = zm_find(z, member);
  if (e) {
    e->score = set ? delta : e->score + delta;
    return;
  }
  if (z->n == z->cap) {
    z->cap = z->cap ? z->cap * 2 : 8;
    z->e = xrealloc(z->e, z->cap * sizeof *z->e);
  }
  z->e[z->n].member = xstrdup(member);
  z->e[z->n].score = delta;
  z->n++;
}

static void zm_free(zmodel *z) {
  for (size_t i = 0; i < z->n; i++)
    free(z->e[i].member);
  free(z->e);
}

/* Redis's order for ZRANGE ... REV: score descending, then member
 * descending (byte order). */
static int zentry_rev_cmp(const void *a, const void *b) {
  const zentry *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? 1 : -1;
  return -strcmp(x->member, y->member);
}

typedef struct strmap { /* string -> index, open addressing */
  char **keys;
  size_t *vals;
  size_t cap, n;
} strmap;

static uint64_t fnv1a(const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

static bool sm_get(const strmap *m, const char *key, size_t *val) {
  if (!m->cap)
    return false;
  for (size_t i = fnv1a(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i])
      return false;
    if (strcmp(m->keys[i], key) == 0) {
      *val = m->vals[i];
      return true;
    }
  }
}

static void sm_put_owned(strmap *m, char *key, size_t val) {
  size_t i = fnv1a(key) & (m->cap - 1);
  while (m->keys[i])
    i = (i + 1) & (m->cap - 1);
  m->keys[i] = key;
  m->vals[i] = val;
  m->n++;
}

/* Adds a key that is not in the map yet (copied). */
static void sm_add(strmap *m, const char *key, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    strmap g = {NULL, NULL, m->cap ? m->cap * 2 : 64, 0};
    g.keys = xrealloc(NULL, g.cap * sizeof *g.keys);
    g.vals = xrealloc(NULL, g.cap * sizeof *g.vals);
    memset(g.keys, 0, g.cap * sizeof *g.keys);
    for (size_t i = 0; i < m->cap; i++)
      if (m->keys[i])
        sm_put_owned(&g, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = g;
  }
  sm_put_owned(m, xstrdup(key), val);
}

static void sm_free(strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->keys[i]);
  free(m->keys);
  free(m->vals);
}

/* ------------------------------------------------------------------------
 * The recomputation: every event of categories order and inventory,
 * mapped as samples/order/projections.c maps it
 * ------------------------------------------------------------------------ */

static const order_status STATUSES[] = {
    ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_READY,
    ORDER_STATUS_PAID,   ORDER_STATUS_SHIPPED,   ORDER_STATUS_CANCELLED};
#define STATUS_COUNT ((int)(sizeof STATUSES / sizeof STATUSES[0]))

typedef struct exp_order {
  char *id;          /* the stream's entity: "order-<id>" */
  int64_t version;   /* last stream version read */
  hmodel details;    /* order_details order:<id> */
  int status_set;    /* orders_by_status: index into STATUSES, or -1 */
  order_state state; /* the order decider's fold */
  bool folded;       /* state holds at least one event */
} exp_order;

typedef struct exp_customer {
  char *name;
  zmodel orders; /* orders_by_customer customer:<c> */
} exp_customer;

typedef struct exp_stream { /* inventory streams, for completeness */
  char *sku;
  int64_t version;
} exp_stream;

typedef struct exp_day {
  char day[16];
  int64_t cents;
} exp_day;

typedef struct model {
  exp_order *orders;
  size_t n_orders, cap_orders;
  strmap order_index;
  exp_customer *customers;
  size_t n_customers, cap_customers;
  strmap customer_index;
  exp_stream *inventory;
  size_t n_inventory, cap_inventory;
  strmap inventory_index;
  zmodel products; /* top_products products */
  exp_day *days;   /* revenue day:<d> */
  size_t n_days;
  hmodel levels; /* stock levels */
  /* where reading goes on, and the last event of each category */
  esc_position order_next, inventory_next;
  int64_t events, skipped;
  char first_skip[sizeof(((esc_error *)0)->msg)];
} model;

/* Every event type's struct fits in here. */
typedef union any_event {
  order_placed placed;
  order_item_added added;
  order_item_removed removed;
  order_confirmed confirmed;
  order_ready ready;
  order_paid paid;
  order_shipped shipped;
  order_cancelled cancelled;
  stock_added stock_added;
  stock_reserved reserved;
  stock_released released;
} any_event;

static exp_order *model_order(model *m, const char *id) {
  size_t i;
  if (sm_get(&m->order_index, id, &i))
    return &m->orders[i];
  if (m->n_orders == m->cap_orders) {
    m->cap_orders = m->cap_orders ? m->cap_orders * 2 : 256;
    m->orders = xrealloc(m->orders, m->cap_orders * sizeof *m->orders);
  }
  exp_order *o = &m->orders[m->n_orders];
  memset(o, 0, sizeof *o);
  o->id = xstrdup(id);
  o->status_set = -1;
  order_decider()->init(&o->state);
  sm_add(&m->order_index, id, m->n_orders++);
  return o;
}

static exp_customer *model_customer(model *m, const char *name) {
  size_t i;
  if (sm_get(&m->customer_index, name, &i))
    return &m->customers[i];
  if (m->n_customers == m->cap_customers) {
    m->cap_customers = m->cap_customers ? m->cap_customers * 2 : 64;
    m->customers =
        xrealloc(m->customers, m->cap_customers * sizeof *m->customers);
  }
  exp_customer *c = &m->customers[m->n_customers];
  memset(c, 0, sizeof *c);
  c->name = xstrdup(name);
  sm_add(&m->customer_index, name, m->n_customers++);
  return c;
}

static exp_stream *model_inventory(model *m, const char *sku) {
  size_t i;
  if (sm_get(&m->inventory_index, sku, &i))
    return &m->inventory[i];
  if (m->n_inventory == m->cap_inventory) {
    m->cap_inventory = m->cap_inventory ? m->cap_inventory * 2 : 32;
    m->inventory =
        xrealloc(m->inventory, m->cap_inventory * sizeof *m->inventory);
  }
  exp_stream *s = &m->inventory[m->n_inventory];
  s->sku = xstrdup(sku);
  s->version = 0;
  sm_add(&m->inventory_index, sku, m->n_inventory++);
  return s;
}

static void model_revenue(model *m, const esc_recorded_event *rec,
                          int64_t delta) {
  char day[16];
  time_t t = (time_t)(rec->recorded_at_us / 1000000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(day, sizeof day, "%Y-%m-%d", &tm) == 0)
    snprintf(day, sizeof day, "1970-01-01");
  for (size_t i = 0; i < m->n_days; i++)
    if (strcmp(m->days[i].day, day) == 0) {
      m->days[i].cents += delta;
      return;
    }
  m->days = xrealloc(m->days, (m->n_days + 1) * sizeof *m->days);
  snprintf(m->days[m->n_days].day, sizeof m->days[0].day, "%s", day);
  m->days[m->n_days++].cents = delta;
}

/* HSET line:<sku> qty * price, per line (one line per sku). */
static void put_line_fields(hmodel *h, const order_line *lines, int count) {
  char field[ORDER_SKU_MAX + 8];
  for (int i = 0; i < count; i++) {
    snprintf(field, sizeof field, "line:%s", lines[i].sku);
    hm_set_i64(h, field, lines[i].qty * lines[i].price);
  }
}

/* order_details, as details_handle writes it. */
static void apply_details(hmodel *h, const esc_event *ev) {
  char field[ORDER_SKU_MAX + 8];
  const esc_event_type *t = ev->type;
  if (t == &ORDER_PLACED) {
    const order_placed *e = ev->data;
    int64_t total = 0;
    for (int i = 0; i < e->line_count; i++)
      total += e->lines[i].qty * e->lines[i].price;
    hm_set(h, "customer", e->customer);
    hm_set(h, "status", order_status_name(ORDER_STATUS_PLACED));
    hm_set(h, "currency", e->currency);
    hm_set_i64(h, "total", total);
    hm_set_i64(h, "lines", e->line_count);
    hm_set(h, "paid", "0");
    hm_set(h, "reserved", "0");
    put_line_fields(h, e->lines, e->line_count);
  } else if (t == &ORDER_ITEM_ADDED) {
    const order_item_added *e = ev->data;
    put_line_fields(h, &e->line, 1);
    hm_incr(h, "total", e->line.qty * e->line.price);
    hm_incr(h, "lines", 1);
  } else if (t == &ORDER_ITEM_REMOVED) {
    const order_item_removed *e = ev->data;
    snprintf(field, sizeof field, "line:%s", e->sku);
    hm_del(h, field);
    hm_incr(h, "lines", -1);
  } else if (t == &ORDER_CONFIRMED) {
    const order_confirmed *e = ev->data;
    hm_set(h, "status", order_status_name(ORDER_STATUS_CONFIRMED));
    hm_set_i64(h, "total", e->total);
    hm_set_i64(h, "lines", e->line_count);
    put_line_fields(h, e->lines, e->line_count);
  } else if (t == &ORDER_READY) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_READY));
    hm_set(h, "reserved", "1");
  } else if (t == &ORDER_PAID) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_PAID));
    hm_set_i64(h, "paid", ((const order_paid *)ev->data)->amount);
  } else if (t == &ORDER_SHIPPED) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_SHIPPED));
  } else if (t == &ORDER_CANCELLED) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_CANCELLED));
  }
}

static int status_index(order_status s) {
  for (int i = 0; i < STATUS_COUNT; i++)
    if (STATUSES[i] == s)
      return i;
  return -1;
}

/* orders_by_status, as by_status_handle writes it: each event moves the
 * order into its status's set, except that OrderReady only moves it out of
 * "confirmed" (SMOVE): a paid order stays paid. */
static void apply_status(exp_order *o, const esc_event *ev) {
  const esc_event_type *t = ev->type;
  if (t == &ORDER_READY) {
    if (o->status_set == status_index(ORDER_STATUS_CONFIRMED))
      o->status_set = status_index(ORDER_STATUS_READY);
  } else if (t == &ORDER_PLACED) {
    o->status_set = status_index(ORDER_STATUS_PLACED);
  } else if (t == &ORDER_CONFIRMED) {
    o->status_set = status_index(ORDER_STATUS_CONFIRMED);
  } else if (t == &ORDER_PAID) {
    o->status_set = status_index(ORDER_STATUS_PAID);
  } else if (t == &ORDER_SHIPPED) {
    o->status_set = status_index(ORDER_STATUS_SHIPPED);
  } else if (t == &ORDER_CANCELLED) {
    o->status_set = status_index(ORDER_STATUS_CANCELLED);
  }
}

static void apply_order_event(model *m, const esc_event *ev) {
  const esc_recorded_event *rec = ev->recorded;
  exp_order *o = model_order(m, stream_entity(rec->stream_id));
  apply_details(&o->details, ev);
  apply_status(o, ev);
  order_decider()->evolve(&o->state, ev);
  o->folded = true;
  if (ev->type == &ORDER_PLACED) { /* orders_by_customer */
    const order_placed *e = ev->data;
    zm_incr(&model_customer(m, e->customer)->orders, o->id,
            (double)(rec->recorded_at_us / 1000), true);
  } else if (ev->type == &ORDER_SHIPPED) { /* top_products */
    const order_shipped *e = ev->data;
    for (int i = 0; i < e->line_count; i++)
      zm_incr(&m->products, e->lines[i].sku, (double)e->lines[i].qty, false);
  } else if (ev->type == &ORDER_PAID) { /* revenue */
    int64_t amount = ((const order_paid *)ev->data)->amount;
    if (amount != 0)
      model_revenue(m, rec, amount);
  } else if (ev->type == &ORDER_CANCELLED) {
    int64_t refund = ((const order_cancelled *)ev->data)->refund;
    if (refund != 0)
      model_revenue(m, rec, -refund);
  }
}

/* stock, as stock_handle writes it. */
static void apply_inventory_event(model *m, const esc_event *ev) {
  int64_t delta = 0;
  if (ev->type == &STOCK_ADDED)
    delta = ((const stock_added *)ev->data)->qty;
  else if (ev->type == &STOCK_RESERVED)
    delta = -((const stock_reserved *)ev->data)->qty;
  else if (ev->type == &STOCK_RELEASED)
    delta = ((const stock_released *)ev->data)->qty;
  if (delta != 0)
    hm_incr(&m->levels, stream_entity(ev->recorded->stream_id), delta);
}

/* Notes the stream version (for the completeness check); decodes the event
 * and applies it. Events the registry cannot decode are skipped: the
 * projections skip them too (unknown types) or park them as dead letters
 * (bad payloads), so neither changes a read model. */
static void model_event(model *m, bool is_order, const esc_recorded_event *rec,
                        msgpack_zone *zone) {
  const char *entity = stream_entity(rec->stream_id);
  if (is_order) {
    exp_order *o = model_order(m, entity);
    if (rec->stream_version > o->version)
      o->version = rec->stream_version;
  } else {
    exp_stream *s = model_inventory(m, entity);
    if (rec->stream_version > s->version)
      s->version = rec->stream_version;
  }
  m->events++;
  any_event data;
  const esc_event_type *type = NULL;
  esc_error err = ESC_ERROR_INIT;
  msgpack_zone_clear(zone);
  if (esc_event_decode(order_events(), rec, zone, &data, &type, &err)) {
    if (m->skipped++ == 0)
      snprintf(m->first_skip, sizeof m->first_skip, "%s", err.msg);
    return;
  }
  esc_event ev = {type, &data, rec};
  if (is_order)
    apply_order_event(m, &ev);
  else
    apply_inventory_event(m, &ev);
}

/* Reads one category from *next on until nothing more is readable. */
static esc_status read_category(esc_store *st, model *m, const char *category,
                                esc_position *next, esc_error *err) {
  esc_events batch = ESC_EVENTS_INIT;
  msgpack_zone zone;
  esc_status rc = ESC_OK;
  if (!msgpack_zone_init(&zone, 4096))
    return esc_error_set(err, ESC_ENOMEM, "msgpack zone: out of memory");
  bool is_order = strcmp(category, "order") == 0;
  for (;;) {
    rc = esc_read_all(st, category, *next, 1000, &batch, err);
    if (rc || batch.count == 0)
      break;
    for (size_t i = 0; i < batch.count; i++)
      model_event(m, is_order, &batch.items[i], &zone);
    *next = batch.next;
  }
  esc_events_release(&batch);
  msgpack_zone_destroy(&zone);
  return rc;
}

/* Whether every stream of the category is read up to its version; the
 * first one that is not goes into why. */
static esc_status streams_complete(esc_store *st, model *m, bool is_order,
                                   bool *complete, char *why, size_t size,
                                   esc_error *err) {
  esc_stream_info *page = xrealloc(NULL, 500 * sizeof *page);
  char after[ESC_STREAM_ID_MAX + 1] = "";
  esc_status rc = ESC_OK;
  *complete = true;
  for (;;) {
    size_t n = 0;
    rc = esc_stream_list(st, is_order ? "order" : "inventory",
                         after[0] ? after : NULL, page, 500, &n, err);
    if (rc || n == 0)
      break;
    for (size_t i = 0; i < n && *complete; i++) {
      if (page[i].tombstoned || page[i].version == 0)
        continue;
      const char *entity = stream_entity(page[i].stream_id);
      size_t k;
      int64_t seen = 0;
      if (is_order && sm_get(&m->order_index, entity, &k))
        seen = m->orders[k].version;
      else if (!is_order && sm_get(&m->inventory_index, entity, &k))
        seen = m->inventory[k].version;
      if (seen < page[i].version) {
        *complete = false;
        snprintf(why, size, "%s is at version %" PRId64 ", read up to %" PRId64,
                 page[i].stream_id, page[i].version, seen);
      }
    }
    snprintf(after, sizeof after, "%s", page[n - 1].stream_id);
    if (!*complete || n < 500)
      break;
  }
  free(page);
  return rc;
}

/*
 * Reads the whole log of both categories into the model. Subscription
 * reads stop at the oldest running transaction (anywhere on the server),
 * so it reads until every stream is read up to the version the streams
 * table gives it, waiting for the horizon if need be.
 */
static esc_status recompute(esc_store *st, model *m, esc_error *err) {
  int64_t deadline = now_ms() + CATCH_UP_TIMEOUT_MS;
  char why[300] = "";
  for (;;) {
    bool orders_ok = false, inventory_ok = false;
    esc_status rc = read_category(st, m, "order", &m->order_next, err);
    if (!rc)
      rc = read_category(st, m, "inventory", &m->inventory_next, err);
    if (!rc)
      rc = streams_complete(st, m, true, &orders_ok, why, sizeof why, err);
    if (!rc && orders_ok)
      rc = streams_complete(st, m, false, &inventory_ok, why, sizeof why, err);
    if (rc || (orders_ok && inventory_ok))
      return rc;
    if (now_ms() > deadline)
      return esc_error_set(err, ESC_ETIMEDOUT,
                           "the log is not fully readable after %d s (%s); "
                           "a long transaction holds the horizon back: see "
                           "`esc stats`",
                           CATCH_UP_TIMEOUT_MS / 1000, why);
    sleep_ms(50);
  }
}

static void model_free(model *m) {
  for (size_t i = 0; i < m->n_orders; i++) {
    free(m->orders[i].id);
    hm_free(&m->orders[i].details);
  }
  free(m->orders);
  sm_free(&m->order_index);
  for (size_t i = 0; i < m->n_customers; i++) {
    free(m->customers[i].name);
    zm_free(&m->customers[i].orders);
  }
  free(m->customers);
  sm_free(&m->customer_index);
  for (size_t i = 0; i < m->n_inventory; i++)
    free(m->inventory[i].sku);
  free(m->inventory);
  sm_free(&m->inventory_index);
  zm_free(&m->products);
  free(m->days);
  hm_free(&m->levels);
}

/* ------------------------------------------------------------------------
 * Waiting for the projections
 * ------------------------------------------------------------------------ */

/* Waits until every projection has passed the last event of the
 * categories it follows, as read into the model. */
static esc_status await_projections(const demo *d, esc_query *q, const model *m,
                                    esc_error *err) {
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++) {
    const esc_projection *p = &d->projections[i];
    esc_position token = ESC_POSITION_START;
    for (size_t c = 0; p->categories && p->categories[c]; c++) {
      const esc_position *last = strcmp(p->categories[c], "order") == 0
                                     ? &m->order_next
                                     : &m->inventory_next;
      if (esc_position_cmp(last, &token) > 0)
        token = *last;
    }
    esc_status rc = esc_query_wait(q, p->name, p->partitions, &token,
                                   CATCH_UP_TIMEOUT_MS, err);
    if (rc)
      return rc;
  }
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * The summary, read from the read models
 * ------------------------------------------------------------------------ */

static int day_cmp(const void *a, const void *b) {
  return strcmp(((const exp_day *)a)->day, ((const exp_day *)b)->day);
}

static esc_status print_summary(const demo *d, esc_query *q, model *m,
                                double seconds, esc_error *err) {
  char buf[32];
  esc_status rc;
  const counters *n = &d->n;
  printf("\n==> summary (read from the read models in Redis)\n\n");
  printf("orders by status (all orders in schema %s)\n", d->o.schema);
  for (int i = 0; i < STATUS_COUNT; i++) {
    int64_t count = 0;
    const char *name = order_status_name(STATUSES[i]);
    if ((rc = order_query_status_count(q, name, &count, err)))
      return rc;
    printf("  %-10s %8" PRId64 "\n", name, count);
  }

  esc_query_items top = ESC_QUERY_ITEMS_INIT;
  if ((rc = order_query_top_products(q, 5, &top, err)))
    return rc;
  printf("\ntop 5 products (units shipped)\n");
  for (size_t i = 0; i < top.count; i++)
    printf("  %zu. %-14s %8.0f\n", i + 1, top.items[i].name,
           top.items[i].score);
  esc_query_items_release(&top);

  printf("\nrevenue per day (UTC; payments minus refunds)\n");
  if (m->n_days > 1)
    qsort(m->days, m->n_days, sizeof *m->days, day_cmp);
  size_t first = m->n_days > 7 ? m->n_days - 7 : 0;
  if (first > 0)
    printf("  (%zu earlier days not shown)\n", first);
  for (size_t i = first; i < m->n_days; i++) {
    int64_t cents = 0;
    if ((rc = order_query_revenue(q, m->days[i].day, &cents, err)))
      return rc;
    printf("  %s %14s EUR\n", m->days[i].day, money(cents, buf));
  }

  long commands = atomic_load(&d->commands);
  printf("\nthis run: %d orders from %d customers on %d threads in %.1f s: "
         "%ld shipped, %ld cancelled for lack of stock, %ld cancelled by "
         "customers",
         d->o.orders, d->o.customers, d->o.threads, seconds, n->shipped,
         n->cancelled_stock, n->cancelled_customer);
  if (n->rejected)
    printf(", %ld ended by a rejected command", n->rejected);
  printf("; %ld commands (%.0f/s)\n", commands,
         seconds > 0 ? (double)commands / seconds : 0.0);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Verification: the read models against the recomputation
 * ------------------------------------------------------------------------ */

typedef struct checker {
  esc_query *q;
  const char *model_name; /* the read model being checked */
  long diffs;             /* of this read model */
  long total_diffs;
} checker;

static void diff(checker *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void diff(checker *c, const char *fmt, ...) {
  c->diffs++;
  c->total_diffs++;
  if (c->diffs > MAX_SHOWN_DIFFS)
    return;
  va_list ap;
  va_start(ap, fmt);
  printf("  DIFF %s: ", c->model_name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static void begin(checker *c, const char *name) {
  c->model_name = name;
  c->diffs = 0;
}

static void end(checker *c, const char *what) {
  if (c->diffs > MAX_SHOWN_DIFFS)
    printf("  ... and %ld more differences in %s\n", c->diffs - MAX_SHOWN_DIFFS,
           c->model_name);
  printf("  %-19s %-28s %s\n", c->model_name, what,
         c->diffs ? "DIFFERS" : "ok");
}

/* A Redis hash against its model, field by field. */
static void compare_hash(checker *c, const char *where, const hmodel *want,
                         const esc_query_items *got) {
  for (size_t i = 0; i < want->n; i++) {
    const hfield *f = &want->f[i];
    const esc_query_item *g = NULL;
    for (size_t j = 0; j < got->count && !g; j++)
      if (strcmp(got->items[j].name, f->name) == 0)
        g = &got->items[j];
    if (!g)
      diff(c, "%s: field %s missing, the log says %s", where, f->name,
           f->value);
    else if (strcmp(g->value ? g->value : "", f->value) != 0)
      diff(c, "%s: field %s is %s, the log says %s", where, f->name,
           g->value ? g->value : "", f->value);
  }
  for (size_t j = 0; j < got->count; j++)
    if (!hm_find(want, got->items[j].name))
      diff(c, "%s: field %s = %s is not in the log", where, got->items[j].name,
           got->items[j].value ? got->items[j].value : "");
}

/* A Redis sorted set (read highest first) against its model. */
static void compare_zset(checker *c, const char *where, zmodel *want,
                         const esc_query_items *got) {
  if (want->n > 1)
    qsort(want->e, want->n, sizeof *want->e, zentry_rev_cmp);
  if (got->count != want->n)
    diff(c, "%s: %zu members, the log says %zu", where, got->count, want->n);
  for (size_t i = 0; i < want->n && i < got->count; i++)
    if (strcmp(got->items[i].name, want->e[i].member) != 0 ||
        got->items[i].score != want->e[i].score) {
      diff(c, "%s: #%zu is %s (%.0f), the log says %s (%.0f)", where, i + 1,
           got->items[i].name, got->items[i].score, want->e[i].member,
           want->e[i].score);
      break;
    }
}

static bool check_rc(checker *c, esc_status rc, const esc_error *err,
                     const char *what) {
  if (!rc)
    return true;
  diff(c, "%s: %s (%s)", what, err->msg, esc_strerror(rc));
  return false;
}

/* order_details: every hash field, and order_query_show against the order
 * decider's fold of the same events. */
static void verify_details(checker *c, model *m) {
  begin(c, "order_details");
  size_t typed = 0;
  for (size_t i = 0; i < m->n_orders; i++) {
    exp_order *o = &m->orders[i];
    if (o->details.n == 0)
      continue; /* no decodable event: nothing projected */
    char suffix[ESC_STREAM_ID_MAX + 16];
    esc_query_items h = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    snprintf(suffix, sizeof suffix, "order:%s", o->id);
    if (check_rc(c, esc_query_hash(c->q, "order_details", suffix, &h, &err),
                 &err, suffix))
      compare_hash(c, suffix, &o->details, &h);
    esc_query_items_release(&h);
    if (!o->folded || o->state.status == ORDER_NONE ||
        strlen(o->id) >= ORDER_ID_MAX)
      continue;
    order_view v;
    typed++;
    if (!check_rc(c, order_query_show(c->q, o->id, &v, &err), &err, o->id))
      continue;
    const order_state *s = &o->state;
    if (strcmp(v.status, order_status_name(s->status)) != 0 ||
        strcmp(v.customer, s->customer) != 0 ||
        strcmp(v.currency, s->currency) != 0 || v.total != s->total ||
        v.paid != s->paid || v.lines != s->line_count)
      diff(c,
           "order %s shows %s/%s/%s total %" PRId64 " paid %" PRId64
           " lines %d; the decider folds %s/%s/%s total %" PRId64
           " paid %" PRId64 " lines %d",
           o->id, v.status, v.customer, v.currency, v.total, v.paid, v.lines,
           order_status_name(s->status), s->customer, s->currency, s->total,
           s->paid, s->line_count);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu orders", typed);
  end(c, what);
}

static void verify_customers(checker *c, model *m) {
  begin(c, "orders_by_customer");
  for (size_t i = 0; i < m->n_customers; i++) {
    exp_customer *cu = &m->customers[i];
    char suffix[ESC_STREAM_ID_MAX + 16];
    esc_query_items z = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    snprintf(suffix, sizeof suffix, "customer:%s", cu->name);
    if (check_rc(c,
                 esc_query_zrange(c->q, "orders_by_customer", suffix, 0, -1,
                                  true, &z, &err),
                 &err, suffix))
      compare_zset(c, suffix, &cu->orders, &z);
    esc_query_items_release(&z);
    if (strlen(cu->name) >= ORDER_CUSTOMER_MAX)
      continue;
    /* The typed query lists the same ids, newest first. */
    char **ids = NULL;
    size_t n = 0;
    if (!check_rc(c, order_query_of_customer(c->q, cu->name, &ids, &n, &err),
                  &err, cu->name))
      continue;
    bool same = n == cu->orders.n;
    for (size_t k = 0; same && k < n; k++)
      same = strcmp(ids[k], cu->orders.e[k].member) == 0;
    if (!same)
      diff(c, "orders of %s: %zu ids, not the log's %zu newest first", cu->name,
           n, cu->orders.n);
    order_query_free_ids(ids, n);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu customers", m->n_customers);
  end(c, what);
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int item_cmp(const void *a, const void *b) {
  return strcmp(((const esc_query_item *)a)->name,
                ((const esc_query_item *)b)->name);
}

static void verify_statuses(checker *c, model *m) {
  begin(c, "orders_by_status");
  size_t members = 0;
  char **want = xrealloc(NULL, (m->n_orders + 1) * sizeof *want);
  for (int s = 0; s < STATUS_COUNT; s++) {
    const char *name = order_status_name(STATUSES[s]);
    size_t n = 0;
    for (size_t i = 0; i < m->n_orders; i++)
      if (m->orders[i].status_set == s)
        want[n++] = m->orders[i].id;
    if (n > 1)
      qsort(want, n, sizeof *want, str_cmp);
    members += n;
    char suffix[48];
    esc_query_items got = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    int64_t count = -1;
    snprintf(suffix, sizeof suffix, "status:%s", name);
    if (!check_rc(c,
                  esc_query_set(c->q, "orders_by_status", suffix, &got, &err),
                  &err, suffix))
      continue;
    if (got.count > 1)
      qsort(got.items, got.count, sizeof *got.items, item_cmp);
    size_t a = 0, b = 0;
    while (a < n || b < got.count) {
      int cmp = a == n           ? 1
                : b == got.count ? -1
                                 : strcmp(want[a], got.items[b].name);
      if (cmp < 0)
        diff(c, "%s: %s missing", suffix, want[a++]);
      else if (cmp > 0)
        diff(c, "%s: %s should not be there", suffix, got.items[b++].name);
      else
        a++, b++;
    }
    esc_query_items_release(&got);
    if (check_rc(c, order_query_status_count(c->q, name, &count, &err), &err,
                 suffix) &&
        count != (int64_t)n)
      diff(c, "%s: count %" PRId64 ", the log says %zu", suffix, count, n);
  }
  free(want);
  char what[64];
  snprintf(what, sizeof what, "%d sets, %zu members", STATUS_COUNT, members);
  end(c, what);
}

static void verify_products(checker *c, model *m) {
  begin(c, "top_products");
  esc_query_items got = ESC_QUERY_ITEMS_INIT, top = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (check_rc(c,
               esc_query_zrange(c->q, "top_products", "products", 0, -1, true,
                                &got, &err),
               &err, "products"))
    compare_zset(c, "products", &m->products, &got); /* sorts the model */
  if (check_rc(c, order_query_top_products(c->q, 5, &top, &err), &err,
               "top 5")) {
    size_t want = m->products.n < 5 ? m->products.n : 5;
    bool same = top.count == want;
    for (size_t i = 0; same && i < want; i++)
      same = strcmp(top.items[i].name, m->products.e[i].member) == 0 &&
             top.items[i].score == m->products.e[i].score;
    if (!same)
      diff(c, "the top 5 query differs from the log's top 5");
  }
  esc_query_items_release(&got);
  esc_query_items_release(&top);
  char what[64];
  snprintf(what, sizeof what, "%zu products", m->products.n);
  end(c, what);
}

static void verify_revenue(checker *c, model *m) {
  begin(c, "revenue");
  for (size_t i = 0; i < m->n_days; i++) {
    int64_t cents = 0;
    esc_error err = ESC_ERROR_INIT;
    if (check_rc(c, order_query_revenue(c->q, m->days[i].day, &cents, &err),
                 &err, m->days[i].day) &&
        cents != m->days[i].cents)
      diff(c, "day:%s is %" PRId64 ", the log says %" PRId64, m->days[i].day,
           cents, m->days[i].cents);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu day(s)", m->n_days);
  end(c, what);
}

static void verify_stock(checker *c, model *m) {
  begin(c, "stock");
  esc_query_items got = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (check_rc(c, esc_query_hash(c->q, "stock", "levels", &got, &err), &err,
               "levels"))
    compare_hash(c, "levels", &m->levels, &got);
  esc_query_items_release(&got);
  for (size_t i = 0; i < m->levels.n; i++) {
    int64_t available = 0;
    const hfield *f = &m->levels.f[i];
    if (check_rc(c, order_query_stock(c->q, f->name, &available, &err), &err,
                 f->name) &&
        available != strtoll(f->value, NULL, 10))
      diff(c, "stock of %s reads %" PRId64 ", the log says %s", f->name,
           available, f->value);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu products", m->levels.n);
  end(c, what);
}

/* Events the projections parked (the six of them), for the report. */
static size_t parked_count(const demo *d) {
  esc_dead_letter *dl = NULL;
  size_t n = 0, ours = 0;
  if (esc_dead_letters_list(d->o.pg_url, d->o.schema, NULL, false, &dl, &n,
                            NULL))
    return 0;
  for (size_t i = 0; i < n; i++)
    for (int p = 0; p < ORDER_PROJECTION_COUNT; p++)
      if (strcmp(dl[i].projection, d->projections[p].name) == 0)
        ours++;
  free(dl);
  return ours;
}

static long verify(const demo *d, esc_query *q, model *m) {
  checker c = {q, "", 0, 0};
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(esc_position_cmp(&m->order_next, &m->inventory_next) > 0
                          ? &m->order_next
                          : &m->inventory_next,
                      pos);
  printf("\n==> checking every read model against the log\n\n");
  printf("recomputed from %" PRId64 " events (categories order and "
         "inventory, up to %s): %zu orders, %zu products\n",
         m->events, pos, m->n_orders, m->n_inventory);
  if (m->skipped)
    printf("skipped %" PRId64 " event(s) the order domain cannot decode, as "
           "the projections do (first: %s)\n",
           m->skipped, m->first_skip);
  size_t parked = parked_count(d);
  if (parked)
    printf("%zu event(s) parked as dead letters by the projections "
           "(esc dead-letters)\n",
           parked);
  verify_details(&c, m);
  verify_customers(&c, m);
  verify_statuses(&c, m);
  verify_products(&c, m);
  verify_revenue(&c, m);
  verify_stock(&c, m);
  return c.total_diffs;
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

/* Stops the saga (once idle) and the worker, and frees both. */
static void stop_background(demo *d, bool saga_started, bool worker_started) {
  if (saga_started) {
    atomic_store(&d->saga_stop, true);
    pthread_join(d->saga_thread, NULL);
  }
  if (d->saga)
    order_saga_free(d->saga);
  d->saga = NULL;
  esc_store_free(d->saga_store);
  d->saga_store = NULL;
  if (worker_started) {
    esc_worker_stop(d->worker);
    pthread_join(d->worker_thread, NULL);
  }
  esc_worker_free(d->worker);
  d->worker = NULL;
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
  bool saga_reset = false;
  if (reset_read_models(&d->o, st, d->projections, &deleted, &saga_reset,
                        &err)) {
    fail("resetting the read models in Redis", &err);
    goto out;
  }
  printf("- read models reset (%lld Redis keys deleted): the worker "
         "rebuilds them from the whole log\n",
         deleted);
  if (saga_reset)
    printf("- the saga's checkpoint was ahead of this log (a reset store): "
           "it starts from the beginning\n");

  if (start_worker(d, &err)) {
    fail("starting the projection worker", &err);
    goto out;
  }
  worker_started = true;
  if (start_saga(d, &err)) {
    fail("starting the fulfillment saga", &err);
    goto out;
  }
  saga_started = true;
  printf("- running in this process: a worker for the %d projections "
         "(%d partitions each) and the fulfillment saga\n",
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
  if (!(q = esc_query_new(d->o.redis_url, &err))) {
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

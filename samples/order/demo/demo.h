/*
 * order-demo's private declarations, shared by the files of
 * samples/order/demo/ and by nothing else: the options, the state the
 * threads share, the shop's catalog, the in-memory models of the read
 * models, and each file's entry points.
 *
 * Threading: one demo, shared by the main thread, the worker and saga
 * threads and the customer threads. Its atomics are read and written
 * freely, n (the counters) and first_err only under lock; the worker's
 * and the saga's rc and err are read once their thread is joined. A model
 * belongs to the main thread.
 */
#ifndef ORDER_DEMO_H
#define ORDER_DEMO_H

#include "order.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATCH_UP_TIMEOUT_MS 120000 /* the projections at the end */

/* ------------------------------------------------------------------------
 * The shop: products, prices (cents), how popular, how much stock (shop.c)
 * ------------------------------------------------------------------------ */

typedef struct product {
  const char *sku;
  int64_t price;
  int weight;  /* relative popularity */
  bool scarce; /* stocked for a fraction of the demand */
} product;

#define CATALOG_SIZE 10
extern const product CATALOG[]; /* CATALOG_SIZE products */

/* ------------------------------------------------------------------------
 * Options (main.c)
 * ------------------------------------------------------------------------ */

typedef struct demo_opts {
  const char *pg_url;    /* NULL: ESC_PG_URL, else the local server */
  const char *redis_url; /* NULL: ESC_REDIS_URL, else the local server */
  const char *schema;
  int customers, orders, threads, partitions;
  uint64_t seed;
  bool verbose;
} demo_opts;

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

  /* The fulfillment process runs on the worker; the "saga" thread only
   * waits, once told to stop, for the log to go quiet (the process done
   * with what the last commands triggered). */
  esc_process process;
  order_fulfillment_options fulfillment;
  esc_store *saga_store;
  pthread_t saga_thread;
  atomic_bool saga_stop; /* return once the log is quiet */
  esc_status saga_rc;
  esc_error saga_err;

  atomic_bool failed; /* a thread hit an error: everyone stops */
  atomic_int next_order;
  atomic_long commands;

  pthread_mutex_t lock; /* guards n, first_err, and progress output */
  counters n;
  esc_error first_err;
} demo;

/* ------------------------------------------------------------------------
 * Models of the read models: a hash, a sorted set, a string map
 * (models.c)
 * ------------------------------------------------------------------------ */

typedef struct hfield {
  char *name, *value;
} hfield;

typedef struct hmodel { /* a Redis hash */
  hfield *f;
  size_t n, cap;
} hmodel;

typedef struct zentry {
  char *member;
  double score;
} zentry;

typedef struct zmodel { /* a Redis sorted set */
  zentry *e;
  size_t n, cap;
} zmodel;

typedef struct strmap { /* string -> index, open addressing */
  char **keys;
  size_t *vals;
  size_t cap, n;
} strmap;

/* ------------------------------------------------------------------------
 * The recomputation: every event of categories order and inventory,
 * mapped as samples/order/projections.c maps it (recompute.c)
 * ------------------------------------------------------------------------ */

#define STATUS_COUNT 6
extern const order_status STATUSES[]; /* STATUS_COUNT statuses, in order */

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

/* ------------------------------------------------------------------------
 * Each file's entry points
 * ------------------------------------------------------------------------ */

/* util.c: small helpers. The x-functions exit(1) when out of memory. */
int64_t now_ms(void);
void sleep_ms(int ms);
bool parse_int(const char *text, long long min, long long max, long long *out);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s); /* a copy the caller frees */

/* main.c: records the first error of any thread (printed) and tells every
 * thread to stop. Thread-safe. */
void demo_fail(demo *d, const char *who, const esc_error *err);

/* reset.c: sets the six projections' partition layout to o->partitions
 * and deletes their keys and those an older demo's saga left (the count
 * in *deleted). */
esc_status reset_read_models(const demo_opts *o, esc_store *st,
                             const esc_projection *projections,
                             long long *deleted, esc_error *err);

/* workers.c: the worker (projections and the fulfillment process) on a
 * thread of its own, a thread waiting for the process to go quiet, and waiting for the projections to catch up. On failure
 * what started is left in d for stop_background to free. */
esc_status start_worker(demo *d, esc_error *err);
esc_status start_saga(demo *d, esc_error *err);
void stop_background(demo *d, bool saga_started, bool worker_started);
esc_status await_projections(const demo *d, esc_query *q, const model *m,
                             esc_error *err);

/* shop.c: stocks every product of the catalog, the scarce ones short. */
esc_status stock_products(demo *d, esc_store *st, esc_error *err);

/* simulate.c: o.threads customers, one esc_store each, play o.orders
 * orders through; returns when they are done. It fails only when it
 * cannot start them; a customer's failure goes through demo_fail. */
esc_status run_customers(demo *d, esc_error *err);

/* models.c: every string is copied; *_free releases what the model owns
 * (not the struct itself). */
hfield *hm_find(const hmodel *h, const char *name);
void hm_set(hmodel *h, const char *name, const char *value);
void hm_set_i64(hmodel *h, const char *name, int64_t v);
void hm_incr(hmodel *h, const char *name, int64_t delta);
void hm_del(hmodel *h, const char *name);
void hm_free(hmodel *h);
void zm_incr(zmodel *z, const char *member, double delta, bool set);
void zm_free(zmodel *z);
int zentry_rev_cmp(const void *a, const void *b);
bool sm_get(const strmap *m, const char *key, size_t *val);
void sm_add(strmap *m, const char *key, size_t val);
void sm_free(strmap *m);

/* recompute.c: reads the log into m (zeroed before the first call);
 * model_free releases it. */
esc_status recompute(esc_store *st, model *m, esc_error *err);
void model_free(model *m);

/* report.c: sorts m's days. */
esc_status print_summary(const demo *d, esc_query *q, model *m, double seconds,
                         esc_error *err);

/* verify.c: prints each read model's verdict; returns the differences.
 * Sorts m's sorted-set models. */
long verify(const demo *d, esc_query *q, model *m);

#endif

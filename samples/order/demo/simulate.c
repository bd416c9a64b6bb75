/*
 * order-demo: the customers. Each thread is a customer with a connection
 * of its own, taking the next order number and playing it through: place,
 * maybe change, confirm, pay, wait for the saga, ship - or cancel, or meet
 * the saga's cancellation when the stock runs out.
 */
#include "demo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAGA_TIMEOUT_MS 60000 /* a customer waiting for the saga */
#define PROGRESS_EVERY 50

static const char *const CARRIERS[] = {"dhl", "ups", "post"};

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
esc_status run_customers(demo *d, esc_error *err) {
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

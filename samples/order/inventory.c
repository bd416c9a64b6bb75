/*
 * The inventory decider (see order.h): one stream per product,
 * "inventory-<sku>", counting the units on hand and those reserved for
 * orders.
 *
 * Stock in adds to available; a reservation moves units from available to
 * reserved; a release moves them back. decide keeps available >= qty for a
 * reservation and reserved >= qty for a release, so neither count goes
 * below zero; evolve clamps at zero as well, so a hand-written or corrupt
 * log cannot make the state break that promise either.
 *
 * Reservations are not tracked per order: a release is checked against
 * everything reserved. The decider does not know its sku (the stream id is
 * not passed to decide), so messages speak of "units".
 *
 * Snapshots every 100 events: a product's stream grows with every order
 * that reserves it, and the state is two counters, cheap to store.
 */
#include "order.h"

#include <inttypes.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Evolve
 * ------------------------------------------------------------------------ */

static void inventory_init(void *state) {
  (void)state; /* the runtime zeroes it: nothing in stock */
}

/* a + b, clamped to 0..INT64_MAX (b may be negative). */
static int64_t add_clamped(int64_t a, int64_t b) {
  if (b > 0 && a > INT64_MAX - b)
    return INT64_MAX;
  int64_t r = a + b; /* a >= 0 and b <= 0 cannot overflow, nor b > 0 here */
  return r < 0 ? 0 : r;
}

/* a - b, clamped; b from the log could be anything. */
static int64_t sub_clamped(int64_t a, int64_t b) {
  if (b == INT64_MIN)
    return INT64_MAX;
  return add_clamped(a, -b);
}

static void inventory_evolve(void *state, const esc_event *event) {
  inventory_state *s = state;
  if (event->type == &STOCK_ADDED) {
    const stock_added *e = event->data;
    s->available = add_clamped(s->available, e->qty);
  } else if (event->type == &STOCK_RESERVED) {
    const stock_reserved *e = event->data;
    s->available = sub_clamped(s->available, e->qty);
    s->reserved = add_clamped(s->reserved, e->qty);
  } else if (event->type == &STOCK_RELEASED) {
    const stock_released *e = event->data;
    s->reserved = sub_clamped(s->reserved, e->qty);
    s->available = add_clamped(s->available, e->qty);
  }
}

/* ------------------------------------------------------------------------
 * Decide
 * ------------------------------------------------------------------------ */

static const char *verb(inventory_cmd_kind kind) {
  switch (kind) {
  case INVENTORY_STOCK_IN:
    return "stock in";
  case INVENTORY_RESERVE:
    return "reserve";
  case INVENTORY_RELEASE:
    return "release";
  }
  return "act";
}

/* The order id of a reservation or release: order_name_valid, copied
 * into buf (ORDER_ID_MAX bytes). */
static int copy_order(const inventory_cmd *c, char *buf, esc_decision *d) {
  esc_error err = ESC_ERROR_INIT;
  if (!order_name_valid("order id", c->order, ORDER_ID_MAX, &err))
    return esc_decision_reject(d, INVENTORY_EINVAL, "cannot %s: %s",
                               verb(c->kind), err.msg);
  size_t len = strlen(c->order);
  memcpy(buf, c->order, len);
  buf[len] = '\0';
  return 0;
}

static int decide_stock_in(const inventory_state *s, const inventory_cmd *c,
                           esc_decision *d) {
  /* Both counts are >= 0, so neither subtraction overflows; keeping their
   * sum in range keeps a later release from overflowing available. */
  if (c->qty > INT64_MAX - s->reserved - s->available)
    return esc_decision_reject(
        d, INVENTORY_EINVAL,
        "cannot stock in %" PRId64 " units: the count would overflow", c->qty);
  esc_decision_emit(d, &STOCK_ADDED, &(stock_added){.qty = c->qty});
  return 0;
}

static int decide_reserve(const inventory_state *s, const inventory_cmd *c,
                          esc_decision *d) {
  stock_reserved e;
  memset(&e, 0, sizeof e);
  int rc = copy_order(c, e.order, d);
  if (rc)
    return rc;
  if (s->available < c->qty)
    return esc_decision_reject(d, INVENTORY_ESHORT,
                               "only %" PRId64 " available, %" PRId64 " asked",
                               s->available, c->qty);
  e.qty = c->qty;
  esc_decision_emit(d, &STOCK_RESERVED, &e);
  return 0;
}

static int decide_release(const inventory_state *s, const inventory_cmd *c,
                          esc_decision *d) {
  stock_released e;
  memset(&e, 0, sizeof e);
  int rc = copy_order(c, e.order, d);
  if (rc)
    return rc;
  if (s->reserved < c->qty)
    return esc_decision_reject(d, INVENTORY_ERELEASE,
                               "only %" PRId64 " reserved, %" PRId64
                               " asked to release",
                               s->reserved, c->qty);
  e.qty = c->qty;
  esc_decision_emit(d, &STOCK_RELEASED, &e);
  return 0;
}

static int inventory_decide(const void *state, const void *command,
                            esc_decision *d) {
  const inventory_state *s = state;
  const inventory_cmd *c = command;
  if (c->qty <= 0)
    return esc_decision_reject(d, INVENTORY_EINVAL,
                               "cannot %s: quantity must be positive, got "
                               "%" PRId64,
                               verb(c->kind), c->qty);
  switch (c->kind) {
  case INVENTORY_STOCK_IN:
    return decide_stock_in(s, c, d);
  case INVENTORY_RESERVE:
    return decide_reserve(s, c, d);
  case INVENTORY_RELEASE:
    return decide_release(s, c, d);
  }
  return esc_decision_reject(d, INVENTORY_EINVAL, "unknown command kind %d",
                             (int)c->kind);
}

/* ------------------------------------------------------------------------
 * The decider, built once
 * ------------------------------------------------------------------------ */

static int encode_state(const void *state, msgpack_packer *pk) {
  const inventory_state *st = state;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "available");
  msgpack_pack_int64(pk, st->available);
  esc_pack_key(pk, "reserved");
  msgpack_pack_int64(pk, st->reserved);
  return 0;
}

static esc_status decode_state(const msgpack_object *obj, void *state,
                               esc_error *err) {
  inventory_state *st = state;
  int64_t available, reserved;
  if (!esc_map_i64(obj, "available", &available) ||
      !esc_map_i64(obj, "reserved", &reserved) || available < 0 || reserved < 0)
    return esc_error_set(err, ESC_EINVAL,
                         "inventory snapshot needs available and reserved "
                         ">= 0");
  st->available = available;
  st->reserved = reserved;
  return ESC_OK;
}

ESC_DECIDER(inventory_decider, .category = "inventory",
            .registry = order_events, .state_size = sizeof(inventory_state),
            .init = inventory_init, .evolve = inventory_evolve,
            .decide = inventory_decide, .snapshot_every = 100,
            .state_version = 1, .encode_state = encode_state,
            .decode_state = decode_state)

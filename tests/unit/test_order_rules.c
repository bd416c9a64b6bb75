/*
 * Unit tests: the sample order domain's rules (samples/order) through the
 * test kit, without servers: the order and inventory deciders, their
 * evolve, the event codecs and the OrderPlaced v1 -> v2 upcaster, and the
 * order snapshot codec.
 */
#include "order.h"

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The kit's checks, which return a message instead of failing the test. */
#include "testkit_int.h"

/* ------------------------------------------------------------------------
 * Table shorthands
 * ------------------------------------------------------------------------ */

/* One event of the domain, for tables. */
typedef struct any_event {
  const esc_event_type *type; /* NULL ends a list */
  union {
    order_placed placed;
    order_item_added added;
    order_item_removed removed;
    order_confirmed confirmed;
    order_ready ready;
    order_paid paid;
    order_shipped shipped;
    order_cancelled cancelled;
    order_refunded refunded;
    stock_added stock_in;
    stock_reserved reserved;
    stock_released released;
  } u;
} any_event;

/* The standard order: 2 x sku-1 at 10 and 1 x sku-2 at 100, total 120. */
static const order_line LINES[] = {{"sku-1", 2, 10}, {"sku-2", 1, 100}};

// clang-format off
#define L1 {"sku-1", 2, 10}
#define L2 {"sku-2", 1, 100}
#define L3 {"sku-3", 3, 5}

#define PLACED {&ORDER_PLACED, {.placed = {"c-1", "EUR", {L1, L2}, 2}}}
#define PLACED_WITH(...) \
  {&ORDER_PLACED, {.placed = {"c-1", "EUR", {__VA_ARGS__}, 1}}}
#define ADDED(...) {&ORDER_ITEM_ADDED, {.added = {__VA_ARGS__}}}
#define REMOVED(sku) {&ORDER_ITEM_REMOVED, {.removed = {sku}}}
#define CONFIRMED {&ORDER_CONFIRMED, {.confirmed = {{L1, L2}, 2, 120}}}
#define READY {&ORDER_READY, {.ready = {0}}}
#define PAID(amount) {&ORDER_PAID, {.paid = {amount}}}
#define SHIPPED(carrier) {&ORDER_SHIPPED, {.shipped = {carrier, {L1, L2}, 2}}}
#define CANCELLED(reason, refund) \
  {&ORDER_CANCELLED, {.cancelled = {reason, refund}}}
#define STOCKED(qty) {&STOCK_ADDED, {.stock_in = {qty}}}
#define RESERVED(order, qty) {&STOCK_RESERVED, {.reserved = {order, qty}}}
#define RELEASED(order, qty) {&STOCK_RELEASED, {.released = {order, qty}}}
#define END {NULL, {.ready = {0}}}

/* Histories of the standard order. */
#define H_PLACED PLACED
#define H_CONFIRMED PLACED, CONFIRMED
#define H_READY H_CONFIRMED, READY
#define H_PAID H_CONFIRMED, PAID(120)
#define H_PAID_READY H_PAID, READY
#define H_READY_PAID H_READY, PAID(120)
#define H_SHIPPED H_READY_PAID, SHIPPED("dhl")
#define H_CANCELLED PLACED, CANCELLED("changed my mind", 0)

/* (Parameters are not named like the fields they fill: the preprocessor
 * would replace the designators too.) */
#define PLACE(c, ls, n) \
  {.kind = ORDER_PLACE, .customer = c, .lines = ls, .line_count = n}
#define ADD(s, q, p) {.kind = ORDER_ADD_ITEM, .line = {s, q, p}}
#define REMOVE(s) {.kind = ORDER_REMOVE_ITEM, .line = {.sku = s}}
#define CONFIRM {.kind = ORDER_CONFIRM}
#define MARK_READY {.kind = ORDER_MARK_READY}
#define PAY(a) {.kind = ORDER_PAY, .amount = a}
#define SHIP(c) {.kind = ORDER_SHIP, .carrier = c}
#define CANCEL(r) {.kind = ORDER_CANCEL, .reason = r}
#define REFUND(a) {.kind = ORDER_REFUND, .amount = a}
#define REFUNDED(amount) {&ORDER_REFUNDED, {.refunded = {amount}}}

#define STOCK_IN(q) {.kind = INVENTORY_STOCK_IN, .qty = q}
#define RESERVE(o, q) {.kind = INVENTORY_RESERVE, .qty = q, .order = o}
#define RELEASE(o, q) {.kind = INVENTORY_RELEASE, .qty = q, .order = o}

#define EMITS(...) __VA_ARGS__, 0, NULL
#define REJECTS(code, msg_part) END, code, msg_part
// clang-format on

static void given_events(esc_scenario *s, const any_event *events) {
  for (size_t i = 0; events[i].type; i++)
    esc_given(s, events[i].type, &events[i].u);
}

static void assert_has(const char *msg, const char *part) {
  if (!msg)
    fail_msg("expected a failure containing \"%s\", got none", part);
  if (!strstr(msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

/* One case of a decide table: given events, a command, and either the one
 * event it emits or the domain error it is rejected with. */
typedef struct order_case {
  const char *name;
  any_event given[8];
  order_cmd cmd;
  any_event emits; /* type NULL: rejected */
  int reject;
  const char *msg;
} order_case;

typedef struct inventory_case {
  const char *name;
  any_event given[4];
  inventory_cmd cmd;
  any_event emits;
  int reject;
  const char *msg;
} inventory_case;

static void run_case(const esc_decider *decider, const char *name,
                     const any_event *given, const void *cmd,
                     const any_event *emits, int reject, const char *msg) {
  print_message("case: %s\n", name);
  esc_scenario *s = esc_scenario_new(decider);
  given_events(s, given);
  esc_when(s, cmd);
  if (emits->type) {
    esc_then(s, emits->type, &emits->u);
    esc_then_end(s);
    assert_int_equal(esc_scenario_emitted(s), 1);
  } else {
    esc_then_rejected(s, reject, msg);
  }
  esc_scenario_free(s);
}

static void run_order_cases(const order_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++)
    run_case(order_decider(), cases[i].name, cases[i].given, &cases[i].cmd,
             &cases[i].emits, cases[i].reject, cases[i].msg);
}

static void run_inventory_cases(const inventory_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++)
    run_case(inventory_decider(), cases[i].name, cases[i].given, &cases[i].cmd,
             &cases[i].emits, cases[i].reject, cases[i].msg);
}

/* Commands for the tables (they hold pointers, so they live apart). */
static const char long_customer[] =
    "a customer whose name is far too long to fit: sixty-four bytes or more";
static const char long_carrier[] = "a carrier name of 32 bytes long!";
static const char long_reason[] =
    "a reason that is much too long to be stored in the ninety-six bytes "
    "of an OrderCancelled event: it is refused";
static const char long_order[] =
    "order-0123456789012345678901234567890123456789012345678901234567";

static const order_line lines_qty0[] = {L1, {"sku-2", 0, 100}};
static const order_line lines_qty_neg[] = {{"sku-1", -2, 10}};
static const order_line lines_price_neg[] = {{"sku-1", 2, -1}};
static const order_line lines_price0[] = {{"sku-1", 2, 0}};
static const order_line lines_no_sku[] = {{"", 2, 10}};
static const order_line lines_dup[] = {L1, L2, {"sku-1", 1, 10}};
static const order_line lines_overflow[] = {{"sku-1", 2, INT64_MAX / 2},
                                            {"sku-2", 1, 2}};
static const order_line lines_mul_overflow[] = {{"sku-1", 3, INT64_MAX / 2}};
static const order_line lines_17[17] = {L1};

/* ------------------------------------------------------------------------
 * Names: skus, customers and order ids follow the stream id rules, since
 * they end up in stream ids (a sku with a space once made the saga fail
 * on "inventory-a b" forever)
 * ------------------------------------------------------------------------ */

static const order_line lines_space[] = {L1, {"a b", 1, 10}};
static const order_line lines_dollar[] = {{"$sku", 1, 10}};

static void test_names(void **state) {
  (void)state;
  static const order_case cases[] = {
      {"place a sku with a space",
       {END},
       PLACE("c-1", lines_space, 2),
       REJECTS(ORDER_EINVAL, "line 2: sku \"a b\": byte 2 (' ') is not "
                             "allowed; use [A-Za-z0-9_.:@+=/-]")},
      {"place a sku starting with $",
       {END},
       PLACE("c-1", lines_dollar, 1),
       REJECTS(ORDER_EINVAL, "line 1: sku \"$sku\"")},
      {"place for a customer with a space",
       {END},
       PLACE("ann b", LINES, 2),
       REJECTS(ORDER_EINVAL, "customer \"ann b\": byte 4 (' ')")},
      {"add a sku with a slash and a colon (allowed)",
       {H_PLACED, END},
       ADD("shelf/3:a", 1, 5),
       EMITS(ADDED({"shelf/3:a", 1, 5}))},
      {"add a sku with a tab",
       {H_PLACED, END},
       ADD("a\tb", 1, 5),
       REJECTS(ORDER_EINVAL, "item: sku \"a\\x09b\"")},
      {"remove a sku with a space",
       {H_PLACED, END},
       REMOVE("sku 1"),
       REJECTS(ORDER_EINVAL, "sku \"sku 1\": byte 4 (' ')")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);
  static const inventory_case inv[] = {
      {"reserve for an order id with a space",
       {STOCKED(10), END},
       RESERVE("o 1", 1),
       REJECTS(INVENTORY_EINVAL, "cannot reserve: order id \"o 1\": byte 2")},
      {"release for an order id starting with -",
       {STOCKED(10), RESERVED("o-1", 1), END},
       RELEASE("-o", 1),
       REJECTS(INVENTORY_EINVAL, "cannot release: order id \"-o\"")},
  };
  run_inventory_cases(inv, sizeof inv / sizeof inv[0]);

  esc_error err = ESC_ERROR_INIT;
  assert_true(order_name_valid("sku", "sku-1", ORDER_SKU_MAX, &err));
  assert_false(order_name_valid("sku", "", ORDER_SKU_MAX, &err));
  assert_string_equal(err.msg, "the sku must be 1 to 31 bytes, got 0");
  assert_false(order_name_valid("sku", NULL, ORDER_SKU_MAX, &err));
}

/* ------------------------------------------------------------------------
 * Refunds: the fulfillment process gives back what a cancelled order paid
 * ------------------------------------------------------------------------ */

static void test_refund(void **state) {
  (void)state;
  static const order_case cases[] = {
      {"refund a paid, cancelled order",
       {H_PAID, CANCELLED("changed my mind", 120), END},
       REFUND(120),
       EMITS(REFUNDED(120))},
      {"refund twice",
       {H_PAID, CANCELLED("x", 120), REFUNDED(120), END},
       REFUND(120),
       REJECTS(ORDER_ESTATE, "cannot refund: 120 was refunded already")},
      {"refund another amount",
       {H_PAID, CANCELLED("x", 120), END},
       REFUND(100),
       REJECTS(ORDER_EAMOUNT, "refund 100 does not match the amount paid "
                              "120")},
      {"refund an unpaid cancelled order",
       {H_CANCELLED, END},
       REFUND(0),
       REJECTS(ORDER_ESTATE, "cannot refund: nothing was paid")},
      {"refund an order that is not cancelled",
       {H_PAID, END},
       REFUND(120),
       REJECTS(ORDER_ESTATE, "cannot refund: the order is paid, not "
                             "cancelled")},
      {"refund an order never placed",
       {END},
       REFUND(120),
       REJECTS(ORDER_ENOTFOUND, "cannot refund: the order was never placed")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);

  esc_scenario *s = esc_scenario_new(order_decider());
  esc_given(s, &ORDER_PLACED, &(order_placed){"c-1", "EUR", {L1, L2}, 2});
  esc_given(s, &ORDER_CONFIRMED, &(order_confirmed){{L1, L2}, 2, 120});
  esc_given(s, &ORDER_PAID, &(order_paid){120});
  esc_given(s, &ORDER_CANCELLED, &(order_cancelled){"x", 120});
  esc_given(s, &ORDER_REFUNDED, &(order_refunded){120});
  const order_state *st = esc_scenario_state(s);
  assert_int_equal(st->refunded, 120);
  assert_int_equal(st->status, ORDER_STATUS_CANCELLED);
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * Orders, table-driven: each command's rules
 * ------------------------------------------------------------------------ */

static void test_place(void **state) {
  (void)state;
  static const order_case cases[] = {
      {"place", {END}, PLACE("c-1", LINES, 2), EMITS(PLACED)},
      {"place a free item",
       {END},
       PLACE("c-1", lines_price0, 1),
       EMITS(PLACED_WITH({"sku-1", 2, 0}))},
      {"place twice",
       {H_PLACED, END},
       PLACE("c-2", LINES, 2),
       REJECTS(ORDER_EEXISTS, "the order exists already (it is placed)")},
      {"place a confirmed order",
       {H_CONFIRMED, END},
       PLACE("c-1", LINES, 2),
       REJECTS(ORDER_EEXISTS, "it is confirmed")},
      {"place a shipped order",
       {H_SHIPPED, END},
       PLACE("c-1", LINES, 2),
       REJECTS(ORDER_EEXISTS, "it is shipped")},
      {"place a cancelled order",
       {H_CANCELLED, END},
       PLACE("c-1", LINES, 2),
       REJECTS(ORDER_ECANCELLED, "cannot place: the order is cancelled")},
      {"place without a customer",
       {END},
       PLACE(NULL, LINES, 2),
       REJECTS(ORDER_EINVAL, "the customer must be 1 to 63 bytes, got 0")},
      {"place for an empty customer",
       {END},
       PLACE("", LINES, 2),
       REJECTS(ORDER_EINVAL, "the customer must be 1 to 63 bytes, got 0")},
      {"place for a long customer",
       {END},
       PLACE(long_customer, LINES, 2),
       REJECTS(ORDER_EINVAL, "the customer must be 1 to 63 bytes")},
      {"place no lines",
       {END},
       PLACE("c-1", LINES, 0),
       REJECTS(ORDER_EINVAL, "an order needs 1 to 16 lines, got 0")},
      {"place NULL lines",
       {END},
       PLACE("c-1", NULL, 2),
       REJECTS(ORDER_EINVAL, "an order needs 1 to 16 lines, got 0")},
      {"place a negative line count",
       {END},
       PLACE("c-1", LINES, -1),
       REJECTS(ORDER_EINVAL, "an order needs 1 to 16 lines, got -1")},
      {"place 17 lines",
       {END},
       PLACE("c-1", lines_17, 17),
       REJECTS(ORDER_EINVAL, "an order needs 1 to 16 lines, got 17")},
      {"place a line of 0",
       {END},
       PLACE("c-1", lines_qty0, 2),
       REJECTS(ORDER_EINVAL, "line 2 (sku-2): quantity must be positive, "
                             "got 0")},
      {"place a negative quantity",
       {END},
       PLACE("c-1", lines_qty_neg, 1),
       REJECTS(ORDER_EINVAL, "line 1 (sku-1): quantity must be positive, "
                             "got -2")},
      {"place a negative price",
       {END},
       PLACE("c-1", lines_price_neg, 1),
       REJECTS(ORDER_EINVAL, "line 1 (sku-1): price must not be negative, "
                             "got -1")},
      {"place a line without sku",
       {END},
       PLACE("c-1", lines_no_sku, 1),
       REJECTS(ORDER_EINVAL, "line 1: the sku must be 1 to 31 bytes")},
      {"place a sku twice",
       {END},
       PLACE("c-1", lines_dup, 3),
       REJECTS(ORDER_EINVAL, "line 3: sku-1 is on line 1 already")},
      {"place a total that overflows",
       {END},
       PLACE("c-1", lines_overflow, 2),
       REJECTS(ORDER_EINVAL, "line 2 (sku-2): the total overflows")},
      {"place a line that overflows",
       {END},
       PLACE("c-1", lines_mul_overflow, 1),
       REJECTS(ORDER_EINVAL, "line 1 (sku-1): the total overflows")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_items(void **state) {
  (void)state;
  static const order_case cases[] = {
      /* add */
      {"add an item", {H_PLACED, END}, ADD("sku-3", 3, 5), EMITS(ADDED(L3))},
      {"add a free item",
       {H_PLACED, END},
       ADD("sku-3", 3, 0),
       EMITS(ADDED({"sku-3", 3, 0}))},
      {"add back a removed sku",
       {H_PLACED, REMOVED("sku-1"), END},
       ADD("sku-1", 5, 11),
       EMITS(ADDED({"sku-1", 5, 11}))},
      {"add a sku on the order",
       {H_PLACED, END},
       ADD("sku-1", 1, 10),
       REJECTS(ORDER_EINVAL, "sku-1 is on the order already")},
      {"add no quantity",
       {H_PLACED, END},
       ADD("sku-3", 0, 5),
       REJECTS(ORDER_EINVAL, "item (sku-3): quantity must be positive, got 0")},
      {"add a negative price",
       {H_PLACED, END},
       ADD("sku-3", 1, -5),
       REJECTS(ORDER_EINVAL, "item (sku-3): price must not be negative, "
                             "got -5")},
      {"add without sku",
       {H_PLACED, END},
       ADD("", 1, 5),
       REJECTS(ORDER_EINVAL, "item: the sku must be 1 to 31 bytes")},
      {"add past INT64_MAX",
       {PLACED_WITH({"sku-1", 1, INT64_MAX}), END},
       ADD("sku-2", 1, 1),
       REJECTS(ORDER_EINVAL, "item (sku-2): the total overflows")},
      {"add to a confirmed order",
       {H_CONFIRMED, END},
       ADD("sku-3", 3, 5),
       REJECTS(ORDER_ESTATE, "cannot add an item: the order is confirmed")},
      {"add to a paid order",
       {H_PAID, END},
       ADD("sku-3", 3, 5),
       REJECTS(ORDER_ESTATE, "cannot add an item: the order is paid")},
      {"add to an order never placed",
       {END},
       ADD("sku-3", 3, 5),
       REJECTS(ORDER_ENOTFOUND,
               "cannot add an item: the order was never placed")},
      {"add to a cancelled order",
       {H_CANCELLED, END},
       ADD("sku-3", 3, 5),
       REJECTS(ORDER_ECANCELLED, "cannot add an item: the order is "
                                 "cancelled")},
      /* remove */
      {"remove an item",
       {H_PLACED, END},
       REMOVE("sku-1"),
       EMITS(REMOVED("sku-1"))},
      {"remove an added item",
       {H_PLACED, ADDED(L3), END},
       REMOVE("sku-3"),
       EMITS(REMOVED("sku-3"))},
      {"remove a sku not on the order",
       {H_PLACED, END},
       REMOVE("sku-9"),
       REJECTS(ORDER_ENOLINE, "sku-9 is not on the order")},
      {"remove a sku twice",
       {H_PLACED, REMOVED("sku-2"), END},
       REMOVE("sku-2"),
       REJECTS(ORDER_ENOLINE, "sku-2 is not on the order")},
      {"remove without sku",
       {H_PLACED, END},
       REMOVE(""),
       REJECTS(ORDER_EINVAL, "the sku must be 1 to 31 bytes")},
      {"remove from a confirmed order",
       {H_CONFIRMED, END},
       REMOVE("sku-1"),
       REJECTS(ORDER_ESTATE, "cannot remove an item: the order is "
                             "confirmed")},
      {"remove from a shipped order",
       {H_SHIPPED, END},
       REMOVE("sku-1"),
       REJECTS(ORDER_ESTATE, "the order is shipped")},
      {"remove from an order never placed",
       {END},
       REMOVE("sku-1"),
       REJECTS(ORDER_ENOTFOUND, "the order was never placed")},
      {"remove from a cancelled order",
       {H_CANCELLED, END},
       REMOVE("sku-1"),
       REJECTS(ORDER_ECANCELLED, "the order is cancelled")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_confirm_and_ready(void **state) {
  (void)state;
  static const order_case cases[] = {
      /* confirm */
      {"confirm", {H_PLACED, END}, CONFIRM, EMITS(CONFIRMED)},
      {"confirm the lines as changed",
       {H_PLACED, ADDED(L3), REMOVED("sku-1"), END},
       CONFIRM,
       EMITS({&ORDER_CONFIRMED, {.confirmed = {{L2, L3}, 2, 115}}})},
      {"confirm an empty order",
       {H_PLACED, REMOVED("sku-1"), REMOVED("sku-2"), END},
       CONFIRM,
       REJECTS(ORDER_ESTATE, "cannot confirm: the order has no lines")},
      {"confirm twice",
       {H_CONFIRMED, END},
       CONFIRM,
       REJECTS(ORDER_ESTATE, "cannot confirm: the order is confirmed")},
      {"confirm a paid order",
       {H_PAID, END},
       CONFIRM,
       REJECTS(ORDER_ESTATE, "cannot confirm: the order is paid")},
      {"confirm an order never placed",
       {END},
       CONFIRM,
       REJECTS(ORDER_ENOTFOUND, "cannot confirm: the order was never placed")},
      {"confirm a cancelled order",
       {H_CANCELLED, END},
       CONFIRM,
       REJECTS(ORDER_ECANCELLED, "cannot confirm: the order is cancelled")},
      /* mark ready */
      {"ready when confirmed", {H_CONFIRMED, END}, MARK_READY, EMITS(READY)},
      {"ready when paid", {H_PAID, END}, MARK_READY, EMITS(READY)},
      {"ready when placed",
       {H_PLACED, END},
       MARK_READY,
       REJECTS(ORDER_ESTATE, "cannot mark ready: the order is placed")},
      {"ready twice",
       {H_READY, END},
       MARK_READY,
       REJECTS(ORDER_ESTATE, "the order is ready already")},
      {"ready twice, paid between",
       {H_READY_PAID, END},
       MARK_READY,
       REJECTS(ORDER_ESTATE, "the order is ready already")},
      {"ready twice, paid before",
       {H_PAID_READY, END},
       MARK_READY,
       REJECTS(ORDER_ESTATE, "the order is ready already")},
      {"ready when shipped",
       {H_SHIPPED, END},
       MARK_READY,
       REJECTS(ORDER_ESTATE, "cannot mark ready")},
      {"ready when never placed",
       {END},
       MARK_READY,
       REJECTS(ORDER_ENOTFOUND, "cannot mark ready: the order was never "
                                "placed")},
      {"ready when cancelled",
       {H_CONFIRMED, CANCELLED("out of stock", 0), END},
       MARK_READY,
       REJECTS(ORDER_ECANCELLED, "cannot mark ready: the order is "
                                 "cancelled")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_pay_ship_cancel(void **state) {
  (void)state;
  static const order_case cases[] = {
      /* pay */
      {"pay", {H_CONFIRMED, END}, PAY(120), EMITS(PAID(120))},
      {"pay when ready", {H_READY, END}, PAY(120), EMITS(PAID(120))},
      {"pay a free order",
       {PLACED_WITH({"sku-1", 2, 0}),
        {&ORDER_CONFIRMED, {.confirmed = {{{"sku-1", 2, 0}}, 1, 0}}},
        END},
       PAY(0),
       EMITS(PAID(0))},
      {"pay too little",
       {H_CONFIRMED, END},
       PAY(100),
       REJECTS(ORDER_EAMOUNT, "payment 100 does not match the total 120")},
      {"pay too much",
       {H_READY, END},
       PAY(121),
       REJECTS(ORDER_EAMOUNT, "payment 121 does not match the total 120")},
      {"pay a negative amount",
       {H_CONFIRMED, END},
       PAY(-120),
       REJECTS(ORDER_EAMOUNT, "payment -120 does not match")},
      {"pay before confirming",
       {H_PLACED, END},
       PAY(120),
       REJECTS(ORDER_ESTATE, "cannot pay: the order is placed, not "
                             "confirmed")},
      {"pay twice",
       {H_PAID, END},
       PAY(120),
       REJECTS(ORDER_ESTATE, "cannot pay: the order is paid already")},
      {"pay twice, ready between",
       {H_PAID_READY, END},
       PAY(120),
       REJECTS(ORDER_ESTATE, "paid already")},
      {"pay a shipped order",
       {H_SHIPPED, END},
       PAY(120),
       REJECTS(ORDER_ESTATE, "paid already")},
      {"pay an order never placed",
       {END},
       PAY(120),
       REJECTS(ORDER_ENOTFOUND, "cannot pay: the order was never placed")},
      {"pay a cancelled order",
       {H_CONFIRMED, CANCELLED("", 0), END},
       PAY(120),
       REJECTS(ORDER_ECANCELLED, "cannot pay: the order is cancelled")},
      /* ship */
      {"ship, ready then paid",
       {H_READY_PAID, END},
       SHIP("dhl"),
       EMITS(SHIPPED("dhl"))},
      {"ship, paid then ready",
       {H_PAID_READY, END},
       SHIP("dhl"),
       EMITS(SHIPPED("dhl"))},
      {"ship without a carrier",
       {H_PAID_READY, END},
       SHIP(NULL),
       EMITS(SHIPPED(""))},
      {"ship with a long carrier",
       {H_PAID_READY, END},
       SHIP(long_carrier),
       REJECTS(ORDER_EINVAL, "the carrier must be at most 31 bytes, got 32")},
      {"ship unpaid, unreserved",
       {H_CONFIRMED, END},
       SHIP("dhl"),
       REJECTS(ORDER_ESTATE, "cannot ship: the order is confirmed, not paid")},
      {"ship unpaid, reserved",
       {H_READY, END},
       SHIP("dhl"),
       REJECTS(ORDER_ESTATE, "cannot ship: the order is ready, not paid")},
      {"ship paid, unreserved",
       {H_PAID, END},
       SHIP("dhl"),
       REJECTS(ORDER_ESTATE, "stock is not reserved yet")},
      {"ship placed",
       {H_PLACED, END},
       SHIP("dhl"),
       REJECTS(ORDER_ESTATE, "the order is placed, not paid")},
      {"ship twice",
       {H_SHIPPED, END},
       SHIP("dhl"),
       REJECTS(ORDER_ESTATE, "cannot ship: the order is shipped already")},
      {"ship an order never placed",
       {END},
       SHIP("dhl"),
       REJECTS(ORDER_ENOTFOUND, "cannot ship: the order was never placed")},
      {"ship a cancelled order",
       {H_PAID_READY, CANCELLED("fraud", 120), END},
       SHIP("dhl"),
       REJECTS(ORDER_ECANCELLED, "cannot ship: the order is cancelled")},
      /* cancel */
      {"cancel placed",
       {H_PLACED, END},
       CANCEL("changed my mind"),
       EMITS(CANCELLED("changed my mind", 0))},
      {"cancel confirmed",
       {H_CONFIRMED, END},
       CANCEL("out of stock"),
       EMITS(CANCELLED("out of stock", 0))},
      {"cancel ready",
       {H_READY, END},
       CANCEL("late"),
       EMITS(CANCELLED("late", 0))},
      {"cancel paid: refund",
       {H_PAID, END},
       CANCEL("late"),
       EMITS(CANCELLED("late", 120))},
      {"cancel paid and ready: refund",
       {H_READY_PAID, END},
       CANCEL("late"),
       EMITS(CANCELLED("late", 120))},
      {"cancel without a reason",
       {H_PLACED, END},
       CANCEL(NULL),
       EMITS(CANCELLED("", 0))},
      {"cancel with a long reason",
       {H_PLACED, END},
       CANCEL(long_reason),
       REJECTS(ORDER_EINVAL, "the reason must be at most 95 bytes")},
      {"cancel shipped",
       {H_SHIPPED, END},
       CANCEL("late"),
       REJECTS(ORDER_ESHIPPED, "the order is shipped already")},
      {"cancel twice",
       {H_CANCELLED, END},
       CANCEL("again"),
       REJECTS(ORDER_ECANCELLED, "cannot cancel: the order is cancelled")},
      {"cancel an order never placed",
       {END},
       CANCEL("why"),
       REJECTS(ORDER_ENOTFOUND, "cannot cancel: the order was never placed")},
      /* neither */
      {"an unknown command",
       {H_PLACED, END},
       {.kind = (order_cmd_kind)99},
       REJECTS(ORDER_EINVAL, "unknown command kind 99")},
  };
  run_order_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Sixteen lines fit; a seventeenth, placed or added, does not. */
static void test_max_lines(void **state) {
  (void)state;
  order_line lines[ORDER_MAX_LINES + 1];
  order_placed placed = {.customer = "c-1", .currency = "EUR"};
  memset(lines, 0, sizeof lines);
  for (int i = 0; i <= ORDER_MAX_LINES; i++) {
    snprintf(lines[i].sku, sizeof lines[i].sku, "sku-%02d", i);
    lines[i].qty = 1;
    lines[i].price = i;
  }
  memcpy(placed.lines, lines, sizeof placed.lines);
  placed.line_count = ORDER_MAX_LINES;

  esc_scenario *s = esc_scenario_new(order_decider());
  esc_when(s, &(order_cmd)PLACE("c-1", lines, ORDER_MAX_LINES + 1));
  esc_then_rejected(s, ORDER_EINVAL, "an order needs 1 to 16 lines, got 17");
  esc_when(s, &(order_cmd)PLACE("c-1", lines, ORDER_MAX_LINES));
  esc_then(s, &ORDER_PLACED, &placed);
  esc_then_end(s);
  esc_given(s, &ORDER_PLACED, &placed);
  const order_state *st = esc_scenario_state(s);
  assert_int_equal(st->line_count, ORDER_MAX_LINES);
  assert_int_equal(st->total, 120); /* 0 + 1 + ... + 15 */
  esc_when(s, &(order_cmd)ADD("sku-16", 1, 1));
  esc_then_rejected(s, ORDER_EINVAL, "the order has 16 lines already");
  /* Room again after a removal. */
  esc_given(s, &ORDER_ITEM_REMOVED, &(order_item_removed){"sku-03"});
  esc_when(s, &(order_cmd)ADD("sku-16", 1, 1));
  esc_then(s, &ORDER_ITEM_ADDED, &(order_item_added){{"sku-16", 1, 1}});
  esc_then_end(s);
  esc_scenario_free(s);
}

/* The longest strings that fit go through decide, encode, decode and
 * evolve. */
static void test_string_max(void **state) {
  (void)state;
  char customer[ORDER_CUSTOMER_MAX];
  order_line line = {.qty = 1, .price = 1};
  memset(customer, 'c', sizeof customer - 1);
  customer[sizeof customer - 1] = '\0';
  memset(line.sku, 's', sizeof line.sku - 1);
  line.sku[sizeof line.sku - 1] = '\0';
  order_placed placed = {.currency = "EUR", .line_count = 1};
  memcpy(placed.customer, customer, sizeof customer);
  placed.lines[0] = line;

  esc_scenario *s = esc_scenario_new(order_decider());
  esc_when(s, &(order_cmd)PLACE(customer, &line, 1));
  esc_then(s, &ORDER_PLACED, &placed);
  esc_given(s, &ORDER_PLACED, &placed);
  const order_state *st = esc_scenario_state(s);
  assert_string_equal(st->customer, customer);
  assert_string_equal(st->lines[0].sku, line.sku);
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * Orders: evolve and the status it gives
 * ------------------------------------------------------------------------ */

static void assert_status(const order_state *st, order_status want) {
  if (st->status != want)
    fail_msg("status is \"%s\", expected \"%s\"", order_status_name(st->status),
             order_status_name(want));
}

/* Reserved before paid, and paid before reserved, both end PAID and then
 * SHIPPED; only reserved-and-unpaid is READY. */
static void test_status_transitions(void **state) {
  (void)state;
  static const struct {
    const char *name;
    any_event events[8];
    order_status status[8]; /* after each event */
    bool reserved;          /* at the end */
    int64_t paid;
  } cases[] = {
      {"ready, then paid",
       {H_SHIPPED, END},
       {ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_READY,
        ORDER_STATUS_PAID, ORDER_STATUS_SHIPPED},
       true,
       120},
      {"paid, then ready",
       {H_PAID_READY, SHIPPED("ups"), END},
       {ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_PAID,
        ORDER_STATUS_PAID, ORDER_STATUS_SHIPPED},
       true,
       120},
      {"paid, cancelled",
       {H_PAID, CANCELLED("fraud", 120), END},
       {ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_PAID,
        ORDER_STATUS_CANCELLED},
       false,
       120},
      {"ready, cancelled",
       {H_READY, CANCELLED("late", 0), END},
       {ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_READY,
        ORDER_STATUS_CANCELLED},
       true,
       0},
      {"items changed, placed throughout",
       {PLACED, ADDED(L3), REMOVED("sku-1"), END},
       {ORDER_STATUS_PLACED, ORDER_STATUS_PLACED, ORDER_STATUS_PLACED},
       false,
       0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].name);
    esc_scenario *s = esc_scenario_new(order_decider());
    const order_state *st = esc_scenario_state(s);
    assert_status(st, ORDER_NONE);
    for (size_t j = 0; cases[i].events[j].type; j++) {
      esc_given(s, cases[i].events[j].type, &cases[i].events[j].u);
      assert_status(st, cases[i].status[j]);
    }
    assert_int_equal(st->reserved, cases[i].reserved);
    assert_int_equal(st->paid, cases[i].paid);
    esc_scenario_free(s);
  }
}

/* Lines and total follow placing, adding, removing and confirming. */
static void test_state_lines(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(order_decider());
  const order_state *st = esc_scenario_state(s);
  given_events(s, (const any_event[]){PLACED, END});
  assert_string_equal(st->customer, "c-1");
  assert_string_equal(st->currency, "EUR");
  assert_int_equal(st->line_count, 2);
  assert_int_equal(st->total, 120);
  given_events(s, (const any_event[]){ADDED(L3), END});
  assert_int_equal(st->line_count, 3);
  assert_string_equal(st->lines[2].sku, "sku-3");
  assert_int_equal(st->total, 135);
  given_events(s, (const any_event[]){REMOVED("sku-1"), END});
  assert_int_equal(st->line_count, 2);
  assert_string_equal(st->lines[0].sku, "sku-2");
  assert_string_equal(st->lines[1].sku, "sku-3");
  assert_int_equal(st->total, 115);
  /* An unknown sku removes nothing. */
  given_events(s, (const any_event[]){REMOVED("sku-9"), END});
  assert_int_equal(st->line_count, 2);
  /* ItemAdded of a sku on the order (never decided so) merges. */
  given_events(s, (const any_event[]){ADDED({"sku-2", 2, 50}), END});
  assert_int_equal(st->line_count, 2);
  assert_int_equal(st->lines[0].qty, 3);
  assert_int_equal(st->total, 165);
  esc_when(s, &(order_cmd)CONFIRM);
  esc_then(s, &ORDER_CONFIRMED,
           &(order_confirmed){{{"sku-2", 3, 50}, L3}, 2, 165});
  esc_then_end(s);
  esc_scenario_free(s);
}

/* Placed, paid, shipped: one command at a time, folding what was decided. */
static void test_lifecycle(void **state) {
  (void)state;
  static const struct {
    order_cmd cmd;
    any_event emits;
    order_status status;
  } steps[] = {
      {PLACE("c-1", LINES, 2), PLACED, ORDER_STATUS_PLACED},
      {ADD("sku-3", 3, 5), ADDED(L3), ORDER_STATUS_PLACED},
      {REMOVE("sku-3"), REMOVED("sku-3"), ORDER_STATUS_PLACED},
      {CONFIRM, CONFIRMED, ORDER_STATUS_CONFIRMED},
      {MARK_READY, READY, ORDER_STATUS_READY},
      {PAY(120), PAID(120), ORDER_STATUS_PAID},
      {SHIP("dhl"), SHIPPED("dhl"), ORDER_STATUS_SHIPPED},
  };
  esc_scenario *s = esc_scenario_new(order_decider());
  const order_state *st = esc_scenario_state(s);
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    esc_when(s, &steps[i].cmd);
    esc_then(s, steps[i].emits.type, &steps[i].emits.u);
    esc_then_end(s);
    esc_given(s, steps[i].emits.type, &steps[i].emits.u);
    assert_status(st, steps[i].status);
  }
  esc_when(s, &(order_cmd)CANCEL("too late"));
  esc_then_rejected(s, ORDER_ESHIPPED, "shipped already");
  esc_scenario_free(s);
}

static void test_status_names(void **state) {
  (void)state;
  static const struct {
    order_status status;
    const char *name;
  } names[] = {
      {ORDER_NONE, ""},
      {ORDER_STATUS_PLACED, "placed"},
      {ORDER_STATUS_CONFIRMED, "confirmed"},
      {ORDER_STATUS_READY, "ready"},
      {ORDER_STATUS_PAID, "paid"},
      {ORDER_STATUS_SHIPPED, "shipped"},
      {ORDER_STATUS_CANCELLED, "cancelled"},
      {(order_status)42, ""},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    assert_string_equal(order_status_name(names[i].status), names[i].name);
}

/* ------------------------------------------------------------------------
 * Schema evolution: OrderPlaced v1 {customer, lines} reads as v2
 * ------------------------------------------------------------------------ */

#define V1_LINES                                                               \
  "[{\"sku\":\"sku-1\",\"qty\":2,\"price\":10},"                               \
  "{\"sku\":\"sku-2\",\"qty\":1,\"price\":100}]"

static void test_upcast_json(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(order_decider());
  const order_state *st = esc_scenario_state(s);
  esc_given_json(s, "OrderPlaced", 1,
                 "{\"customer\":\"c-1\",\"lines\":" V1_LINES "}");
  assert_status(st, ORDER_STATUS_PLACED);
  assert_string_equal(st->customer, "c-1");
  assert_string_equal(st->currency, "EUR");
  assert_int_equal(st->line_count, 2);
  assert_string_equal(st->lines[1].sku, "sku-2");
  assert_int_equal(st->total, 120);
  /* The upcast order is what decide sees. */
  esc_when(s, &(order_cmd)CONFIRM);
  esc_then(s, &ORDER_CONFIRMED, &(order_confirmed){{L1, L2}, 2, 120});
  esc_then_end(s);
  esc_given(s, &ORDER_CONFIRMED, &(order_confirmed){{L1, L2}, 2, 120});
  esc_when(s, &(order_cmd)PAY(100));
  esc_then_rejected(s, ORDER_EAMOUNT,
                    "payment 100 does not match the total 120");
  esc_scenario_free(s);
}

static void test_upcast_stored(void **state) {
  (void)state;
  /* {"customer": "c-7", "lines": [{"sku": "sku-1", "qty": 4, "price": 25}]}
   * as a v1 writer packed it. */
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  esc_pack_key(&pk, "customer");
  esc_pack_str(&pk, "c-7");
  esc_pack_key(&pk, "lines");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_map(&pk, 3);
  esc_pack_key(&pk, "sku");
  esc_pack_str(&pk, "sku-1");
  esc_pack_key(&pk, "qty");
  msgpack_pack_int64(&pk, 4);
  esc_pack_key(&pk, "price");
  msgpack_pack_int64(&pk, 25);

  esc_scenario *s = esc_scenario_new(order_decider());
  const order_state *st = esc_scenario_state(s);
  esc_given_stored(s, "OrderPlaced", 1, sbuf.data, sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  assert_string_equal(st->customer, "c-7");
  assert_string_equal(st->currency, "EUR");
  assert_int_equal(st->total, 100);
  esc_scenario_free(s);

  /* The current version needs no upcasting; a v1 payload that names a
   * currency keeps it. */
  static const struct {
    int32_t version;
    const char *json;
    const char *currency;
  } cases[] = {
      {2, "{\"customer\":\"c-1\",\"currency\":\"CHF\",\"lines\":[]}", "CHF"},
      {1, "{\"customer\":\"c-1\",\"currency\":\"GBP\",\"lines\":[]}", "GBP"},
      {1, "{\"lines\":[],\"customer\":\"c-1\"}", "EUR"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    s = esc_scenario_new(order_decider());
    st = esc_scenario_state(s);
    esc_given_json(s, "OrderPlaced", cases[i].version, cases[i].json);
    assert_string_equal(st->currency, cases[i].currency);
    assert_int_equal(st->line_count, 0);
    esc_scenario_free(s);
  }
}

/* ------------------------------------------------------------------------
 * Decoding untrusted payloads: each failure names the event and field
 * ------------------------------------------------------------------------ */

static void test_decode_errors(void **state) {
  (void)state;
  static const struct {
    const char *type;
    int32_t version;
    const char *json;
    const char *msg;
  } cases[] = {
      {"OrderPlaced", 1, "[1]",
       "upcasting OrderPlaced from v1 to v2: the payload is not a map"},
      {"OrderPlaced", 3, "{}", "was written by a newer program"},
      {"OrderPlaced", 2, "{\"customer\":\"c-1\",\"lines\":[]}",
       "OrderPlaced: \"currency\" must be a string of at most 3 bytes"},
      {"OrderPlaced", 1,
       "{\"customer\":\"c-1\",\"lines\":[],"
       "\"currency\":\"EURO\"}",
       "OrderPlaced: \"currency\" must be a string of at most 3 bytes"},
      {"OrderPlaced", 1, "{\"lines\":[]}",
       "OrderPlaced: \"customer\" must be a string of at most 63 bytes"},
      {"OrderPlaced", 1,
       "{\"customer\":\"0123456789012345678901234567890123456789012345678901"
       "234567890123\",\"lines\":[]}",
       "OrderPlaced: \"customer\" must be a string of at most 63 bytes"},
      {"OrderPlaced", 1, "{\"customer\":\"c\\u0000d\",\"lines\":[]}",
       "\"customer\" must be a string"},
      {"OrderPlaced", 1, "{\"customer\":\"c-1\"}",
       "OrderPlaced: \"lines\" must be an array"},
      {"OrderPlaced", 1, "{\"customer\":\"c-1\",\"lines\":{}}",
       "OrderPlaced: \"lines\" must be an array"},
      {"OrderPlaced", 1,
       "{\"customer\":\"c-1\",\"lines\":[{},{},{},{},{},{},{},{},{},{},{},{},"
       "{},{},{},{},{}]}",
       "OrderPlaced: \"lines\" must be an array of at most 16 items but has 17 "
       "items"},
      {"OrderPlaced", 1, "{\"customer\":\"c-1\",\"lines\":[5]}",
       "OrderPlaced: \"lines\"[0] must be a map"},
      {"OrderPlaced", 1,
       "{\"customer\":\"c-1\",\"lines\":[{\"sku\":\"a\",\"qty\":1,"
       "\"price\":1},{\"sku\":\"0123456789012345678901234567890123\","
       "\"qty\":1,\"price\":1}]}",
       "OrderPlaced: \"lines\"[1].\"sku\" must be a string of at most 31 "
       "bytes"},
      {"OrderPlaced", 1,
       "{\"customer\":\"c-1\",\"lines\":[{\"sku\":\"a\",\"qty\":\"1\","
       "\"price\":1}]}",
       "OrderPlaced: \"lines\"[0].\"qty\" must be an integer"},
      {"OrderPlaced", 1,
       "{\"customer\":\"c-1\",\"lines\":[{\"sku\":\"a\",\"qty\":1,"
       "\"price\":1.5}]}",
       "OrderPlaced: \"lines\"[0].\"price\" must be an integer"},
      {"ItemAdded", 1, "{\"sku\":\"a\",\"qty\":1}",
       "ItemAdded: \"price\" must be an integer"},
      {"ItemAdded", 1, "{\"sku\":7,\"qty\":1,\"price\":1}",
       "ItemAdded: \"sku\" must be a string of at most 31 bytes"},
      {"ItemRemoved", 1, "{}", "ItemRemoved: \"sku\" must be a string"},
      {"OrderConfirmed", 1, "{\"lines\":[]}",
       "OrderConfirmed: \"total\" must be an integer"},
      {"OrderConfirmed", 1, "{\"lines\":[{\"qty\":1,\"price\":1}],\"total\":1}",
       "OrderConfirmed: \"lines\"[0].\"sku\" must be a string"},
      {"OrderReady", 1, "[]", "OrderReady: the payload is not a map"},
      {"PaymentReceived", 1, "{\"amount\":\"120\"}",
       "PaymentReceived: \"amount\" must be an integer"},
      {"OrderShipped", 1, "{\"lines\":[]}",
       "OrderShipped: \"carrier\" must be a string of at most 31 bytes"},
      {"OrderShipped", 1, "{\"carrier\":\"dhl\"}",
       "OrderShipped: \"lines\" must be an array"},
      {"OrderCancelled", 1, "{\"reason\":\"x\"}",
       "OrderCancelled: \"refund\" must be an integer"},
      {"OrderCancelled", 1, "{\"reason\":null,\"refund\":0}",
       "OrderCancelled: \"reason\" must be a string of at most 95 bytes"},
      {"StockAdded", 1, "{\"qty\":true}",
       "StockAdded: \"qty\" must be an integer"},
      {"StockReserved", 1, "{\"qty\":1}",
       "StockReserved: \"order\" must be a string of at most 63 bytes"},
      {"StockReleased", 1, "{\"order\":\"order-1\"}",
       "StockReleased: \"qty\" must be an integer"},
      {"StockReleased", 2, "{\"order\":\"order-1\",\"qty\":1}",
       "was written by a newer program"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s %s\n", cases[i].type, cases[i].json);
    esc_scenario *s = esc_scenario_new(order_decider());
    char *msg = esc__scenario_given_json(s, cases[i].type, cases[i].version,
                                         cases[i].json);
    assert_has(msg, cases[i].msg);
    free(msg);
    assert_status(esc_scenario_state(s), ORDER_NONE);
    esc_scenario_free(s);
  }
}

/* ------------------------------------------------------------------------
 * Codecs: the wire format others read, round trips, encode failures
 * ------------------------------------------------------------------------ */

static void test_codec_format(void **state) {
  (void)state;
  static const struct {
    any_event event;
    const char *json;
  } cases[] = {
      {PLACED, "{\"customer\":\"c-1\",\"currency\":\"EUR\",\"lines\":[{\"sku\":"
               "\"sku-1\",\"qty\":2,\"price\":10},{\"sku\":\"sku-2\",\"qty\":1,"
               "\"price\":100}]}"},
      {ADDED(L3), "{\"sku\":\"sku-3\",\"qty\":3,\"price\":5}"},
      {REMOVED("sku-1"), "{\"sku\":\"sku-1\"}"},
      {CONFIRMED,
       "{\"lines\":[{\"sku\":\"sku-1\",\"qty\":2,\"price\":10},{\"sku\":"
       "\"sku-2\",\"qty\":1,\"price\":100}],\"total\":120}"},
      {READY, "{}"},
      {PAID(120), "{\"amount\":120}"},
      {{&ORDER_SHIPPED, {.shipped = {"dhl", {L3}, 1}}},
       "{\"carrier\":\"dhl\",\"lines\":[{\"sku\":\"sku-3\",\"qty\":3,"
       "\"price\":5}]}"},
      {CANCELLED("fraud", 120), "{\"reason\":\"fraud\",\"refund\":120}"},
      {STOCKED(10), "{\"qty\":10}"},
      {RESERVED("order-1", 3), "{\"order\":\"order-1\",\"qty\":3}"},
      {RELEASED("order-1", 2), "{\"order\":\"order-1\",\"qty\":2}"},
      {{&ORDER_CONFIRMED, {.confirmed = {{{"sku-1", 1, 0}}, 0, 0}}},
       "{\"lines\":[],\"total\":0}"},
      {{&ORDER_PAID, {.paid = {INT64_MIN}}},
       "{\"amount\":-9223372036854775808}"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const any_event *ev = &cases[i].event;
    esc_error err = ESC_ERROR_INIT;
    void *data = NULL;
    size_t len = 0;
    char *json = NULL;
    print_message("case: %s\n", ev->type->name);
    assert_int_equal(esc_event_encode(ev->type, &ev->u, &data, &len, &err),
                     ESC_OK);
    assert_int_equal(esc_msgpack_to_json(data, len, NULL, &json, &err), ESC_OK);
    assert_string_equal(json, cases[i].json);
    free(json);

    /* decode, then encode again: the same bytes */
    msgpack_zone zone;
    msgpack_object obj;
    any_event back;
    void *again = NULL;
    size_t again_len = 0;
    assert_true(msgpack_zone_init(&zone, 1024));
    assert_int_equal(msgpack_unpack(data, len, NULL, &zone, &obj),
                     MSGPACK_UNPACK_SUCCESS);
    memset(&back, 0, sizeof back);
    assert_int_equal(ev->type->decode(&obj, &back.u, &err), ESC_OK);
    msgpack_zone_destroy(&zone);
    assert_int_equal(
        esc_event_encode(ev->type, &back.u, &again, &again_len, &err), ESC_OK);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, data, len);
    free(again);
    free(data);
  }
}

/* Structs no decoder could have produced do not encode: too many lines,
 * a negative count, strings not terminated inside their arrays. */
static void test_codec_encode_errors(void **state) {
  (void)state;
  order_placed placed = {.customer = "c-1", .currency = "EUR"};
  order_placed placed_currency = {.customer = "c-1", .line_count = 0};
  order_confirmed confirmed = {.line_count = -1};
  order_shipped shipped = {.carrier = "dhl", .line_count = 1};
  stock_reserved reserved = {.qty = 1};
  placed.line_count = ORDER_MAX_LINES + 1;
  memcpy(placed_currency.currency, "EURO", 4);
  memset(shipped.lines[0].sku, 'x', sizeof shipped.lines[0].sku);
  memset(reserved.order, 'o', sizeof reserved.order);
  const struct {
    const esc_event_type *type;
    const void *event;
  } cases[] = {{&ORDER_PLACED, &placed},
               {&ORDER_PLACED, &placed_currency},
               {&ORDER_CONFIRMED, &confirmed},
               {&ORDER_SHIPPED, &shipped},
               {&STOCK_RESERVED, &reserved}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(
        esc_event_encode(cases[i].type, cases[i].event, &data, &len, &err),
        ESC_EINVAL);
    assert_null(data);
  }
}

/* An integer beyond int64 (which JSON input cannot express) is refused. */
static void test_decode_uint64(void **state) {
  (void)state;
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  esc_pack_key(&pk, "amount");
  msgpack_pack_uint64(&pk, UINT64_MAX);
  esc_scenario *s = esc_scenario_new(order_decider());
  char *msg =
      esc__scenario_given_stored(s, "PaymentReceived", 1, sbuf.data, sbuf.size);
  msgpack_sbuffer_destroy(&sbuf);
  assert_has(msg, "PaymentReceived: \"amount\" must be an integer");
  free(msg);
  esc_scenario_free(s);
}

static void test_registry(void **state) {
  (void)state;
  static const struct {
    const esc_event_type *type;
    const char *name;
    int32_t version;
  } types[] = {
      {&ORDER_PLACED, "OrderPlaced", 2},
      {&ORDER_ITEM_ADDED, "ItemAdded", 1},
      {&ORDER_ITEM_REMOVED, "ItemRemoved", 1},
      {&ORDER_CONFIRMED, "OrderConfirmed", 1},
      {&ORDER_READY, "OrderReady", 1},
      {&ORDER_PAID, "PaymentReceived", 1},
      {&ORDER_SHIPPED, "OrderShipped", 1},
      {&ORDER_CANCELLED, "OrderCancelled", 1},
      {&STOCK_ADDED, "StockAdded", 1},
      {&STOCK_RESERVED, "StockReserved", 1},
      {&STOCK_RELEASED, "StockReleased", 1},
  };
  const esc_event_registry *reg = order_events();
  assert_non_null(reg);
  assert_ptr_equal(reg, order_events());
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    assert_string_equal(types[i].type->name, types[i].name);
    assert_int_equal(types[i].type->schema_version, types[i].version);
    assert_ptr_equal(esc_event_registry_find(reg, types[i].name),
                     types[i].type);
    assert_int_equal(types[i].type->upcast != NULL, types[i].version > 1);
  }

  const esc_decider *o = order_decider();
  assert_ptr_equal(o, order_decider());
  assert_string_equal(o->category, "order");
  assert_ptr_equal(esc_decider_events(o), reg); /* by o->registry */
  assert_int_equal(o->state_size, sizeof(order_state));
  assert_int_equal(o->snapshot_every, 50);
  assert_int_equal(o->state_version, 1);
  assert_non_null(o->encode_state);
  assert_non_null(o->decode_state);

  const esc_decider *inv = inventory_decider();
  assert_ptr_equal(inv, inventory_decider());
  assert_string_equal(inv->category, "inventory");
  assert_ptr_equal(esc_decider_events(inv), reg);
  assert_int_equal(inv->state_size, sizeof(inventory_state));
}

/* ------------------------------------------------------------------------
 * Order snapshots: encode_state -> decode_state gives an equal state
 * ------------------------------------------------------------------------ */

static void assert_state_equal(const order_state *a, const order_state *b) {
  assert_int_equal(a->status, b->status);
  assert_string_equal(a->customer, b->customer);
  assert_string_equal(a->currency, b->currency);
  assert_int_equal(a->line_count, b->line_count);
  for (int i = 0; i < a->line_count; i++) {
    assert_string_equal(a->lines[i].sku, b->lines[i].sku);
    assert_int_equal(a->lines[i].qty, b->lines[i].qty);
    assert_int_equal(a->lines[i].price, b->lines[i].price);
  }
  assert_int_equal(a->total, b->total);
  assert_int_equal(a->reserved, b->reserved);
  assert_int_equal(a->paid, b->paid);
  assert_int_equal(a->refunded, b->refunded);
}

/* Packs state with the decider's encode_state; sbuf is the caller's. */
static void encode_state(const order_state *st, msgpack_sbuffer *sbuf) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sbuf);
  msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
  assert_int_equal(order_decider()->encode_state(st, &pk), 0);
}

/* Unpacks data and runs decode_state on it into *out. */
static esc_status decode_state(const void *data, size_t len, order_state *out,
                               esc_error *err) {
  msgpack_zone zone;
  msgpack_object obj;
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(msgpack_unpack(data, len, NULL, &zone, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  esc_status st = order_decider()->decode_state(&obj, out, err);
  msgpack_zone_destroy(&zone);
  return st;
}

static void test_snapshot_roundtrip(void **state) {
  (void)state;
  static const struct {
    const char *name;
    any_event events[8];
  } cases[] = {
      {"never placed", {END}},
      {"placed", {H_PLACED, END}},
      {"lines changed", {PLACED, ADDED(L3), REMOVED("sku-1"), END}},
      {"ready", {H_READY, END}},
      {"paid, then ready", {H_PAID_READY, END}},
      {"shipped", {H_SHIPPED, END}},
      {"cancelled with a refund", {H_PAID, CANCELLED("fraud", 120), END}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].name);
    esc_scenario *s = esc_scenario_new(order_decider());
    given_events(s, cases[i].events);
    const order_state *st = esc_scenario_state(s);
    msgpack_sbuffer sbuf;
    encode_state(st, &sbuf);
    order_state back;
    esc_error err = ESC_ERROR_INIT;
    memset(&back, 0x5a, sizeof back); /* decode_state must set everything */
    assert_int_equal(decode_state(sbuf.data, sbuf.size, &back, &err), ESC_OK);
    assert_state_equal(&back, st);
    msgpack_sbuffer_destroy(&sbuf);
    esc_scenario_free(s);
  }

  /* Full: sixteen lines and strings at their longest. */
  order_state full;
  memset(&full, 0, sizeof full);
  full.status = ORDER_STATUS_PAID;
  memset(full.customer, 'c', sizeof full.customer - 1);
  memcpy(full.currency, "EUR", 4);
  for (int i = 0; i < ORDER_MAX_LINES; i++) {
    memset(full.lines[i].sku, 'a' + i, sizeof full.lines[i].sku - 1);
    full.lines[i].qty = INT64_MAX - i;
    full.lines[i].price = i;
  }
  full.line_count = ORDER_MAX_LINES;
  full.total = INT64_MAX;
  full.reserved = true;
  full.paid = INT64_MIN;
  full.refunded = INT64_MAX;
  msgpack_sbuffer sbuf;
  encode_state(&full, &sbuf);
  order_state back;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(decode_state(sbuf.data, sbuf.size, &back, &err), ESC_OK);
  assert_state_equal(&back, &full);
  msgpack_sbuffer_destroy(&sbuf);

  /* A state that could not have been folded does not encode. */
  full.line_count = ORDER_MAX_LINES + 1;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  assert_int_equal(order_decider()->encode_state(&full, &pk), -1);
  msgpack_sbuffer_destroy(&sbuf);
}

/* A snapshot that fails to decode leaves the state alone and says why (the
 * runtime then replays the stream). */
static void test_snapshot_decode_errors(void **state) {
  (void)state;
#define GOOD_TAIL "\"total\":0,\"reserved\":false,\"paid\":0"
  static const struct {
    const char *json;
    const char *msg;
  } cases[] = {
      {"[]", "\"status\" must be an integer from 0 to 6"},
      {"{\"status\":7,\"customer\":\"\",\"currency\":\"\",\"lines\":[]"
       "," GOOD_TAIL "}",
       "\"status\" must be an integer from 0 to 6"},
      {"{\"status\":-1}", "\"status\" must be an integer from 0 to 6"},
      {"{\"status\":1,\"currency\":\"EUR\",\"lines\":[]," GOOD_TAIL "}",
       "\"customer\" must be a string of at most 63 bytes"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EURO\",\"lines\":[]"
       "," GOOD_TAIL "}",
       "\"currency\" must be a string of at most 3 bytes"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EUR\",\"lines\":"
       "[{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}]," GOOD_TAIL "}",
       "\"lines\" must be an array of at most 16 lines"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EUR\",\"lines\":"
       "[{\"sku\":\"a\",\"qty\":1}]," GOOD_TAIL "}",
       "\"lines\"[0] must be a map of sku"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EUR\",\"lines\":[],"
       "\"reserved\":false,\"paid\":0}",
       "\"total\" must be an integer"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EUR\",\"lines\":[],"
       "\"total\":0,\"reserved\":1,\"paid\":0}",
       "\"reserved\" must be a boolean"},
      {"{\"status\":1,\"customer\":\"c\",\"currency\":\"EUR\",\"lines\":[],"
       "\"total\":0,\"reserved\":true}",
       "\"paid\" must be an integer"},
  };
#undef GOOD_TAIL
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].json);
    esc_error err = ESC_ERROR_INIT;
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(esc_json_to_msgpack(cases[i].json, &data, &len, &err),
                     ESC_OK);
    order_state st, before;
    memset(&st, 0x33, sizeof st);
    memcpy(&before, &st, sizeof st);
    assert_int_equal(decode_state(data, len, &st, &err), ESC_EINVAL);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_has(err.msg, "order snapshot: ");
    assert_has(err.msg, cases[i].msg);
    assert_memory_equal(&st, &before, sizeof st);
    free(data);
  }
}

/* ------------------------------------------------------------------------
 * Inventory
 * ------------------------------------------------------------------------ */

static void test_inventory_table(void **state) {
  (void)state;
  static const inventory_case cases[] = {
      /* stock in */
      {"stock in", {END}, STOCK_IN(10), EMITS(STOCKED(10))},
      {"stock in more",
       {STOCKED(10), RESERVED("order-1", 10), END},
       STOCK_IN(5),
       EMITS(STOCKED(5))},
      {"stock in nothing",
       {END},
       STOCK_IN(0),
       REJECTS(INVENTORY_EINVAL, "cannot stock in: quantity must be "
                                 "positive, got 0")},
      {"stock in a negative quantity",
       {STOCKED(10), END},
       STOCK_IN(-3),
       REJECTS(INVENTORY_EINVAL, "got -3")},
      {"stock in past INT64_MAX",
       {STOCKED(INT64_MAX - 5), RESERVED("order-1", 5), END},
       STOCK_IN(6),
       REJECTS(INVENTORY_EINVAL, "cannot stock in 6 units: the count would "
                                 "overflow")},
      {"stock in up to INT64_MAX",
       {STOCKED(INT64_MAX - 5), RESERVED("order-1", 5), END},
       STOCK_IN(5),
       EMITS(STOCKED(5))},
      /* reserve */
      {"reserve",
       {STOCKED(10), END},
       RESERVE("order-1", 3),
       EMITS(RESERVED("order-1", 3))},
      {"reserve everything",
       {STOCKED(10), RESERVED("order-1", 3), END},
       RESERVE("order-2", 7),
       EMITS(RESERVED("order-2", 7))},
      {"reserve more than available",
       {STOCKED(10), RESERVED("order-1", 7), END},
       RESERVE("order-2", 5),
       REJECTS(INVENTORY_ESHORT, "only 3 available, 5 asked")},
      {"reserve with no stock",
       {END},
       RESERVE("order-1", 1),
       REJECTS(INVENTORY_ESHORT, "only 0 available, 1 asked")},
      {"reserve released stock",
       {STOCKED(2), RESERVED("order-1", 2), RELEASED("order-1", 2), END},
       RESERVE("order-2", 2),
       EMITS(RESERVED("order-2", 2))},
      {"reserve nothing",
       {STOCKED(10), END},
       RESERVE("order-1", 0),
       REJECTS(INVENTORY_EINVAL, "cannot reserve: quantity must be positive, "
                                 "got 0")},
      {"reserve for no order",
       {STOCKED(10), END},
       RESERVE(NULL, 1),
       REJECTS(INVENTORY_EINVAL, "cannot reserve: the order id must be 1 to "
                                 "63 bytes, got 0")},
      {"reserve for an empty order id",
       {STOCKED(10), END},
       RESERVE("", 1),
       REJECTS(INVENTORY_EINVAL, "the order id must be 1 to 63 bytes, got 0")},
      {"reserve for a long order id",
       {STOCKED(10), END},
       RESERVE(long_order, 1),
       REJECTS(INVENTORY_EINVAL, "the order id must be 1 to 63 bytes, "
                                 "got 64")},
      /* release */
      {"release",
       {STOCKED(10), RESERVED("order-1", 3), END},
       RELEASE("order-1", 2),
       EMITS(RELEASED("order-1", 2))},
      {"release everything",
       {STOCKED(10), RESERVED("order-1", 3), RESERVED("order-2", 4), END},
       RELEASE("order-2", 7),
       EMITS(RELEASED("order-2", 7))},
      {"release more than reserved",
       {STOCKED(10), RESERVED("order-1", 3), END},
       RELEASE("order-1", 4),
       REJECTS(INVENTORY_ERELEASE, "only 3 reserved, 4 asked to release")},
      {"release with nothing reserved",
       {STOCKED(10), END},
       RELEASE("order-1", 1),
       REJECTS(INVENTORY_ERELEASE, "only 0 reserved, 1 asked to release")},
      {"release nothing",
       {STOCKED(10), RESERVED("order-1", 3), END},
       RELEASE("order-1", -1),
       REJECTS(INVENTORY_EINVAL, "cannot release: quantity must be "
                                 "positive, got -1")},
      {"release for no order",
       {STOCKED(10), RESERVED("order-1", 3), END},
       RELEASE(NULL, 1),
       REJECTS(INVENTORY_EINVAL, "cannot release: the order id must be")},
      /* neither */
      {"an unknown command",
       {END},
       {.kind = (inventory_cmd_kind)7, .qty = 1},
       REJECTS(INVENTORY_EINVAL, "unknown command kind 7")},
  };
  run_inventory_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_inventory_state(void **state) {
  (void)state;
  static const struct {
    const char *name;
    any_event events[6];
    int64_t available, reserved;
  } cases[] = {
      {"nothing", {END}, 0, 0},
      {"stocked", {STOCKED(10), STOCKED(5), END}, 15, 0},
      {"reserved", {STOCKED(10), RESERVED("o-1", 4), END}, 6, 4},
      {"released",
       {STOCKED(10), RESERVED("o-1", 4), RELEASED("o-1", 3), END},
       9,
       1},
      /* Never below zero, whatever a hand-written log says. */
      {"reserved beyond stock", {STOCKED(2), RESERVED("o-1", 5), END}, 0, 5},
      {"released beyond reserved",
       {STOCKED(2), RESERVED("o-1", 1), RELEASED("o-1", 3), END},
       4,
       0},
      {"negative stock", {STOCKED(2), STOCKED(-5), END}, 0, 0},
      /* Saturating, not wrapping: 2 - INT64_MIN is "a lot". */
      {"INT64_MIN",
       {STOCKED(2), RESERVED("o-1", INT64_MIN), END},
       INT64_MAX,
       0},
      {"overflow", {STOCKED(INT64_MAX), STOCKED(1), END}, INT64_MAX, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].name);
    esc_scenario *s = esc_scenario_new(inventory_decider());
    given_events(s, cases[i].events);
    const inventory_state *st = esc_scenario_state(s);
    assert_int_equal(st->available, cases[i].available);
    assert_int_equal(st->reserved, cases[i].reserved);
    esc_scenario_free(s);
  }
}

/* A long run of random commands against a model: decide accepts exactly
 * what the model allows, and the counts never go below zero. */
static void test_inventory_never_negative(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(inventory_decider());
  const inventory_state *st = esc_scenario_state(s);
  int64_t available = 0, reserved = 0, stocked = 0;
  unsigned seed = 12345;
  for (int i = 0; i < 400; i++) {
    seed = seed * 1103515245u + 12345u;
    inventory_cmd_kind kind = (inventory_cmd_kind)((seed >> 16) % 3);
    int64_t qty = (int64_t)((seed >> 8) % 7); /* 0..6: 0 is refused */
    inventory_cmd cmd = {.kind = kind, .qty = qty, .order = "order-1"};
    esc_when(s, &cmd);
    if (qty == 0) {
      esc_then_rejected(s, INVENTORY_EINVAL, "quantity must be positive");
    } else if (kind == INVENTORY_STOCK_IN) {
      esc_then(s, &STOCK_ADDED, &(stock_added){qty});
      esc_given(s, &STOCK_ADDED, &(stock_added){qty});
      available += qty;
      stocked += qty;
    } else if (kind == INVENTORY_RESERVE && qty > available) {
      esc_then_rejected(s, INVENTORY_ESHORT, " available, ");
    } else if (kind == INVENTORY_RESERVE) {
      stock_reserved e = {"order-1", qty};
      esc_then(s, &STOCK_RESERVED, &e);
      esc_given(s, &STOCK_RESERVED, &e);
      available -= qty;
      reserved += qty;
    } else if (qty > reserved) {
      esc_then_rejected(s, INVENTORY_ERELEASE, " reserved, ");
    } else {
      stock_released e = {"order-1", qty};
      esc_then(s, &STOCK_RELEASED, &e);
      esc_given(s, &STOCK_RELEASED, &e);
      available += qty;
      reserved -= qty;
    }
    assert_int_equal(st->available, available);
    assert_int_equal(st->reserved, reserved);
    assert_true(st->available >= 0 && st->reserved >= 0);
    assert_int_equal(st->available + st->reserved, stocked);
  }
  esc_scenario_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_place),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_refund),
      cmocka_unit_test(test_items),
      cmocka_unit_test(test_confirm_and_ready),
      cmocka_unit_test(test_pay_ship_cancel),
      cmocka_unit_test(test_max_lines),
      cmocka_unit_test(test_string_max),
      cmocka_unit_test(test_status_transitions),
      cmocka_unit_test(test_state_lines),
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_status_names),
      cmocka_unit_test(test_upcast_json),
      cmocka_unit_test(test_upcast_stored),
      cmocka_unit_test(test_decode_errors),
      cmocka_unit_test(test_codec_format),
      cmocka_unit_test(test_codec_encode_errors),
      cmocka_unit_test(test_decode_uint64),
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_snapshot_roundtrip),
      cmocka_unit_test(test_snapshot_decode_errors),
      cmocka_unit_test(test_inventory_table),
      cmocka_unit_test(test_inventory_state),
      cmocka_unit_test(test_inventory_never_negative),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The order decider (see order.h): an order's state folded from its
 * events, the rules that decide commands, and a snapshot codec.
 *
 * Choices the header leaves open:
 *   - An order holds at most one line per sku. A PLACE that names a sku
 *     twice, and an ADD_ITEM of a sku already on the order, are rejected
 *     with ORDER_EINVAL (merging would have to pick one of two prices);
 *     to change a line, remove it and add it again.
 *   - A command on a cancelled order is ORDER_ECANCELLED whatever it is,
 *     PLACE included (a cancelled order exists, but "exists" would hide why
 *     nothing can be done with it). A command other than PLACE on an order
 *     never placed is ORDER_ENOTFOUND. Both are checked before anything
 *     else, so they win over every other error.
 *   - Confirming an order whose lines were all removed is ORDER_ESTATE.
 *   - Orders that cost nothing (every price 0) are paid with 0.
 *   - A line's qty * price and the order's total must fit in int64, else
 *     ORDER_EINVAL.
 *   - The carrier (SHIP) and the reason (CANCEL) may be NULL or empty;
 *     longer than their arrays allow (31 and 95 bytes) is ORDER_EINVAL.
 *
 * decide cannot name the order (it does not know the stream id), so its
 * messages describe the order: "cannot ship: the order is not paid".
 */
#include "order.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define ORDER_CURRENCY "EUR"

/* ------------------------------------------------------------------------
 * Lines
 * ------------------------------------------------------------------------ */

/* The index of sku among lines, or -1. */
static int find_line(const order_line *lines, int count, const char *sku) {
  for (int i = 0; i < count; i++)
    if (strcmp(lines[i].sku, sku) == 0)
      return i;
  return -1;
}

/* qty * price added to *total; false (and *total alone) on overflow. Only
 * meaningful for qty > 0 and price >= 0, which decide checks first. */
static bool add_amount(int64_t *total, int64_t qty, int64_t price) {
  if (price > 0 && qty > INT64_MAX / price)
    return false;
  int64_t amount = qty * price;
  if (*total > INT64_MAX - amount)
    return false;
  *total += amount;
  return true;
}

/* The sum of qty * price. Lines in the log were checked when decided;
 * anything odd a hand-written event might hold (a negative or overflowing
 * line) counts as 0 or saturates, rather than being undefined. */
static int64_t lines_total(const order_line *lines, int count) {
  int64_t total = 0;
  for (int i = 0; i < count; i++) {
    if (lines[i].qty <= 0 || lines[i].price < 0)
      continue;
    if (!add_amount(&total, lines[i].qty, lines[i].price))
      return INT64_MAX;
  }
  return total;
}

static void copy_lines(order_line *dst, int *dst_count, const order_line *src,
                       int src_count) {
  if (src_count < 0)
    src_count = 0;
  if (src_count > ORDER_MAX_LINES)
    src_count = ORDER_MAX_LINES;
  memcpy(dst, src, (size_t)src_count * sizeof *src);
  *dst_count = src_count;
}

/* ------------------------------------------------------------------------
 * Evolve
 * ------------------------------------------------------------------------ */

static void order_init(void *state) {
  (void)state; /* the runtime zeroes it: ORDER_NONE, no lines */
}

static void on_placed(order_state *s, const order_placed *e) {
  s->status = ORDER_STATUS_PLACED;
  snprintf(s->customer, sizeof s->customer, "%s", e->customer);
  snprintf(s->currency, sizeof s->currency, "%s", e->currency);
  copy_lines(s->lines, &s->line_count, e->lines, e->line_count);
  s->total = lines_total(s->lines, s->line_count);
}

/* decide never adds a sku twice; an older log that did is folded as a
 * merge (the newer price wins) so it still loads. */
static void on_item_added(order_state *s, const order_item_added *e) {
  int i = find_line(s->lines, s->line_count, e->line.sku);
  if (i >= 0) {
    s->lines[i].qty += e->line.qty;
    s->lines[i].price = e->line.price;
  } else if (s->line_count < ORDER_MAX_LINES) {
    s->lines[s->line_count++] = e->line;
  }
  s->total = lines_total(s->lines, s->line_count);
}

static void on_item_removed(order_state *s, const order_item_removed *e) {
  int i = find_line(s->lines, s->line_count, e->sku);
  if (i < 0)
    return;
  memmove(&s->lines[i], &s->lines[i + 1],
          (size_t)(s->line_count - i - 1) * sizeof s->lines[0]);
  s->line_count--;
  memset(&s->lines[s->line_count], 0, sizeof s->lines[0]);
  s->total = lines_total(s->lines, s->line_count);
}

/* The lines and total as confirmed are what the order now is. */
static void on_confirmed(order_state *s, const order_confirmed *e) {
  s->status = ORDER_STATUS_CONFIRMED;
  memset(s->lines, 0, sizeof s->lines);
  copy_lines(s->lines, &s->line_count, e->lines, e->line_count);
  s->total = e->total;
}

/* Ready only means something before payment: a paid order stays PAID,
 * reserved or not. */
static void on_ready(order_state *s) {
  s->reserved = true;
  if (s->status == ORDER_STATUS_CONFIRMED)
    s->status = ORDER_STATUS_READY;
}

/* Paid once (decide sees to that); summed anyway, saturating, since paid
 * is "the amount received". */
static void on_paid(order_state *s, const order_paid *e) {
  if (e->amount > 0 && s->paid > INT64_MAX - e->amount)
    s->paid = INT64_MAX;
  else if (e->amount < 0 && s->paid < INT64_MIN - e->amount)
    s->paid = INT64_MIN;
  else
    s->paid += e->amount;
  if (s->status < ORDER_STATUS_PAID)
    s->status = ORDER_STATUS_PAID;
}

static void order_evolve(void *state, const esc_event *event) {
  order_state *s = state;
  const esc_event_type *t = event->type;
  if (t == &ORDER_PLACED)
    on_placed(s, event->data);
  else if (t == &ORDER_ITEM_ADDED)
    on_item_added(s, event->data);
  else if (t == &ORDER_ITEM_REMOVED)
    on_item_removed(s, event->data);
  else if (t == &ORDER_CONFIRMED)
    on_confirmed(s, event->data);
  else if (t == &ORDER_READY)
    on_ready(s);
  else if (t == &ORDER_PAID)
    on_paid(s, event->data);
  else if (t == &ORDER_SHIPPED)
    s->status = ORDER_STATUS_SHIPPED;
  else if (t == &ORDER_CANCELLED)
    s->status = ORDER_STATUS_CANCELLED;
  else if (t == &ORDER_REFUNDED)
    s->refunded = ((const order_refunded *)event->data)->amount;
}

/* ------------------------------------------------------------------------
 * Decide: checks shared by the commands
 * ------------------------------------------------------------------------ */

/* What each command does, for messages: "cannot <verb>: ...". */
static const char *verb(order_cmd_kind kind) {
  switch (kind) {
  case ORDER_PLACE:
    return "place";
  case ORDER_ADD_ITEM:
    return "add an item";
  case ORDER_REMOVE_ITEM:
    return "remove an item";
  case ORDER_CONFIRM:
    return "confirm";
  case ORDER_MARK_READY:
    return "mark ready";
  case ORDER_PAY:
    return "pay";
  case ORDER_SHIP:
    return "ship";
  case ORDER_CANCEL:
    return "cancel";
  case ORDER_REFUND:
    return "refund";
  }
  return "act";
}

/* ORDER_ESTATE: "cannot <verb>: the order is <status>". */
static int reject_status(esc_decision *d, const order_state *s,
                         order_cmd_kind kind) {
  return esc_decision_reject(d, ORDER_ESTATE, "cannot %s: the order is %s",
                             verb(kind), order_status_name(s->status));
}

/* Rejects a sku that could not name its inventory stream; what names the
 * line in the message ("line 2"), or NULL. */
static int check_sku(const char *sku, const char *what, esc_decision *d) {
  esc_error err = ESC_ERROR_INIT;
  if (order_name_valid("sku", sku, ORDER_SKU_MAX, &err))
    return 0;
  if (what)
    return esc_decision_reject(d, ORDER_EINVAL, "%s: %s", what, err.msg);
  return esc_decision_reject(d, ORDER_EINVAL, "%s", err.msg);
}

/* Checks one line of a command; what names it in messages ("line 2"). */
static int check_line(const order_line *l, const char *what, esc_decision *d) {
  int rc = check_sku(l->sku, what, d);
  if (rc)
    return rc;
  if (l->qty <= 0)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "%s (%s): quantity must be positive, got "
                               "%" PRId64,
                               what, l->sku, l->qty);
  if (l->price < 0)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "%s (%s): price must not be negative, got "
                               "%" PRId64,
                               what, l->sku, l->price);
  return 0;
}

/* Copies an optional text of a command into buf (size bytes); rejects one
 * that does not fit. NULL is "". */
static int copy_text(char *buf, size_t size, const char *text, const char *what,
                     esc_decision *d) {
  size_t len = text ? strlen(text) : 0;
  if (len >= size)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "the %s must be at most %zu bytes, got %zu",
                               what, size - 1, len);
  if (len)
    memcpy(buf, text, len);
  buf[len] = '\0';
  return 0;
}

/* ------------------------------------------------------------------------
 * Decide: one function per command
 * ------------------------------------------------------------------------ */

static int check_place_lines(const order_cmd *c, order_placed *e,
                             esc_decision *d) {
  if (!c->lines || c->line_count < 1 || c->line_count > ORDER_MAX_LINES)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "an order needs 1 to %d lines, got %d",
                               ORDER_MAX_LINES, c->lines ? c->line_count : 0);
  int64_t total = 0;
  for (int i = 0; i < c->line_count; i++) {
    const order_line *l = &c->lines[i];
    char what[32];
    snprintf(what, sizeof what, "line %d", i + 1);
    int rc = check_line(l, what, d);
    if (rc)
      return rc;
    int dup = find_line(c->lines, i, l->sku);
    if (dup >= 0)
      return esc_decision_reject(d, ORDER_EINVAL,
                                 "line %d: %s is on line %d already; one line "
                                 "per sku",
                                 i + 1, l->sku, dup + 1);
    if (!add_amount(&total, l->qty, l->price))
      return esc_decision_reject(
          d, ORDER_EINVAL, "line %d (%s): the total overflows", i + 1, l->sku);
    e->lines[i] = *l;
  }
  e->line_count = c->line_count;
  return 0;
}

static int decide_place(const order_state *s, const order_cmd *c,
                        esc_decision *d) {
  order_placed e;
  if (s->status != ORDER_NONE)
    return esc_decision_reject(d, ORDER_EEXISTS,
                               "the order exists already (it is %s)",
                               order_status_name(s->status));
  esc_error err = ESC_ERROR_INIT;
  if (!order_name_valid("customer", c->customer, ORDER_CUSTOMER_MAX, &err))
    return esc_decision_reject(d, ORDER_EINVAL, "%s", err.msg);
  size_t len = strlen(c->customer);
  memset(&e, 0, sizeof e);
  int rc = check_place_lines(c, &e, d);
  if (rc)
    return rc;
  memcpy(e.customer, c->customer, len);
  memcpy(e.currency, ORDER_CURRENCY, sizeof ORDER_CURRENCY);
  esc_decision_emit(d, &ORDER_PLACED, &e);
  return 0;
}

static int decide_add_item(const order_state *s, const order_cmd *c,
                           esc_decision *d) {
  if (s->status != ORDER_STATUS_PLACED)
    return reject_status(d, s, c->kind);
  int rc = check_line(&c->line, "item", d);
  if (rc)
    return rc;
  if (find_line(s->lines, s->line_count, c->line.sku) >= 0)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "%s is on the order already; remove it to "
                               "change it",
                               c->line.sku);
  if (s->line_count >= ORDER_MAX_LINES)
    return esc_decision_reject(d, ORDER_EINVAL,
                               "the order has %d lines already, the most it "
                               "can hold",
                               ORDER_MAX_LINES);
  int64_t total = s->total;
  if (!add_amount(&total, c->line.qty, c->line.price))
    return esc_decision_reject(d, ORDER_EINVAL,
                               "item (%s): the total overflows", c->line.sku);
  order_item_added e;
  memset(&e, 0, sizeof e);
  e.line = c->line;
  esc_decision_emit(d, &ORDER_ITEM_ADDED, &e);
  return 0;
}

static int decide_remove_item(const order_state *s, const order_cmd *c,
                              esc_decision *d) {
  if (s->status != ORDER_STATUS_PLACED)
    return reject_status(d, s, c->kind);
  int rc = check_sku(c->line.sku, NULL, d);
  if (rc)
    return rc;
  if (find_line(s->lines, s->line_count, c->line.sku) < 0)
    return esc_decision_reject(d, ORDER_ENOLINE, "%s is not on the order",
                               c->line.sku);
  order_item_removed e;
  memset(&e, 0, sizeof e);
  memcpy(e.sku, c->line.sku, strlen(c->line.sku));
  esc_decision_emit(d, &ORDER_ITEM_REMOVED, &e);
  return 0;
}

static int decide_confirm(const order_state *s, const order_cmd *c,
                          esc_decision *d) {
  if (s->status != ORDER_STATUS_PLACED)
    return reject_status(d, s, c->kind);
  if (s->line_count < 1)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot confirm: the order has no lines");
  order_confirmed e;
  memset(&e, 0, sizeof e);
  copy_lines(e.lines, &e.line_count, s->lines, s->line_count);
  e.total = s->total;
  esc_decision_emit(d, &ORDER_CONFIRMED, &e);
  return 0;
}

static int decide_mark_ready(const order_state *s, const order_cmd *c,
                             esc_decision *d) {
  if (s->reserved)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot mark ready: the order is ready "
                               "already (stock is reserved)");
  if (s->status != ORDER_STATUS_CONFIRMED && s->status != ORDER_STATUS_PAID)
    return reject_status(d, s, c->kind);
  esc_decision_emit(d, &ORDER_READY, &(order_ready){0});
  return 0;
}

static int decide_pay(const order_state *s, const order_cmd *c,
                      esc_decision *d) {
  if (s->status == ORDER_STATUS_PAID || s->status == ORDER_STATUS_SHIPPED)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot pay: the order is paid already");
  if (s->status != ORDER_STATUS_CONFIRMED && s->status != ORDER_STATUS_READY)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot pay: the order is %s, not confirmed",
                               order_status_name(s->status));
  if (c->amount != s->total)
    return esc_decision_reject(d, ORDER_EAMOUNT,
                               "payment %" PRId64
                               " does not match the total %" PRId64,
                               c->amount, s->total);
  esc_decision_emit(d, &ORDER_PAID, &(order_paid){.amount = c->amount});
  return 0;
}

static int decide_ship(const order_state *s, const order_cmd *c,
                       esc_decision *d) {
  if (s->status == ORDER_STATUS_SHIPPED)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot ship: the order is shipped already");
  if (s->status != ORDER_STATUS_PAID)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot ship: the order is %s, not paid",
                               order_status_name(s->status));
  if (!s->reserved)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot ship: the order is paid but its stock "
                               "is not reserved yet");
  order_shipped e;
  memset(&e, 0, sizeof e);
  int rc = copy_text(e.carrier, sizeof e.carrier, c->carrier, "carrier", d);
  if (rc)
    return rc;
  copy_lines(e.lines, &e.line_count, s->lines, s->line_count);
  esc_decision_emit(d, &ORDER_SHIPPED, &e);
  return 0;
}

static int decide_cancel(const order_state *s, const order_cmd *c,
                         esc_decision *d) {
  if (s->status == ORDER_STATUS_SHIPPED)
    return esc_decision_reject(d, ORDER_ESHIPPED,
                               "cannot cancel: the order is shipped already");
  order_cancelled e;
  memset(&e, 0, sizeof e);
  int rc = copy_text(e.reason, sizeof e.reason, c->reason, "reason", d);
  if (rc)
    return rc;
  e.refund = s->paid;
  esc_decision_emit(d, &ORDER_CANCELLED, &e);
  return 0;
}

/* The money of a cancelled order goes back once, all of it: partial
 * refunds would need a reason per refund, which this domain does not
 * have. */
static int decide_refund(const order_state *s, const order_cmd *c,
                         esc_decision *d) {
  if (s->status != ORDER_STATUS_CANCELLED)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot refund: the order is %s, not cancelled",
                               order_status_name(s->status));
  if (s->refunded != 0)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot refund: %" PRId64 " was refunded "
                               "already",
                               s->refunded);
  if (s->paid <= 0)
    return esc_decision_reject(d, ORDER_ESTATE,
                               "cannot refund: nothing was paid");
  if (c->amount != s->paid)
    return esc_decision_reject(d, ORDER_EAMOUNT,
                               "refund %" PRId64
                               " does not match the amount paid %" PRId64,
                               c->amount, s->paid);
  esc_decision_emit(d, &ORDER_REFUNDED, &(order_refunded){.amount = c->amount});
  return 0;
}

static int order_decide(const void *state, const void *command,
                        esc_decision *d) {
  const order_state *s = state;
  const order_cmd *c = command;
  if (c->kind == ORDER_REFUND) /* the one command for a cancelled order */
    return s->status == ORDER_NONE
               ? esc_decision_reject(d, ORDER_ENOTFOUND,
                                     "cannot refund: the order was never "
                                     "placed")
               : decide_refund(s, c, d);
  if (s->status == ORDER_STATUS_CANCELLED)
    return esc_decision_reject(d, ORDER_ECANCELLED,
                               "cannot %s: the order is cancelled",
                               verb(c->kind));
  if (s->status == ORDER_NONE && c->kind != ORDER_PLACE)
    return esc_decision_reject(d, ORDER_ENOTFOUND,
                               "cannot %s: the order was never placed",
                               verb(c->kind));
  switch (c->kind) {
  case ORDER_PLACE:
    return decide_place(s, c, d);
  case ORDER_ADD_ITEM:
    return decide_add_item(s, c, d);
  case ORDER_REMOVE_ITEM:
    return decide_remove_item(s, c, d);
  case ORDER_CONFIRM:
    return decide_confirm(s, c, d);
  case ORDER_MARK_READY:
    return decide_mark_ready(s, c, d);
  case ORDER_PAY:
    return decide_pay(s, c, d);
  case ORDER_SHIP:
    return decide_ship(s, c, d);
  case ORDER_CANCEL:
    return decide_cancel(s, c, d);
  case ORDER_REFUND:
    return decide_refund(s, c, d);
  }
  return esc_decision_reject(d, ORDER_EINVAL, "unknown command kind %d",
                             (int)c->kind);
}

/* ------------------------------------------------------------------------
 * Snapshots: the whole state as one map
 *   {status, customer, currency, lines: [{sku, qty, price}], total,
 *    reserved, paid, refunded}
 * Bump state_version when this shape changes: older snapshots are then
 * ignored and the stream replayed.
 * ------------------------------------------------------------------------ */

#define ORDER_STATE_VERSION 1
#define ORDER_SNAPSHOT_EVERY 50

static int pack_fixed_str(msgpack_packer *pk, const char *s, size_t size) {
  if (strnlen(s, size) == size)
    return -1;
  esc_pack_str(pk, s);
  return 0;
}

int order_lines_pack(msgpack_packer *pk, const order_line *lines, int count) {
  if (count < 0 || count > ORDER_MAX_LINES)
    return -1;
  msgpack_pack_array(pk, (size_t)count);
  for (int i = 0; i < count; i++) {
    msgpack_pack_map(pk, 3);
    esc_pack_key(pk, "sku");
    if (pack_fixed_str(pk, lines[i].sku, sizeof lines[i].sku))
      return -1;
    esc_pack_key(pk, "qty");
    msgpack_pack_int64(pk, lines[i].qty);
    esc_pack_key(pk, "price");
    msgpack_pack_int64(pk, lines[i].price);
  }
  return 0;
}

static int encode_state(const void *state, msgpack_packer *pk) {
  const order_state *s = state;
  msgpack_pack_map(pk, 8);
  esc_pack_key(pk, "status");
  msgpack_pack_int(pk, (int)s->status);
  esc_pack_key(pk, "customer");
  if (pack_fixed_str(pk, s->customer, sizeof s->customer))
    return -1;
  esc_pack_key(pk, "currency");
  if (pack_fixed_str(pk, s->currency, sizeof s->currency))
    return -1;
  esc_pack_key(pk, "lines");
  if (order_lines_pack(pk, s->lines, s->line_count))
    return -1;
  esc_pack_key(pk, "total");
  msgpack_pack_int64(pk, s->total);
  esc_pack_key(pk, "reserved");
  if (s->reserved)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
  esc_pack_key(pk, "paid");
  msgpack_pack_int64(pk, s->paid);
  esc_pack_key(pk, "refunded");
  return msgpack_pack_int64(pk, s->refunded);
}

/* A string of key that fits buf (size bytes) and holds no NUL. */
static bool get_str(const msgpack_object *map, const char *key, char *buf,
                    size_t size) {
  const msgpack_object *v = esc_map_get(map, key);
  if (!v || v->type != MSGPACK_OBJECT_STR ||
      (v->via.str.size && memchr(v->via.str.ptr, '\0', v->via.str.size)))
    return false;
  return esc_map_str(map, key, buf, size);
}

esc_status order_lines_unpack(const msgpack_object *map, const char *what,
                              order_line *lines, int *count, esc_error *err) {
  const msgpack_object *v = esc_map_get(map, "lines");
  if (!v || v->type != MSGPACK_OBJECT_ARRAY ||
      v->via.array.size > ORDER_MAX_LINES)
    return esc_error_set(err, ESC_EINVAL,
                         "%s: \"lines\" must be an array of at most %d lines",
                         what, ORDER_MAX_LINES);
  for (uint32_t i = 0; i < v->via.array.size; i++) {
    const msgpack_object *o = &v->via.array.ptr[i];
    order_line *l = &lines[i];
    if (!get_str(o, "sku", l->sku, sizeof l->sku) ||
        !esc_map_i64(o, "qty", &l->qty) || !esc_map_i64(o, "price", &l->price))
      return esc_error_set(err, ESC_EINVAL,
                           "%s: \"lines\"[%" PRIu32
                           "] must be a map of sku (at most %d bytes), qty "
                           "and price",
                           what, i, ORDER_SKU_MAX - 1);
  }
  *count = (int)v->via.array.size;
  return ESC_OK;
}

/* Decodes into a copy, so state is untouched on failure. */
static esc_status decode_state(const msgpack_object *obj, void *state,
                               esc_error *err) {
  order_state s;
  int64_t status;
  memset(&s, 0, sizeof s);
  if (!esc_map_i64(obj, "status", &status) || status < ORDER_NONE ||
      status > ORDER_STATUS_CANCELLED)
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"status\" must be an integer from "
                         "%d to %d",
                         ORDER_NONE, ORDER_STATUS_CANCELLED);
  s.status = (order_status)status;
  if (!get_str(obj, "customer", s.customer, sizeof s.customer))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"customer\" must be a string of at "
                         "most %d bytes",
                         ORDER_CUSTOMER_MAX - 1);
  if (!get_str(obj, "currency", s.currency, sizeof s.currency))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"currency\" must be a string of at "
                         "most %zu bytes",
                         sizeof s.currency - 1);
  esc_status st =
      order_lines_unpack(obj, "order snapshot", s.lines, &s.line_count, err);
  if (st != ESC_OK)
    return st;
  if (!esc_map_i64(obj, "total", &s.total))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"total\" must be an integer");
  if (!esc_map_bool(obj, "reserved", &s.reserved))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"reserved\" must be a boolean");
  if (!esc_map_i64(obj, "paid", &s.paid))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"paid\" must be an integer");
  /* Absent from snapshots older than refunds, which had none. */
  if (esc_map_get(obj, "refunded") &&
      !esc_map_i64(obj, "refunded", &s.refunded))
    return esc_error_set(err, ESC_EINVAL,
                         "order snapshot: \"refunded\" must be an integer");
  memcpy(state, &s, sizeof s);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * The decider
 * ------------------------------------------------------------------------ */

ESC_DECIDER(order_decider, .category = "order", .registry = order_events,
            .state_size = sizeof(order_state), .init = order_init,
            .evolve = order_evolve, .decide = order_decide,
            .snapshot_every = ORDER_SNAPSHOT_EVERY,
            .state_version = ORDER_STATE_VERSION, .encode_state = encode_state,
            .decode_state = decode_state)

/*
 * The order domain's event types (see order.h), declared once as field
 * tables (<esc/event.h>): the codecs, the checks and the JSON come from
 * them. Also the OrderPlaced v1 -> v2 upcaster and the registry.
 *
 * RefundIssued {amount} came with the fulfillment process.
 *
 * Payloads are maps keyed by the field names in order.h, every field
 * required; lines are an array of {sku, qty, price} maps. Strings are
 * copied into the structs' fixed arrays, so a decoded event owns all its
 * bytes. The bytes are those of the hand-written codecs this replaced
 * (tests/unit/test_order_events.c keeps their output as fixtures).
 *
 * Decoding checks shape, not business rules: whether a quantity is
 * positive is the decider's business when the event is decided; an event
 * in the log happened.
 */
#include "order.h"

#include <string.h>

#define ORDER_DEFAULT_CURRENCY "EUR"
#define REQ ESC_REQUIRED

/* {sku, qty, price}: a line, and ItemAdded (whose struct holds one). */
#define LINE_FIELDS(T, m)                                                      \
  ESC_FIELD_STR(T, m sku, "sku", ORDER_SKU_MAX - 1, REQ),                      \
      ESC_FIELD_I64(T, m qty, "qty", REQ),                                     \
      ESC_FIELD_I64(T, m price, "price", REQ), ESC_FIELD_END

/* StockReserved and StockReleased: {order, qty}. */
#define STOCK_MOVE_FIELDS(T)                                                   \
  ESC_FIELD_STR(T, order, "order", ORDER_ID_MAX - 1, REQ),                     \
      ESC_FIELD_I64(T, qty, "qty", REQ), ESC_FIELD_END

static const esc_field line_fields[] = {LINE_FIELDS(order_line, )};

/* OrderPlaced v2; v1 had no currency: all v1 orders were in euros. */
static const esc_field placed_fields[] = {
    ESC_FIELD_STR(order_placed, customer, "customer", ORDER_CUSTOMER_MAX - 1,
                  REQ),
    ESC_FIELD_STR(order_placed, currency, "currency", 3, REQ),
    ESC_FIELD_ARRAY(order_placed, lines, line_count, "lines", line_fields, REQ),
    ESC_FIELD_END};

static esc_status placed_upcast(int32_t from_version, const msgpack_object *in,
                                msgpack_packer *pk, esc_error *err) {
  (void)from_version; /* only v1 is older */
  return esc_upcast_add_str(in, pk, "currency", ORDER_DEFAULT_CURRENCY, err);
}

ESC_EVENT_TYPE(ORDER_PLACED, "OrderPlaced", 2, order_placed, placed_fields,
               placed_upcast);

static const esc_field item_added_fields[] = {
    LINE_FIELDS(order_item_added, line.)};
ESC_EVENT_TYPE(ORDER_ITEM_ADDED, "ItemAdded", 1, order_item_added,
               item_added_fields, NULL);

static const esc_field item_removed_fields[] = {
    ESC_FIELD_STR(order_item_removed, sku, "sku", ORDER_SKU_MAX - 1, REQ),
    ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_ITEM_REMOVED, "ItemRemoved", 1, order_item_removed,
               item_removed_fields, NULL);

static const esc_field confirmed_fields[] = {
    ESC_FIELD_ARRAY(order_confirmed, lines, line_count, "lines", line_fields,
                    REQ),
    ESC_FIELD_I64(order_confirmed, total, "total", REQ), ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_CONFIRMED, "OrderConfirmed", 1, order_confirmed,
               confirmed_fields, NULL);

static const esc_field no_fields[] = {ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_READY, "OrderReady", 1, order_ready, no_fields, NULL);

static const esc_field paid_fields[] = {
    ESC_FIELD_I64(order_paid, amount, "amount", REQ), ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_PAID, "PaymentReceived", 1, order_paid, paid_fields, NULL);

static const esc_field refunded_fields[] = {
    ESC_FIELD_I64(order_refunded, amount, "amount", REQ), ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_REFUNDED, "RefundIssued", 1, order_refunded,
               refunded_fields, NULL);

static const esc_field shipped_fields[] = {
    ESC_FIELD_STR(order_shipped, carrier, "carrier", ORDER_SKU_MAX - 1, REQ),
    ESC_FIELD_ARRAY(order_shipped, lines, line_count, "lines", line_fields,
                    REQ),
    ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_SHIPPED, "OrderShipped", 1, order_shipped, shipped_fields,
               NULL);

static const esc_field cancelled_fields[] = {
    ESC_FIELD_STR(order_cancelled, reason, "reason", ORDER_TEXT_MAX - 1, REQ),
    ESC_FIELD_I64(order_cancelled, refund, "refund", REQ), ESC_FIELD_END};
ESC_EVENT_TYPE(ORDER_CANCELLED, "OrderCancelled", 1, order_cancelled,
               cancelled_fields, NULL);

static const esc_field stock_added_fields[] = {
    ESC_FIELD_I64(stock_added, qty, "qty", REQ), ESC_FIELD_END};
ESC_EVENT_TYPE(STOCK_ADDED, "StockAdded", 1, stock_added, stock_added_fields,
               NULL);

static const esc_field reserved_fields[] = {STOCK_MOVE_FIELDS(stock_reserved)};
ESC_EVENT_TYPE(STOCK_RESERVED, "StockReserved", 1, stock_reserved,
               reserved_fields, NULL);

static const esc_field released_fields[] = {STOCK_MOVE_FIELDS(stock_released)};
ESC_EVENT_TYPE(STOCK_RELEASED, "StockReleased", 1, stock_released,
               released_fields, NULL);

/* ------------------------------------------------------------------------
 * The registry, built once
 * ------------------------------------------------------------------------ */

/* Built on the first call; NULL (the reason on stderr) only for a bug in
 * the list or out of memory. */
ESC_EVENT_REGISTRY(order_events, &ORDER_PLACED, &ORDER_ITEM_ADDED,
                   &ORDER_ITEM_REMOVED, &ORDER_CONFIRMED, &ORDER_READY,
                   &ORDER_PAID, &ORDER_SHIPPED, &ORDER_CANCELLED,
                   &ORDER_REFUNDED, &STOCK_ADDED, &STOCK_RESERVED,
                   &STOCK_RELEASED)

/* ------------------------------------------------------------------------
 * Status names
 * ------------------------------------------------------------------------ */

const char *order_status_name(order_status s) {
  switch (s) {
  case ORDER_NONE:
    return "";
  case ORDER_STATUS_PLACED:
    return "placed";
  case ORDER_STATUS_CONFIRMED:
    return "confirmed";
  case ORDER_STATUS_READY:
    return "ready";
  case ORDER_STATUS_PAID:
    return "paid";
  case ORDER_STATUS_SHIPPED:
    return "shipped";
  case ORDER_STATUS_CANCELLED:
    return "cancelled";
  }
  return ""; /* not a status */
}

/* The store's own check says what is wrong; only its noun changes. */
bool order_name_valid(const char *what, const char *value, size_t size,
                      esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  size_t len = value ? strlen(value) : 0;
  if (len == 0 || len >= size) {
    esc_error_set(err, ESC_EINVAL, "the %s must be 1 to %zu bytes, got %zu",
                  what, size - 1, len);
    return false;
  }
  if (esc_stream_id_valid(value, &inner))
    return true;
  static const char prefix[] = "stream id ";
  const char *msg = inner.msg;
  if (strncmp(msg, prefix, sizeof prefix - 1) == 0)
    msg += sizeof prefix - 1;
  esc_error_set(err, ESC_EINVAL, "%s %s", what, msg);
  return false;
}

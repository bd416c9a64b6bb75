/*
 * The order domain's event types (see order.h): their msgpack codecs, the
 * OrderPlaced v1 -> v2 upcaster, and the registry that holds them all.
 *
 * Payloads are maps keyed by the field names in order.h; lines are an array
 * of {sku, qty, price} maps. Strings are copied into the structs' fixed
 * arrays, so a decoded event owns all its bytes.
 *
 * Decoders check shape, not business rules: every field present with its
 * type, strings that fit their arrays (and hold no NUL), at most
 * ORDER_MAX_LINES lines. Whether a quantity is positive is the decider's
 * business when the event is decided; an event in the log happened. Every
 * failure is ESC_EINVAL naming the event and the field.
 *
 * Encoders return -1 for a struct that could not have come from a decoder:
 * a string not NUL-terminated inside its array, or a line count outside
 * 0..ORDER_MAX_LINES.
 */
#include "order.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORDER_DEFAULT_CURRENCY "EUR"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Packs a string held in a fixed array of size bytes; -1 when it is not
 * NUL-terminated inside the array. */
static int pack_fixed_str(msgpack_packer *pk, const char *s, size_t size) {
  if (strnlen(s, size) == size)
    return -1;
  esc_pack_str(pk, s);
  return 0;
}

/* Copies the string value of key into buf: false when it is absent, not a
 * string, does not fit (with its NUL) or holds a NUL of its own. */
static bool get_str(const msgpack_object *map, const char *key, char *buf,
                    size_t size) {
  const msgpack_object *v = esc_map_get(map, key);
  if (!v || v->type != MSGPACK_OBJECT_STR ||
      (v->via.str.size && memchr(v->via.str.ptr, '\0', v->via.str.size)))
    return false;
  return esc_map_str(map, key, buf, size);
}

/* "<Type>: \"<key>\" must be a string of at most N bytes" */
static esc_status bad_str(esc_error *err, const char *type, const char *key,
                          size_t size) {
  return esc_error_set(err, ESC_EINVAL,
                       "%s: \"%s\" must be a string of at most %zu bytes", type,
                       key, size - 1);
}

static esc_status bad_int(esc_error *err, const char *type, const char *key) {
  return esc_error_set(err, ESC_EINVAL, "%s: \"%s\" must be an integer", type,
                       key);
}

static esc_status check_map(const msgpack_object *obj, const char *type,
                            esc_error *err) {
  if (obj->type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL, "%s: the payload is not a map", type);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Lines: [{sku, qty, price}, ...]
 * ------------------------------------------------------------------------ */

static int pack_line(msgpack_packer *pk, const order_line *l) {
  msgpack_pack_map(pk, 3);
  esc_pack_key(pk, "sku");
  if (pack_fixed_str(pk, l->sku, sizeof l->sku))
    return -1;
  esc_pack_key(pk, "qty");
  msgpack_pack_int64(pk, l->qty);
  esc_pack_key(pk, "price");
  return msgpack_pack_int64(pk, l->price);
}

/* Packs the key "lines" and its array. */
static int pack_lines(msgpack_packer *pk, const order_line *lines, int count) {
  if (count < 0 || count > ORDER_MAX_LINES)
    return -1;
  esc_pack_key(pk, "lines");
  msgpack_pack_array(pk, (size_t)count);
  for (int i = 0; i < count; i++)
    if (pack_line(pk, &lines[i]))
      return -1;
  return 0;
}

/* Decodes one {sku, qty, price} map: line i of type's "lines". */
static esc_status decode_line(const msgpack_object *obj, const char *type,
                              uint32_t i, order_line *l, esc_error *err) {
  if (obj->type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL,
                         "%s: \"lines\"[%" PRIu32 "] must be a map", type, i);
  if (!get_str(obj, "sku", l->sku, sizeof l->sku))
    return esc_error_set(err, ESC_EINVAL,
                         "%s: \"lines\"[%" PRIu32 "].\"sku\" must be a string "
                         "of at most %d bytes",
                         type, i, ORDER_SKU_MAX - 1);
  if (!esc_map_i64(obj, "qty", &l->qty))
    return esc_error_set(
        err, ESC_EINVAL,
        "%s: \"lines\"[%" PRIu32 "].\"qty\" must be an integer", type, i);
  if (!esc_map_i64(obj, "price", &l->price))
    return esc_error_set(
        err, ESC_EINVAL,
        "%s: \"lines\"[%" PRIu32 "].\"price\" must be an integer", type, i);
  return ESC_OK;
}

/* Decodes map's "lines" into lines[ORDER_MAX_LINES] and *count. */
static esc_status decode_lines(const msgpack_object *map, const char *type,
                               order_line *lines, int *count, esc_error *err) {
  const msgpack_object *v = esc_map_get(map, "lines");
  if (!v || v->type != MSGPACK_OBJECT_ARRAY)
    return esc_error_set(err, ESC_EINVAL, "%s: \"lines\" must be an array",
                         type);
  if (v->via.array.size > ORDER_MAX_LINES)
    return esc_error_set(err, ESC_EINVAL,
                         "%s: \"lines\" has %" PRIu32
                         " lines; at most %d are allowed",
                         type, v->via.array.size, ORDER_MAX_LINES);
  for (uint32_t i = 0; i < v->via.array.size; i++) {
    esc_status st = decode_line(&v->via.array.ptr[i], type, i, &lines[i], err);
    if (st != ESC_OK)
      return st;
  }
  *count = (int)v->via.array.size;
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * OrderPlaced v2 {customer, currency, lines}; v1 had no currency
 * ------------------------------------------------------------------------ */

static int placed_encode(const void *event, msgpack_packer *pk) {
  const order_placed *e = event;
  msgpack_pack_map(pk, 3);
  esc_pack_key(pk, "customer");
  if (pack_fixed_str(pk, e->customer, sizeof e->customer))
    return -1;
  esc_pack_key(pk, "currency");
  if (pack_fixed_str(pk, e->currency, sizeof e->currency))
    return -1;
  return pack_lines(pk, e->lines, e->line_count);
}

static esc_status placed_decode(const msgpack_object *obj, void *event,
                                esc_error *err) {
  order_placed *e = event;
  if (check_map(obj, "OrderPlaced", err))
    return ESC_EINVAL;
  if (!get_str(obj, "customer", e->customer, sizeof e->customer))
    return bad_str(err, "OrderPlaced", "customer", sizeof e->customer);
  if (!get_str(obj, "currency", e->currency, sizeof e->currency))
    return bad_str(err, "OrderPlaced", "currency", sizeof e->currency);
  return decode_lines(obj, "OrderPlaced", e->lines, &e->line_count, err);
}

/* v1 -> v2: re-packs every entry of the v1 map and adds "currency": "EUR"
 * (v1 orders were all in euros). A v1 payload that somehow names a
 * currency keeps it rather than getting the key twice. */
static esc_status placed_upcast(int32_t from_version, const msgpack_object *in,
                                msgpack_packer *pk, esc_error *err) {
  if (from_version != 1)
    return esc_error_set(err, ESC_EINVAL,
                         "OrderPlaced: no upcaster from v%" PRId32,
                         from_version);
  if (in->type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL, "OrderPlaced v1: not a map");
  bool has_currency = esc_map_get(in, "currency") != NULL;
  msgpack_pack_map(pk, in->via.map.size + (has_currency ? 0 : 1));
  for (uint32_t i = 0; i < in->via.map.size; i++) {
    msgpack_pack_object(pk, in->via.map.ptr[i].key);
    msgpack_pack_object(pk, in->via.map.ptr[i].val);
  }
  if (!has_currency) {
    esc_pack_key(pk, "currency");
    esc_pack_str(pk, ORDER_DEFAULT_CURRENCY);
  }
  return ESC_OK;
}

const esc_event_type ORDER_PLACED = {"OrderPlaced",        2,
                                     sizeof(order_placed), placed_encode,
                                     placed_decode,        placed_upcast};

/* ------------------------------------------------------------------------
 * ItemAdded {sku, qty, price}, ItemRemoved {sku}
 * ------------------------------------------------------------------------ */

static int item_added_encode(const void *event, msgpack_packer *pk) {
  const order_item_added *e = event;
  return pack_line(pk, &e->line);
}

static esc_status item_added_decode(const msgpack_object *obj, void *event,
                                    esc_error *err) {
  order_item_added *e = event;
  if (check_map(obj, "ItemAdded", err))
    return ESC_EINVAL;
  if (!get_str(obj, "sku", e->line.sku, sizeof e->line.sku))
    return bad_str(err, "ItemAdded", "sku", sizeof e->line.sku);
  if (!esc_map_i64(obj, "qty", &e->line.qty))
    return bad_int(err, "ItemAdded", "qty");
  if (!esc_map_i64(obj, "price", &e->line.price))
    return bad_int(err, "ItemAdded", "price");
  return ESC_OK;
}

const esc_event_type ORDER_ITEM_ADDED = {
    "ItemAdded",       1,   sizeof(order_item_added), item_added_encode,
    item_added_decode, NULL};

static int item_removed_encode(const void *event, msgpack_packer *pk) {
  const order_item_removed *e = event;
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "sku");
  return pack_fixed_str(pk, e->sku, sizeof e->sku);
}

static esc_status item_removed_decode(const msgpack_object *obj, void *event,
                                      esc_error *err) {
  order_item_removed *e = event;
  if (check_map(obj, "ItemRemoved", err))
    return ESC_EINVAL;
  if (!get_str(obj, "sku", e->sku, sizeof e->sku))
    return bad_str(err, "ItemRemoved", "sku", sizeof e->sku);
  return ESC_OK;
}

const esc_event_type ORDER_ITEM_REMOVED = {
    "ItemRemoved",       1,   sizeof(order_item_removed), item_removed_encode,
    item_removed_decode, NULL};

/* ------------------------------------------------------------------------
 * OrderConfirmed {lines, total}, OrderReady {}
 * ------------------------------------------------------------------------ */

static int confirmed_encode(const void *event, msgpack_packer *pk) {
  const order_confirmed *e = event;
  msgpack_pack_map(pk, 2);
  if (pack_lines(pk, e->lines, e->line_count))
    return -1;
  esc_pack_key(pk, "total");
  return msgpack_pack_int64(pk, e->total);
}

static esc_status confirmed_decode(const msgpack_object *obj, void *event,
                                   esc_error *err) {
  order_confirmed *e = event;
  if (check_map(obj, "OrderConfirmed", err))
    return ESC_EINVAL;
  esc_status st =
      decode_lines(obj, "OrderConfirmed", e->lines, &e->line_count, err);
  if (st != ESC_OK)
    return st;
  if (!esc_map_i64(obj, "total", &e->total))
    return bad_int(err, "OrderConfirmed", "total");
  return ESC_OK;
}

const esc_event_type ORDER_CONFIRMED = {
    "OrderConfirmed", 1,   sizeof(order_confirmed), confirmed_encode,
    confirmed_decode, NULL};

static int ready_encode(const void *event, msgpack_packer *pk) {
  (void)event;
  return msgpack_pack_map(pk, 0);
}

static esc_status ready_decode(const msgpack_object *obj, void *event,
                               esc_error *err) {
  (void)event;
  return check_map(obj, "OrderReady", err);
}

const esc_event_type ORDER_READY = {
    "OrderReady", 1, sizeof(order_ready), ready_encode, ready_decode, NULL};

/* ------------------------------------------------------------------------
 * PaymentReceived {amount}, RefundIssued {amount}
 * ------------------------------------------------------------------------ */

/* Both events are {amount}: one codec of the amount, named per type. */
static int pack_amount(msgpack_packer *pk, int64_t amount) {
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "amount");
  return msgpack_pack_int64(pk, amount);
}

static esc_status unpack_amount(const msgpack_object *obj, const char *type,
                                int64_t *amount, esc_error *err) {
  if (check_map(obj, type, err))
    return ESC_EINVAL;
  if (!esc_map_i64(obj, "amount", amount))
    return bad_int(err, type, "amount");
  return ESC_OK;
}

static int paid_encode(const void *event, msgpack_packer *pk) {
  return pack_amount(pk, ((const order_paid *)event)->amount);
}

static esc_status paid_decode(const msgpack_object *obj, void *event,
                              esc_error *err) {
  return unpack_amount(obj, "PaymentReceived", &((order_paid *)event)->amount,
                       err);
}

const esc_event_type ORDER_PAID = {
    "PaymentReceived", 1, sizeof(order_paid), paid_encode, paid_decode, NULL};

static int refunded_encode(const void *event, msgpack_packer *pk) {
  return pack_amount(pk, ((const order_refunded *)event)->amount);
}

static esc_status refunded_decode(const msgpack_object *obj, void *event,
                                  esc_error *err) {
  return unpack_amount(obj, "RefundIssued", &((order_refunded *)event)->amount,
                       err);
}

const esc_event_type ORDER_REFUNDED = {"RefundIssued",         1,
                                       sizeof(order_refunded), refunded_encode,
                                       refunded_decode,        NULL};

/* ------------------------------------------------------------------------
 * OrderShipped {carrier, lines}, OrderCancelled {reason, refund}
 * ------------------------------------------------------------------------ */

static int shipped_encode(const void *event, msgpack_packer *pk) {
  const order_shipped *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "carrier");
  if (pack_fixed_str(pk, e->carrier, sizeof e->carrier))
    return -1;
  return pack_lines(pk, e->lines, e->line_count);
}

static esc_status shipped_decode(const msgpack_object *obj, void *event,
                                 esc_error *err) {
  order_shipped *e = event;
  if (check_map(obj, "OrderShipped", err))
    return ESC_EINVAL;
  if (!get_str(obj, "carrier", e->carrier, sizeof e->carrier))
    return bad_str(err, "OrderShipped", "carrier", sizeof e->carrier);
  return decode_lines(obj, "OrderShipped", e->lines, &e->line_count, err);
}

const esc_event_type ORDER_SHIPPED = {"OrderShipped",        1,
                                      sizeof(order_shipped), shipped_encode,
                                      shipped_decode,        NULL};

static int cancelled_encode(const void *event, msgpack_packer *pk) {
  const order_cancelled *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "reason");
  if (pack_fixed_str(pk, e->reason, sizeof e->reason))
    return -1;
  esc_pack_key(pk, "refund");
  return msgpack_pack_int64(pk, e->refund);
}

static esc_status cancelled_decode(const msgpack_object *obj, void *event,
                                   esc_error *err) {
  order_cancelled *e = event;
  if (check_map(obj, "OrderCancelled", err))
    return ESC_EINVAL;
  if (!get_str(obj, "reason", e->reason, sizeof e->reason))
    return bad_str(err, "OrderCancelled", "reason", sizeof e->reason);
  if (!esc_map_i64(obj, "refund", &e->refund))
    return bad_int(err, "OrderCancelled", "refund");
  return ESC_OK;
}

const esc_event_type ORDER_CANCELLED = {
    "OrderCancelled", 1,   sizeof(order_cancelled), cancelled_encode,
    cancelled_decode, NULL};

/* ------------------------------------------------------------------------
 * StockAdded {qty}, StockReserved {order, qty}, StockReleased {order, qty}
 * ------------------------------------------------------------------------ */

static int stock_added_encode(const void *event, msgpack_packer *pk) {
  const stock_added *e = event;
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "qty");
  return msgpack_pack_int64(pk, e->qty);
}

static esc_status stock_added_decode(const msgpack_object *obj, void *event,
                                     esc_error *err) {
  stock_added *e = event;
  if (check_map(obj, "StockAdded", err))
    return ESC_EINVAL;
  if (!esc_map_i64(obj, "qty", &e->qty))
    return bad_int(err, "StockAdded", "qty");
  return ESC_OK;
}

const esc_event_type STOCK_ADDED = {"StockAdded",        1,
                                    sizeof(stock_added), stock_added_encode,
                                    stock_added_decode,  NULL};

/* StockReserved and StockReleased share a shape (and a C layout). */
static int stock_move_encode(const char *order, size_t order_size, int64_t qty,
                             msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "order");
  if (pack_fixed_str(pk, order, order_size))
    return -1;
  esc_pack_key(pk, "qty");
  return msgpack_pack_int64(pk, qty);
}

static esc_status stock_move_decode(const msgpack_object *obj, const char *type,
                                    char *order, size_t order_size,
                                    int64_t *qty, esc_error *err) {
  if (check_map(obj, type, err))
    return ESC_EINVAL;
  if (!get_str(obj, "order", order, order_size))
    return bad_str(err, type, "order", order_size);
  if (!esc_map_i64(obj, "qty", qty))
    return bad_int(err, type, "qty");
  return ESC_OK;
}

static int reserved_encode(const void *event, msgpack_packer *pk) {
  const stock_reserved *e = event;
  return stock_move_encode(e->order, sizeof e->order, e->qty, pk);
}

static esc_status reserved_decode(const msgpack_object *obj, void *event,
                                  esc_error *err) {
  stock_reserved *e = event;
  return stock_move_decode(obj, "StockReserved", e->order, sizeof e->order,
                           &e->qty, err);
}

const esc_event_type STOCK_RESERVED = {"StockReserved",        1,
                                       sizeof(stock_reserved), reserved_encode,
                                       reserved_decode,        NULL};

static int released_encode(const void *event, msgpack_packer *pk) {
  const stock_released *e = event;
  return stock_move_encode(e->order, sizeof e->order, e->qty, pk);
}

static esc_status released_decode(const msgpack_object *obj, void *event,
                                  esc_error *err) {
  stock_released *e = event;
  return stock_move_decode(obj, "StockReleased", e->order, sizeof e->order,
                           &e->qty, err);
}

const esc_event_type STOCK_RELEASED = {"StockReleased",        1,
                                       sizeof(stock_released), released_encode,
                                       released_decode,        NULL};

/* ------------------------------------------------------------------------
 * The registry, built once
 * ------------------------------------------------------------------------ */

static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static esc_event_registry *registry;

/* Aborts on failure: without its event types the domain cannot run, and
 * the only possible failures are out of memory or a bug in the list. */
static void build_registry(void) {
  static const esc_event_type *const types[] = {
      &ORDER_PLACED,   &ORDER_ITEM_ADDED, &ORDER_ITEM_REMOVED, &ORDER_CONFIRMED,
      &ORDER_READY,    &ORDER_PAID,       &ORDER_SHIPPED,      &ORDER_CANCELLED,
      &ORDER_REFUNDED, &STOCK_ADDED,      &STOCK_RESERVED,     &STOCK_RELEASED};
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *reg = esc_event_registry_new(&err);
  if (!reg)
    goto fail;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (esc_event_registry_add(reg, types[i], &err) != ESC_OK)
      goto fail;
  registry = reg;
  return;
fail:
  fprintf(stderr, "order: cannot build the event registry: %s\n", err.msg);
  abort();
}

const esc_event_registry *order_events(void) {
  pthread_once(&registry_once, build_registry);
  return registry;
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

/*
 * The sample order domain: orders and inventory as deciders, six
 * projections into Redis, typed queries, and a fulfillment process manager. It is how
 * users learn esc (docs/tutorial-order.md) and how we prove the pieces work
 * together (order-demo checks every read model against the log).
 *
 * Streams: "order-<id>" (category order), "inventory-<sku>" (category
 * inventory). Money is in cents (int64).
 *
 * Files: events.c (event types and codecs, the OrderPlaced v1 upcaster),
 * order.c and inventory.c (deciders), projections.c (read models),
 * queries.c (typed reads), fulfillment_process.c (fulfillment), and the programs
 * order_cli.c, order_worker.c and order-demo (demo/, start at main.c).
 */
#ifndef ESC_SAMPLE_ORDER_H
#define ESC_SAMPLE_ORDER_H

#include <esc/command.h>
#include <esc/process.h>
#include <esc/projection.h>
#include <esc/query.h>

#define ORDER_MAX_LINES 16
#define ORDER_SKU_MAX 32
#define ORDER_ID_MAX 64
#define ORDER_CUSTOMER_MAX 64
#define ORDER_TEXT_MAX 96

typedef struct order_line {
  char sku[ORDER_SKU_MAX];
  int64_t qty;   /* > 0 */
  int64_t price; /* per unit, cents, >= 0 */
} order_line;

/* ------------------------------------------------------------------------
 * Events (events.c). Each has an esc_event_type below.
 * ------------------------------------------------------------------------ */

/* OrderPlaced v2 {customer, currency, lines: [{sku, qty, price}]}.
 * v1 had no currency: the upcaster fills "EUR". */
typedef struct order_placed {
  char customer[ORDER_CUSTOMER_MAX];
  char currency[4];
  order_line lines[ORDER_MAX_LINES];
  int line_count;
} order_placed;

typedef struct order_item_added { /* ItemAdded {sku, qty, price} */
  order_line line;
} order_item_added;

typedef struct order_item_removed { /* ItemRemoved {sku} */
  char sku[ORDER_SKU_MAX];
} order_item_removed;

/* OrderConfirmed {lines, total}: the lines as confirmed, for the fulfillment process. */
typedef struct order_confirmed {
  order_line lines[ORDER_MAX_LINES];
  int line_count;
  int64_t total;
} order_confirmed;

typedef struct order_ready { /* OrderReady {}: stock is reserved */
  char unused_;
} order_ready;

typedef struct order_paid { /* PaymentReceived {amount} */
  int64_t amount;
} order_paid;

/* OrderShipped {carrier, lines}: lines for best-selling products. */
typedef struct order_shipped {
  char carrier[ORDER_SKU_MAX];
  order_line lines[ORDER_MAX_LINES];
  int line_count;
} order_shipped;

/* OrderCancelled {reason, refund}: refund = the amount paid, if any. */
typedef struct order_cancelled {
  char reason[ORDER_TEXT_MAX];
  int64_t refund;
} order_cancelled;

/* RefundIssued {amount}: the money of a cancelled order went back. */
typedef struct order_refunded {
  int64_t amount;
} order_refunded;

typedef struct stock_added { /* StockAdded {qty} */
  int64_t qty;
} stock_added;

typedef struct stock_reserved { /* StockReserved {order, qty} */
  char order[ORDER_ID_MAX];
  int64_t qty;
} stock_reserved;

typedef struct stock_released { /* StockReleased {order, qty} */
  char order[ORDER_ID_MAX];
  int64_t qty;
} stock_released;

extern const esc_event_type ORDER_PLACED, ORDER_ITEM_ADDED, ORDER_ITEM_REMOVED,
    ORDER_CONFIRMED, ORDER_READY, ORDER_PAID, ORDER_SHIPPED, ORDER_CANCELLED,
    ORDER_REFUNDED, STOCK_ADDED, STOCK_RESERVED, STOCK_RELEASED;

/* Every event type of the domain, registered once (thread-safe). */
const esc_event_registry *order_events(void);

/*
 * Skus, customer ids and order ids end up in stream ids ("inventory-<sku>",
 * "order-<id>") and keys, so they follow the store's rules for stream ids
 * (esc_stream_id_valid) and fit their arrays (size bytes with the NUL).
 * what names it in the message: sku "a b": byte 2 (' ') is not allowed...
 * The deciders and order-cli share this one check.
 */
bool order_name_valid(const char *what, const char *value, size_t size,
                      esc_error *err);

/* ------------------------------------------------------------------------
 * Orders (order.c)
 * ------------------------------------------------------------------------ */

typedef enum order_status {
  ORDER_NONE = 0,
  ORDER_STATUS_PLACED,
  ORDER_STATUS_CONFIRMED,
  ORDER_STATUS_READY, /* confirmed and stock reserved */
  ORDER_STATUS_PAID,  /* paid; stock may or may not be reserved yet */
  ORDER_STATUS_SHIPPED,
  ORDER_STATUS_CANCELLED
} order_status;

/* "placed", "confirmed", ... as stored in read models; "" for NONE. */
const char *order_status_name(order_status s);

typedef struct order_state {
  order_status status;
  char customer[ORDER_CUSTOMER_MAX];
  char currency[4];
  order_line lines[ORDER_MAX_LINES];
  int line_count;
  int64_t total;    /* sum of qty * price */
  bool reserved;    /* OrderReady seen */
  int64_t paid;     /* amount received */
  int64_t refunded; /* amount given back (RefundIssued) */
} order_state;

typedef enum order_cmd_kind {
  ORDER_PLACE,
  ORDER_ADD_ITEM,
  ORDER_REMOVE_ITEM,
  ORDER_CONFIRM,
  ORDER_MARK_READY, /* the fulfillment process, when every line's stock is reserved */
  ORDER_PAY,
  ORDER_SHIP,
  ORDER_CANCEL,
  ORDER_REFUND /* the fulfillment process, after a paid order is cancelled */
} order_cmd_kind;

typedef struct order_cmd {
  order_cmd_kind kind;
  const char *customer;    /* PLACE */
  const order_line *lines; /* PLACE */
  int line_count;          /* PLACE */
  order_line line;         /* ADD_ITEM (REMOVE_ITEM: line.sku) */
  int64_t amount;          /* PAY, REFUND */
  const char *carrier;     /* SHIP */
  const char *reason;      /* CANCEL */
} order_cmd;

/* Domain errors (esc_command_result.domain_code). */
enum order_error {
  ORDER_EEXISTS = 1, /* placing an order that exists */
  ORDER_ENOTFOUND,   /* any command on an order never placed */
  ORDER_EINVAL,      /* bad lines, quantities, prices, empty customer */
  ORDER_ESTATE,      /* not allowed in this status (e.g. add after
                        confirm, ship unpaid) */
  ORDER_EAMOUNT,     /* payment not equal to the total */
  ORDER_ESHIPPED,    /* cancelling a shipped order */
  ORDER_ECANCELLED,  /* anything on a cancelled order */
  ORDER_ENOLINE      /* removing a sku the order does not have */
};

/*
 * The rules: place (customer, 1..16 lines, qty > 0, price >= 0, currency
 * "EUR"); add/remove items only while placed; confirm only while placed
 * with at least one line; mark ready only when confirmed (or paid) and not
 * yet ready; pay only after confirm, once, amount == total; ship only when
 * paid and ready; cancel anything not shipped or already cancelled (refund
 * = paid); refund only a cancelled order, once, amount == paid > 0. Skus
 * and the customer must be order_name_valid.
 */
const esc_decider *order_decider(void);

/* ------------------------------------------------------------------------
 * Inventory (inventory.c): one stream per product, "inventory-<sku>"
 * ------------------------------------------------------------------------ */

typedef struct inventory_state {
  int64_t available; /* never below zero */
  int64_t reserved;
} inventory_state;

typedef enum inventory_cmd_kind {
  INVENTORY_STOCK_IN,
  INVENTORY_RESERVE,
  INVENTORY_RELEASE
} inventory_cmd_kind;

typedef struct inventory_cmd {
  inventory_cmd_kind kind;
  int64_t qty;       /* > 0 */
  const char *order; /* RESERVE, RELEASE: the order id */
} inventory_cmd;

enum inventory_error {
  INVENTORY_EINVAL = 1, /* qty <= 0, missing order */
  INVENTORY_ESHORT,     /* reserving more than is available */
  INVENTORY_ERELEASE    /* releasing more than is reserved */
};

const esc_decider *inventory_decider(void);

/* ------------------------------------------------------------------------
 * Projections (projections.c) and their keys (under NS:<name>:g<G>:)
 * ------------------------------------------------------------------------ */

/*
 *   order_details        order:<id>          hash customer, status, total,
 *                                            currency, lines, paid
 *   orders_by_customer   customer:<c>        zset order id by placed time (ms)
 *   orders_by_status     status:<s>          set of order ids
 *   top_products         products            zset sku by shipped qty
 *   revenue              day:<YYYY-MM-DD>    counter: payments - refunds
 *   stock                levels              hash sku -> available
 */
#define ORDER_PROJECTION_COUNT 6
/* The six projections (static storage; partitions given). */
const esc_projection *order_projections(int partitions);

/* ------------------------------------------------------------------------
 * Typed queries (queries.c)
 * ------------------------------------------------------------------------ */

typedef struct order_view {
  char id[ORDER_ID_MAX];
  char customer[ORDER_CUSTOMER_MAX];
  char status[16];
  char currency[4];
  int64_t total;
  int64_t paid;
  int lines;
} order_view;

esc_status order_query_show(esc_query *q, const char *order_id, order_view *out,
                            esc_error *err);
/* Order ids of a customer, newest first (*ids malloc'ed array of
 * malloc'ed strings: order_query_free_ids). */
esc_status order_query_of_customer(esc_query *q, const char *customer,
                                   char ***ids, size_t *count, esc_error *err);
void order_query_free_ids(char **ids, size_t count);
esc_status order_query_status_count(esc_query *q, const char *status,
                                    int64_t *count, esc_error *err);
esc_status order_query_top_products(esc_query *q, size_t n,
                                    esc_query_items *out, esc_error *err);
esc_status order_query_revenue(esc_query *q, const char *day, int64_t *cents,
                               esc_error *err);
esc_status order_query_stock(esc_query *q, const char *sku, int64_t *available,
                             esc_error *err);

/* Order lines in snapshots (order.c), as [{sku, qty, price}]: the order's
 * and the fulfillment process's. pack returns 0, or -1 for a count out
 * of 0..ORDER_MAX_LINES or a sku without NUL; unpack reads map's "lines"
 * into lines and *count, or returns ESC_EINVAL with a message starting
 * with what ("order snapshot"). */
int order_lines_pack(msgpack_packer *pk, const order_line *lines, int count);
esc_status order_lines_unpack(const msgpack_object *map, const char *what,
                              order_line *lines, int *count, esc_error *err);

/* ------------------------------------------------------------------------
 * The fulfillment process (fulfillment_process.c), on <esc/process.h>
 * ------------------------------------------------------------------------ */

#define ORDER_PAYMENT_TIMEOUT_US_DEFAULT (INT64_C(15) * 60 * 1000000)

typedef struct order_fulfillment_options {
  int64_t payment_timeout_us; /* after the order is ready; > 0 */
} order_fulfillment_options;

#define ORDER_FULFILLMENT_OPTIONS_INIT                                         \
  { ORDER_PAYMENT_TIMEOUT_US_DEFAULT }

/*
 * Fills *p with the process "fulfillment": one instance per order (its id
 * the order id), started by OrderConfirmed; it reserves each line, marks
 * the order ready and waits o->payment_timeout_us for the payment, or
 * cancels and releases; a paid order cancelled is refunded. o is
 * borrowed and must outlive p.
 */
void order_fulfillment_init(esc_process *p, const order_fulfillment_options *o);
/* The command types it issues: inventory_cmd and order_cmd as msgpack. */
const esc_process_command_type *order_inventory_command(void);
const esc_process_command_type *order_order_command(void);

#endif

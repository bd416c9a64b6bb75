/*
 * The order domain's six read models (see the key table in order.h).
 *
 * Handlers only queue writes: they cannot read Redis, so every read model
 * is built from what the event itself says, with commands whose effect
 * does not depend on what is stored (HSET, HINCRBY, ZINCRBY, INCRBY,
 * SADD/SREM) or that carry their own condition (SMOVE). The worker applies
 * each batch exactly once, so the increments are safe.
 *
 * Two consequences worth knowing:
 *
 * - ItemRemoved says only which sku went, not what it was worth. The order
 *   hash therefore keeps every line's amount (qty * price) in its own field
 *   "line:<sku>" (order.c allows one line per sku), and order_query_show
 *   adds them up. The "lines" field is exact throughout; "total" is exact
 *   except between an ItemRemoved and the confirmation, which restates it.
 * - Status follows the event: OrderPlaced placed, OrderConfirmed confirmed,
 *   OrderReady ready, PaymentReceived paid, OrderShipped shipped,
 *   OrderCancelled cancelled; except that an OrderReady after a payment
 *   leaves the order paid (order_state's rule). The status sets get that
 *   exactly with SMOVE confirmed -> ready (a no-op unless the order is
 *   still confirmed); the hash cannot express the condition, so it says
 *   "ready" with paid > 0, and order_query_show reports that as "paid".
 */
#include "order.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The id of a stream: what follows "<category>-" ("order-42" -> "42"). */
static const char *stream_entity(const esc_event *event) {
  const char *dash = strchr(event->recorded->stream_id, '-');
  return dash ? dash + 1 : event->recorded->stream_id;
}

static bool is(const esc_event *event, const esc_event_type *type) {
  return event->type == type && event->data;
}

/* Turns a failed esc_ctx_* into the handler's error. */
static esc_status queued(esc_status rc, const esc_event *event,
                         const char *projection, esc_error *err) {
  if (!rc)
    return ESC_OK;
  return esc_error_set(err, rc, "%s: queueing commands for %s@%" PRId64 ": %s",
                       projection, event->recorded->stream_id,
                       event->recorded->stream_version, esc_strerror(rc));
}

/* ------------------------------------------------------------------------
 * order_details: order:<id> hash
 * ------------------------------------------------------------------------ */

/* Sets the per-line amount fields: an order holds one line per sku
 * (order.c rejects a second one), so a field is one line. */
static esc_status put_lines(esc_projection_ctx *ctx, const char *key,
                            const order_line *lines, int count) {
  esc_status rc = ESC_OK;
  char field[ORDER_SKU_MAX + 8];
  for (int i = 0; !rc && i < count; i++) {
    snprintf(field, sizeof field, "line:%s", lines[i].sku);
    rc = esc_ctx_cmd(ctx, "HSET", key, field,
                     esc_ctx_i64(ctx, lines[i].qty * lines[i].price), NULL);
  }
  return rc;
}

static int64_t lines_total(const order_line *lines, int count) {
  int64_t total = 0;
  for (int i = 0; i < count; i++)
    total += lines[i].qty * lines[i].price;
  return total;
}

static esc_status details_placed(esc_projection_ctx *ctx, const char *key,
                                 const order_placed *e) {
  esc_status rc = esc_ctx_cmd(
      ctx, "HSET", key, "customer", e->customer, "status",
      order_status_name(ORDER_STATUS_PLACED), "currency", e->currency, "total",
      esc_ctx_i64(ctx, lines_total(e->lines, e->line_count)), "lines",
      esc_ctx_i64(ctx, e->line_count), "paid", "0", "reserved", "0", NULL);
  return rc ? rc : put_lines(ctx, key, e->lines, e->line_count);
}

/* A new sku (order.c refuses to add one twice): one more line. */
static esc_status details_item_added(esc_projection_ctx *ctx, const char *key,
                                     const order_item_added *e) {
  const char *amount = esc_ctx_i64(ctx, e->line.qty * e->line.price);
  char field[ORDER_SKU_MAX + 8];
  snprintf(field, sizeof field, "line:%s", e->line.sku);
  esc_status rc = esc_ctx_cmd(ctx, "HSET", key, field, amount, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "HINCRBY", key, "total", amount, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "HINCRBY", key, "lines", "1", NULL);
  return rc;
}

/* The event does not say what the line was worth: "total" stays as it was
 * until the confirmation restates it; order_query_show sums the lines. */
static esc_status details_item_removed(esc_projection_ctx *ctx, const char *key,
                                       const order_item_removed *e) {
  char field[ORDER_SKU_MAX + 8];
  snprintf(field, sizeof field, "line:%s", e->sku);
  esc_status rc = esc_ctx_cmd(ctx, "HDEL", key, field, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "HINCRBY", key, "lines", "-1", NULL);
  return rc;
}

/* Confirmation restates the lines and the total. */
static esc_status details_confirmed(esc_projection_ctx *ctx, const char *key,
                                    const order_confirmed *e) {
  esc_status rc = esc_ctx_cmd(ctx, "HSET", key, "status",
                              order_status_name(ORDER_STATUS_CONFIRMED),
                              "total", esc_ctx_i64(ctx, e->total), "lines",
                              esc_ctx_i64(ctx, e->line_count), NULL);
  return rc ? rc : put_lines(ctx, key, e->lines, e->line_count);
}

static esc_status details_handle(esc_projection_ctx *ctx,
                                 const esc_event *event, void *userdata,
                                 esc_error *err) {
  (void)userdata;
  const char *key = esc_ctx_key(ctx, "order:%s", stream_entity(event));
  esc_status rc = ESC_OK;
  if (is(event, &ORDER_PLACED)) {
    rc = details_placed(ctx, key, event->data);
  } else if (is(event, &ORDER_ITEM_ADDED)) {
    rc = details_item_added(ctx, key, event->data);
  } else if (is(event, &ORDER_ITEM_REMOVED)) {
    rc = details_item_removed(ctx, key, event->data);
  } else if (is(event, &ORDER_CONFIRMED)) {
    rc = details_confirmed(ctx, key, event->data);
  } else if (is(event, &ORDER_READY)) {
    rc = esc_ctx_cmd(ctx, "HSET", key, "status",
                     order_status_name(ORDER_STATUS_READY), "reserved", "1",
                     NULL);
  } else if (is(event, &ORDER_PAID)) {
    const order_paid *e = event->data;
    rc = esc_ctx_cmd(ctx, "HSET", key, "status",
                     order_status_name(ORDER_STATUS_PAID), "paid",
                     esc_ctx_i64(ctx, e->amount), NULL);
  } else if (is(event, &ORDER_SHIPPED)) {
    rc = esc_ctx_cmd(ctx, "HSET", key, "status",
                     order_status_name(ORDER_STATUS_SHIPPED), NULL);
  } else if (is(event, &ORDER_CANCELLED)) {
    rc = esc_ctx_cmd(ctx, "HSET", key, "status",
                     order_status_name(ORDER_STATUS_CANCELLED), NULL);
  }
  return queued(rc, event, "order_details", err);
}

/* ------------------------------------------------------------------------
 * orders_by_customer: customer:<c> zset of order ids by placed time (ms)
 * ------------------------------------------------------------------------ */

static esc_status by_customer_handle(esc_projection_ctx *ctx,
                                     const esc_event *event, void *userdata,
                                     esc_error *err) {
  (void)userdata;
  if (!is(event, &ORDER_PLACED))
    return ESC_OK;
  const order_placed *e = event->data;
  esc_status rc =
      esc_ctx_cmd(ctx, "ZADD", esc_ctx_key(ctx, "customer:%s", e->customer),
                  esc_ctx_i64(ctx, event->recorded->recorded_at_us / 1000),
                  stream_entity(event), NULL);
  return queued(rc, event, "orders_by_customer", err);
}

/* ------------------------------------------------------------------------
 * orders_by_status: status:<s> sets of order ids
 * ------------------------------------------------------------------------ */

static const order_status all_statuses[] = {
    ORDER_STATUS_PLACED, ORDER_STATUS_CONFIRMED, ORDER_STATUS_READY,
    ORDER_STATUS_PAID,   ORDER_STATUS_SHIPPED,   ORDER_STATUS_CANCELLED};
#define STATUS_COUNT (sizeof all_statuses / sizeof all_statuses[0])

/* Moves id into status:<to>: out of every other set, then in. */
static esc_status move_to(esc_projection_ctx *ctx, const char *id,
                          order_status to) {
  esc_status rc = ESC_OK;
  for (size_t i = 0; !rc && i < STATUS_COUNT; i++)
    if (all_statuses[i] != to)
      rc = esc_ctx_cmd(
          ctx, "SREM",
          esc_ctx_key(ctx, "status:%s", order_status_name(all_statuses[i])), id,
          NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "SADD",
                     esc_ctx_key(ctx, "status:%s", order_status_name(to)), id,
                     NULL);
  return rc;
}

static esc_status by_status_handle(esc_projection_ctx *ctx,
                                   const esc_event *event, void *userdata,
                                   esc_error *err) {
  (void)userdata;
  const char *id = stream_entity(event);
  esc_status rc = ESC_OK;
  if (is(event, &ORDER_READY)) /* paid already: it stays paid */
    rc = esc_ctx_cmd(
        ctx, "SMOVE",
        esc_ctx_key(ctx, "status:%s",
                    order_status_name(ORDER_STATUS_CONFIRMED)),
        esc_ctx_key(ctx, "status:%s", order_status_name(ORDER_STATUS_READY)),
        id, NULL);
  else if (is(event, &ORDER_PLACED))
    rc = move_to(ctx, id, ORDER_STATUS_PLACED);
  else if (is(event, &ORDER_CONFIRMED))
    rc = move_to(ctx, id, ORDER_STATUS_CONFIRMED);
  else if (is(event, &ORDER_PAID))
    rc = move_to(ctx, id, ORDER_STATUS_PAID);
  else if (is(event, &ORDER_SHIPPED))
    rc = move_to(ctx, id, ORDER_STATUS_SHIPPED);
  else if (is(event, &ORDER_CANCELLED))
    rc = move_to(ctx, id, ORDER_STATUS_CANCELLED);
  return queued(rc, event, "orders_by_status", err);
}

/* ------------------------------------------------------------------------
 * top_products: products zset of sku by shipped quantity
 * ------------------------------------------------------------------------ */

static esc_status top_products_handle(esc_projection_ctx *ctx,
                                      const esc_event *event, void *userdata,
                                      esc_error *err) {
  (void)userdata;
  if (!is(event, &ORDER_SHIPPED))
    return ESC_OK;
  const order_shipped *e = event->data;
  const char *key = esc_ctx_key(ctx, "products");
  esc_status rc = ESC_OK;
  for (int i = 0; !rc && i < e->line_count; i++)
    rc = esc_ctx_cmd(ctx, "ZINCRBY", key, esc_ctx_i64(ctx, e->lines[i].qty),
                     e->lines[i].sku, NULL);
  return queued(rc, event, "top_products", err);
}

/* ------------------------------------------------------------------------
 * revenue: day:<YYYY-MM-DD> counters, payments minus refunds
 * ------------------------------------------------------------------------ */

/* The UTC day an event was recorded, "YYYY-MM-DD". */
static void recorded_day(const esc_event *event, char out[16]) {
  time_t t = (time_t)(event->recorded->recorded_at_us / 1000000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
    snprintf(out, 16, "1970-01-01");
}

static esc_status revenue_handle(esc_projection_ctx *ctx,
                                 const esc_event *event, void *userdata,
                                 esc_error *err) {
  (void)userdata;
  int64_t delta = 0;
  if (is(event, &ORDER_PAID))
    delta = ((const order_paid *)event->data)->amount;
  else if (is(event, &ORDER_CANCELLED))
    delta = -((const order_cancelled *)event->data)->refund;
  if (delta == 0)
    return ESC_OK;
  char day[16];
  recorded_day(event, day);
  esc_status rc = esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "day:%s", day),
                              esc_ctx_i64(ctx, delta), NULL);
  return queued(rc, event, "revenue", err);
}

/* ------------------------------------------------------------------------
 * stock: levels hash, sku -> available
 * ------------------------------------------------------------------------ */

static esc_status stock_handle(esc_projection_ctx *ctx, const esc_event *event,
                               void *userdata, esc_error *err) {
  (void)userdata;
  int64_t delta = 0;
  if (is(event, &STOCK_ADDED))
    delta = ((const stock_added *)event->data)->qty;
  else if (is(event, &STOCK_RESERVED))
    delta = -((const stock_reserved *)event->data)->qty;
  else if (is(event, &STOCK_RELEASED))
    delta = ((const stock_released *)event->data)->qty;
  if (delta == 0)
    return ESC_OK;
  esc_status rc =
      esc_ctx_cmd(ctx, "HINCRBY", esc_ctx_key(ctx, "levels"),
                  stream_entity(event), esc_ctx_i64(ctx, delta), NULL);
  return queued(rc, event, "stock", err);
}

/* ------------------------------------------------------------------------
 * The definitions
 * ------------------------------------------------------------------------ */

static const char *const order_category[] = {"order", NULL};
static const char *const inventory_category[] = {"inventory", NULL};

static const struct {
  const char *name;
  const char *const *categories;
  esc_projection_handler handle;
} definitions[ORDER_PROJECTION_COUNT] = {
    {"order_details", order_category, details_handle},
    {"orders_by_customer", order_category, by_customer_handle},
    {"orders_by_status", order_category, by_status_handle},
    {"top_products", order_category, top_products_handle},
    {"revenue", order_category, revenue_handle},
    {"stock", inventory_category, stock_handle},
};

/*
 * Every read model may be partitioned: each key is written by the events
 * of one stream (order:<id>, status sets per order id) or by commutative
 * increments (products, day:<d>, levels), so no order between streams is
 * needed. The array is rebuilt on each call: call it before starting
 * threads, not concurrently with another partition count.
 */
const esc_projection *order_projections(int partitions) {
  static esc_projection projections[ORDER_PROJECTION_COUNT];
  for (size_t i = 0; i < ORDER_PROJECTION_COUNT; i++) {
    esc_projection *p = &projections[i];
    memset(p, 0, sizeof *p);
    p->name = definitions[i].name;
    p->version = 1;
    p->categories = definitions[i].categories;
    p->partitions = partitions > 0 ? partitions : 1;
    p->events = order_events();
    p->handle = definitions[i].handle;
    p->on_error = ESC_ON_ERROR_PARK;
  }
  return projections;
}

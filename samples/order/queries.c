/*
 * Typed reads of the order domain's read models (order.h), on top of the
 * esc_query_* calls: each resolves the projection's serving generation and
 * reads in one round trip. A projection never built yet is ESC_ENOTFOUND
 * from every function here.
 */
#include "order.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal integer field; false (and *out untouched) if it is not one. */
static bool parse_i64(const char *s, int64_t *out) {
  if (!s || !*s)
    return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return false;
  *out = (int64_t)v;
  return true;
}

static void copy_str(char *dst, size_t size, const char *src) {
  snprintf(dst, size, "%s", src ? src : "");
}

/* ------------------------------------------------------------------------
 * order_details
 * ------------------------------------------------------------------------ */

/*
 * Total and line count come from the "line:<sku>" fields (see
 * projections.c); the "total"/"lines" fields only when there are none
 * (an order hash written without them). A "ready" order with a payment is
 * paid: the hash cannot tell OrderReady to keep "paid".
 */
static void fill_view(const esc_query_items *h, order_view *out) {
  int64_t total = 0, stated_total = 0, paid = 0, lines = 0;
  int line_fields = 0;
  for (size_t i = 0; i < h->count; i++) {
    const char *name = h->items[i].name, *value = h->items[i].value;
    if (strncmp(name, "line:", 5) == 0) {
      int64_t amount = 0;
      if (parse_i64(value, &amount))
        total += amount;
      line_fields++;
    } else if (strcmp(name, "customer") == 0)
      copy_str(out->customer, sizeof out->customer, value);
    else if (strcmp(name, "status") == 0)
      copy_str(out->status, sizeof out->status, value);
    else if (strcmp(name, "currency") == 0)
      copy_str(out->currency, sizeof out->currency, value);
    else if (strcmp(name, "total") == 0)
      parse_i64(value, &stated_total);
    else if (strcmp(name, "lines") == 0)
      parse_i64(value, &lines);
    else if (strcmp(name, "paid") == 0)
      parse_i64(value, &paid);
  }
  out->total = line_fields ? total : stated_total;
  out->lines = line_fields ? line_fields : (int)lines;
  out->paid = paid;
  if (paid > 0 &&
      strcmp(out->status, order_status_name(ORDER_STATUS_READY)) == 0)
    copy_str(out->status, sizeof out->status,
             order_status_name(ORDER_STATUS_PAID));
}

esc_status order_query_show(esc_query *q, const char *order_id, order_view *out,
                            esc_error *err) {
  if (!q || !order_id || !*order_id || !out)
    return esc_error_set(err, ESC_EINVAL, "order show: no order id");
  char suffix[ORDER_ID_MAX + 8];
  if ((size_t)snprintf(suffix, sizeof suffix, "order:%s", order_id) >=
      sizeof suffix)
    return esc_error_set(err, ESC_EINVAL, "order show: order id too long");
  esc_query_items h = ESC_QUERY_ITEMS_INIT;
  esc_status rc = esc_query_hash(q, "order_details", suffix, &h, err);
  if (rc)
    return rc;
  if (h.count == 0) {
    rc = esc_error_set(err, ESC_ENOTFOUND, "order %s: not found", order_id);
  } else {
    memset(out, 0, sizeof *out);
    copy_str(out->id, sizeof out->id, order_id);
    fill_view(&h, out);
  }
  esc_query_items_release(&h);
  return rc;
}

/* ------------------------------------------------------------------------
 * orders_by_customer
 * ------------------------------------------------------------------------ */

void order_query_free_ids(char **ids, size_t count) {
  if (!ids)
    return;
  for (size_t i = 0; i < count; i++)
    free(ids[i]);
  free(ids);
}

esc_status order_query_of_customer(esc_query *q, const char *customer,
                                   char ***ids, size_t *count, esc_error *err) {
  if (!q || !customer || !ids || !count)
    return esc_error_set(err, ESC_EINVAL, "orders of customer: bad arguments");
  *ids = NULL;
  *count = 0;
  char suffix[ORDER_CUSTOMER_MAX + 16];
  if ((size_t)snprintf(suffix, sizeof suffix, "customer:%s", customer) >=
      sizeof suffix)
    return esc_error_set(err, ESC_EINVAL,
                         "orders of customer: customer too long");
  esc_query_items z = ESC_QUERY_ITEMS_INIT;
  esc_status rc =
      esc_query_zrange(q, "orders_by_customer", suffix, 0, -1, true, &z, err);
  if (rc || z.count == 0)
    goto out_release;
  char **out = calloc(z.count, sizeof *out);
  if (!out) {
    rc = esc_error_set(err, ESC_ENOMEM, "orders of customer: out of memory");
    goto out_release;
  }
  /* The names are the items' own malloc'ed strings: take them over. */
  for (size_t i = 0; i < z.count; i++) {
    out[i] = z.items[i].name;
    z.items[i].name = NULL;
  }
  *ids = out;
  *count = z.count;
out_release:
  esc_query_items_release(&z);
  return rc;
}

/* ------------------------------------------------------------------------
 * orders_by_status, top_products, revenue, stock
 * ------------------------------------------------------------------------ */

esc_status order_query_status_count(esc_query *q, const char *status,
                                    int64_t *count, esc_error *err) {
  if (!q || !status || !count)
    return esc_error_set(err, ESC_EINVAL, "status count: bad arguments");
  char suffix[48];
  if ((size_t)snprintf(suffix, sizeof suffix, "status:%s", status) >=
      sizeof suffix)
    return esc_error_set(err, ESC_EINVAL, "status count: status too long");
  esc_query_items s = ESC_QUERY_ITEMS_INIT;
  esc_status rc = esc_query_set(q, "orders_by_status", suffix, &s, err);
  if (!rc)
    *count = (int64_t)s.count;
  esc_query_items_release(&s);
  return rc;
}

esc_status order_query_top_products(esc_query *q, size_t n,
                                    esc_query_items *out, esc_error *err) {
  if (!q || !out)
    return esc_error_set(err, ESC_EINVAL, "top products: bad arguments");
  if (n == 0) { /* ZRANGE 0 -1 would mean "all" */
    esc_query_items_release(out);
    int64_t generation;
    return esc_query_generation(q, "top_products", &generation, err);
  }
  return esc_query_zrange(q, "top_products", "products", 0, (int64_t)n - 1,
                          true, out, err);
}

esc_status order_query_revenue(esc_query *q, const char *day, int64_t *cents,
                               esc_error *err) {
  if (!q || !day || !cents)
    return esc_error_set(err, ESC_EINVAL, "revenue: bad arguments");
  char suffix[32];
  if ((size_t)snprintf(suffix, sizeof suffix, "day:%s", day) >= sizeof suffix)
    return esc_error_set(err, ESC_EINVAL, "revenue: day \"%.20s\" too long",
                         day);
  return esc_query_counter(q, "revenue", suffix, cents, err);
}

/* HGETALL of the levels hash: one round trip through the serving
 * generation; a sku never stocked reads as 0. */
esc_status order_query_stock(esc_query *q, const char *sku, int64_t *available,
                             esc_error *err) {
  if (!q || !sku || !available)
    return esc_error_set(err, ESC_EINVAL, "stock: bad arguments");
  esc_query_items h = ESC_QUERY_ITEMS_INIT;
  esc_status rc = esc_query_hash(q, "stock", "levels", &h, err);
  if (rc)
    return rc;
  *available = 0;
  for (size_t i = 0; i < h.count; i++)
    if (strcmp(h.items[i].name, sku) == 0 &&
        !parse_i64(h.items[i].value, available))
      rc = esc_error_set(err, ESC_EINVAL,
                         "stock of %s: \"%.40s\" is not a "
                         "number",
                         sku, h.items[i].value);
  esc_query_items_release(&h);
  return rc;
}

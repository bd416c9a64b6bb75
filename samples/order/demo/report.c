/*
 * order-demo: the summary, read from the read models.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cents as "12.50" into out[32]. */
static const char *money(int64_t cents, char out[32]) {
  uint64_t abs = cents < 0 ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
  snprintf(out, 32, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", abs / 100,
           abs % 100);
  return out;
}

static int day_cmp(const void *a, const void *b) {
  return strcmp(((const exp_day *)a)->day, ((const exp_day *)b)->day);
}

esc_status print_summary(const demo *d, esc_query *q, model *m, double seconds,
                         esc_error *err) {
  char buf[32];
  esc_status rc;
  const counters *n = &d->n;
  printf("\n==> summary (read from the read models in Redis)\n\n");
  printf("orders by status (all orders in schema %s)\n", d->o.schema);
  for (int i = 0; i < STATUS_COUNT; i++) {
    int64_t count = 0;
    const char *name = order_status_name(STATUSES[i]);
    if ((rc = order_query_status_count(q, name, &count, err)))
      return rc;
    printf("  %-10s %8" PRId64 "\n", name, count);
  }

  esc_query_items top = ESC_QUERY_ITEMS_INIT;
  if ((rc = order_query_top_products(q, 5, &top, err)))
    return rc;
  printf("\ntop 5 products (units shipped)\n");
  for (size_t i = 0; i < top.count; i++)
    printf("  %zu. %-14s %8.0f\n", i + 1, top.items[i].name,
           top.items[i].score);
  esc_query_items_release(&top);

  printf("\nrevenue per day (UTC; payments minus refunds)\n");
  if (m->n_days > 1)
    qsort(m->days, m->n_days, sizeof *m->days, day_cmp);
  size_t first = m->n_days > 7 ? m->n_days - 7 : 0;
  if (first > 0)
    printf("  (%zu earlier days not shown)\n", first);
  for (size_t i = first; i < m->n_days; i++) {
    int64_t cents = 0;
    if ((rc = order_query_revenue(q, m->days[i].day, &cents, err)))
      return rc;
    printf("  %s %14s EUR\n", m->days[i].day, money(cents, buf));
  }

  long commands = atomic_load(&d->commands);
  printf("\nthis run: %d orders from %d customers on %d threads in %.1f s: "
         "%ld shipped, %ld cancelled for lack of stock, %ld cancelled by "
         "customers",
         d->o.orders, d->o.customers, d->o.threads, seconds, n->shipped,
         n->cancelled_stock, n->cancelled_customer);
  if (n->rejected)
    printf(", %ld ended by a rejected command", n->rejected);
  printf("; %ld commands (%.0f/s)\n", commands,
         seconds > 0 ? (double)commands / seconds : 0.0);
  return ESC_OK;
}

/*
 * order-demo: verification - each read model in Redis against the
 * recomputation from the log, field by field and through the typed
 * queries; each difference printed (up to a limit per read model).
 */
#include "demo.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOWN_DIFFS 20 /* per read model */

typedef struct checker {
  esc_query *q;
  const char *model_name; /* the read model being checked */
  long diffs;             /* of this read model */
  long total_diffs;
} checker;

static void diff(checker *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void diff(checker *c, const char *fmt, ...) {
  c->diffs++;
  c->total_diffs++;
  if (c->diffs > MAX_SHOWN_DIFFS)
    return;
  va_list ap;
  va_start(ap, fmt);
  printf("  DIFF %s: ", c->model_name);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
}

static void begin(checker *c, const char *name) {
  c->model_name = name;
  c->diffs = 0;
}

static void end(checker *c, const char *what) {
  if (c->diffs > MAX_SHOWN_DIFFS)
    printf("  ... and %ld more differences in %s\n", c->diffs - MAX_SHOWN_DIFFS,
           c->model_name);
  printf("  %-19s %-28s %s\n", c->model_name, what,
         c->diffs ? "DIFFERS" : "ok");
}

/* A Redis hash against its model, field by field. */
static void compare_hash(checker *c, const char *where, const hmodel *want,
                         const esc_query_items *got) {
  for (size_t i = 0; i < want->n; i++) {
    const hfield *f = &want->f[i];
    const esc_query_item *g = NULL;
    for (size_t j = 0; j < got->count && !g; j++)
      if (strcmp(got->items[j].name, f->name) == 0)
        g = &got->items[j];
    if (!g)
      diff(c, "%s: field %s missing, the log says %s", where, f->name,
           f->value);
    else if (strcmp(g->value ? g->value : "", f->value) != 0)
      diff(c, "%s: field %s is %s, the log says %s", where, f->name,
           g->value ? g->value : "", f->value);
  }
  for (size_t j = 0; j < got->count; j++)
    if (!hm_find(want, got->items[j].name))
      diff(c, "%s: field %s = %s is not in the log", where, got->items[j].name,
           got->items[j].value ? got->items[j].value : "");
}

/* A Redis sorted set (read highest first) against its model. */
static void compare_zset(checker *c, const char *where, zmodel *want,
                         const esc_query_items *got) {
  if (want->n > 1)
    qsort(want->e, want->n, sizeof *want->e, zentry_rev_cmp);
  if (got->count != want->n)
    diff(c, "%s: %zu members, the log says %zu", where, got->count, want->n);
  for (size_t i = 0; i < want->n && i < got->count; i++)
    if (strcmp(got->items[i].name, want->e[i].member) != 0 ||
        got->items[i].score != want->e[i].score) {
      diff(c, "%s: #%zu is %s (%.0f), the log says %s (%.0f)", where, i + 1,
           got->items[i].name, got->items[i].score, want->e[i].member,
           want->e[i].score);
      break;
    }
}

static bool check_rc(checker *c, esc_status rc, const esc_error *err,
                     const char *what) {
  if (!rc)
    return true;
  diff(c, "%s: %s (%s)", what, err->msg, esc_strerror(rc));
  return false;
}

/* order_details: every hash field, and order_query_show against the order
 * decider's fold of the same events. */
static void verify_details(checker *c, model *m) {
  begin(c, "order_details");
  size_t typed = 0;
  for (size_t i = 0; i < m->n_orders; i++) {
    exp_order *o = &m->orders[i];
    if (o->details.n == 0)
      continue; /* no decodable event: nothing projected */
    char suffix[ESC_STREAM_ID_MAX + 16];
    esc_query_items h = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    snprintf(suffix, sizeof suffix, "order:%s", o->id);
    if (check_rc(c, esc_query_hash(c->q, "order_details", suffix, &h, &err),
                 &err, suffix))
      compare_hash(c, suffix, &o->details, &h);
    esc_query_items_release(&h);
    if (!o->folded || o->state.status == ORDER_NONE ||
        strlen(o->id) >= ORDER_ID_MAX)
      continue;
    order_view v;
    typed++;
    if (!check_rc(c, order_query_show(c->q, o->id, &v, &err), &err, o->id))
      continue;
    const order_state *s = &o->state;
    if (strcmp(v.status, order_status_name(s->status)) != 0 ||
        strcmp(v.customer, s->customer) != 0 ||
        strcmp(v.currency, s->currency) != 0 || v.total != s->total ||
        v.paid != s->paid || v.lines != s->line_count)
      diff(c,
           "order %s shows %s/%s/%s total %" PRId64 " paid %" PRId64
           " lines %d; the decider folds %s/%s/%s total %" PRId64
           " paid %" PRId64 " lines %d",
           o->id, v.status, v.customer, v.currency, v.total, v.paid, v.lines,
           order_status_name(s->status), s->customer, s->currency, s->total,
           s->paid, s->line_count);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu orders", typed);
  end(c, what);
}

static void verify_customers(checker *c, model *m) {
  begin(c, "orders_by_customer");
  for (size_t i = 0; i < m->n_customers; i++) {
    exp_customer *cu = &m->customers[i];
    char suffix[ESC_STREAM_ID_MAX + 16];
    esc_query_items z = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    snprintf(suffix, sizeof suffix, "customer:%s", cu->name);
    if (check_rc(c,
                 esc_query_zrange(c->q, "orders_by_customer", suffix, 0, -1,
                                  true, &z, &err),
                 &err, suffix))
      compare_zset(c, suffix, &cu->orders, &z);
    esc_query_items_release(&z);
    if (strlen(cu->name) >= ORDER_CUSTOMER_MAX)
      continue;
    /* The typed query lists the same ids, newest first. */
    char **ids = NULL;
    size_t n = 0;
    if (!check_rc(c, order_query_of_customer(c->q, cu->name, &ids, &n, &err),
                  &err, cu->name))
      continue;
    bool same = n == cu->orders.n;
    for (size_t k = 0; same && k < n; k++)
      same = strcmp(ids[k], cu->orders.e[k].member) == 0;
    if (!same)
      diff(c, "orders of %s: %zu ids, not the log's %zu newest first", cu->name,
           n, cu->orders.n);
    order_query_free_ids(ids, n);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu customers", m->n_customers);
  end(c, what);
}

static int str_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int item_cmp(const void *a, const void *b) {
  return strcmp(((const esc_query_item *)a)->name,
                ((const esc_query_item *)b)->name);
}

static void verify_statuses(checker *c, model *m) {
  begin(c, "orders_by_status");
  size_t members = 0;
  char **want = xrealloc(NULL, (m->n_orders + 1) * sizeof *want);
  for (int s = 0; s < STATUS_COUNT; s++) {
    const char *name = order_status_name(STATUSES[s]);
    size_t n = 0;
    for (size_t i = 0; i < m->n_orders; i++)
      if (m->orders[i].status_set == s)
        want[n++] = m->orders[i].id;
    if (n > 1)
      qsort(want, n, sizeof *want, str_cmp);
    members += n;
    char suffix[48];
    esc_query_items got = ESC_QUERY_ITEMS_INIT;
    esc_error err = ESC_ERROR_INIT;
    int64_t count = -1;
    snprintf(suffix, sizeof suffix, "status:%s", name);
    if (!check_rc(c,
                  esc_query_set(c->q, "orders_by_status", suffix, &got, &err),
                  &err, suffix))
      continue;
    if (got.count > 1)
      qsort(got.items, got.count, sizeof *got.items, item_cmp);
    size_t a = 0, b = 0;
    while (a < n || b < got.count) {
      int cmp = a == n           ? 1
                : b == got.count ? -1
                                 : strcmp(want[a], got.items[b].name);
      if (cmp < 0)
        diff(c, "%s: %s missing", suffix, want[a++]);
      else if (cmp > 0)
        diff(c, "%s: %s should not be there", suffix, got.items[b++].name);
      else
        a++, b++;
    }
    esc_query_items_release(&got);
    if (check_rc(c, order_query_status_count(c->q, name, &count, &err), &err,
                 suffix) &&
        count != (int64_t)n)
      diff(c, "%s: count %" PRId64 ", the log says %zu", suffix, count, n);
  }
  free(want);
  char what[64];
  snprintf(what, sizeof what, "%d sets, %zu members", STATUS_COUNT, members);
  end(c, what);
}

static void verify_products(checker *c, model *m) {
  begin(c, "top_products");
  esc_query_items got = ESC_QUERY_ITEMS_INIT, top = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (check_rc(c,
               esc_query_zrange(c->q, "top_products", "products", 0, -1, true,
                                &got, &err),
               &err, "products"))
    compare_zset(c, "products", &m->products, &got); /* sorts the model */
  if (check_rc(c, order_query_top_products(c->q, 5, &top, &err), &err,
               "top 5")) {
    size_t want = m->products.n < 5 ? m->products.n : 5;
    bool same = top.count == want;
    for (size_t i = 0; same && i < want; i++)
      same = strcmp(top.items[i].name, m->products.e[i].member) == 0 &&
             top.items[i].score == m->products.e[i].score;
    if (!same)
      diff(c, "the top 5 query differs from the log's top 5");
  }
  esc_query_items_release(&got);
  esc_query_items_release(&top);
  char what[64];
  snprintf(what, sizeof what, "%zu products", m->products.n);
  end(c, what);
}

static void verify_revenue(checker *c, model *m) {
  begin(c, "revenue");
  for (size_t i = 0; i < m->n_days; i++) {
    int64_t cents = 0;
    esc_error err = ESC_ERROR_INIT;
    if (check_rc(c, order_query_revenue(c->q, m->days[i].day, &cents, &err),
                 &err, m->days[i].day) &&
        cents != m->days[i].cents)
      diff(c, "day:%s is %" PRId64 ", the log says %" PRId64, m->days[i].day,
           cents, m->days[i].cents);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu day(s)", m->n_days);
  end(c, what);
}

static void verify_stock(checker *c, model *m) {
  begin(c, "stock");
  esc_query_items got = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (check_rc(c, esc_query_hash(c->q, "stock", "levels", &got, &err), &err,
               "levels"))
    compare_hash(c, "levels", &m->levels, &got);
  esc_query_items_release(&got);
  for (size_t i = 0; i < m->levels.n; i++) {
    int64_t available = 0;
    const hfield *f = &m->levels.f[i];
    if (check_rc(c, order_query_stock(c->q, f->name, &available, &err), &err,
                 f->name) &&
        available != strtoll(f->value, NULL, 10))
      diff(c, "stock of %s reads %" PRId64 ", the log says %s", f->name,
           available, f->value);
  }
  char what[64];
  snprintf(what, sizeof what, "%zu products", m->levels.n);
  end(c, what);
}

/* Events the projections parked (the six of them), for the report. */
static size_t parked_count(const demo *d) {
  esc_dead_letter *dl = NULL;
  size_t n = 0, ours = 0;
  if (esc_dead_letters_list(d->o.pg_url, d->o.schema, NULL, false, &dl, &n,
                            NULL))
    return 0;
  for (size_t i = 0; i < n; i++)
    for (int p = 0; p < ORDER_PROJECTION_COUNT; p++)
      if (strcmp(dl[i].projection, d->projections[p].name) == 0)
        ours++;
  free(dl);
  return ours;
}

long verify(const demo *d, esc_query *q, model *m) {
  checker c = {q, "", 0, 0};
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(esc_position_cmp(&m->order_next, &m->inventory_next) > 0
                          ? &m->order_next
                          : &m->inventory_next,
                      pos);
  printf("\n==> checking every read model against the log\n\n");
  printf("recomputed from %" PRId64 " events (categories order and "
         "inventory, up to %s): %zu orders, %zu products\n",
         m->events, pos, m->n_orders, m->n_inventory);
  if (m->skipped)
    printf("skipped %" PRId64 " event(s) the order domain cannot decode, as "
           "the projections do (first: %s)\n",
           m->skipped, m->first_skip);
  size_t parked = parked_count(d);
  if (parked)
    printf("%zu event(s) parked as dead letters by the projections "
           "(esc dead-letters)\n",
           parked);
  verify_details(&c, m);
  verify_customers(&c, m);
  verify_statuses(&c, m);
  verify_products(&c, m);
  verify_revenue(&c, m);
  verify_stock(&c, m);
  return c.total_diffs;
}

/*
 * order-demo: the recomputation - every event of categories order and
 * inventory, decoded with the domain's registry and mapped as
 * samples/order/projections.c maps it; each order's state also folded with
 * the order decider.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const order_status STATUSES[] = {ORDER_STATUS_PLACED,  ORDER_STATUS_CONFIRMED,
                                 ORDER_STATUS_READY,   ORDER_STATUS_PAID,
                                 ORDER_STATUS_SHIPPED, ORDER_STATUS_CANCELLED};
_Static_assert(sizeof STATUSES / sizeof STATUSES[0] == STATUS_COUNT,
               "STATUS_COUNT is the number of statuses");

/* What follows "<category>-" in a stream id, as projections.c has it. */
static const char *stream_entity(const char *stream_id) {
  const char *dash = strchr(stream_id, '-');
  return dash ? dash + 1 : stream_id;
}

/* Every event type's struct fits in here. */
typedef union any_event {
  order_placed placed;
  order_item_added added;
  order_item_removed removed;
  order_confirmed confirmed;
  order_ready ready;
  order_paid paid;
  order_shipped shipped;
  order_cancelled cancelled;
  stock_added stock_added;
  stock_reserved reserved;
  stock_released released;
} any_event;

static exp_order *model_order(model *m, const char *id) {
  size_t i;
  if (sm_get(&m->order_index, id, &i))
    return &m->orders[i];
  if (m->n_orders == m->cap_orders) {
    m->cap_orders = m->cap_orders ? m->cap_orders * 2 : 256;
    m->orders = xrealloc(m->orders, m->cap_orders * sizeof *m->orders);
  }
  exp_order *o = &m->orders[m->n_orders];
  memset(o, 0, sizeof *o);
  o->id = xstrdup(id);
  o->status_set = -1;
  order_decider()->init(&o->state);
  sm_add(&m->order_index, id, m->n_orders++);
  return o;
}

static exp_customer *model_customer(model *m, const char *name) {
  size_t i;
  if (sm_get(&m->customer_index, name, &i))
    return &m->customers[i];
  if (m->n_customers == m->cap_customers) {
    m->cap_customers = m->cap_customers ? m->cap_customers * 2 : 64;
    m->customers =
        xrealloc(m->customers, m->cap_customers * sizeof *m->customers);
  }
  exp_customer *c = &m->customers[m->n_customers];
  memset(c, 0, sizeof *c);
  c->name = xstrdup(name);
  sm_add(&m->customer_index, name, m->n_customers++);
  return c;
}

static exp_stream *model_inventory(model *m, const char *sku) {
  size_t i;
  if (sm_get(&m->inventory_index, sku, &i))
    return &m->inventory[i];
  if (m->n_inventory == m->cap_inventory) {
    m->cap_inventory = m->cap_inventory ? m->cap_inventory * 2 : 32;
    m->inventory =
        xrealloc(m->inventory, m->cap_inventory * sizeof *m->inventory);
  }
  exp_stream *s = &m->inventory[m->n_inventory];
  s->sku = xstrdup(sku);
  s->version = 0;
  sm_add(&m->inventory_index, sku, m->n_inventory++);
  return s;
}

static void model_revenue(model *m, const esc_recorded_event *rec,
                          int64_t delta) {
  char day[16];
  time_t t = (time_t)(rec->recorded_at_us / 1000000);
  struct tm tm;
  if (!gmtime_r(&t, &tm) || strftime(day, sizeof day, "%Y-%m-%d", &tm) == 0)
    snprintf(day, sizeof day, "1970-01-01");
  for (size_t i = 0; i < m->n_days; i++)
    if (strcmp(m->days[i].day, day) == 0) {
      m->days[i].cents += delta;
      return;
    }
  m->days = xrealloc(m->days, (m->n_days + 1) * sizeof *m->days);
  snprintf(m->days[m->n_days].day, sizeof m->days[0].day, "%s", day);
  m->days[m->n_days++].cents = delta;
}

/* HSET line:<sku> qty * price, per line (one line per sku). */
static void put_line_fields(hmodel *h, const order_line *lines, int count) {
  char field[ORDER_SKU_MAX + 8];
  for (int i = 0; i < count; i++) {
    snprintf(field, sizeof field, "line:%s", lines[i].sku);
    hm_set_i64(h, field, lines[i].qty * lines[i].price);
  }
}

/* order_details, as details_handle writes it. */
static void apply_details(hmodel *h, const esc_event *ev) {
  char field[ORDER_SKU_MAX + 8];
  const esc_event_type *t = ev->type;
  if (t == &ORDER_PLACED) {
    const order_placed *e = ev->data;
    int64_t total = 0;
    for (int i = 0; i < e->line_count; i++)
      total += e->lines[i].qty * e->lines[i].price;
    hm_set(h, "customer", e->customer);
    hm_set(h, "status", order_status_name(ORDER_STATUS_PLACED));
    hm_set(h, "currency", e->currency);
    hm_set_i64(h, "total", total);
    hm_set_i64(h, "lines", e->line_count);
    hm_set(h, "paid", "0");
    hm_set(h, "reserved", "0");
    put_line_fields(h, e->lines, e->line_count);
  } else if (t == &ORDER_ITEM_ADDED) {
    const order_item_added *e = ev->data;
    put_line_fields(h, &e->line, 1);
    hm_incr(h, "total", e->line.qty * e->line.price);
    hm_incr(h, "lines", 1);
  } else if (t == &ORDER_ITEM_REMOVED) {
    const order_item_removed *e = ev->data;
    snprintf(field, sizeof field, "line:%s", e->sku);
    hm_del(h, field);
    hm_incr(h, "lines", -1);
  } else if (t == &ORDER_CONFIRMED) {
    const order_confirmed *e = ev->data;
    hm_set(h, "status", order_status_name(ORDER_STATUS_CONFIRMED));
    hm_set_i64(h, "total", e->total);
    hm_set_i64(h, "lines", e->line_count);
    put_line_fields(h, e->lines, e->line_count);
  } else if (t == &ORDER_READY) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_READY));
    hm_set(h, "reserved", "1");
  } else if (t == &ORDER_PAID) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_PAID));
    hm_set_i64(h, "paid", ((const order_paid *)ev->data)->amount);
  } else if (t == &ORDER_SHIPPED) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_SHIPPED));
  } else if (t == &ORDER_CANCELLED) {
    hm_set(h, "status", order_status_name(ORDER_STATUS_CANCELLED));
  }
}

static int status_index(order_status s) {
  for (int i = 0; i < STATUS_COUNT; i++)
    if (STATUSES[i] == s)
      return i;
  return -1;
}

/* orders_by_status, as by_status_handle writes it: each event moves the
 * order into its status's set, except that OrderReady only moves it out of
 * "confirmed" (SMOVE): a paid order stays paid. */
static void apply_status(exp_order *o, const esc_event *ev) {
  const esc_event_type *t = ev->type;
  if (t == &ORDER_READY) {
    if (o->status_set == status_index(ORDER_STATUS_CONFIRMED))
      o->status_set = status_index(ORDER_STATUS_READY);
  } else if (t == &ORDER_PLACED) {
    o->status_set = status_index(ORDER_STATUS_PLACED);
  } else if (t == &ORDER_CONFIRMED) {
    o->status_set = status_index(ORDER_STATUS_CONFIRMED);
  } else if (t == &ORDER_PAID) {
    o->status_set = status_index(ORDER_STATUS_PAID);
  } else if (t == &ORDER_SHIPPED) {
    o->status_set = status_index(ORDER_STATUS_SHIPPED);
  } else if (t == &ORDER_CANCELLED) {
    o->status_set = status_index(ORDER_STATUS_CANCELLED);
  }
}

static void apply_order_event(model *m, const esc_event *ev) {
  const esc_recorded_event *rec = ev->recorded;
  exp_order *o = model_order(m, stream_entity(rec->stream_id));
  apply_details(&o->details, ev);
  apply_status(o, ev);
  order_decider()->evolve(&o->state, ev);
  o->folded = true;
  if (ev->type == &ORDER_PLACED) { /* orders_by_customer */
    const order_placed *e = ev->data;
    zm_incr(&model_customer(m, e->customer)->orders, o->id,
            (double)(rec->recorded_at_us / 1000), true);
  } else if (ev->type == &ORDER_SHIPPED) { /* top_products */
    const order_shipped *e = ev->data;
    for (int i = 0; i < e->line_count; i++)
      zm_incr(&m->products, e->lines[i].sku, (double)e->lines[i].qty, false);
  } else if (ev->type == &ORDER_PAID) { /* revenue */
    int64_t amount = ((const order_paid *)ev->data)->amount;
    if (amount != 0)
      model_revenue(m, rec, amount);
  } else if (ev->type == &ORDER_CANCELLED) {
    int64_t refund = ((const order_cancelled *)ev->data)->refund;
    if (refund != 0)
      model_revenue(m, rec, -refund);
  }
}

/* stock, as stock_handle writes it. */
static void apply_inventory_event(model *m, const esc_event *ev) {
  int64_t delta = 0;
  if (ev->type == &STOCK_ADDED)
    delta = ((const stock_added *)ev->data)->qty;
  else if (ev->type == &STOCK_RESERVED)
    delta = -((const stock_reserved *)ev->data)->qty;
  else if (ev->type == &STOCK_RELEASED)
    delta = ((const stock_released *)ev->data)->qty;
  if (delta != 0)
    hm_incr(&m->levels, stream_entity(ev->recorded->stream_id), delta);
}

/* Notes the stream version (for the completeness check); decodes the event
 * and applies it. Events the registry cannot decode are skipped: the
 * projections skip them too (unknown types) or park them as dead letters
 * (bad payloads), so neither changes a read model. */
static void model_event(model *m, bool is_order, const esc_recorded_event *rec,
                        msgpack_zone *zone) {
  const char *entity = stream_entity(rec->stream_id);
  if (is_order) {
    exp_order *o = model_order(m, entity);
    if (rec->stream_version > o->version)
      o->version = rec->stream_version;
  } else {
    exp_stream *s = model_inventory(m, entity);
    if (rec->stream_version > s->version)
      s->version = rec->stream_version;
  }
  m->events++;
  any_event data;
  const esc_event_type *type = NULL;
  esc_error err = ESC_ERROR_INIT;
  msgpack_zone_clear(zone);
  if (esc_event_decode(order_events(), rec, zone, &data, &type, &err)) {
    if (m->skipped++ == 0)
      snprintf(m->first_skip, sizeof m->first_skip, "%s", err.msg);
    return;
  }
  esc_event ev = {type, &data, rec};
  if (is_order)
    apply_order_event(m, &ev);
  else
    apply_inventory_event(m, &ev);
}

/* Reads one category from *next on until nothing more is readable. */
static esc_status read_category(esc_store *st, model *m, const char *category,
                                esc_position *next, esc_error *err) {
  esc_events batch = ESC_EVENTS_INIT;
  msgpack_zone zone;
  esc_status rc = ESC_OK;
  if (!msgpack_zone_init(&zone, 4096))
    return esc_error_set(err, ESC_ENOMEM, "msgpack zone: out of memory");
  bool is_order = strcmp(category, "order") == 0;
  for (;;) {
    rc = esc_read_all(st, category, *next, 1000, &batch, err);
    if (rc || batch.count == 0)
      break;
    for (size_t i = 0; i < batch.count; i++)
      model_event(m, is_order, &batch.items[i], &zone);
    *next = batch.next;
  }
  esc_events_release(&batch);
  msgpack_zone_destroy(&zone);
  return rc;
}

/* Whether every stream of the category is read up to its version; the
 * first one that is not goes into why. */
static esc_status streams_complete(esc_store *st, model *m, bool is_order,
                                   bool *complete, char *why, size_t size,
                                   esc_error *err) {
  esc_stream_info *page = xrealloc(NULL, 500 * sizeof *page);
  char after[ESC_STREAM_ID_MAX + 1] = "";
  esc_status rc = ESC_OK;
  *complete = true;
  for (;;) {
    size_t n = 0;
    rc = esc_stream_list(st, is_order ? "order" : "inventory",
                         after[0] ? after : NULL, page, 500, &n, err);
    if (rc || n == 0)
      break;
    for (size_t i = 0; i < n && *complete; i++) {
      if (page[i].tombstoned || page[i].version == 0)
        continue;
      const char *entity = stream_entity(page[i].stream_id);
      size_t k;
      int64_t seen = 0;
      if (is_order && sm_get(&m->order_index, entity, &k))
        seen = m->orders[k].version;
      else if (!is_order && sm_get(&m->inventory_index, entity, &k))
        seen = m->inventory[k].version;
      if (seen < page[i].version) {
        *complete = false;
        snprintf(why, size, "%s is at version %" PRId64 ", read up to %" PRId64,
                 page[i].stream_id, page[i].version, seen);
      }
    }
    snprintf(after, sizeof after, "%s", page[n - 1].stream_id);
    if (!*complete || n < 500)
      break;
  }
  free(page);
  return rc;
}

/*
 * Reads the whole log of both categories into the model. Subscription
 * reads stop at the oldest running transaction (anywhere on the server),
 * so it reads until every stream is read up to the version the streams
 * table gives it, waiting for the horizon if need be.
 */
esc_status recompute(esc_store *st, model *m, esc_error *err) {
  int64_t deadline = now_ms() + CATCH_UP_TIMEOUT_MS;
  char why[300] = "";
  for (;;) {
    bool orders_ok = false, inventory_ok = false;
    esc_status rc = read_category(st, m, "order", &m->order_next, err);
    if (!rc)
      rc = read_category(st, m, "inventory", &m->inventory_next, err);
    if (!rc)
      rc = streams_complete(st, m, true, &orders_ok, why, sizeof why, err);
    if (!rc && orders_ok)
      rc = streams_complete(st, m, false, &inventory_ok, why, sizeof why, err);
    if (rc || (orders_ok && inventory_ok))
      return rc;
    if (now_ms() > deadline)
      return esc_error_set(err, ESC_ETIMEDOUT,
                           "the log is not fully readable after %d s (%s); "
                           "a long transaction holds the horizon back: see "
                           "`esc stats`",
                           CATCH_UP_TIMEOUT_MS / 1000, why);
    sleep_ms(50);
  }
}

void model_free(model *m) {
  for (size_t i = 0; i < m->n_orders; i++) {
    free(m->orders[i].id);
    hm_free(&m->orders[i].details);
  }
  free(m->orders);
  sm_free(&m->order_index);
  for (size_t i = 0; i < m->n_customers; i++) {
    free(m->customers[i].name);
    zm_free(&m->customers[i].orders);
  }
  free(m->customers);
  sm_free(&m->customer_index);
  for (size_t i = 0; i < m->n_inventory; i++)
    free(m->inventory[i].sku);
  free(m->inventory);
  sm_free(&m->inventory_index);
  zm_free(&m->products);
  free(m->days);
  hm_free(&m->levels);
}

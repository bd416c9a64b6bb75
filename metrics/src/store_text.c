/*
 * The store's and its projections' gauges: what `esc metrics` prints and
 * the HTTP endpoint serves, from one place. Only cheap lookups: no
 * count(*) of the log (a partition's lag counts the events after its
 * checkpoint, which is small while it keeps up).
 */
#include "metrics_int.h"

#include <stdlib.h>
#include <string.h>

/* One projection gauge: its name, help and value of a partition. */
typedef struct gauge {
  const char *name;
  const char *help;
  double (*value)(const esc_partition_status *s);
  bool from_redis; /* not printed for a line whose Redis is unknown: a 0
                      there would read as "caught up" */
} gauge;

static double lag_events(const esc_partition_status *s) {
  return (double)s->lag_events;
}
static double lag_seconds(const esc_partition_status *s) {
  return s->lag_seconds;
}
static double lag_estimated(const esc_partition_status *s) {
  return s->lag_estimated ? 1 : 0;
}
static double generation(const esc_partition_status *s) {
  return (double)s->generation;
}
static double checkpoint(const esc_partition_status *s) {
  return (double)s->checkpoint.global;
}
static double lease_held(const esc_partition_status *s) {
  return s->lease_pid ? 1 : 0;
}
static double dead_letters(const esc_partition_status *s) {
  return (double)s->dead_letters;
}
static double rebuilding(const esc_partition_status *s) {
  return s->rebuilding ? 1 : 0;
}
static double rebuild_lag(const esc_partition_status *s) {
  return s->rebuilding ? (double)s->rebuild_lag_events : 0;
}
static double foreign(const esc_partition_status *s) {
  return s->foreign ? 1 : 0;
}
static double stopped(const esc_partition_status *s) {
  return strcmp(s->state, "stopped") == 0 ? 1 : 0;
}

static const gauge gauges[] = {
    {"esc_projection_lag_events",
     "Readable events of the partition's streams after its checkpoint.",
     lag_events, true},
    {"esc_projection_lag_seconds",
     "Age of the oldest event the partition has not applied.", lag_seconds,
     true},
    {"esc_projection_lag_estimated",
     "1 when the lag passed the 10000 events a scrape counts and the rest "
     "is estimated from positions.",
     lag_estimated, true},
    {"esc_projection_generation", "The generation queries read.", generation,
     true},
    {"esc_projection_checkpoint_position",
     "Global position the partition has applied up to.", checkpoint, true},
    {"esc_projection_lease_held", "1 when a worker holds the partition.",
     lease_held, false},
    {"esc_projection_dead_letters", "Parked events not yet resolved.",
     dead_letters, false},
    {"esc_projection_rebuilding", "1 while a rebuild runs.", rebuilding, true},
    {"esc_projection_rebuild_lag_events",
     "Events the rebuild has still to apply.", rebuild_lag, true},
    {"esc_projection_foreign",
     "1 when the projection's Redis keys belong to another event store.",
     foreign, true},
    {"esc_projection_stopped",
     "1 when the partition stopped on a failure (esc projections says why).",
     stopped, true},
};

/* The states of esc_partition_status.state, one series each. */
static const char *const states[] = {"running", "idle", "stopped", "unknown"};

static void store_gauge(struct esc__text *t, const char *name,
                        const char *help, const char *schema, const char *fmt,
                        double v) {
  esc__text_header(t, name, "gauge", help);
  esc__text_printf(t, "%s{schema=\"", name);
  esc__text_label_value(t, schema);
  esc__text_printf(t, "\"} ");
  esc__text_printf(t, fmt, v);
  esc__text_printf(t, "\n");
}

static void store_lines(struct esc__text *t, const char *schema,
                        const esc_store_stats *s,
                        const esc_order_report *order) {
  double held = s->holder_pid && s->holder_age_s > 0 ? s->holder_age_s : 0;
  store_gauge(t, "esc_store_head_position",
              "Global position subscribers can read up to.", schema, "%.0f",
              (double)s->head.global);
  store_gauge(t, "esc_store_max_position", "Highest global position stored.",
              schema, "%.0f", (double)s->max_global);
  store_gauge(t, "esc_store_horizon_held_seconds",
              "Age of the oldest transaction holding subscribers back; 0: "
              "none.",
              schema, "%.3f", held);
  store_gauge(t, "esc_store_order_inversions",
              "Events the last order check found read before their stream's "
              "previous version.",
              schema, "%.0f", (double)order->inversions);
}

/* Gauges that lines of a repartition's new layout (rebuild_only) have. */
static bool of_rebuild_lines(const gauge *g) {
  return g->value == lease_held || g->value == rebuilding ||
         g->value == rebuild_lag;
}

bool esc__metrics_runs(const esc_worker_metrics *m,
                       const esc_partition_status *s) {
  for (size_t i = 0; i < m->count; i++)
    if (strcmp(m->parts[i].projection, s->projection) == 0)
      return true;
  return false;
}

/* {schema="S",projection="P",partition="N" (left open for more labels) */
static void partition_labels(struct esc__text *t, const char *schema,
                             const esc_partition_status *s) {
  esc__text_partition_labels(t, schema, s->kind, s->projection, s->partition);
  if (s->rebuild_only)
    esc__text_printf(t, ",rebuild_layout=\"%d\"", s->rebuild_partitions);
}

static bool shown(const esc_partition_status *s,
                  const esc_worker_metrics *only) {
  return !only || esc__metrics_runs(only, s);
}

static void state_lines(struct esc__text *t, const char *schema,
                        const esc_partition_status *st, size_t n,
                        const esc_worker_metrics *only) {
  esc__text_header(t, "esc_projection_state", "gauge",
                   "1 for the state the partition is in (running, idle, "
                   "stopped, unknown), 0 for the others.");
  for (size_t i = 0; i < n; i++) {
    if (st[i].rebuild_only || !shown(&st[i], only))
      continue;
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
      esc__text_printf(t, "esc_projection_state");
      partition_labels(t, schema, &st[i]);
      esc__text_printf(t, ",state=\"%s\"} %d\n", states[k],
                       strcmp(st[i].state, states[k]) == 0);
    }
  }
}

/* A repartition's new layout numbers its partitions from 0 too: its lines
 * carry rebuild_layout, so that no series is printed twice. */
static void projection_lines(struct esc__text *t, const char *schema,
                             const esc_partition_status *st, size_t n,
                             const esc_worker_metrics *only) {
  size_t any = 0;
  for (size_t i = 0; i < n; i++)
    any += shown(&st[i], only);
  for (size_t g = 0; g < sizeof gauges / sizeof gauges[0] && any > 0; g++) {
    esc__text_header(t, gauges[g].name, "gauge", gauges[g].help);
    for (size_t i = 0; i < n; i++) {
      if (!shown(&st[i], only))
        continue;
      if (st[i].rebuild_only && !of_rebuild_lines(&gauges[g]))
        continue;
      if (gauges[g].from_redis && strcmp(st[i].state, "unknown") == 0)
        continue;
      esc__text_printf(t, "%s", gauges[g].name);
      partition_labels(t, schema, &st[i]);
      esc__text_printf(t, "} %.15g\n", gauges[g].value(&st[i]));
    }
  }
  if (any > 0)
    state_lines(t, schema, st, n, only);
}

void esc__metrics_store_render(struct esc__text *t, const char *schema,
                               const esc_store_stats *stats,
                               const esc_order_report *order,
                               const esc_partition_status *st, size_t n,
                               const esc_worker_metrics *only) {
  store_lines(t, schema, stats, order);
  /* Without Redis the projections' lines still come, from PostgreSQL;
   * this says why their Redis gauges are missing. */
  bool redis_down = n > 0 && strcmp(st[0].state, "unknown") == 0;
  store_gauge(t, "esc_redis_reachable",
              "1 when the projections' Redis answered (0: their lag is "
              "unknown).",
              schema, "%.0f", redis_down ? 0 : 1);
  projection_lines(t, schema, st, n, only);
}

esc_status esc__metrics_store(struct esc__text *t, esc_store *store,
                              esc_projection_monitor *mon, const char *pg_url,
                              const char *redis_url, const char *key_prefix,
                              const esc_worker_metrics *only, esc_error *err) {
  const char *schema = esc_store_schema(store);
  esc_store_stats stats;
  esc_order_report order;
  esc_partition_status *st = NULL;
  size_t n = 0;
  esc_status rc = esc_store_health(store, &stats, err);
  if (!rc)
    rc = esc_order_recorded(store, &order, err);
  if (!rc)
    rc = mon ? esc_projection_monitor_status(mon, &st, &n, err)
             : esc_projection_status(pg_url, redis_url, schema, key_prefix,
                                     &st, &n, err);
  if (!rc)
    esc__metrics_store_render(t, schema, &stats, &order, st, n, only);
  free(st);
  return rc;
}

esc_status esc_metrics_store_text(esc_store *store, const char *pg_url,
                                  const char *redis_url,
                                  const char *key_prefix, char **out,
                                  esc_error *err) {
  struct esc__text t = {NULL, 0, 0, false};
  *out = NULL;
  esc_status rc =
      esc__metrics_store(&t, store, NULL, pg_url, redis_url, key_prefix, NULL,
                         err);
  if (!rc && (t.failed || !t.data))
    rc = esc_error_set(err, ESC_ENOMEM, "metrics: out of memory");
  if (rc) {
    esc__text_release(&t);
    return rc;
  }
  *out = t.data;
  return ESC_OK;
}

/*
 * A worker's own figures (esc_worker_metrics_get): what this process
 * applied and how fast, the leases it holds, its connections. Counters
 * start at 0 with the process, as Prometheus expects of a counter.
 */
#include "metrics_int.h"

#include <stdint.h>

/* {schema="S",projection="P",partition="N" (left open) */
static void labels(struct esc__text *t, const char *schema,
                   const esc_partition_metrics *p) {
  esc__text_partition_labels(t, schema, p->kind, p->projection, p->partition);
}

typedef struct counter {
  const char *name;
  const char *type;
  const char *help;
  int64_t (*value)(const esc_partition_metrics *p);
} counter;

static int64_t applied(const esc_partition_metrics *p) {
  return p->events_applied;
}
static int64_t batches(const esc_partition_metrics *p) {
  return p->batches;
}
static int64_t parked(const esc_partition_metrics *p) {
  return p->dead_letters_parked;
}
static int64_t retried(const esc_partition_metrics *p) {
  return p->dead_letters_retried;
}
static int64_t owned(const esc_partition_metrics *p) {
  return p->leased;
}

static const counter counters[] = {
    {"esc_projection_events_applied_total", "counter",
     "Events this process's applied batches moved the checkpoint past.",
     applied},
    {"esc_projection_batches_total", "counter",
     "Batches Redis applied for this process.", batches},
    {"esc_projection_dead_letters_parked_total", "counter",
     "Events this process parked as dead letters.", parked},
    {"esc_projection_dead_letters_retried_total", "counter",
     "Dead letters this process applied on request.", retried},
    {"esc_projection_lease_owned", "gauge",
     "1 when this process holds the partition's lease.", owned},
};

static void histogram(struct esc__text *t, const char *schema,
                      const esc_worker_metrics *m) {
  const char *name = "esc_projection_batch_duration_seconds";
  esc__text_header(t, name, "histogram",
                   "Time from sending a batch to Redis to its reply, for "
                   "batches Redis applied.");
  for (size_t i = 0; i < m->count; i++) {
    const esc_partition_metrics *p = &m->parts[i];
    struct esc__text open = {0};
    esc_latency h = {.count = (uint64_t)p->batches, .sum_s = p->batch_seconds};
    memcpy(h.buckets, p->batch_buckets, sizeof h.buckets);
    labels(&open, schema, p);
    t->failed = t->failed || open.failed;
    esc__text_histogram(t, name, open.data ? open.data : "{", &h);
    esc__text_release(&open);
  }
}

static void connection(struct esc__text *t, const char *schema,
                       const char *which, const char *name, double v) {
  esc__text_printf(t, "%s{schema=\"", name);
  esc__text_label_value(t, schema);
  esc__text_printf(t, "\",connection=\"%s\"} %.0f\n", which, v);
}

void esc__metrics_worker(struct esc__text *t, const char *schema,
                         const esc_worker_metrics *m) {
  for (size_t c = 0; c < sizeof counters / sizeof counters[0] && m->count;
       c++) {
    esc__text_header(t, counters[c].name, counters[c].type, counters[c].help);
    for (size_t i = 0; i < m->count; i++) {
      esc__text_printf(t, "%s", counters[c].name);
      labels(t, schema, &m->parts[i]);
      esc__text_printf(t, "} %lld\n", (long long)counters[c].value(&m->parts[i]));
    }
  }
  if (m->count)
    histogram(t, schema, m);
  esc__text_header(t, "esc_connection_up", "gauge",
                   "1 while the worker's connection works (its last use or "
                   "attempt succeeded).");
  connection(t, schema, "postgres", "esc_connection_up", m->pg_up);
  connection(t, schema, "redis", "esc_connection_up", m->redis_up);
  esc__text_header(t, "esc_connection_reconnects_total", "counter",
                   "Connections the worker opened again after losing one.");
  connection(t, schema, "postgres", "esc_connection_reconnects_total",
             (double)m->pg_reconnects);
  connection(t, schema, "redis", "esc_connection_reconnects_total",
             (double)m->redis_reconnects);
  if (m->replica) {
    esc__text_header(t, "esc_replica_reading", "gauge",
                     "1 while the worker reads the log from its standby, 0 "
                     "while it has abandoned it for the primary.");
    esc__text_printf(t, "esc_replica_reading{schema=\"");
    esc__text_label_value(t, schema);
    esc__text_printf(t, "\"} %d\n", m->replica_reading);
    esc__text_header(t, "esc_replica_lag_events", "gauge",
                     "Events readable on the primary but not yet on the "
                     "standby, at the worker's last idle round.");
    esc__text_printf(t, "esc_replica_lag_events{schema=\"");
    esc__text_label_value(t, schema);
    esc__text_printf(t, "\"} %lld\n", (long long)m->replica_lag_events);
  }
  esc__text_header(t, "esc_worker_running", "gauge",
                   "1 while the worker's loop runs.");
  esc__text_printf(t, "esc_worker_running{schema=\"");
  esc__text_label_value(t, schema);
  esc__text_printf(t, "\"} %d\n", m->running);
}

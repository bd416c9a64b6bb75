/* Latency histograms and the store's own client figures (appends). */
#include "store_int.h"
#include <esc_internal/stats.h>

#include <string.h>
#include <time.h>

const double esc_latency_bounds[ESC_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,   0.25,   0.5,   1,    2.5,  10};

int64_t esc__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

size_t esc__latency_bucket(double seconds) {
  size_t b = 0;
  while (b < ESC_LATENCY_BUCKETS && seconds > esc_latency_bounds[b])
    b++;
  return b;
}

void esc__latency_observe(struct esc__latency *l, int64_t ns) {
  uint64_t n = ns > 0 ? (uint64_t)ns : 0;
  esc__count(&l->buckets[esc__latency_bucket((double)n / 1e9)], 1);
  esc__count(&l->sum_ns, n);
  esc__count(&l->count, 1);
}

void esc__latency_read(struct esc__latency *l, esc_latency *out) {
  memset(out, 0, sizeof *out);
  for (size_t b = 0; b <= ESC_LATENCY_BUCKETS; b++)
    out->buckets[b] = esc__counted(&l->buckets[b]);
  out->count = esc__counted(&l->count);
  out->sum_s = (double)esc__counted(&l->sum_ns) / 1e9;
}

/* ------------------------------------------------------------ appends -- */

static atomic_bool client_metrics_on = true;

void esc_client_metrics_enable(bool on) {
  atomic_store_explicit(&client_metrics_on, on, memory_order_relaxed);
}

bool esc_client_metrics_enabled(void) {
  return atomic_load_explicit(&client_metrics_on, memory_order_relaxed);
}

static struct {
  struct esc__latency duration;
  atomic_uint_fast64_t conflicts, duplicates, failures;
} appends;

void esc__append_observe(int64_t began_ns, esc_status rc, size_t conflicts,
                         size_t duplicates) {
  if (!esc_client_metrics_enabled())
    return;
  esc__latency_observe(&appends.duration, esc__now_ns() - began_ns);
  esc__count(&appends.duplicates, duplicates);
  esc__count(&appends.conflicts, conflicts);
  if (rc && rc != ESC_ECONFLICT)
    esc__count(&appends.failures, 1);
}

void esc_append_metrics_read(esc_append_metrics *out) {
  esc__latency_read(&appends.duration, &out->duration);
  out->conflicts = esc__counted(&appends.conflicts);
  out->duplicates = esc__counted(&appends.duplicates);
  out->failures = esc__counted(&appends.failures);
}

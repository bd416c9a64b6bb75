/*
 * <esc_internal/stats.h> - process-wide latency histograms and counters
 * that any thread may bump without a lock (C11 atomics, relaxed: figures
 * for metrics, not synchronization). The store counts its appends, the
 * command side its commands, workers their batches; <esc/metrics.h>
 * renders them. Internal: not installed (docs/architecture.md).
 */
#ifndef ESC_INTERNAL_STATS_H
#define ESC_INTERNAL_STATS_H

#include <esc/store.h>
#include <stdatomic.h>

/* Nanoseconds on a monotonic clock. */
int64_t esc__now_ns(void);

/* The bucket (0..ESC_LATENCY_BUCKETS) of a duration: the first bound it
 * does not exceed, or the last one past them all (+Inf). */
size_t esc__latency_bucket(double seconds);

struct esc__latency {
  atomic_uint_fast64_t buckets[ESC_LATENCY_BUCKETS + 1]; /* not cumulative */
  atomic_uint_fast64_t count;
  atomic_uint_fast64_t sum_ns;
};

/* Records one duration of ns nanoseconds (negative ones count as 0). */
void esc__latency_observe(struct esc__latency *l, int64_t ns);
/* A copy of l as it is now (each figure read once; not one instant). */
void esc__latency_read(struct esc__latency *l, esc_latency *out);

/* counter += n. */
static inline void esc__count(atomic_uint_fast64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}
static inline uint64_t esc__counted(atomic_uint_fast64_t *counter) {
  return atomic_load_explicit(counter, memory_order_relaxed);
}

#endif

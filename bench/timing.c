/*
 * Clock and latency histogram for esc-bench.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define SUB_COUNT (1u << BENCH_HIST_SUB_BITS)
#define HALF_COUNT (1u << (BENCH_HIST_SUB_BITS - 1))

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bench_rss_reset(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (!f)
    return false;
  bool ok = fputs("5", f) >= 0;
  return fclose(f) == 0 && ok;
}

double bench_peak_rss_mb(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return NAN;
  return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

/* ------------------------------------------------------------------------
 * Histogram
 *
 * Values below SUB_COUNT go to their own bucket. Above, with msb the index
 * of the highest set bit, shift = msb - (SUB_BITS - 1) keeps the top
 * SUB_BITS bits, whose value m lies in [HALF, SUB): bucket
 * SUB + (shift - 1) * HALF + (m - HALF).
 * ------------------------------------------------------------------------ */

static unsigned bucket_of(uint64_t v) {
  if (v < SUB_COUNT)
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - (BENCH_HIST_SUB_BITS - 1);
  unsigned m = (unsigned)(v >> shift);
  return SUB_COUNT + (shift - 1) * HALF_COUNT + (m - HALF_COUNT);
}

/* The middle of bucket b's range, in ns. */
static double bucket_mid(unsigned b) {
  if (b < SUB_COUNT)
    return (double)b;
  unsigned shift = (b - SUB_COUNT) / HALF_COUNT + 1;
  unsigned m = (b - SUB_COUNT) % HALF_COUNT + HALF_COUNT;
  double lo = ldexp((double)m, (int)shift);
  double width = ldexp(1.0, (int)shift);
  return lo + width / 2.0;
}

void bench_hist_init(bench_hist *h) {
  memset(h, 0, sizeof(*h));
  h->min_ns = UINT64_MAX;
}

void bench_hist_record(bench_hist *h, uint64_t ns) {
  h->buckets[bucket_of(ns)]++;
  h->count++;
  h->sum_ns += (double)ns;
  if (ns < h->min_ns)
    h->min_ns = ns;
  if (ns > h->max_ns)
    h->max_ns = ns;
}

void bench_hist_merge(bench_hist *into, const bench_hist *from) {
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
    into->buckets[i] += from->buckets[i];
  into->count += from->count;
  into->sum_ns += from->sum_ns;
  if (from->min_ns < into->min_ns)
    into->min_ns = from->min_ns;
  if (from->max_ns > into->max_ns)
    into->max_ns = from->max_ns;
}

double bench_hist_quantile_ms(const bench_hist *h, double q) {
  if (h->count == 0)
    return NAN;
  /* The rank of the sample at quantile q, 1-based (nearest-rank method). */
  double want = ceil(q * (double)h->count);
  uint64_t rank = want < 1.0 ? 1u : (uint64_t)want;
  if (rank > h->count)
    rank = h->count;
  uint64_t seen = 0;
  for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->buckets[i];
    if (seen >= rank) {
      double ns = bucket_mid(i);
      /* Never report outside what was observed. */
      if (ns < (double)h->min_ns)
        ns = (double)h->min_ns;
      if (ns > (double)h->max_ns)
        ns = (double)h->max_ns;
      return ns / 1e6;
    }
  }
  return (double)h->max_ns / 1e6;
}

/*
 * Partitioning by stream id. The hash must never change: a stream that
 * moved to another partition between two runs could be applied out of
 * order by two workers. FNV-1a is tiny, well known and the same on every
 * machine (no seed, no endianness).
 */
#include "projection_int.h"

#include <string.h>

#define FNV64_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV64_PRIME UINT64_C(0x100000001b3)

uint64_t esc__fnv1a64(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = FNV64_OFFSET;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= FNV64_PRIME;
  }
  return h;
}

int esc__partition_of(const char *stream_id, int partitions) {
  if (partitions <= 1 || !stream_id)
    return 0;
  uint64_t h = esc__fnv1a64(stream_id, strlen(stream_id));
  return (int)(h % (uint64_t)partitions);
}

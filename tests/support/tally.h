/*
 * A tally projection for tests and benchmarks: events "Counted" {n, item}
 * in streams "tally-<id>"; the handler keeps, under its generation,
 *   total          INCRBY n
 *   items          ZINCRBY n item
 *   seq:<stream>   RPUSH stream version (to check per-stream order)
 * Events whose item is "poison" fail in the handler unless
 * tally_poison_cured is set.
 */
#ifndef ESC_TEST_TALLY_H
#define ESC_TEST_TALLY_H

#include <esc/projection.h>

typedef struct tally_counted {
  int64_t n;
  char item[32];
} tally_counted;

extern const esc_event_type tally_counted_type;
extern volatile int tally_poison_cured;

/* The registry with tally_counted_type (built once, thread-safe). */
const esc_event_registry *tally_events(void);

/* Fills *p as the tally projection named name (version, partitions). */
void tally_projection(esc_projection *p, const char *name, int32_t version,
                      int partitions);

/* Appends count events round-robin over streams "tally-<prefix><i>" (i <
 * streams), n = 1 + i % 7, item "item<i % 5>"; returns the sum of n. */
int64_t tally_append(esc_store *st, const char *prefix, int streams, int count);

/* Appends one Counted {n, item} to stream (any expected version); aborts
 * on failure. */
void tally_append_one(esc_store *st, const char *stream, int64_t n,
                      const char *item);

#endif

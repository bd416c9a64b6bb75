/*
 * workload.h - what the soak's clients send: which stream, which expected
 * version, which events. Library and CLI clients draw their ops from here
 * so both put the same mix of contention on the store:
 *  - a hot stream every client fights over, a few warm ones, streams of a
 *    second category the projection does not follow (so a category read
 *    and $all differ), and fresh streams created with no-stream;
 *  - every expected-version mode, exact versions from what the client
 *    last saw of the stream (often stale under contention: conflicts are
 *    part of the load);
 *  - 1..SOAK_MAX_BATCH Counted {n, item} events per op, each with a fresh
 *    id that every retry of the op re-sends.
 */
#ifndef SOAK_WORKLOAD_H
#define SOAK_WORKLOAD_H

#include "history.h"
#include "util.h"

/* The category the tally projection and the category follower follow. */
#define SOAK_CATEGORY "tally"

/* What a client last saw of each stream it touched: the exact versions
 * it sends. Bounded; old fresh streams fall out. */
enum { SOAK_SEEN_MAX = 64 };

typedef struct soak_seen {
  char stream[SOAK_SEEN_MAX][SOAK_NAME_MAX];
  int64_t version[SOAK_SEEN_MAX];
  size_t count, next;
} soak_seen;

/* Version last seen of stream, -1 when not known. */
int64_t soak_seen_get(const soak_seen *s, const char *stream);
void soak_seen_set(soak_seen *s, const char *stream, int64_t version);

/*
 * Draws the next op into *a as attempt 1 (op name "<client>-<seq>",
 * invoke_us unset): stream, expected version and events (at most
 * max_events, >= 1).
 */
void soak_workload_next(soak_rng *r, const soak_seen *seen, const char *client,
                        long seq, size_t max_events, soak_attempt *a);

/* After an attempt, what it taught about its stream: an OK's last
 * version, or (for a conflict) the actual version from its detail. */
void soak_workload_learn(soak_seen *seen, const soak_attempt *a);

/* Pause before the next retry of an attempt whose outcome was unknown or
 * that was not sent: 20 ms doubling to 1 s, jittered. */
int soak_retry_pause_ms(soak_rng *r, int attempt);

/* Retries of one op before a client gives up on it (its last attempt
 * stays unknown: the checker accepts either fate for it). */
enum { SOAK_MAX_ATTEMPTS = 12 };

#endif

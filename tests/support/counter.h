/*
 * A counter: the smallest useful decider, for tests and benchmarks.
 *
 * Streams "counter-<id>". Events: Incremented {by} and Reset {}. A counter
 * refuses a non-positive increment; resetting a counter at zero and
 * ADD_NOTHING change nothing (the command succeeds and emits no event).
 *
 * The registry and the deciders are built once, on first use, and may be
 * shared by threads.
 */
#ifndef ESC_TEST_COUNTER_H
#define ESC_TEST_COUNTER_H

#include <esc/command.h>

/* Domain error codes (esc_command_result.domain_code). */
enum { COUNTER_EINVAL = 1 };

/* Incremented {by} (schema 1). */
typedef struct counter_incremented_t {
  int64_t by;
} counter_incremented_t;

/* Reset {} (schema 1); C has no empty structs. */
typedef struct counter_reset_t {
  char unused_;
} counter_reset_t;

extern const esc_event_type counter_incremented, counter_reset;

typedef struct counter_state {
  int64_t value;
  int64_t events; /* events folded, snapshot included */
} counter_state;

typedef enum counter_cmd_kind {
  COUNTER_INCREMENT,
  COUNTER_RESET,
  COUNTER_ADD_NOTHING
} counter_cmd_kind;

typedef struct counter_cmd {
  counter_cmd_kind kind;
  int64_t by; /* INCREMENT: > 0 */
} counter_cmd;

/* Both event types, registered once (thread-safe). Aborts when out of
 * memory. */
const esc_event_registry *counter_events(void);

/* The counter without snapshots. */
const esc_decider *counter_decider(void);
/* The counter with a snapshot every 100 events (state_version 1). */
const esc_decider *counter_decider_snapshots(void);
/* Fills *d with the counter snapshotting every snapshot_every events (0:
 * never), e.g. for benchmarks that vary it. */
void counter_decider_init(esc_decider *d, int snapshot_every);

#endif

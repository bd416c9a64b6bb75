/*
 * checker.h - judges a soak run: the clients' history and the followers'
 * outputs against the final log and the read model, in the spirit of
 * Jepsen's history checkers. Pure: records in, anomalies out; no server,
 * no file, so tests/unit/test_history_checker.c can feed it doctored
 * histories and see each one caught.
 *
 * What it may assume is only what esc guarantees (docs/concepts.md,
 * docs/soak.md):
 *  - an attempt that came back OK is in the log, once, where it was told;
 *    one that came back CONFLICT or ERROR wrote nothing; UNKNOWN and
 *    PENDING ones may have written (once) or not. An op (the attempts
 *    sharing event ids) is in the log if any attempt wrote it.
 *  - versions of a stream are 1, 2, 3, ...; each op's events are
 *    consecutive, in one transaction, and honour its expected version.
 *  - an op acknowledged before another op was first invoked committed
 *    before that one began: both its transaction id and its global
 *    positions are lower. (Nothing is claimed for overlapping ops: their
 *    transaction ids and positions may be in either order, and not the
 *    same one.)
 *  - subscribers get events in (tx_id, global) order, every stream in
 *    version order, with nothing skipped or repeated: each follower's
 *    output is a prefix of the final order of what it follows.
 *  - the read model equals the tally projection rebuilt from the log.
 */
#ifndef SOAK_CHECKER_H
#define SOAK_CHECKER_H

#include "history.h"

/* Every kind of anomaly: name, and what it means. */
#define SOAK_ANOMALY_LIST(X)                                                   \
  X(HISTORY, "history", "the history is malformed (a soak bug)")               \
  X(LOST_ACK, "lost-ack", "an acknowledged append is not in the log")          \
  X(WRONG_RESULT, "wrong-result",                                              \
    "an acknowledged append is stored at other versions or positions than "    \
    "it was told")                                                             \
  X(RETRY, "retry", "a retry did not return the original result")              \
  X(DUPLICATE, "duplicate", "an event id is in the log more than once")        \
  X(REFUSED_PRESENT, "refused-present",                                        \
    "an append refused on every attempt is in the log")                        \
  X(PARTIAL, "partial",                                                        \
    "an append is stored in part, out of order or across transactions")        \
  X(CONTENT, "content",                                                        \
    "an event is stored with other data or in another stream than sent")       \
  X(PHANTOM, "phantom", "an event in the log that no client sent")             \
  X(GAP, "gap", "a stream's versions are not 1, 2, 3, ... without gaps")      \
  X(STREAM_VERSION, "stream-version",                                          \
    "the streams table disagrees with the log")                                \
  X(EXPECTED, "expected", "an append stored against its expected version")     \
  X(CONFLICT, "conflict",                                                      \
    "a conflict reported while the stream provably matched the expected "      \
    "version")                                                                 \
  X(REALTIME, "realtime",                                                      \
    "an append acknowledged before another was invoked is ordered after it")   \
  X(ORDER, "order", "the final log is not in increasing subscription order")   \
  X(STREAM_ORDER, "stream-order",                                              \
    "a subscription delivered a stream's versions out of order")               \
  X(CATEGORY, "category",                                                      \
    "the category read is not $all filtered to the category")                  \
  X(FOLLOWER, "follower",                                                      \
    "a follower's output is not an exact prefix of the final order")           \
  X(READ_MODEL, "read-model",                                                  \
    "the read model differs from a rebuild from the log")                      \
  X(CRASH, "crash", "a process died of a signal nobody sent it")

#define SOAK_ANOMALY_ENUM(id, name, what) SOAK_A_##id,
typedef enum soak_anomaly_kind {
  SOAK_ANOMALY_LIST(SOAK_ANOMALY_ENUM) SOAK_A__COUNT
} soak_anomaly_kind;
#undef SOAK_ANOMALY_ENUM

const char *soak_anomaly_name(soak_anomaly_kind k);
const char *soak_anomaly_meaning(soak_anomaly_kind k);

/* A follower's output and what it followed. */
typedef struct soak_follower {
  const char *name;
  bool category; /* it followed the input's category; else $all */
  const soak_deliveries *out;
} soak_follower;

/* Everything the checker judges; all borrowed. */
typedef struct soak_input {
  const soak_history *history;
  const soak_deliveries *log_all;      /* the final $all, as read */
  const soak_deliveries *log_category; /* the final category, as read */
  const char *category;                /* the category of log_category */
  const soak_stream_version *streams;  /* the streams table */
  size_t n_streams;
  const soak_follower *followers;
  size_t n_followers;
  const soak_model *model; /* NULL: not judged */
} soak_input;

typedef struct soak_anomaly {
  soak_anomaly_kind kind;
  char *text; /* what, with the events and ops involved */
} soak_anomaly;

/* What the history holds, for the summary. */
typedef struct soak_stats {
  size_t ops, attempts, outcomes[5]; /* by soak_outcome */
  size_t acked, present, absent, unknown_present, unknown_absent;
  size_t retried, duplicates_returned, conflicts_judged;
  size_t log_events, streams, deliveries;
} soak_stats;

/* Anomalies are all counted; the text of the first SOAK_KEEP of each kind
 * is kept. */
enum { SOAK_KEEP = 200 };

typedef struct soak_report {
  soak_anomaly *items;
  size_t count, cap;
  size_t per_kind[SOAK_A__COUNT];
  soak_stats stats;
} soak_report;

/* Judges in; fills *rep (caller memory, zeroed or released before).
 * false only when out of memory. */
bool soak_check(const soak_input *in, soak_report *rep);

/* Adds an anomaly (for the driver's own findings, crashes say). */
void soak_report_add(soak_report *rep, soak_anomaly_kind kind,
                     const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Total anomalies. */
size_t soak_report_total(const soak_report *rep);
void soak_report_release(soak_report *rep);

/*
 * Whether the model equals the tally projection rebuilt from category
 * (the events of the projection's category in subscription order); the
 * first difference goes into why. The driver polls this until the worker
 * has caught up.
 */
bool soak_model_matches(const soak_deliveries *category, const soak_model *m,
                        char *why, size_t size);

#endif

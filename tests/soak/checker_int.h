/*
 * checker_int.h - what the parts of the checker share: the history
 * grouped into ops and the final log indexed by event id and stream.
 */
#ifndef SOAK_CHECKER_INT_H
#define SOAK_CHECKER_INT_H

#include "checker.h"

#define SOAK_NONE ((size_t)-1)

/* An op: the attempts of one append, which share their event ids. */
typedef struct soak_op {
  const soak_attempt **attempts; /* in attempt order */
  size_t n_attempts;
  const soak_attempt *req;  /* the first: what was asked */
  int64_t invoke_us;        /* of the first attempt */
  int64_t ack_us;           /* first OK completion; INT64_MAX: none */
  bool refused;             /* every attempt CONFLICT or ERROR */
  bool present;             /* all its events are in the log */
  size_t log[SOAK_MAX_BATCH]; /* their indices in log_all */
  esc_position first_pos, last_pos;
  int64_t first_version, last_version;
} soak_op;

/* An id or a stream name and where it is. */
typedef struct soak_ref {
  const char *key;
  size_t index;
} soak_ref;

typedef struct soak_ctx {
  const soak_input *in;
  soak_report *rep;
  const soak_attempt **attempts; /* sorted by (op, attempt) */
  soak_op *ops;
  size_t n_ops;
  soak_ref *log_ids;  /* log_all indices by event id */
  soak_ref *cat_ids;  /* log_category indices by event id */
  size_t *op_of_log;  /* log_all index -> op, SOAK_NONE for none */
} soak_ctx;

/* Sorting and finding refs by key. */
void soak_refs_sort(soak_ref *refs, size_t n);
/* The lowest index whose key is key, or SOAK_NONE. */
size_t soak_refs_find(const soak_ref *refs, size_t n, const char *key);

/* "S@v (tx/g, id)" for messages, into out[160]. */
void soak_describe(const soak_delivery *d, char out[160]);

/* The parts of the check, each adding its anomalies to ctx->rep. */
bool soak_check_ops(soak_ctx *ctx);       /* group, presence, results */
void soak_check_phantoms(soak_ctx *ctx);
void soak_check_realtime(soak_ctx *ctx);
bool soak_check_conflicts(soak_ctx *ctx);
bool soak_check_log(soak_ctx *ctx);       /* order, gaps, streams table */
bool soak_check_followers(soak_ctx *ctx);
bool soak_check_model(soak_ctx *ctx);

#endif

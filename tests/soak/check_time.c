/*
 * Real-time reasoning over the history: what a client saw before another
 * call began bounds what the log may say.
 *
 * Realtime order. An op acknowledged before another op was first invoked
 * committed before that one started, so PostgreSQL gave it the lower
 * transaction id (ids are handed out from one counter, and the later op
 * gets its id only after it started, since esc assigns it after the
 * stream lock) and the lower global positions (one sequence, taken inside
 * the transaction). Both are checked. Nothing is claimed for ops that
 * overlap in time: their order in the log is whatever the server chose.
 *
 * Conflicts. A stream's version only grows. During a conflicting call it
 * was at least L, the highest version acknowledged before the call began,
 * and at most U, one below the lowest version written by an op invoked
 * only after the call ended. When L and U pin the version, a conflict
 * against exactly that version (or "exists" when L > 0, "no-stream" when
 * U = 0, or "any" at all) is wrong.
 */
#include "checker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A time and a value: acks with their version, invokes with theirs. */
typedef struct soak_tv {
  int64_t t;
  int64_t v;
  size_t op;
} soak_tv;

static int tv_cmp(const void *a, const void *b) {
  const soak_tv *x = a, *y = b;
  return (x->t > y->t) - (x->t < y->t);
}

/* The number of entries with t < time (sorted by t). */
static size_t count_before(const soak_tv *tv, size_t n, int64_t time) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (tv[mid].t < time)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The number of entries with t <= time. */
static size_t count_upto(const soak_tv *tv, size_t n, int64_t time) {
  return time == INT64_MAX ? n : count_before(tv, n, time + 1);
}

/* ---------------------------------------------------------------------
 * Realtime order
 * --------------------------------------------------------------------- */

static void realtime_anomaly(soak_ctx *ctx, const soak_op *a, const soak_op *b,
                             const char *what) {
  char pa[ESC_POSITION_TOKEN_MAX], pb[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&a->last_pos, pa);
  esc_position_format(&b->first_pos, pb);
  soak_report_add(ctx->rep, SOAK_A_REALTIME,
                  "op %s (%s@%" PRId64 ", ends at %s) was acknowledged at "
                  "t=%" PRId64 " us, before op %s (%s@%" PRId64
                  ", starts at %s) was invoked at t=%" PRId64
                  " us, but its %s is not lower",
                  a->req->op, a->req->stream, a->last_version, pa, a->ack_us,
                  b->req->op, b->req->stream, b->first_version, pb,
                  b->invoke_us, what);
}

void soak_check_realtime(soak_ctx *ctx) {
  soak_tv *acks = malloc((ctx->n_ops + 1) * sizeof *acks);
  size_t *max_tx = malloc((ctx->n_ops + 1) * sizeof *max_tx);
  size_t *max_g = malloc((ctx->n_ops + 1) * sizeof *max_g);
  size_t n = 0;
  for (size_t k = 0; acks && k < ctx->n_ops; k++)
    if (ctx->ops[k].present && ctx->ops[k].ack_us != INT64_MAX)
      acks[n++] = (soak_tv){ctx->ops[k].ack_us, 0, k};
  if (acks && max_tx && max_g) {
    qsort(acks, n, sizeof *acks, tv_cmp);
    /* Prefix maxima: the op with the highest end among the first i acks. */
    for (size_t i = 0; i < n; i++) {
      const soak_op *o = &ctx->ops[acks[i].op];
      max_tx[i] = max_g[i] = acks[i].op;
      if (i && ctx->ops[max_tx[i - 1]].last_pos.tx_id > o->last_pos.tx_id)
        max_tx[i] = max_tx[i - 1];
      if (i && ctx->ops[max_g[i - 1]].last_pos.global > o->last_pos.global)
        max_g[i] = max_g[i - 1];
    }
    for (size_t k = 0; k < ctx->n_ops; k++) {
      const soak_op *b = &ctx->ops[k];
      size_t before = b->present ? count_before(acks, n, b->invoke_us) : 0;
      if (before == 0)
        continue;
      const soak_op *at = &ctx->ops[max_tx[before - 1]];
      const soak_op *ag = &ctx->ops[max_g[before - 1]];
      if (at->last_pos.tx_id >= b->first_pos.tx_id)
        realtime_anomaly(ctx, at, b, "transaction id");
      else if (ag->last_pos.global >= b->first_pos.global)
        realtime_anomaly(ctx, ag, b, "global position");
    }
  }
  free(acks);
  free(max_tx);
  free(max_g);
}

/* ---------------------------------------------------------------------
 * Conflicts
 * --------------------------------------------------------------------- */

/* One stream's bounds: acks by time with the running maximum of their
 * last version, invokes by time with the minimum first version of all
 * invoked at or after each. */
typedef struct soak_bounds {
  soak_tv *acks, *invokes;
  size_t n_acks, n_invokes;
  int64_t final_version;
} soak_bounds;

static void bounds_release(soak_bounds *b) {
  free(b->acks);
  free(b->invokes);
  memset(b, 0, sizeof *b);
}

static bool bounds_build(soak_ctx *ctx, const char *stream, soak_bounds *b) {
  memset(b, 0, sizeof *b);
  b->acks = malloc((ctx->n_ops + 1) * sizeof *b->acks);
  b->invokes = malloc((ctx->n_ops + 1) * sizeof *b->invokes);
  if (!b->acks || !b->invokes)
    return false;
  for (size_t k = 0; k < ctx->n_ops; k++) {
    const soak_op *o = &ctx->ops[k];
    if (!o->present || strcmp(o->req->stream, stream) != 0)
      continue;
    if (o->ack_us != INT64_MAX)
      b->acks[b->n_acks++] = (soak_tv){o->ack_us, o->last_version, k};
    b->invokes[b->n_invokes++] = (soak_tv){o->invoke_us, o->first_version, k};
    if (o->last_version > b->final_version)
      b->final_version = o->last_version;
  }
  qsort(b->acks, b->n_acks, sizeof *b->acks, tv_cmp);
  qsort(b->invokes, b->n_invokes, sizeof *b->invokes, tv_cmp);
  for (size_t i = 1; i < b->n_acks; i++)
    if (b->acks[i - 1].v > b->acks[i].v)
      b->acks[i].v = b->acks[i - 1].v;
  for (size_t i = b->n_invokes; i-- > 1;)
    if (b->invokes[i].v < b->invokes[i - 1].v)
      b->invokes[i - 1].v = b->invokes[i].v;
  return true;
}

/* The version was at least *lo from `from` and at most *hi until `to`. */
static void bounds_at(const soak_bounds *b, int64_t from, int64_t to,
                      int64_t *lo, int64_t *hi) {
  size_t i = count_before(b->acks, b->n_acks, from);
  *lo = i ? b->acks[i - 1].v : 0;
  size_t j = count_upto(b->invokes, b->n_invokes, to);
  *hi = j < b->n_invokes ? b->invokes[j].v - 1 : b->final_version;
}

static void judge_conflict(soak_ctx *ctx, const soak_bounds *b,
                           const soak_attempt *c) {
  int64_t lo, hi, e = c->expected;
  bounds_at(b, c->invoke_us, c->complete_us, &lo, &hi);
  bool wrong = e == ESC_EXPECT_ANY || (e == ESC_EXPECT_NO_STREAM && hi == 0) ||
               (e == ESC_EXPECT_EXISTS && lo >= 1) ||
               (e >= 0 && lo == e && hi == e);
  ctx->rep->stats.conflicts_judged++;
  if (!wrong)
    return;
  char ex[24];
  soak_expected_format(e, ex);
  soak_report_add(ctx->rep, SOAK_A_CONFLICT,
                  "op %s attempt %d (%s, expected %s) got a conflict (%s) "
                  "between t=%" PRId64 " and t=%" PRId64
                  " us, while the stream was at version %" PRId64
                  "..%" PRId64,
                  c->op, c->attempt, c->stream, ex, c->detail, c->invoke_us,
                  c->complete_us, lo, hi);
}

static int conflict_cmp(const void *a, const void *b) {
  const soak_attempt *x = *(const soak_attempt *const *)a;
  const soak_attempt *y = *(const soak_attempt *const *)b;
  return strcmp(x->stream, y->stream);
}

bool soak_check_conflicts(soak_ctx *ctx) {
  const soak_history *h = ctx->in->history;
  const soak_attempt **cs = malloc((h->count + 1) * sizeof *cs);
  size_t n = 0;
  if (!cs)
    return false;
  for (size_t i = 0; i < h->count; i++)
    if (h->items[i].outcome == SOAK_CONFLICT)
      cs[n++] = &h->items[i];
  qsort(cs, n, sizeof *cs, conflict_cmp);
  bool ok = true;
  soak_bounds b = {0};
  for (size_t i = 0; ok && i < n; i++) {
    if (i == 0 || strcmp(cs[i]->stream, cs[i - 1]->stream) != 0) {
      bounds_release(&b);
      ok = bounds_build(ctx, cs[i]->stream, &b);
    }
    if (ok)
      judge_conflict(ctx, &b, cs[i]);
  }
  bounds_release(&b);
  free(cs);
  return ok;
}

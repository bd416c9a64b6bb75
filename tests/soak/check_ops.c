/*
 * The ops against the log: every acknowledged append stored once where it
 * was told, refused ones absent, each stored op whole, in one transaction,
 * with the data sent and at a version its expected version allows;
 * retries returning the original; nothing stored that nobody sent.
 */
#include "checker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int attempt_cmp(const void *a, const void *b) {
  const soak_attempt *x = *(const soak_attempt *const *)a;
  const soak_attempt *y = *(const soak_attempt *const *)b;
  int c = strcmp(x->op, y->op);
  return c ? c : (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

/* "op O (client C: S, expected E, N events from ID)" into out[256]. */
static void describe_op(const soak_op *op, char out[400]) {
  const soak_attempt *r = op->req;
  char e[24];
  soak_expected_format(r->expected, e);
  snprintf(out, 400, "op %s (%s: %s, expected %s, %zu event(s) from %.8s)",
           r->op, r->client, r->stream, e, r->n, r->events[0].id);
}

static void describe_result(const soak_attempt *a, char out[160]) {
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&a->position, pos);
  snprintf(out, 160,
           "attempt %d: versions %" PRId64 "..%" PRId64 " at %s, first global "
           "%" PRId64 "%s",
           a->attempt, a->first_version, a->last_version, pos, a->first_global,
           a->duplicate ? ", duplicate" : "");
}

/* Whether a carries the same request as the op's first attempt. */
static bool same_request(const soak_attempt *a, const soak_attempt *r) {
  if (strcmp(a->stream, r->stream) || a->expected != r->expected ||
      a->n != r->n)
    return false;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->events[i].id, r->events[i].id) ||
        a->events[i].n != r->events[i].n ||
        strcmp(a->events[i].item, r->events[i].item))
      return false;
  return true;
}

/* Fills an op from its attempts [first, first + n) of ctx->attempts. */
static bool op_init(soak_ctx *ctx, soak_op *op, size_t first, size_t n) {
  memset(op, 0, sizeof *op);
  op->attempts = malloc(n * sizeof *op->attempts);
  if (!op->attempts)
    return false;
  op->n_attempts = n;
  op->req = ctx->attempts[first];
  op->invoke_us = INT64_MAX;
  op->ack_us = INT64_MAX;
  op->refused = true;
  for (size_t i = 0; i < n; i++) {
    const soak_attempt *a = ctx->attempts[first + i];
    op->attempts[i] = a;
    if (a->invoke_us < op->invoke_us)
      op->invoke_us = a->invoke_us;
    if (a->outcome == SOAK_OK && a->complete_us < op->ack_us)
      op->ack_us = a->complete_us;
    if (a->outcome != SOAK_CONFLICT && a->outcome != SOAK_ERROR)
      op->refused = false;
    if (!same_request(a, op->req) || (i > 0 && a->attempt == op->attempts[i - 1]->attempt))
      soak_report_add(ctx->rep, SOAK_A_HISTORY,
                      "op %s: attempt %d is not a re-send of attempt %d",
                      a->op, a->attempt, op->req->attempt);
    ctx->rep->stats.outcomes[a->outcome]++;
  }
  return true;
}

static bool group_ops(soak_ctx *ctx) {
  const soak_history *h = ctx->in->history;
  ctx->attempts = malloc((h->count + 1) * sizeof *ctx->attempts);
  ctx->ops = malloc((h->count + 1) * sizeof *ctx->ops);
  if (!ctx->attempts || !ctx->ops)
    return false;
  for (size_t i = 0; i < h->count; i++)
    ctx->attempts[i] = &h->items[i];
  qsort(ctx->attempts, h->count, sizeof *ctx->attempts, attempt_cmp);
  for (size_t i = 0; i < h->count;) {
    size_t j = i + 1;
    while (j < h->count && strcmp(ctx->attempts[j]->op, ctx->attempts[i]->op) == 0)
      j++;
    if (!op_init(ctx, &ctx->ops[ctx->n_ops], i, j - i))
      return false;
    ctx->n_ops++;
    i = j;
  }
  if (h->unmatched)
    soak_report_add(ctx->rep, SOAK_A_HISTORY,
                    "%zu complete records name no invoked attempt",
                    h->unmatched);
  ctx->rep->stats.ops = ctx->n_ops;
  ctx->rep->stats.attempts = h->count;
  return true;
}

/* Looks up the op's events in the log; returns how many are there, and
 * marks every copy of each as the op's. */
static size_t find_events(soak_ctx *ctx, size_t k) {
  soak_op *op = &ctx->ops[k];
  const soak_deliveries *log = ctx->in->log_all;
  size_t found = 0;
  for (size_t i = 0; i < op->req->n; i++) {
    const char *id = op->req->events[i].id;
    size_t r = soak_refs_find(ctx->log_ids, log->count, id);
    op->log[i] = r == SOAK_NONE ? SOAK_NONE : ctx->log_ids[r].index;
    found += r != SOAK_NONE;
    for (; r != SOAK_NONE && r < log->count &&
           strcmp(ctx->log_ids[r].key, id) == 0;
         r++)
      ctx->op_of_log[ctx->log_ids[r].index] = k;
  }
  return found;
}

/* The stored events are the op's: its stream, its data, consecutive
 * versions in order, one transaction. */
static void check_stored(soak_ctx *ctx, soak_op *op) {
  const soak_deliveries *log = ctx->in->log_all;
  char what[400], ev[160];
  describe_op(op, what);
  for (size_t i = 0; i < op->req->n; i++) {
    const soak_delivery *d = &log->items[op->log[i]];
    const soak_sent *s = &op->req->events[i];
    soak_describe(d, ev);
    if (strcmp(d->stream, op->req->stream) != 0 ||
        (d->has_data && (d->n != s->n || strcmp(d->item, s->item) != 0)))
      soak_report_add(ctx->rep, SOAK_A_CONTENT,
                      "%s: event %zu is stored as %s with n=%" PRId64
                      " item=%s; sent n=%" PRId64 " item=%s",
                      what, i + 1, ev, d->n, d->item, s->n, s->item);
    if (i == 0)
      continue;
    const soak_delivery *p = &log->items[op->log[i - 1]];
    if (d->version != p->version + 1 || d->position.tx_id != p->position.tx_id ||
        d->position.global <= p->position.global)
      soak_report_add(ctx->rep, SOAK_A_PARTIAL,
                      "%s: event %zu is %s, not the next version in the same "
                      "transaction after event %zu",
                      what, i + 1, ev, i);
  }
  const soak_delivery *f = &log->items[op->log[0]];
  const soak_delivery *l = &log->items[op->log[op->req->n - 1]];
  op->first_pos = f->position;
  op->last_pos = l->position;
  op->first_version = f->version;
  op->last_version = l->version;
}

static void check_expected(soak_ctx *ctx, const soak_op *op) {
  int64_t e = op->req->expected, fv = op->first_version;
  bool ok = e == ESC_EXPECT_ANY || (e == ESC_EXPECT_NO_STREAM && fv == 1) ||
            (e == ESC_EXPECT_EXISTS && fv >= 2) || (e >= 0 && fv == e + 1);
  if (ok)
    return;
  char what[400];
  describe_op(op, what);
  soak_report_add(ctx->rep, SOAK_A_EXPECTED,
                  "%s is stored from version %" PRId64, what, fv);
}

/* Every OK attempt was told where the op is; one at most wrote it. */
static void check_results(soak_ctx *ctx, const soak_op *op) {
  char what[400], res[160], pos[ESC_POSITION_TOKEN_MAX];
  size_t writers = 0;
  describe_op(op, what);
  esc_position_format(&op->last_pos, pos);
  for (size_t i = 0; i < op->n_attempts; i++) {
    const soak_attempt *a = op->attempts[i];
    if (a->outcome != SOAK_OK)
      continue;
    writers += !a->duplicate;
    describe_result(a, res);
    bool same = a->first_version == op->first_version &&
                a->last_version == op->last_version &&
                esc_position_cmp(&a->position, &op->last_pos) == 0 &&
                (a->first_global < 0 || a->first_global == op->first_pos.global);
    if (!same)
      soak_report_add(ctx->rep,
                      a->duplicate ? SOAK_A_RETRY : SOAK_A_WRONG_RESULT,
                      "%s: %s, but the log has versions %" PRId64 "..%" PRId64
                      " at %s, first global %" PRId64,
                      what, res, op->first_version, op->last_version, pos,
                      op->first_pos.global);
    if (a->duplicate && i == 0)
      soak_report_add(ctx->rep, SOAK_A_RETRY,
                      "%s: its first send came back as a duplicate", what);
    ctx->rep->stats.duplicates_returned += a->duplicate;
  }
  if (writers > 1)
    soak_report_add(ctx->rep, SOAK_A_RETRY,
                    "%s: %zu attempts say they wrote it (not a duplicate)",
                    what, writers);
}

static void refused_present(soak_ctx *ctx, const soak_op *op) {
  char what[400], list[256] = "", ev[160];
  size_t len = 0;
  describe_op(op, what);
  soak_describe(&ctx->in->log_all->items[op->log[0]], ev);
  for (size_t i = 0; i < op->n_attempts && len < sizeof list - 40; i++)
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%d %s (%s)",
                            i ? ", " : "", op->attempts[i]->attempt,
                            soak_outcome_name(op->attempts[i]->outcome),
                            op->attempts[i]->code);
  soak_report_add(ctx->rep, SOAK_A_REFUSED_PRESENT,
                  "%s is stored from %s, but its attempts were %s", what, ev,
                  list);
}

static void judge_op(soak_ctx *ctx, size_t k) {
  soak_op *op = &ctx->ops[k];
  soak_stats *st = &ctx->rep->stats;
  char what[400], res[160];
  size_t found = find_events(ctx, k);
  bool acked = op->ack_us != INT64_MAX;
  st->acked += acked;
  st->retried += op->n_attempts > 1;
  if (found == 0) {
    st->absent++;
    st->unknown_absent += !acked && !op->refused;
    if (!acked)
      return;
    describe_op(op, what);
    for (size_t i = 0; i < op->n_attempts; i++)
      if (op->attempts[i]->outcome == SOAK_OK) {
        describe_result(op->attempts[i], res);
        break;
      }
    soak_report_add(ctx->rep, SOAK_A_LOST_ACK,
                    "%s was acknowledged (%s) but none of its events is in "
                    "the log",
                    what, res);
    return;
  }
  if (found < op->req->n) {
    describe_op(op, what);
    soak_report_add(ctx->rep, SOAK_A_PARTIAL,
                    "%s: only %zu of its %zu events are in the log", what,
                    found, op->req->n);
    return;
  }
  op->present = true;
  st->present++;
  st->unknown_present += !acked && !op->refused;
  check_stored(ctx, op);
  if (op->refused)
    refused_present(ctx, op);
  check_expected(ctx, op);
  check_results(ctx, op);
}

bool soak_check_ops(soak_ctx *ctx) {
  for (size_t i = 0; i < ctx->in->log_all->count; i++)
    ctx->op_of_log[i] = SOAK_NONE;
  if (!group_ops(ctx))
    return false;
  for (size_t k = 0; k < ctx->n_ops; k++)
    judge_op(ctx, k);
  return true;
}

void soak_check_phantoms(soak_ctx *ctx) {
  const soak_deliveries *log = ctx->in->log_all;
  char ev[160];
  for (size_t i = 0; i < log->count; i++) {
    if (ctx->op_of_log[i] != SOAK_NONE)
      continue;
    soak_describe(&log->items[i], ev);
    soak_report_add(ctx->rep, SOAK_A_PHANTOM,
                    "%s is in the log, but no client ever sent its id", ev);
  }
}

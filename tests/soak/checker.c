/* The checker: the report and the order of the checks (see checker.h). */
#include "checker_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOAK_ANOMALY_NAME(id, name, what) name,
#define SOAK_ANOMALY_WHAT(id, name, what) what,
static const char *const anomaly_names[] = {
    SOAK_ANOMALY_LIST(SOAK_ANOMALY_NAME)};
static const char *const anomaly_meanings[] = {
    SOAK_ANOMALY_LIST(SOAK_ANOMALY_WHAT)};

const char *soak_anomaly_name(soak_anomaly_kind k) {
  return (unsigned)k < SOAK_A__COUNT ? anomaly_names[k] : "?";
}

const char *soak_anomaly_meaning(soak_anomaly_kind k) {
  return (unsigned)k < SOAK_A__COUNT ? anomaly_meanings[k] : "?";
}

/* ---------------------------------------------------------------------
 * The report
 * --------------------------------------------------------------------- */

void soak_report_add(soak_report *rep, soak_anomaly_kind kind,
                     const char *fmt, ...) {
  /* Counted always; the text kept for the first ones of each kind, so a
   * systematic failure cannot exhaust memory. */
  if (rep->per_kind[kind]++ >= SOAK_KEEP)
    return;
  if (rep->count == rep->cap) {
    size_t cap = rep->cap ? rep->cap * 2 : 64;
    soak_anomaly *items = realloc(rep->items, cap * sizeof *items);
    if (!items)
      return;
    rep->items = items;
    rep->cap = cap;
  }
  char text[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  char *copy = strdup(text);
  if (copy)
    rep->items[rep->count++] = (soak_anomaly){kind, copy};
}

size_t soak_report_total(const soak_report *rep) {
  size_t n = 0;
  for (int k = 0; k < SOAK_A__COUNT; k++)
    n += rep->per_kind[k];
  return n;
}

void soak_report_release(soak_report *rep) {
  for (size_t i = 0; i < rep->count; i++)
    free(rep->items[i].text);
  free(rep->items);
  memset(rep, 0, sizeof *rep);
}

/* ---------------------------------------------------------------------
 * Shared helpers
 * --------------------------------------------------------------------- */

static int ref_cmp(const void *a, const void *b) {
  const soak_ref *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

void soak_refs_sort(soak_ref *refs, size_t n) {
  if (n > 1)
    qsort(refs, n, sizeof *refs, ref_cmp);
}

size_t soak_refs_find(const soak_ref *refs, size_t n, const char *key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(refs[mid].key, key) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && strcmp(refs[lo].key, key) == 0 ? lo : SOAK_NONE;
}

void soak_describe(const soak_delivery *d, char out[160]) {
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&d->position, pos);
  snprintf(out, 160, "%s@%" PRId64 " (%s, %.8s)", d->stream, d->version, pos,
           d->id);
}

/* Refs of a delivery list by event id. */
static soak_ref *index_ids(const soak_deliveries *d) {
  soak_ref *refs = malloc((d->count + 1) * sizeof *refs);
  if (!refs)
    return NULL;
  for (size_t i = 0; i < d->count; i++)
    refs[i] = (soak_ref){d->items[i].id, i};
  soak_refs_sort(refs, d->count);
  return refs;
}

/* Every id twice or more in the final log. */
static void check_duplicate_ids(soak_ctx *ctx) {
  const soak_deliveries *log = ctx->in->log_all;
  for (size_t i = 1; i < log->count; i++) {
    const soak_ref *a = &ctx->log_ids[i - 1], *b = &ctx->log_ids[i];
    if (strcmp(a->key, b->key) != 0)
      continue;
    char x[160], y[160];
    soak_describe(&log->items[a->index], x);
    soak_describe(&log->items[b->index], y);
    soak_report_add(ctx->rep, SOAK_A_DUPLICATE,
                    "event %s is stored twice: as %s and as %s", a->key, x, y);
  }
}

static void ctx_release(soak_ctx *ctx) {
  for (size_t i = 0; i < ctx->n_ops; i++)
    free(ctx->ops[i].attempts);
  free(ctx->ops);
  free(ctx->attempts);
  free(ctx->log_ids);
  free(ctx->cat_ids);
  free(ctx->op_of_log);
}

bool soak_check(const soak_input *in, soak_report *rep) {
  soak_ctx ctx = {in, rep, NULL, NULL, 0, NULL, NULL, NULL};
  memset(rep, 0, sizeof *rep);
  ctx.log_ids = index_ids(in->log_all);
  ctx.cat_ids = index_ids(in->log_category);
  ctx.op_of_log = malloc((in->log_all->count + 1) * sizeof *ctx.op_of_log);
  bool ok = ctx.log_ids && ctx.cat_ids && ctx.op_of_log;
  if (ok) {
    check_duplicate_ids(&ctx);
    ok = soak_check_ops(&ctx);
  }
  if (ok) {
    soak_check_phantoms(&ctx);
    soak_check_realtime(&ctx);
    ok = soak_check_conflicts(&ctx) && soak_check_log(&ctx) &&
         soak_check_followers(&ctx) && soak_check_model(&ctx);
  }
  rep->stats.log_events = in->log_all->count;
  ctx_release(&ctx);
  return ok;
}

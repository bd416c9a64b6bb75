/*
 * The read model against a rebuild from the log: the tally projection
 * (tests/support/tally.h) computed from the category's events in
 * subscription order — the total of n, the sum per item, and every
 * stream's versions in the order applied — must be what Redis serves.
 */
#include "checker_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports one difference; returns false to stop at the first. */
typedef bool diff_fn(void *ctx, const char *text);

static int by_stream_then_order(const void *a, const void *b) {
  const soak_delivery *x = *(const soak_delivery *const *)a;
  const soak_delivery *y = *(const soak_delivery *const *)b;
  int c = strcmp(x->stream, y->stream);
  return c ? c : (x > y) - (x < y); /* pointers: the order in the log */
}

static int seq_cmp(const void *a, const void *b) {
  const soak_seq *x = *(const soak_seq *const *)a;
  const soak_seq *y = *(const soak_seq *const *)b;
  return strcmp(x->stream, y->stream);
}

static bool add_item(soak_model *m, const char *item, int64_t n) {
  for (size_t i = 0; i < m->n_items; i++)
    if (strcmp(m->items[i].item, item) == 0) {
      m->items[i].score += n;
      return true;
    }
  soak_item_score *items =
      realloc(m->items, (m->n_items + 1) * sizeof *m->items);
  if (!items)
    return false;
  m->items = items;
  snprintf(items[m->n_items].item, sizeof items->item, "%s", item);
  items[m->n_items++].score = n;
  return true;
}

/* One seq list per stream, streams by name. */
static bool rebuild_seqs(const soak_deliveries *cat, soak_model *m) {
  const soak_delivery **v = malloc((cat->count + 1) * sizeof *v);
  m->seqs = calloc(cat->count + 1, sizeof *m->seqs);
  if (!v || !m->seqs) {
    free(v);
    return false;
  }
  for (size_t i = 0; i < cat->count; i++)
    v[i] = &cat->items[i];
  qsort(v, cat->count, sizeof *v, by_stream_then_order);
  bool ok = true;
  for (size_t i = 0; ok && i < cat->count;) {
    size_t j = i;
    while (j < cat->count && strcmp(v[j]->stream, v[i]->stream) == 0)
      j++;
    soak_seq *s = &m->seqs[m->n_seqs++];
    snprintf(s->stream, sizeof s->stream, "%s", v[i]->stream);
    s->versions = malloc((j - i) * sizeof *s->versions);
    ok = s->versions != NULL;
    for (size_t k = i; ok && k < j; k++)
      s->versions[s->count++] = v[k]->version;
    i = j;
  }
  free(v);
  return ok;
}

/* The model a rebuild from the log would hold. */
static bool rebuild(const soak_deliveries *cat, soak_model *m) {
  memset(m, 0, sizeof *m);
  m->present = true;
  bool ok = true;
  for (size_t i = 0; ok && i < cat->count; i++) {
    const soak_delivery *d = &cat->items[i];
    if (!d->has_data)
      continue;
    m->total += d->n;
    ok = add_item(m, d->item, d->n);
  }
  return ok && rebuild_seqs(cat, m);
}

static bool say(diff_fn *diff, void *ctx, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static bool say(diff_fn *diff, void *ctx, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  return diff(ctx, text);
}

static int64_t score_of(const soak_model *m, const char *item, bool *found) {
  for (size_t i = 0; i < m->n_items; i++)
    if (strcmp(m->items[i].item, item) == 0) {
      *found = true;
      return m->items[i].score;
    }
  *found = false;
  return 0;
}

static bool compare_items(const soak_model *want, const soak_model *got,
                          diff_fn *diff, void *ctx) {
  bool found;
  for (size_t i = 0; i < want->n_items; i++) {
    const soak_item_score *w = &want->items[i];
    int64_t g = score_of(got, w->item, &found);
    if (g != w->score && !say(diff, ctx,
                              "item %s scores %" PRId64 ", the log says "
                              "%" PRId64,
                              w->item, g, w->score))
      return false;
  }
  for (size_t i = 0; i < got->n_items; i++) {
    score_of(want, got->items[i].item, &found);
    if (!found && !say(diff, ctx, "item %s (score %" PRId64 ") is in no event",
                       got->items[i].item, got->items[i].score))
      return false;
  }
  return true;
}

static bool compare_seq(const soak_seq *w, const soak_seq *g, diff_fn *diff,
                        void *ctx) {
  size_t n = w->count < g->count ? w->count : g->count;
  for (size_t k = 0; k < n; k++)
    if (w->versions[k] != g->versions[k])
      return say(diff, ctx,
                 "seq:%s entry %zu is version %" PRId64 ", the log says "
                 "%" PRId64 " (applied out of order or twice)",
                 w->stream, k + 1, g->versions[k], w->versions[k]);
  if (w->count != g->count)
    return say(diff, ctx, "seq:%s holds %zu versions, the log %zu", w->stream,
               g->count, w->count);
  return true;
}

/* Both models' seq lists by stream name, merged. */
static bool compare_seqs(const soak_model *want, const soak_model *got,
                         diff_fn *diff, void *ctx) {
  const soak_seq **gs = malloc((got->n_seqs + 1) * sizeof *gs);
  if (!gs)
    return say(diff, ctx, "out of memory");
  for (size_t i = 0; i < got->n_seqs; i++)
    gs[i] = &got->seqs[i];
  qsort(gs, got->n_seqs, sizeof *gs, seq_cmp);
  size_t i = 0, j = 0;
  bool go = true;
  while (go && (i < want->n_seqs || j < got->n_seqs)) {
    int c = i == want->n_seqs  ? 1
            : j == got->n_seqs ? -1
                               : strcmp(want->seqs[i].stream, gs[j]->stream);
    if (c < 0)
      go = say(diff, ctx, "seq:%s is missing (%zu versions in the log)",
               want->seqs[i].stream, want->seqs[i].count);
    else if (c > 0)
      go = say(diff, ctx, "seq:%s has no events in the log", gs[j]->stream);
    else
      go = compare_seq(&want->seqs[i], gs[j], diff, ctx);
    i += c <= 0;
    j += c >= 0;
  }
  free(gs);
  return go;
}

static bool compare(const soak_deliveries *cat, const soak_model *got,
                    diff_fn *diff, void *ctx) {
  soak_model want;
  if (!rebuild(cat, &want)) {
    soak_model_release(&want);
    return say(diff, ctx, "out of memory");
  }
  bool go = true;
  if (!got->present)
    go = say(diff, ctx, "no serving generation (the log has %zu events)",
             cat->count);
  else if (got->total != want.total)
    go = say(diff, ctx, "g%" PRId64 " total is %" PRId64 ", the log says "
             "%" PRId64, got->generation, got->total, want.total);
  go = go && got->present && compare_items(&want, got, diff, ctx) &&
       compare_seqs(&want, got, diff, ctx);
  soak_model_release(&want);
  return go;
}

typedef struct first_diff {
  char *why;
  size_t size;
  bool any;
} first_diff;

static bool keep_first(void *ctx, const char *text) {
  first_diff *f = ctx;
  snprintf(f->why, f->size, "%s", text);
  f->any = true;
  return false;
}

bool soak_model_matches(const soak_deliveries *category, const soak_model *m,
                        char *why, size_t size) {
  first_diff f = {why, size, false};
  compare(category, m, keep_first, &f);
  return !f.any;
}

static bool report_diff(void *ctx, const char *text) {
  soak_report_add(ctx, SOAK_A_READ_MODEL, "%s", text);
  return true;
}

bool soak_check_model(soak_ctx *ctx) {
  if (ctx->in->model)
    compare(ctx->in->log_category, ctx->in->model, report_diff, ctx->rep);
  return true;
}

/*
 * Subscription order: the final log in increasing (tx_id, global) order,
 * every stream's versions 1, 2, 3, ... and in that order, in agreement
 * with the streams table; the category read equal to $all filtered; each
 * follower's output an exact prefix of what it followed, in stream order.
 */
#include "checker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The category of a stream id: the part before the first '-'. */
static bool in_category(const char *stream, const char *category) {
  size_t n = strcspn(stream, "-");
  return strlen(category) == n && strncmp(stream, category, n) == 0;
}

/* Streams of the log by name; one last-seen version per distinct one. */
typedef struct soak_streams {
  soak_ref *refs; /* by stream name, index into the log */
  size_t n;
  int64_t *last;  /* per ref: last version seen, reset per pass */
} soak_streams;

static bool streams_index(const soak_deliveries *log, soak_streams *s) {
  s->refs = malloc((log->count + 1) * sizeof *s->refs);
  s->last = calloc(log->count + 1, sizeof *s->last);
  if (!s->refs || !s->last)
    return false;
  for (size_t i = 0; i < log->count; i++)
    s->refs[i] = (soak_ref){log->items[i].stream, i};
  s->n = log->count;
  soak_refs_sort(s->refs, s->n);
  return true;
}

static void streams_release(soak_streams *s) {
  free(s->refs);
  free(s->last);
}

/*
 * Per-stream order in one subscription output: each stream's versions
 * strictly increasing, and with `exact` (a complete log) each the one
 * after the previous. Slot of a stream: its first ref.
 */
static void check_stream_order(soak_ctx *ctx, soak_streams *s,
                               const soak_deliveries *out, const char *who,
                               bool exact) {
  char ev[160];
  memset(s->last, 0, (s->n + 1) * sizeof *s->last);
  for (size_t i = 0; i < out->count; i++) {
    const soak_delivery *d = &out->items[i];
    size_t slot = soak_refs_find(s->refs, s->n, d->stream);
    if (slot == SOAK_NONE)
      continue; /* not in the final log: the prefix check says so */
    int64_t prev = s->last[slot];
    bool wrong = exact ? d->version != prev + 1 : d->version <= prev;
    if (d->version > prev)
      s->last[slot] = d->version;
    if (!wrong)
      continue;
    soak_describe(d, ev);
    soak_report_add(ctx->rep, SOAK_A_STREAM_ORDER,
                    "%s: entry %zu is %s, after version %" PRId64
                    " of its stream",
                    who, i + 1, ev, prev);
  }
}

static void check_increasing(soak_ctx *ctx, const soak_deliveries *log,
                             const char *who) {
  char a[160], b[160];
  for (size_t i = 1; i < log->count; i++) {
    const soak_delivery *p = &log->items[i - 1], *d = &log->items[i];
    if (esc_position_cmp(&p->position, &d->position) < 0)
      continue;
    soak_describe(p, a);
    soak_describe(d, b);
    soak_report_add(ctx->rep, SOAK_A_ORDER, "%s: %s comes before %s", who, a,
                    b);
  }
}

static int by_stream_version(const void *a, const void *b) {
  const soak_delivery *x = *(const soak_delivery *const *)a;
  const soak_delivery *y = *(const soak_delivery *const *)b;
  int c = strcmp(x->stream, y->stream);
  return c ? c : (x->version > y->version) - (x->version < y->version);
}

/* Versions 1..n in every stream, each once, whatever the order. */
static bool check_gaps(soak_ctx *ctx) {
  const soak_deliveries *log = ctx->in->log_all;
  const soak_delivery **v = malloc((log->count + 1) * sizeof *v);
  if (!v)
    return false;
  for (size_t i = 0; i < log->count; i++)
    v[i] = &log->items[i];
  qsort(v, log->count, sizeof *v, by_stream_version);
  int64_t want = 1;
  for (size_t i = 0; i < log->count; i++) {
    if (i == 0 || strcmp(v[i]->stream, v[i - 1]->stream) != 0)
      want = 1;
    if (v[i]->version == want) {
      want++;
      continue;
    }
    char ev[160];
    soak_describe(v[i], ev);
    soak_report_add(ctx->rep, SOAK_A_GAP,
                    "stream %s: %s where version %" PRId64 " should be%s",
                    v[i]->stream, ev, want,
                    v[i]->version < want ? " (a version stored twice)" : "");
    want = v[i]->version + 1;
  }
  free(v);
  return true;
}

static void check_streams_table(soak_ctx *ctx, const soak_streams *s) {
  const soak_deliveries *log = ctx->in->log_all;
  for (size_t k = 0; k < ctx->in->n_streams; k++) {
    const soak_stream_version *sv = &ctx->in->streams[k];
    size_t r = soak_refs_find(s->refs, s->n, sv->stream);
    int64_t count = 0, max_v = 0;
    for (; r != SOAK_NONE && r < s->n && strcmp(s->refs[r].key, sv->stream) == 0;
         r++) {
      int64_t v = log->items[s->refs[r].index].version;
      count++;
      max_v = v > max_v ? v : max_v;
    }
    if (count != sv->version || max_v != sv->version)
      soak_report_add(ctx->rep, SOAK_A_STREAM_VERSION,
                      "stream %s is at version %" PRId64
                      " in the streams table, the log holds %" PRId64
                      " of its events, up to version %" PRId64,
                      sv->stream, sv->version, count, max_v);
  }
  ctx->rep->stats.streams = ctx->in->n_streams;
}

static void check_category(soak_ctx *ctx) {
  const soak_deliveries *all = ctx->in->log_all, *cat = ctx->in->log_category;
  char a[160], b[160];
  size_t k = 0;
  for (size_t i = 0; i < all->count; i++) {
    const soak_delivery *d = &all->items[i];
    if (!in_category(d->stream, ctx->in->category))
      continue;
    if (k == cat->count || strcmp(cat->items[k].id, d->id) != 0) {
      soak_describe(d, a);
      if (k < cat->count)
        soak_describe(&cat->items[k], b);
      soak_report_add(ctx->rep, SOAK_A_CATEGORY,
                      "entry %zu of category %s should be %s (from $all), "
                      "the category read has %s",
                      k + 1, ctx->in->category, a, k < cat->count ? b : "nothing");
      return;
    }
    k++;
  }
  if (k < cat->count) {
    soak_describe(&cat->items[k], b);
    soak_report_add(ctx->rep, SOAK_A_CATEGORY,
                    "the category read of %s has %zu events, $all %zu of it; "
                    "the first extra is %s",
                    ctx->in->category, cat->count, k, b);
  }
}

/* Says how follower output f departs from ref at entry k. */
static void follower_divergence(soak_ctx *ctx, const soak_follower *f,
                                const soak_deliveries *ref,
                                const soak_ref *ids, size_t k) {
  const soak_delivery *got = &f->out->items[k];
  char g[160], want[160] = "nothing (the final order ends there)";
  soak_describe(got, g);
  if (k < ref->count)
    soak_describe(&ref->items[k], want);
  size_t r = soak_refs_find(ids, ref->count, got->id);
  size_t at = r == SOAK_NONE ? SOAK_NONE : ids[r].index;
  char how[128] = "an event that is not in the final order";
  if (k > 0 && strcmp(f->out->items[k - 1].id, got->id) == 0)
    snprintf(how, sizeof how, "the previous event again (a duplicate)");
  else if (at == k)
    snprintf(how, sizeof how, "that event with another version or position");
  else if (at != SOAK_NONE && at > k)
    snprintf(how, sizeof how,
             "final order entry %zu: it skipped the %zu event(s) between",
             at + 1, at - k);
  else if (at != SOAK_NONE)
    snprintf(how, sizeof how,
             "final order entry %zu, which it had been given before", at + 1);
  soak_report_add(ctx->rep, SOAK_A_FOLLOWER,
                  "follower %s, entry %zu: got %s, %s; the final order has %s "
                  "there",
                  f->name, k + 1, g, how, want);
}

static void check_follower(soak_ctx *ctx, soak_streams *s,
                           const soak_follower *f) {
  const soak_deliveries *ref =
      f->category ? ctx->in->log_category : ctx->in->log_all;
  const soak_ref *ids = f->category ? ctx->cat_ids : ctx->log_ids;
  ctx->rep->stats.deliveries += f->out->count;
  for (size_t k = 0; k < f->out->count; k++) {
    const soak_delivery *got = &f->out->items[k];
    if (k < ref->count && strcmp(got->id, ref->items[k].id) == 0 &&
        esc_position_cmp(&got->position, &ref->items[k].position) == 0 &&
        got->version == ref->items[k].version)
      continue;
    follower_divergence(ctx, f, ref, ids, k);
    break;
  }
  char who[96];
  snprintf(who, sizeof who, "follower %s", f->name);
  check_stream_order(ctx, s, f->out, who, false);
}

bool soak_check_log(soak_ctx *ctx) {
  soak_streams s = {0};
  bool ok = streams_index(ctx->in->log_all, &s);
  if (ok) {
    check_increasing(ctx, ctx->in->log_all, "$all");
    check_increasing(ctx, ctx->in->log_category, ctx->in->category);
    check_stream_order(ctx, &s, ctx->in->log_all, "$all", true);
    check_stream_order(ctx, &s, ctx->in->log_category, ctx->in->category,
                       true);
    check_streams_table(ctx, &s);
    check_category(ctx);
    ok = check_gaps(ctx);
  }
  streams_release(&s);
  return ok;
}

bool soak_check_followers(soak_ctx *ctx) {
  soak_streams s = {0};
  bool ok = streams_index(ctx->in->log_all, &s);
  for (size_t i = 0; ok && i < ctx->in->n_followers; i++)
    check_follower(ctx, &s, &ctx->in->followers[i]);
  streams_release(&s);
  return ok;
}

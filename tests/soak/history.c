/* The soak's records as JSON lines (see history.h). */
#include "history.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const outcome_names[] = {"pending", "ok", "conflict",
                                            "error", "unknown"};

const char *soak_outcome_name(soak_outcome o) {
  return (unsigned)o < 5 ? outcome_names[o] : "?";
}

static bool outcome_parse(const char *s, soak_outcome *out) {
  for (int i = SOAK_OK; i <= SOAK_UNKNOWN; i++)
    if (strcmp(s, outcome_names[i]) == 0) {
      *out = (soak_outcome)i;
      return true;
    }
  return false;
}

static bool say(char *why, size_t size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Fills why and returns false, so parsers can `return say(...)`. */
static bool say(char *why, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (why && size)
    vsnprintf(why, size, fmt, ap);
  va_end(ap);
  return false;
}

/* Copies a string that must fit. */
static bool copy(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (n >= size)
    return false;
  memcpy(dst, src, n + 1);
  return true;
}

void soak_expected_format(int64_t expected, char out[24]) {
  if (expected == ESC_EXPECT_ANY)
    snprintf(out, 24, "any");
  else if (expected == ESC_EXPECT_NO_STREAM)
    snprintf(out, 24, "no-stream");
  else if (expected == ESC_EXPECT_EXISTS)
    snprintf(out, 24, "exists");
  else
    snprintf(out, 24, "%" PRId64, expected);
}

static json_t *expected_json(int64_t expected) {
  char text[24];
  if (expected >= 0)
    return json_integer(expected);
  soak_expected_format(expected, text);
  return json_string(text);
}

static bool expected_parse(const json_t *j, int64_t *out) {
  const char *s = json_string_value(j);
  if (json_is_integer(j) && json_integer_value(j) >= 0)
    *out = json_integer_value(j);
  else if (s && strcmp(s, "any") == 0)
    *out = ESC_EXPECT_ANY;
  else if (s && strcmp(s, "no-stream") == 0)
    *out = ESC_EXPECT_NO_STREAM;
  else if (s && strcmp(s, "exists") == 0)
    *out = ESC_EXPECT_EXISTS;
  else
    return false;
  return true;
}

/* Dumps o (stolen) as one line with its newline. */
static char *line_of(json_t *o) {
  if (!o)
    return NULL;
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!text)
    return NULL;
  size_t n = strlen(text);
  char *line = malloc(n + 2);
  if (line) {
    memcpy(line, text, n);
    line[n] = '\n';
    line[n + 1] = '\0';
  }
  free(text);
  return line;
}

static json_t *data_json(int64_t n, const char *item) {
  return json_pack("{s:I, s:s}", "n", (json_int_t)n, "item", item);
}

/* ---------------------------------------------------------------------
 * Attempts
 * --------------------------------------------------------------------- */

char *soak_invoke_line(const soak_attempt *a) {
  json_t *events = json_array();
  for (size_t i = 0; i < a->n; i++)
    json_array_append_new(events,
                          json_pack("{s:s, s:o}", "id", a->events[i].id,
                                    "data",
                                    data_json(a->events[i].n,
                                              a->events[i].item)));
  return line_of(json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:o, s:o}", "rec",
                           "invoke", "op", a->op, "client", a->client,
                           "attempt", a->attempt, "t",
                           (json_int_t)a->invoke_us, "stream", a->stream,
                           "expected", expected_json(a->expected), "events",
                           events));
}

char *soak_complete_line(const soak_attempt *a) {
  json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:s, s:s}", "rec", "complete",
                        "op", a->op, "attempt", a->attempt, "t",
                        (json_int_t)a->complete_us, "outcome",
                        soak_outcome_name(a->outcome), "code", a->code);
  if (o && a->outcome == SOAK_OK) {
    char pos[ESC_POSITION_TOKEN_MAX];
    esc_position_format(&a->position, pos);
    json_object_set_new(o, "first_version", json_integer(a->first_version));
    json_object_set_new(o, "last_version", json_integer(a->last_version));
    json_object_set_new(o, "position", json_string(pos));
    json_object_set_new(o, "first_global", json_integer(a->first_global));
    json_object_set_new(o, "duplicate", json_boolean(a->duplicate));
  } else if (o) {
    json_object_set_new(o, "detail", json_string(a->detail));
  }
  return line_of(o);
}

static bool position_parse(const char *text, esc_position *out) {
  return esc_position_parse(text, out, NULL) == ESC_OK;
}

static bool sent_parse(const json_t *j, soak_sent *out, char *why,
                       size_t size) {
  const char *id = NULL, *item = NULL;
  json_int_t n = 0;
  json_error_t e;
  if (json_unpack_ex((json_t *)j, &e, 0, "{s:s, s:{s:I, s:s}}", "id", &id,
                     "data", "n", &n, "item", &item))
    return say(why, size, "event: %s", e.text);
  if (!copy(out->id, sizeof out->id, id) ||
      !copy(out->item, sizeof out->item, item))
    return say(why, size, "event: id or item too long");
  out->n = n;
  return true;
}

static bool invoke_parse(const json_t *o, soak_attempt *a, char *why,
                         size_t size) {
  const char *op, *client, *stream;
  json_t *expected, *events;
  json_int_t t;
  json_error_t e;
  memset(a, 0, sizeof *a);
  if (json_unpack_ex((json_t *)o, &e, 0, "{s:s, s:s, s:i, s:I, s:s, s:o, s:o}",
                     "op", &op, "client", &client, "attempt", &a->attempt,
                     "t", &t, "stream", &stream, "expected", &expected,
                     "events", &events))
    return say(why, size, "invoke: %s", e.text);
  if (!copy(a->op, sizeof a->op, op) ||
      !copy(a->client, sizeof a->client, client) ||
      !copy(a->stream, sizeof a->stream, stream))
    return say(why, size, "invoke: a name is too long");
  if (!expected_parse(expected, &a->expected))
    return say(why, size, "invoke: bad expected version");
  a->n = json_array_size(events);
  if (a->n < 1 || a->n > SOAK_MAX_BATCH)
    return say(why, size, "invoke: %zu events", a->n);
  for (size_t i = 0; i < a->n; i++)
    if (!sent_parse(json_array_get(events, i), &a->events[i], why, size))
      return false;
  a->invoke_us = t;
  a->complete_us = INT64_MAX;
  a->outcome = SOAK_PENDING;
  return true;
}

/* The attempt a complete record names: searched from the end, where the
 * invoke written just before it is. */
static soak_attempt *find_attempt(soak_history *h, const char *op,
                                  int attempt) {
  for (size_t i = h->count; i-- > 0;)
    if (h->items[i].attempt == attempt && strcmp(h->items[i].op, op) == 0)
      return &h->items[i];
  return NULL;
}

static bool result_parse(const json_t *o, soak_attempt *a, char *why,
                         size_t size) {
  const char *pos;
  json_int_t fv, lv, fg;
  int dup;
  json_error_t e;
  if (json_unpack_ex((json_t *)o, &e, 0, "{s:I, s:I, s:s, s:I, s:b}",
                     "first_version", &fv, "last_version", &lv, "position",
                     &pos, "first_global", &fg, "duplicate", &dup))
    return say(why, size, "complete: %s", e.text);
  if (!position_parse(pos, &a->position))
    return say(why, size, "complete: bad position %s", pos);
  a->first_version = fv;
  a->last_version = lv;
  a->first_global = fg;
  a->duplicate = dup != 0;
  return true;
}

static bool complete_parse(soak_history *h, const json_t *o, char *why,
                           size_t size) {
  const char *op, *outcome, *code = "", *detail = "";
  int attempt;
  json_int_t t;
  json_error_t e;
  if (json_unpack_ex((json_t *)o, &e, 0, "{s:s, s:i, s:I, s:s, s?s, s?s}",
                     "op", &op, "attempt", &attempt, "t", &t, "outcome",
                     &outcome, "code", &code, "detail", &detail))
    return say(why, size, "complete: %s", e.text);
  soak_attempt *a = find_attempt(h, op, attempt);
  if (!a) {
    h->unmatched++;
    return true;
  }
  if (!outcome_parse(outcome, &a->outcome))
    return say(why, size, "complete: bad outcome %s", outcome);
  a->complete_us = t;
  snprintf(a->code, sizeof a->code, "%s", code);
  snprintf(a->detail, sizeof a->detail, "%s", detail);
  return a->outcome != SOAK_OK || result_parse(o, a, why, size);
}

void soak_history_release(soak_history *h) {
  free(h->items);
  memset(h, 0, sizeof *h);
}

static soak_attempt *history_push(soak_history *h) {
  if (h->count == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 256;
    soak_attempt *items = realloc(h->items, cap * sizeof *items);
    if (!items)
      return NULL;
    h->items = items;
    h->cap = cap;
  }
  return &h->items[h->count++];
}

bool soak_history_add_line(soak_history *h, const char *line, char *why,
                           size_t size) {
  json_error_t e;
  json_t *o = json_loads(line, 0, &e);
  if (!o)
    return say(why, size, "not JSON: %s", e.text);
  const char *rec = json_string_value(json_object_get(o, "rec"));
  bool ok;
  if (rec && strcmp(rec, "invoke") == 0) {
    soak_attempt a;
    ok = invoke_parse(o, &a, why, size);
    soak_attempt *slot = ok ? history_push(h) : NULL;
    if (slot)
      *slot = a;
    else if (ok)
      ok = say(why, size, "out of memory");
  } else if (rec && strcmp(rec, "complete") == 0) {
    ok = complete_parse(h, o, why, size);
  } else {
    ok = say(why, size, "no \"rec\": invoke or complete");
  }
  json_decref(o);
  return ok;
}

/* Calls each(line) for every non-blank line; a last line without its
 * newline is passed with *last set. */
typedef bool line_fn(void *ctx, const char *line, bool last, char *why,
                     size_t size);

static bool each_line(const char *text, line_fn *each, void *ctx, char *why,
                      size_t size) {
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n > 0) {
      char *line = malloc(n + 1);
      if (!line)
        return say(why, size, "out of memory");
      memcpy(line, p, n);
      line[n] = '\0';
      bool ok = each(ctx, line, nl == NULL, why, size);
      free(line);
      if (!ok)
        return false;
    }
    p += n + (nl ? 1 : 0);
  }
  return true;
}

static bool history_line(void *ctx, const char *line, bool last, char *why,
                         size_t size) {
  soak_history *h = ctx;
  /* A client killed in the middle of its last write leaves half a line. */
  return soak_history_add_line(h, line, why, size) || last;
}

bool soak_history_add_text(soak_history *h, const char *text, char *why,
                           size_t size) {
  return each_line(text, history_line, h, why, size);
}

/* ---------------------------------------------------------------------
 * Deliveries and the log
 * --------------------------------------------------------------------- */

void soak_deliveries_release(soak_deliveries *d) {
  free(d->items);
  memset(d, 0, sizeof *d);
}

bool soak_deliveries_push(soak_deliveries *d, const soak_delivery *e) {
  if (d->count == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 1024;
    soak_delivery *items = realloc(d->items, cap * sizeof *items);
    if (!items)
      return false;
    d->items = items;
    d->cap = cap;
  }
  d->items[d->count++] = *e;
  return true;
}

char *soak_delivery_line(const soak_delivery *d) {
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&d->position, pos);
  json_t *o = json_pack("{s:s, s:I, s:s, s:s}", "stream", d->stream, "version",
                        (json_int_t)d->version, "id", d->id, "position", pos);
  if (o && d->has_data)
    json_object_set_new(o, "data", data_json(d->n, d->item));
  return line_of(o);
}

/* The data of a Counted event, when the line has one ({"n", "item"}). */
static void delivery_data(const json_t *o, soak_delivery *out) {
  const json_t *data = json_object_get(o, "data");
  const json_t *n = json_object_get(data, "n");
  const char *item = json_string_value(json_object_get(data, "item"));
  out->has_data = json_is_integer(n) && item &&
                  copy(out->item, sizeof out->item, item);
  out->n = out->has_data ? json_integer_value(n) : 0;
}

bool soak_delivery_parse(const char *line, soak_delivery *out, char *why,
                         size_t size) {
  const char *stream, *id, *pos;
  json_int_t version;
  json_error_t e;
  memset(out, 0, sizeof *out);
  json_t *o = json_loads(line, 0, &e);
  if (!o)
    return say(why, size, "not JSON: %s", e.text);
  bool ok = json_unpack_ex(o, &e, 0, "{s:s, s:I, s:s, s:s}", "stream", &stream,
                           "version", &version, "id", &id, "position",
                           &pos) == 0;
  if (!ok)
    say(why, size, "delivery: %s", e.text);
  else if (!copy(out->stream, sizeof out->stream, stream) ||
           !copy(out->id, sizeof out->id, id))
    ok = say(why, size, "delivery: stream or id too long");
  else if (!position_parse(pos, &out->position))
    ok = say(why, size, "delivery: bad position %s", pos);
  if (ok) {
    out->version = version;
    delivery_data(o, out);
  }
  json_decref(o);
  return ok;
}

static bool delivery_line(void *ctx, const char *line, bool last, char *why,
                          size_t size) {
  soak_delivery d;
  if (!soak_delivery_parse(line, &d, why, size))
    return last;
  return soak_deliveries_push(ctx, &d) || say(why, size, "out of memory");
}

bool soak_deliveries_add_text(soak_deliveries *d, const char *text, char *why,
                              size_t size) {
  return each_line(text, delivery_line, d, why, size);
}

char *soak_stream_version_line(const soak_stream_version *s) {
  return line_of(json_pack("{s:s, s:I}", "stream", s->stream, "version",
                           (json_int_t)s->version));
}

bool soak_stream_version_parse(const char *line, soak_stream_version *out,
                               char *why, size_t size) {
  const char *stream;
  json_int_t version;
  json_error_t e;
  json_t *o = json_loads(line, 0, &e);
  bool ok = o && json_unpack_ex(o, &e, 0, "{s:s, s:I}", "stream", &stream,
                                "version", &version) == 0;
  if (!ok)
    say(why, size, "stream version: %s", e.text);
  else if (!copy(out->stream, sizeof out->stream, stream))
    ok = say(why, size, "stream version: name too long");
  else
    out->version = version;
  json_decref(o);
  return ok;
}

/* ---------------------------------------------------------------------
 * The read model
 * --------------------------------------------------------------------- */

void soak_model_release(soak_model *m) {
  for (size_t i = 0; i < m->n_seqs; i++)
    free(m->seqs[i].versions);
  free(m->seqs);
  free(m->items);
  memset(m, 0, sizeof *m);
}

char *soak_model_json(const soak_model *m) {
  json_t *items = json_object(), *seqs = json_object();
  for (size_t i = 0; i < m->n_items; i++)
    json_object_set_new(items, m->items[i].item,
                        json_integer(m->items[i].score));
  for (size_t i = 0; i < m->n_seqs; i++) {
    json_t *v = json_array();
    for (size_t k = 0; k < m->seqs[i].count; k++)
      json_array_append_new(v, json_integer(m->seqs[i].versions[k]));
    json_object_set_new(seqs, m->seqs[i].stream, v);
  }
  return line_of(json_pack("{s:b, s:I, s:I, s:o, s:o}", "present", m->present,
                           "generation", (json_int_t)m->generation, "total",
                           (json_int_t)m->total, "items", items, "seq", seqs));
}

static bool model_items(const json_t *items, soak_model *m) {
  const char *key;
  json_t *v;
  m->items = calloc(json_object_size(items) + 1, sizeof *m->items);
  if (!m->items)
    return false;
  json_object_foreach((json_t *)items, key, v) {
    soak_item_score *s = &m->items[m->n_items++];
    if (!json_is_integer(v) || !copy(s->item, sizeof s->item, key))
      return false;
    s->score = json_integer_value(v);
  }
  return true;
}

static bool model_seqs(const json_t *seqs, soak_model *m) {
  const char *key;
  json_t *v;
  m->seqs = calloc(json_object_size(seqs) + 1, sizeof *m->seqs);
  if (!m->seqs)
    return false;
  json_object_foreach((json_t *)seqs, key, v) {
    soak_seq *s = &m->seqs[m->n_seqs++];
    size_t n = json_array_size(v);
    s->versions = calloc(n + 1, sizeof *s->versions);
    if (!json_is_array(v) || !s->versions ||
        !copy(s->stream, sizeof s->stream, key))
      return false;
    for (size_t k = 0; k < n; k++)
      s->versions[s->count++] = json_integer_value(json_array_get(v, k));
  }
  return true;
}

bool soak_model_parse(const char *text, soak_model *out, char *why,
                      size_t size) {
  json_t *items, *seqs;
  json_int_t g = 0, total = 0;
  int present = 0;
  json_error_t e;
  memset(out, 0, sizeof *out);
  json_t *o = json_loads(text, 0, &e);
  bool ok = o && json_unpack_ex(o, &e, 0, "{s:b, s:I, s:I, s:o, s:o}",
                                "present", &present, "generation", &g,
                                "total", &total, "items", &items, "seq",
                                &seqs) == 0;
  if (!ok)
    say(why, size, "model: %s", e.text);
  else if (!model_items(items, out) || !model_seqs(seqs, out))
    ok = say(why, size, "model: bad items or seq lists");
  out->present = present != 0;
  out->generation = g;
  out->total = total;
  json_decref(o);
  if (!ok)
    soak_model_release(out);
  return ok;
}

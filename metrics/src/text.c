/*
 * The growable text the exposition is written into, and the escaping of
 * label values: projection, schema and other names come from users, and a
 * quote or a line feed in one must not end the line early.
 */
#include "metrics_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct esc__text *t, size_t more) {
  if (t->failed)
    return false;
  if (t->len + more + 1 <= t->cap)
    return true;
  size_t cap = t->cap ? t->cap : 4096;
  while (cap < t->len + more + 1)
    cap *= 2;
  char *p = realloc(t->data, cap);
  if (!p) {
    t->failed = true;
    return false;
  }
  t->data = p;
  t->cap = cap;
  return true;
}

void esc__text_printf(struct esc__text *t, const char *fmt, ...) {
  va_list ap;
  char small[256];
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(t, (size_t)n)) {
    t->failed = true;
    return;
  }
  if ((size_t)n < sizeof small) {
    memcpy(t->data + t->len, small, (size_t)n + 1);
  } else {
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  t->len += (size_t)n;
}

void esc__text_label_value(struct esc__text *t, const char *value) {
  for (const char *p = value; *p; p++) {
    const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
    size_t n = rep ? 2 : 1;
    if (!reserve(t, n))
      return;
    memcpy(t->data + t->len, rep ? rep : p, n);
    t->len += n;
    t->data[t->len] = '\0';
  }
}

void esc__text_partition_labels(struct esc__text *t, const char *schema,
                                esc_consumer_kind kind, const char *projection,
                                int partition) {
  esc__text_printf(t, "{schema=\"");
  esc__text_label_value(t, schema);
  esc__text_printf(t, "\",%s=\"", esc_consumer_kind_name(kind));
  esc__text_label_value(t, projection);
  esc__text_printf(t, "\",partition=\"%d\"", partition);
}

void esc__text_header(struct esc__text *t, const char *name, const char *type,
                      const char *help) {
  esc__text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void esc__text_release(struct esc__text *t) {
  free(t->data);
  *t = (struct esc__text){NULL, 0, 0, false};
}

void esc__text_histogram(struct esc__text *t, const char *name,
                         const char *open, const esc_latency *h) {
  const char *sep = strcmp(open, "{") == 0 ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= ESC_LATENCY_BUCKETS; b++) {
    cumulative += h->buckets[b];
    esc__text_printf(t, "%s_bucket%s%s", name, open, sep);
    if (b < ESC_LATENCY_BUCKETS)
      esc__text_printf(t, "le=\"%g\"} %llu\n", esc_latency_bounds[b],
                       (unsigned long long)cumulative);
    else
      esc__text_printf(t, "le=\"+Inf\"} %llu\n",
                       (unsigned long long)cumulative);
  }
  esc__text_printf(t, "%s_sum%s} %.9g\n", name, open, h->sum_s);
  esc__text_printf(t, "%s_count%s} %llu\n", name, open,
                   (unsigned long long)h->count);
}

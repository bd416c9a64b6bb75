/*
 * Liveness and readiness, as rules over what the worker publishes and
 * what the store says now. Each rule that fails adds a reason, so an
 * operator reading the JSON learns every cause at once.
 */
#include "health_int.h"

#include <stdio.h>
#include <string.h>

static void why(json_t *reasons, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void why(json_t *reasons, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  json_array_append_new(reasons, json_string(line));
}

bool esc__health_live(const struct esc__health_rules *r,
                      const esc_worker_metrics *m, json_t *reasons) {
  if (!r->has_worker)
    return true;
  if (!m->running)
    why(reasons, "worker: not running");
  else if (m->since_round_s > r->live_max_round_s)
    why(reasons, "worker: no round ended for %.0f s (more than %.0f s)",
        m->since_round_s, r->live_max_round_s);
  return json_array_size(reasons) == 0;
}

/* Whether the worker holds the lease of s's partition. */
static bool holds(const esc_worker_metrics *m, const esc_partition_status *s) {
  for (size_t i = 0; i < m->count; i++)
    if (m->parts[i].leased && m->parts[i].partition == s->partition &&
        strcmp(m->parts[i].projection, s->projection) == 0)
      return true;
  return false;
}

static void lag_rules(const struct esc__health_rules *r,
                      const esc_worker_metrics *m,
                      const esc_partition_status *st, size_t n,
                      json_t *reasons) {
  for (size_t i = 0; i < n; i++) {
    const esc_partition_status *s = &st[i];
    if (s->rebuild_only || strcmp(s->state, "unknown") == 0 || !holds(m, s))
      continue;
    if (r->max_lag_s >= 0 && s->lag_seconds > r->max_lag_s)
      why(reasons, "%s/%d: lag %.1f s, more than %.1f s", s->projection,
          s->partition, s->lag_seconds, r->max_lag_s);
    if (r->max_lag_events > 0 && s->lag_events > r->max_lag_events)
      why(reasons, "%s/%d: lag %lld events, more than %lld", s->projection,
          s->partition, (long long)s->lag_events,
          (long long)r->max_lag_events);
  }
}

bool esc__health_ready(const struct esc__health_rules *r,
                       const esc_worker_metrics *m,
                       const esc_partition_status *st, size_t n,
                       const esc_error *status_err, json_t *reasons) {
  if (r->has_worker) {
    if (!m->running)
      why(reasons, "worker: not running");
    if (!m->pg_up)
      why(reasons, "postgres: the worker's connection is down%s%.200s",
          m->last_error[0] ? ": " : "", m->last_error);
    if (!m->redis_up)
      why(reasons, "redis: the worker's connection is down%s%.200s",
          m->last_error[0] ? ": " : "", m->last_error);
  }
  if (status_err) {
    why(reasons, "postgres: %.300s", status_err->msg);
    return false;
  }
  if (n > 0 && strcmp(st[0].state, "unknown") == 0)
    why(reasons, "redis: %.300s", st[0].reason);
  if (r->has_worker)
    lag_rules(r, m, st, n, reasons);
  return json_array_size(reasons) == 0;
}

/*
 * Health rules (health.c) for the server (server.c).
 */
#ifndef ESC_HEALTH_INT_H
#define ESC_HEALTH_INT_H

#include "metrics_int.h"

#include <jansson.h>
#include <stdarg.h>

struct esc__health_rules {
  bool has_worker;
  double max_lag_s;       /* < 0: no bound */
  int64_t max_lag_events; /* 0: no bound */
  double live_max_round_s;
};

/* Live: the worker's loop runs and went round recently. Adds a string to
 * reasons for every rule that fails; true when none did. */
bool esc__health_live(const struct esc__health_rules *r,
                      const esc_worker_metrics *m, json_t *reasons);

/* Ready: the worker runs with its connections up, the projection status
 * could be read (status_err NULL) with Redis answering, and every
 * partition the worker holds lags within the bounds. */
bool esc__health_ready(const struct esc__health_rules *r,
                       const esc_worker_metrics *m,
                       const esc_partition_status *st, size_t n,
                       const esc_error *status_err, json_t *reasons);

#endif

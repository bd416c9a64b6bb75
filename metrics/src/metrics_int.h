/*
 * The metrics module's internals: a growable text, the exposition's
 * pieces (text.c, store_text.c, worker_text.c) and the readiness rules
 * (health.c) the server (server.c) puts together.
 */
#ifndef ESC_METRICS_INT_H
#define ESC_METRICS_INT_H

#include <esc/command.h>
#include <esc/metrics.h>

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A growable NUL-terminated text; after a failed allocation it keeps
 * what it had and sets failed (checked once, at the end). */
struct esc__text {
  char *data;
  size_t len;
  size_t cap;
  bool failed;
};

void esc__text_printf(struct esc__text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends value escaped as a Prometheus label value: backslash, double
 * quote and line feed as \\, \" and \n; every other byte as it is. */
void esc__text_label_value(struct esc__text *t, const char *value);
/* {schema="S",projection="P",partition="N" -- subscription="P" for a
 * subscription's partition (the families are the same) -- left open for
 * more labels and the closing brace. */
void esc__text_partition_labels(struct esc__text *t, const char *schema,
                                esc_consumer_kind kind, const char *projection,
                                int partition);
/* "# HELP name help\n# TYPE name type\n" */
void esc__text_header(struct esc__text *t, const char *name, const char *type,
                      const char *help);
void esc__text_release(struct esc__text *t);

/* One histogram series: name_bucket (cumulative, le="bound" and "+Inf"),
 * name_sum and name_count, each with the labels `open` ("{a=\"b\"" left
 * open, as esc__text_partition_labels writes them; "{" for none). */
void esc__text_histogram(struct esc__text *t, const char *name,
                         const char *open, const esc_latency *h);

/* This process's appends and commands (esc_metrics_client_text). */
void esc__metrics_client(struct esc__text *t);

/* The store's and projections' gauges (esc_metrics_store_text); with
 * only, the lines of projections that worker runs. With mon the status
 * is read through it (its sessions kept between scrapes), else from
 * fresh sessions to pg_url and redis_url. */
esc_status esc__metrics_store(struct esc__text *t, esc_store *store,
                              esc_projection_monitor *mon, const char *pg_url,
                              const char *redis_url, const char *key_prefix,
                              const esc_worker_metrics *only, esc_error *err);
/* Renders status lines already read (the half of the above after the
 * reads), so the server can read once for /metrics. */
void esc__metrics_store_render(struct esc__text *t, const char *schema,
                               const esc_store_stats *stats,
                               const esc_order_report *order,
                               const esc_partition_status *st, size_t n,
                               const esc_worker_metrics *only);
/* Whether status line s is of a partition the worker may run. */
bool esc__metrics_runs(const esc_worker_metrics *m,
                       const esc_partition_status *s);

/* The worker's own counters, histogram and connections. */
void esc__metrics_worker(struct esc__text *t, const char *schema,
                         const esc_worker_metrics *m);

/* A listen address parsed into a socket address (see
 * esc_metrics_listen_check). */
esc_status esc__listen_parse(const char *listen, bool allow_remote,
                             struct sockaddr_storage *addr, socklen_t *len,
                             esc_error *err);

#endif

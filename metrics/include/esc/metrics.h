/*
 * <esc/metrics.h> - what esc does, for Prometheus: the text exposition of
 * a store, its projections and a worker, and an HTTP endpoint serving it
 * with health checks.
 *
 * Nothing here runs unless asked: a program that wants an endpoint starts
 * one (esc_metrics_server_start) beside its worker. It binds to loopback
 * unless told otherwise, and serves
 *
 *   GET /metrics       the text exposition format 0.0.4: the store's and
 *                      its projections' gauges (what `esc metrics` prints,
 *                      for the worker's projections) and the worker's own
 *                      counters, histograms and connections
 *   GET /health/live   200 while the worker's loop goes round, else 503
 *   GET /health/ready  200 while its connections are up, PostgreSQL and
 *                      Redis answer, and the partitions it holds lag less
 *                      than a bound; else 503
 *
 * Health bodies are JSON: {"status": "ready", "reasons": []}, or
 * {"status": "not ready", "reasons": ["postgres: ...", "orders/0: lag
 * 75.0 s, more than 60 s"]}. docs/operations.md lists every metric.
 *
 * Every scrape and readiness check opens two short sessions (PostgreSQL
 * and Redis) for the projection status and keeps one PostgreSQL session
 * for the store's figures: index lookups and one count(*) per partition
 * of the events after its checkpoint.
 */
#ifndef ESC_METRICS_H
#define ESC_METRICS_H

#include <esc/projection.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The store's and its projections' gauges as `esc metrics` prints them:
 * the store's positions and horizon (read with store, borrowed), then every
 * registered projection partition's (esc_projection_status on pg_url,
 * redis_url and key_prefix, as there). *out is a malloc'ed NUL-terminated
 * text the caller frees; NULL on failure, with err saying what failed.
 */
ESC_API esc_status esc_metrics_store_text(esc_store *store, const char *pg_url,
                                          const char *redis_url,
                                          const char *key_prefix, char **out,
                                          esc_error *err);

/*
 * This process's client figures (esc_append_metrics, esc_command_metrics)
 * as exposition text: esc_append_duration_seconds and
 * esc_command_duration_seconds histograms, conflict, retry, duplicate,
 * rejection and failure counters. For a program that serves its own
 * /metrics; the endpoint below includes them. *out is malloc'ed.
 */
ESC_API esc_status esc_metrics_client_text(char **out, esc_error *err);

/* The address the endpoint listens on by default. */
#define ESC_METRICS_LISTEN_DEFAULT "127.0.0.1:9464"

/*
 * Checks a listen address: "HOST:PORT" with HOST an IPv4 address, an IPv6
 * address in brackets ("[::1]:9464") or "localhost", PORT 0..65535 (0: any
 * free port). A HOST that is not a loopback address is refused unless
 * allow_remote: serving metrics beyond the machine is a choice to make
 * explicitly. ESC_EINVAL with a message naming what is wrong.
 */
ESC_API esc_status esc_metrics_listen_check(const char *listen,
                                            bool allow_remote, esc_error *err);

typedef struct esc_metrics_server esc_metrics_server;

typedef struct esc_metrics_server_options {
  const char *listen; /* NULL: ESC_METRICS_LISTEN_DEFAULT */
  bool allow_remote;  /* see esc_metrics_listen_check */
  /* The worker whose metrics and health to serve (borrowed: it must
   * outlive the server; it may run or not). NULL: only the store's. */
  esc_worker *worker;
  /* The servers, schema and key prefix the worker was given (copied);
   * NULL: the same defaults as the worker's. */
  const char *pg_url;
  const char *redis_url;
  const char *schema;
  const char *key_prefix;
  /* Ready only while every partition the worker holds lags at most this
   * many seconds; 0: 60, < 0: no bound. */
  double ready_max_lag_s;
  /* and at most this many events; 0: no bound. */
  int64_t ready_max_lag_events;
  /* Live only while the worker's loop ended a round at most this long
   * ago; 0: 120 s (longer than any of its waits and time-outs). */
  double live_max_round_s;
} esc_metrics_server_options;

#define ESC_METRICS_SERVER_OPTIONS_INIT                                        \
  { NULL, false, NULL, NULL, NULL, NULL, NULL, 0, 0, 0 }

/*
 * Starts serving on a thread of the server's own (libmicrohttpd's, one
 * request at a time). NULL and ESC_EINVAL for a bad address, ESC_EIO when
 * it cannot listen (the message says why: in use, no permission).
 */
ESC_API esc_metrics_server *
esc_metrics_server_start(const esc_metrics_server_options *opts,
                         esc_error *err);

/* The port it listens on (the one chosen when PORT was 0). */
ESC_API int esc_metrics_server_port(const esc_metrics_server *s);

/* Stops serving (a request in progress finishes first) and frees s.
 * Accepts NULL. */
ESC_API void esc_metrics_server_free(esc_metrics_server *s);

#ifdef __cplusplus
}
#endif
#endif /* ESC_METRICS_H */

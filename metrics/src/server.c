/*
 * The HTTP endpoint: libmicrohttpd on one internal thread, so requests
 * are served one at a time and the server's store connection belongs to
 * that thread alone. The worker's figures come through
 * esc_worker_metrics_get, which is safe to call while the worker runs.
 */
#include "health_int.h"

#include <microhttpd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECTION_TIMEOUT_S 10u
#define CONNECTION_LIMIT 32u
#define STORE_TIMEOUT_MS 5000
#define STORE_CONNECT_TIMEOUT_S 5

struct esc_metrics_server {
  struct MHD_Daemon *daemon;
  esc_worker *worker; /* borrowed; NULL: none */
  char *pg_url, *redis_url, *schema, *key_prefix;
  struct esc__health_rules rules;
  esc_store *store; /* the server thread's; NULL until needed or after a
                       failure */
  /* The status sessions, kept between scrapes (each would cost two
   * PostgreSQL logins and a Redis connection); NULL until needed. */
  esc_projection_monitor *monitor;
  int port;
};

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* ---------------------------------------------------------- responses -- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code,
                             const char *type, char *body, size_t len) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
  if (!r) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  enum MHD_Result ok = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned int code,
                                  const char *text) {
  char *body = strdup(text);
  return reply(c, code, "text/plain; charset=utf-8", body,
               body ? strlen(body) : 0);
}

static enum MHD_Result reply_health(struct MHD_Connection *c, bool ok,
                                    const char *yes, const char *no,
                                    json_t *reasons) {
  json_t *o = json_pack("{s:s, s:O}", "status", ok ? yes : no, "reasons",
                        reasons);
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!body)
    return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  size_t len = strlen(body);
  char *line = realloc(body, len + 2);
  if (line) {
    body = line;
    memcpy(body + len, "\n", 2);
    len++;
  }
  return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
               "application/json", body, len);
}

/* ------------------------------------------------------------ handlers -- */

static esc_store *store_of(esc_metrics_server *s, esc_error *err) {
  if (s->store)
    return s->store;
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = s->schema;
  o.app_name = "esc-metrics";
  o.connect_timeout_s = STORE_CONNECT_TIMEOUT_S;
  o.timeout_ms = STORE_TIMEOUT_MS;
  s->store = esc_store_open(s->pg_url, &o, err);
  return s->store;
}

static esc_projection_monitor *monitor_of(esc_metrics_server *s,
                                          esc_error *err) {
  if (!s->monitor)
    s->monitor = esc_projection_monitor_new(s->pg_url, s->redis_url,
                                            s->schema, s->key_prefix, err);
  return s->monitor;
}

static enum MHD_Result serve_metrics(esc_metrics_server *s,
                                     struct MHD_Connection *c,
                                     const esc_worker_metrics *m) {
  struct esc__text t = {NULL, 0, 0, false};
  struct esc__text store_part = {NULL, 0, 0, false};
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = store_of(s, &err);
  const char *schema = s->schema ? s->schema : "esc";
  esc_projection_monitor *mon = st ? monitor_of(s, &err) : NULL;
  esc_status rc = mon ? esc__metrics_store(&store_part, st, mon, s->pg_url,
                                           s->redis_url, s->key_prefix,
                                           s->worker ? m : NULL, &err)
                      : ESC_ECONN;
  if (rc && st) {
    esc_store_free(s->store); /* a new session next time (the monitor
                                 closes its own on a failure) */
    s->store = NULL;
  }
  if (!rc && store_part.data)
    esc__text_printf(&t, "%s", store_part.data);
  esc__text_release(&store_part);
  esc__text_header(&t, "esc_store_reachable", "gauge",
                   "1 when the store's PostgreSQL answered this scrape (0: "
                   "the store's and projections' gauges are missing).");
  esc__text_printf(&t, "esc_store_reachable{schema=\"");
  esc__text_label_value(&t, schema);
  esc__text_printf(&t, "\"} %d\n", rc == ESC_OK);
  if (s->worker)
    esc__metrics_worker(&t, schema, m);
  esc__metrics_client(&t);
  if (t.failed || !t.data) {
    esc__text_release(&t);
    return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
               t.data, t.len);
}

static enum MHD_Result serve_ready(esc_metrics_server *s,
                                   struct MHD_Connection *c,
                                   const esc_worker_metrics *m) {
  esc_partition_status *st = NULL;
  size_t n = 0;
  esc_error err = ESC_ERROR_INIT;
  esc_projection_monitor *mon = monitor_of(s, &err);
  esc_status rc =
      mon ? esc_projection_monitor_status(mon, &st, &n, &err) : ESC_ENOMEM;
  json_t *reasons = json_array();
  bool ok = esc__health_ready(&s->rules, m, st, n, rc ? &err : NULL, reasons);
  enum MHD_Result r = reply_health(c, ok, "ready", "not ready", reasons);
  json_decref(reasons);
  free(st);
  return r;
}

static enum MHD_Result serve_live(esc_metrics_server *s,
                                  struct MHD_Connection *c,
                                  const esc_worker_metrics *m) {
  json_t *reasons = json_array();
  bool ok = esc__health_live(&s->rules, m, reasons);
  enum MHD_Result r = reply_health(c, ok, "live", "not live", reasons);
  json_decref(reasons);
  return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  esc_metrics_server *s = cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)state;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
  bool metrics = strcmp(url, "/metrics") == 0;
  bool live = strcmp(url, "/health/live") == 0;
  bool ready = strcmp(url, "/health/ready") == 0;
  if (!metrics && !live && !ready)
    return reply_text(c, MHD_HTTP_NOT_FOUND,
                      "not found: try /metrics, /health/live or "
                      "/health/ready\n");
  esc_worker_metrics m;
  esc_error err = ESC_ERROR_INIT;
  if (esc_worker_metrics_get(s->worker, &m, &err) != ESC_OK)
    return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  enum MHD_Result r = metrics ? serve_metrics(s, c, &m)
                      : live  ? serve_live(s, c, &m)
                              : serve_ready(s, c, &m);
  esc_worker_metrics_release(&m);
  return r;
}

/* ----------------------------------------------------------- lifecycle -- */

static void rules_from(struct esc__health_rules *r,
                       const esc_metrics_server_options *o) {
  r->has_worker = o->worker != NULL;
  r->max_lag_s = o->ready_max_lag_s == 0 ? 60 : o->ready_max_lag_s;
  r->max_lag_events = o->ready_max_lag_events;
  r->live_max_round_s = o->live_max_round_s > 0 ? o->live_max_round_s : 120;
}

esc_metrics_server *
esc_metrics_server_start(const esc_metrics_server_options *opts,
                         esc_error *err) {
  esc_metrics_server_options none = ESC_METRICS_SERVER_OPTIONS_INIT;
  const esc_metrics_server_options *o = opts ? opts : &none;
  const char *listen = o->listen ? o->listen : ESC_METRICS_LISTEN_DEFAULT;
  struct sockaddr_storage addr;
  socklen_t len;
  if (esc__listen_parse(listen, o->allow_remote, &addr, &len, err))
    return NULL;
  esc_metrics_server *s = calloc(1, sizeof *s);
  if (!s) {
    esc_error_set(err, ESC_ENOMEM, "metrics server: out of memory");
    return NULL;
  }
  s->worker = o->worker;
  s->pg_url = dup_or_null(o->pg_url);
  s->redis_url = dup_or_null(o->redis_url);
  s->schema = strdup(o->schema ? o->schema : "esc");
  s->key_prefix = dup_or_null(o->key_prefix);
  rules_from(&s->rules, o);
  if ((o->pg_url && !s->pg_url) || (o->redis_url && !s->redis_url) ||
      !s->schema || (o->key_prefix && !s->key_prefix)) {
    esc_error_set(err, ESC_ENOMEM, "metrics server: out of memory");
    esc_metrics_server_free(s);
    return NULL;
  }
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
  if (addr.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  errno = 0;
  s->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT,
      CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
      MHD_OPTION_END);
  if (!s->daemon) {
    int e = errno;
    esc_error_set(err, ESC_EIO, "metrics server: cannot listen on %s: %s",
                  listen, e ? strerror(e) : "libmicrohttpd refused to start");
    esc_metrics_server_free(s);
    return NULL;
  }
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? (int)info->port : 0;
  (void)len;
  return s;
}

int esc_metrics_server_port(const esc_metrics_server *s) {
  return s ? s->port : 0;
}

void esc_metrics_server_free(esc_metrics_server *s) {
  if (!s)
    return;
  if (s->daemon)
    MHD_stop_daemon(s->daemon); /* joins its thread */
  esc_store_free(s->store);
  esc_projection_monitor_free(s->monitor);
  free(s->pg_url);
  free(s->redis_url);
  free(s->schema);
  free(s->key_prefix);
  free(s);
}

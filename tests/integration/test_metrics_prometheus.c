/*
 * The metrics endpoint scraped by a real Prometheus (issue #14): a worker
 * with esc_metrics_server_start applies what the test appended; a
 * Prometheus started here, on a free loopback port with the shipped scrape
 * config (docs/operations/prometheus.yml, its target and intervals set for
 * the test) and alert rules, scrapes it; its HTTP API must then report the
 * applied counter and, after the worker stops and more is appended, the lag
 * the test caused. `promtool check metrics` must accept the exposition,
 * and readiness must say why it is not ready while the worker is stopped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <esc/metrics.h>

#include "httpget.h"
#include "metrics_worker.h"
#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

#define WAIT_MS 60000

static char schema[40], name[48], dir[64];
static char base[ESC_TEST_KEY_BASE_SIZE];
static redisContext *redis;
static esc_store *store;
static pid_t prometheus;

static bool tools_missing(void) {
  return strstr(ESC_PROMETHEUS_PATH, "NOTFOUND") ||
         strstr(ESC_PROMTOOL_PATH, "NOTFOUND");
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_metrics_%d", (int)getpid());
  snprintf(name, sizeof name, "tm%d", (int)getpid());
  snprintf(dir, sizeof dir, "/tmp/esc-prometheus-XXXXXX");
  if (!mkdtemp(dir))
    fail_msg("mkdtemp: %s", dir);
  store = esc_test_fresh_store(schema);
  esc_test_key_base(schema, name, base, sizeof base);
  redis = esc_test_redis(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2], cmd[160];
  if (prometheus > 0)
    esc_test_kill_child(prometheus);
  prometheus = 0;
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(redis, prefix);
  redisFree(redis);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}

/* ------------------------------------------------------------ helpers -- */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    fail_msg("open %s", path);
  char *buf = calloc(1, 1 << 16);
  size_t n = fread(buf, 1, (1 << 16) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0)
    fail_msg("write %s", path);
}

/* Replaces every from in *text with to (reallocating). */
static void replace(char **text, const char *from, const char *to) {
  size_t n = 0;
  for (const char *p = *text; (p = strstr(p, from)); p += strlen(from))
    n++;
  if (n == 0)
    fail_msg("the shipped config has no \"%s\" any more", from);
  char *out = malloc(strlen(*text) + n * strlen(to) + 1), *o = out;
  for (const char *p = *text, *q; *p; p = q + strlen(from)) {
    q = strstr(p, from);
    if (!q) {
      strcpy(o, p);
      break;
    }
    memcpy(o, p, (size_t)(q - p));
    o += q - p;
    strcpy(o, to);
    o += strlen(to);
    *o = '\0';
  }
  free(*text);
  *text = out;
}

/* The shipped config, scraping target every second, into dir; the
 * shipped rules beside it. */
static void write_config(int target) {
  char path[160], addr[32];
  snprintf(path, sizeof path, "%s/prometheus.yml", ESC_OPERATIONS_DIR);
  char *cfg = read_file(path);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", target);
  replace(&cfg, "127.0.0.1:9464", addr);
  replace(&cfg, "scrape_interval: 15s", "scrape_interval: 1s");
  replace(&cfg, "scrape_timeout: 10s", "scrape_timeout: 1s");
  replace(&cfg, "evaluation_interval: 15s", "evaluation_interval: 1s");
  snprintf(path, sizeof path, "%s/prometheus.yml", dir);
  write_file(path, cfg);
  free(cfg);
  snprintf(path, sizeof path, "%s/alerts.yml", ESC_OPERATIONS_DIR);
  char *rules = read_file(path);
  snprintf(path, sizeof path, "%s/alerts.yml", dir);
  write_file(path, rules);
  free(rules);
}

/* Starts Prometheus on a free port and waits until it is ready. */
static int start_prometheus(int target) {
  char config[160], data[160], listen[64], log[160];
  int port = esc_test_free_port(29090, 500);
  write_config(target);
  snprintf(config, sizeof config, "--config.file=%s/prometheus.yml", dir);
  snprintf(data, sizeof data, "--storage.tsdb.path=%s/data", dir);
  snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
  snprintf(log, sizeof log, "%s/prometheus.log", dir);
  const char *argv[] = {ESC_PROMETHEUS_PATH, config, data, listen, NULL};
  prometheus = esc_test_spawn(ESC_PROMETHEUS_PATH, argv, NULL, log);
  for (long long until = esc_test_now_ms() + WAIT_MS;;) {
    char *body = NULL;
    int status = esc_test_http_get(port, "/-/ready", 1000, &body);
    free(body);
    if (status == 200)
      return port;
    if (esc_test_now_ms() > until) {
      esc_test_print_tail(log, 40);
      fail_msg("Prometheus not ready on port %d", port);
    }
    esc_test_sleep_ms(200);
  }
}

/* The value of an instant query's only sample, or -1 when there is none
 * (yet). */
static double query(int port, const char *promql) {
  char enc[1024], path[1200];
  char *body = NULL;
  assert_non_null(esc_test_url_encode(promql, enc, sizeof enc));
  snprintf(path, sizeof path, "/api/v1/query?query=%s", enc);
  int status = esc_test_http_get(port, path, 5000, &body);
  double v = -1;
  json_t *doc = status == 200 ? json_loads(body, 0, NULL) : NULL;
  json_t *result = json_object_get(json_object_get(doc, "data"), "result");
  if (json_array_size(result) == 1) {
    json_t *value = json_object_get(json_array_get(result, 0), "value");
    v = strtod(json_string_value(json_array_get(value, 1)), NULL);
  }
  json_decref(doc);
  free(body);
  return v;
}

/* Waits until Prometheus reports want for promql. */
static void expect(int port, const char *promql, double want) {
  double got = -1;
  for (long long until = esc_test_now_ms() + WAIT_MS;
       esc_test_now_ms() < until; esc_test_sleep_ms(250))
    if ((got = query(port, promql)) == want)
      return;
  fail_msg("Prometheus: %s is %g, expected %g", promql, got, want);
}

/* The endpoint's /metrics value of one sample line starting with prefix,
 * or -1. */
static double scraped(int port, const char *prefix) {
  char *body = NULL;
  double v = -1;
  if (esc_test_http_get(port, "/metrics", 10000, &body) == 200) {
    const char *line = strstr(body, prefix);
    if (line)
      v = strtod(line + strlen(prefix), NULL);
  }
  free(body);
  return v;
}

static void promtool_check(int port) {
  char path[160], cmd[400];
  char *body = NULL;
  assert_int_equal(esc_test_http_get(port, "/metrics", 10000, &body), 200);
  snprintf(path, sizeof path, "%s/scrape.prom", dir);
  write_file(path, body);
  free(body);
  snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", ESC_PROMTOOL_PATH,
           path);
  int status = -1;
  char *out = esc_test_command_output(cmd, &status);
  if (status != 0 || (out && out[0]))
    fail_msg("promtool check metrics (exit %d): %s", status, out);
  free(out);
}

/* -------------------------------------------------------------- tests -- */

static void prometheus_sees_applied_and_lag(void **state) {
  (void)state;
  if (tools_missing())
    skip();
  esc_projection p;
  esc_metrics_server *srv = NULL;
  tally_projection(&p, name, 1, 1);
  esc_worker *w = esc_test_metrics_worker(&p, NULL, schema, &srv);
  int port = esc_metrics_server_port(srv);
  assert_true(port > 0);

  const int first = 500, more = 123;
  tally_append(store, "a", 10, first);
  esc_test_worker_thread t;
  esc_test_worker_thread_start(&t, w);
  char applied[200];
  snprintf(applied, sizeof applied,
           "esc_projection_events_applied_total{schema=\"%s\","
           "projection=\"%s\",partition=\"0\"} ",
           schema, name);
  for (long long until = esc_test_now_ms() + WAIT_MS;
       scraped(port, applied) != first; esc_test_sleep_ms(100))
    if (esc_test_now_ms() > until)
      fail_msg("the worker did not apply %d events in time", first);

  int prom = start_prometheus(port);
  char q[256];
  snprintf(q, sizeof q, "esc_projection_events_applied_total{projection=\"%s\"}",
           name);
  expect(prom, q, first);
  snprintf(q, sizeof q, "esc_projection_lag_events{projection=\"%s\"}", name);
  expect(prom, q, 0);
  snprintf(q, sizeof q, "esc_projection_batches_total{projection=\"%s\"}", name);
  assert_true(query(prom, q) >= (first + 96) / 97);
  snprintf(q, sizeof q,
           "esc_projection_batch_duration_seconds_count{projection=\"%s\"}",
           name);
  assert_true(query(prom, q) >= (first + 96) / 97);
  snprintf(q, sizeof q, "esc_connection_up{schema=\"%s\",connection=\"postgres\"}",
           schema);
  expect(prom, q, 1);
  snprintf(q, sizeof q, "up{job=\"esc\"}");
  expect(prom, q, 1);

  /* Stopped, the worker applies nothing more: what is appended now is
   * lag, and the counter stays. */
  assert_int_equal(esc_test_worker_thread_stop(&t), ESC_OK);
  tally_append(store, "b", 10, more);
  snprintf(q, sizeof q, "esc_projection_lag_events{projection=\"%s\"}", name);
  expect(prom, q, more);
  snprintf(q, sizeof q, "esc_projection_events_applied_total{projection=\"%s\"}",
           name);
  expect(prom, q, first);
  snprintf(q, sizeof q, "esc_projection_lag_seconds{projection=\"%s\"} > 0",
           name);
  assert_true(query(prom, q) > 0);

  promtool_check(port);
  char *body = NULL;
  assert_int_equal(esc_test_http_get(port, "/health/ready", 10000, &body), 503);
  assert_non_null(strstr(body, "worker: not running"));
  free(body);
  assert_int_equal(esc_test_http_get(port, "/health/live", 10000, &body), 503);
  free(body);
  assert_int_equal(esc_test_http_get(port, "/nothing", 10000, &body), 404);
  free(body);

  /* Running again, it catches up: the counter counts both. */
  esc_test_worker_thread_start(&t, w);
  snprintf(q, sizeof q, "esc_projection_events_applied_total{projection=\"%s\"}",
           name);
  expect(prom, q, first + more);
  snprintf(q, sizeof q, "esc_projection_lag_events{projection=\"%s\"}", name);
  expect(prom, q, 0);
  assert_int_equal(esc_test_http_get(port, "/health/ready", 10000, &body), 200);
  assert_non_null(strstr(body, "\"status\":\"ready\""));
  free(body);
  assert_int_equal(esc_test_worker_thread_stop(&t), ESC_OK);
  esc_metrics_server_free(srv);
  esc_worker_free(w);
}

static void refuses_what_it_cannot_bind(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  esc_metrics_server_options mo = ESC_METRICS_SERVER_OPTIONS_INIT;
  mo.listen = "0.0.0.0:0";
  assert_null(esc_metrics_server_start(&mo, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "not a loopback address"));
  /* A port in use: the message says so. */
  mo.listen = "127.0.0.1:0";
  esc_metrics_server *a = esc_metrics_server_start(&mo, &err);
  assert_non_null(a);
  char taken[32];
  snprintf(taken, sizeof taken, "127.0.0.1:%d", esc_metrics_server_port(a));
  mo.listen = taken;
  assert_null(esc_metrics_server_start(&mo, &err));
  assert_int_equal(err.code, ESC_EIO);
  assert_non_null(strstr(err.msg, "cannot listen on"));
  esc_metrics_server_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prometheus_sees_applied_and_lag),
      cmocka_unit_test(refuses_what_it_cannot_bind),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

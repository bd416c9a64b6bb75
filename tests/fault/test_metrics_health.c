/*
 * Readiness follows PostgreSQL (issue #14): a worker with its metrics
 * endpoint runs against a private cluster (tests/support/pgcluster.h,
 * never the shared server); /health/ready is 200, turns 503 within a
 * bounded time after the cluster stops — saying postgres is why — and 200
 * again within a bounded time after it is back, while /metrics keeps
 * answering with esc_connection_up{connection="postgres"} 0 meanwhile.
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

#include "httpget.h"
#include "metrics_worker.h"
#include "pgcluster.h"
#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

#define SCHEMA "metrics_health"
/* The worker backs off at most 5 s between tries, its connections time
 * out within 10 s: within 20 s of the change, readiness must follow. */
#define BOUND_MS 20000

static esc_test_pg_cluster *cluster;
static char name[48], base[ESC_TEST_KEY_BASE_SIZE];
static redisContext *redis;

static int setup(void **state) {
  (void)state;
  snprintf(name, sizeof name, "mh%d", (int)getpid());
  cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  redis = esc_test_redis(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (redis && base[0]) {
    char prefix[ESC_TEST_KEY_BASE_SIZE + 2];
    snprintf(prefix, sizeof prefix, "%s:", base);
    esc_test_redis_delete_prefix(redis, prefix);
  }
  if (redis)
    redisFree(redis);
  redis = NULL;
  esc_test_pg_cluster_free(cluster);
  cluster = NULL;
  return 0;
}

/* The value of the sample line that starts with series (name and
 * labels, then a space) in an exposition; -1 when there is none. */
static long long metric(const char *metrics, const char *series) {
  const char *at = strstr(metrics, series);
  return at ? strtoll(at + strlen(series), NULL, 10) : -1;
}

/* Polls /health/ready until its status is want (within BOUND_MS);
 * returns the body (malloc'ed) and how long it took. */
static char *ready_becomes(int port, int want, long long *took_ms) {
  long long start = esc_test_now_ms();
  for (;;) {
    char *body = NULL;
    int status = esc_test_http_get(port, "/health/ready", 15000, &body);
    if (status == want) {
      *took_ms = esc_test_now_ms() - start;
      return body;
    }
    if (esc_test_now_ms() - start > BOUND_MS)
      fail_msg("/health/ready stayed %d (not %d) for %d ms: %s", status, want,
               BOUND_MS, body ? body : "(no answer)");
    free(body);
    esc_test_sleep_ms(200);
  }
}

static void ready_follows_postgres(void **state) {
  (void)state;
  const char *url = esc_test_pg_cluster_url(cluster);
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  so.schema = SCHEMA;
  esc_store *st = esc_store_open(url, &so, &err);
  if (!st || esc_store_migrate(st, NULL, &err))
    fail_msg("store on the private cluster: %s", err.msg);
  /* The test helpers that read the default server read this one. */
  setenv("ESC_PG_URL", url, 1);
  esc_test_key_base(SCHEMA, name, base, sizeof base);
  tally_append(st, "a", 5, 50);
  esc_store_free(st);

  esc_projection p;
  esc_metrics_server *srv = NULL;
  tally_projection(&p, name, 1, 1);
  esc_worker *w = esc_test_metrics_worker(&p, url, SCHEMA, &srv);
  int port = esc_metrics_server_port(srv);
  esc_test_worker_thread t;
  esc_test_worker_thread_start(&t, w);

  long long took = 0;
  free(ready_becomes(port, 200, &took));

  esc_test_pg_cluster_stop(cluster, "fast");
  char *body = ready_becomes(port, 503, &took);
  fprintf(stderr, "  not ready %lld ms after the stop: %s", took, body);
  assert_non_null(strstr(body, "postgres"));
  free(body);
  char *metrics = NULL;
  assert_int_equal(esc_test_http_get(port, "/metrics", 15000, &metrics), 200);
  assert_non_null(
      strstr(metrics, "esc_store_reachable{schema=\"" SCHEMA "\"} 0\n"));
  free(metrics);

  esc_test_pg_cluster_start(cluster);
  body = ready_becomes(port, 200, &took);
  fprintf(stderr, "  ready %lld ms after the start: %s", took, body);
  free(body);
  /* Ready may come first: the endpoint's own status read reconnects at
   * once, while an idle worker notices its broken session only when it
   * next uses it (its poll, up to a second later). */
  long long up = -1, reconnects = -1, start = esc_test_now_ms();
  while (up != 1 || reconnects < 1) {
    if (esc_test_now_ms() - start > BOUND_MS)
      fail_msg("after the restart: esc_connection_up %lld, reconnects %lld "
               "for %d ms",
               up, reconnects, BOUND_MS);
    esc_test_sleep_ms(100);
    assert_int_equal(esc_test_http_get(port, "/metrics", 15000, &metrics), 200);
    up = metric(metrics, "esc_connection_up{schema=\"" SCHEMA
                         "\",connection=\"postgres\"} ");
    reconnects =
        metric(metrics, "esc_connection_reconnects_total{schema=\"" SCHEMA
                        "\",connection=\"postgres\"} ");
    free(metrics);
  }

  assert_int_equal(esc_test_worker_thread_stop(&t), ESC_OK);
  esc_metrics_server_free(srv);
  esc_worker_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(ready_follows_postgres, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The metrics text without servers: label values escaped (projection
 * names cannot hold quotes, backslashes or line feeds today — they are
 * [a-z0-9_] — but schema names and what else becomes a label come from
 * users, so the escaping is tested here with such values, and the whole
 * exposition with them is fed to `promtool check metrics`); the histogram
 * cumulative; the listen address parsed with clear errors; the health
 * rules.
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

#include "health_int.h"
#include "testenv.h"

static const char *escaped(const char *value) {
  static struct esc__text t;
  esc__text_release(&t);
  esc__text_label_value(&t, value);
  assert_false(t.failed);
  return t.data ? t.data : "";
}

static void label_values_are_escaped(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"orders", "orders"},
      {"", ""},
      {"a\"b", "a\\\"b"},
      {"back\\slash", "back\\\\slash"},
      {"two\nlines", "two\\nlines"},
      {"\"\\\n", "\\\"\\\\\\n"},
      {"\\n", "\\\\n"}, /* a backslash and an n stay two characters */
      {"tab\tand cr\r", "tab\tand cr\r"}, /* only \\, \" and \n escape */
      {"caf\xc3\xa9", "caf\xc3\xa9"},     /* UTF-8 as it is */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_string_equal(escaped(cases[i].in), cases[i].out);
  escaped(""); /* frees the previous text */
}

/* A status line and a worker figure with a hostile name. */
static esc_partition_status hostile_status(const char *name) {
  esc_partition_status s;
  memset(&s, 0, sizeof s);
  snprintf(s.projection, sizeof s.projection, "%s", name);
  s.partitions = 1;
  s.generation = 3;
  s.checkpoint.global = 42;
  s.lag_events = 7;
  s.lag_seconds = 1.5;
  s.lease_pid = 99;
  snprintf(s.state, sizeof s.state, "running");
  return s;
}

static esc_partition_metrics hostile_part(const char *name) {
  esc_partition_metrics p;
  memset(&p, 0, sizeof p);
  snprintf(p.projection, sizeof p.projection, "%s", name);
  p.leased = true;
  p.events_applied = 500;
  p.batches = 6;
  p.batch_buckets[0] = 2;
  p.batch_buckets[3] = 3;
  p.batch_buckets[ESC_BATCH_DURATION_BUCKETS] = 1;
  p.batch_seconds = 12.25;
  return p;
}

static char *render(const char *schema, const char *name) {
  struct esc__text t = {NULL, 0, 0, false};
  esc_store_stats stats;
  esc_order_report order = {0, 0, 0};
  memset(&stats, 0, sizeof stats);
  stats.head.global = 42;
  esc_partition_status st = hostile_status(name);
  esc_partition_metrics part = hostile_part(name);
  esc_worker_metrics m;
  memset(&m, 0, sizeof m);
  m.running = m.pg_up = m.redis_up = true;
  m.count = 1;
  m.parts = &part;
  esc__metrics_store_render(&t, schema, &stats, &order, &st, 1, &m);
  esc__metrics_worker(&t, schema, &m);
  assert_false(t.failed);
  return t.data;
}

static void hostile_names_render_escaped(void **state) {
  (void)state;
  char *text = render("sch\"ema", "we\"ird\\name\nx");
  assert_non_null(strstr(
      text, "esc_projection_lag_events{schema=\"sch\\\"ema\",projection="
            "\"we\\\"ird\\\\name\\nx\",partition=\"0\"} 7\n"));
  assert_non_null(strstr(
      text, "esc_projection_events_applied_total{schema=\"sch\\\"ema\","
            "projection=\"we\\\"ird\\\\name\\nx\",partition=\"0\"} 500\n"));
  /* No raw line feed inside a sample: every line starts a name or #. */
  for (const char *l = text; *l; l = strchr(l, '\n') + 1)
    assert_true(strncmp(l, "esc_", 4) == 0 || l[0] == '#');
  free(text);
}

static void histogram_is_cumulative(void **state) {
  (void)state;
  char *text = render("esc", "orders");
  const char *p = "esc_projection_batch_duration_seconds_bucket{schema="
                  "\"esc\",projection=\"orders\",partition=\"0\",";
  char line[256];
  snprintf(line, sizeof line, "%sle=\"0.001\"} 2\n", p);
  assert_non_null(strstr(text, line));
  snprintf(line, sizeof line, "%sle=\"0.01\"} 5\n", p);
  assert_non_null(strstr(text, line));
  snprintf(line, sizeof line, "%sle=\"10\"} 5\n", p);
  assert_non_null(strstr(text, line));
  snprintf(line, sizeof line, "%sle=\"+Inf\"} 6\n", p);
  assert_non_null(strstr(text, line));
  assert_non_null(strstr(text, "esc_projection_batch_duration_seconds_count{"
                               "schema=\"esc\",projection=\"orders\","
                               "partition=\"0\"} 6\n"));
  assert_non_null(strstr(text, "esc_projection_batch_duration_seconds_sum{"
                               "schema=\"esc\",projection=\"orders\","
                               "partition=\"0\"} 12.25\n"));
  free(text);
}

/* Feeds text to `promtool check metrics`; fails on any complaint. */
static void promtool_check(const char *text) {
  char path[] = "/tmp/esc-metrics-text-XXXXXX", cmd[512];
  int fd = mkstemp(path), status = -1;
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", ESC_PROMTOOL_PATH,
           path);
  char *out = esc_test_command_output(cmd, &status);
  unlink(path);
  if (status != 0 || (out && out[0]))
    fail_msg("promtool check metrics (exit %d): %s", status, out);
  free(out);
}

/* promtool parses and lints the exposition, hostile labels included. */
static void promtool_accepts_the_exposition(void **state) {
  (void)state;
  if (strstr(ESC_PROMTOOL_PATH, "NOTFOUND"))
    skip();
  char *text = render("sch\"ema\\", "we\"ird\\name\nx");
  promtool_check(text);
  free(text);
}

/* The client half: every family present, its histogram with one line per
 * bucket and +Inf, and promtool accepting it. */
static void client_text_has_every_family(void **state) {
  (void)state;
  char *text = NULL;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_metrics_client_text(&text, &err), ESC_OK);
  static const char *const families[] = {
      "esc_append_duration_seconds", "esc_append_conflicts_total",
      "esc_append_duplicates_total", "esc_append_failures_total",
      "esc_command_duration_seconds", "esc_command_conflicts_total",
      "esc_command_retries_total", "esc_command_duplicates_total",
      "esc_command_rejected_total", "esc_command_failures_total"};
  char want[128];
  for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
    snprintf(want, sizeof want, "# TYPE %s ", families[i]);
    if (!strstr(text, want))
      fail_msg("no family %s in:\n%s", families[i], text);
  }
  size_t buckets = 0;
  for (const char *l = text; (l = strstr(l, "esc_append_duration_seconds_bucket{"));
       l++)
    buckets++;
  assert_int_equal(buckets, ESC_LATENCY_BUCKETS + 1);
  assert_non_null(
      strstr(text, "esc_append_duration_seconds_bucket{le=\"+Inf\"} "));
  if (!strstr(ESC_PROMTOOL_PATH, "NOTFOUND"))
    promtool_check(text);
  free(text);
}

static void listen_addresses(void **state) {
  (void)state;
  static const struct {
    const char *in;
    bool remote;
    const char *error; /* NULL: accepted */
  } cases[] = {
      {"127.0.0.1:9464", false, NULL},
      {"127.0.0.1:0", false, NULL},
      {"127.3.2.1:80", false, NULL},
      {"localhost:9464", false, NULL},
      {"[::1]:9464", false, NULL},
      {"0.0.0.0:9464", true, NULL},
      {"[::]:9464", true, NULL},
      {"0.0.0.0:9464", false, "not a loopback address"},
      {"10.1.2.3:9464", false, "not a loopback address"},
      {"[::]:9464", false, "not a loopback address"},
      {"", false, "expected HOST:PORT"},
      {"9464", false, "expected HOST:PORT"},
      {":9464", false, "expected HOST:PORT"},
      {"127.0.0.1", false, "expected HOST:PORT"},
      {"::1:9464", false, "expected HOST:PORT"},
      {"[::1]", false, "expected HOST:PORT"},
      {"[::1]9464", false, "expected HOST:PORT"},
      {"127.0.0.1:", false, "the port must be a number from 0 to 65535"},
      {"127.0.0.1:65536", false, "the port must be a number"},
      {"127.0.0.1:-1", false, "the port must be a number"},
      {"127.0.0.1:+80", false, "the port must be a number"},
      {"127.0.0.1:80x", false, "the port must be a number"},
      {"example.com:80", false, "names are not resolved"},
      {"127.0.0.256:80", false, "must be an IPv4 address"},
      {"[127.0.0.1]:80", false, "not an IPv6 address"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    esc_status rc =
        esc_metrics_listen_check(cases[i].in, cases[i].remote, &err);
    if (!cases[i].error) {
      if (rc)
        fail_msg("'%s' refused: %s", cases[i].in, err.msg);
      continue;
    }
    if (rc != ESC_EINVAL || !strstr(err.msg, cases[i].error))
      fail_msg("'%s': expected \"%s\", got %d \"%s\"", cases[i].in,
               cases[i].error, rc, err.msg);
    /* the message names the address given */
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s'", cases[i].in);
    assert_non_null(strstr(err.msg, quoted));
  }
}

static bool has_reason(json_t *reasons, const char *part) {
  for (size_t i = 0; i < json_array_size(reasons); i++)
    if (strstr(json_string_value(json_array_get(reasons, i)), part))
      return true;
  return false;
}

static void readiness_rules(void **state) {
  (void)state;
  struct esc__health_rules r = {true, 10, 100, 120};
  esc_partition_metrics parts[2] = {hostile_part("orders"),
                                    hostile_part("orders")};
  parts[1].partition = 1;
  parts[1].leased = false; /* a standby: its lag is someone else's */
  esc_worker_metrics m;
  memset(&m, 0, sizeof m);
  m.running = m.pg_up = m.redis_up = true;
  m.count = 2;
  m.parts = parts;
  esc_partition_status st[2] = {hostile_status("orders"),
                                hostile_status("orders")};
  st[1].partition = 1;
  st[1].lag_seconds = 1000;

  json_t *reasons = json_array();
  assert_true(esc__health_ready(&r, &m, st, 2, NULL, reasons));
  json_array_clear(reasons);

  st[0].lag_seconds = 10.5;
  assert_false(esc__health_ready(&r, &m, st, 2, NULL, reasons));
  assert_true(has_reason(reasons, "orders/0: lag 10.5 s, more than 10.0 s"));
  assert_int_equal(json_array_size(reasons), 1);
  json_array_clear(reasons);
  st[0].lag_seconds = 1;

  st[0].lag_events = 101;
  assert_false(esc__health_ready(&r, &m, st, 2, NULL, reasons));
  assert_true(has_reason(reasons, "orders/0: lag 101 events, more than 100"));
  json_array_clear(reasons);
  st[0].lag_events = 1;

  m.pg_up = false;
  snprintf(m.last_error, sizeof m.last_error, "connection refused");
  esc_error err = ESC_ERROR_INIT;
  esc_error_set(&err, ESC_ECONN, "connect: connection refused");
  assert_false(esc__health_ready(&r, &m, NULL, 0, &err, reasons));
  assert_true(has_reason(reasons, "postgres: the worker's connection is "
                                  "down: connection refused"));
  assert_true(has_reason(reasons, "postgres: connect: connection refused"));
  json_array_clear(reasons);
  m.pg_up = true;

  snprintf(st[0].state, sizeof st[0].state, "unknown");
  snprintf(st[0].reason, sizeof st[0].reason, "Redis unreachable: refused");
  assert_false(esc__health_ready(&r, &m, st, 2, NULL, reasons));
  assert_true(has_reason(reasons, "redis: Redis unreachable: refused"));
  json_array_clear(reasons);

  m.running = false;
  assert_false(esc__health_live(&r, &m, reasons));
  assert_true(has_reason(reasons, "worker: not running"));
  json_array_clear(reasons);
  m.running = true;
  m.since_round_s = 121;
  assert_false(esc__health_live(&r, &m, reasons));
  json_array_clear(reasons);
  m.since_round_s = 1;
  assert_true(esc__health_live(&r, &m, reasons));
  json_decref(reasons);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(label_values_are_escaped),
      cmocka_unit_test(hostile_names_render_escaped),
      cmocka_unit_test(histogram_is_cumulative),
      cmocka_unit_test(promtool_accepts_the_exposition),
      cmocka_unit_test(client_text_has_every_family),
      cmocka_unit_test(listen_addresses),
      cmocka_unit_test(readiness_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

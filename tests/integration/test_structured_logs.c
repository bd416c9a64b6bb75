/*
 * Integration: a worker with log_records writes JSON lines through esc_log
 * (ESC_LOG_FORMAT=json) that parse, and a parked event's line carries the
 * projection, partition, event id, position and the correlation and
 * causation ids of the event's metadata. Human lines name the event too.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <esc/projection.h>

#include "testenv.h"
#include "worker_thread.h"

#define SCHEMA "t_structured_logs"
#define PROJ "logged"

static char lines[64][1024];
static size_t nlines;

static void capture(void *userdata, const char *line) {
  (void)userdata;
  if (nlines < sizeof lines / sizeof *lines)
    snprintf(lines[nlines++], sizeof lines[0], "%s", line);
}

/* Fails on the event of type "Poison", applies nothing for the others. */
static esc_status handle(esc_projection_ctx *ctx, const esc_event *ev,
                         void *userdata, esc_error *err) {
  (void)ctx;
  (void)userdata;
  if (strcmp(ev->recorded->type, "Poison") == 0)
    return esc_error_set(err, ESC_EINVAL, "poison \"refused\"");
  return ESC_OK;
}

static esc_uuid append_with_ids(esc_store *st, const char *type,
                                const esc_uuid *corr, const esc_uuid *cause) {
  static const unsigned char data[] = {0x80};
  esc_metadata m = ESC_METADATA_INIT;
  m.correlation_id = *corr;
  m.causation_id = *cause;
  m.time_us = esc_now_us();
  void *meta;
  size_t meta_len;
  assert_int_equal(esc_metadata_encode(&m, &meta, &meta_len, NULL), ESC_OK);
  esc_event_data e = {esc_uuid_v4(), type, 1, data, sizeof data, meta,
                      meta_len};
  esc_append_result res;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_append(st, "logged-1", ESC_EXPECT_ANY, &e, 1, &res, &err), ESC_OK);
  free(meta);
  return e.id;
}

static void run_worker(void) {
  static const char *const cats[] = {"logged", NULL};
  esc_projection p = {
      PROJ, 1, cats, NULL, 1, NULL, handle, NULL, ESC_ON_ERROR_PARK, 1, NULL};
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.lease_poll_ms = 100;
  o.log_records = true;
  o.log_component = "test-worker";
  char prefix[64];
  snprintf(prefix, sizeof prefix, "%s-%d", SCHEMA, (int)getpid());
  o.key_prefix = prefix;
  esc_test_catch_up(&o, &p);
  redisContext *r = esc_test_redis(NULL);
  esc_test_redis_delete_prefix(r, prefix);
  redisFree(r);
}

static const char *str(json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  if (!v)
    fail_msg("no string \"%s\" in the record", key);
  return v;
}

static void parked_event_line_carries_the_ids(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_uuid corr = esc_uuid_v4(), cause = esc_uuid_v4();
  append_with_ids(st, "Fine", &corr, &cause);
  esc_uuid poison = append_with_ids(st, "Poison", &corr, &cause);
  esc_test_await_readable(st, "logged");

  nlines = 0;
  esc_log_set_sink(capture, NULL);
  esc_log_set_format(ESC_LOG_JSON);
  run_worker();
  esc_log_set_sink(NULL, NULL);

  char want_id[37], want_corr[37], want_cause[37];
  esc_uuid_format(&poison, want_id);
  esc_uuid_format(&corr, want_corr);
  esc_uuid_format(&cause, want_cause);
  bool found = false;
  for (size_t i = 0; i < nlines; i++) {
    json_error_t jerr;
    json_t *o = json_loads(lines[i], 0, &jerr);
    if (!o)
      fail_msg("line %zu is not JSON (%s): %s", i, jerr.text, lines[i]);
    assert_string_equal(str(o, "component"), "test-worker");
    str(o, "time");
    str(o, "msg");
    json_t *ev = json_object_get(o, "event_id");
    if (ev && strcmp(json_string_value(ev), want_id) == 0) {
      found = true;
      assert_string_equal(str(o, "level"), "warn");
      assert_string_equal(str(o, "projection"), PROJ);
      assert_int_equal(json_integer_value(json_object_get(o, "partition")), 0);
      assert_string_equal(str(o, "stream"), "logged-1");
      assert_int_equal(json_integer_value(json_object_get(o, "version")), 2);
      assert_non_null(strchr(str(o, "position"), '/'));
      assert_string_equal(str(o, "correlation_id"), want_corr);
      assert_string_equal(str(o, "causation_id"), want_cause);
      assert_non_null(strstr(str(o, "msg"), "poison \"refused\""));
    }
    json_decref(o);
  }
  if (!found)
    fail_msg("no record of the parked event %s among %zu lines", want_id,
             nlines);

  /* The same record in the human format names the event and its ids. */
  nlines = 0;
  esc_log_set_sink(capture, NULL);
  esc_log_set_format(ESC_LOG_HUMAN);
  esc_events ev;
  esc_events_init(&ev);
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_read_event(st, &poison, &ev, &err), ESC_OK);
  esc_log_context c = ESC_LOG_CONTEXT_INIT;
  c.component = "test";
  c.event = &ev.items[0];
  esc_log(ESC_LOG_ERROR, &c, "by hand");
  esc_log(ESC_LOG_DEBUG, &c, "below the default level: dropped");
  esc_log_set_sink(NULL, NULL);
  assert_int_equal(nlines, 1);
  assert_non_null(strstr(lines[0], " error test["));
  assert_non_null(strstr(lines[0], "]: by hand [event "));
  assert_non_null(strstr(lines[0], want_id));
  assert_non_null(strstr(lines[0], want_corr));
  esc_events_release(&ev);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parked_event_line_carries_the_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

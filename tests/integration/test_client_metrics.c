/*
 * Integration: the client figures of <esc/store.h> and <esc/command.h>
 * (esc_append_metrics, esc_command_metrics) count what this process's
 * appends and commands did, exactly: the test is its own process, so the
 * deltas it sees are its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <esc/command.h>

#include "counter.h"
#include "testenv.h"

#define SCHEMA "t_client_metrics"

static const unsigned char PAYLOAD[] = {0x81, 0xa1, 'n', 0x01};

static esc_event_data event(void) {
  return (esc_event_data){esc_uuid_v4(), "Noted", 1, PAYLOAD, sizeof PAYLOAD,
                          NULL, 0};
}

static void appends_are_counted(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  esc_append_metrics before, after;
  esc_append_metrics_read(&before);

  esc_event_data e = event();
  assert_int_equal(esc_append(st, "note-1", ESC_EXPECT_NO_STREAM, &e, 1, &res,
                              &err),
                   ESC_OK);
  /* The same ids again: an idempotent replay. */
  assert_int_equal(esc_append(st, "note-1", ESC_EXPECT_NO_STREAM, &e, 1, &res,
                              &err),
                   ESC_OK);
  assert_true(res.duplicate);
  /* A stale expected version: a conflict. */
  esc_event_data f = event();
  assert_int_equal(esc_append(st, "note-1", 0, &f, 1, &res, &err),
                   ESC_ECONFLICT);
  /* Bad input fails before any round trip, and still counts. */
  assert_int_equal(esc_append(st, "no spaces", ESC_EXPECT_ANY, &f, 1, &res,
                              &err),
                   ESC_EINVAL);
  /* Two requests in one pipeline, one of them conflicting. */
  esc_event_data g = event(), h = event();
  esc_append_request reqs[2] = {{.stream_id = "note-2",
                                 .expected = ESC_EXPECT_NO_STREAM,
                                 .events = &g,
                                 .n = 1},
                                {.stream_id = "note-1",
                                 .expected = 5,
                                 .events = &h,
                                 .n = 1}};
  esc_append_many(st, reqs, 2, &err);
  assert_int_equal(reqs[0].status, ESC_OK);
  assert_int_equal(reqs[1].status, ESC_ECONFLICT);

  esc_append_metrics_read(&after);
  assert_int_equal(after.duration.count - before.duration.count, 5);
  assert_int_equal(after.duplicates - before.duplicates, 1);
  assert_int_equal(after.conflicts - before.conflicts, 2);
  assert_true(after.failures - before.failures >= 1);
  uint64_t in_buckets = 0;
  for (size_t b = 0; b <= ESC_LATENCY_BUCKETS; b++)
    in_buckets += after.duration.buckets[b] - before.duration.buckets[b];
  assert_int_equal(in_buckets, 5);
  assert_true(after.duration.sum_s > before.duration.sum_s);
  esc_store_free(st);
}

static void commands_are_counted(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  esc_command_result res;
  esc_command_metrics before, after;
  esc_command_metrics_read(&before);

  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  opts.command_id = esc_uuid_v4();
  counter_cmd inc = {COUNTER_INCREMENT, 2};
  assert_int_equal(esc_execute(st, counter_decider(), "counter-1", &inc, &opts,
                               &res, &err),
                   ESC_OK);
  /* The same command id: answered by its first result. */
  assert_int_equal(esc_execute(st, counter_decider(), "counter-1", &inc, &opts,
                               &res, &err),
                   ESC_OK);
  assert_true(res.duplicate);
  /* A rejection: INCREMENT needs by > 0. */
  counter_cmd bad = {COUNTER_INCREMENT, 0};
  opts.command_id = esc_uuid_v4();
  assert_int_equal(esc_execute(st, counter_decider(), "counter-1", &bad, &opts,
                               &res, &err),
                   ESC_EREJECTED);

  esc_command_metrics_read(&after);
  assert_int_equal(after.duration.count - before.duration.count, 3);
  assert_int_equal(after.duplicates - before.duplicates, 1);
  assert_int_equal(after.rejected - before.rejected, 1);
  assert_int_equal(after.failures - before.failures, 0);
  esc_store_free(st);
}

/* A command's causation id and fields reach every event it appends;
 * a field breaking the limits appends nothing. */
static void command_metadata_reaches_the_events(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  esc_command_result res;
  static const esc_metadata_field fields[] = {{"tenant", "acme"},
                                              {"request", "r-17"}};
  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  opts.command_id = esc_uuid_v4();
  opts.correlation_id = esc_uuid_v4();
  opts.causation_id = esc_uuid_v4();
  opts.metadata = fields;
  opts.metadata_count = 2;
  counter_cmd inc = {COUNTER_INCREMENT, 3};
  assert_int_equal(esc_execute(st, counter_decider(), "counter-m", &inc, &opts,
                               &res, &err),
                   ESC_OK);
  esc_events ev;
  esc_events_init(&ev);
  assert_int_equal(esc_read_stream(st, "counter-m", 1, ESC_FORWARD, 10, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 1);
  esc_metadata m;
  char value[32];
  const esc_recorded_event *e = &ev.items[0];
  assert_int_equal(
      esc_metadata_decode(e->metadata, e->metadata_len, &m, NULL, 0, &err),
      ESC_OK);
  assert_memory_equal(&m.correlation_id, &opts.correlation_id,
                      sizeof m.correlation_id);
  assert_memory_equal(&m.causation_id, &opts.causation_id,
                      sizeof m.causation_id);
  assert_int_equal(esc_metadata_field_get(e->metadata, e->metadata_len,
                                          "tenant", value, sizeof value, &err),
                   ESC_OK);
  assert_string_equal(value, "acme");
  esc_events_release(&ev);

  static const esc_metadata_field bad[] = {{"no spaces", "x"}};
  opts.command_id = esc_uuid_v4();
  opts.metadata = bad;
  opts.metadata_count = 1;
  assert_int_equal(esc_execute(st, counter_decider(), "counter-m", &inc, &opts,
                               &res, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "no spaces"));
  esc_stream_info info;
  assert_int_equal(esc_stream_get(st, "counter-m", &info, &err), ESC_OK);
  assert_int_equal(info.version, 1);
  esc_store_free(st);
}

/* One append and one command (which appends once more). */
static void append_and_command(esc_store *st) {
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  esc_command_result cres;
  counter_cmd inc = {COUNTER_INCREMENT, 1};
  esc_event_data e = event();
  assert_int_equal(esc_append(st, "note-off", ESC_EXPECT_ANY, &e, 1, &res,
                              &err),
                   ESC_OK);
  assert_int_equal(esc_execute(st, counter_decider(), "counter-off", &inc,
                               NULL, &cres, &err),
                   ESC_OK);
}

/* Off, nothing is counted (what was stays); on again, counting goes on. */
static void metrics_can_be_turned_off(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_append_metrics a0, a1, a2;
  esc_command_metrics c0, c1, c2;
  assert_true(esc_client_metrics_enabled());
  esc_append_metrics_read(&a0);
  esc_command_metrics_read(&c0);
  esc_client_metrics_enable(false);
  assert_false(esc_client_metrics_enabled());
  append_and_command(st);
  esc_append_metrics_read(&a1);
  esc_command_metrics_read(&c1);
  esc_client_metrics_enable(true);
  assert_int_equal(a1.duration.count, a0.duration.count);
  assert_int_equal(c1.duration.count, c0.duration.count);
  append_and_command(st);
  esc_append_metrics_read(&a2);
  esc_command_metrics_read(&c2);
  assert_int_equal(a2.duration.count - a1.duration.count, 2);
  assert_int_equal(c2.duration.count - c1.duration.count, 1);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(appends_are_counted),
      cmocka_unit_test(commands_are_counted),
      cmocka_unit_test(command_metadata_reaches_the_events),
      cmocka_unit_test(metrics_can_be_turned_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

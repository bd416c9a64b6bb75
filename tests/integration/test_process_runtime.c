/*
 * The process runtime on real servers (<esc/process.h>,
 * esc_worker_add_process), with the order sample's fulfillment process:
 * the happy path end to end, a refusal compensated, a payment deadline
 * that fires once across a restart, a payment that cancels it, a poisoned
 * instance parked while the others flow (and retried, then discarded),
 * a redelivery of the whole log that executes nothing twice, `esc
 * processes` (the built CLI, as an operator runs it) listing, showing
 * and operating those instances, instance snapshots taken by the
 * runtime (and failing to be, harmlessly), and a truncated instance
 * stream no snapshot covers parking its instance.
 *
 * A worker running only a process never connects to Redis. The clock the
 * deadlines are due by is the test's: real time plus an offset it moves.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include <esc_internal/process.h>

#include "order.h"
#include "testenv.h"
#include "worker_thread.h"

#define TIMEOUT_US (INT64_C(60) * 1000000)

static char schema[48];
static esc_store *store;
static PGconn *pg;
static esc_process process;
static order_fulfillment_options fopts = {TIMEOUT_US};
static _Atomic int64_t clock_offset_us;

/* Log lines of snapshots the runtime could not store. */
static _Atomic int snapshot_failures_logged;

static void test_log(void *userdata, const char *line) {
  (void)userdata;
  if (strstr(line, "snapshot of") && strstr(line, "not stored"))
    atomic_fetch_add(&snapshot_failures_logged, 1);
}

static int64_t test_now(void *userdata) {
  (void)userdata;
  return esc_now_us() + atomic_load(&clock_offset_us);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_process_rt_%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  pg = esc_test_pg();
  order_fulfillment_init(&process, &fopts);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  PQfinish(pg);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* ------------------------------------------------------------------------
 * The worker
 * ------------------------------------------------------------------------ */

typedef struct running {
  esc_worker *w;
  esc_test_worker_thread t;
} running;

static void start(running *r) {
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  wo.schema = schema;
  wo.poll_ms = 50;
  wo.lease_poll_ms = 100;
  r->w = esc_worker_new(&wo, &err);
  if (!r->w)
    fail_msg("worker: %s", err.msg);
  esc_process_options po = ESC_PROCESS_OPTIONS_INIT;
  po.schema = schema;
  po.partitions = 2;
  po.max_attempts = 2;
  po.retry_base_ms = 50;
  po.retry_max_ms = 100;
  po.now_us = test_now;
  po.log = test_log;
  if (esc_worker_add_process(r->w, &process, &po, &err))
    fail_msg("add process: %s", err.msg);
  esc_test_worker_thread_start(&r->t, r->w);
}

static void stop(running *r) {
  esc_status rc = esc_test_worker_thread_stop(&r->t);
  if (rc)
    fail_msg("worker stopped with %s", r->t.err.msg);
  esc_worker_free(r->w);
}

/* ------------------------------------------------------------------------
 * The domain
 * ------------------------------------------------------------------------ */

static void exec(const esc_decider *d, const char *stream, const void *cmd) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_execute(store, d, stream, cmd, &o, &res, &err);
  if (rc)
    fail_msg("%s: %s %s", stream, err.msg, res.domain_msg);
}

static void stock_in(const char *sku, int64_t qty) {
  char stream[64];
  inventory_cmd cmd = {INVENTORY_STOCK_IN, qty, NULL};
  snprintf(stream, sizeof stream, "inventory-%s", sku);
  exec(inventory_decider(), stream, &cmd);
}

static void order(const char *id, order_cmd_kind kind, int64_t amount) {
  char stream[64];
  order_cmd cmd = {.kind = kind, .amount = amount, .reason = "test"};
  snprintf(stream, sizeof stream, "order-%s", id);
  exec(order_decider(), stream, &cmd);
}

/* Places and confirms order id with the lines given. */
static void confirm(const char *id, const order_line *lines, int n) {
  char stream[64];
  order_cmd cmd = {.kind = ORDER_PLACE,
                   .customer = "c1",
                   .lines = lines,
                   .line_count = n};
  snprintf(stream, sizeof stream, "order-%s", id);
  exec(order_decider(), stream, &cmd);
  order(id, ORDER_CONFIRM, 0);
}

static order_state order_now(const char *id) {
  char stream[64];
  order_state s;
  esc_error err = ESC_ERROR_INIT;
  snprintf(stream, sizeof stream, "order-%s", id);
  if (esc_load_state(store, order_decider(), stream, &s, NULL, &err))
    fail_msg("load %s: %s", stream, err.msg);
  return s;
}

static inventory_state stock_now(const char *sku) {
  char stream[64];
  inventory_state s;
  esc_error err = ESC_ERROR_INIT;
  snprintf(stream, sizeof stream, "inventory-%s", sku);
  if (esc_load_state(store, inventory_decider(), stream, &s, NULL, &err))
    fail_msg("load %s: %s", stream, err.msg);
  return s;
}

/* Waits up to 20 s for order id to reach status s (and reserved when
 * asked). */
static void wait_order(const char *id, order_status s, bool reserved) {
  long long until = esc_test_now_ms() + 20000;
  order_state o;
  do {
    o = order_now(id);
    if (o.status == s && (!reserved || o.reserved))
      return;
    esc_test_sleep_ms(20);
  } while (esc_test_now_ms() < until);
  fail_msg("order %s is %s (reserved %d), not %s", id,
           order_status_name(o.status), o.reserved, order_status_name(s));
}

static long long count(const char *fmt, const char *arg) {
  char sql[512];
  char *lit = PQescapeLiteral(pg, arg ? arg : "", arg ? strlen(arg) : 0);
  snprintf(sql, sizeof sql, fmt, schema, lit);
  PQfreemem(lit);
  return esc_test_query_ll(pg, sql);
}

/* Records of type in the instance stream of order id. */
static long long records(const char *id, const char *type) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %s.events WHERE stream_id ="
           " 'process:fulfillment-%s' AND event_type = '%s'",
           schema, id, type);
  return esc_test_query_ll(pg, sql);
}

static long long total_events(void) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
  return esc_test_query_ll(pg, sql);
}

static long long deadlines_of(const char *id) {
  return count("SELECT count(*) FROM %s.process_deadlines WHERE instance = %s",
               id);
}

/* Waits up to 10 s for n records of type in order id's instance. */
static void wait_records(const char *id, const char *type, long long n) {
  long long until = esc_test_now_ms() + 10000;
  while (records(id, type) != n && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  assert_int_equal(records(id, type), n);
}

/* Waits up to 10 s for order id to have n deadlines in the table. */
static void wait_deadlines(const char *id, long long n) {
  long long until = esc_test_now_ms() + 10000;
  while (deadlines_of(id) != n && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  assert_int_equal(deadlines_of(id), n);
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

static void fulfils_an_order(void **state) {
  (void)state;
  running r;
  stock_in("apple", 10);
  order_line lines[] = {{"apple", 2, 100}};
  confirm("o1", lines, 1);
  start(&r);
  wait_order("o1", ORDER_STATUS_READY, true);
  inventory_state s = stock_now("apple");
  assert_int_equal(s.available, 8);
  assert_int_equal(s.reserved, 2);
  wait_deadlines("o1", 1); /* waiting for the payment */
  order("o1", ORDER_PAY, 200);
  wait_order("o1", ORDER_STATUS_PAID, true);
  wait_records("o1", "DeadlineCancelled", 1);
  wait_deadlines("o1", 0); /* paid: cancelled */
  stop(&r);
  assert_int_equal(records("o1", "DeadlineCancelled"), 1);
  assert_int_equal(records("o1", "DeadlineFired"), 0);
}

static void compensates_a_refusal(void **state) {
  (void)state;
  running r;
  stock_in("pear", 1);
  stock_in("plum", 1);
  order_line lines[] = {{"pear", 1, 100}, {"plum", 5, 100}};
  confirm("o2", lines, 2);
  start(&r);
  wait_order("o2", ORDER_STATUS_CANCELLED, false);
  long long until = esc_test_now_ms() + 10000;
  while (stock_now("pear").reserved != 0 && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  stop(&r);
  assert_int_equal(stock_now("pear").available, 1);
  assert_int_equal(stock_now("pear").reserved, 0);
  assert_int_equal(stock_now("plum").available, 1);
}

static void a_deadline_fires_once_across_restarts(void **state) {
  (void)state;
  running r;
  stock_in("fig", 3);
  order_line lines[] = {{"fig", 3, 10}};
  confirm("o3", lines, 1);
  start(&r);
  wait_order("o3", ORDER_STATUS_READY, true);
  wait_deadlines("o3", 1);
  stop(&r);
  /* Due while no worker runs: the next one fires it. */
  atomic_fetch_add(&clock_offset_us, TIMEOUT_US + 1000000);
  start(&r);
  wait_order("o3", ORDER_STATUS_CANCELLED, false);
  long long until = esc_test_now_ms() + 10000;
  while (stock_now("fig").available != 3 && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  stop(&r);
  start(&r);
  esc_test_sleep_ms(300);
  stop(&r);
  assert_int_equal(records("o3", "DeadlineFired"), 1);
  assert_int_equal(deadlines_of("o3"), 0);
  assert_int_equal(stock_now("fig").available, 3);
  assert_int_equal(stock_now("fig").reserved, 0);
}

static void a_payment_cancels_the_deadline(void **state) {
  (void)state;
  running r;
  stock_in("kiwi", 1);
  order_line lines[] = {{"kiwi", 1, 10}};
  confirm("o4", lines, 1);
  start(&r);
  wait_order("o4", ORDER_STATUS_READY, true);
  order("o4", ORDER_PAY, 10);
  wait_order("o4", ORDER_STATUS_PAID, true);
  /* The instance saw the payment (not just the table without a row). */
  wait_records("o4", "DeadlineCancelled", 1);
  wait_deadlines("o4", 0);
  atomic_fetch_add(&clock_offset_us, 2 * TIMEOUT_US);
  esc_test_sleep_ms(400);
  stop(&r);
  assert_int_equal(order_now("o4").status, ORDER_STATUS_PAID);
  assert_int_equal(records("o4", "DeadlineFired"), 0);
}

/* An OrderConfirmed appended by hand, with a sku no stream id can hold. */
static void append_poisoned(const char *id) {
  order_confirmed c;
  memset(&c, 0, sizeof c);
  snprintf(c.lines[0].sku, sizeof c.lines[0].sku, "a b");
  c.lines[0].qty = 1;
  c.line_count = 1;
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_event_encode(&ORDER_CONFIRMED, &c, &data, &len, &err),
                   ESC_OK);
  char stream[64];
  snprintf(stream, sizeof stream, "order-%s", id);
  esc_event_data ev = {esc_uuid_v4(), "OrderConfirmed", 1, data, len, NULL, 0};
  esc_append_result res;
  assert_int_equal(
      esc_append(store, stream, ESC_EXPECT_ANY, &ev, 1, &res, &err), ESC_OK);
  free(data);
}

static esc_process_parked_info parked_one(const char *id) {
  esc_process_parked_info *k = NULL, one;
  size_t n = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_process_parked_list(NULL, schema, "fulfillment", &k, &n, &err))
    fail_msg("parked: %s", err.msg);
  memset(&one, 0, sizeof one);
  for (size_t i = 0; i < n; i++)
    if (strcmp(k[i].instance, id) == 0)
      one = k[i];
  free(k);
  return one;
}

static void wait_parked(const char *id, int attempts) {
  long long until = esc_test_now_ms() + 10000;
  esc_process_parked_info k;
  do {
    k = parked_one(id);
    if (k.state == ESC_PROCESS_PARKED && k.attempts >= attempts)
      return;
    esc_test_sleep_ms(20);
  } while (esc_test_now_ms() < until);
  fail_msg("%s is not parked (state %d, attempts %d)", id, (int)k.state,
           k.attempts);
}

static void a_poisoned_instance_is_parked_and_others_flow(void **state) {
  (void)state;
  running r;
  esc_error err = ESC_ERROR_INIT;
  stock_in("lime", 5);
  append_poisoned("bad");
  order_line lines[] = {{"lime", 1, 10}};
  confirm("o5", lines, 1);
  start(&r);
  wait_order("o5", ORDER_STATUS_READY, true);
  wait_parked("bad", 2);
  esc_process_parked_info k = parked_one("bad");
  assert_non_null(strstr(k.error, "a b"));
  assert_int_equal(k.inputs, 1);
  /* Later inputs wait behind the failing one, undecided. */
  append_poisoned("bad");
  long long until = esc_test_now_ms() + 10000;
  while (parked_one("bad").inputs != 2 && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  assert_int_equal(parked_one("bad").inputs, 2);
  /* A retry replays them (and fails again: the sku is still bad). */
  assert_int_equal(esc_process_retry(NULL, schema, "fulfillment", "bad", &err),
                   ESC_OK);
  esc_test_sleep_ms(300);
  wait_parked("bad", 2);
  /* A discard drops them; the instance flows again. */
  assert_int_equal(
      esc_process_discard(NULL, schema, "fulfillment", "bad", &err), ESC_OK);
  assert_int_equal(parked_one("bad").state, 0);
  assert_int_equal(
      esc_process_discard(NULL, schema, "fulfillment", "bad", &err),
      ESC_ENOTFOUND);
  stop(&r);
  assert_int_equal(records("bad", "EventReceived"), 0);
}

static void a_redelivery_executes_nothing_twice(void **state) {
  (void)state;
  running r;
  start(&r);
  esc_test_sleep_ms(300);
  stop(&r);
  long long before = total_events();
  char sql[256];
  snprintf(sql, sizeof sql,
           "UPDATE %s.subscription_checkpoints SET tx_id = '0',"
           " global_position = 0 WHERE subscription = 'fulfillment'",
           schema);
  esc_test_exec(pg, sql);
  start(&r);
  esc_test_sleep_ms(1500);
  stop(&r);
  assert_int_equal(total_events(), before);
  /* Every command the process issued ran once: one event batch per id. */
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM (SELECT 1 FROM %s.events"
           " WHERE stream_id LIKE 'process:%%' AND event_type ="
           " 'CommandOutcome' GROUP BY data HAVING count(*) > 1) d",
           schema);
  assert_int_equal(esc_test_query_ll(pg, sql), 0);
}

/* ------------------------------------------------------------------------
 * esc processes
 * ------------------------------------------------------------------------ */

/* Runs `esc --schema <ours> ARGS` (ARGS as the shell splits them): its
 * stdout (free it) and, in *status, its exit code. */
static char *esc_cli(int *status, const char *args) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' --schema %s %s", ESC_CLI_PATH, schema,
           args);
  return esc_test_command_output(cmd, status);
}

/* esc ARGS, which must exit with want; its stdout (free it). */
static char *esc_ok(int want, const char *args) {
  int status = -2;
  char *out = esc_cli(&status, args);
  if (status != want)
    fail_msg("esc %s: exit %d, expected %d; stdout:\n%s", args, status, want,
             out ? out : "");
  return out;
}

/* The first JSON line of out whose key holds the string want, as a new
 * reference; NULL when there is none. Every line must parse. */
static json_t *json_line(const char *out, const char *key, const char *want) {
  for (const char *at = out; at && *at;) {
    const char *end = strchr(at, '\n');
    size_t len = end ? (size_t)(end - at) : strlen(at);
    json_error_t e;
    json_t *o = json_loadb(at, len, 0, &e);
    if (!o)
      fail_msg("not a JSON line: %.*s (%s)", (int)len, at, e.text);
    const char *v = json_string_value(json_object_get(o, key));
    if (v && strcmp(v, want) == 0)
      return o;
    json_decref(o);
    at = end ? end + 1 : NULL;
  }
  fail_msg("no JSON line with \"%s\": \"%s\" in:\n%s", key, want, out);
  return NULL;
}

/* json_line, whose line must also hold the string members given as
 * NULL-terminated name, value pairs. */
static json_t *expect_line(const char *out, const char *key, const char *want,
                           ...) {
  json_t *o = json_line(out, key, want);
  va_list ap;
  va_start(ap, want);
  for (const char *k; (k = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    const char *got = json_string_value(json_object_get(o, k));
    if (!got || strcmp(got, v) != 0)
      fail_msg("line with %s %s: \"%s\" is %s, expected %s", key, want, k,
               got ? got : "(missing)", v);
  }
  va_end(ap);
  return o;
}

static long long member_ll(const json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

/* The summary of fulfillment, text and JSON. */
static void cli_lists_processes(void) {
  char *out = esc_ok(0, "processes");
  assert_non_null(strstr(out, "PROCESS"));
  assert_non_null(strstr(out, "fulfillment"));
  free(out);
  out = esc_ok(0, "processes fulfillment --json");
  json_t *o = json_line(out, "process", "fulfillment");
  assert_true(member_ll(o, "active") >= 1); /* o6 waits for its payment */
  assert_true(member_ll(o, "ended") >= 1);
  assert_true(member_ll(o, "parked") >= 1); /* bad2, and bad again after
                                               the redelivery */
  assert_true(member_ll(o, "deadlines") >= 1);
  json_decref(o);
  free(out);
  free(esc_ok(4, "processes no_such_process"));
  free(esc_ok(6, "processes No-Such"));
}

/* o6's history: its confirmation, the reservation and its outcome, the
 * payment deadline. */
static void cli_shows_an_instance(void) {
  char *out = esc_ok(0, "processes show fulfillment o6 --json");
  json_t *o = expect_line(out, "kind", "input", "record", "EventReceived",
                          "event_type", "OrderConfirmed", "stream",
                          "order-o6", NULL);
  assert_int_equal(member_ll(o, "version"), 1);
  assert_true(json_is_object(json_object_get(o, "data")));
  json_decref(o);
  o = expect_line(out, "record", "CommandIssued", "kind", "decision",
                  "command_type", "InventoryCommand", "stream",
                  "inventory-melon", NULL);
  assert_true(json_is_object(json_object_get(o, "command")));
  json_decref(o);
  o = expect_line(out, "record", "CommandOutcome", "command_type",
                  "InventoryCommand", NULL);
  assert_true(json_is_true(json_object_get(o, "accepted")));
  json_decref(o);
  json_decref(expect_line(out, "record", "DeadlineScheduled", "deadline",
                          "payment", NULL));
  free(out);
  out = esc_ok(0, "processes show fulfillment o6");
  const char *const shown[] = {
      "stream process:fulfillment-o6", "  EventReceived", "    CommandIssued",
      "InventoryCommand -> inventory-melon: accepted", NULL};
  for (size_t i = 0; shown[i]; i++)
    if (!strstr(out, shown[i]))
      fail_msg("no \"%s\" in:\n%s", shown[i], out);
  free(out);
  free(esc_ok(4, "processes show fulfillment o404"));
  free(esc_ok(6, "processes show fulfillment 'a b'"));
  free(esc_ok(2, "processes show fulfillment"));
  free(esc_ok(5, "processes show fulfillment o6 --pg "
                 "postgresql://esc@127.0.0.1:1/esc"));
}

/* A record that does not decode (appended by hand) is named by its
 * version: exit 6, after the records before it. */
static void cli_names_a_bad_record(void) {
  esc_event_data ev = {esc_uuid_v4(), "CommandIssued", 1, "\x80", 1, NULL, 0};
  esc_append_result res;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_append(store, "process:fulfillment-junk",
                              ESC_EXPECT_NO_STREAM, &ev, 1, &res, &err),
                   ESC_OK);
  int status = -2;
  char *out = esc_cli(&status, "processes show fulfillment junk 2>&1");
  if (status != 6 || !strstr(out, "process:fulfillment-junk@1: process "
                                  "record CommandIssued"))
    fail_msg("show of a bad record: exit %d: %s", status, out);
  free(out);
}

static void cli_lists_deadlines_and_parked(void) {
  char *out = esc_ok(0, "processes deadlines fulfillment --json");
  json_decref(expect_line(out, "instance", "o6", "deadline", "payment", NULL));
  free(out);
  out = esc_ok(0, "processes deadlines");
  assert_non_null(strstr(out, "payment"));
  free(out);
  out = esc_ok(0, "processes parked --json");
  json_t *o = expect_line(out, "instance", "bad2", "state", "parked", NULL);
  assert_int_equal(member_ll(o, "inputs"), 1);
  assert_non_null(
      strstr(json_string_value(json_object_get(o, "error")), "a b"));
  json_decref(o);
  free(out);
  /* Parked on its first input, bad2 has no stream: show says why. */
  out = esc_ok(0, "processes show fulfillment bad2");
  assert_non_null(strstr(out, "parked (attempts: 2, inputs kept: 1): "));
  free(out);
}

/* Retry and discard are the owner's: the store's writer is refused, and
 * the instance stays parked. */
static void cli_needs_the_owner(void) {
  char *db = esc_test_query_text(pg, "SELECT current_database()");
  char cmd[1024];
  int status = -2;
  snprintf(cmd, sizeof cmd,
           "PGOPTIONS='-c role=%s_%s_writer' '%s' --schema %s processes"
           " discard fulfillment bad2 2>&1",
           db, schema, ESC_CLI_PATH, schema);
  char *out = esc_test_command_output(cmd, &status);
  if (status != 1 || !strstr(out, "permission denied"))
    fail_msg("a writer's discard: exit %d: %s", status, out);
  free(out);
  free(db);
  assert_int_equal(parked_one("bad2").state, ESC_PROCESS_PARKED);
}

static void the_cli_shows_and_operates_instances(void **state) {
  (void)state;
  running r;
  stock_in("melon", 5);
  append_poisoned("bad2");
  order_line lines[] = {{"melon", 1, 10}};
  confirm("o6", lines, 1);
  start(&r);
  wait_order("o6", ORDER_STATUS_READY, true);
  wait_deadlines("o6", 1);
  wait_parked("bad2", 2);
  cli_lists_processes();
  cli_shows_an_instance();
  cli_names_a_bad_record();
  cli_lists_deadlines_and_parked();
  cli_needs_the_owner();
  /* Retry: replayed, and parked again (its sku is still bad). */
  char *out = esc_ok(0, "processes retry fulfillment bad2 --json");
  json_t *o = json_line(out, "instance", "bad2");
  assert_true(json_is_true(json_object_get(o, "retry_requested")));
  json_decref(o);
  free(out);
  esc_test_sleep_ms(300);
  wait_parked("bad2", 2);
  out = esc_ok(0, "processes discard fulfillment bad2");
  assert_non_null(strstr(out, "discarded"));
  free(out);
  assert_int_equal(parked_one("bad2").state, 0);
  free(esc_ok(4, "processes discard fulfillment bad2"));
  free(esc_ok(4, "processes retry fulfillment o6"));
  stop(&r);
}

/* The version of the snapshot of order id's instance; 0: none. */
static long long snapshot_of(const char *id) {
  return count("SELECT coalesce(max(stream_version), 0) FROM %s.snapshots"
               " WHERE stream_id = 'process:fulfillment-' || %s",
               id);
}

/* Loaded from its snapshot and folded from the start, the same. */
static void assert_snapshot_loads(const char *id, long long at) {
  esc_process plain = process;
  esc__process_instance a, b;
  struct esc__load_info ia, ib;
  esc_error err = ESC_ERROR_INIT;
  plain.snapshot_every = 0;
  if (esc__process_instance_init(&a, &process, id, &err) ||
      esc__process_instance_load(store, &a, 0, &ia, &err) ||
      esc__process_instance_init(&b, &plain, id, &err) ||
      esc__process_instance_load(store, &b, 0, &ib, &err))
    fail_msg("load %s: %s", id, err.msg);
  assert_int_equal(ia.snapshot_version, at);
  assert_int_equal(ib.folded, b.version);
  assert_int_equal(a.version, b.version);
  assert_memory_equal(a.state, b.state, process.state_size);
  assert_int_equal(a.handled_count, b.handled_count);
  assert_memory_equal(a.handled, b.handled,
                      b.handled_count * sizeof *b.handled);
  assert_int_equal(a.command_count, b.command_count);
  assert_int_equal(a.deadline_count, b.deadline_count);
  assert_int_equal(a.terminal, b.terminal);
  esc__process_instance_release(&a);
  esc__process_instance_release(&b);
}

static int encode_fails(const void *state, msgpack_packer *pk, void *userdata) {
  (void)state;
  (void)pk;
  (void)userdata;
  return -1;
}

/* The runtime snapshots an instance after each append that crosses a
 * multiple of snapshot_every; one it cannot store is logged, and the
 * order goes on all the same. */
static void the_runtime_snapshots_instances(void **state) {
  (void)state;
  esc_process saved = process;
  running r;
  process.snapshot_every = 2;
  stock_in("kiwi", 10);
  order_line lines[] = {{"kiwi", 1, 100}};
  confirm("o9", lines, 1);
  start(&r);
  wait_order("o9", ORDER_STATUS_READY, true);
  wait_deadlines("o9", 1); /* its last input handled */
  stop(&r);
  /* Received+issued, outcome+issued, outcome+scheduled: 2, 4, 6. */
  assert_int_equal(snapshot_of("o9"), 6);
  assert_snapshot_loads("o9", 6);

  process.encode_state = encode_fails;
  atomic_store(&snapshot_failures_logged, 0);
  confirm("o10", lines, 1);
  start(&r);
  wait_order("o10", ORDER_STATUS_READY, true);
  wait_deadlines("o10", 1);
  stop(&r);
  process = saved;
  assert_int_equal(snapshot_of("o10"), 0);
  assert_true(atomic_load(&snapshot_failures_logged) >= 3);
}

/* An instance stream truncated by force, with no snapshot covering what
 * went (o11 is shorter than snapshot_every): its next input cannot load
 * it, so the instance is parked saying why, never folded from the tail.
 * Last of the file: its payment deadline stays pending. */
static void a_truncated_instance_without_snapshot_is_parked(void **state) {
  (void)state;
  running r;
  esc_error err = ESC_ERROR_INIT;
  esc_truncate_options force = ESC_TRUNCATE_OPTIONS_INIT;
  force.force = true;
  stock_in("fig", 10);
  order_line lines[] = {{"fig", 1, 100}};
  confirm("o11", lines, 1);
  start(&r);
  wait_order("o11", ORDER_STATUS_READY, true);
  wait_deadlines("o11", 1);
  stop(&r);
  assert_int_equal(snapshot_of("o11"), 0);
  if (esc_stream_truncate_opts(store, "process:fulfillment-o11", 3, &force,
                               NULL, &err))
    fail_msg("truncate: %s", err.msg);
  start(&r);
  order("o11", ORDER_PAY, 100);
  wait_parked("o11", 2);
  stop(&r);
  esc_process_parked_info k = parked_one("o11");
  if (!strstr(k.error, "process:fulfillment-o11: stream truncated before "
                       "version 3 and no snapshot covers it"))
    fail_msg("parked with \"%s\"", k.error);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fulfils_an_order),
      cmocka_unit_test(compensates_a_refusal),
      cmocka_unit_test(a_deadline_fires_once_across_restarts),
      cmocka_unit_test(a_payment_cancels_the_deadline),
      cmocka_unit_test(a_poisoned_instance_is_parked_and_others_flow),
      cmocka_unit_test(a_redelivery_executes_nothing_twice),
      cmocka_unit_test(the_cli_shows_and_operates_instances),
      cmocka_unit_test(the_runtime_snapshots_instances),
      cmocka_unit_test(a_truncated_instance_without_snapshot_is_parked),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

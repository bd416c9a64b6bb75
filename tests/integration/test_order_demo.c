/*
 * The order demo's promises on real servers:
 *
 * - the demo workload (many customers at once, the fulfillment process cancelling some
 *   orders for lack of stock) leaves read models equal to a recomputation
 *   from the log: the built order-demo program is run small, in a schema
 *   of its own, and must end with "read models verified against the log";
 * - read-your-writes: right after a command, waiting on the command's
 *   position makes order_query_show (and the other queries) show it.
 *
 * The projections' names are fixed, so their keys cannot be made unique
 * per test process: this test works in its own Redis database (5) of the
 * server ESC_REDIS_URL names, flushed (FLUSHDB, that database only) before
 * each test. The event store schemas are its own.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "order.h"
#include "testenv.h"
#include "worker_thread.h"

#define REDIS_DB "5"

static char redis_url[256];

/* ESC_REDIS_URL (else the default) with its database replaced by ours,
 * exported so that everything connecting from now on (the demo too) uses
 * it. */
static void pick_redis_db(void) {
  const char *base = esc_default_redis_url();
  const char *host = strstr(base, "://");
  const char *slash = host ? strchr(host + 3, '/') : NULL;
  int len = slash ? (int)(slash - base) : (int)strlen(base);
  snprintf(redis_url, sizeof redis_url, "%.*s/%s", len, base, REDIS_DB);
  setenv("ESC_REDIS_URL", redis_url, 1);
}

static void flush_our_db(void) {
  redisContext *c = esc_test_redis(redis_url);
  redisReply *r = redisCommand(c, "SELECT %s", REDIS_DB);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  r = redisCommand(c, "FLUSHDB");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  redisFree(c);
}

static int setup(void **state) {
  (void)state;
  pick_redis_db();
  flush_our_db();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  flush_our_db();
  return 0;
}

/* ------------------------------------------------------------------------
 * The demo workload, through the order-demo program
 * ------------------------------------------------------------------------ */

static void demo_read_models_equal_the_log(void **state) {
  (void)state;
#ifndef ORDER_DEMO_PATH
  skip(); /* the order domain is not built */
#else
  char schema[48], log_path[128];
  snprintf(schema, sizeof schema, "t_order_demo_%d", (int)getpid());
  snprintf(log_path, sizeof log_path, "/tmp/esc-order-demo-%d.log",
           (int)getpid());
  esc_test_drop_schema(schema);
  remove(log_path);
  const char *argv[] = {"order-demo", "--orders",    "60",   "--threads",
                        "4",          "--customers", "6",    "--seed",
                        "42",         "--schema",    schema, "--redis",
                        redis_url,    NULL};
  pid_t pid = esc_test_spawn(ORDER_DEMO_PATH, argv, NULL, log_path);
  int status = 0;
  if (!esc_test_wait_child(pid, 300000, &status)) {
    esc_test_kill_child(pid);
    esc_test_print_tail(log_path, 40);
    fail_msg("order-demo did not finish within 300 s (log: %s)", log_path);
  }
  bool ok =
      WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
      esc_test_file_contains(log_path, "read models verified against the log");
  bool worked = esc_test_file_contains(log_path, "60/60 orders done");
  if (!ok || !worked) {
    esc_test_print_tail(log_path, 60);
    fail_msg("order-demo: status 0x%x, expected exit 0, all 60 orders done "
             "and the verification line (log: %s)",
             status, log_path);
  }
  /* Some orders must have met the process's compensation, or the workload
   * did not test what it says. */
  assert_false(esc_test_file_contains(log_path, " 0 cancelled for lack of"));
  esc_test_drop_schema(schema);
  remove(log_path);
#endif
}

/* ------------------------------------------------------------------------
 * Read-your-writes
 * ------------------------------------------------------------------------ */

static void start_worker(esc_test_worker_thread *rw, const char *schema) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  const esc_projection *p = order_projections(1);
  o.schema = schema;
  o.poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w)
    fail_msg("worker: %s", err.msg);
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++)
    assert_int_equal(esc_worker_add(w, &p[i], &err), ESC_OK);
  esc_test_worker_thread_start(rw, w);
}

static void stop_worker(esc_test_worker_thread *rw) {
  if (esc_test_worker_thread_stop(rw))
    fail_msg("worker: %s", rw->err.msg);
  esc_worker_free(rw->w);
}

/* Executes an order command and waits until order_details has it. */
static void order_then_wait(esc_store *st, esc_query *q, const char *stream,
                            const order_cmd *cmd, esc_command_result *r) {
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_execute(st, order_decider(), stream, cmd, NULL, r, &err);
  if (rc)
    fail_msg("%s: %s %s", stream, err.msg, r->domain_msg);
  assert_int_equal(
      esc_query_wait(q, "order_details", 1, &r->position, 10000, &err), ESC_OK);
}

static void read_your_writes_after_each_command(void **state) {
  (void)state;
  char schema[48], stream[64], id[32];
  snprintf(schema, sizeof schema, "t_order_ryw_%d", (int)getpid());
  snprintf(id, sizeof id, "ryw-%d", (int)getpid());
  snprintf(stream, sizeof stream, "order-%s", id);
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.store = st;
  esc_query *q = esc_query_new(&qo, &err);
  assert_non_null(q);
  esc_test_worker_thread rw;
  start_worker(&rw, schema);

  /* stock-in: the stock projection has it as soon as the wait returns */
  esc_command_result r;
  inventory_cmd in = {INVENTORY_STOCK_IN, 7, NULL};
  assert_int_equal(esc_execute(st, inventory_decider(), "inventory-ryw-sku",
                               &in, NULL, &r, &err),
                   ESC_OK);
  assert_int_equal(esc_query_wait(q, "stock", 1, &r.position, 10000, &err),
                   ESC_OK);
  int64_t available = -1;
  assert_int_equal(order_query_stock(q, "ryw-sku", &available, &err), ESC_OK);
  assert_int_equal(available, 7);

  /* place: shown at once, with its customer, lines and total */
  order_line lines[2] = {{"ryw-sku", 2, 1250}, {"pen-7", 1, 150}};
  order_cmd place = {.kind = ORDER_PLACE,
                     .customer = "ryw-customer",
                     .lines = lines,
                     .line_count = 2};
  order_then_wait(st, q, stream, &place, &r);
  order_view v;
  assert_int_equal(order_query_show(q, id, &v, &err), ESC_OK);
  assert_string_equal(v.status, "placed");
  assert_string_equal(v.customer, "ryw-customer");
  assert_string_equal(v.currency, "EUR");
  assert_int_equal(v.total, 2650);
  assert_int_equal(v.lines, 2);
  assert_int_equal(v.paid, 0);

  /* the customer's list has it too, once that projection passed it */
  char **ids = NULL;
  size_t n = 0;
  assert_int_equal(
      esc_query_wait(q, "orders_by_customer", 1, &r.position, 10000, &err),
      ESC_OK);
  assert_int_equal(order_query_of_customer(q, "ryw-customer", &ids, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(ids[0], id);
  order_query_free_ids(ids, n);

  /* each following command is visible right after its own wait */
  order_cmd remove_pen = {.kind = ORDER_REMOVE_ITEM};
  snprintf(remove_pen.line.sku, sizeof remove_pen.line.sku, "pen-7");
  order_then_wait(st, q, stream, &remove_pen, &r);
  assert_int_equal(order_query_show(q, id, &v, &err), ESC_OK);
  assert_int_equal(v.total, 2500);
  assert_int_equal(v.lines, 1);

  order_cmd confirm = {.kind = ORDER_CONFIRM};
  order_then_wait(st, q, stream, &confirm, &r);
  assert_int_equal(order_query_show(q, id, &v, &err), ESC_OK);
  assert_string_equal(v.status, "confirmed");

  order_cmd pay = {.kind = ORDER_PAY, .amount = 2500};
  order_then_wait(st, q, stream, &pay, &r);
  assert_int_equal(order_query_show(q, id, &v, &err), ESC_OK);
  assert_string_equal(v.status, "paid");
  assert_int_equal(v.paid, 2500);
  int64_t count = 0;
  assert_int_equal(
      esc_query_wait(q, "orders_by_status", 1, &r.position, 10000, &err),
      ESC_OK);
  assert_int_equal(order_query_status_count(q, "paid", &count, &err), ESC_OK);
  assert_int_equal(count, 1);

  order_cmd cancel = {.kind = ORDER_CANCEL, .reason = "changed my mind"};
  order_then_wait(st, q, stream, &cancel, &r);
  assert_int_equal(order_query_show(q, id, &v, &err), ESC_OK);
  assert_string_equal(v.status, "cancelled");

  stop_worker(&rw);
  esc_query_free(q);
  esc_store_free(st);
  esc_test_drop_schema(schema);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(read_your_writes_after_each_command,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(demo_read_models_equal_the_log, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

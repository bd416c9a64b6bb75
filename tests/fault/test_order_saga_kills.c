/*
 * The fulfillment saga survives being killed mid-flow: order-worker
 * processes are SIGKILLed at random moments while they reserve stock for
 * confirmed orders; after a final run catches up, no order line was ever
 * reserved twice, every order is either ready (all its lines reserved once)
 * or cancelled (with whatever it reserved released), and each product's
 * reserved count equals the sum over ready orders. And of two
 * order-workers only one runs the saga; the other takes over when it dies.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "order.h"
#include "testenv.h"

enum { PRODUCTS = 4, ORDERS = 300, KILLS = 20 };

static char schema[48], redis_url[64], pg_log[256];

static void must(esc_status rc, const esc_command_result *r, const char *what,
                 const esc_error *err) {
  if (rc != ESC_OK && rc != ESC_EREJECTED)
    fail_msg("%s: %s", what, err->msg);
  (void)r;
}

/* Stocks products so that some orders will not find enough. */
static void stock_and_confirm(esc_store *st) {
  esc_command_result r;
  esc_error err = ESC_ERROR_INIT;
  for (int p = 0; p < PRODUCTS; p++) {
    char stream[32];
    snprintf(stream, sizeof stream, "inventory-p%d", p);
    inventory_cmd in = {INVENTORY_STOCK_IN, 150 + 50 * p, NULL};
    must(esc_execute(st, inventory_decider(), stream, &in, NULL, &r, &err), &r,
         "stock in", &err);
  }
  for (int i = 0; i < ORDERS; i++) {
    char stream[32];
    order_line lines[2] = {{"", 1 + i % 3, 100}, {"", 1 + i % 2, 250}};
    snprintf(lines[0].sku, sizeof lines[0].sku, "p%d", i % PRODUCTS);
    snprintf(lines[1].sku, sizeof lines[1].sku, "p%d", (i + 1) % PRODUCTS);
    snprintf(stream, sizeof stream, "order-k%d", i);
    order_cmd place = {.kind = ORDER_PLACE,
                       .customer = "kim",
                       .lines = lines,
                       .line_count = 2};
    order_cmd confirm = {.kind = ORDER_CONFIRM};
    must(esc_execute(st, order_decider(), stream, &place, NULL, &r, &err), &r,
         "place", &err);
    must(esc_execute(st, order_decider(), stream, &confirm, NULL, &r, &err), &r,
         "confirm", &err);
  }
}

static pid_t start_worker_logging(bool once, const char *log) {
  const char *argv[] = {ORDER_WORKER_PATH,
                        "--schema",
                        schema,
                        "--redis",
                        redis_url,
                        "--partitions",
                        "2",
                        once ? "--once" : NULL,
                        NULL};
  return esc_test_spawn(ORDER_WORKER_PATH, argv, NULL, log);
}

static pid_t start_worker(bool once) {
  return start_worker_logging(once, pg_log);
}

/* Waits up to ms for text to appear in the log at path. */
static bool log_shows(const char *path, const char *text, int ms) {
  long long until = esc_test_now_ms() + ms;
  while (!esc_test_file_contains(path, text)) {
    if (esc_test_now_ms() >= until)
      return false;
    esc_test_sleep_ms(50);
  }
  return true;
}

/* Counts StockReserved / StockReleased per order in one product's stream
 * and checks no order reserved twice there. */
static void check_product(esc_store *st, int p, int64_t *reserved_ready,
                          const order_state *orders) {
  char stream[32];
  esc_events ev = ESC_EVENTS_INIT;
  int reserves[ORDERS] = {0}, releases[ORDERS] = {0};
  snprintf(stream, sizeof stream, "inventory-p%d", p);
  assert_int_equal(esc_read_stream(st, stream, 0, ESC_FORWARD, 0, &ev, NULL),
                   ESC_OK);
  for (size_t i = 0; i < ev.count; i++) {
    const char *type = ev.items[i].type;
    bool reserve = strcmp(type, STOCK_RESERVED.name) == 0;
    if (!reserve && strcmp(type, STOCK_RELEASED.name) != 0)
      continue;
    msgpack_zone zone;
    stock_reserved e; /* same shape as stock_released */
    const esc_event_type *t = NULL;
    msgpack_zone_init(&zone, 1024);
    assert_int_equal(
        esc_event_decode(order_events(), &ev.items[i], &zone, &e, &t, NULL),
        ESC_OK);
    msgpack_zone_destroy(&zone);
    int k = atoi(e.order + 1); /* "k<i>" */
    assert_true(k >= 0 && k < ORDERS);
    (reserve ? reserves : releases)[k]++;
  }
  esc_events_release(&ev);
  *reserved_ready = 0;
  for (int k = 0; k < ORDERS; k++) {
    if (reserves[k] > 1)
      fail_msg("order k%d reserved p%d %d times", k, p, reserves[k]);
    assert_true(releases[k] <= reserves[k]);
    bool ready = orders[k].status == ORDER_STATUS_READY;
    if (ready)
      assert_int_equal(releases[k], 0);
    else if (orders[k].status == ORDER_STATUS_CANCELLED)
      assert_int_equal(releases[k], reserves[k]); /* all given back */
    for (int l = 0; ready && l < orders[k].line_count; l++)
      if (strcmp(orders[k].lines[l].sku, stream + 10) == 0) {
        assert_int_equal(reserves[k], 1);
        *reserved_ready += orders[k].lines[l].qty;
      }
  }
}

/* Orders the saga has not finished yet (still confirmed). */
static int unhandled(esc_store *st) {
  int n = 0;
  for (int k = 0; k < ORDERS; k++) {
    char stream[32];
    order_state o;
    snprintf(stream, sizeof stream, "order-k%d", k);
    if (esc_load_state(st, order_decider(), stream, &o, NULL, NULL) == ESC_OK)
      n += o.status == ORDER_STATUS_CONFIRMED;
  }
  return n;
}

/* Events in the log: once orders are placed, only the saga appends. */
static long long saga_events(PGconn *conn) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
  return esc_test_query_ll(conn, sql);
}

static bool saga_moves(PGconn *conn, long long before, int ms) {
  long long until = esc_test_now_ms() + ms;
  while (saga_events(conn) == before) {
    if (esc_test_now_ms() >= until)
      return false;
    esc_test_sleep_ms(10);
  }
  return true;
}

static void kills_mid_saga_reserve_nothing_twice(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  stock_and_confirm(st);

  int mid_flow = 0, kills = 0;
  PGconn *conn = esc_test_pg();
  srand((unsigned)getpid());
  for (; kills < KILLS && unhandled(st) > 0; kills++) {
    long long before = saga_events(conn);
    pid_t pid = start_worker(false);
    /* Kill a worker that is at work: it has appended something (a fixed
     * delay lands before start-up on a busy machine, and proves nothing). */
    if (!saga_moves(conn, before, 60000))
      fail_msg("order-worker did no saga work in 60 s; see %s", pg_log);
    esc_test_sleep_ms(rand() % 120);
    esc_test_kill_child(pid);
    int left = unhandled(st);
    mid_flow += left > 0 && left < ORDERS;
  }
  PQfinish(conn);
  /* The test proves something only if kills landed while the saga was at
   * work, not before it started or after it finished. */
  if (mid_flow < 3)
    fail_msg("only %d of %d kills landed mid-flow", mid_flow, kills);
  int status = -1;
  pid_t last = start_worker(true);
  if (!esc_test_wait_child(last, 120000, &status) || status != 0)
    fail_msg("the last order-worker --once did not finish cleanly (%d); see "
             "%s",
             status, pg_log);

  static order_state orders[ORDERS];
  int ready = 0, cancelled = 0;
  for (int k = 0; k < ORDERS; k++) {
    char stream[32];
    snprintf(stream, sizeof stream, "order-k%d", k);
    assert_int_equal(
        esc_load_state(st, order_decider(), stream, &orders[k], NULL, NULL),
        ESC_OK);
    ready += orders[k].status == ORDER_STATUS_READY;
    cancelled += orders[k].status == ORDER_STATUS_CANCELLED;
  }
  assert_int_equal(ready + cancelled, ORDERS); /* the saga finished each */
  assert_true(ready > 0 && cancelled > 0);     /* both paths were taken */
  for (int p = 0; p < PRODUCTS; p++) {
    char stream[32];
    int64_t expect = 0;
    inventory_state inv;
    check_product(st, p, &expect, orders);
    snprintf(stream, sizeof stream, "inventory-p%d", p);
    assert_int_equal(
        esc_load_state(st, inventory_decider(), stream, &inv, NULL, NULL),
        ESC_OK);
    assert_int_equal(inv.reserved, expect);
  }
  fprintf(stderr, "%d kills, %d mid-flow; %d orders ready, %d cancelled\n",
          kills, mid_flow, ready, cancelled);
  esc_store_free(st);
}

/* Places and confirms order-<id> for a product nobody stocked: the saga
 * cancels it and logs "order-<id>: ... cancelling it". */
static void unstockable_order(const char *id) {
  esc_store *st = esc_test_open_store(schema);
  esc_command_result r;
  esc_error err = ESC_ERROR_INIT;
  char stream[32];
  order_line line = {"nostock", 1, 100};
  order_cmd place = {
      .kind = ORDER_PLACE, .customer = "kim", .lines = &line, .line_count = 1};
  order_cmd confirm = {.kind = ORDER_CONFIRM};
  snprintf(stream, sizeof stream, "order-%s", id);
  must(esc_execute(st, order_decider(), stream, &place, NULL, &r, &err), &r,
       "place", &err);
  must(esc_execute(st, order_decider(), stream, &confirm, NULL, &r, &err), &r,
       "confirm", &err);
  esc_store_free(st);
}

/* Of two order-workers, one runs the saga and the other stands by (the
 * saga's lease): only the holder handles a new order. The standby takes
 * over when the first is killed. */
static void a_second_worker_stands_by_for_the_saga(void **state) {
  (void)state;
  char log_a[sizeof pg_log + 4], log_b[sizeof pg_log + 4];
  const char *runs = "fulfillment: this process runs the saga";
  snprintf(log_a, sizeof log_a, "%s.a", pg_log);
  snprintf(log_b, sizeof log_b, "%s.b", pg_log);
  unlink(log_a);
  unlink(log_b);
  pid_t a = start_worker_logging(false, log_a);
  if (!log_shows(log_a, runs, 15000))
    fail_msg("the first order-worker never ran the saga; see %s", log_a);
  pid_t b = start_worker_logging(false, log_b);
  if (!log_shows(log_b, "fulfillment: standing by", 15000))
    fail_msg("the second order-worker did not stand by; see %s", log_b);
  assert_false(esc_test_file_contains(log_b, runs));
  unstockable_order("lease1");
  if (!log_shows(log_a, "order-lease1: ", 15000))
    fail_msg("the saga's holder did not handle order-lease1; see %s", log_a);
  esc_test_sleep_ms(500); /* a standby that worked anyway would log it too */
  assert_false(esc_test_file_contains(log_b, "order-lease1: "));

  long long killed = esc_test_now_ms();
  esc_test_kill_child(a);
  if (!log_shows(log_b, runs, 5000))
    fail_msg("the standby did not take the saga over in 5 s; see %s", log_b);
  fprintf(stderr, "saga taken over %lld ms after the kill\n",
          esc_test_now_ms() - killed);
  unstockable_order("lease2");
  if (!log_shows(log_b, "order-lease2: ", 15000))
    fail_msg("the new holder did not handle order-lease2; see %s", log_b);
  kill(b, SIGTERM);
  int status = -1;
  assert_true(esc_test_wait_child(b, 20000, &status));
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  esc_test_remove_log(log_a);
  esc_test_remove_log(log_b);
}

static int setup(void **state) {
  (void)state;
  int port = esc_test_free_port(63950, 40);
  snprintf(schema, sizeof schema, "t_saga_kills_%d", (int)getpid());
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
  snprintf(pg_log, sizeof pg_log, "/tmp/esc-saga-kills-%d.log", (int)getpid());
  esc_test_redis_server_start(port, NULL);
  return 0;
}

static int teardown(void **state) {
  esc_test_kill_children_teardown(state);
  unlink(pg_log);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kills_mid_saga_reserve_nothing_twice),
      cmocka_unit_test(a_second_worker_stands_by_for_the_saga),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

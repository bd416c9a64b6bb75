/*
 * The fulfillment process survives being killed mid-flow: order-worker
 * processes (projections and the process on one worker, a payment
 * timeout of 2 s so deadlines fire during the run) are SIGKILLed at
 * random moments while 2,000 confirmed orders flow, and Redis is flushed
 * halfway. After a final run catches up: no order line was ever reserved
 * twice, no command's outcome recorded twice, no deadline fired twice;
 * every order is ready (all its lines reserved once, awaiting payment)
 * or cancelled (refused or unpaid, with whatever it reserved released);
 * each product's reserved count equals the sum over ready orders; and a
 * hand-appended order with a sku no stream can hold is parked while all
 * the others completed. Once, instead of a kill, PostgreSQL itself is
 * restarted (immediate stop: a crash) under a running worker, which must
 * carry on by itself; the server is a private cluster for that reason.
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
#include "pgcluster.h"
#include "testenv.h"

enum { PRODUCTS = 4, ORDERS = 2000, KILLS = 30 };

static char schema[48], redis_url[64], pg_log[256];
static esc_test_pg_cluster *cluster;

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
    inventory_cmd in = {INVENTORY_STOCK_IN, 1000 + 300 * p, NULL};
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
    if (i % 4 == 0) { /* paid at once: no deadline may cancel these */
      order_cmd pay = {.kind = ORDER_PAY,
                       .amount = lines[0].qty * lines[0].price +
                                 lines[1].qty * lines[1].price};
      must(esc_execute(st, order_decider(), stream, &pay, NULL, &r, &err), &r,
           "pay", &err);
    }
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
                        "--payment-timeout",
                        "2s",
                        once ? "--once" : NULL,
                        NULL};
  return esc_test_spawn(ORDER_WORKER_PATH, argv, NULL, log);
}

static pid_t start_worker(bool once) {
  return start_worker_logging(once, pg_log);
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
    /* Ready or paid, an order holds its stock (paid ones were paid
     * before the process reserved anything). */
    bool ready = orders[k].status == ORDER_STATUS_READY ||
                 orders[k].status == ORDER_STATUS_PAID;
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

/* Orders the process has not decided yet (neither ready nor cancelled). */
static int unhandled(PGconn *conn) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(DISTINCT stream_id) FROM %s.events WHERE"
           " stream_id LIKE 'order-k%%' AND event_type IN ('OrderReady',"
           " 'OrderCancelled')",
           schema);
  return ORDERS - (int)esc_test_query_ll(conn, sql);
}

/* Events in the log: once orders are placed, only the process appends. */
static long long process_events(PGconn *conn) {
  char sql[96];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
  return esc_test_query_ll(conn, sql);
}

/* Instance-stream records of type stored twice for one input (0: none). */
static long long twice(PGconn *conn, const char *type) {
  char sql[384];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM (SELECT 1 FROM %s.events WHERE stream_id"
           " LIKE 'process:fulfillment-%%' AND event_type = '%s'"
           " GROUP BY stream_id, data HAVING count(*) > 1) d",
           schema, type);
  return esc_test_query_ll(conn, sql);
}

/* An OrderConfirmed appended by hand with a sku no stream id can hold. */
static void append_poisoned(esc_store *st) {
  order_confirmed c;
  memset(&c, 0, sizeof c);
  snprintf(c.lines[0].sku, sizeof c.lines[0].sku, "a b");
  c.lines[0].qty = 1;
  c.line_count = 1;
  void *data = NULL;
  size_t len = 0;
  esc_append_result res;
  assert_int_equal(esc_event_encode(&ORDER_CONFIRMED, &c, &data, &len, NULL),
                   ESC_OK);
  esc_event_data ev = {esc_uuid_v4(), "OrderConfirmed", 1, data, len, NULL, 0};
  assert_int_equal(esc_append(st, "order-poison", ESC_EXPECT_ANY, &ev, 1,
                              &res, NULL),
                   ESC_OK);
  free(data);
}

static void flush_redis(void) {
  redisContext *r = esc_test_redis(redis_url);
  redisReply *rep = redisCommand(r, "FLUSHALL");
  assert_non_null(rep);
  freeReplyObject(rep);
  redisFree(r);
}

/* Crashes PostgreSQL under the running worker pid and waits until that
 * same worker appends again on its new sessions. conn is reopened. */
static void restart_pg_under(pid_t pid, PGconn **conn) {
  long long before = process_events(*conn);
  PQfinish(*conn);
  esc_test_pg_cluster_stop(cluster, "immediate");
  esc_test_sleep_ms(300);
  esc_test_pg_cluster_start(cluster);
  *conn = esc_test_pg();
  long long until = esc_test_now_ms() + 60000;
  while (process_events(*conn) == before) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      fail_msg("order-worker exited (status %d) after PostgreSQL restarted; "
               "see %s",
               status, pg_log);
    if (esc_test_now_ms() >= until)
      fail_msg("order-worker did no work in 60 s after PostgreSQL "
               "restarted; see %s",
               pg_log);
    esc_test_sleep_ms(20);
  }
}

static bool process_moves(PGconn *conn, long long before, int ms) {
  long long until = esc_test_now_ms() + ms;
  while (process_events(conn) == before) {
    if (esc_test_now_ms() >= until)
      return false;
    esc_test_sleep_ms(10);
  }
  return true;
}

static void kills_mid_flow_execute_nothing_twice(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  long long t0 = esc_test_now_ms();
  append_poisoned(st);
  stock_and_confirm(st);

  int mid_flow = 0, kills = 0;
  bool flushed = false;
  PGconn *conn = esc_test_pg();
  srand((unsigned)getpid());
  for (; kills < KILLS && unhandled(conn) > 0; kills++) {
    if (!flushed && kills == KILLS / 2) {
      flush_redis(); /* the projections rebuild; the process is unmoved */
      flushed = true;
    }
    long long before = process_events(conn);
    pid_t pid = start_worker(false);
    /* Kill a worker that is at work: it has appended something (a fixed
     * delay lands before start-up on a busy machine, and proves nothing). */
    if (!process_moves(conn, before, 60000))
      fail_msg("order-worker did no work in 60 s; see %s", pg_log);
    if (kills == KILLS * 2 / 3)
      restart_pg_under(pid, &conn);
    esc_test_sleep_ms(rand() % 120);
    esc_test_kill_child(pid);
    int left = unhandled(conn);
    mid_flow += left > 0 && left < ORDERS;
  }
  /* The test proves something only if kills landed while the process was
   * at work, not before it started or after it finished. */
  if (mid_flow < 3)
    fail_msg("only %d of %d kills landed mid-flow", mid_flow, kills);
  int status = -1;
  long long last_began = esc_test_now_ms();
  pid_t last = start_worker(true);
  if (!esc_test_wait_child(last, 120000, &status) || status != 0)
    fail_msg("the last order-worker --once did not finish cleanly (%d); see "
             "%s",
             status, pg_log);
  long long last_ms = esc_test_now_ms() - last_began;

  static order_state orders[ORDERS];
  int ready = 0, paid = 0, cancelled = 0;
  for (int k = 0; k < ORDERS; k++) {
    char stream[32];
    snprintf(stream, sizeof stream, "order-k%d", k);
    assert_int_equal(
        esc_load_state(st, order_decider(), stream, &orders[k], NULL, NULL),
        ESC_OK);
    ready += orders[k].status == ORDER_STATUS_READY;
    cancelled += orders[k].status == ORDER_STATUS_CANCELLED;
    if (orders[k].status == ORDER_STATUS_PAID) {
      paid++;
      assert_true(orders[k].reserved);
    }
    /* A paid order the process cancelled (its stock refused) got its
     * money back, exactly once. */
    if (orders[k].status == ORDER_STATUS_CANCELLED && orders[k].paid)
      assert_int_equal(orders[k].refunded, orders[k].paid);
  }
  assert_int_equal(ready + paid + cancelled, ORDERS); /* each was decided */
  assert_true(paid > 0); /* the payments kept their orders */
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
  assert_int_equal(twice(conn, "CommandOutcome"), 0);
  assert_int_equal(twice(conn, "DeadlineFired"), 0);
  assert_int_equal(twice(conn, "EventReceived"), 0);
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM %s.events WHERE event_type = 'DeadlineFired'",
           schema);
  long long fired = esc_test_query_ll(conn, sql);
  assert_true(fired > 0 && cancelled > 0); /* deadlines fired mid-run */
  esc_process_parked_info *parked = NULL;
  size_t n = 0;
  assert_int_equal(
      esc_process_parked_list(NULL, schema, "fulfillment", &parked, &n, NULL),
      ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(parked[0].instance, "poison");
  free(parked);
  PQfinish(conn);
  fprintf(stderr,
          "%d kills, %d mid-flow, Redis flushed and PostgreSQL restarted "
          "once; %d orders ready, %d paid, %d cancelled, %lld deadlines "
          "fired, 1 parked; the last run took %lld ms, all %lld ms\n",
          kills, mid_flow, ready, paid, cancelled, fired, last_ms,
          esc_test_now_ms() - t0);
  esc_store_free(st);
}

static int setup(void **state) {
  (void)state;
  int port = esc_test_free_port(63950, 40);
  snprintf(schema, sizeof schema, "t_process_kills_%d", (int)getpid());
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
  snprintf(pg_log, sizeof pg_log, "/tmp/esc-process-kills-%d.log", (int)getpid());
  esc_test_redis_server_start(port, NULL);
  cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  /* Everything the test and its workers open goes to the private server. */
  setenv("ESC_PG_URL", esc_test_pg_cluster_url(cluster), 1);
  return 0;
}

static int teardown(void **state) {
  esc_test_kill_children_teardown(state);
  esc_test_pg_cluster_free(cluster);
  cluster = NULL;
  unlink(pg_log);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(kills_mid_flow_execute_nothing_twice),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

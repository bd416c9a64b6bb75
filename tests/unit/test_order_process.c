/*
 * Unit tests: the order fulfillment process (samples/order/
 * fulfillment_process.c) through the process test kit, without servers:
 * the happy path, a refused reservation and its compensation, the payment
 * deadline, a refund after a paid order is cancelled, a customer's cancel
 * while stock is reserved, and re-delivered inputs doing nothing.
 */
#include "order.h"

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ORDER "order-7"
#define INV1 "inventory-sku-1"
#define INV2 "inventory-sku-2"

static const order_fulfillment_options options = {ESC_MINUTES(15)};
static esc_process process;

static const order_confirmed confirmed = {
    {{"sku-1", 2, 10}, {"sku-2", 1, 100}}, 2, 120};

static const inventory_cmd reserve1 = {INVENTORY_RESERVE, 2, "7"};
static const inventory_cmd reserve2 = {INVENTORY_RESERVE, 1, "7"};
static const inventory_cmd release1 = {INVENTORY_RELEASE, 2, "7"};
static const inventory_cmd release2 = {INVENTORY_RELEASE, 1, "7"};
static const order_cmd ready = {.kind = ORDER_MARK_READY};

static int setup(void **state) {
  (void)state;
  order_fulfillment_init(&process, &options);
  return 0;
}

/* A scenario past OrderConfirmed: both reservations pending. */
static esc_process_scenario *confirmed_order(void) {
  esc_process_scenario *s = esc_process_scenario_new(&process);
  esc_process_given_event(s, ORDER, &ORDER_CONFIRMED, &confirmed);
  return s;
}

/* ... and ready: both reserved, marked ready, "payment" scheduled. */
static esc_process_scenario *ready_order(void) {
  esc_process_scenario *s = confirmed_order();
  esc_process_given_accepted(s, INV1);
  esc_process_given_accepted(s, INV2);
  esc_process_given_accepted(s, ORDER);
  return s;
}

static void test_happy_path(void **state) {
  (void)state;
  esc_process_scenario *s = esc_process_scenario_new(&process);
  esc_process_when_event(s, ORDER, &ORDER_CONFIRMED, &confirmed);
  esc_process_then_issue(s, order_inventory_command(), INV1, &reserve1);
  esc_process_then_issue(s, order_inventory_command(), INV2, &reserve2);
  esc_process_then_end(s);

  esc_process_when_accepted(s, INV1);
  esc_process_then_nothing(s); /* sku-2 is not answered yet */
  esc_process_when_accepted(s, INV2);
  esc_process_then_issue(s, order_order_command(), ORDER, &ready);
  esc_process_then_end(s);

  esc_process_clock_advance(s, ESC_SECONDS(3));
  esc_process_when_accepted(s, ORDER);
  esc_process_then_schedule_in(s, "payment", ESC_MINUTES(15));
  esc_process_then_end(s);

  esc_process_when_event(s, ORDER, &ORDER_PAID, &(order_paid){120});
  esc_process_then_cancel(s, "payment");
  esc_process_then_end(s);
  esc_process_then_ended(s, false);

  esc_process_when_event(s, ORDER, &ORDER_SHIPPED,
                         &(order_shipped){"dhl", {{"sku-1", 2, 10}}, 1});
  esc_process_then_nothing(s);
  esc_process_then_ended(s, true);
  esc_process_scenario_free(s);
}

static void test_paid_before_ready(void **state) {
  (void)state;
  esc_process_scenario *s = confirmed_order();
  esc_process_given_event(s, ORDER, &ORDER_PAID, &(order_paid){120});
  esc_process_given_accepted(s, INV1);
  esc_process_given_accepted(s, INV2);
  esc_process_when_accepted(s, ORDER);
  esc_process_then_nothing(s); /* paid already: no deadline */
  esc_process_scenario_free(s);
}

/* userdata: the text the reason must hold. */
#define REASON(text) ((void *)(text))

static bool is_cancel(const void *command, void *userdata) {
  const order_cmd *c = command;
  return c->kind == ORDER_CANCEL && strstr(c->reason, userdata) != NULL;
}

static void test_out_of_stock(void **state) {
  (void)state;
  esc_process_scenario *s = confirmed_order();
  esc_process_given_accepted(s, INV1);
  esc_process_when_rejected(s, INV2, INVENTORY_ESHORT,
                            "only 0 available, 1 asked");
  esc_process_then_issue_check(
      s, order_order_command(), ORDER, is_cancel,
      REASON("cannot reserve sku-2: only 0 available"));
  esc_process_then_issue(s, order_inventory_command(), INV1, &release1);
  esc_process_then_end(s);
  esc_process_then_ended(s, false); /* the cancel is not seen yet */

  esc_process_when_event(s, ORDER, &ORDER_CANCELLED,
                         &(order_cancelled){"cannot reserve sku-2", 0});
  esc_process_then_nothing(s); /* stock went back already */
  esc_process_then_ended(s, true);
  esc_process_scenario_free(s);
}

/* A refusal that comes first: the later reservation is released when it
 * is answered, and the instance ends only then. */
static void test_refused_first(void **state) {
  (void)state;
  esc_process_scenario *s = confirmed_order();
  esc_process_when_rejected(s, INV1, INVENTORY_ESHORT, "only 1 available");
  esc_process_then_issue_json(
      s, order_order_command(), ORDER,
      "{\"kind\": 7, \"amount\": 0, \"reason\": \"cannot reserve sku-1: only "
      "1 available\"}");
  esc_process_then_end(s);
  esc_process_given_event(s, ORDER, &ORDER_CANCELLED,
                          &(order_cancelled){"cannot reserve sku-1", 0});
  esc_process_then_ended(s, false);
  esc_process_when_accepted(s, INV2);
  esc_process_then_issue(s, order_inventory_command(), INV2, &release2);
  esc_process_then_end(s);
  esc_process_then_ended(s, true);
  esc_process_scenario_free(s);
}

static void test_payment_deadline(void **state) {
  (void)state;
  esc_process_scenario *s = ready_order();
  int64_t ready_at = esc_process_clock(s);
  esc_process_when_deadline(s, "payment");
  assert_int_equal(esc_process_clock(s), ready_at + ESC_MINUTES(15));
  esc_process_then_issue_check(s, order_order_command(), ORDER, is_cancel,
                               REASON("not paid within 900 s"));
  esc_process_then_issue(s, order_inventory_command(), INV1, &release1);
  esc_process_then_issue(s, order_inventory_command(), INV2, &release2);
  esc_process_then_end(s);

  esc_process_when_event(s, ORDER, &ORDER_CANCELLED,
                         &(order_cancelled){"not paid within 900 s", 0});
  esc_process_then_nothing(s);
  esc_process_then_ended(s, true);

  /* A deadline fires once: the same firing again is dropped. */
  esc_process_when_redelivered(s, 5);
  esc_process_then_nothing(s);
  esc_process_scenario_free(s);
}

static void test_cancel_after_payment(void **state) {
  (void)state;
  esc_process_scenario *s = ready_order();
  esc_process_given_event(s, ORDER, &ORDER_PAID, &(order_paid){120});
  esc_process_when_event(s, ORDER, &ORDER_CANCELLED,
                         &(order_cancelled){"changed my mind", 120});
  esc_process_then_issue(s, order_inventory_command(), INV1, &release1);
  esc_process_then_issue(s, order_inventory_command(), INV2, &release2);
  esc_process_then_issue(s, order_order_command(), ORDER,
                         &(order_cmd){.kind = ORDER_REFUND, .amount = 120});
  esc_process_then_end(s);
  esc_process_then_ended(s, false); /* until the refund is answered */
  esc_process_when_accepted(s, ORDER);
  esc_process_then_nothing(s);
  esc_process_then_ended(s, true);
  esc_process_scenario_free(s);
}

/* Cancelled by the customer while waiting for the payment: the deadline
 * goes with the stock. */
static void test_cancel_while_ready(void **state) {
  (void)state;
  esc_process_scenario *s = ready_order();
  esc_process_when_event(s, ORDER, &ORDER_CANCELLED,
                         &(order_cancelled){"changed my mind", 0});
  esc_process_then_cancel(s, "payment");
  esc_process_then_issue(s, order_inventory_command(), INV1, &release1);
  esc_process_then_issue(s, order_inventory_command(), INV2, &release2);
  esc_process_then_end(s);
  esc_process_then_ended(s, true);
  esc_process_when_event(s, ORDER, &ORDER_PAID, &(order_paid){120});
  esc_process_then_nothing(s); /* ended */
  esc_process_scenario_free(s);
}

static void test_redelivery(void **state) {
  (void)state;
  esc_process_scenario *s = ready_order();
  size_t records = esc_process_scenario_records(s);
  for (size_t n = 1; n <= 4; n++) {
    esc_process_when_redelivered(s, n);
    esc_process_then_nothing(s);
  }
  /* After a restart (the instance folded from its stream) too. */
  esc_process_restart(s);
  esc_process_when_redelivered(s, 1);
  esc_process_then_nothing(s);
  assert_int_equal(esc_process_scenario_records(s), records);
  /* ... and the instance goes on as before. */
  esc_process_when_deadline(s, "payment");
  esc_process_then_issue_check(s, order_order_command(), ORDER, is_cancel,
                               REASON("not paid"));
  esc_process_scenario_free(s);
}

/* A poisoned order (a sku that cannot name a stream, appended by hand)
 * fails its instance, which the runtime parks; nothing is issued. */
static void test_poisoned_sku(void **state) {
  (void)state;
  esc_process_scenario *s = esc_process_scenario_new(&process);
  esc_process_when_event(s, "order-8", &ORDER_CONFIRMED,
                         &(order_confirmed){{{"a b", 1, 10}}, 1, 10});
  esc_process_then_failed(s, "stream id \"inventory-a b\": byte 12 (' ')");
  esc_process_scenario_free(s);
}

/* Events of other orders or types are not this instance's. */
static void test_not_mine(void **state) {
  (void)state;
  esc_process_scenario *s = esc_process_scenario_new(&process);
  esc_process_when_event(s, ORDER, &ORDER_PAID, &(order_paid){120});
  esc_process_then_nothing(s); /* continues only: not started */
  esc_process_when_event(s, ORDER, &ORDER_READY, &(order_ready){0});
  esc_process_then_nothing(s); /* not a type it takes */
  esc_process_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * The state's snapshot codec (the runtime's part is tested in
 * tests/integration/test_process_snapshots.c)
 * ------------------------------------------------------------------------ */

/* Runs the process's decode_state on the msgpack of json into state. */
static esc_status decode_json(const char *json, void *state, esc_error *err) {
  void *data = NULL;
  size_t len = 0;
  msgpack_zone zone;
  msgpack_object obj;
  assert_int_equal(esc_json_to_msgpack(json, &data, &len, err), ESC_OK);
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(msgpack_unpack(data, len, NULL, &zone, &obj),
                   MSGPACK_UNPACK_SUCCESS);
  esc_status rc = process.decode_state(&obj, state, process.userdata, err);
  msgpack_zone_destroy(&zone);
  free(data);
  return rc;
}

static void test_snapshot_codec(void **state) {
  (void)state;
  static const char good[] =
      "{\"flags\":1023,\"lines\":[{\"sku\":\"sku-1\",\"qty\":2,\"price\":10},"
      "{\"sku\":\"sku-2\",\"qty\":1,\"price\":100}],\"status\":[1,2],"
      "\"refund\":120}";
  esc_error err = ESC_ERROR_INIT;
  unsigned char st[4096];
  assert_true(process.state_size <= sizeof st);
  assert_int_equal(process.snapshot_every, 50);
  memset(st, 0, sizeof st);
  assert_int_equal(decode_json(good, st, &err), ESC_OK);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char *json = NULL;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  assert_int_equal(process.encode_state(st, &pk, process.userdata), 0);
  assert_int_equal(esc_msgpack_to_json(sb.data, sb.size, NULL, &json, &err),
                   ESC_OK);
  assert_string_equal(json, good);
  free(json);
  msgpack_sbuffer_destroy(&sb);
}

/* A snapshot that does not decode leaves the state alone and says why
 * (the runtime then folds the instance stream). */
static void test_snapshot_decode_errors(void **state) {
  (void)state;
#define LINE "{\"sku\":\"a\",\"qty\":1,\"price\":1}"
  static const struct {
    const char *json, *msg;
  } cases[] = {
      {"[]", "\"flags\" must be an integer of 10 bits"},
      {"{\"flags\":1024}", "\"flags\" must be an integer of 10 bits"},
      {"{\"flags\":0,\"lines\":[{},{},{},{},{},{},{},{},{},{},{},{},{},{},"
       "{},{},{}]}",
       "\"lines\" must be an array of at most 16 lines"},
      {"{\"flags\":0,\"lines\":[" LINE "],\"status\":[],\"refund\":0}",
       "\"status\" must be an array of one status per line"},
      {"{\"flags\":0,\"lines\":[" LINE "],\"status\":[3],\"refund\":0}",
       "\"status\"[0] must be 0, 1 or 2"},
      {"{\"flags\":0,\"lines\":[" LINE "],\"status\":[0]}",
       "\"refund\" must be an integer"},
  };
#undef LINE
  unsigned char st[4096], before[4096];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    print_message("case: %s\n", cases[i].json);
    memset(st, 0x33, sizeof st);
    memcpy(before, st, sizeof st);
    assert_int_equal(decode_json(cases[i].json, st, &err), ESC_EINVAL);
    assert_non_null(strstr(err.msg, "fulfillment snapshot: "));
    if (!strstr(err.msg, cases[i].msg))
      fail_msg("\"%s\" does not say \"%s\"", err.msg, cases[i].msg);
    assert_memory_equal(st, before, sizeof st);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_happy_path),
      cmocka_unit_test(test_paid_before_ready),
      cmocka_unit_test(test_out_of_stock),
      cmocka_unit_test(test_refused_first),
      cmocka_unit_test(test_payment_deadline),
      cmocka_unit_test(test_cancel_after_payment),
      cmocka_unit_test(test_cancel_while_ready),
      cmocka_unit_test(test_redelivery),
      cmocka_unit_test(test_poisoned_sku),
      cmocka_unit_test(test_not_mine),
      cmocka_unit_test(test_snapshot_codec),
      cmocka_unit_test(test_snapshot_decode_errors),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}

/*
 * Unit tests: the order domain's declared event types read and write the
 * bytes of the hand-written codecs they replaced. The fixtures below are
 * what those codecs (samples/order/events.c before the field tables)
 * produced for the structs beside them; events stored by them must
 * decode, and new events must be the same bytes.
 */
#include "order.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A struct and the bytes the old codec made of it. */
typedef struct fixture {
  const esc_event_type *type;
  const void *event;
  const char *bytes;
  size_t len;
} fixture;

// clang-format off
static const fixture fixtures[] = {
  {&ORDER_PLACED,
   &(order_placed){"c-1", "EUR", {{"sku-1", 2, 10}, {"sku-2", 1, 100000}}, 2},
   "\x83\xa8\x63\x75\x73\x74\x6f\x6d\x65\x72\xa3\x63\x2d\x31\xa8\x63\x75\x72\x72\x65\x6e\x63\x79\xa3\x45\x55\x52\xa5\x6c\x69\x6e\x65\x73\x92\x83\xa3\x73\x6b\x75\xa5\x73\x6b\x75\x2d\x31\xa3\x71\x74\x79\x02\xa5\x70\x72\x69\x63\x65\x0a\x83\xa3\x73\x6b\x75\xa5\x73\x6b\x75\x2d\x32\xa3\x71\x74\x79\x01\xa5\x70\x72\x69\x63\x65\xce\x00\x01\x86\xa0", 84},
  {&ORDER_ITEM_ADDED,
   &(order_item_added){{"sku-3", 3, -5}},
   "\x83\xa3\x73\x6b\x75\xa5\x73\x6b\x75\x2d\x33\xa3\x71\x74\x79\x03\xa5\x70\x72\x69\x63\x65\xfb", 23},
  {&ORDER_ITEM_REMOVED,
   &(order_item_removed){"sku-1"},
   "\x81\xa3\x73\x6b\x75\xa5\x73\x6b\x75\x2d\x31", 11},
  {&ORDER_CONFIRMED,
   &(order_confirmed){{{"a", 1, 0}}, 1, 0},
   "\x82\xa5\x6c\x69\x6e\x65\x73\x91\x83\xa3\x73\x6b\x75\xa1\x61\xa3\x71\x74\x79\x01\xa5\x70\x72\x69\x63\x65\x00\xa5\x74\x6f\x74\x61\x6c\x00", 34},
  {&ORDER_READY,
   &(order_ready){0},
   "\x80", 1},
  {&ORDER_PAID,
   &(order_paid){INT64_MIN},
   "\x81\xa6\x61\x6d\x6f\x75\x6e\x74\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 17},
  {&ORDER_SHIPPED,
   &(order_shipped){.carrier = "dhl"},
   "\x82\xa7\x63\x61\x72\x72\x69\x65\x72\xa3\x64\x68\x6c\xa5\x6c\x69\x6e\x65\x73\x90", 20},
  {&ORDER_CANCELLED,
   &(order_cancelled){"", 4294967296},
   "\x82\xa6\x72\x65\x61\x73\x6f\x6e\xa0\xa6\x72\x65\x66\x75\x6e\x64\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 25},
  {&STOCK_ADDED,
   &(stock_added){127},
   "\x81\xa3\x71\x74\x79\x7f", 6},
  {&STOCK_RESERVED,
   &(stock_reserved){"order-1", 128},
   "\x82\xa5\x6f\x72\x64\x65\x72\xa7\x6f\x72\x64\x65\x72\x2d\x31\xa3\x71\x74\x79\xcc\x80", 21},
  {&STOCK_RELEASED,
   &(stock_released){"order-1", 65536},
   "\x82\xa5\x6f\x72\x64\x65\x72\xa7\x6f\x72\x64\x65\x72\x2d\x31\xa3\x71\x74\x79\xce\x00\x01\x00\x00", 24},
};
// clang-format on

#define FIXTURES (sizeof fixtures / sizeof fixtures[0])

/* New events are the old bytes. */
static void test_encode_matches_old_bytes(void **state) {
  (void)state;
  for (size_t i = 0; i < FIXTURES; i++) {
    esc_error err = ESC_ERROR_INIT;
    void *data = NULL;
    size_t len = 0;
    print_message("case: %s\n", fixtures[i].type->name);
    assert_int_equal(esc_event_encode(fixtures[i].type, fixtures[i].event,
                                      &data, &len, &err),
                     ESC_OK);
    assert_int_equal(len, fixtures[i].len);
    assert_memory_equal(data, fixtures[i].bytes, len);
    free(data);
  }
}

/* Stored old events decode, through the registry, into the same structs. */
static void test_old_bytes_decode(void **state) {
  (void)state;
  for (size_t i = 0; i < FIXTURES; i++) {
    esc_recorded_event rec = {.stream_id = "order-1",
                              .stream_version = 1,
                              .type = fixtures[i].type->name,
                              .schema_version =
                                  fixtures[i].type->schema_version,
                              .data = fixtures[i].bytes,
                              .data_len = fixtures[i].len};
    esc_error err = ESC_ERROR_INIT;
    const esc_event_type *type = NULL;
    msgpack_zone zone;
    /* Large and aligned enough for any of the domain's structs. */
    _Alignas(max_align_t) unsigned char got[4096];
    print_message("case: %s\n", fixtures[i].type->name);
    assert_true(msgpack_zone_init(&zone, 1024));
    assert_true(fixtures[i].type->size <= sizeof got);
    assert_int_equal(
        esc_event_decode(order_events(), &rec, &zone, got, &type, &err),
        ESC_OK);
    msgpack_zone_destroy(&zone);
    assert_ptr_equal(type, fixtures[i].type);
    /* Both are zeroed before being filled, padding included. */
    assert_memory_equal(got, fixtures[i].event, type->size);
  }
}

/* esc read with the domain's registry: an OrderPlaced v1 shows in the v2
 * shape, with keys no field declares dropped. */
static void test_render_json(void **state) {
  (void)state;
  static const char v1[] = "\x83\xa8"
                           "customer\xa3"
                           "c-9\xa5"
                           "lines\x90\xa5"
                           "extra\xc3";
  esc_recorded_event rec = {.stream_id = "order-9",
                            .stream_version = 1,
                            .type = "OrderPlaced",
                            .schema_version = 1,
                            .data = v1,
                            .data_len = sizeof v1 - 1};
  esc_error err = ESC_ERROR_INIT;
  char *json = NULL;
  assert_int_equal(esc_event_render_json(order_events(), &rec, &json, &err),
                   ESC_OK);
  assert_string_equal(
      json, "{\"customer\":\"c-9\",\"currency\":\"EUR\",\"lines\":[]}");
  free(json);
  rec.type = "NoSuchType";
  assert_int_equal(esc_event_render_json(order_events(), &rec, &json, &err),
                   ESC_ENOTFOUND);
  assert_null(json);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_matches_old_bytes),
      cmocka_unit_test(test_old_bytes_decode),
      cmocka_unit_test(test_render_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

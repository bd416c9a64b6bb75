/*
 * Unit tests: projection names, key prefixes and namespaces, Redis key
 * names and partitioning by stream id (projections/src/keys.c,
 * partition.c). No servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* projections/src is not on the tests' include path */
#include "projection_int.h"

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

struct name_case {
  const char *name;
  const char *msg_part; /* NULL: valid */
};

static void test_name_rule(void **state) {
  (void)state;
  static const char max48[] =
      "abcdefghijklmnopqrstuvwxyz0123456789_abcdefghijk";
  static const char len49[] =
      "abcdefghijklmnopqrstuvwxyz0123456789_abcdefghijkl";
  static const struct name_case cases[] = {
      {"orders", NULL},
      {"a", NULL},
      {"0", NULL},
      {"order_view_2", NULL},
      {"_", NULL},
      {max48, NULL},
      {len49, "is 49 bytes; the limit is 48"},
      {"", "projection name is empty"},
      {"Orders", "projection name \"Orders\": byte 1 ('O') is not allowed; "
                 "use [a-z0-9_]"},
      {"ord-ers", "byte 4 ('-') is not allowed"},
      {"a:b", "byte 2 (':') is not allowed"},
      {"ab*", "byte 3 ('*') is not allowed"},
      {"a b", "byte 2 (' ') is not allowed"},
      {"x\x01", "byte 2 (\\x01) is not allowed"},
      {"caf\xc3\xa9", "byte 4 (\\xc3) is not allowed"},
  };
  assert_int_equal(sizeof max48 - 1, 48);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    bool ok = esc__projection_name_valid(cases[i].name, &err);
    if (!cases[i].msg_part) {
      if (!ok)
        fail_msg("case %zu (\"%s\") should be valid: %s", i, cases[i].name,
                 err.msg);
      assert_int_equal(err.code, ESC_OK);
      assert_true(esc__projection_name_valid(cases[i].name, NULL));
      continue;
    }
    if (ok)
      fail_msg("case %zu (\"%s\") should be invalid", i, cases[i].name);
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg_part))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
    assert_false(esc__projection_name_valid(cases[i].name, NULL));
  }
  esc_error err = ESC_ERROR_INIT;
  assert_false(esc__projection_name_valid(NULL, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "NULL"));
}

/* ------------------------------------------------------------------------
 * Key prefixes and namespaces
 * ------------------------------------------------------------------------ */

static void test_prefix_rule(void **state) {
  (void)state;
  char max64[ESC_KEY_PREFIX_MAX + 1], len65[ESC_KEY_PREFIX_MAX + 2];
  memset(max64, 'P', sizeof max64 - 1);
  max64[sizeof max64 - 1] = '\0';
  memset(len65, 'P', sizeof len65 - 1);
  len65[sizeof len65 - 1] = '\0';
  static const struct name_case cases[] = {
      {"billing", NULL},
      {"Prod-EU.1_b", NULL},
      {"esc-0f8fad5b-d9cb-469f-a165-70867728950e", NULL},
      {"", "key prefix is empty"},
      {"a:b", "key prefix \"a:b\": byte 2 (':') is not allowed; use "
              "[A-Za-z0-9_.-]"},
      {"a*", "byte 2 ('*') is not allowed"},
      {"a?", "byte 2 ('?') is not allowed"},
      {"[a]", "byte 1 ('[') is not allowed"},
      {"a b", "byte 2 (' ') is not allowed"},
      {"a{b}", "byte 2 ('{') is not allowed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    esc_error err = ESC_ERROR_INIT;
    bool ok = esc__key_prefix_valid(cases[i].name, &err);
    if (!cases[i].msg_part) {
      if (!ok)
        fail_msg("case %zu (\"%s\") should be valid: %s", i, cases[i].name,
                 err.msg);
      continue;
    }
    if (ok)
      fail_msg("case %zu (\"%s\") should be invalid", i, cases[i].name);
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, cases[i].msg_part))
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
               cases[i].msg_part);
  }
  assert_true(esc__key_prefix_valid(max64, NULL));
  esc_error err = ESC_ERROR_INIT;
  assert_false(esc__key_prefix_valid(len65, &err));
  assert_non_null(strstr(err.msg, "is 65 bytes; the limit is 64"));
}

static void test_namespace(void **state) {
  (void)state;
  static const char id[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
  char ns[ESC__NAMESPACE_SIZE], k[ESC__KEY_MAX];
  esc_error err = ESC_ERROR_INIT;
  /* derived: "esc-" and the identity */
  assert_int_equal(esc__namespace(ns, sizeof ns, NULL, id, &err), ESC_OK);
  assert_string_equal(ns, "esc-0f8fad5b-d9cb-469f-a165-70867728950e");
  /* configured: the prefix as it is, whatever the identity */
  assert_int_equal(esc__namespace(ns, sizeof ns, "billing", id, &err), ESC_OK);
  assert_string_equal(ns, "billing");
  /* a bad prefix is refused, saying why */
  assert_int_equal(esc__namespace(ns, sizeof ns, "a:b", id, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "key prefix \"a:b\""));
  assert_int_equal(esc__namespace(ns, sizeof ns, NULL, "", &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "identity is not known"));
  /* every key of a projection starts with the namespace */
  esc__key_base(k, sizeof k, "billing", "orders");
  assert_string_equal(k, "billing:orders");
  char g[ESC__KEY_MAX];
  esc__key_checkpoint(g, sizeof g, k, 3, 1);
  assert_string_equal(g, "billing:orders:g3:p1:checkpoint");
}

static void test_prefix_from_environment(void **state) {
  (void)state;
  unsetenv("ESC_KEY_PREFIX");
  assert_null(esc__key_prefix_configured(NULL));
  assert_string_equal(esc__key_prefix_configured("mine"), "mine");
  setenv("ESC_KEY_PREFIX", "", 1); /* empty: not set */
  assert_null(esc__key_prefix_configured(NULL));
  setenv("ESC_KEY_PREFIX", "fromenv", 1);
  assert_string_equal(esc__key_prefix_configured(NULL), "fromenv");
  assert_string_equal(esc__key_prefix_configured("mine"), "mine");
  unsetenv("ESC_KEY_PREFIX");
}

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

static void test_keys(void **state) {
  (void)state;
  char k[ESC__KEY_MAX];
  esc__key_generation(k, sizeof k, "orders");
  assert_string_equal(k, "orders:generation");
  esc__key_version(k, sizeof k, "orders");
  assert_string_equal(k, "orders:version");
  esc__key_checkpoint(k, sizeof k, "orders", 3, 2);
  assert_string_equal(k, "orders:g3:p2:checkpoint");
  esc__key_checkpoint(k, sizeof k, "orders", INT64_MAX, 0);
  assert_string_equal(k, "orders:g9223372036854775807:p0:checkpoint");
  esc__key_prefix(k, sizeof k, "orders", 12);
  assert_string_equal(k, "orders:g12:");
  esc__key_rebuild(k, sizeof k, "orders");
  assert_string_equal(k, "orders:rebuild");
  esc__key_rebuild_ready(k, sizeof k, "orders");
  assert_string_equal(k, "orders:rebuild:ready");
  esc__key_owner(k, sizeof k, "orders");
  assert_string_equal(k, "orders:owner");

  esc_uuid id;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_uuid_parse("0f8fad5b-d9cb-469f-a165-70867728950e", &id, &err),
      ESC_OK);
  esc__key_dead_letter_guard(k, sizeof k, "orders", 4, &id);
  assert_string_equal(k, "orders:g4:dl:0f8fad5b-d9cb-469f-a165-70867728950e");
}

static void test_keys_fit_and_truncate(void **state) {
  (void)state;
  /* The longest namespace and name with the largest numbers fit
   * ESC__KEY_MAX, the partial record's suffix too. */
  char ns[ESC_KEY_PREFIX_MAX + 1], name[ESC__PROJECTION_NAME_MAX + 1];
  memset(ns, 'N', ESC_KEY_PREFIX_MAX);
  ns[ESC_KEY_PREFIX_MAX] = '\0';
  memset(name, 'x', ESC__PROJECTION_NAME_MAX);
  name[ESC__PROJECTION_NAME_MAX] = '\0';
  char base[ESC__KEY_MAX], k[ESC__KEY_MAX];
  esc__key_base(base, sizeof base, ns, name);
  assert_int_equal(strlen(base), 64 + 1 + 48);
  esc__key_checkpoint(k, sizeof k, base, INT64_MAX, 2147483647);
  assert_int_equal(strlen(k), 113 + 2 + 19 + 2 + 10 + 11);
  assert_true(strlen(k) + strlen(":partial") < ESC__KEY_MAX);
  esc_uuid id = {{0}};
  esc__key_dead_letter_guard(k, sizeof k, base, INT64_MAX, &id);
  assert_int_equal(strlen(k), 113 + 2 + 19 + 4 + 36);

  /* A short buffer gets a NUL-terminated prefix, never an overflow. */
  char small[8];
  esc__key_generation(small, sizeof small, "orders");
  assert_string_equal(small, "orders:");
}

/* ------------------------------------------------------------------------
 * Partitions
 * ------------------------------------------------------------------------ */

static void test_fnv_known_values(void **state) {
  (void)state;
  /* Reference values of FNV-1a 64 (offset basis, and the published test
   * vectors); they must never change, or streams would change partition. */
  assert_true(esc__fnv1a64("", 0) == UINT64_C(0xcbf29ce484222325));
  assert_true(esc__fnv1a64("a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
  assert_true(esc__fnv1a64("foobar", 6) == UINT64_C(0x85944171f73967e8));
  assert_true(esc__fnv1a64("order-42", 8) == UINT64_C(0x7d1deb86a05662d4));
  /* binary-safe: a NUL byte counts */
  assert_true(esc__fnv1a64("a\0", 2) != esc__fnv1a64("a", 1));
}

static void test_partition_of(void **state) {
  (void)state;
  assert_int_equal(esc__partition_of("order-42", 4), 0);
  assert_int_equal(esc__partition_of("order-1", 4), 1);
  assert_int_equal(esc__partition_of("order-1", 7), 5);
  assert_int_equal(esc__partition_of("a", 7), 5);
  /* one partition (or a nonsensical count) is partition 0 */
  assert_int_equal(esc__partition_of("order-1", 1), 0);
  assert_int_equal(esc__partition_of("order-1", 0), 0);
  assert_int_equal(esc__partition_of("order-1", -3), 0);
  assert_int_equal(esc__partition_of(NULL, 4), 0);
  /* the same id always lands in the same partition */
  for (int i = 0; i < 100; i++)
    assert_int_equal(esc__partition_of("customer-xyz", 16),
                     esc__partition_of("customer-xyz", 16));
}

static void test_partition_distribution(void **state) {
  (void)state;
  int count[4] = {0};
  char id[32];
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof id, "order-%d", i);
    int p = esc__partition_of(id, 4);
    assert_in_range(p, 0, 3);
    count[p]++;
  }
  /* 2500 expected each; a fair hash stays well within +-8% */
  for (int p = 0; p < 4; p++)
    if (count[p] < 2300 || count[p] > 2700)
      fail_msg("partition %d got %d of 10000 ids (%d %d %d %d)", p, count[p],
               count[0], count[1], count[2], count[3]);

  int count7[7] = {0};
  for (int i = 0; i < 7000; i++) {
    snprintf(id, sizeof id, "cust-%08x", (unsigned)i * 2654435761u);
    count7[esc__partition_of(id, 7)]++;
  }
  for (int p = 0; p < 7; p++)
    if (count7[p] < 850 || count7[p] > 1150)
      fail_msg("of 7 partitions, %d got %d of 7000 ids", p, count7[p]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_name_rule),
      cmocka_unit_test(test_prefix_rule),
      cmocka_unit_test(test_namespace),
      cmocka_unit_test(test_prefix_from_environment),
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_keys_fit_and_truncate),
      cmocka_unit_test(test_fnv_known_values),
      cmocka_unit_test(test_partition_of),
      cmocka_unit_test(test_partition_distribution),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

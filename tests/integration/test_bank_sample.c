/*
 * Integration test: the sample bank end to end (samples/bank): commands
 * through esc_execute, the balances projection into Redis by a worker,
 * and the typed query reading it back, read-your-writes included.
 */
#include "bank.h"
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define SCHEMA "t_bank_sample"

static esc_command_result run(esc_store *st, const char *stream,
                              account_cmd cmd, esc_status want) {
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc =
      esc_execute(st, account_decider(), stream, &cmd, NULL, &res, &err);
  if (rc != want)
    fail_msg("%s: %s (%s)", stream, esc_strerror(rc),
             rc == ESC_EREJECTED ? res.domain_msg : err.msg);
  return res;
}

static void catch_up(void) {
  esc_error err = ESC_ERROR_INIT;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.poll_ms = 50;
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w)
    fail_msg("worker: %s", err.msg);
  assert_int_equal(esc_worker_add(w, bank_projection(), &err), ESC_OK);
  assert_int_equal(esc_worker_run_until_caught_up(w, 60000, &err), ESC_OK);
  esc_worker_free(w);
}

static void balances_follow_the_accounts(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  run(st, "account-a", (account_cmd){ACCOUNT_OPEN, "ann", 50, 0, NULL}, ESC_OK);
  run(st, "account-a", (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 30, "USD"},
      ESC_OK);
  run(st, "account-a", (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 70, NULL},
      ESC_OK);
  esc_command_result last =
      run(st, "account-a", (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 11, NULL},
          ESC_EREJECTED);
  assert_int_equal(last.domain_code, ACCOUNT_EFUNDS);
  run(st, "account-b", (account_cmd){ACCOUNT_OPEN, "bob", 0, 0, NULL}, ESC_OK);
  run(st, "account-b", (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 5, NULL},
      ESC_OK);
  last = run(st, "account-b", (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 5, NULL},
             ESC_OK);
  run(st, "account-b", (account_cmd){ACCOUNT_CLOSE, NULL, 0, 0, NULL}, ESC_OK);
  run(st, "account-b", (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 5, NULL},
      ESC_EREJECTED);
  catch_up();

  esc_error err = ESC_ERROR_INIT;
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.store = st;
  esc_query *q = esc_query_new(&qo, &err);
  assert_non_null(q);
  assert_int_equal(
      esc_query_wait(q, "balances", 0, &last.position, 10000, &err), ESC_OK);
  int64_t balance = 0;
  assert_int_equal(bank_query_balance(q, "account-a", &balance, &err), ESC_OK);
  assert_int_equal(balance, -40);
  /* Closed, and never opened: no balance. */
  assert_int_equal(bank_query_balance(q, "account-b", &balance, &err),
                   ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "account-b"));
  assert_int_equal(bank_query_balance(q, "account-z", &balance, &err),
                   ESC_ENOTFOUND);
  esc_query_free(q);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(balances_follow_the_accounts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

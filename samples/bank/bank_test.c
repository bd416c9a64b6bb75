/*
 * The bank's tests with the public test kit only (<esc/testkit.h>), as a
 * user's own would be: scripts/test builds and runs them in the tree and
 * against the installed package (find_package and pkg-config). The full
 * table of rules is tests/unit/test_bank_sample.c.
 */
#include "bank.h"

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_lifecycle(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  const account_state *st = esc_scenario_state(s);
  esc_when(s, &(account_cmd){.kind = ACCOUNT_OPEN, .owner = "ann"});
  esc_then(s, &account_opened, &(account_opened_t){.owner = "ann"});
  esc_then_end(s);
  esc_given(s, &account_opened, &(account_opened_t){.owner = "ann"});

  esc_when(s, &(account_cmd){.kind = ACCOUNT_DEPOSIT, .amount = 50});
  esc_then(s, &money_deposited,
           &(money_deposited_t){.amount = 50, .currency = "EUR"});
  esc_then_end(s);
  esc_given(s, &money_deposited,
            &(money_deposited_t){.amount = 50, .currency = "EUR"});

  esc_when(s, &(account_cmd){.kind = ACCOUNT_WITHDRAW, .amount = 50});
  esc_then(s, &money_withdrawn,
           &(money_withdrawn_t){.amount = 50, .balance_after = 0});
  esc_given(s, &money_withdrawn,
            &(money_withdrawn_t){.amount = 50, .balance_after = 0});

  esc_when(s, &(account_cmd){.kind = ACCOUNT_CLOSE});
  esc_then(s, &account_closed, &(account_closed_t){0});
  esc_then_end(s);
  esc_given(s, &account_closed, &(account_closed_t){0});

  assert_true(st->opened);
  assert_true(st->closed);
  assert_int_equal(st->balance, 0);
  esc_scenario_free(s);
}

/* The overdraft rule: down to -limit, not a cent further. */
static void test_overdraft(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  esc_given(s, &account_opened,
            &(account_opened_t){.owner = "bo", .overdraft_limit = 100});
  esc_when(s, &(account_cmd){.kind = ACCOUNT_WITHDRAW, .amount = 100});
  esc_then(s, &money_withdrawn,
           &(money_withdrawn_t){.amount = 100, .balance_after = -100});
  esc_then_end(s);
  esc_given(s, &money_withdrawn,
            &(money_withdrawn_t){.amount = 100, .balance_after = -100});
  esc_when(s, &(account_cmd){.kind = ACCOUNT_WITHDRAW, .amount = 1});
  esc_then_rejected(s, ACCOUNT_EFUNDS, "overdraft");
  esc_scenario_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle),
      cmocka_unit_test(test_overdraft),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests: the sample bank's decider (samples/bank) through the test
 * kit: its rules, its evolve, its declared events and the MoneyDeposited
 * v1 -> v2 upcaster on the read path.
 */
#include "bank.h"

#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The kit's checks, which return a message instead of failing the test. */
#include "testkit_int.h"

/* One event of the account, for tables. */
typedef struct any_event {
  const esc_event_type *type; /* NULL ends a list */
  union {
    account_opened_t opened;
    money_deposited_t deposited;
    money_withdrawn_t withdrawn;
    account_closed_t closed;
  } u;
} any_event;

/* Table shorthands: events, commands and outcomes. */
// clang-format off
#define OPENED(owner, limit) {&account_opened, {.opened = {owner, limit}}}
#define DEPOSITED(amount, cur) {&money_deposited, {.deposited = {amount, cur}}}
#define WITHDRAWN(amount, after) {&money_withdrawn, {.withdrawn = {amount, after}}}
#define CLOSED {&account_closed, {.closed = {0}}}
#define END {NULL, {.closed = {0}}}

#define OPEN(owner, limit) {ACCOUNT_OPEN, owner, limit, 0, NULL}
#define DEPOSIT(amount, cur) {ACCOUNT_DEPOSIT, NULL, 0, amount, cur}
#define WITHDRAW(amount) {ACCOUNT_WITHDRAW, NULL, 0, amount, NULL}
#define CLOSE {ACCOUNT_CLOSE, NULL, 0, 0, NULL}

#define EMITS(event) event, 0, NULL
#define REJECTS(code, msg_part) END, code, msg_part
// clang-format on

static void given_events(esc_scenario *s, const any_event *events) {
  for (size_t i = 0; events[i].type; i++)
    esc_given(s, events[i].type, &events[i].u);
}

static void assert_has(const char *msg, const char *part) {
  if (!msg)
    fail_msg("expected a failure containing \"%s\", got none", part);
  if (!strstr(msg, part))
    fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

static const char long_owner[] =
    "an owner whose name is far too long to fit: sixty-four bytes or more";

/* ------------------------------------------------------------------------
 * Deciding, table-driven
 * ------------------------------------------------------------------------ */

static void test_decide_table(void **state) {
  (void)state;
  static const struct {
    const char *name;
    any_event given[5];
    account_cmd cmd;
    any_event emits; /* type NULL: rejected */
    int reject;
    const char *msg;
  } cases[] = {
      /* open */
      {"open", {END}, OPEN("ann", 100), EMITS(OPENED("ann", 100))},
      {"open twice",
       {OPENED("ann", 0), END},
       OPEN("bob", 0),
       REJECTS(ACCOUNT_EOPEN, "already open (owner ann)")},
      {"open without owner",
       {END},
       OPEN(NULL, 0),
       REJECTS(ACCOUNT_EINVAL, "owner must be 1 to 63 bytes (got 0)")},
      {"open with an empty owner",
       {END},
       OPEN("", 0),
       REJECTS(ACCOUNT_EINVAL, "got 0")},
      {"open with a long owner",
       {END},
       OPEN(long_owner, 0),
       REJECTS(ACCOUNT_EINVAL, "owner must be 1 to 63 bytes")},
      {"open with a negative overdraft",
       {END},
       OPEN("ann", -1),
       REJECTS(ACCOUNT_EINVAL, "overdraft limit >= 0 (got -1)")},
      {"open a closed account",
       {OPENED("ann", 0), CLOSED, END},
       OPEN("ann", 0),
       REJECTS(ACCOUNT_ECLOSED, "the account is closed")},
      /* deposit */
      {"deposit in euros by default",
       {OPENED("ann", 0), END},
       DEPOSIT(50, NULL),
       EMITS(DEPOSITED(50, "EUR"))},
      {"deposit in dollars",
       {OPENED("ann", 0), DEPOSITED(5, "EUR"), END},
       DEPOSIT(50, "USD"),
       EMITS(DEPOSITED(50, "USD"))},
      {"deposit into an unopened account",
       {END},
       DEPOSIT(50, NULL),
       REJECTS(ACCOUNT_ENOTOPEN, "cannot deposit: the account is not open")},
      {"deposit into a closed account",
       {OPENED("ann", 0), CLOSED, END},
       DEPOSIT(50, NULL),
       REJECTS(ACCOUNT_ECLOSED, "cannot deposit: the account is closed")},
      {"deposit nothing",
       {OPENED("ann", 0), END},
       DEPOSIT(0, NULL),
       REJECTS(ACCOUNT_EAMOUNT, "amount must be positive, got 0")},
      {"deposit a negative amount",
       {OPENED("ann", 0), END},
       DEPOSIT(-5, NULL),
       REJECTS(ACCOUNT_EAMOUNT, "got -5")},
      {"deposit in a bad currency",
       {OPENED("ann", 0), END},
       DEPOSIT(5, "EURODOLLAR"),
       REJECTS(ACCOUNT_EINVAL,
               "currency must be 1 to 7 bytes: \"EURODOLLAR\"")},
      {"deposit past INT64_MAX",
       {OPENED("ann", 0), DEPOSITED(INT64_MAX - 1, "EUR"), END},
       DEPOSIT(2, NULL),
       REJECTS(ACCOUNT_EAMOUNT, "would overflow")},
      {"deposit into debt",
       {OPENED("ann", 100), WITHDRAWN(100, -100), END},
       DEPOSIT(INT64_MAX, NULL),
       EMITS(DEPOSITED(INT64_MAX, "EUR"))},
      /* withdraw */
      {"withdraw",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), END},
       WITHDRAW(20),
       EMITS(WITHDRAWN(20, 10))},
      {"withdraw everything",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), END},
       WITHDRAW(30),
       EMITS(WITHDRAWN(30, 0))},
      {"withdraw into the overdraft",
       {OPENED("ann", 50), DEPOSITED(30, "EUR"), END},
       WITHDRAW(80),
       EMITS(WITHDRAWN(80, -50))},
      {"withdraw beyond the balance",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), END},
       WITHDRAW(50),
       REJECTS(ACCOUNT_EFUNDS,
               "insufficient funds: balance 30, overdraft 0, asked 50")},
      {"withdraw beyond the overdraft",
       {OPENED("ann", 50), DEPOSITED(30, "EUR"), END},
       WITHDRAW(81),
       REJECTS(ACCOUNT_EFUNDS,
               "insufficient funds: balance 30, overdraft 50, asked 81")},
      {"withdraw in debt",
       {OPENED("ann", 50), WITHDRAWN(40, -40), END},
       WITHDRAW(11),
       REJECTS(ACCOUNT_EFUNDS, "balance -40, overdraft 50, asked 11")},
      {"withdraw INT64_MAX",
       {OPENED("ann", INT64_MAX), END},
       WITHDRAW(INT64_MAX),
       EMITS(WITHDRAWN(INT64_MAX, -INT64_MAX))},
      {"withdraw from an unopened account",
       {END},
       WITHDRAW(5),
       REJECTS(ACCOUNT_ENOTOPEN, "cannot withdraw: the account is not open")},
      {"withdraw from a closed account",
       {OPENED("ann", 0), CLOSED, END},
       WITHDRAW(5),
       REJECTS(ACCOUNT_ECLOSED, "cannot withdraw: the account is closed")},
      {"withdraw nothing",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), END},
       WITHDRAW(0),
       REJECTS(ACCOUNT_EAMOUNT, "amount must be positive, got 0")},
      /* close */
      {"close", {OPENED("ann", 0), END}, CLOSE, EMITS(CLOSED)},
      {"close after emptying",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), WITHDRAWN(30, 0), END},
       CLOSE,
       EMITS(CLOSED)},
      {"close with money",
       {OPENED("ann", 0), DEPOSITED(30, "EUR"), END},
       CLOSE,
       REJECTS(ACCOUNT_EBALANCE, "cannot close with a balance of 30")},
      {"close in debt",
       {OPENED("ann", 10), WITHDRAWN(10, -10), END},
       CLOSE,
       REJECTS(ACCOUNT_EBALANCE, "balance of -10")},
      {"close an unopened account",
       {END},
       CLOSE,
       REJECTS(ACCOUNT_ENOTOPEN, "cannot close: the account is not open")},
      {"close twice",
       {OPENED("ann", 0), CLOSED, END},
       CLOSE,
       REJECTS(ACCOUNT_ECLOSED, "cannot close: the account is closed")},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    print_message("case: %s\n", cases[i].name);
    esc_scenario *s = esc_scenario_new(account_decider());
    given_events(s, cases[i].given);
    esc_when(s, &cases[i].cmd);
    if (cases[i].emits.type) {
      esc_then(s, cases[i].emits.type, &cases[i].emits.u);
      esc_then_end(s);
      assert_int_equal(esc_scenario_emitted(s), 1);
    } else {
      esc_then_rejected(s, cases[i].reject, cases[i].msg);
    }
    esc_scenario_free(s);
  }
}

/* A day at the bank, one command at a time, folding what was decided. */
/* ------------------------------------------------------------------------
 * Evolve and state
 * ------------------------------------------------------------------------ */

static void test_state(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  const account_state *st = esc_scenario_state(s);
  assert_false(st->opened);
  given_events(s, (const any_event[]){OPENED("ann", 25), DEPOSITED(30, "EUR"),
                                      DEPOSITED(12, "USD"), WITHDRAWN(50, -8),
                                      END});
  assert_true(st->opened);
  assert_false(st->closed);
  /* The owner was copied out of the event: later events reused the
   * decoder's buffer. */
  assert_string_equal(st->owner, "ann");
  assert_int_equal(st->overdraft_limit, 25);
  assert_int_equal(st->balance, -8);
  assert_string_equal(st->currency, "USD");
  assert_int_equal(st->deposits, 2);
  assert_int_equal(st->withdrawals, 1);
  esc_scenario_free(s);
}

/* The longest owner that fits goes through encode, decode and evolve. */
static void test_owner_max(void **state) {
  (void)state;
  char owner[ACCOUNT_OWNER_MAX + 1];
  memset(owner, 'o', ACCOUNT_OWNER_MAX);
  owner[ACCOUNT_OWNER_MAX] = '\0';
  esc_scenario *s = esc_scenario_new(account_decider());
  esc_when(s, &(account_cmd){.kind = ACCOUNT_OPEN, .owner = owner});
  account_opened_t e = {.overdraft_limit = 0};
  memcpy(e.owner, owner, sizeof owner);
  esc_then(s, &account_opened, &e);
  esc_given(s, &account_opened, &e);
  const account_state *st = esc_scenario_state(s);
  assert_string_equal(st->owner, owner);
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * Schema evolution: MoneyDeposited v1 {amount} reads as v2
 * ------------------------------------------------------------------------ */

static void test_upcast_json(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  const account_state *st = esc_scenario_state(s);
  esc_given(s, &account_opened, &(account_opened_t){.owner = "ann"});
  esc_given(s, &money_deposited,
            &(money_deposited_t){.amount = 5, .currency = "USD"});
  esc_given_json(s, "MoneyDeposited", 1, "{\"amount\": 25}");
  assert_int_equal(st->balance, 30);
  assert_string_equal(st->currency, "EUR");
  assert_int_equal(st->deposits, 2);
  /* The upcast balance is what decide sees. */
  esc_when(s, &(account_cmd){.kind = ACCOUNT_WITHDRAW, .amount = 50});
  esc_then_rejected(s, ACCOUNT_EFUNDS,
                    "insufficient funds: balance 30, overdraft 0, asked 50");
  esc_scenario_free(s);
}

static void test_upcast_stored(void **state) {
  (void)state;
  /* {"amount": 40} as a v1 writer packed it. */
  unsigned char v1[32];
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  esc_pack_key(&pk, "amount");
  msgpack_pack_int64(&pk, 40);
  assert_true(sbuf.size <= sizeof v1);
  memcpy(v1, sbuf.data, sbuf.size);
  size_t len = sbuf.size;
  msgpack_sbuffer_destroy(&sbuf);

  esc_scenario *s = esc_scenario_new(account_decider());
  const account_state *st = esc_scenario_state(s);
  esc_given(s, &account_opened, &(account_opened_t){.owner = "bob"});
  esc_given_stored(s, "MoneyDeposited", 1, v1, len);
  assert_int_equal(st->balance, 40);
  assert_string_equal(st->currency, "EUR");
  /* The current version, stored, needs no upcasting. */
  esc_given_json(s, "MoneyDeposited", 2,
                 "{\"amount\": 2, \"currency\": \"CHF\"}");
  assert_int_equal(st->balance, 42);
  assert_string_equal(st->currency, "CHF");
  /* A v1 payload that already names a currency keeps it. */
  esc_given_json(s, "MoneyDeposited", 1,
                 "{\"amount\": 1, \"currency\": \"GBP\"}");
  assert_int_equal(st->balance, 43);
  assert_string_equal(st->currency, "GBP");
  assert_int_equal(st->deposits, 3);
  esc_scenario_free(s);
}

static void test_upcast_errors(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  esc_given(s, &account_opened, &(account_opened_t){.owner = "ann"});
  char *msg = esc__scenario_given_json(s, "MoneyDeposited", 1, "[25]");
  assert_has(msg, "given: event 2 (MoneyDeposited) failed to fold");
  assert_has(msg, "not a map");
  free(msg);
  msg = esc__scenario_given_json(s, "MoneyDeposited", 1, "{\"amt\": 25}");
  assert_has(msg, "given: event 2 (MoneyDeposited) failed to fold");
  assert_has(msg, "\"amount\" must be an integer");
  free(msg);
  /* A v2 payload without its currency is not upcast. */
  msg = esc__scenario_given_json(s, "MoneyDeposited", 2, "{\"amount\": 25}");
  assert_has(msg, "\"currency\" must be a string");
  free(msg);
  msg = esc__scenario_given_json(s, "AccountOpened", 1,
                                 "{\"owner\": 5, \"overdraft_limit\": 0}");
  assert_has(msg, "\"owner\" must be a string");
  free(msg);
  const account_state *st = esc_scenario_state(s);
  assert_int_equal(st->balance, 0);
  assert_int_equal(st->deposits, 0);
  esc_scenario_free(s);
}

/* ------------------------------------------------------------------------
 * The registry and the kit's messages on this domain
 * ------------------------------------------------------------------------ */

static void test_registry(void **state) {
  (void)state;
  const esc_decider *d = account_decider();
  assert_ptr_equal(d, account_decider());
  assert_string_equal(d->category, "account");
  /* The decider names its registry by function (esc_decider.registry). */
  assert_null(d->events);
  assert_ptr_equal(esc_decider_events(d), account_events());
  assert_int_equal(d->snapshot_every, 0);
  static const struct {
    const char *name;
    const esc_event_type *type;
  } types[] = {{"AccountOpened", &account_opened},
               {"MoneyDeposited", &money_deposited},
               {"MoneyWithdrawn", &money_withdrawn},
               {"AccountClosed", &account_closed}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    assert_ptr_equal(
        esc_event_registry_find(esc_decider_events(d), types[i].name),
        types[i].type);
  assert_int_equal(money_deposited.schema_version, 2);
}

static void test_kit_messages(void **state) {
  (void)state;
  esc_scenario *s = esc_scenario_new(account_decider());
  esc_given(s, &account_opened, &(account_opened_t){.owner = "ann"});
  esc_when(s, &(account_cmd){.kind = ACCOUNT_DEPOSIT, .amount = 5});
  char *msg =
      esc__scenario_then(s, &money_deposited,
                         &(money_deposited_t){.amount = 5, .currency = "USD"});
  assert_string_equal(msg,
                      "then: event 1: expected MoneyDeposited "
                      "{\"amount\":5,\"currency\":\"USD\"} but got "
                      "MoneyDeposited {\"amount\":5,\"currency\":\"EUR\"}");
  free(msg);
  msg = esc__scenario_then_rejected(s, ACCOUNT_EFUNDS, NULL);
  assert_string_equal(msg, "then_rejected: expected rejection 5 but the "
                           "command was accepted with 1 event: MoneyDeposited "
                           "{\"amount\":5,\"currency\":\"EUR\"}");
  free(msg);
  esc_scenario_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decide_table),
      cmocka_unit_test(test_state),
      cmocka_unit_test(test_owner_max),
      cmocka_unit_test(test_upcast_json),
      cmocka_unit_test(test_upcast_stored),
      cmocka_unit_test(test_upcast_errors),
      cmocka_unit_test(test_registry),
      cmocka_unit_test(test_kit_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The sample bank, the smallest useful domain (docs/tutorial-bank.md).
 * Streams "account-<id>"; money in cents. */
#ifndef ESC_SAMPLE_BANK_H
#define ESC_SAMPLE_BANK_H

#include <esc/command.h>
#include <esc/query.h>

#define ACCOUNT_OWNER_MAX 63   /* bytes */
#define ACCOUNT_CURRENCY_MAX 7 /* bytes */

/* Domain errors (esc_command_result.domain_code). EFUNDS: the balance
 * would go below -overdraft_limit. */
enum account_error {
  ACCOUNT_EOPEN = 1,
  ACCOUNT_ENOTOPEN,
  ACCOUNT_ECLOSED,
  ACCOUNT_EAMOUNT,
  ACCOUNT_EFUNDS,
  ACCOUNT_EBALANCE,
  ACCOUNT_EINVAL
};

/* The events, declared once (bank.c defines them): structs account_opened_t
 * and so on. MoneyDeposited is v2 (v1 had no currency: "EUR"). */
#define ACCOUNT_OPENED(X)                                                      \
  X(STR, owner, ACCOUNT_OWNER_MAX) X(I64, overdraft_limit)
#define MONEY_DEPOSITED(X) X(I64, amount) X(STR, currency, ACCOUNT_CURRENCY_MAX)
#define MONEY_WITHDRAWN(X) X(I64, amount) X(I64, balance_after)
#define ACCOUNT_EVENTS(E)                                                      \
  E(account_opened, "AccountOpened", 1, ACCOUNT_OPENED, NULL)                  \
  E(money_deposited, "MoneyDeposited", 2, MONEY_DEPOSITED, deposited_v1)       \
  E(money_withdrawn, "MoneyWithdrawn", 1, MONEY_WITHDRAWN, NULL)               \
  E(account_closed, "AccountClosed", 1, ESC_NO_FIELDS, NULL)
/* account_events(): the registry, built once, thread-safe. */
ESC_EVENTS_DECLARE(account_events, ACCOUNT_EVENTS)

typedef struct account_state {
  bool opened, closed;
  char owner[ACCOUNT_OWNER_MAX + 1];
  int64_t overdraft_limit, balance;
  int64_t deposits, withdrawals;           /* how many events of each */
  char currency[ACCOUNT_CURRENCY_MAX + 1]; /* of the last deposit */
} account_state;

typedef enum account_cmd_kind {
  ACCOUNT_OPEN,
  ACCOUNT_DEPOSIT,
  ACCOUNT_WITHDRAW,
  ACCOUNT_CLOSE
} account_cmd_kind;
typedef struct account_cmd {
  account_cmd_kind kind;
  const char *owner;       /* OPEN */
  int64_t overdraft_limit; /* OPEN: >= 0 */
  int64_t amount;          /* DEPOSIT, WITHDRAW: > 0 */
  const char *currency;    /* DEPOSIT: NULL means "EUR" */
} account_cmd;

const esc_decider *account_decider(void);
/* "balances": balance:<stream> holds an open account's balance. */
const esc_projection *bank_projection(void);
/* ESC_ENOTFOUND for an account not (or no longer) open. */
esc_status bank_query_balance(esc_query *q, const char *stream,
                              int64_t *balance, esc_error *err);
#endif

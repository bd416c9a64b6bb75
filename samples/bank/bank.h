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

/* The events; MoneyDeposited is v2 (v1 had no currency: "EUR"). */
typedef struct account_opened_t {
  char owner[ACCOUNT_OWNER_MAX + 1];
  int64_t overdraft_limit;
} account_opened_t;
typedef struct money_deposited_t {
  int64_t amount;
  char currency[ACCOUNT_CURRENCY_MAX + 1];
} money_deposited_t;
typedef struct money_withdrawn_t {
  int64_t amount, balance_after;
} money_withdrawn_t;
typedef struct account_closed_t {
  char unused_; /* C has no empty structs */
} account_closed_t;
extern const esc_event_type account_opened, money_deposited, money_withdrawn,
    account_closed;

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

/* Built once, thread-safe. */
const esc_event_registry *account_events(void);
const esc_decider *account_decider(void);
/* "balances": balance:<stream> holds an open account's balance. */
const esc_projection *bank_projection(void);
/* ESC_ENOTFOUND for an account not (or no longer) open. */
esc_status bank_query_balance(esc_query *q, const char *stream,
                              int64_t *balance, esc_error *err);
#endif

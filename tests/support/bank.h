/*
 * A bank account: a decider with real rules and one schema evolution, for
 * tests and benchmarks.
 *
 * Streams "account-<id>". Events: AccountOpened {owner, overdraft_limit},
 * MoneyDeposited {amount, currency} (schema 2; schema 1 had only amount
 * and is upcast with currency "EUR"), MoneyWithdrawn {amount,
 * balance_after} and AccountClosed {}.
 *
 * Strings in events are fixed arrays, filled by the decoders with
 * esc_map_str, so a decoded event owns all its bytes.
 *
 * The registry and the decider are built once, on first use, and may be
 * shared by threads.
 */
#ifndef ESC_TEST_BANK_H
#define ESC_TEST_BANK_H

#include <esc/command.h>

#define ACCOUNT_OWNER_MAX 63   /* bytes, without the NUL */
#define ACCOUNT_CURRENCY_MAX 7 /* bytes, without the NUL */
#define ACCOUNT_DEFAULT_CURRENCY "EUR"

/* Domain error codes (esc_command_result.domain_code). */
enum {
  ACCOUNT_EOPEN = 1,    /* opened already */
  ACCOUNT_ENOTOPEN = 2, /* never opened */
  ACCOUNT_ECLOSED = 3,  /* closed */
  ACCOUNT_EAMOUNT = 4,  /* amount <= 0, or a balance that would overflow */
  ACCOUNT_EFUNDS = 5,   /* withdrawal beyond balance + overdraft */
  ACCOUNT_EBALANCE = 6, /* closing with money (or debt) on the account */
  ACCOUNT_EINVAL = 7    /* a bad owner, overdraft limit or currency */
};

/* AccountOpened (schema 1). */
typedef struct account_opened_t {
  char owner[ACCOUNT_OWNER_MAX + 1];
  int64_t overdraft_limit;
} account_opened_t;

/* MoneyDeposited (schema 2). */
typedef struct money_deposited_t {
  int64_t amount;
  char currency[ACCOUNT_CURRENCY_MAX + 1];
} money_deposited_t;

/* MoneyWithdrawn (schema 1). */
typedef struct money_withdrawn_t {
  int64_t amount;
  int64_t balance_after;
} money_withdrawn_t;

/* AccountClosed {} (schema 1); C has no empty structs. */
typedef struct account_closed_t {
  char unused_;
} account_closed_t;

extern const esc_event_type account_opened, money_deposited, money_withdrawn,
    account_closed;

typedef struct account_state {
  bool opened;
  bool closed;
  char owner[ACCOUNT_OWNER_MAX + 1]; /* copied out of AccountOpened */
  int64_t overdraft_limit;
  int64_t balance;
  char currency[ACCOUNT_CURRENCY_MAX + 1]; /* of the last deposit */
  int64_t deposits;                        /* events, not money */
  int64_t withdrawals;
} account_state;

typedef enum account_cmd_kind {
  ACCOUNT_OPEN,
  ACCOUNT_DEPOSIT,
  ACCOUNT_WITHDRAW,
  ACCOUNT_CLOSE
} account_cmd_kind;

typedef struct account_cmd {
  account_cmd_kind kind;
  const char *owner;       /* OPEN: 1..ACCOUNT_OWNER_MAX bytes */
  int64_t overdraft_limit; /* OPEN: >= 0 */
  int64_t amount;          /* DEPOSIT, WITHDRAW: > 0 */
  const char *currency;    /* DEPOSIT: NULL means "EUR" */
} account_cmd;

/* The four event types, registered once (thread-safe). Aborts when out of
 * memory. */
const esc_event_registry *account_events(void);

/* The account decider (no snapshots). */
const esc_decider *account_decider(void);

#endif

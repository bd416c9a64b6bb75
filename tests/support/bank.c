/* The bank account decider (see bank.h). */
#include "bank.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static esc_status bad(esc_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ESC_EINVAL with a message, for decoders. */
static esc_status bad(esc_error *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = ESC_EINVAL;
    err->sqlstate[0] = '\0';
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return ESC_EINVAL;
}

/* Packs a string held in a fixed array of size bytes; -1 when it is not
 * NUL-terminated inside the array. */
static int pack_fixed_str(msgpack_packer *pk, const char *s, size_t size) {
  if (strnlen(s, size) == size)
    return -1;
  esc_pack_str(pk, s);
  return 0;
}

/* ------------------------------------------------------------------------
 * AccountOpened {owner, overdraft_limit}
 * ------------------------------------------------------------------------ */

static int opened_encode(const void *event, msgpack_packer *pk) {
  const account_opened_t *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "owner");
  if (pack_fixed_str(pk, e->owner, sizeof e->owner))
    return -1;
  esc_pack_key(pk, "overdraft_limit");
  return msgpack_pack_int64(pk, e->overdraft_limit);
}

static esc_status opened_decode(const msgpack_object *obj, void *event,
                                esc_error *err) {
  account_opened_t *e = event;
  if (!esc_map_str(obj, "owner", e->owner, sizeof e->owner))
    return bad(err,
               "AccountOpened: \"owner\" must be a string of at most "
               "%d bytes",
               ACCOUNT_OWNER_MAX);
  if (!esc_map_i64(obj, "overdraft_limit", &e->overdraft_limit))
    return bad(err, "AccountOpened: \"overdraft_limit\" must be an integer");
  return ESC_OK;
}

const esc_event_type account_opened = {
    "AccountOpened", 1,   sizeof(account_opened_t), opened_encode,
    opened_decode,   NULL};

/* ------------------------------------------------------------------------
 * MoneyDeposited {amount, currency}; v1 was {amount}, in euros
 * ------------------------------------------------------------------------ */

static int deposited_encode(const void *event, msgpack_packer *pk) {
  const money_deposited_t *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "amount");
  msgpack_pack_int64(pk, e->amount);
  esc_pack_key(pk, "currency");
  return pack_fixed_str(pk, e->currency, sizeof e->currency);
}

static esc_status deposited_decode(const msgpack_object *obj, void *event,
                                   esc_error *err) {
  money_deposited_t *e = event;
  if (!esc_map_i64(obj, "amount", &e->amount))
    return bad(err, "MoneyDeposited: \"amount\" must be an integer");
  if (!esc_map_str(obj, "currency", e->currency, sizeof e->currency))
    return bad(err,
               "MoneyDeposited: \"currency\" must be a string of at "
               "most %d bytes",
               ACCOUNT_CURRENCY_MAX);
  return ESC_OK;
}

/* v1 -> v2: keeps every entry and adds "currency": "EUR" unless present. */
static esc_status deposited_upcast(int32_t from_version,
                                   const msgpack_object *in, msgpack_packer *pk,
                                   esc_error *err) {
  if (from_version != 1)
    return bad(err, "MoneyDeposited: no upcaster from v%" PRId32, from_version);
  if (in->type != MSGPACK_OBJECT_MAP)
    return bad(err, "MoneyDeposited v1: not a map");
  bool has_currency = esc_map_get(in, "currency") != NULL;
  msgpack_pack_map(pk, in->via.map.size + (has_currency ? 0 : 1));
  for (uint32_t i = 0; i < in->via.map.size; i++) {
    msgpack_pack_object(pk, in->via.map.ptr[i].key);
    msgpack_pack_object(pk, in->via.map.ptr[i].val);
  }
  if (!has_currency) {
    esc_pack_key(pk, "currency");
    esc_pack_str(pk, ACCOUNT_DEFAULT_CURRENCY);
  }
  return ESC_OK;
}

const esc_event_type money_deposited = {
    "MoneyDeposited",          2,
    sizeof(money_deposited_t), deposited_encode,
    deposited_decode,          deposited_upcast};

/* ------------------------------------------------------------------------
 * MoneyWithdrawn {amount, balance_after}
 * ------------------------------------------------------------------------ */

static int withdrawn_encode(const void *event, msgpack_packer *pk) {
  const money_withdrawn_t *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "amount");
  msgpack_pack_int64(pk, e->amount);
  esc_pack_key(pk, "balance_after");
  return msgpack_pack_int64(pk, e->balance_after);
}

static esc_status withdrawn_decode(const msgpack_object *obj, void *event,
                                   esc_error *err) {
  money_withdrawn_t *e = event;
  if (!esc_map_i64(obj, "amount", &e->amount) ||
      !esc_map_i64(obj, "balance_after", &e->balance_after))
    return bad(err, "MoneyWithdrawn: \"amount\" and \"balance_after\" must "
                    "be integers");
  return ESC_OK;
}

const esc_event_type money_withdrawn = {
    "MoneyWithdrawn", 1,   sizeof(money_withdrawn_t), withdrawn_encode,
    withdrawn_decode, NULL};

/* ------------------------------------------------------------------------
 * AccountClosed {}
 * ------------------------------------------------------------------------ */

static int closed_encode(const void *event, msgpack_packer *pk) {
  (void)event;
  return msgpack_pack_map(pk, 0);
}

static esc_status closed_decode(const msgpack_object *obj, void *event,
                                esc_error *err) {
  (void)obj;
  (void)event;
  (void)err;
  return ESC_OK;
}

const esc_event_type account_closed = {
    "AccountClosed", 1,   sizeof(account_closed_t), closed_encode,
    closed_decode,   NULL};

/* ------------------------------------------------------------------------
 * Evolve
 * ------------------------------------------------------------------------ */

static void account_init(void *state) {
  account_state *s = state;
  memset(s, 0, sizeof *s);
}

static void account_evolve(void *state, const esc_event *event) {
  account_state *s = state;
  if (event->type == &account_opened) {
    const account_opened_t *e = event->data;
    s->opened = true;
    /* The event struct is reused for the next event: keep a copy. */
    snprintf(s->owner, sizeof s->owner, "%s", e->owner);
    s->overdraft_limit = e->overdraft_limit;
  } else if (event->type == &money_deposited) {
    const money_deposited_t *e = event->data;
    s->balance += e->amount;
    snprintf(s->currency, sizeof s->currency, "%s", e->currency);
    s->deposits++;
  } else if (event->type == &money_withdrawn) {
    const money_withdrawn_t *e = event->data;
    s->balance = e->balance_after;
    s->withdrawals++;
  } else if (event->type == &account_closed) {
    s->closed = true;
  }
}

/* ------------------------------------------------------------------------
 * Decide
 * ------------------------------------------------------------------------ */

static int decide_open(const account_state *s, const account_cmd *c,
                       esc_decision *d) {
  account_opened_t e;
  if (s->closed)
    return esc_decision_reject(d, ACCOUNT_ECLOSED, "the account is closed");
  if (s->opened)
    return esc_decision_reject(
        d, ACCOUNT_EOPEN, "the account is already open (owner %s)", s->owner);
  size_t len = c->owner ? strlen(c->owner) : 0;
  if (len == 0 || len > ACCOUNT_OWNER_MAX)
    return esc_decision_reject(d, ACCOUNT_EINVAL,
                               "owner must be 1 to %d bytes, got %zu",
                               ACCOUNT_OWNER_MAX, len);
  if (c->overdraft_limit < 0)
    return esc_decision_reject(d, ACCOUNT_EINVAL,
                               "overdraft limit must not be negative, got "
                               "%" PRId64,
                               c->overdraft_limit);
  memset(&e, 0, sizeof e);
  memcpy(e.owner, c->owner, len);
  e.overdraft_limit = c->overdraft_limit;
  esc_decision_emit(d, &account_opened, &e);
  return 0;
}

/* Deposits and withdrawals need an open account and a positive amount. */
static int check_movable(const account_state *s, const account_cmd *c,
                         esc_decision *d, const char *what) {
  if (!s->opened)
    return esc_decision_reject(d, ACCOUNT_ENOTOPEN,
                               "cannot %s: the account is not open", what);
  if (s->closed)
    return esc_decision_reject(d, ACCOUNT_ECLOSED,
                               "cannot %s: the account is closed", what);
  if (c->amount <= 0)
    return esc_decision_reject(
        d, ACCOUNT_EAMOUNT, "amount must be positive, got %" PRId64, c->amount);
  return 0;
}

static int decide_deposit(const account_state *s, const account_cmd *c,
                          esc_decision *d) {
  money_deposited_t e;
  int rc = check_movable(s, c, d, "deposit");
  if (rc)
    return rc;
  const char *cur = c->currency ? c->currency : ACCOUNT_DEFAULT_CURRENCY;
  size_t len = strlen(cur);
  if (len == 0 || len > ACCOUNT_CURRENCY_MAX)
    return esc_decision_reject(d, ACCOUNT_EINVAL,
                               "currency must be 1 to %d bytes, got %zu",
                               ACCOUNT_CURRENCY_MAX, len);
  if (s->balance > 0 && c->amount > INT64_MAX - s->balance)
    return esc_decision_reject(d, ACCOUNT_EAMOUNT,
                               "deposit of %" PRId64 " would overflow the "
                               "balance %" PRId64,
                               c->amount, s->balance);
  memset(&e, 0, sizeof e);
  e.amount = c->amount;
  memcpy(e.currency, cur, len);
  esc_decision_emit(d, &money_deposited, &e);
  return 0;
}

static int decide_withdraw(const account_state *s, const account_cmd *c,
                           esc_decision *d) {
  int rc = check_movable(s, c, d, "withdraw");
  if (rc)
    return rc;
  /* amount - overdraft cannot overflow (amount > 0, overdraft >= 0),
   * unlike balance + overdraft. */
  if (c->amount - s->overdraft_limit > s->balance)
    return esc_decision_reject(d, ACCOUNT_EFUNDS,
                               "insufficient funds: balance %" PRId64
                               ", overdraft %" PRId64 ", asked %" PRId64,
                               s->balance, s->overdraft_limit, c->amount);
  esc_decision_emit(
      d, &money_withdrawn,
      &(money_withdrawn_t){.amount = c->amount,
                           .balance_after = s->balance - c->amount});
  return 0;
}

static int decide_close(const account_state *s, esc_decision *d) {
  if (!s->opened)
    return esc_decision_reject(d, ACCOUNT_ENOTOPEN,
                               "cannot close: the account is not open");
  if (s->closed)
    return esc_decision_reject(d, ACCOUNT_ECLOSED,
                               "the account is closed already");
  if (s->balance != 0)
    return esc_decision_reject(d, ACCOUNT_EBALANCE,
                               "cannot close with a balance of %" PRId64,
                               s->balance);
  esc_decision_emit(d, &account_closed, &(account_closed_t){0});
  return 0;
}

static int account_decide(const void *state, const void *command,
                          esc_decision *d) {
  const account_state *s = state;
  const account_cmd *c = command;
  switch (c->kind) {
  case ACCOUNT_OPEN:
    return decide_open(s, c, d);
  case ACCOUNT_DEPOSIT:
    return decide_deposit(s, c, d);
  case ACCOUNT_WITHDRAW:
    return decide_withdraw(s, c, d);
  case ACCOUNT_CLOSE:
    return decide_close(s, d);
  }
  return esc_decision_reject(d, ACCOUNT_EINVAL, "unknown command kind %d",
                             (int)c->kind);
}

/* ------------------------------------------------------------------------
 * The registry and decider, built once
 * ------------------------------------------------------------------------ */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static esc_event_registry *registry;
static esc_decider decider;

static void build(void) {
  static const esc_event_type *const types[] = {
      &account_opened, &money_deposited, &money_withdrawn, &account_closed};
  esc_error err = ESC_ERROR_INIT;
  registry = esc_event_registry_new(&err);
  if (!registry)
    goto fail;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (esc_event_registry_add(registry, types[i], &err) != ESC_OK)
      goto fail;
  decider.category = "account";
  decider.events = registry;
  decider.state_size = sizeof(account_state);
  decider.init = account_init;
  decider.evolve = account_evolve;
  decider.decide = account_decide;
  return;
fail:
  fprintf(stderr, "account: cannot build the registry: %s\n", err.msg);
  abort();
}

const esc_event_registry *account_events(void) {
  pthread_once(&once, build);
  return registry;
}

const esc_decider *account_decider(void) {
  pthread_once(&once, build);
  return &decider;
}

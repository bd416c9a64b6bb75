/* The sample bank (bank.h): events, decider, projection and query. */
#include "bank.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

ESC_UPCAST_ADD_STR(deposited_v1, "currency", "EUR") /* v1 was all euros */
ESC_EVENTS_DEFINE(account_events, ACCOUNT_EVENTS)

static void evolve(void *state, const esc_event *ev) {
  account_state *s = state;
  const account_opened_t *o = ev->data;
  const money_deposited_t *dep = ev->data;
  if (ev->type == &account_opened) {
    s->opened = true;
    snprintf(s->owner, sizeof s->owner, "%s", o->owner);
    s->overdraft_limit = o->overdraft_limit;
  } else if (ev->type == &money_deposited) {
    s->balance += dep->amount;
    snprintf(s->currency, sizeof s->currency, "%s", dep->currency);
    s->deposits++;
  } else if (ev->type == &money_withdrawn) {
    s->balance = ((const money_withdrawn_t *)ev->data)->balance_after;
    s->withdrawals++;
  } else {
    s->closed = true;
  }
}

static int open(const account_state *s, const account_cmd *c, esc_decision *d) {
  account_opened_t e = {.overdraft_limit = c->overdraft_limit};
  size_t len = c->owner ? strlen(c->owner) : 0;
  if (s->opened)
    return esc_decision_reject(
        d, ACCOUNT_EOPEN, "the account is already open (owner %s)", s->owner);
  if (len == 0 || len > ACCOUNT_OWNER_MAX || c->overdraft_limit < 0)
    return esc_decision_reject(d, ACCOUNT_EINVAL,
                               "owner must be 1 to %d bytes (got %zu), the "
                               "overdraft limit >= 0 (got %" PRId64 ")",
                               ACCOUNT_OWNER_MAX, len, c->overdraft_limit);
  memcpy(e.owner, c->owner, len);
  return (int)esc_decision_emit(d, &account_opened, &e);
}

static int deposit(const account_state *s, const account_cmd *c,
                   esc_decision *d) {
  money_deposited_t e = {.amount = c->amount};
  const char *cur = c->currency ? c->currency : "EUR";
  if (s->balance > 0 && c->amount > INT64_MAX - s->balance)
    return esc_decision_reject(d, ACCOUNT_EAMOUNT,
                               "a deposit of %" PRId64 " would overflow",
                               c->amount);
  if (!*cur || strlen(cur) > ACCOUNT_CURRENCY_MAX)
    return esc_decision_reject(d, ACCOUNT_EINVAL,
                               "currency must be 1 to %d bytes: \"%s\"",
                               ACCOUNT_CURRENCY_MAX, cur);
  memcpy(e.currency, cur, strlen(cur));
  return (int)esc_decision_emit(d, &money_deposited, &e);
}

/* The overdraft rule. amount - limit cannot overflow; balance + limit can. */
static int withdraw(const account_state *s, const account_cmd *c,
                    esc_decision *d) {
  if (c->amount - s->overdraft_limit > s->balance)
    return esc_decision_reject(d, ACCOUNT_EFUNDS,
                               "insufficient funds: balance %" PRId64
                               ", overdraft %" PRId64 ", asked %" PRId64,
                               s->balance, s->overdraft_limit, c->amount);
  money_withdrawn_t e = {c->amount, s->balance - c->amount};
  return (int)esc_decision_emit(d, &money_withdrawn, &e);
}

/* Deciding returns 0 or a rejection. esc_decision_emit returns ESC_OK, or
 * records its failure in the decision, which then ignores what decide
 * returns: so `return (int)esc_decision_emit(...)` is how decide ends. */
static int decide(const void *state, const void *command, esc_decision *d) {
  static const char *const verbs[] = {"open", "deposit", "withdraw", "close"};
  const account_state *s = state;
  const account_cmd *c = command;
  if ((unsigned)c->kind > ACCOUNT_CLOSE)
    return esc_decision_reject(d, ACCOUNT_EINVAL, "unknown command");
  /* A closed account refuses everything, one not yet open all but open. */
  if (s->closed || (!s->opened && c->kind != ACCOUNT_OPEN))
    return esc_decision_reject(d,
                               s->closed ? ACCOUNT_ECLOSED : ACCOUNT_ENOTOPEN,
                               "cannot %s: the account is %s", verbs[c->kind],
                               s->closed ? "closed" : "not open");
  if (c->kind == ACCOUNT_OPEN)
    return open(s, c, d);
  if (c->kind == ACCOUNT_CLOSE && s->balance)
    return esc_decision_reject(d, ACCOUNT_EBALANCE,
                               "cannot close with a balance of %" PRId64,
                               s->balance);
  if (c->kind == ACCOUNT_CLOSE)
    return (int)esc_decision_emit(d, &account_closed, &(account_closed_t){0});
  if (c->amount <= 0)
    return esc_decision_reject(
        d, ACCOUNT_EAMOUNT, "amount must be positive, got %" PRId64, c->amount);
  return c->kind == ACCOUNT_DEPOSIT ? deposit(s, c, d) : withdraw(s, c, d);
}

/* A zeroed account_state is a new account: no init. */
ESC_DECIDER(account_decider, .category = "account",
            .state_size = sizeof(account_state), .registry = account_events,
            .evolve = evolve, .decide = decide)

/* Balances of open accounts. Writes need no read; the worker applies each
 * event once, so INCRBY is safe. */
static esc_status project(esc_projection_ctx *ctx, const esc_event *ev,
                          void *userdata, esc_error *err) {
  const char *key = esc_ctx_key(ctx, "balance:%s", ev->recorded->stream_id);
  const money_deposited_t *dep = ev->data;
  const money_withdrawn_t *wd = ev->data;
  (void)userdata, (void)err;
  if (ev->type == &account_opened)
    return esc_ctx_cmd(ctx, "SET", key, "0", NULL);
  if (ev->type == &money_deposited)
    return esc_ctx_cmd_i64(ctx, "INCRBY", key, dep->amount);
  if (ev->type == &money_withdrawn)
    return esc_ctx_cmd_i64(ctx, "SET", key, wd->balance_after);
  return esc_ctx_cmd(ctx, "DEL", key, NULL);
}

static const char *const categories[] = {"account", NULL};
ESC_PROJECTION(bank_projection, .name = "balances", .version = 1,
               .categories = categories, .registry = account_events,
               .handle = project)

esc_status bank_query_balance(esc_query *q, const char *stream,
                              int64_t *balance, esc_error *err) {
  char suffix[ESC_STREAM_ID_MAX + 16];
  snprintf(suffix, sizeof suffix, "balance:%s", stream ? stream : "");
  return esc_query_int(q, "balances", suffix, balance, err);
}

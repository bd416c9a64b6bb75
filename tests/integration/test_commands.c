/*
 * The command side against a real PostgreSQL (issue "The command side"):
 * esc_execute under contention (no lost update, real retries, own stores
 * and a pool), idempotency by command id (sequential repeats, repeats
 * after the stream moved on, repeats that decide differently, concurrent
 * twins), domain rejections and no-ops, the metadata every event carries,
 * a command id reused on another stream, the wrong category, and the bank
 * decider end to end including upcasting of stored v1 events.
 *
 * Each test works in its own schema. cmocka assertions are not
 * thread-safe, so worker threads only record what happened and the main
 * thread checks it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <esc/command.h>

#include "bank.h"
#include "counter.h"
#include "testenv.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The stream's version, 0 when it does not exist. */
static int64_t stream_version(esc_store *st, const char *stream) {
  esc_stream_info info;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_stream_get(st, stream, &info, &err);
  if (rc == ESC_ENOTFOUND)
    return 0;
  if (rc != ESC_OK)
    fail_msg("esc_stream_get(%s): %s", stream, err.msg);
  return info.version;
}

/* Rows of the stream in <schema>.events, counted by SQL. */
static long long stored_rows(PGconn *pg, const char *schema,
                             const char *stream) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM \"%s\".events WHERE stream_id = '%s'", schema,
           stream);
  return esc_test_query_ll(pg, sql);
}

/* Executes a counter command; id may be NULL (a random one). */
static esc_status counter_exec(esc_store *st, const esc_decider *d,
                               const char *stream, counter_cmd_kind kind,
                               int64_t by, const esc_uuid *id,
                               esc_command_result *res, esc_error *err) {
  counter_cmd cmd = {kind, by};
  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  if (id)
    opts.command_id = *id;
  return esc_execute(st, d, stream, &cmd, &opts, res, err);
}

/* The same, failing the test unless it returns ESC_OK. */
static esc_command_result counter_ok(esc_store *st, const char *stream,
                                     counter_cmd_kind kind, int64_t by,
                                     const esc_uuid *id) {
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc =
      counter_exec(st, counter_decider(), stream, kind, by, id, &res, &err);
  if (rc != ESC_OK)
    fail_msg("execute on %s: %s (%s)", stream, esc_strerror(rc), err.msg);
  return res;
}

static counter_state counter_load(esc_store *st, const esc_decider *d,
                                  const char *stream, int64_t *version) {
  counter_state s;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_load_state(st, d, stream, &s, version, &err);
  if (rc != ESC_OK)
    fail_msg("esc_load_state(%s): %s", stream, err.msg);
  return s;
}

static bool same_position(const esc_position *a, const esc_position *b) {
  return esc_position_cmp(a, b) == 0;
}

/* A repeat must return the first execution's outcome. */
static void assert_same_result(const esc_command_result *first,
                               const esc_command_result *again) {
  assert_int_equal(again->event_count, first->event_count);
  assert_int_equal(again->first_version, first->first_version);
  assert_int_equal(again->version, first->version);
  assert_true(same_position(&again->position, &first->position));
  assert_memory_equal(again->command_id.bytes, first->command_id.bytes, 16);
  assert_int_equal(again->domain_code, 0);
}

/*
 * A counter decider with a multi-event command, to exercise repeats that
 * decide more or fewer events than the first execution: the counter's own
 * state, evolve and events, with this decide.
 */
typedef enum fill_kind { FILL_TO, FILL_RESET } fill_kind;
typedef struct fill_cmd {
  fill_kind kind;
  int64_t target; /* FILL_TO: one Incremented {by: 1} per missing unit */
} fill_cmd;

static int fill_decide(const void *state, const void *command,
                       esc_decision *d) {
  const counter_state *s = state;
  const fill_cmd *c = command;
  if (c->kind == FILL_RESET) {
    if (s->value != 0)
      esc_decision_emit(d, &counter_reset, &(counter_reset_t){0});
    return 0;
  }
  for (int64_t v = s->value; v < c->target; v++)
    esc_decision_emit(d, &counter_incremented,
                      &(counter_incremented_t){.by = 1});
  return 0;
}

static esc_decider fill_decider_storage;

static void fill_build(void) {
  counter_decider_init(&fill_decider_storage, 0);
  fill_decider_storage.decide = fill_decide;
}

/* Built once; shared by threads like the sample deciders. */
static const esc_decider *fill_decider(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill_build);
  return &fill_decider_storage;
}

static esc_status fill_exec(esc_store *st, const char *stream, fill_kind kind,
                            int64_t target, const esc_uuid *id,
                            esc_command_result *res, esc_error *err) {
  fill_cmd cmd = {kind, target};
  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  if (id)
    opts.command_id = *id;
  return esc_execute(st, fill_decider(), stream, &cmd, &opts, res, err);
}

static esc_command_result fill_ok(esc_store *st, const char *stream,
                                  fill_kind kind, int64_t target,
                                  const esc_uuid *id) {
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = fill_exec(st, stream, kind, target, id, &res, &err);
  if (rc != ESC_OK)
    fail_msg("fill on %s: %s (%s)", stream, esc_strerror(rc), err.msg);
  return res;
}

/* Executes a bank command with an optional id. */
static esc_status bank_exec(esc_store *st, const char *stream, account_cmd cmd,
                            const esc_uuid *id, esc_command_result *res,
                            esc_error *err) {
  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  if (id)
    opts.command_id = *id;
  return esc_execute(st, account_decider(), stream, &cmd, &opts, res, err);
}

static esc_command_result bank_ok(esc_store *st, const char *stream,
                                  account_cmd cmd, const esc_uuid *id) {
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = bank_exec(st, stream, cmd, id, &res, &err);
  if (rc != ESC_OK)
    fail_msg("bank command on %s: %s (%s; domain %d %s)", stream,
             esc_strerror(rc), err.msg, res.domain_code, res.domain_msg);
  return res;
}

static account_state bank_load(esc_store *st, const char *stream,
                               int64_t *version) {
  account_state s;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc =
      esc_load_state(st, account_decider(), stream, &s, version, &err);
  if (rc != ESC_OK)
    fail_msg("esc_load_state(%s): %s", stream, err.msg);
  return s;
}

static esc_store_pool *open_pool(const char *schema, size_t size) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  esc_store_pool *pool = esc_store_pool_new(esc_test_pg_url(), &o, size, &err);
  if (!pool)
    fail_msg("esc_store_pool_new(%s): %s", schema, err.msg);
  return pool;
}

/* ------------------------------------------------------------------------
 * 16 threads x 100 increments on one counter: no lost update
 * ------------------------------------------------------------------------ */

#define HOT_SCHEMA "t_cmd_hot"
#define HOT_STREAM "counter-hot"
enum { HOT_OWN = 8, HOT_POOLED = 8, HOT_POOL_SIZE = 4, HOT_CMDS = 100 };
enum { HOT_THREADS = HOT_OWN + HOT_POOLED, HOT_TOTAL = HOT_THREADS * HOT_CMDS };

struct hot_shared {
  pthread_barrier_t start;
  pthread_mutex_t lock;
  esc_store_pool *pool;
  int seen[HOT_TOTAL + 1]; /* results per reported stream version */
  long retries;            /* sum of attempts - 1 */
  int max_attempts;
  int over_default; /* commands that took more than the default 25 */
  int errors;
  char first_error[800];
};

struct hot_worker {
  struct hot_shared *sh;
  esc_store *store; /* NULL: borrow from the pool per command */
};

static void *hot_run(void *arg) {
  struct hot_worker *w = arg;
  struct hot_shared *sh = w->sh;
  counter_cmd cmd = {COUNTER_INCREMENT, 1};
  pthread_barrier_wait(&sh->start);
  for (int i = 0; i < HOT_CMDS; i++) {
    esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
    esc_command_result res;
    esc_error err = ESC_ERROR_INIT;
    opts.command_id = esc_uuid_v4();
    /* 16 writers on 2 cores: allow more rounds than the default 10 so the
     * test checks correctness, not luck; attempts are reported below. */
    opts.max_attempts = 1000;
    esc_status rc =
        w->store ? esc_execute(w->store, counter_decider(), HOT_STREAM, &cmd,
                               &opts, &res, &err)
                 : esc_execute_pooled(sh->pool, counter_decider(), HOT_STREAM,
                                      &cmd, &opts, &res, &err);
    pthread_mutex_lock(&sh->lock);
    if (rc != ESC_OK || res.event_count != 1 || res.duplicate ||
        res.first_version != res.version || res.version < 1 ||
        res.version > HOT_TOTAL || res.attempts < 1) {
      if (sh->errors++ == 0)
        snprintf(sh->first_error, sizeof sh->first_error,
                 "rc %s (%s), event_count %zu, duplicate %d, version "
                 "%" PRId64 "..%" PRId64 ", attempts %d",
                 esc_strerror(rc), err.msg, res.event_count, res.duplicate,
                 res.first_version, res.version, res.attempts);
    } else {
      sh->seen[res.version]++;
      sh->retries += res.attempts - 1;
      if (res.attempts > sh->max_attempts)
        sh->max_attempts = res.attempts;
      if (res.attempts > 25)
        sh->over_default++;
    }
    pthread_mutex_unlock(&sh->lock);
  }
  return NULL;
}

static void concurrent_increments_lose_nothing(void **state) {
  (void)state;
  static struct hot_shared sh;
  struct hot_worker w[HOT_THREADS];
  pthread_t th[HOT_THREADS];
  memset(&sh, 0, sizeof sh);
  esc_store *st = esc_test_fresh_store(HOT_SCHEMA);
  pthread_mutex_init(&sh.lock, NULL);
  pthread_barrier_init(&sh.start, NULL, HOT_THREADS);
  sh.pool = open_pool(HOT_SCHEMA, HOT_POOL_SIZE);
  long long t0 = esc_test_now_ms();
  for (int i = 0; i < HOT_THREADS; i++) {
    w[i].sh = &sh;
    w[i].store = i < HOT_OWN ? esc_test_open_store(HOT_SCHEMA) : NULL;
    assert_int_equal(pthread_create(&th[i], NULL, hot_run, &w[i]), 0);
  }
  for (int i = 0; i < HOT_THREADS; i++) {
    pthread_join(th[i], NULL);
    esc_store_free(w[i].store);
  }
  long long ms = esc_test_now_ms() - t0;
  esc_store_pool_free(sh.pool);
  fprintf(stderr,
          "concurrent increments: %d commands by %d threads (%d own stores, "
          "%d via a pool of %d) in %lld ms; retries (sum of attempts - 1) "
          "= %ld, max attempts = %d, commands needing more than the "
          "default 25 attempts = %d\n",
          HOT_TOTAL, HOT_THREADS, HOT_OWN, HOT_POOLED, HOT_POOL_SIZE, ms,
          sh.retries, sh.max_attempts, sh.over_default);

  if (sh.errors)
    fail_msg("%d commands failed; first: %s", sh.errors, sh.first_error);
  /* Each version was reported by exactly one command. */
  for (int v = 1; v <= HOT_TOTAL; v++)
    if (sh.seen[v] != 1)
      fail_msg("version %d was reported by %d commands", v, sh.seen[v]);
  assert_int_equal(stream_version(st, HOT_STREAM), HOT_TOTAL);
  int64_t version = 0;
  counter_state s = counter_load(st, counter_decider(), HOT_STREAM, &version);
  assert_int_equal(version, HOT_TOTAL);
  assert_int_equal(s.value, HOT_TOTAL);
  assert_int_equal(s.events, HOT_TOTAL);
  assert_true(sh.retries > 0);

  pthread_barrier_destroy(&sh.start);
  pthread_mutex_destroy(&sh.lock);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Concurrent withdrawals: decisions depend on the state, so a lost update
 * would overdraw the account or break the balance chain
 * ------------------------------------------------------------------------ */

#define RACE_SCHEMA "t_cmd_withdraw_race"
#define RACE_STREAM "account-race"
enum {
  RACE_OWN = 4,
  RACE_POOLED = 4,
  RACE_THREADS = RACE_OWN + RACE_POOLED,
  RACE_CMDS = 20,
  RACE_AMOUNT = 10,
  RACE_FUNDS = 1000 /* 100 withdrawals of the 160 tried can succeed */
};

struct race_shared {
  pthread_barrier_t start;
  pthread_mutex_t lock;
  esc_store_pool *pool;
  int ok, rejected, errors;
  char first_error[800];
};

struct race_worker {
  struct race_shared *sh;
  esc_store *store;
};

static void *race_run(void *arg) {
  struct race_worker *w = arg;
  struct race_shared *sh = w->sh;
  account_cmd cmd = {ACCOUNT_WITHDRAW, NULL, 0, RACE_AMOUNT, NULL};
  pthread_barrier_wait(&sh->start);
  for (int i = 0; i < RACE_CMDS; i++) {
    esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
    esc_command_result res;
    esc_error err = ESC_ERROR_INIT;
    opts.max_attempts = 1000;
    esc_status rc =
        w->store ? esc_execute(w->store, account_decider(), RACE_STREAM, &cmd,
                               &opts, &res, &err)
                 : esc_execute_pooled(sh->pool, account_decider(), RACE_STREAM,
                                      &cmd, &opts, &res, &err);
    pthread_mutex_lock(&sh->lock);
    if (rc == ESC_OK && res.event_count == 1)
      sh->ok++;
    else if (rc == ESC_EREJECTED && res.domain_code == ACCOUNT_EFUNDS)
      sh->rejected++;
    else if (sh->errors++ == 0)
      snprintf(sh->first_error, sizeof sh->first_error,
               "rc %s (%s), domain %d %s", esc_strerror(rc), err.msg,
               res.domain_code, res.domain_msg);
    pthread_mutex_unlock(&sh->lock);
  }
  return NULL;
}

static void concurrent_withdrawals_never_overdraw(void **state) {
  (void)state;
  static struct race_shared sh;
  struct race_worker w[RACE_THREADS];
  pthread_t th[RACE_THREADS];
  memset(&sh, 0, sizeof sh);
  esc_store *st = esc_test_fresh_store(RACE_SCHEMA);
  bank_ok(st, RACE_STREAM, (account_cmd){ACCOUNT_OPEN, "race", 0, 0, NULL},
          NULL);
  bank_ok(st, RACE_STREAM,
          (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, RACE_FUNDS, NULL}, NULL);
  pthread_mutex_init(&sh.lock, NULL);
  pthread_barrier_init(&sh.start, NULL, RACE_THREADS);
  sh.pool = open_pool(RACE_SCHEMA, 2);
  for (int i = 0; i < RACE_THREADS; i++) {
    w[i].sh = &sh;
    w[i].store = i < RACE_OWN ? esc_test_open_store(RACE_SCHEMA) : NULL;
    assert_int_equal(pthread_create(&th[i], NULL, race_run, &w[i]), 0);
  }
  for (int i = 0; i < RACE_THREADS; i++) {
    pthread_join(th[i], NULL);
    esc_store_free(w[i].store);
  }
  esc_store_pool_free(sh.pool);
  if (sh.errors)
    fail_msg("%d commands failed; first: %s", sh.errors, sh.first_error);
  assert_int_equal(sh.ok, RACE_FUNDS / RACE_AMOUNT);
  assert_int_equal(sh.rejected,
                   RACE_THREADS * RACE_CMDS - RACE_FUNDS / RACE_AMOUNT);

  /* The stored chain of balances is consistent, never below zero. */
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_read_stream(st, RACE_STREAM, 0, ESC_FORWARD, 0, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 2 + RACE_FUNDS / RACE_AMOUNT);
  int64_t balance = RACE_FUNDS;
  for (size_t i = 2; i < ev.count; i++) {
    msgpack_zone zone;
    money_withdrawn_t e;
    const esc_event_type *type = NULL;
    assert_true(msgpack_zone_init(&zone, 1024));
    assert_int_equal(esc_event_decode(account_events(), &ev.items[i], &zone, &e,
                                      &type, &err),
                     ESC_OK);
    msgpack_zone_destroy(&zone);
    assert_ptr_equal(type, &money_withdrawn);
    assert_int_equal(e.amount, RACE_AMOUNT);
    assert_int_equal(e.balance_after, balance - RACE_AMOUNT);
    balance = e.balance_after;
    assert_true(balance >= 0);
  }
  esc_events_release(&ev);
  account_state s = bank_load(st, RACE_STREAM, NULL);
  assert_int_equal(s.balance, 0);
  assert_int_equal(s.withdrawals, RACE_FUNDS / RACE_AMOUNT);
  pthread_barrier_destroy(&sh.start);
  pthread_mutex_destroy(&sh.lock);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * The same command id executed again, sequentially
 * ------------------------------------------------------------------------ */

#define REPEAT_SCHEMA "t_cmd_repeat"

static void repeat_returns_first_result(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(REPEAT_SCHEMA);
  PGconn *pg = esc_test_pg_tracked();
  const char *stream = "counter-rep";
  esc_uuid x = esc_uuid_v4();

  esc_command_result first = counter_ok(st, stream, COUNTER_INCREMENT, 5, &x);
  assert_false(first.duplicate);
  assert_int_equal(first.event_count, 1);
  assert_int_equal(first.first_version, 1);
  assert_int_equal(first.version, 1);
  assert_memory_equal(first.command_id.bytes, x.bytes, 16);

  /* Right away. */
  esc_command_result again = counter_ok(st, stream, COUNTER_INCREMENT, 5, &x);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 1);
  assert_int_equal(stored_rows(pg, REPEAT_SCHEMA, stream), 1);

  /* After the stream moved on. */
  for (int i = 0; i < 3; i++)
    counter_ok(st, stream, COUNTER_INCREMENT, 10, NULL);
  assert_int_equal(stream_version(st, stream), 4);
  again = counter_ok(st, stream, COUNTER_INCREMENT, 5, &x);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 4);
  assert_int_equal(stored_rows(pg, REPEAT_SCHEMA, stream), 4);
  assert_int_equal(counter_load(st, counter_decider(), stream, NULL).value, 35);
  esc_store_free(st);
}

/* A repeat that decides other events than the first execution did (the
 * lookup path): withdrawals record balance_after, which changed. */
static void repeat_deciding_differently_returns_first_result(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(REPEAT_SCHEMA "_diff");
  PGconn *pg = esc_test_pg_tracked();
  const char *acc = "account-rep";
  esc_uuid w1 = esc_uuid_v4(), w2 = esc_uuid_v4();

  bank_ok(st, acc, (account_cmd){ACCOUNT_OPEN, "rep", 0, 0, NULL}, NULL);
  bank_ok(st, acc, (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 100, NULL}, NULL);
  esc_command_result first =
      bank_ok(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 30, NULL}, &w1);
  assert_false(first.duplicate);
  assert_int_equal(first.version, 3);
  bank_ok(st, acc, (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 50, NULL}, NULL);

  /* Now it would decide MoneyWithdrawn {30, balance_after 90}, not 70. */
  esc_command_result again =
      bank_ok(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 30, NULL}, &w1);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, acc), 4);
  assert_int_equal(stored_rows(pg, REPEAT_SCHEMA "_diff", acc), 4);
  assert_int_equal(bank_load(st, acc, NULL).balance, 120);

  /* One that would now be rejected: 100 of 120, then 100 of 20. */
  first = bank_ok(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 100, NULL},
                  &w2);
  assert_int_equal(first.version, 5);
  esc_error err = ESC_ERROR_INIT;
  esc_status rc =
      bank_exec(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 100, NULL},
                &w2, &again, &err);
  assert_int_equal(rc, ESC_OK);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(again.domain_msg[0], '\0');
  assert_int_equal(stream_version(st, acc), 5);
  assert_int_equal(bank_load(st, acc, NULL).balance, 20);

  /* A fresh id for the same withdrawal is a new command: rejected. */
  rc = bank_exec(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 100, NULL},
                 NULL, &again, &err);
  assert_int_equal(rc, ESC_EREJECTED);
  assert_int_equal(again.domain_code, ACCOUNT_EFUNDS);
  esc_store_free(st);
}

/* A counter reset repeated after the counter changed: the repeat would
 * decide nothing (counter at 0) or another Reset (at another value). */
static void repeated_reset_returns_first_result(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(REPEAT_SCHEMA "_reset");
  PGconn *pg = esc_test_pg_tracked();
  const char *stream = "counter-reset";
  esc_uuid r = esc_uuid_v4();

  counter_ok(st, stream, COUNTER_INCREMENT, 5, NULL);
  esc_command_result first = counter_ok(st, stream, COUNTER_RESET, 0, &r);
  assert_int_equal(first.event_count, 1);
  assert_int_equal(first.version, 2);
  assert_false(first.duplicate);

  /* At 0 the reset decides nothing. */
  esc_command_result again = counter_ok(st, stream, COUNTER_RESET, 0, &r);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 2);

  /* At 7 it decides another Reset: it must not reset the counter again. */
  counter_ok(st, stream, COUNTER_INCREMENT, 7, NULL);
  again = counter_ok(st, stream, COUNTER_RESET, 0, &r);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 3);
  assert_int_equal(stored_rows(pg, REPEAT_SCHEMA "_reset", stream), 3);
  counter_state s = counter_load(st, counter_decider(), stream, NULL);
  assert_int_equal(s.value, 7);
  assert_int_equal(s.events, 3);
  esc_store_free(st);
}

/* A multi-event command repeated when it would decide more, or fewer but
 * identical, events than the first execution stored. */
static void repeated_multi_event_command_returns_first_result(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(REPEAT_SCHEMA "_multi");
  PGconn *pg = esc_test_pg_tracked();
  const char *stream = "counter-fill";
  esc_uuid f = esc_uuid_v4(), g = esc_uuid_v4();

  /* 0 -> 3: three Incremented {1}, versions 1..3. */
  esc_command_result first = fill_ok(st, stream, FILL_TO, 3, &f);
  assert_int_equal(first.event_count, 3);
  assert_int_equal(first.first_version, 1);
  assert_int_equal(first.version, 3);

  /* Reset, +1: the repeat now decides two Incremented {1}: the same ids
   * and contents as the first two stored. */
  fill_ok(st, stream, FILL_RESET, 0, NULL);
  counter_ok(st, stream, COUNTER_INCREMENT, 1, NULL);
  assert_int_equal(stream_version(st, stream), 5);
  esc_command_result again = fill_ok(st, stream, FILL_TO, 3, &f);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 5);

  /* g: 1 -> 2 stores one event; after a reset the repeat decides two. */
  fill_ok(st, stream, FILL_RESET, 0, NULL);
  counter_ok(st, stream, COUNTER_INCREMENT, 1, NULL);
  first = fill_ok(st, stream, FILL_TO, 2, &g);
  assert_int_equal(first.event_count, 1);
  assert_int_equal(first.version, 8);
  fill_ok(st, stream, FILL_RESET, 0, NULL);
  again = fill_ok(st, stream, FILL_TO, 2, &g);
  assert_true(again.duplicate);
  assert_same_result(&first, &again);
  assert_int_equal(stream_version(st, stream), 9);
  assert_int_equal(stored_rows(pg, REPEAT_SCHEMA "_multi", stream), 9);
  assert_int_equal(counter_load(st, counter_decider(), stream, NULL).value, 0);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * The same command id executed by two threads at once
 * ------------------------------------------------------------------------ */

#define TWIN_SCHEMA "t_cmd_twins"
#define TWIN_COUNTER "counter-twin"
#define TWIN_FILL "counter-twinfill"
enum { TWIN_ROUNDS = 50 };

struct twin_shared {
  pthread_barrier_t go;
  esc_uuid counter_ids[TWIN_ROUNDS], fill_ids[TWIN_ROUNDS];
  esc_status counter_rc[2][TWIN_ROUNDS], fill_rc[2][TWIN_ROUNDS];
  esc_command_result counter_res[2][TWIN_ROUNDS], fill_res[2][TWIN_ROUNDS];
  char errors[2][TWIN_ROUNDS][256];
};

struct twin_worker {
  struct twin_shared *sh;
  int index;
};

/* Even rounds increment, odd ones reset (the counter is then at 1): a twin
 * that loads after the other's append decides nothing. The fill stream
 * alternates FILL_TO 3 (three events) and FILL_RESET. */
static void *twin_run(void *arg) {
  struct twin_worker *w = arg;
  struct twin_shared *sh = w->sh;
  int me = w->index;
  esc_store *st = esc_test_open_store(TWIN_SCHEMA);
  for (int r = 0; r < TWIN_ROUNDS; r++) {
    esc_error err = ESC_ERROR_INIT;
    pthread_barrier_wait(&sh->go);
    sh->counter_rc[me][r] =
        counter_exec(st, counter_decider(), TWIN_COUNTER,
                     r % 2 ? COUNTER_RESET : COUNTER_INCREMENT, 1,
                     &sh->counter_ids[r], &sh->counter_res[me][r], &err);
    if (sh->counter_rc[me][r])
      snprintf(sh->errors[me][r], sizeof sh->errors[me][r], "%s", err.msg);
    pthread_barrier_wait(&sh->go);
    sh->fill_rc[me][r] =
        fill_exec(st, TWIN_FILL, r % 2 ? FILL_RESET : FILL_TO, 3,
                  &sh->fill_ids[r], &sh->fill_res[me][r], &err);
    if (sh->fill_rc[me][r])
      snprintf(sh->errors[me][r], sizeof sh->errors[me][r], "%s", err.msg);
  }
  esc_store_free(st);
  return NULL;
}

/* Both twins' results of a round are the one set of events stored for it,
 * right after the previous round's. */
static void check_twins(const char *what, int round,
                        esc_status rc[2][TWIN_ROUNDS],
                        esc_command_result res[2][TWIN_ROUNDS],
                        char errors[2][TWIN_ROUNDS][256], size_t want_events,
                        int64_t *version) {
  for (int i = 0; i < 2; i++)
    if (rc[i][round] != ESC_OK)
      fail_msg("%s round %d twin %d: %s (%s)", what, round, i,
               esc_strerror(rc[i][round]), errors[i][round]);
  const esc_command_result *a = &res[0][round], *b = &res[1][round];
  if (a->duplicate == b->duplicate)
    fail_msg("%s round %d: duplicate %d and %d", what, round, a->duplicate,
             b->duplicate);
  if (a->event_count != want_events || b->event_count != want_events ||
      a->first_version != *version + 1 || b->first_version != *version + 1 ||
      a->version != *version + (int64_t)want_events ||
      b->version != a->version || !same_position(&a->position, &b->position))
    fail_msg("%s round %d: results differ or are off: %zu events %" PRId64
             "..%" PRId64 " vs %zu events %" PRId64 "..%" PRId64
             " (want %zu after %" PRId64 ")",
             what, round, a->event_count, a->first_version, a->version,
             b->event_count, b->first_version, b->version, want_events,
             *version);
  *version = a->version;
}

/* Each stored event's causation id is the command id of its round. */
static void check_causation(esc_store *st, const char *stream,
                            const esc_uuid *ids, const size_t *per_round) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_read_stream(st, stream, 0, ESC_FORWARD, 0, &ev, &err),
                   ESC_OK);
  size_t k = 0;
  for (int r = 0; r < TWIN_ROUNDS; r++)
    for (size_t j = 0; j < per_round[r]; j++, k++) {
      esc_metadata m;
      assert_true(k < ev.count);
      assert_int_equal(esc_metadata_decode(ev.items[k].metadata,
                                           ev.items[k].metadata_len, &m, NULL,
                                           0, &err),
                       ESC_OK);
      if (memcmp(m.causation_id.bytes, ids[r].bytes, 16) != 0)
        fail_msg("%s version %" PRId64 ": not caused by round %d's command",
                 stream, ev.items[k].stream_version, r);
    }
  assert_int_equal(ev.count, k);
  esc_events_release(&ev);
}

static void concurrent_twins_store_once(void **state) {
  (void)state;
  static struct twin_shared sh;
  struct twin_worker w[2] = {{&sh, 0}, {&sh, 1}};
  pthread_t th[2];
  memset(&sh, 0, sizeof sh);
  esc_store *st = esc_test_fresh_store(TWIN_SCHEMA);
  for (int r = 0; r < TWIN_ROUNDS; r++) {
    sh.counter_ids[r] = esc_uuid_v4();
    sh.fill_ids[r] = esc_uuid_v4();
  }
  pthread_barrier_init(&sh.go, NULL, 2);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, twin_run, &w[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&sh.go);

  int64_t cv = 0, fv = 0;
  size_t counter_per[TWIN_ROUNDS], fill_per[TWIN_ROUNDS];
  int attempts = 0;
  for (int r = 0; r < TWIN_ROUNDS; r++) {
    counter_per[r] = 1;
    fill_per[r] = r % 2 ? 1 : 3;
    check_twins("counter", r, sh.counter_rc, sh.counter_res, sh.errors, 1, &cv);
    check_twins("fill", r, sh.fill_rc, sh.fill_res, sh.errors, fill_per[r],
                &fv);
    attempts += sh.counter_res[0][r].attempts + sh.counter_res[1][r].attempts;
  }
  assert_int_equal(stream_version(st, TWIN_COUNTER), TWIN_ROUNDS);
  assert_int_equal(stream_version(st, TWIN_FILL), TWIN_ROUNDS * 2);
  check_causation(st, TWIN_COUNTER, sh.counter_ids, counter_per);
  check_causation(st, TWIN_FILL, sh.fill_ids, fill_per);
  counter_state s = counter_load(st, counter_decider(), TWIN_COUNTER, NULL);
  assert_int_equal(s.value, 0);
  assert_int_equal(s.events, TWIN_ROUNDS);
  fprintf(stderr, "twins: %d rounds, %d attempts by the counter twins\n",
          TWIN_ROUNDS, attempts);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Rejections and no-ops
 * ------------------------------------------------------------------------ */

#define REJECT_SCHEMA "t_cmd_reject"

static void rejection_and_noop_append_nothing(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(REJECT_SCHEMA);
  PGconn *pg = esc_test_pg_tracked();
  const char *stream = "counter-z";
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;

  counter_ok(st, stream, COUNTER_INCREMENT, 2, NULL);
  long long rows = stored_rows(pg, REJECT_SCHEMA, stream);
  long long all_rows =
      esc_test_query_ll(pg, "SELECT count(*) FROM " REJECT_SCHEMA ".events");
  assert_int_equal(rows, 1);

  const int64_t bad[] = {0, -3};
  for (size_t i = 0; i < 2; i++) {
    esc_status rc = counter_exec(st, counter_decider(), stream,
                                 COUNTER_INCREMENT, bad[i], NULL, &res, &err);
    assert_int_equal(rc, ESC_EREJECTED);
    assert_int_equal(err.code, ESC_EREJECTED);
    assert_int_equal(res.domain_code, COUNTER_EINVAL);
    if (!strstr(res.domain_msg, "positive"))
      fail_msg("domain message: %s", res.domain_msg);
    assert_int_equal(res.event_count, 0);
    assert_false(res.duplicate);
    assert_int_equal(stream_version(st, stream), 1);
    assert_int_equal(stored_rows(pg, REJECT_SCHEMA, stream), rows);
  }

  /* No-ops: ADD_NOTHING, and a reset of a counter at zero. */
  esc_status rc = counter_exec(st, counter_decider(), stream,
                               COUNTER_ADD_NOTHING, 0, NULL, &res, &err);
  assert_int_equal(rc, ESC_OK);
  assert_int_equal(res.event_count, 0);
  assert_false(res.duplicate);
  assert_int_equal(res.domain_code, 0);
  assert_int_equal(res.version, 1);
  assert_int_equal(res.attempts, 1);
  assert_int_equal(stream_version(st, stream), 1);

  rc = counter_exec(st, counter_decider(), "counter-new", COUNTER_RESET, 0,
                    NULL, &res, &err);
  assert_int_equal(rc, ESC_OK);
  assert_int_equal(res.event_count, 0);
  assert_int_equal(res.version, 0);
  assert_int_equal(stream_version(st, "counter-new"), 0);
  assert_int_equal(
      esc_test_query_ll(pg, "SELECT count(*) FROM " REJECT_SCHEMA ".events"),
      all_rows);
  assert_int_equal(
      esc_test_query_ll(pg, "SELECT count(*) FROM " REJECT_SCHEMA ".streams"),
      1);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------ */

#define META_SCHEMA "t_cmd_meta"

static void check_metadata(esc_store *st, const char *stream,
                           int64_t first_version, size_t n,
                           const esc_uuid *correlation, const esc_uuid *cause,
                           const char *actor, int64_t t0, int64_t t1) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_read_stream(st, stream, first_version, ESC_FORWARD, n, &ev, &err),
      ESC_OK);
  assert_int_equal(ev.count, n);
  for (size_t i = 0; i < n; i++) {
    esc_metadata m;
    char actor_buf[64];
    assert_non_null(ev.items[i].metadata);
    assert_int_equal(esc_metadata_decode(ev.items[i].metadata,
                                         ev.items[i].metadata_len, &m,
                                         actor_buf, sizeof actor_buf, &err),
                     ESC_OK);
    assert_memory_equal(m.correlation_id.bytes, correlation->bytes, 16);
    assert_memory_equal(m.causation_id.bytes, cause->bytes, 16);
    if (actor) {
      assert_non_null(m.actor);
      assert_string_equal(m.actor, actor);
    } else {
      assert_null(m.actor);
    }
    /* Taken during the call (a little slack for clock granularity). */
    if (m.time_us < t0 - 1000 || m.time_us > t1 + 1000)
      fail_msg("time %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
               m.time_us, t0, t1);
    /* and close to the time the database recorded. */
    int64_t skew = m.time_us - ev.items[i].recorded_at_us;
    if (skew < -5000000 || skew > 5000000)
      fail_msg("time %" PRId64 " is %" PRId64 " us off recorded_at", m.time_us,
               skew);
  }
  esc_events_release(&ev);
}

static void events_carry_metadata(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(META_SCHEMA);
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  counter_cmd inc = {COUNTER_INCREMENT, 4};

  /* A correlation id and an actor given. */
  esc_command_options opts = ESC_COMMAND_OPTIONS_INIT;
  opts.command_id = esc_uuid_v4();
  opts.correlation_id = esc_uuid_v4();
  opts.actor = "alice@example";
  int64_t t0 = esc_now_us();
  assert_int_equal(
      esc_execute(st, counter_decider(), "counter-m", &inc, &opts, &res, &err),
      ESC_OK);
  int64_t t1 = esc_now_us();
  check_metadata(st, "counter-m", res.first_version, 1, &opts.correlation_id,
                 &opts.command_id, "alice@example", t0, t1);

  /* None given: correlation = command id, no actor. */
  esc_command_options bare = ESC_COMMAND_OPTIONS_INIT;
  bare.command_id = esc_uuid_v4();
  t0 = esc_now_us();
  assert_int_equal(
      esc_execute(st, counter_decider(), "counter-m", &inc, &bare, &res, &err),
      ESC_OK);
  t1 = esc_now_us();
  check_metadata(st, "counter-m", res.first_version, 1, &bare.command_id,
                 &bare.command_id, NULL, t0, t1);

  /* No options at all: a generated command id, reported in the result. */
  t0 = esc_now_us();
  assert_int_equal(
      esc_execute(st, counter_decider(), "counter-m", &inc, NULL, &res, &err),
      ESC_OK);
  t1 = esc_now_us();
  assert_false(esc_uuid_is_nil(&res.command_id));
  esc_uuid generated = res.command_id;
  check_metadata(st, "counter-m", res.first_version, 1, &generated, &generated,
                 NULL, t0, t1);

  /* Every event of a multi-event command. */
  fill_cmd fill = {FILL_TO, 3};
  opts.command_id = esc_uuid_v4();
  opts.actor = "bob";
  t0 = esc_now_us();
  assert_int_equal(
      esc_execute(st, fill_decider(), "counter-mf", &fill, &opts, &res, &err),
      ESC_OK);
  t1 = esc_now_us();
  assert_int_equal(res.event_count, 3);
  check_metadata(st, "counter-mf", res.first_version, 3, &opts.correlation_id,
                 &opts.command_id, "bob", t0, t1);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * A command id reused on another stream; the wrong category
 * ------------------------------------------------------------------------ */

#define IDS_SCHEMA "t_cmd_ids"

static void command_id_reused_on_another_stream(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(IDS_SCHEMA);
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_uuid x = esc_uuid_v4();
  counter_ok(st, "counter-1", COUNTER_INCREMENT, 1, &x);

  /* The same command on another stream, and another command under it. */
  const counter_cmd_kind kinds[] = {COUNTER_INCREMENT, COUNTER_ADD_NOTHING};
  for (size_t i = 0; i < 2; i++) {
    memset(&err, 0, sizeof err);
    esc_status rc = counter_exec(st, counter_decider(), "counter-2", kinds[i],
                                 1, &x, &res, &err);
    assert_int_equal(rc, ESC_EDUPLICATE);
    assert_int_equal(err.code, ESC_EDUPLICATE);
    if (!strstr(err.msg, "counter-1") || !strstr(err.msg, "counter-2"))
      fail_msg("the message should name both streams: %s", err.msg);
    assert_int_equal(stream_version(st, "counter-2"), 0);
  }
  assert_int_equal(stream_version(st, "counter-1"), 1);
  esc_store_free(st);
}

static void wrong_category_is_invalid(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(IDS_SCHEMA "_cat");
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  /* ("counter" alone is a stream of category "counter": the category is
   * what precedes the first '-', the whole id when there is none.) */
  const char *bad[] = {"account-1", "counterx-1", "counters", "counter 1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memset(&err, 0, sizeof err);
    esc_status rc = counter_exec(st, counter_decider(), bad[i],
                                 COUNTER_INCREMENT, 1, NULL, &res, &err);
    if (rc != ESC_EINVAL)
      fail_msg("%s: %s (%s)", bad[i], esc_strerror(rc), err.msg);
    assert_int_equal(err.code, ESC_EINVAL);
    assert_int_equal(res.event_count, 0);
  }
  assert_non_null(strstr(err.msg, "counter 1"));
  esc_status rc = counter_exec(st, counter_decider(), "account-1",
                               COUNTER_INCREMENT, 1, NULL, &res, &err);
  assert_int_equal(rc, ESC_EINVAL);
  if (!strstr(err.msg, "account-1") || !strstr(err.msg, "counter"))
    fail_msg("the message should name stream and category: %s", err.msg);
  assert_int_equal(stream_version(st, "account-1"), 0);
  assert_int_equal(stream_version(st, "counterx-1"), 0);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * The bank decider end to end, and upcasting of stored v1 deposits
 * ------------------------------------------------------------------------ */

#define BANK_SCHEMA "t_cmd_bank"

static void bank_end_to_end(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(BANK_SCHEMA);
  const char *acc = "account-1";
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;

  bank_ok(st, acc, (account_cmd){ACCOUNT_OPEN, "ann", 0, 0, NULL}, NULL);
  bank_ok(st, acc, (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 100, NULL}, NULL);
  res = bank_ok(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 30, NULL},
                NULL);
  assert_int_equal(res.version, 3);

  esc_status rc =
      bank_exec(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 71, NULL},
                NULL, &res, &err);
  assert_int_equal(rc, ESC_EREJECTED);
  assert_int_equal(res.domain_code, ACCOUNT_EFUNDS);
  if (!strstr(res.domain_msg, "insufficient funds"))
    fail_msg("domain message: %s", res.domain_msg);
  assert_int_equal(stream_version(st, acc), 3);

  /* Opening twice is rejected too; a deposit on an unopened account. */
  rc = bank_exec(st, acc, (account_cmd){ACCOUNT_OPEN, "bob", 0, 0, NULL}, NULL,
                 &res, &err);
  assert_int_equal(rc, ESC_EREJECTED);
  assert_int_equal(res.domain_code, ACCOUNT_EOPEN);
  rc = bank_exec(st, "account-none",
                 (account_cmd){ACCOUNT_DEPOSIT, NULL, 0, 5, NULL}, NULL, &res,
                 &err);
  assert_int_equal(rc, ESC_EREJECTED);
  assert_int_equal(res.domain_code, ACCOUNT_ENOTOPEN);

  int64_t version = 0;
  account_state s = bank_load(st, acc, &version);
  assert_int_equal(version, 3);
  assert_true(s.opened);
  assert_string_equal(s.owner, "ann");
  assert_int_equal(s.balance, 70);
  res = bank_ok(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 70, NULL},
                NULL);
  res = bank_ok(st, acc, (account_cmd){ACCOUNT_CLOSE, NULL, 0, 0, NULL}, NULL);
  assert_int_equal(res.version, 5);
  assert_true(bank_load(st, acc, NULL).closed);
  esc_store_free(st);
}

static void bank_upcasts_stored_v1_deposits(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(BANK_SCHEMA "_v1");
  const char *acc = "account-old";
  esc_error err = ESC_ERROR_INIT;
  esc_append_result ar;

  /* AccountOpened, encoded the current way. */
  account_opened_t opened;
  memset(&opened, 0, sizeof opened);
  snprintf(opened.owner, sizeof opened.owner, "olga");
  opened.overdraft_limit = 0;
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(
      esc_event_encode(&account_opened, &opened, &data, &len, &err), ESC_OK);
  esc_event_data ev = {esc_uuid_v4(), "AccountOpened", 1, data, len, NULL, 0};
  assert_int_equal(esc_append(st, acc, ESC_EXPECT_NO_STREAM, &ev, 1, &ar, &err),
                   ESC_OK);
  free(data);

  /* Deposits as a v1 writer stored them: {"amount": N}, schema 1. */
  const int amounts[] = {40, 25, 35};
  void *raw[3];
  esc_event_data deposits[3];
  for (int i = 0; i < 3; i++) {
    char json[64];
    snprintf(json, sizeof json, "{\"amount\": %d}", amounts[i]);
    assert_int_equal(esc_json_to_msgpack(json, &raw[i], &len, &err), ESC_OK);
    deposits[i] = (esc_event_data){
        esc_uuid_v4(), "MoneyDeposited", 1, raw[i], len, NULL, 0};
  }
  assert_int_equal(esc_append(st, acc, 1, deposits, 3, &ar, &err), ESC_OK);
  for (int i = 0; i < 3; i++)
    free(raw[i]);
  assert_int_equal(ar.last_version, 4);

  int64_t version = 0;
  account_state s = bank_load(st, acc, &version);
  assert_int_equal(version, 4);
  assert_true(s.opened);
  assert_string_equal(s.owner, "olga");
  assert_int_equal(s.balance, 100);
  assert_int_equal(s.deposits, 3);
  assert_string_equal(s.currency, "EUR");

  /* A withdrawal decided on that state. */
  esc_command_result res = bank_ok(
      st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 60, NULL}, NULL);
  assert_int_equal(res.version, 5);
  esc_events got = ESC_EVENTS_INIT;
  assert_int_equal(esc_read_stream(st, acc, 5, ESC_FORWARD, 1, &got, &err),
                   ESC_OK);
  msgpack_zone zone;
  money_withdrawn_t w;
  const esc_event_type *type = NULL;
  assert_true(msgpack_zone_init(&zone, 1024));
  assert_int_equal(
      esc_event_decode(account_events(), &got.items[0], &zone, &w, &type, &err),
      ESC_OK);
  msgpack_zone_destroy(&zone);
  esc_events_release(&got);
  assert_ptr_equal(type, &money_withdrawn);
  assert_int_equal(w.amount, 60);
  assert_int_equal(w.balance_after, 40);

  esc_status rc =
      bank_exec(st, acc, (account_cmd){ACCOUNT_WITHDRAW, NULL, 0, 41, NULL},
                NULL, &res, &err);
  assert_int_equal(rc, ESC_EREJECTED);
  assert_int_equal(res.domain_code, ACCOUNT_EFUNDS);
  assert_int_equal(bank_load(st, acc, NULL).balance, 40);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(concurrent_increments_lose_nothing),
      cmocka_unit_test(concurrent_withdrawals_never_overdraw),
      cmocka_unit_test_teardown(repeat_returns_first_result,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(
          repeat_deciding_differently_returns_first_result,
          esc_test_close_tracked),
      cmocka_unit_test_teardown(repeated_reset_returns_first_result,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(
          repeated_multi_event_command_returns_first_result,
          esc_test_close_tracked),
      cmocka_unit_test(concurrent_twins_store_once),
      cmocka_unit_test_teardown(rejection_and_noop_append_nothing,
                                esc_test_close_tracked),
      cmocka_unit_test(events_carry_metadata),
      cmocka_unit_test(command_id_reused_on_another_stream),
      cmocka_unit_test(wrong_category_is_invalid),
      cmocka_unit_test(bank_end_to_end),
      cmocka_unit_test(bank_upcasts_stored_v1_deposits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

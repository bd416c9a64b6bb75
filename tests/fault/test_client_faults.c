/*
 * Clients survive faults (guarantee 11), in the library: every wait on the
 * server is bounded, a broken connection is always a connection error
 * whatever the server said on its way out, and an append whose reply was
 * lost is reported as unknown — never as "not appended" — while one that
 * never left is never reported as unknown. Commands settle an unknown
 * append themselves when they can, and say it is unknown when not.
 *
 * Faults come from a private PostgreSQL cluster (the shared one is never
 * disturbed), a TCP proxy in front of it (stalls, resets, refusals) and
 * sessions terminated while they wait for a lock (pg_terminate_backend
 * sends the same FATAL 57P01 a fast shutdown does). Each blocking call
 * runs in a thread with a watchdog, so a client that would block forever
 * fails the test instead of hanging it.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "counter.h"
#include "pgcluster.h"
#include "store_int.h"
#include "tcpproxy.h"
#include "testenv.h"

#define SCHEMA "t_client_faults"
#define APP "esc-t-client-faults"
#define WATCHDOG_MS 15000

static esc_test_pg_cluster *cluster;
static esc_test_proxy *proxy;
static char proxy_url[96];
static PGconn *admin;  /* looks at and terminates sessions */
static PGconn *locker; /* holds table locks */

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static esc_store *open_at(const char *url, esc_error *err) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.app_name = APP;
  return esc_store_open(url, &o, err);
}

static esc_store *open_ok(const char *url) {
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = open_at(url, &err);
  if (!st)
    fail_msg("open %s: %s", url, err.msg);
  return st;
}

static const char *direct_url(void) {
  return esc_test_pg_cluster_url(cluster);
}

/* The stores below read ESC_PG_TIMEOUT when they open. */
static esc_store *open_with_timeout(const char *url, const char *seconds) {
  setenv("ESC_PG_TIMEOUT", seconds, 1);
  esc_store *st = open_ok(url);
  unsetenv("ESC_PG_TIMEOUT");
  return st;
}

static unsigned char payload[32];

static esc_event_data event(esc_uuid id) {
  size_t len = esc_test_payload(payload, 7);
  esc_event_data ev = {id, "Happened", 1, payload, len, NULL, 0};
  return ev;
}

static void append_ok(esc_store *st, const char *stream, esc_uuid id) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_data ev = event(id);
  esc_append_result r;
  if (esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, &r, &err) != ESC_OK)
    fail_msg("append to %s: %s", stream, err.msg);
}

/* How many events of stream carry id (directly, not through esc). */
static long long copies(const char *stream, esc_uuid id) {
  char sql[256], text[37];
  esc_uuid_format(&id, text);
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " SCHEMA ".events WHERE stream_id = '%s'"
           " AND event_id = '%s'",
           stream, text);
  return esc_test_query_ll(admin, sql);
}

static void expect_text(const char *msg, const char *needle) {
  if (!strstr(msg, needle))
    fail_msg("message \"%s\" lacks \"%s\"", msg, needle);
}

static void expect_no_text(const char *msg, const char *needle) {
  if (strstr(msg, needle))
    fail_msg("message \"%s\" has \"%s\"", msg, needle);
}

/* What a connection failure message must never be: libpq's raw lines, a
 * hint at migrations. */
static void expect_project_words(const char *msg) {
  expect_no_text(msg, "FATAL");
  expect_no_text(msg, "migrated");
  expect_no_text(msg, "This probably means");
}

/* ------------------------------------------------------------------------
 * A call in a thread, with a watchdog
 * ------------------------------------------------------------------------ */

typedef struct job job;
struct job {
  esc_status (*run)(job *j);
  esc_store *st;
  const char *stream;
  esc_uuid id;
  esc_append_request reqs[2];
  esc_command_options cmd_opts;
  esc_command_result cmd_result;
  esc_status rc;
  esc_error err;
  long long ms;
  atomic_bool done;
  pthread_t thread;
};

static void *job_main(void *arg) {
  job *j = arg;
  long long t0 = esc_test_now_ms();
  j->rc = j->run(j);
  j->ms = esc_test_now_ms() - t0;
  atomic_store(&j->done, true);
  return NULL;
}

static void job_start(job *j) {
  esc_error clean = ESC_ERROR_INIT;
  j->err = clean;
  atomic_store(&j->done, false);
  assert_int_equal(pthread_create(&j->thread, NULL, job_main, j), 0);
}

/* Frees a client stuck on the proxy or on a lock, so the thread ends. */
static void unblock_everyone(void) {
  esc_test_proxy_set_mode(proxy, ESC_PROXY_RESET);
  esc_test_exec(admin, "SELECT pg_terminate_backend(pid) FROM"
                       " pg_stat_activity WHERE application_name = '" APP
                       "'");
}

/* Waits for the job; a job still blocked after WATCHDOG_MS fails the test
 * (the defect: a wait without a bound). */
static void job_join(job *j) {
  long long deadline = esc_test_now_ms() + WATCHDOG_MS;
  while (!atomic_load(&j->done) && esc_test_now_ms() < deadline)
    esc_test_sleep_ms(10);
  bool in_time = atomic_load(&j->done);
  if (!in_time)
    unblock_everyone();
  pthread_join(j->thread, NULL);
  if (!in_time)
    fail_msg("the call was still blocked after %d ms", WATCHDOG_MS);
}

static esc_status run_read(job *j) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_status rc =
      esc_read_stream(j->st, j->stream, 0, ESC_FORWARD, 10, &ev, &j->err);
  esc_events_release(&ev);
  return rc;
}

static esc_status run_append(job *j) {
  esc_event_data ev = event(j->id);
  esc_append_result r;
  return esc_append(j->st, j->stream, ESC_EXPECT_ANY, &ev, 1, &r, &j->err);
}

static esc_status run_append_many(job *j) {
  return esc_append_many(j->st, j->reqs, 2, &j->err);
}

static esc_status run_execute(job *j) {
  counter_cmd cmd = {COUNTER_INCREMENT, 1};
  return esc_execute(j->st, counter_decider(), j->stream, &cmd, &j->cmd_opts,
                     &j->cmd_result, &j->err);
}

/* ------------------------------------------------------------------------
 * Connection parameters: libpq's, with esc's defaults only where none
 * ------------------------------------------------------------------------ */

static char *conn_param(esc_store *st, const char *key) {
  PQconninfoOption *opts = PQconninfo(st->conn);
  char *v = NULL;
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (strcmp(o->keyword, key) == 0 && o->val)
      v = strdup(o->val);
  PQconninfoFree(opts);
  return v;
}

static void expect_param(esc_store *st, const char *key, const char *want) {
  char *v = conn_param(st, key);
  if (!v || strcmp(v, want) != 0)
    fail_msg("%s is %s, not %s", key, v ? v : "(unset)", want);
  free(v);
}

static void expect_statement_timeout(esc_store *st, const char *want) {
  char *v = esc_test_query_text(st->conn, "SHOW statement_timeout");
  if (!v || strcmp(v, want) != 0)
    fail_msg("statement_timeout is %s, not %s", v ? v : "NULL", want);
  free(v);
}

static esc_store *open_with(const char *query, const esc_store_options *o) {
  char url[256];
  esc_error err = ESC_ERROR_INIT;
  snprintf(url, sizeof url, "%s%s", direct_url(), query);
  esc_store *st = esc_store_open(url, o, &err);
  if (!st)
    fail_msg("open %s: %s", url, err.msg);
  return st;
}

static void esc_defaults_apply_only_where_nothing_else_sets_one(void **s) {
  (void)s;
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SCHEMA;

  esc_store *st = open_with("", &o); /* esc's defaults */
  expect_param(st, "connect_timeout", "10");
  expect_param(st, "keepalives_idle", "10");
  expect_param(st, "keepalives_interval", "5");
  expect_param(st, "keepalives_count", "3");
  expect_param(st, "tcp_user_timeout", "30000");
  expect_statement_timeout(st, "30s");
  esc_store_free(st);

  st = open_with("?connect_timeout=3&keepalives_idle=7&tcp_user_timeout=9000",
                 &o); /* the URL's */
  expect_param(st, "connect_timeout", "3");
  expect_param(st, "keepalives_idle", "7");
  expect_param(st, "tcp_user_timeout", "9000");
  esc_store_free(st);

  setenv("PGCONNECT_TIMEOUT", "4", 1); /* the environment's */
  st = open_with("", &o);
  expect_param(st, "connect_timeout", "4");
  esc_store_free(st);
  unsetenv("PGCONNECT_TIMEOUT");

  o.connect_timeout_s = 5; /* the program's, over the URL's */
  o.timeout_ms = 2500;
  st = open_with("?connect_timeout=3", &o);
  expect_param(st, "connect_timeout", "5");
  expect_statement_timeout(st, "2500ms");
  esc_store_free(st);

  o.connect_timeout_s = 0; /* a server timeout the URL sets is kept */
  o.timeout_ms = 0;
  st = open_with("?options=-c%20statement_timeout%3D7s", &o);
  expect_statement_timeout(st, "7s");
  esc_store_free(st);

  setenv("ESC_PG_TIMEOUT", "0", 1); /* no bound at all */
  st = open_with("", &o);
  expect_statement_timeout(st, "0");
  esc_store_free(st);
  setenv("ESC_PG_TIMEOUT", "soon", 1);
  esc_error err = ESC_ERROR_INIT;
  assert_null(esc_store_open(direct_url(), &o, &err));
  assert_int_equal(err.code, ESC_EINVAL);
  expect_text(err.msg, "ESC_PG_TIMEOUT");
  unsetenv("ESC_PG_TIMEOUT");
}

/* The URL's connect_timeout (and PGCONNECT_TIMEOUT) bound the connect: a
 * server that accepts but never answers (a stalled proxy). */
static void a_connect_timeout_in_the_url_is_honoured(void **s) {
  (void)s;
  char url[160];
  esc_error err = ESC_ERROR_INIT;
  esc_test_proxy_set_mode(proxy, ESC_PROXY_STALL);
  snprintf(url, sizeof url, "%s?connect_timeout=2", proxy_url);
  long long t0 = esc_test_now_ms();
  esc_store *st = open_at(url, &err);
  long long ms = esc_test_now_ms() - t0;
  esc_store_free(st);
  assert_null(st);
  assert_int_equal(err.code, ESC_ECONN);
  expect_project_words(err.msg);
  if (ms < 1500 || ms > 5000)
    fail_msg("connect_timeout=2 in the URL: gave up after %lld ms", ms);

  setenv("PGCONNECT_TIMEOUT", "2", 1);
  t0 = esc_test_now_ms();
  st = open_at(proxy_url, &err);
  ms = esc_test_now_ms() - t0;
  unsetenv("PGCONNECT_TIMEOUT");
  esc_store_free(st);
  assert_null(st);
  if (ms < 1500 || ms > 5000)
    fail_msg("PGCONNECT_TIMEOUT=2: gave up after %lld ms", ms);
}

/* ------------------------------------------------------------------------
 * Stalls: a server that stops answering mid-session
 * ------------------------------------------------------------------------ */

static void a_stalled_read_times_out(void **s) {
  (void)s;
  job j = {.run = run_read, .stream = "stall-1"};
  j.st = open_with_timeout(proxy_url, "1");
  append_ok(j.st, "stall-1", esc_uuid_v4());
  esc_test_proxy_set_mode(proxy, ESC_PROXY_STALL);
  job_start(&j);
  job_join(&j);
  assert_int_equal(j.rc, ESC_ETIMEDOUT);
  expect_text(j.err.msg, "no reply from PostgreSQL within 1 s");
  expect_project_words(j.err.msg);
  if (j.ms > 5000)
    fail_msg("a 1 s timeout took %lld ms", j.ms);

  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS); /* and it reconnects */
  j.rc = run_read(&j);
  assert_int_equal(j.rc, ESC_OK);
  esc_store_free(j.st);
}

/* The append was sent: its fate is unknown, and the same id settles it. */
static void a_stalled_append_is_unknown(void **s) {
  (void)s;
  job j = {.run = run_append, .stream = "stall-2", .id = esc_uuid_v4()};
  j.st = open_with_timeout(proxy_url, "1");
  append_ok(j.st, j.stream, esc_uuid_v4()); /* prepared, connected */
  esc_test_proxy_set_mode(proxy, ESC_PROXY_STALL);
  job_start(&j);
  job_join(&j);
  assert_int_equal(j.rc, ESC_EUNKNOWN);
  expect_text(j.err.msg, "may have been applied");
  expect_project_words(j.err.msg);

  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  j.rc = run_append(&j);
  assert_int_equal(j.rc, ESC_OK);
  assert_int_equal(copies(j.stream, j.id), 1);
  esc_store_free(j.st);
}

/* ------------------------------------------------------------------------
 * Sessions ended by the server (what a fast shutdown does to each)
 * ------------------------------------------------------------------------ */

/* Starts j, waits until its session waits for the lock, terminates it
 * and lets the lock go (so a retry inside the call can go on). */
static void terminate_while_waiting(job *j) {
  job_start(j);
  esc_test_terminate(admin, esc_test_lock_waiter(admin, APP, 10000));
  esc_test_exec(locker, "ROLLBACK");
  job_join(j);
}

static void a_terminated_read_is_a_connection_error(void **s) {
  (void)s;
  job j = {.run = run_read, .stream = "term-1"};
  j.st = open_ok(direct_url());
  append_ok(j.st, j.stream, esc_uuid_v4());
  assert_int_equal(run_read(&j), ESC_OK); /* held while it executes */
  esc_test_hold_lock(locker, SCHEMA, "events", "ACCESS EXCLUSIVE");
  terminate_while_waiting(&j);
  assert_int_equal(j.rc, ESC_ECONN);
  expect_text(j.err.msg, "read term-1");
  expect_text(j.err.msg, "57P01");
  expect_project_words(j.err.msg);
  assert_int_equal(run_read(&j), ESC_OK); /* reconnects */
  esc_store_free(j.st);

  /* The same while the statement is being prepared: no migration hint. */
  j.st = open_ok(direct_url());
  esc_test_hold_lock(locker, SCHEMA, "events", "ACCESS EXCLUSIVE");
  terminate_while_waiting(&j);
  assert_int_equal(j.rc, ESC_ECONN);
  expect_project_words(j.err.msg);
  esc_store_free(j.st);
}

static void a_terminated_append_is_unknown_or_not_sent(void **s) {
  (void)s;
  job j = {.run = run_append, .stream = "term-2", .id = esc_uuid_v4()};
  j.st = open_ok(direct_url());
  append_ok(j.st, j.stream, esc_uuid_v4());
  esc_test_hold_stream(locker, SCHEMA, j.stream);
  terminate_while_waiting(&j);
  assert_int_equal(j.rc, ESC_EUNKNOWN);
  expect_text(j.err.msg, "append to term-2");
  expect_project_words(j.err.msg);
  assert_int_equal(run_append(&j), ESC_OK); /* the same id settles it */
  assert_int_equal(copies(j.stream, j.id), 1);
  esc_store_free(j.st);

  /* Lost while preparing its statement: the append itself never left.
   * (Preparing a call of append_fast1 locks no table, so the stall is the
   * proxy's, not a lock's.) */
  j.st = open_with_timeout(proxy_url, "1");
  j.id = esc_uuid_v4();
  esc_test_proxy_set_mode(proxy, ESC_PROXY_STALL);
  job_start(&j);
  job_join(&j);
  assert_int_equal(j.rc, ESC_ETIMEDOUT);
  expect_text(j.err.msg, "not sent");
  expect_project_words(j.err.msg);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  assert_int_equal(copies(j.stream, j.id), 0);
  esc_store_free(j.st);
}

/* A session the server ended while the store sat idle (what a restart
 * does to every client): the next call notices before sending, connects
 * again and just works; an append is neither lost nor "unknown". */
static void an_idle_session_ended_by_the_server_is_replaced(void **s) {
  (void)s;
  job j = {.run = run_append, .stream = "idle-1", .id = esc_uuid_v4()};
  j.st = open_ok(direct_url());
  append_ok(j.st, j.stream, esc_uuid_v4());
  int pid = PQbackendPID(j.st->conn);
  esc_test_terminate(admin, pid);
  esc_test_sleep_ms(100); /* the server's goodbye reaches the socket */
  if (run_append(&j) != ESC_OK)
    fail_msg("append after an idle termination: %s", j.err.msg);
  assert_int_not_equal(PQbackendPID(j.st->conn), pid);
  assert_int_equal(copies(j.stream, j.id), 1);
  esc_test_terminate(admin, PQbackendPID(j.st->conn));
  esc_test_sleep_ms(100);
  assert_int_equal(run_read(&j), ESC_OK);
  esc_store_free(j.st);
}

static void fill_requests(job *j, esc_event_data *ev) {
  static const char *const streams[] = {"many-1", "many-2"};
  for (int i = 0; i < 2; i++) {
    memset(&j->reqs[i], 0, sizeof j->reqs[i]);
    ev[i] = event(esc_uuid_v4());
    j->reqs[i].stream_id = streams[i];
    j->reqs[i].expected = ESC_EXPECT_ANY;
    j->reqs[i].events = &ev[i];
    j->reqs[i].n = 1;
  }
}

static void append_many_tells_each_request_what_became_of_it(void **s) {
  (void)s;
  esc_event_data ev[2];
  job j = {.run = run_append_many};
  j.st = open_ok(direct_url());
  fill_requests(&j, ev);
  assert_int_equal(run_append_many(&j), ESC_OK); /* prepared */

  fill_requests(&j, ev);
  esc_test_hold_stream(locker, SCHEMA, "many-1");
  terminate_while_waiting(&j);
  assert_int_equal(j.rc, ESC_EUNKNOWN);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(j.reqs[i].status, ESC_EUNKNOWN);
    expect_project_words(j.reqs[i].error.msg);
  }
  esc_store_free(j.st);

  /* A server that is gone before the call: nothing is sent, and says so. */
  j.st = open_ok(proxy_url);
  fill_requests(&j, ev);
  assert_int_equal(run_append_many(&j), ESC_OK);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_RESET);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_REFUSE);
  fill_requests(&j, ev);
  assert_int_equal(run_append_many(&j), ESC_ECONN);
  expect_project_words(j.err.msg);
  for (int i = 0; i < 2; i++)
    assert_int_not_equal(j.reqs[i].status, ESC_EUNKNOWN);
  esc_store_free(j.st);
}

/* ------------------------------------------------------------------------
 * Commands: an unknown append is retried with the same ids
 * ------------------------------------------------------------------------ */

static void execute_settles_an_unknown_append(void **s) {
  (void)s;
  job j = {.run = run_execute, .stream = "counter-settle"};
  j.st = open_ok(direct_url());
  assert_int_equal(run_execute(&j), ESC_OK); /* prepared */
  j.cmd_opts.command_id = esc_uuid_v4();
  esc_test_hold_stream(locker, SCHEMA, j.stream);
  terminate_while_waiting(&j);
  if (j.rc != ESC_OK)
    fail_msg("execute: %s (%s)", j.err.msg, esc_strerror(j.rc));
  assert_true(j.cmd_result.attempts >= 2);
  assert_int_equal(j.cmd_result.version, 2);
  esc_store_free(j.st);
}

static void execute_says_unknown_when_it_cannot_settle(void **s) {
  (void)s;
  job j = {.run = run_execute, .stream = "counter-unknown"};
  j.st = open_ok(proxy_url);
  assert_int_equal(run_execute(&j), ESC_OK);
  j.cmd_opts.command_id = esc_uuid_v4();
  esc_test_hold_stream(locker, SCHEMA, j.stream);
  job_start(&j);
  esc_test_lock_waiter(admin, APP, 10000);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_RESET); /* lost, and gone */
  esc_test_proxy_set_mode(proxy, ESC_PROXY_REFUSE);
  job_join(&j);
  esc_test_exec(locker, "ROLLBACK");
  assert_int_equal(j.rc, ESC_EUNKNOWN);
  char id[37];
  esc_uuid_format(&j.cmd_opts.command_id, id);
  expect_text(j.err.msg, id);
  expect_project_words(j.err.msg);

  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS); /* settle: run it again */
  assert_int_equal(run_execute(&j), ESC_OK);
  assert_int_equal(j.cmd_result.version, 2);
  esc_store_free(j.st);
}

/* ------------------------------------------------------------------------ */

static int group_setup(void **state) {
  (void)state;
  char why[160];
  cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  proxy = esc_test_proxy_start(esc_test_pg_cluster_port(cluster), why,
                               sizeof why);
  if (!proxy)
    fail_msg("%s", why);
  snprintf(proxy_url, sizeof proxy_url,
           "postgresql://esc@127.0.0.1:%d/postgres",
           esc_test_proxy_port(proxy));
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = open_ok(direct_url());
  if (esc_store_migrate(st, NULL, &err) != ESC_OK)
    fail_msg("migrate: %s", err.msg);
  esc_store_free(st);
  admin = PQconnectdb(direct_url());
  locker = PQconnectdb(direct_url());
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  assert_int_equal(PQstatus(locker), CONNECTION_OK);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  PQfinish(admin);
  PQfinish(locker);
  esc_test_proxy_stop(proxy);
  esc_test_pg_cluster_free(cluster);
  return 0;
}

/* Whatever a failed test left behind: the proxy passes, no lock is held. */
static int reset(void **state) {
  (void)state;
  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  if (PQtransactionStatus(locker) != PQTRANS_IDLE)
    esc_test_exec(locker, "ROLLBACK");
  unsetenv("ESC_PG_TIMEOUT");
  unsetenv("PGCONNECT_TIMEOUT");
  return 0;
}

#define CASE(f) cmocka_unit_test_setup_teardown(f, reset, reset)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(esc_defaults_apply_only_where_nothing_else_sets_one),
      CASE(a_connect_timeout_in_the_url_is_honoured),
      CASE(a_stalled_read_times_out),
      CASE(a_stalled_append_is_unknown),
      CASE(a_terminated_read_is_a_connection_error),
      CASE(a_terminated_append_is_unknown_or_not_sent),
      CASE(an_idle_session_ended_by_the_server_is_replaced),
      CASE(append_many_tells_each_request_what_became_of_it),
      CASE(execute_settles_an_unknown_append),
      CASE(execute_says_unknown_when_it_cannot_settle),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

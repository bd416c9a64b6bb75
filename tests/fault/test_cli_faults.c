/*
 * Clients survive faults (guarantee 11), through the esc CLI as an
 * operator meets them: fast and immediate shutdowns of PostgreSQL while a
 * command waits, `tail --follow` across a restart and past its retry
 * limit, the --pg-timeout flag and ESC_PG_TIMEOUT, an append whose reply
 * is lost (exit 5, "outcome unknown", how to settle it) or that was never
 * sent, and messages that never show a password or libpq's raw lines.
 *
 * The server is a private cluster (the shared one is never stopped), with
 * a TCP proxy in front of it for stalls and refusals.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgcluster.h"
#include "tcpproxy.h"
#include "testenv.h"

#define SCHEMA "t_cli_faults"
#define MAX_ARGS 24

static esc_test_pg_cluster *cluster;
static esc_test_proxy *proxy;
static char proxy_url[96], log_path[160];
static PGconn *admin, *locker;

/* ------------------------------------------------------------------------
 * Running esc
 * ------------------------------------------------------------------------ */

/* Starts esc with the arguments (NULL-terminated) after --schema, stdout
 * and stderr into log_path (emptied first). env as for esc_test_spawn. */
static pid_t esc_start(const char *const *env, const char *first, ...) {
  const char *argv[MAX_ARGS] = {"esc", "--schema", SCHEMA};
  int n = 3;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && n < MAX_ARGS - 1; a = va_arg(ap, char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  fclose(fopen(log_path, "w"));
  return esc_test_spawn(ESC_CLI_PATH, argv, env, log_path);
}

/* The exit code of a started esc (fails the test after timeout_ms). */
static int esc_exit(pid_t pid, int timeout_ms) {
  int status = 0;
  if (!esc_test_wait_child(pid, timeout_ms, &status)) {
    esc_test_kill_child(pid);
    esc_test_print_tail(log_path, 20);
    fail_msg("esc did not exit within %d ms", timeout_ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* What esc wrote; the caller frees it. */
static char *esc_output(void) {
  FILE *f = fopen(log_path, "r");
  assert_non_null(f);
  char *text = calloc(1, 1 << 16);
  assert_non_null(text);
  size_t n = fread(text, 1, (1 << 16) - 1, f);
  text[n] = '\0';
  fclose(f);
  return text;
}

static void expect_exit(pid_t pid, int want) {
  int got = esc_exit(pid, 20000);
  if (got != want) {
    char *out = esc_output();
    fail_msg("esc exited %d, not %d; it said:\n%s", got, want, out);
  }
}

static void expect_said(const char *needle) {
  char *out = esc_output();
  bool ok = strstr(out, needle) != NULL;
  if (!ok)
    fail_msg("esc did not say \"%s\"; it said:\n%s", needle, out);
  free(out);
}

static void expect_not_said(const char *needle) {
  char *out = esc_output();
  bool ok = strstr(out, needle) == NULL;
  if (!ok)
    fail_msg("esc said \"%s\":\n%s", needle, out);
  free(out);
}

/* A failure in the project's words: no raw libpq lines, no hint at a
 * migration that is not the problem. */
static void expect_project_words(void) {
  expect_not_said("FATAL");
  expect_not_said("migrated");
  expect_not_said("This probably means");
}

/* ------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------ */

static const char *direct_url(void) {
  return esc_test_pg_cluster_url(cluster);
}

static void connect_helpers(void) {
  PQfinish(admin);
  PQfinish(locker);
  admin = PQconnectdb(direct_url());
  locker = PQconnectdb(direct_url());
  assert_int_equal(PQstatus(admin), CONNECTION_OK);
  assert_int_equal(PQstatus(locker), CONNECTION_OK);
}

/* Stops the server while a command waits, and starts it again. */
static void restart(const char *mode) {
  esc_test_pg_cluster_stop(cluster, mode);
  esc_test_pg_cluster_start(cluster);
  connect_helpers();
}

static esc_store *open_store(void) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = SCHEMA;
  esc_store *st = esc_store_open(direct_url(), &o, &err);
  if (!st)
    fail_msg("open: %s", err.msg);
  return st;
}

static void append_n(const char *stream, esc_uuid *ids, int n) {
  unsigned char payload[32];
  size_t len = esc_test_payload(payload, 1);
  esc_store *st = open_store();
  for (int i = 0; i < n; i++) {
    esc_error err = ESC_ERROR_INIT;
    ids[i] = esc_uuid_v4();
    esc_event_data ev = {ids[i], "Happened", 1, payload, len, NULL, 0};
    if (esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, NULL, &err))
      fail_msg("append: %s", err.msg);
  }
  esc_store_free(st);
}

static long long copies(const char *id) {
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " SCHEMA ".events WHERE event_id = '%s'", id);
  return esc_test_query_ll(admin, sql);
}

/* ------------------------------------------------------------------------
 * Shutdowns while a command waits
 * ------------------------------------------------------------------------ */

static void a_fast_shutdown_exits_5_and_names_it(void **s) {
  (void)s;
  esc_uuid ids[1];
  append_n("cf-1", ids, 1);
  esc_test_hold_lock(locker, SCHEMA, "events", "ACCESS EXCLUSIVE");
  pid_t pid = esc_start(NULL, "read", "cf-1", "--pg", direct_url(), NULL);
  esc_test_lock_waiter(admin, "esc-cli", 10000);
  restart("fast");
  expect_exit(pid, 5);
  expect_said("esc: read: read cf-1:");
  expect_said("57P01");
  expect_project_words();
}

static void an_immediate_shutdown_exits_5(void **s) {
  (void)s;
  esc_test_hold_lock(locker, SCHEMA, "events", "ACCESS EXCLUSIVE");
  pid_t pid = esc_start(NULL, "read", "cf-1", "--pg", direct_url(), NULL);
  esc_test_lock_waiter(admin, "esc-cli", 10000);
  restart("immediate");
  expect_exit(pid, 5);
  expect_said("esc: read: read cf-1:");
  expect_project_words();
}

/* The append was sent when the server went: exit 5, outcome unknown, and
 * how to settle it; the same --id then appends it exactly once. */
static void a_lost_append_says_how_to_settle_it(void **s) {
  (void)s;
  char id[37];
  esc_uuid u = esc_uuid_v4();
  esc_uuid_format(&u, id);
  esc_uuid warm[1];
  append_n("cf-2", warm, 1);
  esc_test_hold_stream(locker, SCHEMA, "cf-2");
  pid_t pid = esc_start(NULL, "append", "cf-2", "Happened", "{}", "--id", id,
                        "--pg", direct_url(), NULL);
  esc_test_lock_waiter(admin, "esc-cli", 10000);
  restart("fast");
  expect_exit(pid, 5);
  expect_said("outcome unknown");
  expect_said(id);
  expect_said("esc read cf-2");
  expect_project_words();

  pid = esc_start(NULL, "append", "cf-2", "Happened", "{}", "--id", id, "--pg",
                  direct_url(), NULL);
  expect_exit(pid, 0);
  assert_int_equal(copies(id), 1);
}

static void an_append_never_sent_says_so(void **s) {
  (void)s;
  pid_t pid = esc_start(NULL, "append", "cf-3", "Happened", "{}", "--pg",
                        "postgresql://esc@127.0.0.1:1/postgres", NULL);
  expect_exit(pid, 5);
  expect_said("esc: append: connect to PostgreSQL at 127.0.0.1:1");
  expect_said("not sent");
  expect_not_said("outcome unknown");
  expect_project_words();
}

/* ------------------------------------------------------------------------
 * tail --follow
 * ------------------------------------------------------------------------ */

/* Waits until every id is in the log; then checks each is there once, in
 * order. */
static void expect_followed(const esc_uuid *ids, int n, int timeout_ms) {
  long long deadline = esc_test_now_ms() + timeout_ms;
  char text[37];
  for (;;) {
    char *out = esc_output();
    const char *at = out;
    int found = 0;
    for (; found < n; found++) {
      esc_uuid_format(&ids[found], text);
      const char *hit = strstr(at, text);
      if (!hit)
        break;
      if (strstr(hit + 1, text))
        fail_msg("event %s was printed twice:\n%s", text, out);
      at = hit;
    }
    free(out);
    if (found == n)
      return;
    if (esc_test_now_ms() > deadline) {
      esc_test_print_tail(log_path, 30);
      fail_msg("tail printed %d of %d events in order", found, n);
    }
    esc_test_sleep_ms(50);
  }
}

static void tail_follow_resumes_after_a_restart(void **s) {
  (void)s;
  esc_uuid ids[10];
  pid_t pid = esc_start(NULL, "tail", "--follow", "--json", "--category", "tf",
                        "--pg", direct_url(), NULL);
  append_n("tf-1", ids, 5);
  expect_followed(ids, 5, 10000);
  restart("fast");
  append_n("tf-1", ids + 5, 5);
  expect_followed(ids, 10, 20000);
  expect_said("esc: tail: lost the connection");
  expect_said("esc: tail: reconnected");
  expect_project_words();
  kill(pid, SIGTERM);
  expect_exit(pid, 0);
}

static void tail_follow_gives_up_after_retry_for(void **s) {
  (void)s;
  esc_uuid ids[1];
  pid_t pid = esc_start(NULL, "tail", "--follow", "--json", "--category", "tg",
                        "--retry-for", "2", "--pg", proxy_url, NULL);
  append_n("tg-1", ids, 1);
  expect_followed(ids, 1, 10000);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_RESET);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_REFUSE);
  long long t0 = esc_test_now_ms();
  expect_exit(pid, 5);
  long long ms = esc_test_now_ms() - t0;
  if (ms < 1500 || ms > 10000)
    fail_msg("--retry-for 2 gave up after %lld ms", ms);
  expect_said("giving up");
  expect_project_words();
}

/* A follower started while the server is down: with --retry-for it waits
 * for the server (found by the soak: a supervisor that restarted the
 * follower during a server restart saw it exit 5 at once); without it, a
 * first connection that fails still exits at once. */
static void tail_follow_waits_for_a_server_not_up_yet(void **s) {
  (void)s;
  esc_uuid ids[2];
  esc_test_proxy_set_mode(proxy, ESC_PROXY_REFUSE);
  pid_t quick = esc_start(NULL, "tail", "--follow", "--json", "--category",
                          "tw", "--pg", proxy_url, NULL);
  expect_exit(quick, 5);
  pid_t pid = esc_start(NULL, "tail", "--follow", "--json", "--category", "tw",
                        "--retry-for", "30", "--pg", proxy_url, NULL);
  if (esc_test_wait_child(pid, 1500, NULL))
    fail_msg("tail --retry-for exited while the server was down");
  append_n("tw-1", ids, 1);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  append_n("tw-1", ids + 1, 1);
  expect_followed(ids, 2, 20000);
  expect_said("esc: tail: cannot connect");
  expect_said("esc: tail: connected after");
  expect_project_words();
  kill(pid, SIGTERM);
  expect_exit(pid, 0);
}

/* ------------------------------------------------------------------------
 * Timeouts
 * ------------------------------------------------------------------------ */

/* A statement held longer than --pg-timeout: exit 7, nothing applied. */
static void the_timeout_flag_bounds_a_command(void **s) {
  (void)s;
  char id[37];
  esc_uuid u = esc_uuid_v4();
  esc_uuid_format(&u, id);
  esc_test_hold_lock(locker, SCHEMA, "events", "ACCESS EXCLUSIVE");
  long long t0 = esc_test_now_ms();
  pid_t pid = esc_start(NULL, "--pg-timeout", "1", "read", "cf-1", "--pg",
                        direct_url(), NULL);
  expect_exit(pid, 7);
  assert_true(esc_test_now_ms() - t0 < 6000);
  expect_said("timed out");
  esc_test_exec(locker, "ROLLBACK");

  esc_uuid warm[1];
  append_n("cf-4", warm, 1);
  esc_test_hold_stream(locker, SCHEMA, "cf-4");
  const char *env[] = {"ESC_PG_TIMEOUT=1", NULL};
  pid = esc_start(env, "append", "cf-4", "Happened", "{}", "--id", id, "--pg",
                  direct_url(), NULL);
  expect_exit(pid, 7);
  expect_said("not applied");
  esc_test_exec(locker, "ROLLBACK");
  assert_int_equal(copies(id), 0);
}

/* The server stops answering after the append was sent: unknown. */
static void a_stalled_append_is_unknown(void **s) {
  (void)s;
  char id[37];
  esc_uuid u = esc_uuid_v4();
  esc_uuid_format(&u, id);
  esc_uuid warm[1];
  append_n("cf-5", warm, 1);
  esc_test_hold_stream(locker, SCHEMA, "cf-5");
  const char *env[] = {"ESC_PG_TIMEOUT=1", NULL};
  pid_t pid = esc_start(env, "--json", "append", "cf-5", "Happened", "{}",
                        "--id", id, "--pg", proxy_url, NULL);
  esc_test_lock_waiter(admin, "esc-cli", 10000);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_STALL);
  expect_exit(pid, 5);
  expect_said("\"code\":\"outcome_unknown\"");
  expect_said(id);
  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  esc_test_exec(locker, "ROLLBACK");
  pid = esc_start(NULL, "append", "cf-5", "Happened", "{}", "--id", id, "--pg",
                  proxy_url, NULL);
  expect_exit(pid, 0);
  assert_int_equal(copies(id), 1);
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

static void connection_errors_never_show_the_password(void **s) {
  (void)s;
  static const char *const urls[] = {
      "postgresql://esc:s3cr3t@127.0.0.1:1/postgres",
      "postgresql://esc:s3cr3t%zz@127.0.0.1:1/postgres",
      "host=127.0.0.1 port=1 password=s3cr3t junk",
      "postgresql://esc@127.0.0.1:1/postgres?password=s3cr3t&bogus=1",
  };
  for (size_t i = 0; i < sizeof urls / sizeof *urls; i++) {
    pid_t pid = esc_start(NULL, "stats", "--pg", urls[i], NULL);
    int code = esc_exit(pid, 20000);
    if (code != 5 && code != 6)
      fail_msg("%s: exit %d", urls[i], code);
    expect_said("esc: stats: ");
    expect_not_said("s3cr3t");
    expect_project_words();
  }
  /* Redis URLs too: unreachable, malformed, and a wrong password sent to
   * a real server (the shared one, which refuses it). */
  char wrongpass[128];
  const char *redis = getenv("ESC_REDIS_URL");
  const char *where = redis && strstr(redis, "://") ? strstr(redis, "://") + 3
                                                    : "127.0.0.1:63799";
  /* host:port only: the real password must not go on a command line */
  if (strrchr(where, '@'))
    where = strrchr(where, '@') + 1;
  snprintf(wrongpass, sizeof wrongpass, "redis://nobody:s3cr3t@%s", where);
  const char *const redis_urls[] = {
      "redis://u:s3cr3t@127.0.0.1:1", "redis://u:s3cr3t@127.0.0.1:notaport",
      "redis://:s3cr3t@[::1", wrongpass};
  for (size_t i = 0; i < sizeof redis_urls / sizeof *redis_urls; i++) {
    for (int cmd = 0; cmd < 2; cmd++) {
      pid_t pid = esc_start(NULL, cmd ? "metrics" : "projections", "--redis",
                            redis_urls[i], NULL);
      esc_exit(pid, 20000);
      expect_not_said("s3cr3t");
    }
  }
}

/* ------------------------------------------------------------------------ */

static int group_setup(void **state) {
  (void)state;
  char why[160];
  snprintf(log_path, sizeof log_path, "%s/cli-faults-%d.log", ESC_TEST_TMP_DIR,
           (int)getpid());
  cluster = esc_test_pg_cluster_new(ESC_TEST_TMP_DIR);
  proxy = esc_test_proxy_start(esc_test_pg_cluster_port(cluster), why,
                               sizeof why);
  if (!proxy)
    fail_msg("%s", why);
  snprintf(proxy_url, sizeof proxy_url,
           "postgresql://esc@127.0.0.1:%d/postgres",
           esc_test_proxy_port(proxy));
  esc_store *st = open_store();
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_migrate(st, NULL, &err) != ESC_OK)
    fail_msg("migrate: %s", err.msg);
  esc_store_free(st);
  connect_helpers();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  PQfinish(admin);
  PQfinish(locker);
  esc_test_proxy_stop(proxy);
  esc_test_pg_cluster_free(cluster);
  esc_test_remove_log(log_path);
  return 0;
}

static int reset(void **state) {
  (void)state;
  esc_test_kill_children();
  esc_test_proxy_set_mode(proxy, ESC_PROXY_PASS);
  if (PQstatus(locker) != CONNECTION_OK || PQstatus(admin) != CONNECTION_OK)
    connect_helpers();
  if (PQtransactionStatus(locker) != PQTRANS_IDLE)
    esc_test_exec(locker, "ROLLBACK");
  return 0;
}

#define CASE(f) cmocka_unit_test_setup_teardown(f, reset, reset)

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(a_fast_shutdown_exits_5_and_names_it),
      CASE(an_immediate_shutdown_exits_5),
      CASE(a_lost_append_says_how_to_settle_it),
      CASE(an_append_never_sent_says_so),
      CASE(tail_follow_resumes_after_a_restart),
      CASE(tail_follow_gives_up_after_retry_for),
      CASE(tail_follow_waits_for_a_server_not_up_yet),
      CASE(the_timeout_flag_bounds_a_command),
      CASE(a_stalled_append_is_unknown),
      CASE(connection_errors_never_show_the_password),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

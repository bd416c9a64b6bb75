/* A private PostgreSQL cluster for fault tests (see pgcluster.h). */
#include "pgcluster.h"
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define PG_BIN "/usr/lib/postgresql/15/bin"

struct esc_test_pg_cluster {
  char base[256]; /* the server's user owns it: logs and data/ */
  char data[300];
  char url[96];
  int port;
  int running;
};

/* Runs a shell command as the server's user; its exit status. */
static int as_server_user(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static int as_server_user(const char *fmt, ...) {
  char cmd[1024], full[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  /* PostgreSQL refuses to run as root: scripts/servers uses "postgres". */
  if (geteuid() == 0)
    snprintf(full, sizeof full, "runuser -u postgres -- sh -c '%s'", cmd);
  else
    snprintf(full, sizeof full, "sh -c '%s'", cmd);
  return system(full);
}

/* Whether the server's user may enter dir (only root runs it as another). */
static bool server_user_reaches(const char *dir) {
  if (geteuid() != 0)
    return true;
  return as_server_user("test -x \"%s\"", dir) == 0;
}

static void write_conf(const esc_test_pg_cluster *c) {
  char path[sizeof c->data + 32];
  snprintf(path, sizeof path, "%s/postgresql.conf", c->data);
  FILE *f = fopen(path, "a");
  if (!f)
    fail_msg("cannot append to %s", path);
  fprintf(f,
          "\n# esc test cluster\n"
          "listen_addresses = '127.0.0.1'\n"
          "port = %d\n"
          "unix_socket_directories = ''\n"
          "fsync = off\n"
          "max_connections = 40\n"
          "shared_buffers = 32MB\n"
          "log_min_messages = warning\n",
          c->port);
  fclose(f);
}

/* A new cluster's directory under dir, its port and its URL; nothing
 * initialised in it yet. */
static esc_test_pg_cluster *cluster_alloc(const char *dir) {
  static int serial;
  esc_test_pg_cluster *c = calloc(1, sizeof *c);
  assert_non_null(c);
  mkdir(dir, 0755);
  if (server_user_reaches(dir)) {
    snprintf(c->base, sizeof c->base, "%s/pg-%d-%d", dir, (int)getpid(),
             serial++);
    if (mkdir(c->base, 0700) != 0)
      fail_msg("cannot make %s", c->base);
  } else {
    /* A checkout in a private directory (mktemp -d is mode 0700): the
     * server's user cannot get to dir, so the cluster lives in /tmp, as
     * scripts/servers does then. */
    snprintf(c->base, sizeof c->base, "/tmp/esc-pgcluster-XXXXXX");
    if (!mkdtemp(c->base))
      fail_msg("cannot make a directory in /tmp for the test cluster");
  }
  snprintf(c->data, sizeof c->data, "%s/data", c->base);
  c->port = esc_test_free_port(23000, 400);
  snprintf(c->url, sizeof c->url, "postgresql://esc@127.0.0.1:%d/postgres",
           c->port);
  if (geteuid() == 0) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "chown postgres: '%s'", c->base);
    if (system(cmd) != 0)
      fail_msg("cannot chown %s to postgres", c->base);
  }
  return c;
}

esc_test_pg_cluster *esc_test_pg_cluster_new(const char *dir) {
  esc_test_pg_cluster *c = cluster_alloc(dir);
  if (as_server_user(PG_BIN "/initdb -D %s -U esc --auth=trust -E UTF8 "
                            "--locale=C.UTF-8 --no-instructions -N "
                            ">%s/initdb.log 2>&1",
                     c->data, c->base) != 0)
    fail_msg("initdb of %s failed (see %s/initdb.log)", c->data, c->base);
  write_conf(c);
  esc_test_pg_cluster_start(c);
  return c;
}

esc_test_pg_cluster *esc_test_pg_standby_new(const esc_test_pg_cluster *primary) {
  char dir[sizeof primary->base];
  snprintf(dir, sizeof dir, "%s", primary->base);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = '\0';
  esc_test_pg_cluster *c = cluster_alloc(dir);
  /* -R writes standby.signal and primary_conninfo; initdb's pg_hba lets
   * the superuser replicate from 127.0.0.1 with trust. */
  if (as_server_user(PG_BIN "/pg_basebackup -h 127.0.0.1 -p %d -U esc -D %s "
                            "-R -X stream -c fast >%s/basebackup.log 2>&1",
                     primary->port, c->data, c->base) != 0)
    fail_msg("pg_basebackup of %s failed (see %s/basebackup.log)",
             primary->url, c->base);
  write_conf(c); /* appended last: its port wins over the primary's */
  esc_test_pg_cluster_start(c);
  return c;
}

/* One text value of sql on url, or fails the test. */
static char *query_at(const char *url, const char *sql) {
  PGconn *conn = PQconnectdb(url);
  if (PQstatus(conn) != CONNECTION_OK)
    fail_msg("cannot connect to %s: %s", url, PQerrorMessage(conn));
  char *v = esc_test_query_text(conn, sql);
  PQfinish(conn);
  if (!v)
    fail_msg("%s on %s returned nothing", sql, url);
  return v;
}

void esc_test_pg_standby_catch_up(const esc_test_pg_cluster *primary,
                                  const esc_test_pg_cluster *standby,
                                  int timeout_ms) {
  char *lsn = query_at(primary->url, "SELECT pg_current_wal_lsn()::text");
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn);
  long long until = esc_test_now_ms() + timeout_ms;
  for (;;) {
    char *done = query_at(standby->url, sql);
    bool ok = strcmp(done, "t") == 0;
    free(done);
    if (ok)
      break;
    if (esc_test_now_ms() >= until)
      fail_msg("standby %s did not replay up to %s within %d ms",
               standby->url, lsn, timeout_ms);
    esc_test_sleep_ms(10);
  }
  free(lsn);
}

const char *esc_test_pg_cluster_url(const esc_test_pg_cluster *c) {
  return c->url;
}

int esc_test_pg_cluster_port(const esc_test_pg_cluster *c) {
  return c->port;
}

void esc_test_pg_cluster_start(esc_test_pg_cluster *c) {
  if (as_server_user(PG_BIN "/pg_ctl -D %s -l %s/server.log -w -t 60 start "
                            ">/dev/null",
                     c->data, c->base) != 0)
    fail_msg("pg_ctl start of %s failed (see %s/server.log)", c->data, c->base);
  c->running = 1;
}

void esc_test_pg_cluster_stop(esc_test_pg_cluster *c, const char *mode) {
  if (as_server_user(PG_BIN "/pg_ctl -D %s -m %s -w -t 60 stop >/dev/null",
                     c->data, mode) != 0)
    fail_msg("pg_ctl stop -m %s of %s failed", mode, c->data);
  c->running = 0;
}

void esc_test_pg_cluster_free(esc_test_pg_cluster *c) {
  char cmd[400];
  if (!c)
    return;
  if (c->running)
    as_server_user(PG_BIN "/pg_ctl -D %s -m immediate -w -t 60 stop "
                          ">/dev/null 2>&1",
                   c->data);
  if (getenv("ESC_TEST_KEEP_LOGS")) {
    fprintf(stderr, "kept the test cluster in %s\n", c->base);
  } else {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->base);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", c->base);
  }
  free(c);
}

/* ------------------------------------------------------------------------
 * Holding a client in the middle of a statement
 * ------------------------------------------------------------------------ */

void esc_test_hold_lock(PGconn *conn, const char *schema, const char *table,
                        const char *mode) {
  char sql[256];
  snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE \"%s\".\"%s\" IN %s MODE",
           schema, table, mode);
  esc_test_exec(conn, sql);
}

void esc_test_hold_stream(PGconn *conn, const char *schema,
                          const char *stream) {
  char sql[400];
  snprintf(sql, sizeof sql,
           "BEGIN; SELECT 1 FROM \"%s\".streams WHERE stream_id = '%s'"
           " FOR UPDATE",
           schema, stream);
  esc_test_exec(conn, sql);
}

int esc_test_lock_waiter(PGconn *conn, const char *app, int timeout_ms) {
  const char *values[] = {app};
  long long deadline = esc_test_now_ms() + timeout_ms;
  while (esc_test_now_ms() < deadline) {
    PGresult *res = PQexecParams(conn,
                                 "SELECT pid FROM pg_stat_activity"
                                 " WHERE application_name = $1"
                                 " AND wait_event_type = 'Lock' LIMIT 1",
                                 1, NULL, values, NULL, NULL, 0);
    int pid = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                  ? atoi(PQgetvalue(res, 0, 0))
                  : 0;
    PQclear(res);
    if (pid > 0)
      return pid;
    esc_test_sleep_ms(20);
  }
  fail_msg("no session of %s waited for a lock within %d ms", app, timeout_ms);
  return -1;
}

void esc_test_terminate(PGconn *conn, int pid) {
  char sql[64];
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
  char *done = esc_test_query_text(conn, sql);
  bool ok = done && strcmp(done, "t") == 0;
  free(done);
  if (!ok)
    fail_msg("pg_terminate_backend(%d) did not end a backend", pid);
}

int esc_test_kill_sessions(const char *app, int pause_ms, int max_age_ms,
                           const _Atomic long *progress,
                           const _Atomic bool *stop) {
  char age[32];
  int kills = 0;
  long seen = atomic_load(progress) - 1; /* the first round may kill */
  PGconn *c = PQconnectdb(esc_test_pg_url());
  snprintf(age, sizeof age, "%d ms", max_age_ms);
  while (PQstatus(c) == CONNECTION_OK && !atomic_load(stop)) {
    long now = atomic_load(progress);
    if (now != seen) {
      const char *values[] = {app, age};
      PGresult *res = PQexecParams(
          c,
          "SELECT count(pg_terminate_backend(pid)) "
          "FROM pg_stat_activity "
          "WHERE application_name = $1 "
          "AND clock_timestamp() - backend_start > random() * $2::interval",
          2, NULL, values, NULL, NULL, 0);
      int ended = PQresultStatus(res) == PGRES_TUPLES_OK
                      ? atoi(PQgetvalue(res, 0, 0))
                      : 0;
      PQclear(res);
      kills += ended;
      if (ended)
        seen = now;
    }
    esc_test_sleep_ms(pause_ms);
  }
  PQfinish(c);
  return kills;
}

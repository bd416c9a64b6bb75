/*
 * Connections to PostgreSQL and bounded round trips on them: the one
 * place that decides connection parameters, how long esc waits for a
 * server, and what a broken connection is called in messages. The store
 * (store.c) and the projections module's own sessions both use it.
 *
 * Why a wait of our own: libpq waits forever for a reply (PQexec blocks in
 * poll without a deadline), so a server that stops answering — paused,
 * behind a network dropping packets — would hold a client for good. Every
 * request here is sent with the connection in nonblocking mode and waited
 * for with poll on PQsocket until a deadline; past it the connection is
 * shut down, which also tells the server to give up on the session.
 */
#include "store_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Defaults, documented in docs/operations.md ("Timeouts"). */
#define DEFAULT_CONNECT_TIMEOUT "10"
#define DEFAULT_TIMEOUT_MS 30000
/* A dead peer is noticed after idle + interval * count = 25 s of silence. */
#define DEFAULT_KEEPALIVES_IDLE "10"
#define DEFAULT_KEEPALIVES_INTERVAL "5"
#define DEFAULT_KEEPALIVES_COUNT "3"
#define DEFAULT_TCP_USER_TIMEOUT "30000"
/* The server's statement_timeout (set to the same timeout) answers first;
 * the client gives up this much later, when no answer can come. */
#define GRACE_MS 1000

int64_t esc__clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------ */

esc_status esc__timeout_ms(int requested, int *out, esc_error *err) {
  const char *env = getenv("ESC_PG_TIMEOUT");
  char *end = NULL;
  *out = DEFAULT_TIMEOUT_MS;
  if (requested != 0) {
    *out = requested > 0 ? requested : -1;
    return ESC_OK;
  }
  if (!env || !*env)
    return ESC_OK;
  long s = strtol(env, &end, 10);
  if (*end || env[0] < '0' || env[0] > '9' || s > 86400)
    return esc__fail(err, ESC_EINVAL,
                     "ESC_PG_TIMEOUT=%.40s: expected whole seconds from 0 "
                     "(no limit) to 86400",
                     env);
  *out = s == 0 ? -1 : (int)s * 1000;
  return ESC_OK;
}

/* Whether conninfo names a password: messages must then not quote it. A
 * text libpq cannot parse is judged by its look (a "password" key, or a
 * URL with user:password@). */
static bool holds_password(const char *conninfo) {
  PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
  bool yes = false;
  if (opts) {
    for (PQconninfoOption *o = opts; o->keyword; o++)
      if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
        yes = true;
    PQconninfoFree(opts);
    return yes;
  }
  const char *scheme = strstr(conninfo, "://");
  const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
  const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
  return strstr(conninfo, "password") || (at && colon && colon < at);
}

/* Whether conninfo (or PGSERVICE) names a service, whose file may set any
 * parameter: esc's defaults would override it, so none are given. */
static bool uses_service(const char *conninfo) {
  const char *env = getenv("PGSERVICE");
  PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
  bool yes = env && *env;
  for (PQconninfoOption *o = opts; o && o->keyword; o++)
    if (strcmp(o->keyword, "service") == 0 && o->val && *o->val)
      yes = true;
  PQconninfoFree(opts);
  return yes;
}

/* A conninfo libpq cannot parse is invalid input; its reason is shown
 * unless the text holds a password (libpq quotes the offending part). */
static esc_status check_conninfo(const char *conninfo, esc_error *err) {
  char *why = NULL;
  bool plain_name = !strchr(conninfo, '=') && !strstr(conninfo, "://");
  PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
  bool parsed = opts != NULL;
  PQconninfoFree(opts);
  if (parsed || plain_name) { /* a plain database name is fine too */
    PQfreemem(why);
    return ESC_OK;
  }
  esc_status rc;
  if (holds_password(conninfo))
    rc = esc__fail(err, ESC_EINVAL,
                   "the PostgreSQL URL or conninfo is not valid (libpq's "
                   "reason is not shown: the text holds a password)");
  else
    rc = esc__fail(err, ESC_EINVAL,
                   "the PostgreSQL URL or conninfo is not valid: %s",
                   why ? why : "out of memory");
  PQfreemem(why);
  esc__flatten(err ? err->msg : NULL);
  return rc;
}

/*
 * The keyword arrays for PQconnectdbParams. libpq lets a URL override
 * entries before it and entries after it override the URL: esc's
 * defaults go before (so the URL wins, and they are left out where the
 * environment or a service sets them), the program's explicit choices
 * after. Returns the number of entries; keys/vals hold 12.
 */
static int conn_params(const char *conninfo, const struct esc__conn_opts *o,
                       char *timeout, size_t size, const char **keys,
                       const char **vals) {
  int n = 0;
  bool defaults = !uses_service(conninfo);
  const char *env_timeout = getenv("PGCONNECT_TIMEOUT");
#define PARAM(k, v) (keys[n] = (k), vals[n] = (v), n++)
  if (defaults && !(env_timeout && *env_timeout))
    PARAM("connect_timeout", DEFAULT_CONNECT_TIMEOUT);
  if (defaults) {
    PARAM("keepalives_idle", DEFAULT_KEEPALIVES_IDLE);
    PARAM("keepalives_interval", DEFAULT_KEEPALIVES_INTERVAL);
    PARAM("keepalives_count", DEFAULT_KEEPALIVES_COUNT);
    PARAM("tcp_user_timeout", DEFAULT_TCP_USER_TIMEOUT);
  }
  PARAM("dbname", conninfo); /* expanded: a URL or a key=value conninfo */
  /* Names the connection's role in pg_stat_activity (esc projections). */
  PARAM("application_name", o->app_name ? o->app_name : "esc");
  if (o->connect_timeout_s > 0) {
    snprintf(timeout, size, "%d", o->connect_timeout_s);
    PARAM("connect_timeout", timeout);
  }
#undef PARAM
  keys[n] = vals[n] = NULL;
  return n;
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

/* libpq's message cut to its reason, in one line: without "FATAL:", the
 * "connection to server at ... failed:" preamble and the advice lines. */
static void libpq_reason(const char *msg, char *out, size_t size) {
  static const char *const skip[] = {"FATAL:", "ERROR:", NULL};
  const char *p = msg ? msg : "";
  const char *failed = strstr(p, " failed: ");
  const char *eol = strchr(p, '\n');
  if (strncmp(p, "connection to server", 20) == 0 && failed &&
      (!eol || failed < eol))
    p = failed + 9;
  for (int i = 0; skip[i]; i++)
    if (strncmp(p, skip[i], strlen(skip[i])) == 0)
      p += strlen(skip[i]);
  while (*p == ' ')
    p++;
  size_t len = strcspn(p, "\n");
  while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '.'))
    len--;
  snprintf(out, size, "%.*s", (int)len,
           len ? p : "the connection is not open");
}

void esc__why_lost(const char *sqlstate, PGconn *conn, char *out,
                   size_t size) {
  if (sqlstate && strcmp(sqlstate, "57P01") == 0)
    snprintf(out, size, "the server ended the session (57P01 "
                        "admin_shutdown: a shutdown or "
                        "pg_terminate_backend)");
  else if (sqlstate && strcmp(sqlstate, "57P02") == 0)
    snprintf(out, size, "the server is restarting after a crash (57P02)");
  else if (sqlstate && strcmp(sqlstate, "57P03") == 0)
    snprintf(out, size, "the server does not accept connections now: "
                        "starting up or shutting down (57P03)");
  else if (sqlstate && strncmp(sqlstate, "08", 2) == 0)
    snprintf(out, size, "connection failure (SQLSTATE %s)", sqlstate);
  else
    libpq_reason(conn ? PQerrorMessage(conn) : NULL, out, size);
}

esc_status esc__fail_connect(esc_error *err, PGconn *conn, const char *what) {
  char why[160];
  const char *host = conn ? PQhost(conn) : NULL;
  const char *port = conn ? PQport(conn) : NULL;
  libpq_reason(conn ? PQerrorMessage(conn) : NULL, why, sizeof why);
  if (host && *host)
    return esc__fail(err, ESC_ECONN, "%s at %s:%s: %s", what, host,
                     port && *port ? port : "5432", why);
  return esc__fail(err, ESC_ECONN, "%s: %s", what, why);
}

static void format_timeout(int ms, char *out, size_t size) {
  if (ms % 1000 == 0)
    snprintf(out, size, "%d s", ms / 1000);
  else
    snprintf(out, size, "%.1f s", ms / 1000.0);
}

esc_status esc__fail_call(esc_error *err, const struct esc__call *c,
                          const PGresult *res, const char *what) {
  char limit[32];
  if (!c->timed_out)
    return esc__fail_pg_ended(err, c->conn, res, what, c->ended);
  format_timeout(c->timeout_ms, limit, sizeof limit);
  return esc__fail(err, ESC_ETIMEDOUT,
                   "%s: no reply from PostgreSQL within %s; the connection "
                   "was closed",
                   what, limit);
}

/* Server notices are dropped (a library does not write to stderr), but
 * one saying the session ends (57P01/02/03, sent before the server closes
 * it) is kept: it names why the connection is gone. */
static void on_notice(void *arg, const PGresult *res) {
  struct esc__call *c = arg;
  const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  if (c && st && strncmp(st, "57P", 3) == 0)
    snprintf(c->ended, sizeof c->ended, "%s", st);
}

/* ------------------------------------------------------------------------
 * Bounded round trips
 * ------------------------------------------------------------------------ */

void esc__call_begin(struct esc__call *c, PGconn *conn, int timeout_ms) {
  c->conn = conn;
  c->timeout_ms = timeout_ms;
  c->sent = false;
  c->timed_out = false;
  c->ended[0] = '\0';
  esc__call_rearm(c);
}

void esc__call_rearm(struct esc__call *c) {
  c->deadline_ms =
      c->timeout_ms > 0 ? esc__clock_ms() + c->timeout_ms + GRACE_MS : -1;
}

bool esc__call_failed(const struct esc__call *c) {
  return c->timed_out || PQstatus(c->conn) != CONNECTION_OK;
}

/* Past the deadline: shut the socket down, so libpq sees the connection
 * end (PQstatus becomes CONNECTION_BAD, the next call reconnects) and the
 * server sees it too, as soon as anything reaches it. */
static void give_up(struct esc__call *c) {
  c->timed_out = true;
  shutdown(PQsocket(c->conn), SHUT_RDWR);
  PQconsumeInput(c->conn);
}

/* Waits until the socket has one of events; its revents, or 0 when the
 * deadline passed (given up) or the connection is gone. */
static short wait_socket(struct esc__call *c, short events) {
  int fd = PQsocket(c->conn);
  while (fd >= 0) {
    int left = -1;
    if (c->deadline_ms >= 0) {
      int64_t now = esc__clock_ms();
      left = now >= c->deadline_ms ? 0 : (int)(c->deadline_ms - now);
    }
    struct pollfd p = {fd, events, 0};
    int n = left == 0 ? 0 : poll(&p, 1, left);
    if (n > 0)
      return p.revents;
    if (n == 0) {
      give_up(c);
      return 0;
    }
    if (errno != EINTR)
      return 0;
  }
  return 0;
}

bool esc__call_flush(struct esc__call *c) {
  for (;;) {
    int r = PQflush(c->conn);
    if (r == 0) {
      c->sent = true;
      return true;
    }
    if (r < 0)
      return false;
    /* Read while writing: a server blocked on its replies to an earlier
     * request would otherwise stop reading ours. */
    short ev = wait_socket(c, POLLOUT | POLLIN);
    if (!ev || ((ev & POLLIN) && !PQconsumeInput(c->conn)))
      return false;
  }
}

PGresult *esc__call_next(struct esc__call *c) {
  if (!c->sent && !esc__call_flush(c))
    return NULL;
  while (PQisBusy(c->conn)) {
    if (!wait_socket(c, POLLIN))
      return c->timed_out ? NULL : PQgetResult(c->conn);
    if (!PQconsumeInput(c->conn))
      break; /* broken: PQgetResult says so without blocking */
  }
  return PQgetResult(c->conn);
}

PGresult *esc__call_finish(struct esc__call *c) {
  PGresult *keep = NULL, *res;
  while ((res = esc__call_next(c)) != NULL) {
    if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
      PQclear(res); /* the first error is the one that matters */
      continue;
    }
    PQclear(keep);
    keep = res;
  }
  /* Rows are not an answer until the end of the query (its commit) came. */
  if (esc__call_failed(c) && PQresultStatus(keep) != PGRES_FATAL_ERROR) {
    PQclear(keep);
    keep = NULL;
  }
  return keep;
}

/* Sends q; false when it could not even be handed to libpq. */
static bool send_query(PGconn *conn, const struct esc__query *q) {
  if (q->stmt)
    return PQsendQueryPrepared(conn, q->stmt, q->n, q->values, q->lengths,
                               q->formats, q->binary);
  if (q->n > 0)
    return PQsendQueryParams(conn, q->sql, q->n, NULL, q->values, q->lengths,
                             q->formats, q->binary);
  return PQsendQuery(conn, q->sql); /* may hold several statements */
}

PGresult *esc__call_run(struct esc__call *c, PGconn *conn, int timeout_ms,
                        const struct esc__query *q) {
  esc__call_begin(c, conn, timeout_ms);
  if (!send_query(conn, q))
    return NULL;
  return esc__call_finish(c);
}

/* ------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------ */

/* What every session needs: nonblocking sends, and the server cancelling
 * a statement that outlives the timeout (then nothing of it is applied:
 * a definite answer, where a client giving up knows nothing). A
 * statement_timeout set anywhere else (URL options, role, database,
 * server) is kept. */
esc_status esc__pg_session(PGconn *conn, int timeout_ms, esc_error *err) {
  struct esc__call c;
  char ms[16];
  if (PQsetnonblocking(conn, 1) != 0)
    return esc__fail_connect(err, conn, "connect to PostgreSQL");
  if (timeout_ms <= 0)
    return ESC_OK;
  snprintf(ms, sizeof ms, "%d", timeout_ms);
  const char *values[] = {ms};
  struct esc__query q = {
      .sql = "SELECT set_config('statement_timeout', $1, false)"
             " WHERE current_setting('statement_timeout') = '0'",
      .n = 1,
      .values = values};
  PGresult *res = esc__call_run(&c, conn, timeout_ms, &q);
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_call(err, &c, res, "set up the session");
  PQclear(res);
  return rc;
}

PGconn *esc__pg_open(const char *conninfo, const struct esc__conn_opts *o,
                     struct esc__call *notices, esc_error *err) {
  const char *keys[12], *vals[12];
  char timeout[16];
  if (check_conninfo(conninfo, err))
    return NULL;
  conn_params(conninfo, o, timeout, sizeof timeout, keys, vals);
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn) {
    esc__fail(err, ESC_ENOMEM, "connect to PostgreSQL: out of memory");
    return NULL;
  }
  PQsetNoticeReceiver(conn, on_notice, notices);
  if (PQstatus(conn) != CONNECTION_OK) {
    esc__fail_connect(err, conn, "connect to PostgreSQL");
    PQfinish(conn);
    return NULL;
  }
  if (esc__pg_session(conn, o->timeout_ms, err)) {
    PQfinish(conn);
    return NULL;
  }
  return conn;
}

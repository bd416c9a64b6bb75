/*
 * Session-level PostgreSQL connections for the projections module: a
 * worker's lease connection, its registry and dead letter connection, and
 * the short-lived ones of the admin calls. Session level matters: an
 * advisory lock belongs to the server session that took it, so these must
 * not go through a transaction-pooling PgBouncer (docs/operations.md).
 */
#include "projection_int.h"
#include "store_int.h"

#include <stdio.h>

/* A library does not write to stderr: server notices (a WARNING from
 * pg_advisory_unlock of a lock not held, say) are dropped. */
static void ignore_notice(void *arg, const PGresult *res) {
  (void)arg;
  (void)res;
}

PGconn *esc__pg_connect(const char *url, const char *app_name, esc_error *err) {
  const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
  const char *vals[] = {url ? url : esc_default_pg_url(),
                        app_name ? app_name : "esc", "10", NULL};
  /* expand_dbname: dbname may be a URL or a key=value conninfo. Keys
   * after it override what it says, as in esc_store_open: our
   * application_name names the role of the connection in pg_stat_activity
   * (and so in `esc projections`). */
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn) {
    esc__fail(err, ESC_ENOMEM, "connect to PostgreSQL: out of memory");
    return NULL;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    /* esc__fail_pg flattens libpq's multi-line message into one line. */
    esc__fail_pg(err, conn, NULL, "connect to PostgreSQL");
    if (err)
      err->code = ESC_ECONN;
    PQfinish(conn);
    return NULL;
  }
  PQsetNoticeReceiver(conn, ignore_notice, NULL);
  esc__clear(err);
  return conn;
}

char *esc__pg_schema_ident(PGconn *conn, const char *schema, esc_error *err) {
  const char *s = schema ? schema : "esc";
  char *ident = PQescapeIdentifier(conn, s, strlen(s));
  if (!ident)
    esc__fail_pg(err, conn, NULL, "quote schema name");
  return ident;
}

PGresult *esc__pg_exec(PGconn *conn, const char *sql, int n,
                       const char *const *values, ExecStatusType want,
                       const char *what, esc_error *err) {
  PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
  if (PQresultStatus(res) == want)
    return res;
  esc__fail_pg(err, conn, res, what);
  PQclear(res);
  return NULL;
}

esc_status esc__pg_failed(const esc_error *err) {
  return err && err->code ? err->code : ESC_EIO;
}

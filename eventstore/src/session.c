/*
 * Session-level PostgreSQL connections for the modules above the store
 * (<esc_internal/pg.h>): a worker's lease connection, its registry and
 * dead letter connection, and the short-lived ones of admin calls.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters, timeouts and messages as for esc_store_open (conn.c); the
 * application_name names the connection's role in pg_stat_activity (and
 * so in `esc projections`). Server notices (a WARNING from
 * pg_advisory_unlock of a lock not held, say) are dropped. */
PGconn *esc__pg_connect(const char *url, const char *app_name, esc_error *err) {
  struct esc__conn_opts o = {app_name, 0, 0};
  if (esc__timeout_ms(0, &o.timeout_ms, err))
    return NULL;
  PGconn *conn = esc__pg_open(url ? url : esc_default_pg_url(), &o, NULL, err);
  if (conn)
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
  struct esc__call call;
  int timeout_ms;
  esc__timeout_ms(0, &timeout_ms, NULL); /* checked when connecting */
  PGresult *res =
      esc__call_run(&call, conn, timeout_ms,
                    &(struct esc__query){.sql = sql, .n = n, .values = values});
  if (PQresultStatus(res) == want)
    return res;
  esc__fail_call(err, &call, res, what);
  PQclear(res);
  return NULL;
}

esc_status esc__pg_failed(const esc_error *err) {
  return err && err->code ? err->code : ESC_EIO;
}

esc_status esc__pg_read_identity(PGconn *conn, const char *schema, char *out,
                                 esc_error *err) {
  char sql[160];
  out[0] = '\0';
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return esc__pg_failed(err);
  snprintf(sql, sizeof sql, "SELECT id::text FROM %s.identity", ident);
  PQfreemem(ident);
  PGresult *res = esc__pg_exec(conn, sql, 0, NULL, PGRES_TUPLES_OK,
                               "read the store's identity", err);
  if (!res)
    return esc__pg_failed(err);
  if (PQntuples(res) == 1)
    snprintf(out, ESC__IDENTITY_SIZE, "%s", PQgetvalue(res, 0, 0));
  PQclear(res);
  return ESC_OK;
}

PGresult *esc__pg_exec_in(PGconn *conn, const char *schema, const char *sql_fmt,
                          int n, const char *const *values, ExecStatusType want,
                          const char *what, esc_error *err) {
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return NULL;
  /* Measured, not estimated: a format may name the schema more than once
   * (%1$s), and a short buffer would send PostgreSQL a truncated query. */
  int len = snprintf(NULL, 0, sql_fmt, ident);
  size_t size = len < 0 ? 0 : (size_t)len + 1;
  char *sql = size ? malloc(size) : NULL;
  if (sql)
    snprintf(sql, size, sql_fmt, ident);
  PQfreemem(ident);
  if (!sql) {
    esc__fail(err, ESC_ENOMEM, "%s: out of memory", what);
    return NULL;
  }
  PGresult *res = esc__pg_exec(conn, sql, n, values, want, what, err);
  free(sql);
  return res;
}

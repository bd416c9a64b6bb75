/*
 * PostgreSQL helpers for esc-bench: connections, simple queries, resetting
 * the esc schema between phases.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bench_pg_error(PGconn *conn, const PGresult *res) {
  static _Thread_local char buf[BENCH_ERR_MAX];
  const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  size_t n = strcspn(m, "\n");
  if (n >= sizeof(buf))
    n = sizeof(buf) - 1;
  memcpy(buf, m, n);
  buf[n] = '\0';
  return buf;
}

/* NOTICEs (DROP ... CASCADE lists, "does not exist, skipping") are noise
 * here; errors are reported through results. */
static void quiet_notices(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

PGconn *bench_pg_connect(const bench_config *cfg, char *err, size_t errlen) {
  const char *keys[] = {"dbname", "fallback_application_name", NULL};
  const char *vals[] = {cfg->pg_url, "esc-bench", NULL};
  PGconn *conn = PQconnectdbParams(keys, vals, 1);
  if (!conn) {
    bench_errf(err, errlen, "connect: out of memory");
    return NULL;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    bench_errf(err, errlen, "connect to %s: %s", cfg->pg_url,
               bench_pg_error(conn, NULL));
    PQfinish(conn);
    return NULL;
  }
  PQsetNoticeProcessor(conn, quiet_notices, NULL);
  return conn;
}

int bench_pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  int rc = 0;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    bench_errf(err, errlen, "%s", bench_pg_error(conn, res));
    rc = -1;
  }
  PQclear(res);
  return rc;
}

int bench_pg_query_i64(PGconn *conn, const char *sql, int64_t *out, char *err,
                       size_t errlen) {
  PGresult *res = PQexec(conn, sql);
  int rc = -1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    bench_errf(err, errlen, "%s", bench_pg_error(conn, res));
    goto out_clear;
  }
  if (PQntuples(res) != 1 || PQnfields(res) != 1 || PQgetisnull(res, 0, 0)) {
    bench_errf(err, errlen, "expected one value from: %s", sql);
    goto out_clear;
  }
  *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  rc = 0;
out_clear:
  PQclear(res);
  return rc;
}

char *bench_pg_ident(PGconn *conn, const char *name, char *err, size_t errlen) {
  char *q = PQescapeIdentifier(conn, name, strlen(name));
  char *copy;
  if (!q) {
    bench_errf(err, errlen, "quote %s: %s", name, bench_pg_error(conn, NULL));
    return NULL;
  }
  copy = malloc(strlen(q) + 1);
  if (copy)
    strcpy(copy, q);
  else
    bench_errf(err, errlen, "out of memory");
  PQfreemem(q);
  return copy;
}

int bench_pg_lock_schema(const bench_config *cfg, PGconn *conn, char *err,
                         size_t errlen) {
  const char *params[1] = {cfg->schema};
  PGresult *res = PQexecParams(
      conn, "SELECT pg_try_advisory_lock(hashtext('esc-bench:' || $1))", 1,
      NULL, params, NULL, NULL, 0);
  int rc = -1;
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
    bench_errf(err, errlen, "advisory lock: %s", bench_pg_error(conn, res));
  else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
    bench_errf(err, errlen,
               "another esc-bench is running on schema %s; use --schema",
               cfg->schema);
  else
    rc = 0;
  PQclear(res);
  return rc;
}

void bench_pg_checkpoint(const bench_config *cfg, PGconn *admin) {
  static bool warned;
  char err[BENCH_ERR_MAX];
  if (!cfg->checkpoint || warned)
    return;
  if (bench_pg_exec(admin, "CHECKPOINT", err, sizeof(err)) != 0) {
    bench_log("CHECKPOINT refused (%s); phases may see checkpoints start "
              "at different points",
              err);
    warned = true;
  }
}

static void show_setting(PGconn *conn, const char *name) {
  const char *params[1] = {name};
  PGresult *res = PQexecParams(conn, "SELECT current_setting($1)", 1, NULL,
                               params, NULL, NULL, 0);
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
    fprintf(stderr, " %s=%s", name, PQgetvalue(res, 0, 0));
  PQclear(res);
}

void bench_pg_describe(PGconn *conn) {
  int v = PQserverVersion(conn);
  fprintf(stderr, "esc-bench: PostgreSQL %d.%d:", v / 10000, v % 10000);
  show_setting(conn, "fsync");
  show_setting(conn, "synchronous_commit");
  show_setting(conn, "wal_sync_method");
  show_setting(conn, "shared_buffers");
  show_setting(conn, "max_wal_size");
  fputc('\n', stderr);
}

esc_store *bench_esc_open(const bench_config *cfg, char *err, size_t errlen) {
  return bench_esc_open_group(cfg, NULL, err, errlen);
}

esc_store *bench_esc_open_group(const bench_config *cfg, esc_group_commit *gc,
                                char *err, size_t errlen) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error e = ESC_ERROR_INIT;
  esc_store *st;

  o.schema = cfg->schema;
  o.app_name = "esc-bench";
  o.group_commit = gc;
  st = esc_store_open(cfg->pg_url, &o, &e);
  if (!st)
    bench_errf(err, errlen, "esc_store_open: %s: %s", esc_strerror(e.code),
               e.msg);
  return st;
}

/*
 * cfg->pg_url with synchronous_commit off, for untimed fills: each stream's
 * append is its own transaction, and waiting for thousands of WAL flushes
 * would make the set-up the slowest part of a scenario. A CHECKPOINT (or
 * the next synchronous commit) makes the data durable anyway. NULL when
 * the URL sets options itself (the fill then uses it as it is); malloc'ed.
 */
static char *async_conninfo(const char *url) {
  static const char uri_opt[] = "options=-c%20synchronous_commit%3Doff";
  static const char kv_opt[] = " options='-c synchronous_commit=off'";
  bool uri = strncmp(url, "postgresql://", 13) == 0 ||
             strncmp(url, "postgres://", 11) == 0;
  size_t n = strlen(url) + sizeof(uri_opt) + sizeof(kv_opt) + 2;
  char *out;
  if (strstr(url, "options") || !(out = malloc(n)))
    return NULL;
  if (uri)
    snprintf(out, n, "%s%c%s", url, strchr(url, '?') ? '&' : '?', uri_opt);
  else
    snprintf(out, n, "%s%s", url, kv_opt);
  return out;
}

esc_store *bench_esc_open_async(const bench_config *cfg, char *err,
                                size_t errlen) {
  bench_config async = *cfg;
  char *url = async_conninfo(cfg->pg_url);
  esc_store *st = NULL;
  if (url) {
    async.pg_url = url;
    st = bench_esc_open(&async, err, errlen);
    free(url);
  }
  return st ? st : bench_esc_open(cfg, err, errlen);
}

int bench_esc_reset(const bench_config *cfg, PGconn *admin, char *err,
                    size_t errlen) {
  char sql[256];
  esc_error e = ESC_ERROR_INIT;
  esc_store *st;
  int rc = -1;
  char *ident = bench_pg_ident(admin, cfg->schema, err, errlen);

  if (!ident)
    return -1;
  snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", ident);
  free(ident);
  if (bench_pg_exec(admin, sql, err, errlen) != 0)
    return -1;

  st = bench_esc_open(cfg, err, errlen);
  if (!st)
    return -1;
  if (esc_store_migrate(st, NULL, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc_store_migrate: %s: %s", esc_strerror(e.code),
               e.msg);
    goto out_free;
  }
  rc = 0;
out_free:
  esc_store_free(st);
  return rc;
}

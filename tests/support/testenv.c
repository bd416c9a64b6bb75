/* Helpers for integration and fault tests (see testenv.h). */
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

const char *esc_test_pg_url(void) {
  return esc_default_pg_url();
}

PGconn *esc_test_pg(void) {
  PGconn *conn = PQconnectdb(esc_test_pg_url());
  if (PQstatus(conn) != CONNECTION_OK) {
    fail_msg("cannot connect to %s: %s (did scripts/servers start run?)",
             esc_test_pg_url(), PQerrorMessage(conn));
  }
  return conn;
}

void esc_test_exec(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    PQclear(res);
    fail_msg("SQL failed: %s\n  %s", sql, msg);
  }
  PQclear(res);
}

static void drop_schema(const char *schema) {
  char sql[512];
  PGconn *conn = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning; DROP SCHEMA IF EXISTS \"%s\" "
           "CASCADE; "
           "DROP ROLE IF EXISTS \"%s_writer\"; "
           "DROP ROLE IF EXISTS \"%s_reader\"",
           schema, schema, schema);
  esc_test_exec(conn, sql);
  PQfinish(conn);
}

esc_store *esc_test_open_store(const char *schema) {
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  opts.schema = schema;
  esc_store *st = esc_store_open(NULL, &opts, &err);
  if (!st)
    fail_msg("esc_store_open(%s): %s", schema, err.msg);
  return st;
}

esc_store *esc_test_fresh_store(const char *schema) {
  esc_error err = ESC_ERROR_INIT;
  int applied = 0;
  drop_schema(schema);
  esc_store *st = esc_test_open_store(schema);
  if (esc_store_migrate(st, &applied, &err) != ESC_OK)
    fail_msg("migrate %s: %s", schema, err.msg);
  assert_true(applied >= 1);
  return st;
}

size_t esc_test_payload(unsigned char *buf, long long n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "n", 1);
  msgpack_pack_long_long(&pk, n);
  size_t len = sb.size;
  memcpy(buf, sb.data, len);
  msgpack_sbuffer_destroy(&sb);
  return len;
}

static PGresult *query_one(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 ||
      PQnfields(res) < 1) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    PQclear(res);
    fail_msg("SQL returned no value: %s\n  %s", sql, msg);
  }
  return res;
}

long long esc_test_query_ll(PGconn *conn, const char *sql) {
  PGresult *res = query_one(conn, sql);
  if (PQgetisnull(res, 0, 0)) {
    PQclear(res);
    fail_msg("SQL returned NULL: %s", sql);
  }
  long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return v;
}

char *esc_test_query_text(PGconn *conn, const char *sql) {
  PGresult *res = query_one(conn, sql);
  char *v = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

void esc_test_exec_fails(PGconn *conn, const char *sql, char sqlstate[6]) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    PQclear(res);
    fail_msg("SQL succeeded but should have failed: %s", sql);
  }
  if (sqlstate) {
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", code ? code : "");
  }
  PQclear(res);
}

long long esc_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void esc_test_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static PGconn *tracked[16];
static size_t ntracked;

PGconn *esc_test_pg_tracked(void) {
  if (ntracked == sizeof tracked / sizeof *tracked)
    fail_msg("too many tracked connections");
  PGconn *conn = esc_test_pg();
  tracked[ntracked++] = conn;
  return conn;
}

int esc_test_close_tracked(void **state) {
  (void)state;
  while (ntracked > 0)
    PQfinish(tracked[--ntracked]);
  return 0;
}

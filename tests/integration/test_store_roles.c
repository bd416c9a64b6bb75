/*
 * Roles belong to one store (#11 item 2). PostgreSQL roles are
 * cluster-wide, and a store's roles used to be named from its schema
 * alone: the writer of schema t_roles in one database was the writer of
 * t_roles in every other database of the server. Now a store's roles are
 * named from database and schema (or given), recorded, and a role that
 * already holds rights elsewhere is refused unless shared on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_roles"

static char db_b[64], url_b[512];

/* ESC_PG_URL with another database. */
static void url_of(const char *db, char *out, size_t size) {
  const char *base = esc_test_pg_url();
  const char *slash = strrchr(base, '/');
  const char *query = strchr(base, '?');
  if (!slash || slash < strstr(base, "://") + 3)
    fail_msg("cannot put a database into %s", base);
  snprintf(out, size, "%.*s/%s%s", (int)(slash - base), base, db,
           query ? query : "");
}

static esc_store *open_in(const char *url, const char *schema) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  esc_store *st = esc_store_open(url, &o, &err);
  if (!st)
    fail_msg("open %s in %s: %s", schema, url, err.msg);
  return st;
}

static void migrate(esc_store *st, const esc_migrate_options *o) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_migrate_with(st, o, NULL, &err))
    fail_msg("migrate: %s", err.msg);
}

static int setup(void **state) {
  (void)state;
  snprintf(db_b, sizeof db_b, "t_roles_b_%d", (int)getpid());
  url_of(db_b, url_b, sizeof url_b);
  PGconn *c = esc_test_pg();
  char sql[128];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_b);
  esc_test_exec(c, sql);
  PQfinish(c);
  return 0;
}

/* Drops the schemas of database B, then B, then our schema of the
 * default database, with the roles each recorded. */
static int teardown(void **state) {
  (void)state;
  char sql[512];
  PGconn *b = PQconnectdb(url_b);
  if (PQstatus(b) == CONNECTION_OK)
    PQclear(PQexec(b, "SET client_min_messages = warning;"
                      " DROP SCHEMA IF EXISTS " SCHEMA " CASCADE;"
                      " DROP SCHEMA IF EXISTS t_roles_x CASCADE"));
  PQfinish(b);
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db_b);
  esc_test_exec(c, sql);
  PQfinish(c);
  esc_test_drop_schema(SCHEMA);
  c = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning;"
           " DROP ROLE IF EXISTS %s_" SCHEMA "_writer, %s_" SCHEMA "_reader",
           db_b, db_b);
  esc_test_exec(c, sql);
  PQfinish(c);
  return 0;
}

/* As role, in the database of conn: SQLSTATE of an append, "" if it
 * worked. */
static void append_as(PGconn *conn, const char *role, char code[6]) {
  char sql[512];
  snprintf(sql, sizeof sql, "SET ROLE \"%s\"", role);
  esc_test_exec(conn, sql);
  PGresult *r = PQexec(conn,
                       "SELECT status FROM " SCHEMA ".append('s-1', -1,"
                       " ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY[1],"
                       " ARRAY['\\x80'::bytea], ARRAY[NULL::bytea])");
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  snprintf(code, 6, "%s", PQresultStatus(r) == PGRES_TUPLES_OK ? "" : st);
  PQclear(r);
  esc_test_exec(conn, "RESET ROLE");
}

static void a_writer_of_one_database_cannot_append_in_another(void **state) {
  (void)state;
  char wa[ESC_ROLE_NAME_MAX], ra[ESC_ROLE_NAME_MAX];
  char wb[ESC_ROLE_NAME_MAX], rb[ESC_ROLE_NAME_MAX], code[6];
  esc_error err = ESC_ERROR_INIT;
  esc_store *a = esc_test_fresh_store(SCHEMA);
  esc_store *b = open_in(url_b, SCHEMA);
  migrate(b, NULL);
  assert_int_equal(esc_store_roles(a, wa, ra, &err), ESC_OK);
  assert_int_equal(esc_store_roles(b, wb, rb, &err), ESC_OK);
  assert_string_not_equal(wa, wb);
  assert_string_not_equal(ra, rb);
  assert_non_null(strstr(wb, db_b)); /* named from database and schema */

  PGconn *in_b = PQconnectdb(url_b);
  assert_int_equal(PQstatus(in_b), CONNECTION_OK);
  append_as(in_b, wb, code);
  assert_string_equal(code, ""); /* B's writer appends in B */
  append_as(in_b, wa, code);
  assert_string_equal(code, "42501"); /* A's writer may not */

  /* Naming A's writer for another store of B is refused... */
  esc_store *x = open_in(url_b, "t_roles_x");
  esc_migrate_options o = ESC_MIGRATE_OPTIONS_INIT;
  o.writer_role = wa;
  err = (esc_error)ESC_ERROR_INIT;
  assert_int_equal(esc_store_migrate_with(x, &o, NULL, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, wa));
  assert_non_null(strstr(err.msg, "--share-roles"));
  /* ...and nothing was created. */
  assert_int_equal(esc_store_roles(x, wb, rb, &err), ESC_ENOTFOUND);
  /* Shared on purpose, it is granted and recorded. */
  o.share_roles = true;
  char reader_x[96];
  snprintf(reader_x, sizeof reader_x, "%s_x_reader", db_b);
  o.reader_role = reader_x;
  migrate(x, &o);
  assert_int_equal(esc_store_roles(x, wb, rb, &err), ESC_OK);
  assert_string_equal(wb, wa);
  /* A migrate that names other roles than the recorded ones renames
   * nothing. */
  o.writer_role = "someone_else";
  assert_int_equal(esc_store_migrate_with(x, &o, NULL, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "does not rename"));
  esc_store_free(x);
  PQclear(PQexec(in_b, "SET client_min_messages = warning;"
                       " DROP SCHEMA t_roles_x CASCADE"));
  char sql[160];
  snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s", reader_x);
  PQclear(PQexec(in_b, sql));
  PQfinish(in_b);
  esc_store_free(b);
  esc_store_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          a_writer_of_one_database_cannot_append_in_another, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

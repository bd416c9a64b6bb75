/*
 * Migrations: the SQL files of eventstore/sql, compiled into the library,
 * applied in order, each once, each in its own transaction. An advisory
 * lock makes concurrent `esc migrate` runs wait for each other.
 */
#include "roles.h"
#include "store_int.h"
#include <esc_internal/embedded.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SQL files of eventstore/sql, in order (generated). */
extern const struct esc__embedded esc__migrations[];

struct subst {
  const char *placeholder;
  char *value;
};

enum {
  S_SCHEMA,
  S_WRITER,
  S_READER,
  S_WRITER_LIT,
  S_READER_LIT,
  S_CHANNEL_LIT,
  NSUBST
};

static void free_substs(struct subst *s) {
  for (int i = 0; i < NSUBST; i++)
    PQfreemem(s[i].value);
}

static bool make_substs(esc_store *st, const char *writer, const char *reader,
                        struct subst *s) {
  PGconn *c = st->conn;
  s[S_SCHEMA] = (struct subst){
      "@SCHEMA@", PQescapeIdentifier(c, st->schema, strlen(st->schema))};
  s[S_WRITER] =
      (struct subst){"@WRITER@", PQescapeIdentifier(c, writer, strlen(writer))};
  s[S_READER] =
      (struct subst){"@READER@", PQescapeIdentifier(c, reader, strlen(reader))};
  s[S_WRITER_LIT] = (struct subst){"@WRITER_LIT@",
                                   PQescapeLiteral(c, writer, strlen(writer))};
  s[S_READER_LIT] = (struct subst){"@READER_LIT@",
                                   PQescapeLiteral(c, reader, strlen(reader))};
  s[S_CHANNEL_LIT] = (struct subst){
      "@CHANNEL_LIT@", PQescapeLiteral(c, st->channel, strlen(st->channel))};
  for (int i = 0; i < NSUBST; i++)
    if (!s[i].value)
      return false;
  return true;
}

/* Returns a malloc'ed copy of the file's text with placeholders replaced. */
static char *substitute(const struct esc__embedded *f, const struct subst *s) {
  struct esc__buf out = {0};
  const char *p = f->data, *end = f->data + f->len;
  while (p < end) {
    const struct subst *hit = NULL;
    if (*p == '@')
      for (int i = 0; i < NSUBST && !hit; i++)
        if ((size_t)(end - p) >= strlen(s[i].placeholder) &&
            memcmp(p, s[i].placeholder, strlen(s[i].placeholder)) == 0)
          hit = &s[i];
    const char *piece = hit ? hit->value : p;
    size_t len = hit ? strlen(hit->value) : 1;
    if (!esc__buf_reserve(&out, len + 1)) {
      esc__buf_release(&out);
      return NULL;
    }
    memcpy(out.data + out.len, piece, len);
    out.len += len;
    p += hit ? strlen(hit->placeholder) : 1;
  }
  if (!esc__buf_reserve(&out, 1)) {
    esc__buf_release(&out);
    return NULL;
  }
  out.data[out.len] = '\0';
  return (char *)out.data;
}

static esc_status run_sql(esc_store *st, const char *sql, const char *what,
                          esc_error *err) {
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = sql});
  ExecStatusType kind = PQresultStatus(res);
  esc_status rc = ESC_OK;
  if (kind != PGRES_COMMAND_OK && kind != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, st, res, what);
  PQclear(res);
  return rc;
}

static esc_status record_applied(esc_store *st, const char *sql, int version,
                                 const char *name, const char *what,
                                 esc_error *err) {
  char v[16];
  snprintf(v, sizeof v, "%d", version);
  const char *values[] = {v, name};
  PGresult *res =
      esc__exec(st, &(struct esc__query){.sql = sql, .n = 2, .values = values});
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = esc__fail_store(err, st, res, what);
  PQclear(res);
  return rc;
}

static bool is_applied(esc_store *st, int version, esc_status *rc,
                       esc_error *err) {
  char sql[160];
  snprintf(sql, sizeof sql, "SELECT 1 FROM %s.migrations WHERE version = %d",
           st->schema_ident, version);
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = sql});
  bool applied = false;
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    *rc = esc__fail_store(err, st, res, "migrate: read applied versions");
  else
    applied = PQntuples(res) > 0;
  PQclear(res);
  return applied;
}

static esc_status apply_one(esc_store *st, const struct esc__embedded *f,
                            int version, const struct subst *s,
                            esc_error *err) {
  char what[128], record[256];
  char *sql = substitute(f, s);
  if (!sql)
    return esc__fail(err, ESC_ENOMEM, "migrate %s: out of memory", f->name);
  snprintf(what, sizeof what, "migrate %s", f->name);
  snprintf(record, sizeof record,
           "INSERT INTO %s.migrations (version, name) VALUES ($1::int, $2)",
           st->schema_ident);
  esc_status rc = run_sql(st, "BEGIN", what, err);
  if (!rc)
    rc = run_sql(st, sql, what, err);
  if (!rc)
    rc = record_applied(st, record, version, f->name, what, err);
  if (!rc)
    rc = run_sql(st, "COMMIT", what, err);
  else
    run_sql(st, "ROLLBACK", what, NULL);
  free(sql);
  return rc;
}

static esc_status apply_all(esc_store *st, const esc_migrate_options *o,
                            int *applied, esc_error *err) {
  struct subst s[NSUBST] = {{0}};
  char sql[256], writer[ESC__ROLE_MAX], reader[ESC__ROLE_MAX];
  esc_status rc = esc__roles_resolve(st, o, writer, reader, err);
  if (rc)
    return rc;
  if (!make_substs(st, writer, reader, s)) {
    free_substs(s);
    return esc__fail_pg(err, st->conn, NULL, "migrate: quote names");
  }
  snprintf(sql, sizeof sql,
           "CREATE SCHEMA IF NOT EXISTS %s; "
           "CREATE TABLE IF NOT EXISTS %s.migrations (version int PRIMARY "
           "KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
           "now())",
           st->schema_ident, st->schema_ident);
  rc = run_sql(st, sql, "migrate: create schema", err);
  for (const struct esc__embedded *f = esc__migrations; !rc && f->name; f++) {
    int version = atoi(f->name); /* files are named NNN_what.sql */
    if (is_applied(st, version, &rc, err) || rc)
      continue;
    rc = apply_one(st, f, version, s, err);
    if (!rc && applied)
      (*applied)++;
  }
  free_substs(s);
  return rc;
}

esc_status esc_store_migrate(esc_store *store, int *applied, esc_error *err) {
  return esc_store_migrate_with(store, NULL, applied, err);
}

esc_status esc_store_migrate_with(esc_store *store,
                                  const esc_migrate_options *opts,
                                  int *applied, esc_error *err) {
  char sql[160];
  int count = 0;
  esc_status rc = esc__ensure_conn(store, err);
  if (rc)
    return rc;
  /* One lock key per schema; the literal is a validated schema name. */
  snprintf(sql, sizeof sql,
           "SELECT pg_advisory_lock(hashtext('esc.migrate.%s'))",
           store->schema);
  rc = run_sql(store, sql, "migrate: lock", err);
  if (rc)
    return rc;
  rc = apply_all(store, opts, &count, err);
  snprintf(sql, sizeof sql,
           "SELECT pg_advisory_unlock(hashtext('esc.migrate.%s'))",
           store->schema);
  run_sql(store, sql, "migrate: unlock", NULL);
  if (applied)
    *applied = count;
  if (!rc)
    esc__clear(err);
  return rc;
}

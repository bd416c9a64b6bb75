/*
 * The roles of a store: which writer and reader role its migrations grant
 * to. PostgreSQL roles are cluster-wide, so names made from the schema
 * alone ("<schema>_writer", what stores before migration 10 have) give the
 * writer of schema esc in database A the writer rights of schema esc in
 * database B. A new store's roles are named from database and schema, or
 * as `esc migrate --writer-role/--reader-role` says; a role that already
 * holds rights elsewhere is refused unless sharing was asked for. The
 * names are recorded in <schema>.store_roles (migration 10), so later
 * migrations grant to the same roles.
 */
#include "roles.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One text value of a one-row query; false when there is none. */
static bool query_text(esc_store *st, const char *sql, int n,
                       const char *const *values, char *out, size_t size,
                       esc_status *rc, esc_error *err) {
  PGresult *res =
      esc__exec(st, &(struct esc__query){.sql = sql, .n = n, .values = values});
  bool found = false;
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    *rc = esc__fail_store(err, st, res, "migrate: find the store's roles");
  else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
    snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
    found = true;
  }
  PQclear(res);
  return found;
}

static uint32_t fnv1a32(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

/* "<db>_<schema>_<what>", kept within PostgreSQL's 63 bytes: a longer
 * base is cut and given a hash of the whole, so two stores never share a
 * name by truncation. */
static void default_name(const char *db, const char *schema, const char *what,
                         char out[ESC__ROLE_MAX]) {
  char base[256];
  snprintf(base, sizeof base, "%s_%s", db, schema);
  if (strlen(base) + 1 + strlen(what) <= ESC__ROLE_MAX - 1)
    snprintf(out, ESC__ROLE_MAX, "%.56s_%.6s", base, what); /* fits: above */
  else
    snprintf(out, ESC__ROLE_MAX, "%.40s_%08x_%s", base, fnv1a32(base), what);
}

/* Names recorded by migration 10, or those of a store made before it. */
static bool existing_names(esc_store *st, char *writer, char *reader,
                           esc_status *rc, esc_error *err) {
  char sql[256], tmp[16];
  const char *values[] = {st->schema};
  snprintf(sql, sizeof sql,
           "SELECT to_regclass(quote_ident($1) || '.store_roles')::text");
  if (query_text(st, sql, 1, values, tmp, sizeof tmp, rc, err)) {
    snprintf(sql, sizeof sql, "SELECT writer || ' ' || reader FROM %s.store_roles",
             st->schema_ident);
    char both[2 * ESC__ROLE_MAX + 2];
    if (!query_text(st, sql, 0, NULL, both, sizeof both, rc, err))
      return false;
    char *space = strchr(both, ' ');
    if (!space)
      return false;
    *space = '\0';
    snprintf(writer, ESC__ROLE_MAX, "%.63s", both);
    snprintf(reader, ESC__ROLE_MAX, "%.63s", space + 1);
    return true;
  }
  snprintf(sql, sizeof sql,
           "SELECT to_regclass(quote_ident($1) || '.events')::text");
  if (*rc || !query_text(st, sql, 1, values, tmp, sizeof tmp, rc, err))
    return false;
  snprintf(writer, ESC__ROLE_MAX, "%s_writer", st->schema);
  snprintf(reader, ESC__ROLE_MAX, "%s_reader", st->schema);
  return true;
}

/* A role that exists and holds any right (an ACL entry, in any database
 * of the cluster) already belongs to another store. */
static esc_status check_unshared(esc_store *st, const char *role,
                                 const char *option, esc_error *err) {
  static const char sql[] =
      "SELECT coalesce(d.datname, '(the cluster)') FROM pg_shdepend s"
      " JOIN pg_roles r ON r.oid = s.refobjid"
      " LEFT JOIN pg_database d ON d.oid = s.dbid"
      " WHERE r.rolname = $1 AND s.deptype = 'a' LIMIT 1";
  const char *values[] = {role};
  char db[128];
  esc_status rc = ESC_OK;
  if (query_text(st, sql, 1, values, db, sizeof db, &rc, err))
    return esc__fail(err, ESC_EINVAL,
                     "migrate %s: role \"%s\" already holds rights on "
                     "another store (in database %s); name other roles "
                     "(%s) or share it on purpose (--share-roles)",
                     st->schema, role, db, option);
  return rc;
}

esc_status esc__roles_resolve(esc_store *st, const esc_migrate_options *o,
                              char *writer, char *reader, esc_error *err) {
  esc_status rc = ESC_OK;
  char db[128];
  if (existing_names(st, writer, reader, &rc, err) || rc) {
    if (!rc && o && ((o->writer_role && strcmp(o->writer_role, writer)) ||
                     (o->reader_role && strcmp(o->reader_role, reader))))
      rc = esc__fail(err, ESC_EINVAL,
                     "migrate %s: the store's roles are \"%s\" and \"%s\"; "
                     "migrate does not rename them",
                     st->schema, writer, reader);
    return rc;
  }
  if (!query_text(st, "SELECT current_database()", 0, NULL, db, sizeof db, &rc,
                  err))
    return rc ? rc : esc__fail(err, ESC_EIO, "migrate: no current database");
  if ((o && o->writer_role && strlen(o->writer_role) >= ESC__ROLE_MAX) ||
      (o && o->reader_role && strlen(o->reader_role) >= ESC__ROLE_MAX))
    return esc__fail(err, ESC_EINVAL,
                     "migrate %s: a role name has at most %d bytes",
                     st->schema, ESC__ROLE_MAX - 1);
  if (o && o->writer_role)
    snprintf(writer, ESC__ROLE_MAX, "%s", o->writer_role);
  else
    default_name(db, st->schema, "writer", writer);
  if (o && o->reader_role)
    snprintf(reader, ESC__ROLE_MAX, "%s", o->reader_role);
  else
    default_name(db, st->schema, "reader", reader);
  if (strcmp(writer, reader) == 0)
    return esc__fail(err, ESC_EINVAL,
                     "migrate %s: the writer and reader role must differ",
                     st->schema);
  if (o && o->share_roles)
    return ESC_OK;
  rc = check_unshared(st, writer, "--writer-role", err);
  return rc ? rc : check_unshared(st, reader, "--reader-role", err);
}

esc_status esc_store_roles(esc_store *store, char writer[ESC_ROLE_NAME_MAX],
                           char reader[ESC_ROLE_NAME_MAX], esc_error *err) {
  esc_status rc = esc__ensure_conn(store, err);
  if (rc)
    return rc;
  if (!existing_names(store, writer, reader, &rc, err) && !rc)
    rc = esc__fail(err, ESC_ENOTFOUND, "schema %s is not an event store "
                   "(run esc migrate)", store->schema);
  return rc;
}

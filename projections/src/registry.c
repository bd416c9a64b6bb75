/*
 * The projection registry: <schema>.projections, one row per projection a
 * worker runs (what `esc projections` lists), the projection's partition
 * layout, and the rebuild requests of `esc rebuild`. A request is pending
 * while rebuild_requested_at is set and later than rebuild_taken_at;
 * taking it stamps rebuild_taken_at, so two requests before a worker looks
 * start one rebuild, and a request made while a rebuild runs starts another
 * one after it.
 *
 * The layout (partitions, repartition_to) is the store's, not the
 * workers': the first registration sets it, later ones leave it alone, and
 * only a repartition (esc_projection_repartition, then the switch) changes
 * it. See docs/decisions/0012-partition-layout.md.
 */
#include "projection_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

/*
 * A text[] literal for a NULL-terminated list, e.g. {"order","invoice"}:
 * every element quoted, '"' and '\' escaped, so it is passed as a
 * parameter like any other value. NULL for a NULL list (SQL NULL: all);
 * *oom tells an allocation failure apart. The caller frees.
 */
static char *array_literal(const char *const *list, bool *oom) {
  struct esc__buf b = {0};
  *oom = false;
  if (!list)
    return NULL;
  if (!esc__buf_reserve(&b, 2))
    goto fail;
  b.data[b.len++] = '{';
  for (size_t i = 0; list[i]; i++) {
    size_t n = strlen(list[i]);
    /* worst case: every byte escaped, quotes, comma */
    if (!esc__buf_reserve(&b, 2 * n + 4))
      goto fail;
    if (i > 0)
      b.data[b.len++] = ',';
    b.data[b.len++] = '"';
    for (size_t j = 0; j < n; j++) {
      if (list[i][j] == '"' || list[i][j] == '\\')
        b.data[b.len++] = '\\';
      b.data[b.len++] = (unsigned char)list[i][j];
    }
    b.data[b.len++] = '"';
  }
  if (!esc__buf_reserve(&b, 2))
    goto fail;
  b.data[b.len++] = '}';
  b.data[b.len] = '\0';
  return (char *)b.data;
fail:
  esc__buf_release(&b);
  *oom = true;
  return NULL;
}

/* ------------------------------------------------------------- upsert -- */

/* The layout columns of a registry row, as text, into out. */
static void read_layout(const PGresult *res, int col, struct esc__layout *out) {
  out->partitions = (int)strtol(PQgetvalue(res, 0, col), NULL, 10);
  out->repartition_to =
      PQgetisnull(res, 0, col + 1)
          ? 0
          : (int)strtol(PQgetvalue(res, 0, col + 1), NULL, 10);
}

esc_status esc__registry_upsert(PGconn *conn, const char *schema,
                                const esc_projection *p,
                                struct esc__layout *layout, esc_error *err) {
  char sql[700], what[128], version[16], partitions[16];
  bool oom_c = false, oom_t = false;
  if (!esc__projection_name_valid(p->name, err))
    return ESC_EINVAL;
  if (p->version < 1)
    return esc__fail(err, ESC_EINVAL,
                     "register projection %s: version %d; must be >= 1",
                     p->name, (int)p->version);
  snprintf(what, sizeof what, "register projection %s", p->name);
  snprintf(version, sizeof version, "%d", (int)p->version);
  snprintf(partitions, sizeof partitions, "%d",
           p->partitions > 0 ? p->partitions : 1);
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return err ? err->code : ESC_EIO;
  char *cats = array_literal(p->categories, &oom_c);
  char *types = array_literal(p->event_types, &oom_t);
  esc_status rc = ESC_OK;
  if (oom_c || oom_t) {
    rc = esc__fail(err, ESC_ENOMEM, "%s: out of memory", what);
    goto out;
  }
  snprintf(sql, sizeof sql,
           /* partitions stays: the layout is set once (see above) */
           "SELECT partitions, repartition_to FROM %s.projection_register("
           "$1, $2::int, $3::int, $4::text[], $5::text[])",
           ident);
  const char *values[] = {p->name, version, partitions, cats, types};
  PGresult *res =
      esc__pg_exec(conn, sql, 5, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    rc = err ? err->code : ESC_EIO;
  else if (PQntuples(res) != 1)
    rc = esc__fail(err, ESC_EIO, "%s: expected one row", what);
  else
    read_layout(res, 0, layout);
  PQclear(res);
out:
  free(cats);
  free(types);
  PQfreemem(ident);
  if (!rc)
    esc__clear(err);
  return rc;
}

/* ----------------------------------------------------------- rebuilds -- */

esc_status esc__registry_read(PGconn *conn, const char *schema,
                              const char *name, struct esc__layout *out,
                              bool *found, esc_error *err) {
  char sql[448], what[128];
  *out = (struct esc__layout){1, 0, false};
  *found = false;
  snprintf(what, sizeof what, "read the registry row of %s", name);
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return err ? err->code : ESC_EIO;
  snprintf(sql, sizeof sql,
           "SELECT partitions, repartition_to,"
           " rebuild_requested_at IS NOT NULL AND"
           " (rebuild_taken_at IS NULL"
           "  OR rebuild_taken_at < rebuild_requested_at)"
           " FROM %s.projections WHERE name = $1",
           ident);
  PQfreemem(ident);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec(conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return err ? err->code : ESC_EIO;
  /* No row: never registered, so nothing was requested. */
  *found = PQntuples(res) == 1;
  if (*found) {
    read_layout(res, 0, out);
    out->rebuild_requested = PQgetvalue(res, 0, 2)[0] == 't';
  }
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

esc_status esc__registry_rebuild_taken(PGconn *conn, const char *schema,
                                       const char *name, esc_error *err) {
  char sql[256], what[128];
  snprintf(what, sizeof what, "take the rebuild request of %s", name);
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return err ? err->code : ESC_EIO;
  /* Requests stamped before now are satisfied by the rebuild starting
   * now (it replays the whole log), so they are all taken at once. */
  snprintf(sql, sizeof sql,
           "SELECT %s.projection_rebuild_taken($1)",
           ident);
  PQfreemem(ident);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec(conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return err ? err->code : ESC_EIO;
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

/* ------------------------------------------------------------- layout -- */

esc_status esc__registry_layout_switched(PGconn *conn, const char *schema,
                                         const char *name, int partitions,
                                         esc_error *err) {
  char sql[256], what[128], n[16];
  snprintf(what, sizeof what, "record the layout of %s", name);
  snprintf(n, sizeof n, "%d", partitions);
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident)
    return err ? err->code : ESC_EIO;
  /* Only the pending change: a second switching worker, or one that reads
   * an old picture, changes nothing. */
  snprintf(sql, sizeof sql,
           "SELECT %s.projection_layout_switched($1, $2::int)",
           ident);
  PQfreemem(ident);
  const char *values[] = {name, n};
  PGresult *res =
      esc__pg_exec(conn, sql, 2, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return err ? err->code : ESC_EIO;
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

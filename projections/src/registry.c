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

#include <inttypes.h>
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

/* The categories and event types of p as text[] literals (NULL: all). */
struct filters {
  char *cats;
  char *types;
};

static esc_status filters_of(const esc_projection *p, struct filters *f,
                             const char *what, esc_error *err) {
  bool oom_c = false, oom_t = false;
  f->cats = array_literal(p->categories, &oom_c);
  f->types = array_literal(p->event_types, &oom_t);
  if (!oom_c && !oom_t)
    return ESC_OK;
  free(f->cats);
  free(f->types);
  *f = (struct filters){NULL, NULL};
  return esc__fail(err, ESC_ENOMEM, "%s: out of memory", what);
}

/* Runs a registration function (sql_fmt names it, %s: the schema) with n
 * parameters; its row's first two columns are the layout. A name the
 * other kind holds gives no row, or NULL partitions: ECONFLICT, saying
 * whose it is (other). *res is the row for the caller (PQclear). */
static esc_status call_register(PGconn *conn, const char *schema,
                                const char *sql_fmt, int n,
                                const char *const *values,
                                struct esc__layout *layout, const char *what,
                                const char *other, PGresult **res,
                                esc_error *err) {
  *res = esc__pg_exec_in(conn, schema, sql_fmt, n, values, PGRES_TUPLES_OK,
                         what, err);
  if (!*res)
    return esc__pg_failed(err);
  if (PQntuples(*res) > 1)
    return esc__fail(err, ESC_EIO, "%s: expected one row", what);
  if (PQntuples(*res) == 0 || PQgetisnull(*res, 0, 0))
    return esc__fail(err, ESC_ECONFLICT,
                     "%s: the name is taken by a %s of schema %s; "
                     "projections and subscriptions of a store need "
                     "distinct names",
                     what, other, schema ? schema : "esc");
  read_layout(*res, 0, layout);
  return ESC_OK;
}

esc_status esc__registry_upsert(PGconn *conn, const char *schema,
                                const esc_projection *p,
                                struct esc__layout *layout, esc_error *err) {
  char what[128], version[16], partitions[16];
  struct filters f;
  PGresult *res = NULL;
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
  esc_status rc = filters_of(p, &f, what, err);
  if (rc)
    return rc;
  const char *values[] = {p->name, version, partitions, f.cats, f.types};
  /* partitions stays: the layout is set once (see above) */
  rc = call_register(conn, schema,
                     "SELECT partitions, repartition_to FROM "
                     "%s.projection_register($1, $2::int, $3::int, "
                     "$4::text[], $5::text[])",
                     5, values, layout, what, "subscription", &res, err);
  PQclear(res);
  free(f.cats);
  free(f.types);
  if (!rc)
    esc__clear(err);
  return rc;
}

esc_status esc__registry_subscribe(PGconn *conn, const char *schema,
                                   const esc_projection *p,
                                   const esc_position *start,
                                   struct esc__layout *layout,
                                   int64_t *generation, esc_error *err) {
  char what[128], partitions[16], tx[24], global[24];
  struct filters f;
  PGresult *res = NULL;
  if (!esc__projection_name_valid(p->name, err))
    return ESC_EINVAL;
  snprintf(what, sizeof what, "register subscription %s", p->name);
  snprintf(partitions, sizeof partitions, "%d",
           p->partitions > 0 ? p->partitions : 1);
  snprintf(tx, sizeof tx, "%" PRIu64, start->tx_id);
  snprintf(global, sizeof global, "%" PRId64, start->global);
  esc_status rc = filters_of(p, &f, what, err);
  if (rc)
    return rc;
  const char *values[] = {p->name, partitions, f.cats, f.types, tx, global};
  rc = call_register(conn, schema,
                     "SELECT partitions, repartition_to, generation FROM "
                     "%s.subscription_register($1, $2::int, $3::text[], "
                     "$4::text[], $5::xid8, $6::int8)",
                     6, values, layout, what, "projection", &res, err);
  if (!rc)
    *generation = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
  PQclear(res);
  free(f.cats);
  free(f.types);
  if (!rc)
    esc__clear(err);
  return rc;
}

/* ----------------------------------------------------------- rebuilds -- */

esc_status esc__registry_read(PGconn *conn, const char *schema,
                              const char *name, struct esc__layout *out,
                              bool *found, esc_error *err) {
  char what[128];
  *out = (struct esc__layout){1, 0, false};
  *found = false;
  snprintf(what, sizeof what, "read the registry row of %s", name);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec_in(conn, schema,
                      "SELECT partitions, repartition_to,"
                      " rebuild_requested_at IS NOT NULL AND"
                      " (rebuild_taken_at IS NULL"
                      "  OR rebuild_taken_at < rebuild_requested_at)"
                      " FROM %s.projections WHERE name = $1",
                      1, values, PGRES_TUPLES_OK, what, err);
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
  char what[128];
  snprintf(what, sizeof what, "take the rebuild request of %s", name);
  /* Requests stamped before now are satisfied by the rebuild starting
   * now (it replays the whole log), so they are all taken at once. */
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec_in(conn, schema, "SELECT %s.projection_rebuild_taken($1)", 1,
                      values, PGRES_TUPLES_OK, what, err);
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
  char what[128], n[16];
  snprintf(what, sizeof what, "record the layout of %s", name);
  snprintf(n, sizeof n, "%d", partitions);
  /* Only the pending change: a second switching worker, or one that reads
   * an old picture, changes nothing. */
  const char *values[] = {name, n};
  PGresult *res = esc__pg_exec_in(
      conn, schema, "SELECT %s.projection_layout_switched($1, $2::int)", 2,
      values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return err ? err->code : ESC_EIO;
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

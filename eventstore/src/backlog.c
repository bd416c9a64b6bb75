/*
 * Where the log stands for its subscribers: how far it reaches, whether
 * all of it is readable yet, and what a subscriber at a position still has
 * to read. Projection workers and `esc projections` measure catch-up and
 * lag with these instead of querying the events table themselves.
 * Occasional calls (a status, the end of a catch-up): SQL text, not
 * prepared statements.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BELOW_HORIZON "tx_id < pg_snapshot_xmin(pg_current_snapshot())"

/* Runs sql on the store's connection; the result when it has rows. */
static PGresult *run(esc_store *st, const char *sql, int n,
                     const char *const *values, const char *what,
                     esc_error *err) {
  if (esc__ensure_conn(st, err))
    return NULL;
  PGresult *res =
      esc__exec(st, &(struct esc__query){.sql = sql, .n = n, .values = values});
  if (PQresultStatus(res) == PGRES_TUPLES_OK)
    return res;
  esc__fail_store(err, st, res, what);
  PQclear(res);
  return NULL;
}

esc_status esc_store_newest(esc_store *store, int64_t *global, esc_error *err) {
  char sql[128];
  *global = 0;
  snprintf(sql, sizeof sql,
           "SELECT coalesce(max(global_position), 0) FROM %s.events",
           store->schema_ident);
  PGresult *res = run(store, sql, 0, NULL, "read the newest position", err);
  if (!res)
    return err && err->code ? err->code : ESC_EIO;
  *global = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return ESC_OK;
}

esc_status esc_store_readable_through(esc_store *store, int64_t through,
                                      bool *yes, esc_error *err) {
  char sql[256], pos[24];
  *yes = false;
  snprintf(sql, sizeof sql,
           "SELECT NOT EXISTS (SELECT 1 FROM %s.events WHERE NOT " BELOW_HORIZON
           " AND global_position <= $1::int8)",
           store->schema_ident);
  snprintf(pos, sizeof pos, "%" PRId64, through);
  const char *values[] = {pos};
  PGresult *res = run(store, sql, 1, values, "read the horizon", err);
  if (!res)
    return err && err->code ? err->code : ESC_EIO;
  *yes = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return ESC_OK;
}

/* The categories as a text[] literal ({"a","b"}, each element quoted
 * with '"' and '\\' escaped); NULL (all) for NULL. A category no stream
 * can have simply matches nothing. */
static esc_status categories_literal(const char *const *cats, char **out,
                                     esc_error *err) {
  *out = NULL;
  if (!cats)
    return ESC_OK;
  size_t len = 3;
  for (size_t i = 0; cats[i]; i++)
    len += 2 * strlen(cats[i]) + 3;
  char *s = malloc(len);
  if (!s)
    return esc__fail(err, ESC_ENOMEM, "backlog: out of memory");
  size_t at = 0;
  s[at++] = '{';
  for (size_t i = 0; cats[i]; i++) {
    if (i)
      s[at++] = ',';
    s[at++] = '"';
    for (const char *c = cats[i]; *c; c++) {
      if (*c == '"' || *c == '\\')
        s[at++] = '\\';
      s[at++] = *c;
    }
    s[at++] = '"';
  }
  s[at++] = '}';
  s[at] = '\0';
  *out = s;
  return ESC_OK;
}

/* Copies the result's rows (stream, count, age, newest position) into
 * out, in one block. */
static esc_status take_rows(PGresult *res, bool per_stream, esc_backlog *out,
                            esc_error *err) {
  size_t rows = (size_t)PQntuples(res), strings = 0;
  for (size_t i = 0; per_stream && i < rows; i++)
    strings += strlen(PQgetvalue(res, (int)i, 0)) + 1;
  int col = per_stream ? 1 : 0;
  out->streams = calloc(1, rows * sizeof *out->streams + strings + 1);
  if (!out->streams)
    return esc__fail(err, ESC_ENOMEM, "backlog: out of memory");
  char *text = (char *)(out->streams + rows);
  for (size_t i = 0; i < rows; i++) {
    esc_backlog_stream *s = &out->streams[i];
    s->stream_id = text;
    if (per_stream) {
      const char *id = PQgetvalue(res, (int)i, 0);
      size_t n = strlen(id) + 1;
      memcpy(text, id, n);
      text += n;
    }
    s->events = strtoll(PQgetvalue(res, (int)i, col), NULL, 10);
    s->oldest_age_s = strtod(PQgetvalue(res, (int)i, col + 1), NULL);
    int64_t last = strtoll(PQgetvalue(res, (int)i, col + 2), NULL, 10);
    if (last > out->last_global)
      out->last_global = last;
    out->events += s->events;
    if (s->oldest_age_s > out->oldest_age_s)
      out->oldest_age_s = s->oldest_age_s;
  }
  out->count = rows;
  return ESC_OK;
}

esc_status esc_store_backlog(esc_store *store, const char *const *categories,
                             const esc_position *after, bool per_stream,
                             esc_backlog *out, esc_error *err) {
  return esc_store_backlog_upto(store, categories, after, per_stream, 0, out,
                                err);
}

/* With a bound, the oldest events are taken in subscription order first
 * (an index range scan that stops at the bound) and counted after. */
esc_status esc_store_backlog_upto(esc_store *store,
                                  const char *const *categories,
                                  const esc_position *after, bool per_stream,
                                  int64_t max_events, esc_backlog *out,
                                  esc_error *err) {
  char sql[768], tx[24], global[24], limit[24], *cats;
  memset(out, 0, sizeof *out);
  esc_status rc = categories_literal(categories, &cats, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql,
           "SELECT %scount(*), coalesce(greatest(0, extract(epoch FROM"
           " now() - min(recorded_at))), 0)::float8,"
           " coalesce(max(global_position), 0)"
           " FROM (SELECT stream_id, recorded_at, global_position FROM %s.events"
           " WHERE (tx_id, global_position) > ($1::xid8, $2::int8)"
           " AND " BELOW_HORIZON " AND ($3::text[] IS NULL"
           "      OR split_part(stream_id, '-', 1) = ANY ($3::text[]))%s) e%s",
           per_stream ? "stream_id, " : "", store->schema_ident,
           max_events > 0 ? " ORDER BY tx_id, global_position LIMIT $4::int8"
                          : "",
           per_stream ? " GROUP BY stream_id" : "");
  snprintf(tx, sizeof tx, "%" PRIu64, after->tx_id);
  snprintf(global, sizeof global, "%" PRId64, after->global);
  /* One past the bound, to tell "exactly max_events" from "more". */
  snprintf(limit, sizeof limit, "%" PRId64, max_events + 1);
  const char *values[] = {tx, global, cats, limit};
  PGresult *res = run(store, sql, max_events > 0 ? 4 : 3, values,
                      "read the backlog", err);
  free(cats);
  if (!res)
    return err && err->code ? err->code : ESC_EIO;
  rc = take_rows(res, per_stream, out, err);
  PQclear(res);
  out->capped = !rc && max_events > 0 && out->events > max_events;
  return rc;
}

void esc_backlog_release(esc_backlog *b) {
  if (!b)
    return;
  free(b->streams);
  memset(b, 0, sizeof *b);
}

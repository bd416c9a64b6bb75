/*
 * Looking at the store: one stream, a list of streams, and the numbers an
 * operator needs (including which transaction holds subscribers back).
 * Text-format results: none of this is on a hot path.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t to_i64(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col)
             ? 0
             : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void copy_text(char *dst, size_t size, const PGresult *res, int row,
                      int col) {
  snprintf(dst, size, "%s", PQgetvalue(res, row, col));
}

/* Row shape shared by esc_stream_get and esc_stream_list. */
#define STREAM_COLUMNS                                                         \
  "stream_id, version, truncated_before, tombstoned, "                         \
  "(extract(epoch FROM updated_at) * 1e6)::int8"

static void stream_row(const PGresult *res, int row, esc_stream_info *out,
                       bool binary) {
  if (binary) {
    copy_text(out->stream_id, sizeof out->stream_id, res, row, 0);
    out->version = (int64_t)esc__get_be64(PQgetvalue(res, row, 1));
    out->truncated_before = (int64_t)esc__get_be64(PQgetvalue(res, row, 2));
    out->tombstoned = PQgetvalue(res, row, 3)[0] != 0;
    out->updated_at_us = (int64_t)esc__get_be64(PQgetvalue(res, row, 4));
    return;
  }
  copy_text(out->stream_id, sizeof out->stream_id, res, row, 0);
  out->version = to_i64(res, row, 1);
  out->truncated_before = to_i64(res, row, 2);
  out->tombstoned = PQgetvalue(res, row, 3)[0] == 't';
  out->updated_at_us = to_i64(res, row, 4);
}

esc_status esc_stream_get(esc_store *store, const char *stream_id,
                          esc_stream_info *out, esc_error *err) {
  const char *stmt;
  esc_error inner = ESC_ERROR_INIT;
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner))
    return esc__fail(err, ESC_EINVAL, "stream: %s",
                     stream_id ? inner.msg : "stream id is NULL");
  esc_status rc = esc__prepare(store, ESC__STMT_STREAM_GET, &stmt, err);
  if (rc)
    return esc__prefix(err, rc, "stream info");
  PGresult *res = esc__exec_by_stream(store, stmt, stream_id);
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, store, res, "stream info");
  else if (PQntuples(res) == 0)
    rc = esc__fail(err, ESC_ENOTFOUND, "stream %s does not exist", stream_id);
  else
    stream_row(res, 0, out, true);
  PQclear(res);
  return rc;
}

esc_status esc_stream_list(esc_store *store, const char *category,
                           const char *after_id, esc_stream_info *out,
                           size_t max, size_t *count, esc_error *err) {
  char sql[512], limit[24];
  esc_error inner = ESC_ERROR_INIT;
  *count = 0;
  if (category && !esc_category_valid(category, &inner))
    return esc__fail(err, ESC_EINVAL, "list streams: %s", inner.msg);
  esc_status rc = esc__ensure_conn(store, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql,
           "SELECT " STREAM_COLUMNS " FROM %s.streams "
           "WHERE ($1::text IS NULL OR split_part(stream_id, '-', 1) = $1) AND "
           "stream_id > $2 "
           "ORDER BY stream_id LIMIT $3",
           store->schema_ident);
  snprintf(limit, sizeof limit, "%zu", max);
  const char *values[] = {category, after_id ? after_id : "", limit};
  PGresult *res =
      esc__exec(store, &(struct esc__query){.sql = sql, .n = 3, .values = values});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, store, res, "list streams");
  } else {
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
      stream_row(res, i, &out[i], false);
    *count = (size_t)n;
  }
  PQclear(res);
  return rc;
}

/* ---------------------------------------------------------- identity -- */

esc_status esc_store_identity(esc_store *store, esc_uuid *out, esc_error *err) {
  char sql[128];
  esc_status rc = esc__ensure_conn(store, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql, "SELECT id::text FROM %s.identity",
           store->schema_ident);
  PGresult *res = esc__exec(store, &(struct esc__query){.sql = sql});
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, store, res, "read the store's identity");
  else if (PQntuples(res) != 1)
    rc = esc__fail(err, ESC_EIO, "%s.identity holds %d rows, not one",
                   store->schema, PQntuples(res));
  else
    rc = esc_uuid_parse(PQgetvalue(res, 0, 0), out, err);
  PQclear(res);
  return rc;
}

/* ------------------------------------------------------------- stats -- */

/* Counts events and streams (exactly: expensive on a big store) when
 * `count`, else sets both to -1; the head and the highest position are
 * index lookups either way. */
static esc_status counts(esc_store *st, esc_store_stats *out, bool count,
                         esc_error *err) {
  char sql[768], events[160] = "-1", streams[160] = "-1";
  const char *s = st->schema_ident;
  if (count) {
    snprintf(events, sizeof events, "(SELECT count(*) FROM %s.events)", s);
    snprintf(streams, sizeof streams, "(SELECT count(*) FROM %s.streams)", s);
  }
  snprintf(sql, sizeof sql,
           "SELECT %s, %s, h.tx_id::text, h.global_position,"
           " (SELECT max(global_position) FROM %s.events)"
           " FROM (SELECT 1) one LEFT JOIN LATERAL"
           " (SELECT tx_id, global_position FROM %s.events"
           "   WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())"
           "   ORDER BY tx_id DESC, global_position DESC LIMIT 1) h ON true",
           events, streams, s, s);
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = sql});
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, st, res, "count events");
  } else {
    out->events = to_i64(res, 0, 0);
    out->streams = to_i64(res, 0, 1);
    out->head.tx_id = (uint64_t)strtoull(PQgetvalue(res, 0, 2), NULL, 10);
    out->head.global = to_i64(res, 0, 3);
    out->max_global = to_i64(res, 0, 4);
  }
  PQclear(res);
  return rc;
}

/* The oldest transaction that has an xid: it is what holds the horizon of
 * every subscriber (pg_snapshot_xmin) back. */
#define SQL_HOLDER                                                             \
  "SELECT pid, greatest(0, extract(epoch FROM clock_timestamp() "              \
  "- xact_start))::float8,"                                                    \
  " coalesce(state, ''), left(coalesce(query, ''), 150),"                      \
  " coalesce(application_name, '')"                                            \
  " FROM pg_stat_activity"                                                     \
  " WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"                 \
  " ORDER BY age(backend_xid) DESC LIMIT 1"

static esc_status horizon_holder(esc_store *st, esc_store_stats *out,
                                 esc_error *err) {
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = SQL_HOLDER});
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, st, res, "find the horizon holder");
  } else if (PQntuples(res) == 1) {
    out->holder_pid = (int)to_i64(res, 0, 0);
    out->holder_age_s = strtod(PQgetvalue(res, 0, 1), NULL);
    copy_text(out->holder_state, sizeof out->holder_state, res, 0, 2);
    copy_text(out->holder_query, sizeof out->holder_query, res, 0, 3);
    copy_text(out->holder_app, sizeof out->holder_app, res, 0, 4);
  }
  PQclear(res);
  return rc;
}

static esc_status stats(esc_store *store, esc_store_stats *out, bool count,
                        esc_error *err) {
  memset(out, 0, sizeof *out);
  esc_status rc = esc__ensure_conn(store, err);
  if (!rc)
    rc = counts(store, out, count, err);
  if (!rc)
    rc = horizon_holder(store, out, err);
  return rc;
}

esc_status esc_store_stats_get(esc_store *store, esc_store_stats *out,
                               esc_error *err) {
  return stats(store, out, true, err);
}

esc_status esc_store_health(esc_store *store, esc_store_stats *out,
                            esc_error *err) {
  return stats(store, out, false, err);
}

/*
 * Checking that subscription order agrees with stream order, and putting a
 * stream back in order where an old log (written before migration 5) does
 * not. Text-format results: admin work, never on a hot path.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t text_i64(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col)
             ? 0
             : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static esc_position text_position(const PGresult *res, int row, int col) {
  esc_position p = {strtoull(PQgetvalue(res, row, col), NULL, 10),
                    text_i64(res, row, col + 1)};
  return p;
}

/* Runs sql (schema as %s, parameters $1..) and checks for rows. */
static PGresult *query(esc_store *st, const char *fmt, int nparams,
                       const char *const *values, const char *what,
                       esc_status *rc, esc_error *err) {
  char sql[512];
  *rc = esc__ensure_conn(st, err);
  if (*rc)
    return NULL;
  snprintf(sql, sizeof sql, fmt, st->schema_ident, st->schema_ident);
  PGresult *res =
      PQexecParams(st->conn, sql, nparams, NULL, values, NULL, NULL, 0);
  if (PQresultStatus(res) == PGRES_TUPLES_OK)
    return res;
  *rc = esc__fail_pg(err, st->conn, res, what);
  PQclear(res);
  return NULL;
}

static void report_row(const PGresult *res, esc_order_report *out) {
  out->inversions = text_i64(res, 0, 0);
  out->streams = text_i64(res, 0, 1);
  out->checked_at_us = text_i64(res, 0, 2);
}

#define REPORT_COLUMNS                                                         \
  "inversions, streams, (extract(epoch FROM checked_at) * 1e6)::int8"

/* Counts and records; without the owner's right to record, only counts. */
static esc_status count_inversions(esc_store *st, esc_order_report *report,
                                   esc_error *err) {
  esc_status rc;
  PGresult *res = query(st, "SELECT " REPORT_COLUMNS
                            " FROM %s.record_order_check()",
                        0, NULL, "check stream order", &rc, err);
  if (!res && err && strcmp(err->sqlstate, "42501") == 0)
    res = query(st,
                "SELECT count(*), count(DISTINCT stream_id), 0"
                " FROM %s.stream_order_inversions(NULL)",
                0, NULL, "check stream order", &rc, err);
  if (!res)
    return rc;
  report_row(res, report);
  PQclear(res);
  return ESC_OK;
}

static esc_status list_inversions(esc_store *st, esc_order_inversion *out,
                                  size_t max, size_t *count, esc_error *err) {
  char limit[24];
  esc_status rc;
  snprintf(limit, sizeof limit, "%zu", max);
  const char *values[] = {limit};
  PGresult *res = query(st,
                        "SELECT stream_id, stream_version, tx_id,"
                        " global_position, prev_tx_id, prev_global"
                        " FROM %s.stream_order_inversions($1::int8)",
                        1, values, "list stream-order inversions", &rc, err);
  if (!res)
    return rc;
  size_t n = (size_t)PQntuples(res);
  for (size_t i = 0; i < n && i < max; i++) {
    int row = (int)i;
    snprintf(out[i].stream_id, sizeof out[i].stream_id, "%s",
             PQgetvalue(res, row, 0));
    out[i].version = text_i64(res, row, 1);
    out[i].position = text_position(res, row, 2);
    out[i].prev_position = text_position(res, row, 4);
  }
  *count = n < max ? n : max;
  PQclear(res);
  return ESC_OK;
}

esc_status esc_order_check(esc_store *store, esc_order_report *report,
                           esc_order_inversion *out, size_t max, size_t *count,
                           esc_error *err) {
  esc_order_report r = {0};
  size_t n = 0;
  esc_status rc = count_inversions(store, &r, err);
  if (!rc && max > 0 && out && r.inversions > 0)
    rc = list_inversions(store, out, max, &n, err);
  if (rc)
    return rc;
  if (report)
    *report = r;
  if (count)
    *count = n;
  esc__clear(err);
  return ESC_OK;
}

esc_status esc_order_recorded(esc_store *store, esc_order_report *report,
                              esc_error *err) {
  esc_status rc;
  PGresult *res = query(store, "SELECT " REPORT_COLUMNS " FROM %s.order_check",
                        0, NULL, "read the last order check", &rc, err);
  if (!res)
    return rc;
  esc_order_report r = {0};
  if (PQntuples(res) == 1)
    report_row(res, &r);
  PQclear(res);
  if (report)
    *report = r;
  esc__clear(err);
  return ESC_OK;
}

esc_status esc_order_repair(esc_store *store, const char *stream_id,
                            int64_t *moved, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  char what[ESC_STREAM_ID_MAX + 32];
  esc_status rc;
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner))
    return esc__fail(err, ESC_EINVAL, "repair: %s",
                     stream_id ? inner.msg : "stream id is NULL");
  snprintf(what, sizeof what, "repair the order of %s", stream_id);
  const char *values[] = {stream_id};
  PGresult *res = query(store, "SELECT %s.repair_stream_order($1)", 1, values,
                        what, &rc, err);
  if (!res)
    return rc;
  if (moved)
    *moved = text_i64(res, 0, 0);
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

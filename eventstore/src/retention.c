/*
 * Retention: the only way events leave the log. Both operations run as SQL
 * functions that lock the stream, record the deletion in the retention log
 * (which is what lets the immutability trigger pass it), and delete.
 * Truncation keeps the removed events' ids and is refused when no
 * snapshot covers what it removes, unless forced (migration 15).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calls fn(stream, [before, force,] reason) and reads the count it returns. */
static esc_status run(esc_store *st, const char *fn, const char *stream,
                      const char *before, const char *force, const char *reason,
                      int64_t *removed, esc_error *err) {
  char sql[256], what[ESC_STREAM_ID_MAX + 32];
  esc_error inner = ESC_ERROR_INIT;
  if (!stream || !esc_stream_id_valid(stream, &inner))
    return esc__fail(err, ESC_EINVAL, "%s: %s", fn,
                     stream ? inner.msg : "stream id is NULL");
  esc_status rc = esc__ensure_conn(st, err);
  if (rc)
    return rc;
  if (before)
    snprintf(sql, sizeof sql, "SELECT %s.%s($1, $2::int8, $3, $4::bool)",
             st->schema_ident, fn);
  else
    snprintf(sql, sizeof sql, "SELECT %s.%s($1, $2)", st->schema_ident, fn);
  snprintf(what, sizeof what, "%s %s", fn, stream);
  const char *with_before[] = {stream, before, reason, force};
  const char *without[] = {stream, reason};
  PGresult *res = esc__exec(
      st, &(struct esc__query){.sql = sql,
                               .n = before ? 4 : 2,
                               .values = before ? with_before : without});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, st, res, what);
  } else if (removed) {
    *removed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  }
  PQclear(res);
  return rc;
}

esc_status esc_stream_truncate_opts(esc_store *store, const char *stream_id,
                                    int64_t before,
                                    const esc_truncate_options *opts,
                                    int64_t *removed, esc_error *err) {
  char before_text[24];
  esc_truncate_options o = ESC_TRUNCATE_OPTIONS_INIT;
  if (opts)
    o = *opts;
  if (before < 1)
    return esc__fail(err, ESC_EINVAL,
                     "truncate %s: before version %" PRId64 " must be >= 1",
                     stream_id ? stream_id : "(null)", before);
  snprintf(before_text, sizeof before_text, "%" PRId64, before);
  return run(store, "truncate_stream", stream_id, before_text,
             o.force ? "true" : "false", o.reason, removed, err);
}

esc_status esc_stream_truncate(esc_store *store, const char *stream_id,
                               int64_t before, const char *reason,
                               int64_t *removed, esc_error *err) {
  esc_truncate_options o = ESC_TRUNCATE_OPTIONS_INIT;
  o.reason = reason;
  return esc_stream_truncate_opts(store, stream_id, before, &o, removed, err);
}

esc_status esc_stream_tombstone(esc_store *store, const char *stream_id,
                                const char *reason, int64_t *removed,
                                esc_error *err) {
  return run(store, "tombstone_stream", stream_id, NULL, NULL, reason, removed,
             err);
}

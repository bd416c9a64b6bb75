/*
 * What the command layer needs to answer a retried command with its first
 * outcome, whatever happened to the log since: whether it stored events
 * (found by its first event id, also after truncation removed them), or
 * its recorded outcome when it stored none (a rejection, no change). The
 * SQL is in migration 15; the writer only executes its functions.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs "SELECT * FROM <schema>.<fn>(...)" with text parameters. */
static PGresult *call(esc_store *st, const char *fn, int n,
                      const char *const *values, const char *what,
                      esc_status *rc, esc_error *err) {
  static const char *const placeholders[] = {
      "", "$1", "$1, $2", "$1, $2, $3", "$1, $2, $3, $4", "$1, $2, $3, $4, $5"};
  char sql[160];
  *rc = esc__ensure_conn(st, err);
  if (*rc)
    return NULL;
  snprintf(sql, sizeof sql, "SELECT * FROM %s.%s(%s)", st->schema_ident, fn,
           placeholders[n]);
  PGresult *res =
      esc__exec(st, &(struct esc__query){.sql = sql, .n = n, .values = values});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    *rc = esc__fail_store(err, st, res, what);
    PQclear(res);
    return NULL;
  }
  return res;
}

esc_status esc_command_outcome_read(esc_store *store, const esc_uuid *command,
                                    const esc_uuid *first_event,
                                    esc_command_outcome *out, esc_error *err) {
  char cmd[37], first[37];
  esc_status rc;
  memset(out, 0, sizeof *out);
  esc_uuid_format(command, cmd);
  esc_uuid_format(first_event, first);
  const char *values[] = {cmd, first};
  PGresult *res = call(store, "command_outcome", 2, values,
                       "read the outcome of a command", &rc, err);
  if (!res)
    return rc;
  if (PQntuples(res) == 1) {
    out->found = true;
    out->appended = strcmp(PQgetvalue(res, 0, 0), "appended") == 0;
    snprintf(out->stream_id, sizeof out->stream_id, "%s",
             PQgetvalue(res, 0, 1));
    out->version = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    out->domain_code = (int)strtol(PQgetvalue(res, 0, 3), NULL, 10);
    snprintf(out->domain_msg, sizeof out->domain_msg, "%s",
             PQgetvalue(res, 0, 4));
  }
  PQclear(res);
  return ESC_OK;
}

esc_status esc_command_outcome_write(esc_store *store, const esc_uuid *command,
                                     const char *stream_id, int64_t version,
                                     int domain_code, const char *domain_msg,
                                     esc_error *err) {
  char cmd[37], v[24], code[16];
  esc_error inner = ESC_ERROR_INIT;
  esc_status rc;
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner) || version < 0 ||
      domain_code < 0)
    return esc__fail(err, ESC_EINVAL, "record command outcome: %s",
                     stream_id && inner.msg[0]
                         ? inner.msg
                         : "needs a valid stream id, a "
                           "version >= 0 and a code >= 0");
  esc_uuid_format(command, cmd);
  snprintf(v, sizeof v, "%" PRId64, version);
  snprintf(code, sizeof code, "%d", domain_code);
  const char *values[] = {cmd, stream_id, v, code,
                          domain_msg ? domain_msg : ""};
  PGresult *res = call(store, "record_command_outcome", 5, values,
                       "record the outcome of a command", &rc, err);
  if (res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "moved") == 0)
    rc = esc__fail(err, ESC_ECONFLICT,
                   "record the outcome of command %s: %s is no longer at "
                   "version %" PRId64 ", decide again",
                   cmd, stream_id, version);
  PQclear(res);
  return rc;
}

esc_status esc_read_event_ids(esc_store *store, const char *stream_id,
                              int64_t from, esc_event_ref *out, size_t max,
                              size_t *count, esc_error *err) {
  char from_text[24], max_text[24], what[ESC_STREAM_ID_MAX + 32];
  esc_error inner = ESC_ERROR_INIT;
  esc_status rc;
  *count = 0;
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner))
    return esc__fail(err, ESC_EINVAL, "read event ids: %s",
                     stream_id ? inner.msg : "stream id is NULL");
  snprintf(from_text, sizeof from_text, "%" PRId64, from);
  snprintf(max_text, sizeof max_text, "%zu", max);
  snprintf(what, sizeof what, "read event ids of %s", stream_id);
  const char *values[] = {stream_id, from_text, max_text};
  PGresult *res = call(store, "stream_event_ids", 3, values, what, &rc, err);
  if (!res)
    return rc;
  size_t n = (size_t)PQntuples(res);
  for (size_t i = 0; i < n && i < max && !rc; i++) {
    int row = (int)i;
    rc = esc_uuid_parse(PQgetvalue(res, row, 0), &out[i].id, err);
    out[i].stream_version = strtoll(PQgetvalue(res, row, 1), NULL, 10);
    out[i].position.tx_id = strtoull(PQgetvalue(res, row, 2), NULL, 10);
    out[i].position.global = strtoll(PQgetvalue(res, row, 3), NULL, 10);
    *count = i + 1;
  }
  PQclear(res);
  return rc;
}

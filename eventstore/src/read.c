/*
 * Reading: one stream by version, or $all / a category in subscription
 * order. Results come back in binary format and the events point straight
 * into the PGresult, so a read copies no payload.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

enum {
  COL_GLOBAL,
  COL_TX,
  COL_STREAM,
  COL_VERSION,
  COL_ID,
  COL_TYPE,
  COL_SCHEMA_VERSION,
  COL_DATA,
  COL_METADATA,
  COL_RECORDED_AT,
  NCOLS
};

void esc_events_init(esc_events *ev) {
  esc_events zero = ESC_EVENTS_INIT;
  *ev = zero;
}

void esc_events_release(esc_events *ev) {
  if (!ev)
    return;
  PQclear(ev->priv_);
  free(ev->items);
  esc_events_init(ev);
}

static void decode_row(const PGresult *res, int row, esc_recorded_event *e) {
  e->position.global = (int64_t)esc__get_be64(PQgetvalue(res, row, COL_GLOBAL));
  e->position.tx_id = esc__get_be64(PQgetvalue(res, row, COL_TX));
  e->stream_id = PQgetvalue(res, row, COL_STREAM);
  e->stream_version = (int64_t)esc__get_be64(PQgetvalue(res, row, COL_VERSION));
  memcpy(e->id.bytes, PQgetvalue(res, row, COL_ID), 16);
  e->type = PQgetvalue(res, row, COL_TYPE);
  e->schema_version =
      (int32_t)esc__get_be32(PQgetvalue(res, row, COL_SCHEMA_VERSION));
  e->data = PQgetvalue(res, row, COL_DATA);
  e->data_len = (size_t)PQgetlength(res, row, COL_DATA);
  if (PQgetisnull(res, row, COL_METADATA)) {
    e->metadata = NULL;
    e->metadata_len = 0;
  } else {
    e->metadata = PQgetvalue(res, row, COL_METADATA);
    e->metadata_len = (size_t)PQgetlength(res, row, COL_METADATA);
  }
  e->recorded_at_us =
      (int64_t)esc__get_be64(PQgetvalue(res, row, COL_RECORDED_AT)) +
      PG_EPOCH_OFFSET_US;
}

/* Takes res's first n rows, the event columns first in each. */
static esc_status take_rows(PGresult *res, size_t n, esc_events *out,
                            esc_error *err) {
  if (n > 0) {
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) {
      PQclear(res);
      return esc__fail(err, ESC_ENOMEM, "read: out of memory for %zu events",
                       n);
    }
  }
  for (size_t i = 0; i < n; i++)
    decode_row(res, (int)i, &out->items[i]);
  out->count = n;
  out->priv_ = res;
  if (n > 0)
    out->next = out->items[n - 1].position;
  return ESC_OK;
}

esc_status esc__events_from_result(PGresult *res, esc_events *out,
                                   esc_error *err) {
  esc_events_release(out);
  if (PQnfields(res) != NCOLS) {
    PQclear(res);
    return esc__fail(err, ESC_EIO, "read: unexpected reply shape");
  }
  return take_rows(res, (size_t)PQntuples(res), out, err);
}

esc_status esc__events_with_token(PGresult *res, esc_events *out, char *token,
                                  size_t size, esc_error *err) {
  esc_events_release(out);
  if (PQnfields(res) != NCOLS + 1 || PQntuples(res) < 1 ||
      PQgetisnull(res, 0, NCOLS) ||
      (size_t)PQgetlength(res, 0, NCOLS) >= size) {
    PQclear(res);
    return esc__fail(err, ESC_EIO, "read: unexpected reply shape");
  }
  memcpy(token, PQgetvalue(res, 0, NCOLS), (size_t)PQgetlength(res, 0, NCOLS));
  token[PQgetlength(res, 0, NCOLS)] = '\0';
  /* No match is one row of NULL events beside the token. */
  bool none = PQntuples(res) == 1 && PQgetisnull(res, 0, COL_GLOBAL);
  return take_rows(res, none ? 0 : (size_t)PQntuples(res), out, err);
}

/* Sends a prepared read with binary parameters and results; `what` names
 * it in errors. */
static esc_status send_read(esc_store *st, enum esc__stmt s, int nparams,
                            const char *const *values, const int *lengths,
                            const char *what, esc_error *err) {
  const char *stmt;
  int formats[5] = {1, 1, 1, 1, 1};
  esc_status rc = esc__prepare(st, s, &stmt, err);
  if (rc)
    return esc__prefix(err, rc, what);
  esc__call_begin(&st->call, st->conn, st->timeout_ms);
  if (!PQsendQueryPrepared(st->conn, stmt, nparams, values, lengths, formats,
                           1) ||
      !esc__call_flush(&st->call))
    return esc__fail_store(err, st, NULL, what);
  snprintf(st->read_what, sizeof st->read_what, "%s", what);
  st->read_in_flight = true;
  return ESC_OK;
}

/* Waits for the read in flight: its one result, then the end of results.
 * The wait is bounded from now: the caller may have worked a while. */
static esc_status receive_read(esc_store *st, esc_events *out, esc_error *err) {
  st->read_in_flight = false;
  esc__call_rearm(&st->call);
  PGresult *rows = esc__call_finish(&st->call);
  if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
    esc_status rc = esc__fail_store(err, st, rows, st->read_what);
    PQclear(rows);
    return rc;
  }
  return esc__events_from_result(rows, out, err);
}

static esc_status run_read(esc_store *st, enum esc__stmt s, int nparams,
                           const char *const *values, const int *lengths,
                           esc_events *out, const char *what, esc_error *err) {
  esc_status rc = send_read(st, s, nparams, values, lengths, what, err);
  return rc ? rc : receive_read(st, out, err);
}

/* An empty stream read: tell "no such stream" and "tombstoned" apart from
 * "nothing in that range". */
static esc_status explain_empty(esc_store *st, const char *stream,
                                esc_error *err) {
  esc_stream_info info;
  esc_status rc = esc_stream_get(st, stream, &info, err);
  if (rc)
    return rc;
  if (info.tombstoned)
    return esc__fail(err, ESC_EDELETED, "read %s: the stream is tombstoned",
                     stream);
  return ESC_OK;
}

static size_t clamp_max(size_t max) {
  return max == 0 || max > INT32_MAX ? (size_t)INT32_MAX : max;
}

esc_status esc_read_stream(esc_store *store, const char *stream_id,
                           int64_t from, esc_direction dir, size_t max,
                           esc_events *out, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  unsigned char from_be[8], max_be[8];
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner))
    return esc__fail(err, ESC_EINVAL, "read: %s",
                     stream_id ? inner.msg : "stream id is NULL");
  if (from < 0)
    return esc__fail(err, ESC_EINVAL,
                     "read %s: from version %" PRId64 " is negative", stream_id,
                     from);
  if (dir == ESC_BACKWARD && from == 0)
    from = INT64_MAX;
  esc__put_be64(from_be, (uint64_t)from);
  esc__put_be64(max_be, clamp_max(max));

  const char *values[] = {stream_id, (const char *)from_be,
                          (const char *)max_be};
  int lengths[] = {(int)strlen(stream_id), 8, 8};
  char what[ESC_STREAM_ID_MAX + 16];
  snprintf(what, sizeof what, "read %s", stream_id);
  esc_status rc = run_read(
      store, dir == ESC_BACKWARD ? ESC__STMT_READ_BWD : ESC__STMT_READ_FWD, 3,
      values, lengths, out, what, err);
  if (rc || out->count > 0)
    return rc;
  return explain_empty(store, stream_id, err);
}

/* Which statement reads a page, and its parameters: after, max, then the
 * byte budget when there is one, then the category when there is one. */
static enum esc__stmt page_stmt(const char *category, bool bounded) {
  if (bounded)
    return category ? ESC__STMT_READ_CATEGORY_BOUNDED
                    : ESC__STMT_READ_ALL_BOUNDED;
  return category ? ESC__STMT_READ_CATEGORY : ESC__STMT_READ_ALL;
}

esc_status esc_read_all_send_bounded(esc_store *store, const char *category,
                                     esc_position after, size_t max,
                                     size_t max_bytes, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  unsigned char tx_be[8], global_be[8], max_be[8], bytes_be[8];
  if (category && !esc_category_valid(category, &inner))
    return esc__fail(err, ESC_EINVAL, "read category: %s", inner.msg);
  bool bounded = max_bytes > 0;
  esc__put_be64(tx_be, after.tx_id);
  esc__put_be64(global_be, (uint64_t)after.global);
  esc__put_be64(max_be, clamp_max(max));
  esc__put_be64(bytes_be, max_bytes > INT64_MAX ? INT64_MAX : max_bytes);

  const char *values[5] = {(const char *)tx_be, (const char *)global_be,
                           (const char *)max_be};
  int lengths[5] = {8, 8, 8};
  int n = 3;
  if (bounded) {
    values[n] = (const char *)bytes_be;
    lengths[n++] = 8;
  }
  if (category) {
    values[n] = category;
    lengths[n++] = (int)strlen(category);
  }
  char what[ESC_CATEGORY_MAX + 16];
  snprintf(what, sizeof what, "read %s", category ? category : "$all");
  esc_status rc = send_read(store, page_stmt(category, bounded), n, values,
                            lengths, what, err);
  if (!rc)
    store->read_after = after;
  return rc;
}

esc_status esc_read_all_send(esc_store *store, const char *category,
                             esc_position after, size_t max, esc_error *err) {
  return esc_read_all_send_bounded(store, category, after, max, 0, err);
}

esc_status esc_read_all_receive(esc_store *store, esc_events *out,
                                esc_error *err) {
  if (!store->read_in_flight)
    return esc__fail(err, ESC_EINVAL,
                     "read: no esc_read_all_send is waiting to be received");
  esc_position after = store->read_after;
  esc_status rc = receive_read(store, out, err);
  if (!rc && out->count == 0)
    out->next = after;
  return rc;
}

esc_status esc_read_all(esc_store *store, const char *category,
                        esc_position after, size_t max, esc_events *out,
                        esc_error *err) {
  esc_status rc = esc_read_all_send(store, category, after, max, err);
  return rc ? rc : esc_read_all_receive(store, out, err);
}

esc_status esc_read_event(esc_store *store, const esc_uuid *id, esc_events *out,
                          esc_error *err) {
  const char *values[] = {(const char *)id->bytes};
  int lengths[] = {16};
  esc_status rc = run_read(store, ESC__STMT_READ_BY_ID, 1, values, lengths, out,
                           "read event by id", err);
  if (!rc && out->count == 0) {
    char text[37];
    esc_uuid_format(id, text);
    rc = esc__fail(err, ESC_ENOTFOUND, "no event has id %s", text);
  }
  return rc;
}

esc_status esc_store_head(esc_store *store, esc_position *out, esc_error *err) {
  const char *stmt;
  esc_position start = ESC_POSITION_START;
  esc_status rc = esc__prepare(store, ESC__STMT_HEAD, &stmt, err);
  if (rc)
    return esc__prefix(err, rc, "read the head");
  PGresult *res = esc__exec(store, &(struct esc__query){.stmt = stmt,
                                                        .binary = 1});
  *out = start;
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, store, res, "read the head");
  else if (PQntuples(res) == 1) {
    out->tx_id = esc__get_be64(PQgetvalue(res, 0, 0));
    out->global = (int64_t)esc__get_be64(PQgetvalue(res, 0, 1));
  }
  PQclear(res);
  return rc;
}

/*
 * Snapshots: the folded state of a stream at a version, stored beside the
 * log so loading a long stream starts near its end. A cache only: the
 * command layer ignores one it cannot use and replays the stream.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

void esc_snapshot_release(esc_snapshot *snap) {
  if (!snap)
    return;
  PQclear(snap->priv_);
  esc_snapshot zero = ESC_SNAPSHOT_INIT;
  *snap = zero;
}

static esc_status check_stream(const char *stream_id, const char *what,
                               esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!stream_id || !esc_stream_id_valid(stream_id, &inner))
    return esc__fail(err, ESC_EINVAL, "%s: %s", what,
                     stream_id ? inner.msg : "stream id is NULL");
  return ESC_OK;
}

esc_status esc_snapshot_write(esc_store *store, const char *stream_id,
                              int64_t version, int32_t state_version,
                              const void *data, size_t len, esc_error *err) {
  const char *stmt;
  unsigned char version_be[8], state_be[4];
  esc_status rc = check_stream(stream_id, "write snapshot", err);
  if (!rc && (version < 1 || !data || len > store->max_event_size * 64))
    rc = esc__fail(err, ESC_EINVAL,
                   "write snapshot of %s: needs a version >= 1 and at most "
                   "%zu bytes of data",
                   stream_id, store->max_event_size * 64);
  if (!rc)
    rc = esc__prepare(store, ESC__STMT_SNAPSHOT_WRITE, &stmt, err);
  if (rc)
    return rc;
  esc__put_be64(version_be, (uint64_t)version);
  esc__put_be32(state_be, (uint32_t)state_version);
  const char *values[] = {stream_id, (const char *)version_be,
                          (const char *)state_be, data};
  int lengths[] = {(int)strlen(stream_id), 8, 4, (int)len};
  int formats[] = {1, 1, 1, 1};
  PGresult *res = esc__exec(store, &(struct esc__query){.stmt = stmt,
                                                        .n = 4,
                                                        .values = values,
                                                        .lengths = lengths,
                                                        .formats = formats,
                                                        .binary = 1});
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, store, res, "write snapshot");
  PQclear(res);
  return rc;
}

esc_status esc_snapshot_read(esc_store *store, const char *stream_id,
                             esc_snapshot *out, esc_error *err) {
  const char *stmt;
  esc_status rc = check_stream(stream_id, "read snapshot", err);
  if (!rc)
    rc = esc__prepare(store, ESC__STMT_SNAPSHOT_READ, &stmt, err);
  if (rc)
    return rc;
  esc_snapshot_release(out);
  PGresult *res = esc__exec_by_stream(store, stmt, stream_id);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, store, res, "read snapshot");
    PQclear(res);
    return rc;
  }
  if (PQntuples(res) == 0) {
    PQclear(res);
    return esc__fail(err, ESC_ENOTFOUND, "no snapshot of %s", stream_id);
  }
  out->version = (int64_t)esc__get_be64(PQgetvalue(res, 0, 0));
  out->state_version = (int32_t)esc__get_be32(PQgetvalue(res, 0, 1));
  out->data = PQgetvalue(res, 0, 2);
  out->data_len = (size_t)PQgetlength(res, 0, 2);
  out->priv_ = res;
  return ESC_OK;
}

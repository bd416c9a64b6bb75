/*
 * Reading the events that match a query of tags and types, with the
 * consistency token of the snapshot that read them (migration 21's
 * query_matches(), through the tag index).
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

esc_status esc_read_tagged(esc_store *store, const esc_tag_query *q,
                           int64_t after_global, size_t max, esc_events *out,
                           char token[ESC_TAG_QUERY_TOKEN_MAX],
                           esc_error *err) {
  struct esc__buf buf = {0};
  const char *stmt, *values[6];
  int lengths[6], formats[6] = {1, 1, 1, 1, 1, 1};
  unsigned char after_be[8], max_be[8];
  esc_status rc = esc__query_validate(q, err);
  if (rc)
    return esc__prefix(err, rc, "read");
  if (after_global < 0)
    return esc__fail(err, ESC_EINVAL,
                     "read query: after position %" PRId64 " is negative",
                     after_global);
  if (!esc__query_arrays(&buf, q, values, lengths))
    return esc__fail(err, ESC_ENOMEM, "read query: out of memory");
  esc__put_be64(after_be, (uint64_t)after_global);
  esc__put_be64(max_be, max == 0 || max > INT32_MAX ? INT32_MAX : max);
  values[4] = (const char *)after_be;
  values[5] = (const char *)max_be;
  lengths[4] = lengths[5] = 8;
  rc = esc__prepare(store, ESC__STMT_READ_QUERY, &stmt, err);
  if (rc) {
    esc__buf_release(&buf);
    return esc__prefix(err, rc, "read query");
  }
  PGresult *res = esc__exec(store, &(struct esc__query){.stmt = stmt,
                                                        .n = 6,
                                                        .values = values,
                                                        .lengths = lengths,
                                                        .formats = formats,
                                                        .binary = 1});
  esc__buf_release(&buf);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, store, res, "read query");
    PQclear(res);
    return rc;
  }
  return esc__events_with_token(res, out, token, ESC_TAG_QUERY_TOKEN_MAX, err);
}

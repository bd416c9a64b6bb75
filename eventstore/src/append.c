/*
 * Appending: validate in the client, then one call of
 * <schema>.append_fast() with the events as binary arrays (a single event
 * as scalars), so a batch of any size is one round trip and one
 * statement; <schema>.append() settles what the fast path misses. The
 * server checks names, sizes and metadata again (migration 12): the
 * writer role can store events only through these functions.
 * esc_append_many pipelines several such calls.
 */
#include "store_int.h"
#include <esc_internal/stats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OID_INT4 = 23, OID_TEXT = 25, OID_BYTEA = 17, OID_UUID = 2950 };
enum { ARRAY_HEADER = 20, ELEM_HEADER = 4, NPARAMS = 7, NARRAYS = 5 };
#define PIPELINE_CHUNK 256

/* Status values returned by <schema>.append(); see eventstore/sql. */
enum { APPENDED = 0, DUPLICATE = 1, CONFLICT = 2, TOMBSTONED = 3 };

/* ------------------------------------------------------------ validate -- */

static bool is_msgpack_map(const unsigned char *p) {
  return (p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf;
}

/* Names are quoted short so the reason always fits in esc_error.msg. */
static esc_status validate_event(const esc_store *st, const char *stream,
                                 size_t i, const esc_event_data *ev,
                                 esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  char s[ESC__QUOTE_SIZE], t[ESC__QUOTE_SIZE];
  limits.max_bytes = st->max_event_size;
  esc__quote(s, sizeof s, stream);
  esc__quote(t, sizeof t, ev->type ? ev->type : "(null)");

  if (esc_uuid_is_nil(&ev->id))
    return esc__fail(err, ESC_EINVAL, "append to %s: event %zu has a nil id", s,
                     i);
  if (!ev->type || !esc_type_name_valid(ev->type, &inner))
    return esc__fail(err, ESC_EINVAL, "append to %s: event %zu: %s", s, i,
                     ev->type ? inner.msg : "type is NULL");
  if (ev->schema_version < 1)
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: event %zu (%s): schema version %" PRId32
                     " must be >= 1",
                     s, i, t, ev->schema_version);
  if (ev->data_len + ev->metadata_len > st->max_event_size)
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: event %zu (%s) is %zu bytes; the limit is "
                     "%zu",
                     s, i, t, ev->data_len + ev->metadata_len,
                     st->max_event_size);
  if (!ev->data || esc_msgpack_check(ev->data, ev->data_len, &limits, &inner))
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: event %zu (%s): data is not valid "
                     "msgpack: %s",
                     s, i, t, ev->data ? inner.msg : "NULL");
  if (ev->metadata &&
      (esc_msgpack_check(ev->metadata, ev->metadata_len, &limits, &inner) ||
       !is_msgpack_map(ev->metadata)))
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: event %zu (%s): metadata is not a "
                     "msgpack map%s%s",
                     s, i, t, inner.code ? ": " : "", inner.msg);
  /* One validator: what append stores, reads decode. The known keys
   * (ids, actor, time) must have their types; others are the user's. */
  esc_metadata m;
  if (ev->metadata && esc_metadata_decode(ev->metadata, ev->metadata_len, &m,
                                          NULL, 0, &inner))
    return esc__fail(err, ESC_EINVAL, "append to %s: event %zu (%s): %s", s,
                     i, t, inner.msg);
  return ESC_OK;
}

esc_status esc__append_validate(const esc_store *st, const char *stream,
                                int64_t expected, const esc_event_data *events,
                                size_t n, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!stream || !esc_stream_id_valid(stream, &inner))
    return esc__fail(err, ESC_EINVAL, "append: %s",
                     stream ? inner.msg : "stream id is NULL");
  if (expected < ESC_EXPECT_EXISTS)
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: expected version %" PRId64
                     " is neither a version nor ESC_EXPECT_*",
                     stream, expected);
  if (n == 0 || !events)
    return esc__fail(err, ESC_EINVAL, "append to %s: no events", stream);
  if (n > INT32_MAX / 2)
    return esc__fail(err, ESC_EINVAL, "append to %s: %zu events in one call",
                     stream, n);
  for (size_t i = 0; i < n; i++) {
    esc_status rc = validate_event(st, stream, i, &events[i], err);
    if (rc)
      return rc;
  }
  return ESC_OK;
}

/* ------------------------------------------------- binary parameters -- */

struct append_params {
  struct esc__buf buf;
  unsigned char expected[8];
  unsigned char schema_version[4]; /* the single event's, when scalar */
  const char *values[NPARAMS];
  int lengths[NPARAMS];
  int formats[NPARAMS];
};

static void put32(struct esc__buf *b, uint32_t v) {
  esc__put_be32(b->data + b->len, v);
  b->len += 4;
}

void esc__put_array_header(struct esc__buf *b, uint32_t elem_oid, size_t n,
                           bool hasnull) {
  put32(b, 1); /* dimensions */
  put32(b, hasnull ? 1 : 0);
  put32(b, elem_oid);
  put32(b, (uint32_t)n);
  put32(b, 1); /* lower bound */
}

void esc__put_array_elem(struct esc__buf *b, const void *p, size_t len) {
  if (!p) {
    put32(b, UINT32_MAX); /* -1: NULL */
    return;
  }
  put32(b, (uint32_t)len);
  memcpy(b->data + b->len, p, len);
  b->len += len;
}

static size_t params_size(const esc_event_data *ev, size_t n) {
  size_t size = NARRAYS * ARRAY_HEADER + n * NARRAYS * ELEM_HEADER;
  for (size_t i = 0; i < n; i++)
    size += 16 + strlen(ev[i].type) + 4 + ev[i].data_len + ev[i].metadata_len;
  return size;
}

static void set_stream_params(struct append_params *p, const char *stream,
                              int64_t expected) {
  esc__put_be64(p->expected, (uint64_t)expected);
  p->values[0] = stream;
  p->lengths[0] = (int)strlen(stream);
  p->values[1] = (const char *)p->expected;
  p->lengths[1] = 8;
  for (int i = 0; i < NPARAMS; i++)
    p->formats[i] = 1;
}

/* Writes the five arrays (ids, types, schema versions, data, metadata) in
 * PostgreSQL's binary array format into one buffer. */
static bool build_params(struct append_params *p, const char *stream,
                         int64_t expected, const esc_event_data *ev, size_t n) {
  struct esc__buf *b = &p->buf;
  size_t offsets[NARRAYS + 1];
  bool null_metadata = false;
  b->len = 0;
  if (!esc__buf_reserve(b, params_size(ev, n)))
    return false;

  offsets[0] = b->len;
  esc__put_array_header(b, OID_UUID, n, false);
  for (size_t i = 0; i < n; i++)
    esc__put_array_elem(b, ev[i].id.bytes, 16);
  offsets[1] = b->len;
  esc__put_array_header(b, OID_TEXT, n, false);
  for (size_t i = 0; i < n; i++)
    esc__put_array_elem(b, ev[i].type, strlen(ev[i].type));
  offsets[2] = b->len;
  esc__put_array_header(b, OID_INT4, n, false);
  for (size_t i = 0; i < n; i++) {
    unsigned char v[4];
    esc__put_be32(v, (uint32_t)ev[i].schema_version);
    esc__put_array_elem(b, v, 4);
  }
  offsets[3] = b->len;
  esc__put_array_header(b, OID_BYTEA, n, false);
  for (size_t i = 0; i < n; i++)
    esc__put_array_elem(b, ev[i].data, ev[i].data_len);
  offsets[4] = b->len;
  for (size_t i = 0; i < n; i++)
    null_metadata |= ev[i].metadata == NULL;
  esc__put_array_header(b, OID_BYTEA, n, null_metadata);
  for (size_t i = 0; i < n; i++)
    esc__put_array_elem(b, ev[i].metadata, ev[i].metadata_len);
  offsets[5] = b->len;

  set_stream_params(p, stream, expected);
  for (int i = 0; i < NARRAYS; i++) {
    p->values[2 + i] = (const char *)b->data + offsets[i];
    p->lengths[2 + i] = (int)(offsets[i + 1] - offsets[i]);
  }
  return true;
}

/* One event as seven scalar parameters, pointing into the caller's event:
 * nothing to copy. */
static void build_scalar_params(struct append_params *p, const char *stream,
                                int64_t expected, const esc_event_data *ev) {
  set_stream_params(p, stream, expected);
  esc__put_be32(p->schema_version, (uint32_t)ev->schema_version);
  p->values[2] = (const char *)ev->id.bytes;
  p->lengths[2] = 16;
  p->values[3] = ev->type;
  p->lengths[3] = (int)strlen(ev->type);
  p->values[4] = (const char *)p->schema_version;
  p->lengths[4] = 4;
  p->values[5] = ev->data;
  p->lengths[5] = (int)ev->data_len;
  p->values[6] = ev->metadata; /* NULL is SQL NULL */
  p->lengths[6] = (int)ev->metadata_len;
}

/* ------------------------------------------------------------- result -- */

void esc__describe_expected(int64_t expected, char *out, size_t size) {
  if (expected == ESC_EXPECT_NO_STREAM)
    snprintf(out, size, "no stream");
  else if (expected == ESC_EXPECT_EXISTS)
    snprintf(out, size, "an existing stream");
  else
    snprintf(out, size, "version %" PRId64, expected);
}

static int64_t get_i64(const PGresult *res, int row, int col) {
  return (int64_t)esc__get_be64(PQgetvalue(res, row, col));
}

esc_status esc__append_interpret_row(const PGresult *res, int row,
                                     const char *stream, int64_t expected,
                                     esc_append_result *out, esc_error *err) {
  char what[ESC_STREAM_ID_MAX + 32];
  snprintf(what, sizeof what, "append to %s", stream);
  int status = (int)esc__get_be32(PQgetvalue(res, row, 0));
  int64_t actual = get_i64(res, row, 6);
  if (status == CONFLICT) {
    char exp[48];
    esc__describe_expected(expected, exp, sizeof exp);
    if (actual == 0)
      return esc__fail(err, ESC_ECONFLICT,
                       "%s: expected %s, stream does not exist", what, exp);
    return esc__fail(err, ESC_ECONFLICT,
                     "%s: expected %s, stream is at %" PRId64, what, exp,
                     actual);
  }
  if (status == TOMBSTONED)
    return esc__fail(err, ESC_EDELETED, "%s: the stream is tombstoned", what);
  if (status != APPENDED && status != DUPLICATE)
    return esc__fail(err, ESC_EIO, "%s: unknown status %d", what, status);

  esc_append_result r = {0};
  r.first_version = get_i64(res, row, 1);
  r.last_version = get_i64(res, row, 2);
  r.position.tx_id = esc__get_be64(PQgetvalue(res, row, 3));
  r.first_global = get_i64(res, row, 4);
  r.position.global = get_i64(res, row, 5);
  r.duplicate = status == DUPLICATE;
  if (out)
    *out = r;
  esc__clear(err);
  return ESC_OK;
}

static esc_status interpret(esc_store *st, const PGresult *res,
                            const char *stream, int64_t expected,
                            esc_append_result *out, esc_error *err) {
  char what[ESC_STREAM_ID_MAX + 32];
  snprintf(what, sizeof what, "append to %s", stream);
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    return esc__fail_store(err, st, res, what);
  if (PQntuples(res) != 1 || PQnfields(res) != 7)
    return esc__fail(err, ESC_EIO, "%s: unexpected reply shape", what);
  return esc__append_interpret_row(res, 0, stream, expected, out, err);
}

/* ------------------------------------------------------------ outcome -- */

/* Replaces err's message by "append to S: <label>: <what it said>". */
static esc_status relabel(esc_error *err, const char *stream, esc_status code,
                          const char *label) {
  char prefix[ESC_STREAM_ID_MAX + 16], said[sizeof err->msg], st[6];
  if (!err)
    return code;
  snprintf(prefix, sizeof prefix, "append to %s: ", stream);
  size_t skip = strncmp(err->msg, prefix, strlen(prefix)) == 0
                    ? strlen(prefix)
                    : 0;
  snprintf(said, sizeof said, "%s", err->msg + skip);
  memcpy(st, err->sqlstate, sizeof st);
  esc__fail(err, code, "append to %s: %s: %s", stream, label, said);
  memcpy(err->sqlstate, st, sizeof st);
  return code;
}

/*
 * What a failed append means to its caller. Before its request was sent
 * whole, nothing happened. After, a connection that broke or a reply that
 * never came leaves it unknown: the server may have committed it (the
 * commit is the request's last step). A statement the server cancelled
 * (statement_timeout) was rolled back.
 */
esc_status esc__append_outcome(const esc_store *st, const char *stream,
                               esc_status rc, bool sent, esc_error *err) {
  bool lost = rc == ESC_ECONN || (rc == ESC_ETIMEDOUT && st->call.timed_out);
  if (rc == ESC_ETIMEDOUT && !lost)
    return relabel(err, stream, rc, "not applied");
  if (!lost)
    return rc;
  if (sent)
    return relabel(err, stream, ESC_EUNKNOWN,
                   "outcome unknown, it may have been applied");
  return relabel(err, stream, rc, "not sent, nothing was appended");
}

/* Fills r for a request sent whose answer the connection lost. */
static void lost_reply(const esc_store *st, esc_append_request *r) {
  char what[ESC_STREAM_ID_MAX + 16];
  snprintf(what, sizeof what, "append to %s", r->stream_id);
  esc_status rc = esc__fail_store(&r->error, st, NULL, what);
  r->status = esc__append_outcome(st, r->stream_id, rc ? rc : ESC_ECONN, true,
                                 &r->error);
}

/* ------------------------------------------------------------- append -- */

/* The fast statement's answer: *hit when it appended. A miss — no stream
 * row matched, or an id is stored already — leaves the decision to the
 * cold path, <schema>.append(), which runs in a fresh transaction. */
static esc_status interpret_fast(esc_store *st, const PGresult *res,
                                 const char *stream, size_t n,
                                 esc_append_result *out, bool *hit,
                                 esc_error *err) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  *hit = false;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    char what[ESC_STREAM_ID_MAX + 32];
    if (state && strcmp(state, "23505") == 0)
      return ESC_OK;
    snprintf(what, sizeof what, "append to %s", stream);
    return esc__fail_store(err, st, res, what);
  }
  if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
    return ESC_OK;
  int64_t base = get_i64(res, 0, 0);
  esc_append_result r = {0};
  r.first_version = base + 1;
  r.last_version = base + (int64_t)n;
  r.first_global = get_i64(res, 0, 1);
  r.position.global = get_i64(res, 0, 2);
  r.position.tx_id = esc__get_be64(PQgetvalue(res, 0, 3));
  if (out)
    *out = r;
  *hit = true;
  esc__clear(err);
  return ESC_OK;
}

/* A single event goes with scalar parameters. */
static enum esc__stmt fast_stmt(size_t n) {
  return n == 1 ? ESC__STMT_APPEND_FAST1 : ESC__STMT_APPEND_FAST;
}

/* Fills p for the fast statement fast_stmt() picks; false on ENOMEM. */
static bool build_fast_params(struct append_params *p, const char *stream,
                              int64_t expected, const esc_event_data *ev,
                              size_t n) {
  if (n != 1)
    return build_params(p, stream, expected, ev, n);
  build_scalar_params(p, stream, expected, ev);
  return true;
}

static esc_status exec_cold(esc_store *st, const struct append_params *p,
                            const char *stream, int64_t expected,
                            esc_append_result *result, esc_error *err) {
  const char *stmt;
  esc_status rc = esc__prepare(st, ESC__STMT_APPEND, &stmt, err);
  if (rc)
    return esc__append_outcome(st, stream, rc, false, err);
  PGresult *res = esc__exec(st, &(struct esc__query){.stmt = stmt,
                                                     .n = NPARAMS,
                                                     .values = p->values,
                                                     .lengths = p->lengths,
                                                     .formats = p->formats,
                                                     .binary = 1});
  rc = interpret(st, res, stream, expected, result, err);
  PQclear(res);
  return esc__append_outcome(st, stream, rc, st->call.sent, err);
}

esc_status esc__append_direct(esc_store *store, const char *stream_id,
                              int64_t expected, const esc_event_data *events,
                              size_t n, esc_append_result *result,
                              esc_error *err) {
  struct append_params p = {0};
  const char *stmt;
  bool hit = false;
  esc_status rc =
      esc__append_validate(store, stream_id, expected, events, n, err);
  if (!rc)
    rc = esc__prepare(store, fast_stmt(n), &stmt, err);
  if (rc)
    return esc__append_outcome(store, stream_id, rc, false, err);
  if (!build_fast_params(&p, stream_id, expected, events, n))
    goto out_of_memory;

  PGresult *res = esc__exec(store, &(struct esc__query){.stmt = stmt,
                                                        .n = NPARAMS,
                                                        .values = p.values,
                                                        .lengths = p.lengths,
                                                        .formats = p.formats,
                                                        .binary = 1});
  rc = interpret_fast(store, res, stream_id, n, result, &hit, err);
  PQclear(res);
  rc = esc__append_outcome(store, stream_id, rc, store->call.sent, err);
  if (!rc && !hit) {
    /* The cold path takes arrays, whatever the fast one took. */
    if (!build_params(&p, stream_id, expected, events, n))
      goto out_of_memory;
    rc = exec_cold(store, &p, stream_id, expected, result, err);
  }
  esc__buf_release(&p.buf);
  return rc;

out_of_memory:
  esc__buf_release(&p.buf);
  return esc__fail(err, ESC_ENOMEM, "append to %s: out of memory", stream_id);
}

/* ---------------------------------------------------- many, pipelined -- */

/* Sends one request into the pipeline, followed by a sync so it commits as
 * its own transaction, and pushes it out: true once all of it reached the
 * kernel (the server may act on it). Invalid requests are answered without
 * sending. The statements were prepared before the pipeline began. */
static bool send_request(esc_store *st, struct append_params *p,
                         esc_append_request *r) {
  const char *stmt = esc__stmt_name(fast_stmt(r->n));
  char what[ESC_STREAM_ID_MAX + 16];
  r->status =
      esc__append_validate(st, r->stream_id, r->expected, r->events, r->n,
                           &r->error);
  if (r->status)
    return false;
  if (!build_fast_params(p, r->stream_id, r->expected, r->events, r->n)) {
    r->status = esc__fail(&r->error, ESC_ENOMEM, "append to %s: out of memory",
                          r->stream_id);
    return false;
  }
  if (!PQsendQueryPrepared(st->conn, stmt, NPARAMS, p->values, p->lengths,
                           p->formats, 1) ||
      !PQpipelineSync(st->conn) || !esc__call_flush(&st->call)) {
    snprintf(what, sizeof what, "append to %s", r->stream_id);
    esc_status rc = esc__fail_store(&r->error, st, NULL, what);
    r->status = esc__append_outcome(st, r->stream_id, rc, false, &r->error);
    return false;
  }
  return true;
}

/* Reads one request's result, its end marker and its sync; *hit as in
 * interpret_fast. The transaction commits at the sync: rows without it
 * are no answer, and a lost connection then leaves the request unknown. */
static esc_status receive_request(esc_store *st, esc_append_request *r,
                                  bool *hit) {
  PGresult *res = esc__call_next(&st->call);
  r->status =
      interpret_fast(st, res, r->stream_id, r->n, &r->result, hit, &r->error);
  PQclear(res);
  while ((res = esc__call_next(&st->call)) != NULL)
    PQclear(res); /* the NULL that ends this query's results */
  res = esc__call_next(&st->call);
  ExecStatusType kind = PQresultStatus(res);
  PQclear(res);
  if (kind == PGRES_PIPELINE_SYNC)
    return ESC_OK;
  if (!esc__call_failed(&st->call))
    return r->status = esc__fail(&r->error, ESC_EIO,
                                 "append to %s: no sync in the pipeline reply",
                                 r->stream_id);
  /* An error the server answered with was rolled back: that stays. */
  bool answered = r->status && r->status != ESC_ECONN &&
                  r->status != ESC_ETIMEDOUT;
  if (!answered) {
    *hit = false;
    lost_reply(st, r);
  }
  return r->status;
}

/* The call's status after a chunk: unknown when any request is, else the
 * first failure (rc); err gets that request's message. */
static esc_status chunk_status(const esc_append_request *reqs, size_t n,
                               esc_status rc, size_t failed, esc_error *err) {
  for (size_t i = 0; i < n && rc && rc != ESC_EUNKNOWN; i++)
    if (reqs[i].status == ESC_EUNKNOWN) {
      rc = ESC_EUNKNOWN;
      failed = i;
    }
  if (rc)
    esc__fail(err, rc, "%s", reqs[failed].error.msg);
  return rc;
}

static esc_status pipeline_chunk(esc_store *st, esc_append_request *reqs,
                                 size_t n, bool *cold, esc_error *err) {
  struct append_params p = {0};
  bool sent[PIPELINE_CHUNK];
  esc_status rc = ESC_OK;
  size_t i, failed = 0;

  if (!PQenterPipelineMode(st->conn))
    return esc__fail_store(err, st, NULL, "enter pipeline mode");
  esc__call_begin(&st->call, st->conn, st->timeout_ms);
  for (i = 0; i < n; i++)
    sent[i] = send_request(st, &p, &reqs[i]);
  esc__buf_release(&p.buf);
  for (i = 0; i < n && !rc; i++) {
    bool hit = false;
    if (sent[i] && (rc = receive_request(st, &reqs[i], &hit)) != ESC_OK)
      failed = i;
    cold[i] = sent[i] && !reqs[i].status && !hit;
  }
  for (; i < n; i++) { /* after a fault, the replies that did not come */
    cold[i] = false;
    if (sent[i])
      lost_reply(st, &reqs[i]);
  }
  if (!PQexitPipelineMode(st->conn) && !rc)
    return esc__fail_store(err, st, NULL, "exit pipeline mode");
  return chunk_status(reqs, n, rc, failed, err);
}

/* A failure that ends the batch: the connection is gone, or memory. */
static bool ends_batch(esc_status rc) {
  return rc == ESC_ECONN || rc == ESC_ENOMEM || rc == ESC_EUNKNOWN ||
         rc == ESC_ETIMEDOUT;
}

/* Marks requests (those of which[], or all when NULL) that were not sent
 * because the batch stopped first, and why. */
static void not_sent(esc_append_request *reqs, size_t n, const bool *which,
                     const esc_error *why) {
  esc_status code = why->code == ESC_EUNKNOWN ? ESC_ECONN : why->code;
  for (size_t i = 0; i < n; i++)
    if (!which || which[i])
      reqs[i].status = esc__fail(
          &reqs[i].error, code,
          "append to %s: not sent, nothing was appended (the batch stopped: "
          "%s)",
          reqs[i].stream_id, why->msg);
}

/* Requests the fast path missed go through the cold path one by one. */
static esc_status finish_cold(esc_store *st, esc_append_request *reqs, size_t n,
                              bool *cold, esc_error *err) {
  struct append_params p = {0};
  esc_status rc = ESC_OK;
  size_t i;
  for (i = 0; i < n && !ends_batch(rc); i++) {
    esc_append_request *r = &reqs[i];
    if (!cold[i])
      continue;
    cold[i] = false;
    if (!build_params(&p, r->stream_id, r->expected, r->events, r->n))
      rc = esc__fail(&r->error, ESC_ENOMEM, "append to %s: out of memory",
                     r->stream_id);
    else
      rc = exec_cold(st, &p, r->stream_id, r->expected, &r->result, &r->error);
    r->status = rc;
    if (ends_batch(rc))
      esc__fail(err, rc, "%s", r->error.msg);
  }
  esc__buf_release(&p.buf);
  if (!ends_batch(rc))
    return ESC_OK;
  not_sent(reqs + i, n - i, cold + i, err);
  return rc;
}

static esc_status append_many(esc_store *store, esc_append_request *reqs,
                              size_t n, esc_error *err) {
  const char *stmt;
  bool cold[PIPELINE_CHUNK];
  esc_status rc = ESC_OK;
  esc_error local = ESC_ERROR_INIT;
  size_t i = 0;
  if (!err)
    err = &local; /* the requests not sent are told why from it */
  while (i < n && !rc) {
    size_t len = n - i < PIPELINE_CHUNK ? n - i : PIPELINE_CHUNK;
    /* Statements cannot be prepared inside the pipeline; a reconnect by
     * the cold path of the chunk before forgets them. */
    for (int s = ESC__STMT_APPEND_FAST; s <= ESC__STMT_APPEND_FAST1 && !rc; s++)
      rc = esc__prepare(store, (enum esc__stmt)s, &stmt, err);
    if (rc)
      break;
    rc = pipeline_chunk(store, reqs + i, len, cold, err);
    if (!rc)
      rc = finish_cold(store, reqs + i, len, cold, err);
    i += len;
  }
  if (!rc) {
    esc__clear(err);
    return ESC_OK;
  }
  if (i < n)
    not_sent(reqs + i, n - i, NULL, err);
  return rc;
}

/* ------------------------------------------------------------ metrics -- */

esc_status esc_append(esc_store *store, const char *stream_id, int64_t expected,
                      const esc_event_data *events, size_t n,
                      esc_append_result *result, esc_error *err) {
  int64_t began = esc__now_ns();
  esc_status rc =
      store->group_commit
          ? esc__group_append(store, stream_id, expected, events, n, result,
                              err)
          : esc__append_direct(store, stream_id, expected, events, n, result,
                               err);
  esc__append_observe(began, rc, rc == ESC_ECONFLICT,
                      !rc && result && result->duplicate);
  return rc;
}

esc_status esc_append_many(esc_store *store, esc_append_request *reqs, size_t n,
                           esc_error *err) {
  int64_t began = esc__now_ns();
  esc_status rc = append_many(store, reqs, n, err);
  size_t duplicates = 0, conflicts = 0;
  for (size_t i = 0; i < n; i++) {
    duplicates += reqs[i].status == ESC_OK && reqs[i].result.duplicate;
    conflicts += reqs[i].status == ESC_ECONFLICT;
  }
  esc__append_observe(began, rc, conflicts, duplicates);
  return rc;
}

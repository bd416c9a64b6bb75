/*
 * Atomic multi-stream appends: one call of <schema>.append_atomic()
 * (migration 20), one transaction, all or nothing. See
 * docs/decisions/0021-consistency-across-streams.md.
 */
#include "store_int.h"
#include <esc_internal/stats.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CONFLICT = 2, TOMBSTONED = 3 }; /* append_group's row statuses */

/* Every request gets the call's status; those without an error of their
 * own get the call's error. */
static esc_status fail_every(esc_append_request *reqs, size_t n, esc_status rc,
                             const esc_error *why, esc_error *err) {
  for (size_t i = 0; i < n; i++) {
    reqs[i].status = rc;
    reqs[i].error = *why;
  }
  if (err)
    *err = *why;
  return rc;
}

/* Checks each request as esc_append does, and that no stream repeats. */
static esc_status validate(const esc_store *st, const esc_append_request *reqs,
                           size_t n, esc_error *err) {
  if (!reqs || n == 0 || n > ESC_APPEND_ATOMIC_MAX)
    return esc__fail(err, ESC_EINVAL,
                     "atomic append: %zu streams (1..%d allowed)", n,
                     ESC_APPEND_ATOMIC_MAX);
  for (size_t i = 0; i < n; i++) {
    esc_status rc =
        esc__append_validate(st, reqs[i].stream_id, reqs[i].expected,
                             reqs[i].events, reqs[i].n, err);
    if (rc)
      return rc;
    for (size_t k = 0; k < i; k++)
      if (strcmp(reqs[k].stream_id, reqs[i].stream_id) == 0)
        return esc__fail(err, ESC_EINVAL,
                         "atomic append: stream %s is requests %zu and %zu; "
                         "give each stream once",
                         reqs[i].stream_id, k, i);
  }
  return ESC_OK;
}

/* Request r's part of an ES010 refusal: its row status and actual version
 * as append_atomic's DETAIL says them. Returns whether r failed. */
static bool blame(esc_append_request *r, int status, int64_t actual) {
  char exp[48];
  esc__describe_expected(r->expected, exp, sizeof exp);
  r->status = status == TOMBSTONED ? ESC_EDELETED : ESC_ECONFLICT;
  if (status == TOMBSTONED)
    esc__fail(&r->error, ESC_EDELETED, "append to %s: the stream is tombstoned",
              r->stream_id);
  else if (status == CONFLICT)
    esc__fail(&r->error, ESC_ECONFLICT,
              "append to %s: expected %s, stream is at %" PRId64, r->stream_id,
              exp, actual);
  else
    esc__fail(&r->error, ESC_ECONFLICT,
              "append to %s: not appended, another stream of the atomic "
              "append failed its expectation",
              r->stream_id);
  return status == CONFLICT || status == TOMBSTONED;
}

/* Appends "stream (expected E, actual A)" to the call's message. */
static void name_in(char *msg, size_t size, const esc_append_request *r,
                    int status, int64_t actual, bool first) {
  char exp[48];
  size_t len = strlen(msg);
  if (len + 1 >= size)
    return;
  esc__describe_expected(r->expected, exp, sizeof exp);
  if (status == TOMBSTONED)
    snprintf(msg + len, size - len, "%s%s (tombstoned)", first ? "" : "; ",
             r->stream_id);
  else
    snprintf(msg + len, size - len, "%s%s (expected %s, actual %" PRId64 ")",
             first ? "" : "; ", r->stream_id, exp, actual);
}

/* The server refused with ES010: DETAIL holds "status/actual" per
 * request. Every request is ESC_ECONFLICT (ESC_EDELETED if tombstoned). */
static esc_status conflicts(esc_append_request *reqs, size_t n,
                            const char *detail, esc_error *err) {
  char msg[sizeof err->msg];
  const char *p = detail ? detail : "";
  size_t failed = 0;
  snprintf(msg, sizeof msg, "atomic append: ");
  for (size_t i = 0; i < n; i++) {
    char *end;
    long status = strtol(p, &end, 10);
    int64_t actual = *end == '/' ? strtoll(end + 1, &end, 10) : 0;
    p = *end == ',' ? end + 1 : end;
    if (blame(&reqs[i], (int)status, actual))
      name_in(msg, sizeof msg, &reqs[i], (int)status, actual, failed++ == 0);
  }
  if (failed == 0)
    return esc__fail(err, ESC_EIO,
                     "atomic append: a conflict with no "
                     "stream named (DETAIL \"%s\")",
                     detail);
  esc__fail(err, ESC_ECONFLICT, "%s", msg);
  if (err)
    snprintf(err->sqlstate, sizeof err->sqlstate, "ES010");
  return ESC_ECONFLICT;
}

static bool has_sqlstate(const PGresult *res, const char *state) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return st && strcmp(st, state) == 0;
}

/* The reply: every row appended or every row a duplicate. */
static esc_status answer(esc_store *st, PGresult *res, esc_append_request *reqs,
                         size_t n, const struct esc__atomic_extra *x,
                         esc_error *err) {
  char what[64];
  esc_error why = ESC_ERROR_INIT;
  esc_status rc = ESC_OK;
  snprintf(what, sizeof what, "append to %zu streams", n);
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == (int)n &&
      PQnfields(res) == 9) {
    for (size_t i = 0; i < n; i++) {
      rc = reqs[i].status = esc__append_interpret_row(
          res, (int)i, reqs[i].stream_id, reqs[i].expected, &reqs[i].result,
          &reqs[i].error);
      if (rc) /* not a row append_atomic returns */
        return fail_every(reqs, n, ESC_EIO, &reqs[i].error, err);
    }
    esc__clear(err);
    return ESC_OK;
  }
  if (has_sqlstate(res, "ES010"))
    return conflicts(reqs, n, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL),
                     err);
  if (x && x->condition && has_sqlstate(res, "ES011")) {
    esc__condition_failed(
        x->condition, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL), &why);
    return fail_every(reqs, n, ESC_ECONFLICT, &why, err);
  }
  rc = esc__fail_store(&why, st, res, what);
  rc = esc__append_outcome(st, what + strlen("append to "), rc, st->call.sent,
                           &why);
  return fail_every(reqs, n, rc, &why, err);
}

/* Builds the arrays and sends them, with x's parameters after them when
 * x is not NULL; err (never NULL) says why not. */
static esc_status send_atomic(esc_store *st, esc_append_request *reqs, size_t n,
                              const struct esc__atomic_extra *x,
                              esc_error *err) {
  enum { MAX = ESC__APPEND_ARRAYS + ESC__ATOMIC_EXTRA_MAX };
  const char *stmt, *values[MAX];
  int lengths[MAX], formats[MAX], nparams = ESC__APPEND_ARRAYS;
  struct esc__buf buf = {0};
  const esc_append_request **ptrs = calloc(n, sizeof *ptrs);
  esc_status rc = ESC_ENOMEM;
  if (!ptrs)
    goto out_nomem;
  for (size_t i = 0; i < n; i++)
    ptrs[i] = &reqs[i];
  if (!esc__append_arrays(&buf, ptrs, n, values, lengths))
    goto out_nomem;
  for (int i = 0; x && i < x->n; i++, nparams++) {
    values[nparams] = x->values[i];
    lengths[nparams] = x->lengths[i];
  }
  for (int i = 0; i < MAX; i++)
    formats[i] = 1;
  rc = esc__prepare(st, x ? x->stmt : ESC__STMT_APPEND_ATOMIC, &stmt, err);
  if (rc) {
    rc = esc__append_outcome(st, "an atomic append", rc, false, err);
    fail_every(reqs, n, rc, err, NULL);
    goto out;
  }
  PGresult *res = esc__exec(st, &(struct esc__query){.stmt = stmt,
                                                     .n = nparams,
                                                     .values = values,
                                                     .lengths = lengths,
                                                     .formats = formats,
                                                     .binary = 1});
  rc = answer(st, res, reqs, n, x, err);
  PQclear(res);
  goto out;
out_nomem:
  esc__fail(err, rc, "atomic append: out of memory");
  fail_every(reqs, n, rc, err, NULL);
out:
  free(ptrs);
  esc__buf_release(&buf);
  return rc;
}

esc_status esc__atomic_run(esc_store *store, esc_append_request *reqs, size_t n,
                           const struct esc__atomic_extra *x, esc_error *err) {
  esc_error why = ESC_ERROR_INIT;
  int64_t began = esc__now_ns();
  esc_status rc = validate(store, reqs, n, &why);
  if (!rc && x && x->validate)
    rc = x->validate(x, reqs, n, &why);
  if (rc) {
    if (reqs && n <= ESC_APPEND_ATOMIC_MAX)
      fail_every(reqs, n, rc, &why, err);
    else if (err)
      *err = why;
  } else {
    rc = send_atomic(store, reqs, n, x, &why);
    if (err)
      *err = why;
  }
  esc__append_observe(began, rc, rc == ESC_ECONFLICT,
                      !rc && reqs[0].result.duplicate);
  return rc;
}

esc_status esc_append_atomic(esc_store *store, esc_append_request *reqs,
                             size_t n, esc_error *err) {
  return esc__atomic_run(store, reqs, n, NULL, err);
}

/*
 * Tagged appends and appends conditioned on a query of tagged events: one
 * call of <schema>.append_tagged() (migration 21), which runs
 * append_atomic() after taking the tags' locks and checking the
 * condition. See docs/decisions/0022-tags-and-conditional-appends.md.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void esc__condition_failed(const esc_tag_query *q, const char *detail,
                           esc_error *err) {
  char what[120], id[40] = "?", type[ESC_TYPE_NAME_MAX + 1] = "?";
  char stream[ESC_STREAM_ID_MAX + 1] = "?";
  long long global = 0, version = 0;
  esc__query_describe(q, what, sizeof what);
  /* "global/version/id/type/stream": the stream comes last since a
   * stream id may hold '/'; a type may not. */
  if (detail)
    sscanf(detail, "%lld/%lld/%39[^/]/%128[^/]/%200[^\n]", &global, &version,
           id, type, stream);
  esc__fail(err, ESC_ECONFLICT,
            "conditional append: \"%s\" failed: event %s (%s, %s version %lld, "
            "position %lld) was appended after the token",
            what, id, type, stream, version, global);
  if (err)
    snprintf(err->sqlstate, sizeof err->sqlstate, "ES011");
}

static esc_status validate_more(const struct esc__atomic_extra *x,
                                const esc_append_request *reqs, size_t n,
                                esc_error *err) {
  esc_status rc = esc__tags_validate(reqs, x->tags, n, err);
  if (rc || !x->condition)
    return rc;
  return esc__query_validate(x->condition, err);
}

esc_status esc_append_if(esc_store *store, const esc_tag_query *condition,
                         const char *token, esc_append_request *reqs,
                         const esc_tags *const *tags, size_t n,
                         esc_error *err) {
  struct esc__buf tag_buf = {0}, query_buf = {0};
  struct esc__atomic_extra x = {.stmt = ESC__STMT_APPEND_TAGGED,
                                .n = ESC__ATOMIC_EXTRA_MAX,
                                .condition = condition,
                                .tags = tags,
                                .validate = validate_more};
  esc_status rc = ESC_OK;
  if (!condition != !token ||
      (token && (!*token || strlen(token) >= ESC_TAG_QUERY_TOKEN_MAX)))
    return esc__fail(err, ESC_EINVAL,
                     "append: a condition needs both a query and a token "
                     "(1..%d bytes) from esc_read_tagged",
                     ESC_TAG_QUERY_TOKEN_MAX - 1);
  /* Arrays only of input that passes; what does not, esc__atomic_run
   * refuses with the message (and every request's status). */
  if (reqs && n > 0 && n <= ESC_APPEND_ATOMIC_MAX &&
      !esc__tags_validate(reqs, tags, n, NULL) &&
      (!condition || !esc__query_validate(condition, NULL)) &&
      (!esc__tag_arrays(&tag_buf, reqs, tags, n, x.values, x.lengths) ||
       (condition && !esc__query_arrays(&query_buf, condition, x.values + 2,
                                        x.lengths + 2)))) {
    rc = esc__fail(err, ESC_ENOMEM, "append: out of memory for the tags");
    goto out;
  }
  x.values[6] = token;
  x.lengths[6] = token ? (int)strlen(token) : 0;
  rc = esc__atomic_run(store, reqs, n, &x, err);
out:
  esc__buf_release(&tag_buf);
  esc__buf_release(&query_buf);
  return rc;
}

esc_status esc_append_tagged(esc_store *store, const char *stream_id,
                             int64_t expected, const esc_event_data *events,
                             const esc_tags *tags, size_t n,
                             esc_append_result *result, esc_error *err) {
  esc_append_request req = {
      .stream_id = stream_id, .expected = expected, .events = events, .n = n};
  const esc_tags *per_request[1] = {tags};
  esc_status rc = esc_append_if(store, NULL, NULL, &req, per_request, 1, err);
  if (!rc && result)
    *result = req.result;
  if (rc && err)
    *err = req.error.code ? req.error : *err;
  return rc;
}

/* Checked interpretation of Redis replies for queries (reply.h). */
#include "reply.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most partitions a reply may claim: the layout's own bound. */
#define MAX_PARTITIONS 1024

static esc_status bad(esc_error *err, const char *projection,
                      const char *what) {
  return esc_error_set(err, ESC_EIO,
                       "query of projection %.64s: Redis replied with %s "
                       "(a broken server, or not a Redis esc wrote)",
                       projection ? projection : "?", what);
}

/* The script's "not built yet": {false}, which RESP2 gives as {nil}. */
static bool not_built(const redisReply *whole) {
  return whole->type == REDIS_REPLY_ARRAY && whole->elements == 1 &&
         whole->element[0] && whole->element[0]->type == REDIS_REPLY_NIL;
}

static bool is_string(const redisReply *r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

esc_status esc__query_unwrap(const redisReply *whole, const char *projection,
                             const redisReply **inner, esc_error *err) {
  *inner = NULL;
  if (!whole)
    return bad(err, projection, "nothing");
  if (not_built(whole))
    return esc_error_set(err, ESC_ENOTFOUND,
                         "projection %s has not been built yet", projection);
  if (whole->type != REDIS_REPLY_ARRAY || whole->elements != 2 ||
      !is_string(whole->element[0]) || !whole->element[1])
    return bad(err, projection, "something other than {generation, value}");
  *inner = whole->element[1];
  return ESC_OK;
}

esc_status esc__query_value(const redisReply *r, const char *projection,
                            char *value, size_t size, bool *exists,
                            esc_error *err) {
  *exists = false;
  if (size)
    value[0] = '\0';
  if (r->type == REDIS_REPLY_NIL)
    return ESC_OK;
  if (r->type == REDIS_REPLY_INTEGER) { /* a GET never says this, a Lua
                                           number would */
    *exists = true;
    if (size)
      snprintf(value, size, "%lld", r->integer);
    return ESC_OK;
  }
  if (!is_string(r))
    return bad(err, projection, "a value that is not a string");
  *exists = true;
  if (size) {
    size_t n = r->len < size - 1 ? r->len : size - 1;
    memcpy(value, r->str, n);
    value[n] = '\0';
  }
  return ESC_OK;
}

static char *copy_str(const redisReply *r) {
  char *s = malloc(r->len + 1);
  if (s) {
    memcpy(s, r->str, r->len);
    s[r->len] = '\0';
  }
  return s;
}

/* A score as Redis prints it: a number, "inf", "-inf". */
static bool parse_score(const redisReply *r, double *out) {
  char text[64], *end;
  if (!is_string(r) || r->len == 0 || r->len >= sizeof text)
    return false;
  memcpy(text, r->str, r->len);
  text[r->len] = '\0';
  errno = 0;
  *out = strtod(text, &end);
  return *end == '\0';
}

static esc_status fill_one(const redisReply *r, size_t i, int stride,
                           bool scored, esc_query_item *it,
                           const char *projection, esc_error *err) {
  const redisReply *name = r->element[i * (size_t)stride];
  const redisReply *second = stride == 2 ? r->element[i * 2 + 1] : NULL;
  if (!is_string(name) || (stride == 2 && !scored && !is_string(second)))
    return bad(err, projection, "an element that is not a string");
  if (scored && !parse_score(second, &it->score))
    return bad(err, projection, "a score that is not a number");
  it->name = copy_str(name);
  if (stride == 2 && !scored)
    it->value = copy_str(second);
  if (!it->name || (stride == 2 && !scored && !it->value))
    return esc_error_set(err, ESC_ENOMEM, "query: out of memory");
  return ESC_OK;
}

esc_status esc__query_items(const redisReply *r, const char *projection,
                            int stride, bool scored, esc_query_items *out,
                            esc_error *err) {
  esc_query_items_release(out);
  if (r->type == REDIS_REPLY_NIL)
    return ESC_OK;
  if (r->type != REDIS_REPLY_ARRAY || r->elements % (size_t)stride != 0)
    return bad(err, projection,
               stride == 2 ? "something other than pairs" : "no array");
  size_t n = r->elements / (size_t)stride;
  out->items = n ? calloc(n, sizeof *out->items) : NULL;
  if (n && !out->items)
    return esc_error_set(err, ESC_ENOMEM, "query: out of memory");
  esc_status rc = ESC_OK;
  for (size_t i = 0; i < n && !rc; i++) {
    out->count = i + 1;
    rc = fill_one(r, i, stride, scored, &out->items[i], projection, err);
  }
  if (rc)
    esc_query_items_release(out); /* all or nothing */
  return rc;
}

esc_status esc__query_passed(const redisReply *r, const char *projection,
                             int hint, const esc_position *token, bool *yes,
                             esc_error *err) {
  *yes = false;
  if (not_built(r))
    return ESC_OK;
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
      !is_string(r->element[0]) || !r->element[1] ||
      r->element[1]->type != REDIS_REPLY_INTEGER ||
      r->element[1]->integer < 1 || r->element[1]->integer > MAX_PARTITIONS ||
      r->elements != (size_t)r->element[1]->integer + 2)
    return bad(err, projection,
               "something other than {generation, partitions, checkpoints}");
  long long parts = r->element[1]->integer;
  if (hint > 0 && parts != hint)
    return esc_error_set(err, ESC_EINVAL,
                         "wait for projection %s: its serving generation has "
                         "%lld partitions, not %d as the caller said (pass 0 "
                         "to use the projection's own layout)",
                         projection, parts, hint);
  bool all = true;
  for (size_t i = 2; all && i < r->elements; i++) {
    const redisReply *cp = r->element[i];
    esc_position at;
    if (cp && cp->type == REDIS_REPLY_NIL)
      return ESC_OK; /* a partition without a checkpoint has not passed */
    if (!is_string(cp))
      return bad(err, projection, "a checkpoint that is not a string");
    /* "failed ..." or a damaged value is not past anything. */
    all = strlen(cp->str) == cp->len &&
          esc_position_parse(cp->str, &at, NULL) == ESC_OK &&
          esc_position_cmp(&at, token) >= 0;
  }
  *yes = all;
  return ESC_OK;
}

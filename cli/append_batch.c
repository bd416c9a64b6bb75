/*
 * esc append --batch FILE [--atomic]: events from JSON lines, one request
 * per stream (its lines' events in file order), appended with
 * esc_append_atomic (one transaction, all or nothing) or esc_append_many
 * (one transaction per stream); with tags or a condition, esc_append_if
 * (atomic, or one call per stream).
 */
#include "cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_EVENTS_MAX 10000

struct line {
  char *stream; /* owned copies */
  char *type;
  int64_t expected;
  bool has_expected;
  esc_event_data ev;        /* data and metadata owned */
  char *tags[ESC_TAGS_MAX]; /* owned copies */
  size_t ntags;
};

struct batch {
  struct line *lines;
  size_t n, cap;
  esc_event_data *events; /* the lines' events, grouped by stream */
  esc_append_request *reqs;
  size_t nreqs;
  esc_tags *tags;            /* per event, beside events */
  const esc_tags **req_tags; /* per request: its events' tags */
  bool tagged;               /* some line has tags */
};

static void batch_release(struct batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->lines[i].stream);
    free(b->lines[i].type);
    free((void *)b->lines[i].ev.data);
    free((void *)b->lines[i].ev.metadata);
    for (size_t t = 0; t < b->lines[i].ntags; t++)
      free(b->lines[i].tags[t]);
  }
  free(b->tags);
  free(b->req_tags);
  free(b->lines);
  free(b->events);
  free(b->reqs);
}

static esc_status bad(esc_error *err, size_t lineno, const char *what) {
  err->code = ESC_EINVAL;
  err->sqlstate[0] = '\0';
  snprintf(err->msg, sizeof err->msg, "line %zu: %s", lineno, what);
  return ESC_EINVAL;
}

/* "expected": "any", "no-stream", "exists" or a version >= 0. */
static bool parse_expected(const json_t *v, int64_t *out) {
  const char *s = json_string_value(v);
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = json_integer_value(v);
    return true;
  }
  if (!s)
    return false;
  *out = strcmp(s, "any") == 0         ? ESC_EXPECT_ANY
         : strcmp(s, "no-stream") == 0 ? ESC_EXPECT_NO_STREAM
         : strcmp(s, "exists") == 0    ? ESC_EXPECT_EXISTS
                                       : INT64_MIN;
  return *out != INT64_MIN;
}

/* The JSON value v as msgpack into *out (owned), or err. */
static esc_status to_msgpack(const json_t *v, const char *what, void **out,
                             size_t *len, esc_error *err) {
  char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
  if (!text) {
    err->code = ESC_ENOMEM;
    snprintf(err->msg, sizeof err->msg, "%s: out of memory", what);
    return ESC_ENOMEM;
  }
  esc_status st = esc_json_to_msgpack(text, out, len, err);
  free(text);
  if (st)
    cli_error_prefix(err, what);
  return st;
}

static esc_status line_id(const json_t *o, size_t lineno, esc_uuid *id,
                          esc_error *err) {
  const json_t *v = json_object_get(o, "id");
  if (!v) {
    *id = esc_uuid_v4();
    return ESC_OK;
  }
  if (!json_is_string(v) || esc_uuid_parse(json_string_value(v), id, err) ||
      esc_uuid_is_nil(id))
    return bad(err, lineno, "id: expected a uuid string, not the nil uuid");
  return ESC_OK;
}

/* "tags": an array of key:value strings, copied into l. */
static esc_status line_tags(const json_t *o, size_t lineno, struct line *l,
                            esc_error *err) {
  const json_t *tags = json_object_get(o, "tags"), *v;
  char what[64];
  size_t i;
  if (!tags)
    return ESC_OK;
  if (!json_is_array(tags) || json_array_size(tags) > ESC_TAGS_MAX)
    return bad(err, lineno, "tags: expected an array of at most 16 strings");
  json_array_foreach(tags, i, v) {
    const char *tag = json_string_value(v);
    if (!tag)
      return bad(err, lineno, "tags: expected strings");
    if (!esc_tag_valid(tag, err)) {
      snprintf(what, sizeof what, "line %zu", lineno);
      cli_error_prefix(err, what);
      return err->code = ESC_EINVAL;
    }
    if (!(l->tags[l->ntags++] = strdup(tag)))
      return bad(err, lineno, "out of memory");
  }
  return ESC_OK;
}

/* The names, id and expected version of one line. */
static esc_status line_fields(const json_t *o, size_t lineno, struct line *l,
                              esc_error *err) {
  const char *stream = json_string_value(json_object_get(o, "stream"));
  const char *type = json_string_value(json_object_get(o, "type"));
  const json_t *exp = json_object_get(o, "expected");
  char what[64];
  snprintf(what, sizeof what, "line %zu", lineno);
  if (!stream || !esc_stream_id_valid(stream, err)) {
    if (stream)
      cli_error_prefix(err, what);
    return stream ? (err->code = ESC_EINVAL)
                  : bad(err, lineno, "stream: expected a string");
  }
  if (!type || !esc_type_name_valid(type, err)) {
    if (type)
      cli_error_prefix(err, what);
    return type ? (err->code = ESC_EINVAL)
                : bad(err, lineno, "type: expected a string");
  }
  l->has_expected = exp != NULL;
  if (exp && !parse_expected(exp, &l->expected))
    return bad(err, lineno, "expected: any, no-stream, exists or a version");
  l->stream = strdup(stream);
  l->type = strdup(type);
  if (!l->stream || !l->type)
    return bad(err, lineno, "out of memory");
  l->ev.type = l->type;
  l->ev.schema_version = 1;
  esc_status st = line_tags(o, lineno, l, err);
  return st ? st : line_id(o, lineno, &l->ev.id, err);
}

/* One JSON line into l (zeroed by the caller). */
static esc_status parse_line(const char *text, size_t lineno, struct line *l,
                             esc_error *err) {
  json_error_t jerr;
  char what[64];
  void *data = NULL, *meta = NULL;
  json_t *o = json_loads(text, 0, &jerr);
  esc_status st;
  if (!json_is_object(o)) {
    json_decref(o);
    return bad(err, lineno, "expected a JSON object");
  }
  st = line_fields(o, lineno, l, err);
  snprintf(what, sizeof what, "line %zu: data", lineno);
  if (!st && !json_object_get(o, "data"))
    st = bad(err, lineno, "data: missing");
  if (!st)
    st = to_msgpack(json_object_get(o, "data"), what, &data, &l->ev.data_len,
                    err);
  l->ev.data = data;
  snprintf(what, sizeof what, "line %zu: metadata", lineno);
  if (!st && json_is_object(json_object_get(o, "metadata")))
    st = to_msgpack(json_object_get(o, "metadata"), what, &meta,
                    &l->ev.metadata_len, err);
  else if (!st && json_object_get(o, "metadata"))
    st = bad(err, lineno, "metadata: expected a JSON object");
  else if (!st)
    st = cli_default_metadata(&meta, &l->ev.metadata_len, err);
  l->ev.metadata = meta;
  json_decref(o);
  return st;
}

static esc_status read_lines(FILE *in, struct batch *b, esc_error *err) {
  char *text = NULL;
  size_t size = 0, lineno = 0;
  esc_status st = ESC_OK;
  while (!st && getline(&text, &size, in) >= 0) {
    lineno++;
    if (text[strspn(text, " \t\r\n")] == '\0')
      continue;
    if (b->n == BATCH_EVENTS_MAX) {
      st = bad(err, lineno, "more than 10000 events in one batch");
      break;
    }
    if (b->n == b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 16;
      struct line *p = realloc(b->lines, cap * sizeof *p);
      if (!p) {
        st = bad(err, lineno, "out of memory");
        break;
      }
      b->lines = p;
      b->cap = cap;
    }
    memset(&b->lines[b->n], 0, sizeof b->lines[b->n]);
    st = parse_line(text, lineno, &b->lines[b->n++], err);
  }
  free(text);
  if (!st && b->n == 0)
    st = bad(err, lineno, "no events in the batch");
  return st;
}

/* The index of stream s among the requests, or nreqs if new. */
static size_t request_of(const struct batch *b, const char *s) {
  size_t i = 0;
  while (i < b->nreqs && strcmp(b->reqs[i].stream_id, s) != 0)
    i++;
  return i;
}

/* One request per stream, in the order streams first appear; each
 * stream's expected version is the one its lines give (at most one). */
static esc_status group_lines(struct batch *b, esc_error *err) {
  b->events = calloc(b->n, sizeof *b->events);
  b->reqs = calloc(b->n, sizeof *b->reqs);
  b->tags = calloc(b->n, sizeof *b->tags);
  b->req_tags = calloc(b->n, sizeof *b->req_tags);
  if (!b->events || !b->reqs || !b->tags || !b->req_tags)
    return bad(err, 0, "out of memory");
  for (size_t i = 0; i < b->n; i++) {
    const struct line *l = &b->lines[i];
    size_t r = request_of(b, l->stream);
    if (r == b->nreqs)
      b->reqs[b->nreqs++] = (esc_append_request){.stream_id = l->stream,
                                                 .expected = ESC_EXPECT_ANY};
    if (l->has_expected && b->reqs[r].n > 0 &&
        b->reqs[r].expected != l->expected)
      return bad(err, i + 1,
                 "expected: another line of this stream gives "
                 "another expected version");
    if (l->has_expected)
      b->reqs[r].expected = l->expected;
    b->reqs[r].n++;
  }
  size_t next = 0;
  for (size_t r = 0; r < b->nreqs; r++) {
    b->reqs[r].events = &b->events[next];
    b->req_tags[r] = &b->tags[next];
    for (size_t i = 0; i < b->n; i++)
      if (strcmp(b->lines[i].stream, b->reqs[r].stream_id) == 0) {
        struct line *l = &b->lines[i];
        b->tags[next] = (esc_tags){(const char *const *)l->tags, l->ntags};
        b->tagged |= l->ntags > 0;
        b->events[next++] = l->ev;
      }
  }
  return ESC_OK;
}

static void print_request(const cli_ctx *ctx, const esc_append_request *r) {
  char pos[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&r->result.position, pos);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(r->stream_id));
    json_object_set_new(o, "first_version",
                        json_integer(r->result.first_version));
    json_object_set_new(o, "last_version",
                        json_integer(r->result.last_version));
    json_object_set_new(o, "position", json_string(pos));
    json_object_set_new(o, "duplicate", json_boolean(r->result.duplicate));
    cli_json_emit(o);
    return;
  }
  printf("appended %s versions %" PRId64 "..%" PRId64 " (position %s%s)\n",
         r->stream_id, r->result.first_version, r->result.last_version, pos,
         r->result.duplicate ? "; duplicate: stored before, nothing written"
                             : "");
}

/* Each request its own esc_append_if (tagged, not atomic): as
 * esc_append_many reports, every request's status its own. */
static esc_status each_tagged(esc_store *store, struct batch *b,
                              esc_error *err) {
  for (size_t i = 0; i < b->nreqs; i++) {
    esc_status st = esc_append_if(store, NULL, NULL, &b->reqs[i],
                                  &b->req_tags[i], 1, &b->reqs[i].error);
    if (st == ESC_EUNKNOWN || st == ESC_ECONN)
      return esc_error_set(err, st, "%s", b->reqs[i].error.msg);
  }
  return ESC_OK;
}

/* The call the batch needs: atomic (and conditional) or per stream. */
static esc_status append(esc_store *store, struct batch *b, bool atomic,
                         const esc_tag_query *cond, const char *token,
                         esc_error *err) {
  if (cond || (atomic && b->tagged))
    return esc_append_if(store, cond, token, b->reqs, b->req_tags, b->nreqs,
                         err);
  if (atomic)
    return esc_append_atomic(store, b->reqs, b->nreqs, err);
  if (b->tagged)
    return each_tagged(store, b, err);
  return esc_append_many(store, b->reqs, b->nreqs, err);
}

/* Appends and prints; the exit code of the first failure, if any. */
static int run(const cli_ctx *ctx, struct batch *b, bool atomic,
               const esc_tag_query *cond, const char *token, esc_error *err) {
  esc_store *store = cli_open_store(ctx, err);
  int rc = CLI_EXIT_OK;
  if (!store)
    return cli_fail(ctx, err);
  atomic |= cond != NULL;
  esc_status st = append(store, b, atomic, cond, token, err);
  if (atomic && st) {
    rc = cli_fail(ctx, err);
  } else {
    for (size_t i = 0; i < b->nreqs; i++) {
      if (b->reqs[i].status == ESC_OK)
        print_request(ctx, &b->reqs[i]);
      else if (rc == CLI_EXIT_OK)
        rc = cli_fail(ctx, &b->reqs[i].error);
    }
    if (st && rc == CLI_EXIT_OK)
      rc = cli_fail(ctx, err);
  }
  esc_store_free(store);
  return rc;
}

int cli_append_batch(cli_ctx *ctx, const char *path, bool atomic,
                     const esc_tag_query *cond, const char *token) {
  struct batch b = {0};
  esc_error err = ESC_ERROR_INIT;
  FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  int rc;
  if (!in) {
    err.code = ESC_EINVAL;
    snprintf(err.msg, sizeof err.msg, "--batch %s: cannot open it", path);
    return cli_fail(ctx, &err);
  }
  esc_status st = read_lines(in, &b, &err);
  if (in != stdin)
    fclose(in);
  if (!st)
    st = group_lines(&b, &err);
  if (!st && atomic && b.nreqs > ESC_APPEND_ATOMIC_MAX)
    st = bad(&err, b.n, "more streams than one atomic append takes");
  if (st)
    rc = cli_fail(ctx, &err);
  else
    rc = run(ctx, &b, atomic, cond, token, &err);
  batch_release(&b);
  return rc;
}

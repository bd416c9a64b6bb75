/*
 * The console's dead letters: GET /api/dead-letters lists the open ones
 * (esc_dead_letters_list, as `esc dead-letters list --json`), and POST
 * /api/dead-letters/retry and /discard act on them (esc_dead_letters_act,
 * as `esc dead-letters retry|discard`). Each letter is the object
 * cli_dead_letter_json builds for the CLI.
 */
#include "console_routes.h"

#include <esc/projection.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* One request selects at most this many letters by id; more is a bulk
 * action, which {"all":true} says. */
#define IDS_MAX 1000

/* The n letters as a JSON array; l is freed. */
static json_t *letters_json(esc_dead_letter *l, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, cli_dead_letter_json(&l[i]));
  free(l);
  return list;
}

enum MHD_Result cli_console_api_dead_letters(const cli_ctx *ctx,
                                             struct MHD_Connection *c) {
  const char *projection =
      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "projection");
  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  if (esc_dead_letters_list(ctx->pg_url, ctx->schema,
                            projection && *projection ? projection : NULL,
                            false, &l, &n, &err) != ESC_OK) {
    free(l);
    return cli_console_reply_failure(c, &err);
  }
  json_t *o = json_object();
  json_object_set_new(o, "dead_letters", letters_json(l, n));
  return cli_console_reply_json(c, MHD_HTTP_OK, o);
}

/* The letters a request selects: its ids or, with "all", every open one
 * (of "projection" when given). */
typedef struct selection {
  esc_dead_letter_filter filter;
  int64_t ids[IDS_MAX];
} selection;

/* Fills s from the request's JSON (which it borrows strings from); NULL,
 * or what is wrong with it. */
static const char *parse_selection(json_t *req, selection *s) {
  json_t *ids = json_object_get(req, "ids");
  json_t *all = json_object_get(req, "all");
  json_t *projection = json_object_get(req, "projection");
  if (!json_is_object(req))
    return "the body must be a JSON object: {\"ids\":[...]} or "
           "{\"all\":true}";
  if (projection && !json_is_string(projection))
    return "projection: a projection's name";
  s->filter.projection = json_string_value(projection);
  if (json_is_true(all))
    return ids ? "give \"ids\" or \"all\", not both" : NULL;
  if (projection)
    return "projection selects only with \"all\":true";
  if (!json_is_array(ids) || json_array_size(ids) == 0 ||
      json_array_size(ids) > IDS_MAX)
    return "which letters? \"ids\": 1 to 1000 letter ids, or \"all\":true";
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 1)
      return "ids: each a letter id (an integer >= 1)";
    s->ids[i] = json_integer_value(v);
  }
  s->filter.ids = s->ids;
  s->filter.nids = json_array_size(ids);
  return NULL;
}

/* The library's refusals of a selection (no such letter, a state the
 * action does not apply to, a bad projection name) name only the request's
 * own ids and names: shown whole, unlike other failures. */
static enum MHD_Result reply_act_failure(struct MHD_Connection *c,
                                         const esc_error *err) {
  if (err->code == ESC_ENOTFOUND)
    return cli_console_reply_error(c, MHD_HTTP_NOT_FOUND, "not_found",
                                   err->msg);
  if (err->code == ESC_EINVAL)
    return cli_console_reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid",
                                   err->msg);
  return cli_console_reply_failure(c, err);
}

static enum MHD_Result act(const cli_ctx *ctx, struct MHD_Connection *c,
                           bool retry, const selection *s) {
  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  if (cli_dead_letters_act(ctx, retry, &s->filter, false, &l, &n, &err) !=
      ESC_OK) {
    free(l);
    return reply_act_failure(c, &err);
  }
  json_t *o = json_object();
  json_object_set_new(o, "action", json_string(retry ? "retry" : "discard"));
  json_object_set_new(o, "count", json_integer((json_int_t)n));
  json_object_set_new(o, "dead_letters", letters_json(l, n));
  return cli_console_reply_json(c, MHD_HTTP_OK, o);
}

enum MHD_Result cli_console_act_dead_letters(const cli_ctx *ctx,
                                             struct MHD_Connection *c,
                                             bool retry, const char *body,
                                             size_t len) {
  json_error_t jerr;
  json_t *req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!req)
    return cli_console_reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid",
                                   "the body is not JSON: want {\"ids\":[...]} "
                                   "or {\"all\":true}");
  selection *s = calloc(1, sizeof *s);
  const char *bad = s ? parse_selection(req, s) : NULL;
  enum MHD_Result r =
      !s ? cli_console_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "nomem",
                                   "out of memory")
      : bad ? cli_console_reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid", bad)
            : act(ctx, c, retry, s);
  free(s);
  json_decref(req);
  return r;
}

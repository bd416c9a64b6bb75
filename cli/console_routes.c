/* What the console answers: its embedded pages and the JSON API. */
#include "console_routes.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scripts and styles only from the console's own files: no inline
 * script, no outside origin, no framing, no forms posting elsewhere. */
#define CSP                                                                    \
  "default-src 'none'; script-src 'self'; style-src 'self'; "                  \
  "connect-src 'self'; img-src 'self'; base-uri 'none'; "                      \
  "form-action 'none'; frame-ancestors 'none'"

/* A response with the console's security headers; NULL on no memory. */
static struct MHD_Response *response(const char *type, const void *body,
                                     size_t len,
                                     enum MHD_ResponseMemoryMode mode) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
  if (!r)
    return NULL;
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "Content-Security-Policy", CSP);
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  return r;
}

/* Queues r with code and drops it. */
static enum MHD_Result queue(struct MHD_Connection *c, unsigned int code,
                             struct MHD_Response *r) {
  if (!r)
    return MHD_NO;
  enum MHD_Result ok = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ok;
}

enum MHD_Result cli_console_reply(struct MHD_Connection *c, unsigned int code,
                                  const char *type, const void *body,
                                  size_t len, enum MHD_ResponseMemoryMode mode) {
  return queue(c, code, response(type, body, len, mode));
}

enum MHD_Result cli_console_reply_json(struct MHD_Connection *c, unsigned int code,
                                 json_t *obj) {
  char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!text)
    return MHD_NO;
  return cli_console_reply(c, code, "application/json", text, strlen(text),
              MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result cli_console_reply_error(struct MHD_Connection *c, unsigned int code,
                                  const char *name, const char *message) {
  json_t *e = json_object();
  json_object_set_new(e, "code", json_string(name));
  json_object_set_new(e, "message", json_string(message));
  json_t *o = json_object();
  json_object_set_new(o, "error", e);
  return cli_console_reply_json(c, code, o);
}

enum MHD_Result cli_console_reply_unauthorized(struct MHD_Connection *c) {
  static const char body[] =
      "{\"error\":{\"code\":\"unauthorized\",\"message\":\"Authorization: "
      "a bearer token is needed for actions\"}}";
  struct MHD_Response *r = response("application/json", body,
                                    sizeof body - 1, MHD_RESPMEM_PERSISTENT);
  if (r)
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
  return queue(c, MHD_HTTP_UNAUTHORIZED, r);
}

enum MHD_Result cli_console_reply_failure(struct MHD_Connection *c,
                                          const esc_error *err) {
  fprintf(stderr, "esc: console: %s (%s)\n", err->msg,
          esc_strerror(err->code));
  unsigned int code = err->code == ESC_ENOTFOUND ? MHD_HTTP_NOT_FOUND
                      : err->code == ESC_EINVAL  ? MHD_HTTP_BAD_REQUEST
                                                 : MHD_HTTP_SERVICE_UNAVAILABLE;
  return cli_console_reply_error(c, code, cli_status_name(err->code),
                                 esc_strerror(err->code));
}

static enum MHD_Result api_stats(const cli_ctx *ctx, struct MHD_Connection *c) {
  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_console_reply_failure(c, &err);
  esc_store_stats stats;
  esc_uuid id;
  enum MHD_Result r;
  if (esc_store_identity(store, &id, &err) == ESC_OK &&
      esc_store_stats_get(store, &stats, &err) == ESC_OK)
    r = cli_console_reply_json(c, MHD_HTTP_OK, cli_stats_json(ctx->schema, &id, &stats));
  else
    r = cli_console_reply_failure(c, &err);
  esc_store_free(store);
  return r;
}

static const char *type_of(const char *path) {
  const char *dot = strrchr(path, '.');
  if (dot && strcmp(dot, ".js") == 0)
    return "text/javascript; charset=utf-8";
  if (dot && strcmp(dot, ".css") == 0)
    return "text/css; charset=utf-8";
  if (dot && strcmp(dot, ".svg") == 0)
    return "image/svg+xml";
  return "text/html; charset=utf-8";
}

static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *url) {
  const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
  for (size_t i = 0; i < cli_console_asset_count; i++) {
    const cli_console_asset *a = &cli_console_assets[i];
    if (strcmp(a->path, path) == 0)
      return cli_console_reply(c, MHD_HTTP_OK, type_of(path), a->data, a->len,
                  MHD_RESPMEM_PERSISTENT);
  }
  static const char missing[] = "not found\n";
  return cli_console_reply(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", missing,
              sizeof missing - 1, MHD_RESPMEM_PERSISTENT);
}

/* GET /api/console: what the pages need to know about the console. */
static enum MHD_Result api_console(const cli_console_env *env,
                                   struct MHD_Connection *c) {
  json_t *o = json_object();
  json_object_set_new(o, "actions", json_boolean(env->allow_actions));
  return cli_console_reply_json(c, MHD_HTTP_OK, o);
}

enum MHD_Result cli_console_route(const cli_console_env *env,
                                  struct MHD_Connection *c, const char *url) {
  if (strncmp(url, "/api/", 5) != 0)
    return serve_asset(c, url);
  if (strcmp(url, "/api/console") == 0)
    return api_console(env, c);
  if (strcmp(url, "/api/stats") == 0)
    return api_stats(env->ctx, c);
  if (strcmp(url, "/api/projections") == 0)
    return cli_console_api_projections(env->ctx, c);
  if (strcmp(url, "/api/stream") == 0)
    return cli_console_api_stream(env->ctx, c);
  if (strcmp(url, "/api/dead-letters") == 0)
    return cli_console_api_dead_letters(env->ctx, c);
  return cli_console_reply_error(c, MHD_HTTP_NOT_FOUND, "not_found",
                                 "no such API endpoint: try /api/stats, "
                                 "/api/projections, /api/stream or "
                                 "/api/dead-letters");
}

enum MHD_Result cli_console_route_action(const cli_console_env *env,
                                         struct MHD_Connection *c,
                                         const char *url, const char *method,
                                         const char *body, size_t len) {
  bool retry = strcmp(url, "/api/dead-letters/retry") == 0;
  if (!retry && strcmp(url, "/api/dead-letters/discard") != 0)
    return cli_console_reply_error(c, MHD_HTTP_NOT_FOUND, "not_found",
                                   "no such action: try POST "
                                   "/api/dead-letters/retry or /discard");
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
    return cli_console_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "actions are POST requests");
  return cli_console_act_dead_letters(env->ctx, c, retry, body, len);
}

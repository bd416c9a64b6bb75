/* The console's request router (console_routes.c); private to console*.c. */
#ifndef ESC_CLI_CONSOLE_ROUTES_H
#define ESC_CLI_CONSOLE_ROUTES_H

#include "console.h"

#include <microhttpd.h>
#include <stdint.h>

/* What the requests of one console may do; borrowed by every request. */
typedef struct cli_console_env {
  const cli_ctx *ctx;
  bool allow_actions; /* --allow-actions */
  const char *token;  /* the bearer token of actions; NULL without them */
} cli_console_env;

/* Answers a read (GET or HEAD): / and the embedded files, the JSON API;
 * 404 for unknown paths. */
enum MHD_Result cli_console_route(const cli_console_env *env,
                                  struct MHD_Connection *c, const char *url);

/* Answers an action (any other method) whose headers passed
 * cli_console_refuse_action, with its whole body (len bytes, followed by
 * a NUL): the POSTs under /api/dead-letters/; 405 for another method,
 * 404 for another path. */
enum MHD_Result cli_console_route_action(const cli_console_env *env,
                                         struct MHD_Connection *c,
                                         const char *url, const char *method,
                                         const char *body, size_t len);

/* Whether an action is refused on its headers alone, before its body is
 * read: 403 when actions are not allowed, 401 without a bearer token, 403
 * with a wrong one (console_auth.c). When refused, *r is the queued
 * answer. Nothing is touched. */
bool cli_console_refuse_action(const cli_console_env *env,
                               struct MHD_Connection *c, enum MHD_Result *r);

/* Replies with body (len bytes, handed over as mode says), with the
 * console's security headers (CSP, nosniff, no-store). */
enum MHD_Result cli_console_reply(struct MHD_Connection *c, unsigned int code,
                                  const char *type, const void *body,
                                  size_t len, enum MHD_ResponseMemoryMode mode);

/* Replies with obj (the reference is dropped) as the JSON body. */
enum MHD_Result cli_console_reply_json(struct MHD_Connection *c,
                                       unsigned int code, struct json_t *obj);

/* Replies {"error":{"code":name,"message":message}}. */
enum MHD_Result cli_console_reply_error(struct MHD_Connection *c,
                                        unsigned int code, const char *name,
                                        const char *message);

/* 401 with WWW-Authenticate: Bearer and an error object saying the
 * token is missing. */
enum MHD_Result cli_console_reply_unauthorized(struct MHD_Connection *c);

/* A library failure: the full message goes to the console's stderr; the
 * response names only the kind (404 for ESC_ENOTFOUND, 400 for
 * ESC_EINVAL, else 503), for libpq's texts can hold host names and parts
 * of the URL. */
enum MHD_Result cli_console_reply_failure(struct MHD_Connection *c,
                                          const esc_error *err);

/* GET /api/stream?id=S&from=V&limit=N (console_stream.c). */
enum MHD_Result cli_console_api_stream(const cli_ctx *ctx,
                                       struct MHD_Connection *c);

/* GET /api/projections (console_projections.c). */
enum MHD_Result cli_console_api_projections(const cli_ctx *ctx,
                                            struct MHD_Connection *c);

/* GET /api/dead-letters[?projection=P] and the actions POST
 * /api/dead-letters/retry and /discard (console_dead_letters.c). */
enum MHD_Result cli_console_api_dead_letters(const cli_ctx *ctx,
                                             struct MHD_Connection *c);
enum MHD_Result cli_console_act_dead_letters(const cli_ctx *ctx,
                                             struct MHD_Connection *c,
                                             bool retry, const char *body,
                                             size_t len);

#endif /* ESC_CLI_CONSOLE_ROUTES_H */

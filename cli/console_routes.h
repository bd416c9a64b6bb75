/* The console's request router (console_routes.c); private to console*.c. */
#ifndef ESC_CLI_CONSOLE_ROUTES_H
#define ESC_CLI_CONSOLE_ROUTES_H

#include "console.h"

#include <microhttpd.h>
#include <stdint.h>

/* Answers one request: GET / and the embedded files, GET /api/stats;
 * 403 for every other method, 404 for unknown paths. ctx is borrowed. */
enum MHD_Result cli_console_route(const cli_ctx *ctx, struct MHD_Connection *c,
                                  const char *url, const char *method);

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

#endif /* ESC_CLI_CONSOLE_ROUTES_H */

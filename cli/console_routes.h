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

#endif /* ESC_CLI_CONSOLE_ROUTES_H */

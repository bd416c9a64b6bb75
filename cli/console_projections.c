/*
 * GET /api/projections: every partition of every projection and
 * subscription, each the object `esc projections --json` prints
 * (cli_partition_status_json), from the same esc_projection_status call.
 */
#include "console_routes.h"

#include <esc/projection.h>

#include <jansson.h>
#include <stdlib.h>

enum MHD_Result cli_console_api_projections(const cli_ctx *ctx,
                                            struct MHD_Connection *c) {
  esc_error err = ESC_ERROR_INIT;
  esc_partition_status *st = NULL;
  size_t n = 0;
  if (esc_projection_status(ctx->pg_url, ctx->redis_url, ctx->schema,
                            ctx->key_prefix, &st, &n, &err) != ESC_OK) {
    free(st);
    return cli_console_reply_failure(c, &err);
  }
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(list, cli_partition_status_json(&st[i]));
  free(st);
  json_t *o = json_object();
  json_object_set_new(o, "partitions", list);
  return cli_console_reply_json(c, MHD_HTTP_OK, o);
}

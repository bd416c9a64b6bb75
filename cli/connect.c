/* Opening the store the global options name. */
#include "cli.h"

esc_store *cli_open_store(const cli_ctx *ctx, esc_error *err) {
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = ctx->schema;
  /* Shows up in pg_stat_activity, and so in `esc stats` of others. */
  opts.app_name = "esc-cli";
  /* NULL lets the library pick ESC_PG_URL, else the local default. */
  return esc_store_open(ctx->pg_url, &opts, err);
}

int cli_with_store(const cli_ctx *ctx, cli_store_fn *fn, void *arg) {
  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  int rc = fn(ctx, store, arg);
  esc_store_free(store);
  return rc;
}

/* esc migrate: apply the event store's SQL migrations. */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>

const char cli_help_migrate[] =
    "Usage: esc migrate\n"
    "\n"
    "Creates the event store schema (--schema, default esc) or applies the\n"
    "migrations it does not have yet. Safe to run any number of times and\n"
    "concurrently. Needs the database owner role.\n"
    "\n"
    "Output: \"schema esc: 1 migration applied\" or \"schema esc: up to "
    "date\";\n"
    "with --json {\"schema\":\"esc\",\"applied\":1}.\n";

static int print_result(const cli_ctx *ctx, int applied) {
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "schema", cli_json_string(ctx->schema));
    json_object_set_new(o, "applied", json_integer(applied));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (applied == 0)
    printf("schema %s: up to date\n", ctx->schema);
  else
    printf("schema %s: %d migration%s applied\n", ctx->schema, applied,
           applied == 1 ? "" : "s");
  return CLI_EXIT_OK;
}

int cli_cmd_migrate(cli_ctx *ctx, int argc, char **argv) {
  int parsed = cli_parse_plain(ctx, argc, argv, cli_help_migrate);
  if (parsed != CLI_CONTINUE)
    return parsed;

  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  int applied = 0;
  int rc = esc_store_migrate(store, &applied, &err) == ESC_OK
               ? print_result(ctx, applied)
               : cli_fail(ctx, &err);
  esc_store_free(store);
  return rc;
}

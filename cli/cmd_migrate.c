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
  static const struct option longopts[] = {CLI_GLOBAL_LONGOPTS,
                                           {NULL, 0, NULL, 0}};
  int c;
  cli_getopt_begin();
  while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
    switch (c) {
    case CLI_OPT_GLOBAL:
      break;
    case CLI_OPT_HELP:
      cli_print_help(cli_help_migrate);
      return CLI_EXIT_OK;
    default:
      return CLI_EXIT_USAGE;
    }
  }
  if (!cli_operands(ctx, argc, argv, 0, NULL))
    return CLI_EXIT_USAGE;

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

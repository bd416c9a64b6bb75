/* esc migrate: apply the event store's SQL migrations. */
#include "cli.h"
#include "options.h"

#include <jansson.h>
#include <stdio.h>

const char cli_help_migrate[] =
    "Usage: esc migrate [--writer-role NAME] [--reader-role NAME]\n"
    "                   [--share-roles]\n"
    "\n"
    "Creates the event store schema (--schema, default esc) or applies the\n"
    "migrations it does not have yet. Safe to run any number of times and\n"
    "concurrently. Needs the database owner role.\n"
    "\n"
    "A new store creates a writer and a reader role and grants them what\n"
    "they may do (docs/security.md). Roles belong to the whole PostgreSQL\n"
    "cluster, so by default they are named from database and schema,\n"
    "<db>_<schema>_writer and <db>_<schema>_reader, and no two stores share\n"
    "them. Options, for a new store only (the names are recorded; migrate\n"
    "never renames them):\n"
    "  --writer-role NAME  the writer role (created if missing)\n"
    "  --reader-role NAME  the reader role (created if missing)\n"
    "  --share-roles       grant roles that already hold rights on another\n"
    "                      store; without it such a role is refused (exit 6)\n"
    "A store made before roles were recorded keeps <schema>_writer and\n"
    "<schema>_reader.\n"
    "\n"
    "Output: \"schema esc: 1 migration applied\" or \"schema esc: up to "
    "date\";\n"
    "with --json {\"schema\":\"esc\",\"applied\":1,\"writer\":..,"
    "\"reader\":..}.\n";

static int print_result(const cli_ctx *ctx, esc_store *store, int applied) {
  char writer[ESC_ROLE_NAME_MAX] = "", reader[ESC_ROLE_NAME_MAX] = "";
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_roles(store, writer, reader, &err))
    return cli_fail(ctx, &err);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "schema", cli_json_string(ctx->schema));
    json_object_set_new(o, "applied", json_integer(applied));
    json_object_set_new(o, "writer", cli_json_string(writer));
    json_object_set_new(o, "reader", cli_json_string(reader));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (applied == 0)
    printf("schema %s: up to date (roles %s, %s)\n", ctx->schema, writer,
           reader);
  else
    printf("schema %s: %d migration%s applied (roles %s, %s)\n", ctx->schema,
           applied, applied == 1 ? "" : "s", writer, reader);
  return CLI_EXIT_OK;
}

/* Returns CLI_CONTINUE to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv,
                      esc_migrate_options *o) {
  const cli_option opts[] = {CLI_TEXT("writer-role", &o->writer_role),
                             CLI_TEXT("reader-role", &o->reader_role),
                             CLI_FLAG("share-roles", &o->share_roles),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_migrate, opts, 0, 0, NULL, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

static int migrate(const cli_ctx *ctx, esc_store *store, void *arg) {
  esc_error err = ESC_ERROR_INIT;
  int applied = 0;
  return esc_store_migrate_with(store, arg, &applied, &err) == ESC_OK
             ? print_result(ctx, store, applied)
             : cli_fail(ctx, &err);
}

int cli_cmd_migrate(cli_ctx *ctx, int argc, char **argv) {
  esc_migrate_options o = ESC_MIGRATE_OPTIONS_INIT;
  int parsed = parse_args(ctx, argc, argv, &o);
  return parsed != CLI_CONTINUE ? parsed : cli_with_store(ctx, migrate, &o);
}

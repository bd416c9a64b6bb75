/* esc truncate and esc tombstone: explicit, logged removal of events. */
#include "cli.h"
#include "options.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

const char cli_help_truncate[] =
    "Usage: esc truncate STREAM --before V [--reason TEXT] [--force]\n"
    "\n"
    "Removes the events of STREAM below version V. The stream keeps its\n"
    "version, so appends continue where they were. The removal is recorded\n"
    "in the store's retention log (who, when, how many, the reason). Needs\n"
    "the database owner role.\n"
    "\n"
    "Refused (exit 1, truncated) when no snapshot of STREAM covers the\n"
    "versions it would remove: its state could never be loaded again.\n"
    "Snapshot it first (esc_truncate_stream does), or add --force for a\n"
    "stream nothing loads a state from; the log then says [forced].\n"
    "\n"
    "Output: \"truncated order-1 before version 4: 3 events removed\"; with\n"
    "--json {\"stream\",\"before\",\"removed\"}.\n";

const char cli_help_tombstone[] =
    "Usage: esc tombstone STREAM --yes [--reason TEXT]\n"
    "\n"
    "Removes every event of STREAM and marks it deleted for good: later\n"
    "appends fail (exit 4) and reads report it deleted (exit 4). Logged "
    "like\n"
    "truncate. Without --yes nothing happens (exit 2).\n"
    "\n"
    "Output: \"tombstoned order-1: 5 events removed\"; with --json\n"
    "{\"stream\",\"removed\",\"tombstoned\":true}.\n";

typedef struct retention_args {
  const char *stream;
  int64_t before; /* truncate; 0: not given */
  const char *reason;
  bool yes;   /* tombstone */
  bool force; /* truncate */
} retention_args;

/* Shared by both commands: --before and --force only for truncate, --yes
 * only for tombstone. Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, bool truncate,
                      retention_args *a) {
  const cli_option truncate_opts[] = {
      CLI_INT("before", &a->before, 1, INT64_MAX),
      CLI_TEXT("reason", &a->reason), CLI_FLAG("force", &a->force),
      CLI_OPTIONS_END};
  const cli_option tombstone_opts[] = {CLI_TEXT("reason", &a->reason),
                                       CLI_FLAG("yes", &a->yes),
                                       CLI_OPTIONS_END};
  static const char *const names[] = {"STREAM"};
  cli_syntax s = {truncate ? cli_help_truncate : cli_help_tombstone,
                  truncate ? truncate_opts : tombstone_opts,
                  1,
                  1,
                  names,
                  false,
                  NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  a->stream = argv[optind];
  if (truncate && a->before == 0)
    return cli_usage(ctx, "missing --before V");
  return cli_check_stream(ctx, a->stream);
}

static int print_truncated(const cli_ctx *ctx, const retention_args *a,
                           int64_t removed) {
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(a->stream));
    json_object_set_new(o, "before", json_integer(a->before));
    json_object_set_new(o, "removed", json_integer(removed));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  printf("truncated %s before version %" PRId64 ": %" PRId64
         " event%s removed\n",
         a->stream, a->before, removed, removed == 1 ? "" : "s");
  return CLI_EXIT_OK;
}

static int print_tombstoned(const cli_ctx *ctx, const retention_args *a,
                            int64_t removed) {
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(a->stream));
    json_object_set_new(o, "removed", json_integer(removed));
    json_object_set_new(o, "tombstoned", json_true());
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  printf("tombstoned %s: %" PRId64 " event%s removed\n", a->stream, removed,
         removed == 1 ? "" : "s");
  return CLI_EXIT_OK;
}

static int run(cli_ctx *ctx, int argc, char **argv, bool truncate) {
  retention_args a = {NULL, 0, NULL, false, false};
  int rc = parse_args(ctx, argc, argv, truncate, &a);
  if (rc >= 0)
    return rc;

  esc_error err = ESC_ERROR_INIT;
  if (!truncate && !a.yes)
    return cli_usage(ctx,
                     "tombstoning deletes every event of %s for good; "
                     "add --yes to do it",
                     a.stream);
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  int64_t removed = 0;
  esc_truncate_options t = {a.reason, a.force};
  esc_status st = truncate ? esc_stream_truncate_opts(store, a.stream, a.before,
                                                      &t, &removed, &err)
                           : esc_stream_tombstone(store, a.stream, a.reason,
                                                  &removed, &err);
  if (st == ESC_ETRUNCATED)
    rc = cli_fail_hint(ctx, &err,
                       "nothing was removed; add --force to remove the "
                       "events anyway: the stream's state can then never be "
                       "loaded again",
                       NULL);
  else if (st != ESC_OK)
    rc = cli_fail(ctx, &err);
  else
    rc = truncate ? print_truncated(ctx, &a, removed)
                  : print_tombstoned(ctx, &a, removed);
  esc_store_free(store);
  return rc;
}

int cli_cmd_truncate(cli_ctx *ctx, int argc, char **argv) {
  return run(ctx, argc, argv, true);
}

int cli_cmd_tombstone(cli_ctx *ctx, int argc, char **argv) {
  return run(ctx, argc, argv, false);
}

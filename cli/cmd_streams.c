/* esc streams: list streams with their versions, paged. */
#include "cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_streams[] =
    "Usage: esc streams [options]\n"
    "\n"
    "Lists streams ordered by id.\n"
    "\n"
    "Options:\n"
    "  --category C  only streams of category C (\"order\" for order-42)\n"
    "  --limit N     list at most N streams (default 100; 0: all); when\n"
    "                more follow, stderr says so\n"
    "  --all         every stream (--limit 0)\n"
    "\n"
    "Output: a table of STREAM, VERSION, TRUNCATED (versions below it were\n"
    "removed), TOMBSTONED and UPDATED (UTC); with --json one object per "
    "line:\n"
    "{\"stream\",\"version\",\"truncated_before\",\"tombstoned\","
    "\"updated_at\"}.\n";

/* Streams fetched per round trip. */
#define STREAMS_PAGE 500

typedef struct streams_args {
  const char *category; /* NULL: all */
  int64_t limit;        /* 0: all */
} streams_args;

enum { OPT_CATEGORY = 1, OPT_LIMIT, OPT_ALL };

/* Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, streams_args *a) {
  static const struct option longopts[] = {
      {"category", required_argument, NULL, OPT_CATEGORY},
      {"limit", required_argument, NULL, OPT_LIMIT},
      {"all", no_argument, NULL, OPT_ALL},
      CLI_GLOBAL_LONGOPTS,
      {NULL, 0, NULL, 0}};
  int c;
  cli_getopt_begin();
  while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
    switch (c) {
    case OPT_CATEGORY:
      a->category = optarg;
      break;
    case OPT_LIMIT:
      if (!cli_parse_i64(ctx, "--limit", optarg, 0, INT64_MAX, &a->limit))
        return CLI_EXIT_USAGE;
      break;
    case OPT_ALL:
      a->limit = 0;
      break;
    case CLI_OPT_GLOBAL:
      break;
    case CLI_OPT_HELP:
      cli_print_help(cli_help_streams);
      return CLI_EXIT_OK;
    default:
      return CLI_EXIT_USAGE;
    }
  }
  if (!cli_operands(ctx, argc, argv, 0, NULL))
    return CLI_EXIT_USAGE;
  return -1;
}

static bool print_stream(const cli_ctx *ctx, const esc_stream_info *s) {
  char when[32];
  cli_format_time(s->updated_at_us, when);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(s->stream_id));
    json_object_set_new(o, "version", json_integer(s->version));
    json_object_set_new(o, "truncated_before",
                        json_integer(s->truncated_before));
    json_object_set_new(o, "tombstoned", json_boolean(s->tombstoned));
    json_object_set_new(o, "updated_at", json_string(when));
    return cli_json_emit(o);
  }
  return printf("%-32s %8" PRId64 " %10" PRId64 " %-10s %s\n", s->stream_id,
                s->version, s->truncated_before, s->tombstoned ? "yes" : "no",
                when) >= 0;
}

/* Lists and prints page by page; returns the exit code. */
static int list_pages(const cli_ctx *ctx, esc_store *store,
                      const streams_args *a) {
  size_t left = a->limit == 0 ? SIZE_MAX : (size_t)a->limit;
  esc_stream_info *page = calloc(STREAMS_PAGE, sizeof *page);
  char after[ESC_STREAM_ID_MAX + 1] = "";
  esc_error err = ESC_ERROR_INIT;
  int rc = CLI_EXIT_OK;
  if (!page) {
    err.code = ESC_ENOMEM;
    return cli_fail(ctx, &err);
  }
  bool header = !ctx->json;
  while (left > 0) {
    size_t want = left < STREAMS_PAGE ? left : STREAMS_PAGE, count = 0;
    if (esc_stream_list(store, a->category, after[0] ? after : NULL, page, want,
                        &count, &err) != ESC_OK) {
      rc = cli_fail(ctx, &err);
      break;
    }
    /* After the first answer, so that an error is not preceded by it. */
    if (header)
      printf("%-32s %8s %10s %-10s %s\n", "STREAM", "VERSION", "TRUNCATED",
             "TOMBSTONED", "UPDATED");
    header = false;
    for (size_t i = 0; i < count; i++)
      if (!print_stream(ctx, &page[i])) {
        rc = CLI_EXIT_ERROR; /* main() reports the failed write */
        goto out;
      }
    left -= count;
    if (count < want)
      break;
    memcpy(after, page[count - 1].stream_id, sizeof after);
  }
  /* One more stream listed says whether the limit hid any. */
  size_t more = 0;
  if (left == 0 && esc_stream_list(store, a->category, after, page, 1, &more,
                                   &err) == ESC_OK && more > 0) {
    char rest[ESC_STREAM_ID_MAX + 64];
    snprintf(rest, sizeof rest, "the next is %s", page[0].stream_id);
    cli_note_cut(ctx, a->limit, "streams", rest);
  }
out:
  free(page);
  return rc;
}

int cli_cmd_streams(cli_ctx *ctx, int argc, char **argv) {
  streams_args a = {NULL, 100};
  int rc = parse_args(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;

  esc_error err = ESC_ERROR_INIT;
  if (a.category && !esc_category_valid(a.category, &err)) {
    err.code = ESC_EINVAL;
    return cli_fail(ctx, &err);
  }
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  rc = list_pages(ctx, store, &a);
  esc_store_free(store);
  return rc;
}

/* esc streams: list streams with their versions, paged. */
#include "cli.h"
#include "options.h"

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

/* Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, streams_args *a) {
  const cli_option opts[] = {CLI_TEXT("category", &a->category),
                             CLI_LIMIT_ALL(&a->limit, INT64_MAX),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_streams, opts, 0, 0, NULL, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  return rc != CLI_CONTINUE ? rc : cli_check_category(ctx, a->category);
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
static int list_pages(const cli_ctx *ctx, esc_store *store, void *arg) {
  const streams_args *a = arg;
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
  return rc >= 0 ? rc : cli_with_store(ctx, list_pages, &a);
}

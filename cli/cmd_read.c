/* esc read: the events of one stream, forward or backward, paged; or
 * the events carrying tags, with a consistency token. */
#include "cli.h"
#include "options.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

const char cli_help_read[] =
    "Usage: esc read STREAM [options]\n"
    "       esc read --tag T [--tag T2 ...] [--type TYPE ...] [options]\n"
    "\n"
    "Prints the events of STREAM in stream order. With --tag, the events\n"
    "carrying every --tag (and of a --type, when given) in log order, as\n"
    "esc tail prints them, then a consistency token for\n"
    "`esc append --condition-tag ... --after TOKEN`: \"token: T\", with\n"
    "--json one last line {\"token\": \"T\"}.\n"
    "\n"
    "Options:\n"
    "  --from V      start at stream version V, inclusive (default: the "
    "first\n"
    "                event, or the last one with --backward)\n"
    "  --backward    newest first\n"
    "  --limit N     print at most N events (default 100; 0: all, read in\n"
    "                pages); when more follow, stderr says so\n"
    "  --all         every event (--limit 0)\n"
    "\n"
    "Output, one line per event:\n"
    "  3  OrderPlaced  v1  2026-11-21T10:57:01.123Z  {\"customer\":\"c-7\"}\n"
    "  (version, type, schema version, recorded time in UTC, data as JSON);\n"
    "with --json one object per line: {\"stream\",\"version\",\"type\",\n"
    "\"schema_version\",\"id\",\"position\",\"global_position\","
    "\"recorded_at\",\n"
    "\"data\",\"metadata\"}. A stream that does not exist exits 4.\n";

/* Events fetched per round trip. */
#define READ_PAGE 500

typedef struct read_args {
  const char *stream;
  int64_t from;
  bool backward;
  int64_t limit;   /* 0: all */
  cli_tagging tag; /* --tag into cond_tags, --type into cond_types */
} read_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, read_args *a) {
  static const char *const names[] = {"STREAM"};
  const cli_option opts[] = {CLI_INT("from", &a->from, 0, INT64_MAX),
                             CLI_FLAG("backward", &a->backward),
                             CLI_LIMIT_ALL(&a->limit, INT64_MAX),
                             CLI_CALL("tag", &a->tag, cli_opt_cond_tag),
                             CLI_CALL("type", &a->tag, cli_opt_cond_type),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_read, opts, 0, 1, names, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  if (a->tag.ncond_types && !a->tag.ncond_tags)
    return cli_usage(ctx, "--type: only with --tag");
  if (a->tag.ncond_tags && (a->backward || a->from))
    return cli_usage(ctx, "--tag: not with --from or --backward");
  if (!cli_operands(ctx, argc, argv, a->tag.ncond_tags ? 0 : 1, names))
    return CLI_EXIT_USAGE;
  a->stream = a->tag.ncond_tags ? NULL : argv[optind];
  return a->stream ? cli_check_stream(ctx, a->stream) : -1;
}

static int print_token(const cli_ctx *ctx, const char *token) {
  if (!ctx->json)
    return printf("token: %s\n", token) < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
  json_t *o = json_object();
  json_object_set_new(o, "token", json_string(token));
  return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* esc read --tag: pages by global position; the first page's token,
 * which is never less safe than a later one. */
static int read_tagged(const cli_ctx *ctx, esc_store *store, void *arg) {
  read_args *a = arg;
  size_t left = a->limit == 0 ? SIZE_MAX : (size_t)a->limit;
  char token[ESC_TAG_QUERY_TOKEN_MAX], page_token[ESC_TAG_QUERY_TOKEN_MAX];
  int64_t after = 0;
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  int rc = CLI_EXIT_OK;
  a->tag.item = (esc_tag_query_item){a->tag.cond_tags, a->tag.ncond_tags,
                                     a->tag.cond_types, a->tag.ncond_types};
  a->tag.query = (esc_tag_query){&a->tag.item, 1};
  token[0] = '\0';
  while (left > 0) {
    size_t want = left < READ_PAGE ? left : READ_PAGE;
    if (esc_read_tagged(store, &a->tag.query, after, want, &ev,
                        token[0] ? page_token : token, &err)) {
      rc = cli_fail(ctx, &err);
      goto out;
    }
    for (size_t i = 0; i < ev.count; i++)
      if (!cli_print_event(ctx, &ev.items[i], CLI_FORM_ALL)) {
        rc = CLI_EXIT_ERROR;
        goto out;
      }
    left -= ev.count;
    if (ev.count < want)
      break;
    after = ev.items[ev.count - 1].position.global;
  }
  rc = print_token(ctx, token);
out:
  esc_events_release(&ev);
  return rc;
}

/* Reads and prints page by page; returns the exit code. */
static int read_pages(const cli_ctx *ctx, esc_store *store, void *arg) {
  const read_args *a = arg;
  esc_direction dir = a->backward ? ESC_BACKWARD : ESC_FORWARD;
  size_t left = a->limit == 0 ? SIZE_MAX : (size_t)a->limit;
  int64_t from = a->from;
  esc_events ev;
  esc_error err = ESC_ERROR_INIT;
  int rc = CLI_EXIT_OK;
  bool cut = false; /* the limit ended the loop, not the stream */
  esc_events_init(&ev);
  while (left > 0) {
    size_t want = left < READ_PAGE ? left : READ_PAGE;
    if (esc_read_stream(store, a->stream, from, dir, want, &ev, &err) !=
        ESC_OK) {
      rc = cli_fail(ctx, &err);
      break;
    }
    for (size_t i = 0; i < ev.count; i++)
      if (!cli_print_event(ctx, &ev.items[i], CLI_FORM_STREAM)) {
        rc = CLI_EXIT_ERROR; /* main() reports the failed write */
        goto out;
      }
    left -= ev.count;
    /* A short page is the end of the stream. */
    if (ev.count < want)
      break;
    int64_t last = ev.items[ev.count - 1].stream_version;
    /* Backward from 0 would mean "from the end" again. */
    if (a->backward && last <= 1)
      break;
    from = a->backward ? last - 1 : last + 1;
    cut = left == 0;
  }
  /* One more event read says whether the limit hid any. */
  if (cut && esc_read_stream(store, a->stream, from, dir, 1, &ev, &err) ==
                 ESC_OK && ev.count > 0) {
    char rest[48];
    snprintf(rest, sizeof rest, "--from %" PRId64, from);
    cli_note_cut(ctx, a->limit, "events", rest);
  }
out:
  esc_events_release(&ev);
  return rc;
}

int cli_cmd_read(cli_ctx *ctx, int argc, char **argv) {
  read_args a = {.limit = 100};
  int rc = parse_args(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;
  return cli_with_store(ctx, a.stream ? read_pages : read_tagged, &a);
}

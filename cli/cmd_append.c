/* esc append: append one event to a stream. */
#include "cli.h"
#include "options.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

const char cli_help_append[] =
    "Usage: esc append STREAM TYPE JSON [options]\n"
    "       esc append --batch FILE [--atomic] [options]\n"
    "\n"
    "Appends one event of type TYPE with data JSON (\"-\" reads it from "
    "stdin)\n"
    "to STREAM. The data is stored as msgpack.\n"
    "\n"
    "Options:\n"
    "  --expected E        any (default), no-stream, exists, or the exact\n"
    "                      current version N (0: the stream has no events)\n"
    "  --id UUID           the event id (default: a random v4 id); "
    "re-running\n"
    "                      with the same id and content is a no-op that "
    "returns\n"
    "                      the original position\n"
    "  --metadata JSON     metadata as a JSON object, stored as-is; default:\n"
    "                      {\"actor\": $USER, \"time\": now in "
    "microseconds}\n"
    "  --schema-version N  the event's schema version (default 1)\n"
    "  --batch FILE        events from FILE (\"-\": stdin), one JSON object a\n"
    "                      line: {\"stream\", \"type\", \"data\", and "
    "optional\n"
    "                      \"expected\", \"id\", \"metadata\"}; one request "
    "per\n"
    "                      stream, its lines' events in file order, its\n"
    "                      expected version given on any of its lines\n"
    "  --atomic            with --batch: every stream in one transaction, all\n"
    "                      or nothing; a conflict (exit 3) names every stream\n"
    "                      whose expected version failed. Without it each\n"
    "                      stream is its own transaction.\n"
    "  --tag T             a tag of the event, key:value (repeatable, up to\n"
    "                      16); in a --batch, a line's \"tags\": [\"k:v\"]\n"
    "  --condition-tag T   append only if no event carrying every such tag\n"
    "                      (repeatable) and of a --condition-type (any, when\n"
    "                      none is given) was appended after --after TOKEN,\n"
    "                      the token `esc read --tag ... --json` printed;\n"
    "                      otherwise exit 3 naming the first such event. A\n"
    "                      conditional --batch is atomic.\n"
    "  --condition-type T  see --condition-tag (repeatable)\n"
    "  --after TOKEN       see --condition-tag\n"
    "\n"
    "Output: \"appended order-1 version 3 (position 812/57)\"; with --json\n"
    "{\"stream\",\"first_version\",\"last_version\",\"position\","
    "\"duplicate\",\"id\"}.\n"
    "\n"
    "Exit 5 says which: the append was not sent (nothing was appended), or\n"
    "its outcome is unknown (sent, then the reply was lost: it may have been\n"
    "applied). Settle an unknown one by running the same append again with\n"
    "the --id it names: it is stored once either way.\n";

typedef struct append_args {
  const char *stream;
  const char *type;
  const char *data_json;
  const char *metadata_json; /* NULL: built from $USER and the time */
  const char *id_text;       /* NULL: a random id */
  int64_t expected;
  int64_t schema_version;
  const char *batch; /* --batch FILE; NULL: one event from the operands */
  bool atomic;
  cli_tagging tag;
} append_args;

static int expected(cli_ctx *ctx, const char *option, const char *value,
                    void *target) {
  (void)option; /* cli_parse_expected names --expected itself */
  return cli_parse_expected(ctx, value, target) ? CLI_CONTINUE : CLI_EXIT_USAGE;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, append_args *a) {
  static const char *const names[] = {"STREAM", "TYPE", "JSON"};
  const cli_option opts[] = {
      CLI_CALL("expected", &a->expected, expected),
      CLI_TEXT("id", &a->id_text),
      CLI_TEXT("metadata", &a->metadata_json),
      CLI_INT("schema-version", &a->schema_version, 1, INT32_MAX),
      CLI_TEXT("batch", &a->batch),
      CLI_FLAG("atomic", &a->atomic),
      CLI_CALL("tag", &a->tag, cli_opt_tag),
      CLI_CALL("condition-tag", &a->tag, cli_opt_cond_tag),
      CLI_CALL("condition-type", &a->tag, cli_opt_cond_type),
      CLI_TEXT("after", &a->tag.after),
      CLI_OPTIONS_END};
  /* Operands are counted below: none with --batch. */
  cli_syntax s = {cli_help_append, opts, 0, CLI_ANY, NULL, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  if (a->atomic && !a->batch)
    return cli_usage(ctx, "--atomic: only with --batch");
  if (a->batch && a->tag.ntags)
    return cli_usage(ctx, "--tag: with --batch, give each line its \"tags\"");
  if (!cli_operands(ctx, argc, argv, a->batch ? 0 : 3, names))
    return CLI_EXIT_USAGE;
  if (!a->batch) {
    a->stream = argv[optind];
    a->type = argv[optind + 1];
    a->data_json = argv[optind + 2];
  }
  return -1;
}

/* The default metadata: who appended, and when. */
esc_status cli_default_metadata(void **out, size_t *out_len, esc_error *err) {
  esc_metadata m = ESC_METADATA_INIT;
  const char *user = getenv("USER");
  m.actor = user && *user ? user : "esc-cli";
  m.time_us = esc_now_us();
  return esc_metadata_encode(&m, out, out_len, err);
}

/*
 * Everything that can be checked without a server: names, the id, data
 * and metadata. Fills ev (pointing into *data and *meta, which the caller
 * frees) or err.
 */
static esc_status prepare_event(const append_args *a, esc_event_data *ev,
                                void **data, void **meta, esc_error *err) {
  esc_status st;
  if (!esc_stream_id_valid(a->stream, err) ||
      !esc_type_name_valid(a->type, err))
    return err->code = ESC_EINVAL;
  if (a->id_text) {
    st = esc_uuid_parse(a->id_text, &ev->id, err);
    if (st != ESC_OK) {
      cli_error_prefix(err, "--id");
      return st;
    }
    if (esc_uuid_is_nil(&ev->id)) {
      snprintf(err->msg, sizeof err->msg, "--id: the nil uuid is not an id");
      return err->code = ESC_EINVAL;
    }
  } else {
    ev->id = esc_uuid_v4();
  }
  st = cli_json_arg("data", a->data_json, false, data, &ev->data_len, err);
  if (st != ESC_OK)
    return st;
  if (a->metadata_json)
    st = cli_json_arg("--metadata", a->metadata_json, true, meta,
                      &ev->metadata_len, err);
  else
    st = cli_default_metadata(meta, &ev->metadata_len, err);
  if (st != ESC_OK)
    return st;
  ev->type = a->type;
  ev->schema_version = (int32_t)a->schema_version;
  ev->data = *data;
  ev->metadata = *meta;
  return ESC_OK;
}

/* A failed append, with what the operator needs to know: whether anything
 * can have been stored and, when that is unknown, how to find out. */
static int fail_append(const cli_ctx *ctx, const char *stream,
                       const esc_event_data *ev, const esc_error *err) {
  char id[37], hint[512];
  esc_uuid_format(&ev->id, id);
  if (err->code == ESC_EUNKNOWN) {
    snprintf(hint, sizeof hint,
             "to settle it, run the same append again with --id %s (a "
             "repeat stores nothing twice and prints the original "
             "position), or look: esc read %s --backward --limit 5",
             id, stream);
    return cli_fail_hint(ctx, err, hint, id);
  }
  if (err->code == ESC_ECONN)
    return cli_fail_hint(ctx, err,
                         "the append was not sent: nothing was "
                         "appended",
                         id);
  if (err->code == ESC_ETIMEDOUT) /* the server cancelled it */
    return cli_fail_hint(ctx, err, "nothing was appended", id);
  return cli_fail(ctx, err);
}

static int print_result(const cli_ctx *ctx, const char *stream,
                        const esc_event_data *ev, const esc_append_result *r) {
  char pos[ESC_POSITION_TOKEN_MAX], id[37];
  esc_position_format(&r->position, pos);
  esc_uuid_format(&ev->id, id);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(stream));
    json_object_set_new(o, "first_version", json_integer(r->first_version));
    json_object_set_new(o, "last_version", json_integer(r->last_version));
    json_object_set_new(o, "position", json_string(pos));
    json_object_set_new(o, "duplicate", json_boolean(r->duplicate));
    json_object_set_new(o, "id", json_string(id));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  printf("appended %s version %" PRId64 " (position %s%s)\n", stream,
         r->last_version, pos,
         r->duplicate ? "; duplicate: stored before, nothing written" : "");
  return CLI_EXIT_OK;
}

/* The one event, tagged or conditional: one esc_append_if request. */
static esc_status append_if(esc_store *store, const append_args *a,
                            const esc_tag_query *cond, const esc_event_data *ev,
                            esc_append_result *out, esc_error *err) {
  esc_append_request req = {
      .stream_id = a->stream, .expected = a->expected, .events = ev, .n = 1};
  esc_tags tags = {a->tag.tags, a->tag.ntags};
  const esc_tags *per_request[1] = {&tags};
  esc_status rc =
      esc_append_if(store, cond, a->tag.after, &req, per_request, 1, err);
  *out = req.result;
  return rc;
}

int cli_cmd_append(cli_ctx *ctx, int argc, char **argv) {
  append_args a = {.expected = ESC_EXPECT_ANY, .schema_version = 1};
  const esc_tag_query *cond = NULL;
  int rc = parse_args(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;
  if (!cli_tag_condition(ctx, &a.tag, &cond))
    return CLI_EXIT_USAGE;
  if (a.batch)
    return cli_append_batch(ctx, a.batch, a.atomic, cond, a.tag.after);

  esc_error err = ESC_ERROR_INIT;
  esc_event_data ev = {{{0}}, NULL, 1, NULL, 0, NULL, 0};
  void *data = NULL, *meta = NULL;
  esc_store *store = NULL;
  esc_append_result result;
  if (prepare_event(&a, &ev, &data, &meta, &err) != ESC_OK) {
    rc = cli_fail(ctx, &err);
    goto out;
  }
  store = cli_open_store(ctx, &err);
  if (!store ||
      (cond || a.tag.ntags
           ? append_if(store, &a, cond, &ev, &result, &err)
           : esc_append(store, a.stream, a.expected, &ev, 1, &result, &err))) {
    rc = fail_append(ctx, a.stream, &ev, &err);
    goto out;
  }
  rc = print_result(ctx, a.stream, &ev, &result);
out:
  esc_store_free(store);
  free(data);
  free(meta);
  return rc;
}

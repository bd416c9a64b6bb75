/*
 * esc processes: process managers as an operator sees them. Instances by
 * state per process, one instance's history (its stream's inputs and
 * decisions), pending deadlines, parked instances, and the owner's retry
 * or discard of a parked one. Thin layers over the administration calls
 * of <esc/process.h>; docs/cli.md says what each prints.
 */
#include "cli.h"
#include "options.h"

#include <esc/process.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_processes[] =
    "Usage: esc processes [NAME]\n"
    "       esc processes show NAME ID\n"
    "       esc processes deadlines [NAME] [--limit N | --all]\n"
    "       esc processes parked [NAME]\n"
    "       esc processes retry|discard NAME ID\n"
    "\n"
    "Process managers (<esc/process.h>) keep each instance's inputs and\n"
    "decisions in a stream of its own, process:NAME-ID; these commands\n"
    "read the runtime's tables beside those streams and the streams.\n"
    "\n"
    "esc processes [NAME]: one line per process that has an instance (or\n"
    "NAME's only; exit 4 when it has none): PROCESS, ACTIVE, ENDED,\n"
    "RETRYING (failing, retried automatically), PARKED (waiting for an\n"
    "operator) and DEADLINES (pending); with --json one object per line,\n"
    "{\"process\",\"active\",\"ended\",\"retrying\",\"parked\","
    "\"deadlines\"}.\n"
    "\n"
    "show NAME ID: the history of instance ID, one line per record of its\n"
    "stream: VERSION, RECORDED, RECORD (inputs: EventReceived,\n"
    "CommandOutcome, DeadlineFired; the decisions made on an input,\n"
    "indented below it: CommandIssued, DeadlineScheduled,\n"
    "DeadlineCancelled) and DETAIL; a parked instance ends with a line\n"
    "saying why. With --json one object per record (docs/cli.md lists\n"
    "the keys). Exit 4 when the instance has no stream.\n"
    "\n"
    "deadlines [NAME]: pending deadlines, soonest first: PROCESS,\n"
    "INSTANCE, DEADLINE, DUE (UTC), IN (seconds from now; negative:\n"
    "overdue) and ID; --limit N (default 100, 0: all), --all. With --json\n"
    "{\"process\",\"instance\",\"deadline\",\"id\",\"due\",\"due_us\"}.\n"
    "\n"
    "parked [NAME]: instances whose inputs keep failing: PROCESS,\n"
    "INSTANCE, STATE (retrying: retried automatically; parked: waits for\n"
    "retry or discard), ATTEMPTS, INPUTS (kept undecided, the failing one\n"
    "first), PARKED (UTC), NEXT_RETRY and ERROR. With --json\n"
    "{\"process\",\"instance\",\"state\",\"attempts\",\"inputs\","
    "\"parked_at\",\"retry_at\",\"error\"}.\n"
    "\n"
    "retry NAME ID: the worker running NAME replays the instance's kept\n"
    "inputs within seconds, with a fresh count of attempts (fix what made\n"
    "it fail first). discard NAME ID: drops the kept inputs undecided; the\n"
    "instance takes new inputs again. Both need the owner role (a writer\n"
    "gets exit 1, permission denied). Output: one line; with --json\n"
    "{\"process\",\"instance\",\"retry_requested\"|\"discarded\": true}.\n"
    "Exit 4 when the instance is not parked or retrying.\n"
    "\n"
    "Names are [a-z0-9_] (at most 48 bytes), ids follow the rules of\n"
    "stream ids; anything else exits 6 before connecting. A process\n"
    "named like a subcommand: esc processes -- show.\n";

/* ------------------------------------------------------------------------
 * Shared bits
 * ------------------------------------------------------------------------ */

static json_t *uuid_json(const esc_uuid *id) {
  char text[37];
  if (esc_uuid_is_nil(id))
    return json_null();
  esc_uuid_format(id, text);
  return json_string(text);
}

static json_t *time_json(int64_t us) {
  char when[32];
  cli_format_time(us, when);
  return json_string(when);
}

/* The operands NAME and ID (want 2), or an optional NAME (want 1 with
 * optional set): after the global options. Returns CLI_CONTINUE or the
 * exit code. */
static int parse_operands(cli_ctx *ctx, int argc, char **argv, int want,
                          bool optional) {
  static const char *const names[] = {"NAME", "ID"};
  cli_syntax s = {
      cli_help_processes, NULL, optional ? 0 : want, want, names, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

static const char *operand(int argc, char **argv, int i) {
  return optind + i < argc ? argv[optind + i] : NULL;
}

/* ------------------------------------------------------------------------
 * esc processes [NAME]
 * ------------------------------------------------------------------------ */

static bool print_summary(const cli_ctx *ctx, const esc_process_summary *s) {
  if (!ctx->json)
    return printf("%-24s %8" PRId64 " %8" PRId64 " %8" PRId64 " %8" PRId64
                  " %9" PRId64 "\n",
                  s->process, s->active, s->ended, s->retrying, s->parked,
                  s->deadlines) >= 0;
  json_t *o = json_object();
  json_object_set_new(o, "process", json_string(s->process));
  json_object_set_new(o, "active", json_integer(s->active));
  json_object_set_new(o, "ended", json_integer(s->ended));
  json_object_set_new(o, "retrying", json_integer(s->retrying));
  json_object_set_new(o, "parked", json_integer(s->parked));
  json_object_set_new(o, "deadlines", json_integer(s->deadlines));
  return cli_json_emit(o);
}

static int processes_summary(cli_ctx *ctx, int argc, char **argv) {
  int rc = parse_operands(ctx, argc, argv, 1, true);
  if (rc != CLI_CONTINUE)
    return rc;
  const char *only = operand(argc, argv, 0);
  esc_error err = ESC_ERROR_INIT;
  esc_process_summary *s = NULL;
  size_t n = 0;
  if (esc_process_summaries(ctx->pg_url, ctx->schema, only, &s, &n, &err))
    return cli_fail(ctx, &err);
  bool ok = ctx->json || printf("%-24s %8s %8s %8s %8s %9s\n", "PROCESS",
                                "ACTIVE", "ENDED", "RETRYING", "PARKED",
                                "DEADLINES") >= 0;
  for (size_t i = 0; i < n && ok; i++)
    ok = print_summary(ctx, &s[i]);
  free(s);
  if (n == 0)
    fprintf(stderr, "esc: %s: no process has an instance in schema %s\n",
            ctx->command, ctx->schema);
  return ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* ------------------------------------------------------------------------
 * esc processes show NAME ID
 * ------------------------------------------------------------------------ */

/* A record's payload as JSON text for the DETAIL column (malloc'ed). */
static char *payload_text(const esc_process_record_info *r) {
  esc_error err = ESC_ERROR_INIT;
  char *json = cli_payload_json(r->data, r->data_len, &err);
  if (json)
    return json;
  size_t n = strlen(err.msg) + 24;
  char *why = malloc(n);
  if (why)
    snprintf(why, n, "<undecodable: %s>", err.msg);
  return why;
}

/* What the record says, in one line, into out. */
static void record_detail(const esc_process_record_info *r, char *out,
                          size_t size) {
  char pos[ESC_POSITION_TOKEN_MAX], due[32], replaced[37];
  cli_format_time(r->due_us, due);
  const char *target = r->stream ? r->stream : "?";
  const char *type = r->name ? r->name : "?";
  switch (r->kind) {
  case ESC_PROCESS_EVENT_RECEIVED:
    esc_position_format(&r->position, pos);
    snprintf(out, size, "%s %s@%" PRId64 " at %s", type, target,
             r->stream_version, pos);
    return;
  case ESC_PROCESS_COMMAND_OUTCOME:
    if (r->accepted)
      snprintf(out, size, "%s -> %s: accepted", type, target);
    else
      snprintf(out, size, "%s -> %s: rejected (code %d): %s", type, target,
               (int)r->code, r->message ? r->message : "");
    return;
  case ESC_PROCESS_DEADLINE_FIRED:
    snprintf(out, size, "%s (due %s)", r->name, due);
    return;
  case ESC_PROCESS_COMMAND_ISSUED:
    snprintf(out, size, "#%u %s -> %s", r->index, type, target);
    return;
  case ESC_PROCESS_DEADLINE_SCHEDULED:
    esc_uuid_format(&r->replaces, replaced);
    snprintf(out, size, "#%u %s at %s%s%s", r->index, r->name, due,
             esc_uuid_is_nil(&r->replaces) ? "" : ", replacing ",
             esc_uuid_is_nil(&r->replaces) ? "" : replaced);
    return;
  case ESC_PROCESS_DEADLINE_CANCELLED:
    snprintf(out, size, "#%u %s%s", r->index, r->name,
             esc_uuid_is_nil(&r->id) ? " (none was pending)" : "");
    return;
  }
  snprintf(out, size, "?");
}

static bool print_record_text(const esc_process_record_info *r) {
  char when[32], detail[1024], record[32];
  cli_format_time(r->recorded_us, when);
  record_detail(r, detail, sizeof detail);
  snprintf(record, sizeof record, "%s%s", r->is_input ? "" : "  ", r->type);
  char *data = NULL;
  if (r->kind == ESC_PROCESS_EVENT_RECEIVED ||
      r->kind == ESC_PROCESS_COMMAND_ISSUED)
    data = payload_text(r);
  bool ok = printf("%7" PRId64 "  %-24s  %-19s  %s%s%s\n", r->version, when,
                   record, detail, data ? " " : "", data ? data : "") >= 0;
  free(data);
  return ok;
}

/* `key` as JSON parsed from the payload, or null and `key_error`. */
static void set_payload(json_t *o, const char *key,
                        const esc_process_record_info *r) {
  esc_error err = ESC_ERROR_INIT;
  char *text = cli_payload_json(r->data, r->data_len, &err);
  json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  const char *why = text ? "not representable in JSON" : err.msg;
  free(text);
  json_object_set_new(o, key, v ? v : json_null());
  if (!v) {
    char name[64];
    snprintf(name, sizeof name, "%s_error", key);
    json_object_set_new(o, name, cli_json_string(why));
  }
}

/* The keys of one kind (the common ones are set by the caller). */
static void set_kind_json(json_t *o, const esc_process_record_info *r) {
  switch (r->kind) {
  case ESC_PROCESS_EVENT_RECEIVED: {
    char pos[ESC_POSITION_TOKEN_MAX];
    esc_position_format(&r->position, pos);
    json_object_set_new(o, "event_type", cli_json_string(r->name));
    json_object_set_new(o, "stream", cli_json_string(r->stream));
    json_object_set_new(o, "stream_version", json_integer(r->stream_version));
    json_object_set_new(o, "position", json_string(pos));
    set_payload(o, "data", r);
    return;
  }
  case ESC_PROCESS_COMMAND_OUTCOME:
  case ESC_PROCESS_COMMAND_ISSUED:
    json_object_set_new(o, "command_type", cli_json_string(r->name));
    json_object_set_new(o, "stream", cli_json_string(r->stream));
    if (r->kind == ESC_PROCESS_COMMAND_ISSUED) {
      set_payload(o, "command", r);
      return;
    }
    json_object_set_new(o, "accepted", json_boolean(r->accepted));
    json_object_set_new(o, "code", json_integer(r->code));
    json_object_set_new(o, "message", cli_json_string(r->message));
    return;
  case ESC_PROCESS_DEADLINE_FIRED:
  case ESC_PROCESS_DEADLINE_SCHEDULED:
  case ESC_PROCESS_DEADLINE_CANCELLED:
    json_object_set_new(o, "deadline", cli_json_string(r->name));
    if (r->kind != ESC_PROCESS_DEADLINE_CANCELLED)
      json_object_set_new(o, "due", time_json(r->due_us));
    if (r->kind == ESC_PROCESS_DEADLINE_SCHEDULED)
      json_object_set_new(o, "replaces", uuid_json(&r->replaces));
    return;
  }
}

static bool print_record_json(const esc_process_record_info *r) {
  json_t *o = json_object();
  json_object_set_new(o, "version", json_integer(r->version));
  json_object_set_new(o, "recorded_at", time_json(r->recorded_us));
  json_object_set_new(o, "record", json_string(r->type));
  json_object_set_new(o, "kind", json_string(r->is_input ? "input"
                                                         : "decision"));
  json_object_set_new(o, "input", uuid_json(&r->input));
  if (r->is_input) {
    json_object_set_new(o, "time", time_json(r->time_us));
  } else {
    json_object_set_new(o, "id", uuid_json(&r->id));
    json_object_set_new(o, "index", json_integer(r->index));
  }
  set_kind_json(o, r);
  return cli_json_emit(o);
}

/* What show's callback needs: the context, and whether the table's head
 * is out (it comes with the first record, so that an error is all a
 * missing instance prints). */
typedef struct show_state {
  const cli_ctx *ctx;
  const char *name, *id;
  bool head;
} show_state;

static bool print_show_head(show_state *s) {
  char stream[ESC_STREAM_ID_MAX + 1] = "";
  s->head = true;
  esc_process_stream_id(s->name, s->id, stream, sizeof stream, NULL);
  return printf("process %s, instance %s: stream %s\n%7s  %-24s  %-19s  %s\n",
                s->name, s->id, stream, "VERSION", "RECORDED", "RECORD",
                "DETAIL") >= 0;
}

static esc_status print_record(void *userdata,
                               const esc_process_record_info *r,
                               esc_error *err) {
  show_state *s = userdata;
  bool ok = s->ctx->json || s->head || print_show_head(s);
  ok = ok && (s->ctx->json ? print_record_json(r) : print_record_text(r));
  return ok ? ESC_OK : esc_error_set(err, ESC_EIO, "cannot write output");
}

/* The parking record of instance id of process name into *out; false
 * when it is neither parked nor retrying (or that cannot be read). */
static bool find_parked(const cli_ctx *ctx, const char *name, const char *id,
                        esc_process_parked_info *out) {
  esc_error err = ESC_ERROR_INIT;
  esc_process_parked_info *k = NULL;
  size_t n = 0;
  bool found = false;
  if (esc_process_parked_list(ctx->pg_url, ctx->schema, name, &k, &n, &err))
    return false;
  for (size_t i = 0; i < n && !found; i++)
    if ((found = strcmp(k[i].instance, id) == 0))
      *out = k[i];
  free(k);
  return found;
}

static int processes_show(cli_ctx *ctx, int argc, char **argv) {
  int rc = parse_operands(ctx, argc, argv, 2, false);
  if (rc != CLI_CONTINUE)
    return rc;
  show_state s = {ctx, operand(argc, argv, 0), operand(argc, argv, 1), false};
  esc_error err = ESC_ERROR_INIT;
  esc_process_parked_info k;
  esc_status st = esc_process_history(ctx->pg_url, ctx->schema, s.name, s.id,
                                      print_record, &s, &err);
  bool parked = (st == ESC_OK || st == ESC_ENOTFOUND) &&
                find_parked(ctx, s.name, s.id, &k);
  /* An instance parked on its first input has no stream yet. */
  if (st == ESC_ENOTFOUND && parked) {
    st = ESC_OK;
    if (!ctx->json && print_show_head(&s))
      printf("%7s  (no records: its first input has not been handled)\n", "");
  }
  if (st)
    return cli_fail(ctx, &err);
  if (parked && !ctx->json)
    printf("%s (attempts: %d, inputs kept: %" PRId64 "): %s\n"
           "(esc processes retry|discard %s %s)\n",
           esc_process_instance_state_name(k.state), k.attempts, k.inputs,
           k.error, s.name, s.id);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * esc processes deadlines [NAME]
 * ------------------------------------------------------------------------ */

static bool print_deadline(const cli_ctx *ctx,
                           const esc_process_deadline_info *d, int64_t now) {
  char id[37], due[32];
  esc_uuid_format(&d->id, id);
  cli_format_time(d->due_us, due);
  if (!ctx->json)
    return printf("%-24s %-24s %-16s %-24s %9.1f  %s\n", d->process,
                  d->instance, d->name, due, (double)(d->due_us - now) / 1e6,
                  id) >= 0;
  json_t *o = json_object();
  json_object_set_new(o, "process", json_string(d->process));
  json_object_set_new(o, "instance", cli_json_string(d->instance));
  json_object_set_new(o, "deadline", json_string(d->name));
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "due", json_string(due));
  json_object_set_new(o, "due_us", json_integer(d->due_us));
  return cli_json_emit(o);
}

/* --limit N and --all, then an optional NAME. */
static int parse_deadlines(cli_ctx *ctx, int argc, char **argv,
                           int64_t *limit) {
  const cli_option opts[] = {CLI_LIMIT_ALL(limit, INT32_MAX), CLI_OPTIONS_END};
  cli_syntax s = {cli_help_processes, opts, 0, 1, NULL, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

static int processes_deadlines(cli_ctx *ctx, int argc, char **argv) {
  int64_t limit = 100;
  int rc = parse_deadlines(ctx, argc, argv, &limit);
  if (rc != CLI_CONTINUE)
    return rc;
  esc_error err = ESC_ERROR_INIT;
  esc_process_deadline_info *d = NULL;
  size_t n = 0;
  /* One more than shown says whether more follow. */
  size_t max = limit ? (size_t)limit + 1 : 0;
  if (esc_process_deadlines_list(ctx->pg_url, ctx->schema,
                                 operand(argc, argv, 0), max, &d, &n, &err))
    return cli_fail(ctx, &err);
  bool cut = limit && n > (size_t)limit;
  size_t shown = cut ? (size_t)limit : n;
  int64_t now = cli_now_us();
  bool ok = ctx->json || printf("%-24s %-24s %-16s %-24s %9s  %s\n", "PROCESS",
                                "INSTANCE", "DEADLINE", "DUE", "IN", "ID") >= 0;
  for (size_t i = 0; i < shown && ok; i++)
    ok = print_deadline(ctx, &d[i], now);
  free(d);
  if (ok && cut)
    cli_note_cut(ctx, limit, "deadlines", "a larger --limit");
  return ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* ------------------------------------------------------------------------
 * esc processes parked [NAME]
 * ------------------------------------------------------------------------ */

static bool print_parked(const cli_ctx *ctx, const esc_process_parked_info *k) {
  char parked[32], retry[32] = "-";
  cli_format_time(k->parked_us, parked);
  if (k->state == ESC_PROCESS_RETRYING)
    cli_format_time(k->retry_us, retry);
  const char *state = esc_process_instance_state_name(k->state);
  if (!ctx->json)
    return printf("%-24s %-24s %-8s %8d %6" PRId64 "  %-24s  %-24s  %s\n",
                  k->process, k->instance, state, k->attempts, k->inputs,
                  parked, retry, k->error) >= 0;
  json_t *o = json_object();
  json_object_set_new(o, "process", json_string(k->process));
  json_object_set_new(o, "instance", cli_json_string(k->instance));
  json_object_set_new(o, "state", json_string(state));
  json_object_set_new(o, "attempts", json_integer(k->attempts));
  json_object_set_new(o, "inputs", json_integer(k->inputs));
  json_object_set_new(o, "parked_at", json_string(parked));
  json_object_set_new(o, "retry_at", k->state == ESC_PROCESS_RETRYING
                                         ? json_string(retry)
                                         : json_null());
  json_object_set_new(o, "error", cli_json_string(k->error));
  return cli_json_emit(o);
}

static int processes_parked(cli_ctx *ctx, int argc, char **argv) {
  int rc = parse_operands(ctx, argc, argv, 1, true);
  if (rc != CLI_CONTINUE)
    return rc;
  esc_error err = ESC_ERROR_INIT;
  esc_process_parked_info *k = NULL;
  size_t n = 0;
  if (esc_process_parked_list(ctx->pg_url, ctx->schema,
                              operand(argc, argv, 0), &k, &n, &err))
    return cli_fail(ctx, &err);
  bool ok = ctx->json ||
            printf("%-24s %-24s %-8s %8s %6s  %-24s  %-24s  %s\n", "PROCESS",
                   "INSTANCE", "STATE", "ATTEMPTS", "INPUTS", "PARKED",
                   "NEXT_RETRY", "ERROR") >= 0;
  for (size_t i = 0; i < n && ok; i++)
    ok = print_parked(ctx, &k[i]);
  free(k);
  return ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* ------------------------------------------------------------------------
 * esc processes retry|discard NAME ID
 * ------------------------------------------------------------------------ */

static int processes_act(cli_ctx *ctx, int argc, char **argv, bool retry) {
  int rc = parse_operands(ctx, argc, argv, 2, false);
  if (rc != CLI_CONTINUE)
    return rc;
  const char *name = operand(argc, argv, 0), *id = operand(argc, argv, 1);
  esc_error err = ESC_ERROR_INIT;
  esc_status st =
      retry ? esc_process_retry(ctx->pg_url, ctx->schema, name, id, &err)
            : esc_process_discard(ctx->pg_url, ctx->schema, name, id, &err);
  if (st)
    return cli_fail(ctx, &err);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "process", json_string(name));
    json_object_set_new(o, "instance", cli_json_string(id));
    json_object_set_new(o, retry ? "retry_requested" : "discarded",
                        json_true());
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (retry)
    printf("retry of %s %s requested: the worker running %s replays its "
           "kept inputs within seconds\n",
           name, id, name);
  else
    printf("discarded the kept inputs of %s %s: it takes new inputs again\n",
           name, id);
  return CLI_EXIT_OK;
}

static int processes_retry(cli_ctx *ctx, int argc, char **argv) {
  return processes_act(ctx, argc, argv, true);
}

static int processes_discard(cli_ctx *ctx, int argc, char **argv) {
  return processes_act(ctx, argc, argv, false);
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

int cli_cmd_processes(cli_ctx *ctx, int argc, char **argv) {
  static const cli_subcommand subs[] = {
      {"show", "processes show", processes_show},
      {"deadlines", "processes deadlines", processes_deadlines},
      {"parked", "processes parked", processes_parked},
      {"retry", "processes retry", processes_retry},
      {"discard", "processes discard", processes_discard},
  };
  int rc = cli_subcommand_run(ctx, argc, argv, subs, sizeof subs / sizeof *subs);
  return rc != CLI_CONTINUE ? rc : processes_summary(ctx, argc, argv);
}

/*
 * Output: errors and their exit codes, help, timestamps, and events in
 * text or JSON form.
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include "cli.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Errors and exit codes
 * ------------------------------------------------------------------------ */

int cli_exit_code(esc_status code) {
#define CLI_STATUS_EXIT(name, value, message, key, exit)                       \
  case name:                                                                   \
    return exit;
  switch (code) { ESC_STATUS_LIST(CLI_STATUS_EXIT) }
#undef CLI_STATUS_EXIT
  return CLI_EXIT_ERROR;
}

const char *cli_status_name(esc_status code) {
#define CLI_STATUS_KEY(name, value, message, key, exit)                        \
  case name:                                                                   \
    return key;
  switch (code) { ESC_STATUS_LIST(CLI_STATUS_KEY) }
#undef CLI_STATUS_KEY
  return "error";
}

/* {"error":{"code":..,"exit":..,"message":..}} on stdout, for --json;
 * "hint" and "id" too when not NULL. */
static void emit_json_error(const char *code, int exit_code,
                            const char *message, const char *hint,
                            const char *id) {
  json_t *inner = json_object();
  json_t *outer = json_object();
  if (!inner || !outer) {
    json_decref(inner);
    json_decref(outer);
    return;
  }
  json_object_set_new(inner, "code", json_string(code));
  json_object_set_new(inner, "exit", json_integer(exit_code));
  json_object_set_new(inner, "message", cli_json_string(message));
  if (hint)
    json_object_set_new(inner, "hint", cli_json_string(hint));
  if (id)
    json_object_set_new(inner, "id", cli_json_string(id));
  json_object_set_new(outer, "error", inner);
  cli_json_emit(outer);
}

/* "esc: read: " on stderr, or just "esc: " before a command was chosen. */
static void print_prefix(const cli_ctx *ctx) {
  if (strcmp(ctx->command, "esc") == 0)
    fputs("esc: ", stderr);
  else
    fprintf(stderr, "esc: %s: ", ctx->command);
}

int cli_fail_hint(const cli_ctx *ctx, const esc_error *err, const char *hint,
                  const char *id) {
  esc_status code = err->code == ESC_OK ? ESC_EIO : err->code;
  int exit_code = cli_exit_code(code);
  print_prefix(ctx);
  if (err->msg[0])
    fprintf(stderr, "%s (%s)\n", err->msg, esc_strerror(code));
  else
    fprintf(stderr, "%s\n", esc_strerror(code));
  if (hint) {
    print_prefix(ctx);
    fprintf(stderr, "%s\n", hint);
  }
  if (ctx->json)
    emit_json_error(cli_status_name(code), exit_code,
                    err->msg[0] ? err->msg : esc_strerror(code), hint, id);
  return exit_code;
}

int cli_fail(const cli_ctx *ctx, const esc_error *err) {
  return cli_fail_hint(ctx, err, NULL, NULL);
}

void cli_error_prefix(esc_error *err, const char *prefix) {
  char msg[2 * sizeof err->msg];
  snprintf(msg, sizeof msg, "%s: %s", prefix, err->msg);
  size_t n = strlen(msg);
  if (n >= sizeof err->msg)
    n = sizeof err->msg - 1;
  memcpy(err->msg, msg, n);
  err->msg[n] = '\0';
}

int cli_usage(const cli_ctx *ctx, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  print_prefix(ctx);
  fprintf(stderr, "%s\n", msg);
  if (strcmp(ctx->command, "esc") == 0)
    fprintf(stderr, "Try 'esc --help'.\n");
  else
    fprintf(stderr, "Try 'esc %s --help'.\n", ctx->command);
  if (ctx->json)
    emit_json_error("usage", CLI_EXIT_USAGE, msg, NULL, NULL);
  return CLI_EXIT_USAGE;
}

void cli_print_help(const char *text) {
  fputs(text, stdout);
  fputs("\nGlobal options (before or after the command):\n"
        "  --pg URL       PostgreSQL URL or conninfo (default: $ESC_PG_URL,\n"
        "                 else the local server of `scripts/servers start`)\n"
        "  --redis URL    redis://[[user]:password@]host[:port][/db], for\n"
        "                 `projections` (default: $ESC_REDIS_URL, else the\n"
        "                 local server of `scripts/servers start`)\n"
        "  --schema NAME  schema of the event store (default: esc)\n"
        "  --key-prefix P the namespace of the store's Redis keys, as its\n"
        "                 workers were given (default: $ESC_KEY_PREFIX, else\n"
        "                 \"esc-\" and the store's identity)\n"
        "  --pg-timeout S longest wait for any one reply of PostgreSQL, in\n"
        "                 seconds (default: $ESC_PG_TIMEOUT, else 30; 0: no\n"
        "                 limit)\n"
        "  --json         machine-readable output (one JSON object per "
        "line)\n"
        "  -h, --help     show help\n"
        "\nExit codes: 0 ok, 1 other error, 2 usage, 3 concurrency "
        "conflict,\n"
        "4 not found or deleted, 5 connection (or an append's outcome "
        "unknown),\n"
        "6 invalid input, 7 timed out.\n",
        stdout);
}

/* ------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------ */

void cli_format_time(int64_t us, char out[32]) {
  /* Floor division, so times before 1970 format correctly too. */
  int64_t secs = us / 1000000;
  int64_t rem = us % 1000000;
  if (rem < 0) {
    rem += 1000000;
    secs--;
  }
  time_t t = (time_t)secs;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    snprintf(out, 32, "@%" PRId64 "us", us);
    return;
  }
  char date[24];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03dZ", date, (int)(rem / 1000));
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/*
 * msgpack as JSON text (malloc'ed), or NULL with err filled. The bytes
 * come from the store, which checked them on append, so the limits only
 * guard against a corrupt row: sized to the value rather than to the
 * defaults meant for untrusted input.
 */
char *cli_payload_json(const void *data, size_t len, esc_error *err) {
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  if (limits.max_bytes < len)
    limits.max_bytes = len;
  if (limits.max_elements < len)
    limits.max_elements = len;
  limits.max_depth = 256;
  char *json = NULL;
  if (esc_msgpack_to_json(data, len, &limits, &json, err) != ESC_OK) {
    free(json);
    return NULL;
  }
  return json;
}

static bool print_event_text(const esc_recorded_event *e, cli_event_form form,
                             const char *data, const esc_error *data_err) {
  char pos[ESC_POSITION_TOKEN_MAX];
  int n;
  if (form == CLI_FORM_ALL) {
    esc_position_format(&e->position, pos);
    n = printf("%s  %s@%" PRId64 "  %s  ", pos, e->stream_id, e->stream_version,
               e->type);
  } else {
    char when[32];
    cli_format_time(e->recorded_at_us, when);
    n = printf("%" PRId64 "  %s  v%d  %s  ", e->stream_version, e->type,
               (int)e->schema_version, when);
  }
  if (n < 0)
    return false;
  if (data)
    return printf("%s\n", data) >= 0;
  return printf("<undecodable data: %s>\n", data_err->msg) >= 0;
}

/* The fixed fields of an event's JSON line, in their documented order. */
static json_t *event_head_json(const esc_recorded_event *e) {
  char id[37], pos[ESC_POSITION_TOKEN_MAX], when[32];
  esc_uuid_format(&e->id, id);
  esc_position_format(&e->position, pos);
  cli_format_time(e->recorded_at_us, when);
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "stream", json_string(e->stream_id));
  json_object_set_new(o, "version", json_integer(e->stream_version));
  json_object_set_new(o, "type", json_string(e->type));
  json_object_set_new(o, "schema_version", json_integer(e->schema_version));
  json_object_set_new(o, "id", json_string(id));
  json_object_set_new(o, "position", json_string(pos));
  json_object_set_new(o, "global_position", json_integer(e->position.global));
  json_object_set_new(o, "recorded_at", json_string(when));
  return o;
}

/* Prints s as a JSON string (no newline). */
static bool print_json_string(FILE *out, const char *s) {
  json_t *str = cli_json_string(s);
  char *text = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
  json_decref(str);
  bool ok = text && fputs(text, out) >= 0;
  free(text);
  return ok;
}

/* `,"<key>":<json text>`, or null plus `,"<key>_error":"<why>"` when the
 * payload could not be rendered. */
static bool print_payload_member(FILE *out, const char *key, const char *json,
                                 bool present, const esc_error *err) {
  if (fprintf(out, ",\"%s\":%s", key, json ? json : "null") < 0)
    return false;
  if (json || !present)
    return true;
  return fprintf(out, ",\"%s_error\":", key) >= 0 &&
         print_json_string(out, err->msg);
}

/*
 * data and metadata are JSON text already (esc_msgpack_to_json); they are
 * spliced into the line rather than re-parsed, so that values jansson
 * cannot hold (integers above INT64_MAX) pass through unchanged.
 */
static bool print_event_json(FILE *out, const esc_recorded_event *e,
                             const char *data, const esc_error *data_err,
                             const char *meta, const esc_error *meta_err) {
  json_t *head = event_head_json(e);
  char *text = head ? json_dumps(head, JSON_COMPACT) : NULL;
  json_decref(head);
  if (!text)
    return false;
  text[strlen(text) - 1] = '\0'; /* drop the closing brace */
  bool ok = fputs(text, out) >= 0;
  free(text);
  ok = ok && print_payload_member(out, "data", data, true, data_err);
  ok = ok && print_payload_member(out, "metadata", meta, e->metadata != NULL,
                                  meta_err);
  return ok && fputs("}\n", out) >= 0;
}

/* One event on out (stdout, or a retention archive). *whole (may be NULL)
 * tells whether data and metadata rendered, rather than as an error. */
static bool write_event(FILE *out, const esc_recorded_event *e, bool json,
                        cli_event_form form, bool *whole) {
  esc_error data_err = ESC_ERROR_INIT, meta_err = ESC_ERROR_INIT;
  char *data = cli_payload_json(e->data, e->data_len, &data_err);
  char *meta = NULL;
  if (json && e->metadata)
    meta = cli_payload_json(e->metadata, e->metadata_len, &meta_err);
  bool ok = json ? print_event_json(out, e, data, &data_err, meta, &meta_err)
                 : print_event_text(e, form, data, &data_err);
  if (whole)
    *whole = data && (meta || !e->metadata);
  free(data);
  free(meta);
  return ok;
}

bool cli_print_event(const cli_ctx *ctx, const esc_recorded_event *e,
                     cli_event_form form) {
  return write_event(stdout, e, ctx->json, form, NULL);
}

bool cli_write_event_json(FILE *out, const esc_recorded_event *e, bool *whole) {
  return write_event(out, e, true, CLI_FORM_STREAM, whole);
}

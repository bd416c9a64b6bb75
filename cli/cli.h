/*
 * Shared declarations of the `esc` admin CLI (the .c files in cli/). Private to
 * the CLI: nothing here is part of esc's public API.
 *
 * Conventions: a command is `int cli_cmd_<name>(cli_ctx *, int, char **)`
 * returning the process exit code. Errors are printed where they are
 * detected (cli_fail, cli_usage) and the exit code is passed up.
 */
#ifndef ESC_CLI_H
#define ESC_CLI_H

#include <esc/store.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The CLI's version; kept in step with project(esc VERSION ...). The
 * library does not export its version (see docs/cli.md). */

/* Exit codes (design.md, "Interfaces other tools rely on"). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_ERROR = 1,
  CLI_EXIT_USAGE = 2,
  CLI_EXIT_CONFLICT = 3,
  CLI_EXIT_NOTFOUND = 4,
  CLI_EXIT_CONN = 5,
  CLI_EXIT_INVALID = 6,
  /* No reply from a server in time (ESC_ETIMEDOUT); docs/decisions/0011. */
  CLI_EXIT_TIMEOUT = 7
};

/* What every command gets: the global options and the command's name. */
typedef struct cli_ctx {
  const char *pg_url;    /* --pg; NULL: ESC_PG_URL, else the local default */
  const char *redis_url; /* --redis; NULL: ESC_REDIS_URL, else the local one */
  const char *schema;    /* --schema; never NULL */
  bool json;             /* --json */
  const char *command;   /* for messages: "read", or "esc" before dispatch */
  const char *key_prefix; /* --key-prefix; NULL: ESC_KEY_PREFIX, else the
                             store's identity (esc_key_namespace) */
} cli_ctx;

#define CLI_CTX_INIT                                                           \
  { NULL, NULL, "esc", false, "esc", NULL }

/* ------------------------------------------------------------------------
 * Commands (cmd_*.c) and their help texts
 * ------------------------------------------------------------------------ */

int cli_cmd_migrate(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_append(cli_ctx *ctx, int argc, char **argv);
/* Tags and a condition from the command line (tag_args.c): --tag,
 * --condition-tag and --condition-type (each repeatable, each at most
 * ESC_TAGS_MAX times), --after TOKEN. The condition is one query item:
 * every --condition-tag, any --condition-type. */
typedef struct cli_tagging {
  const char *tags[ESC_TAGS_MAX];
  size_t ntags;
  const char *cond_tags[ESC_TAGS_MAX];
  size_t ncond_tags;
  const char *cond_types[ESC_TAGS_MAX];
  size_t ncond_types;
  const char *after; /* the token; NULL: no condition */
  esc_tag_query_item item;
  esc_tag_query query;
} cli_tagging;
/* Adds arg (a tag, or with is_type an event type) to list for option
 * opt; false after printing a usage error when it is not valid or one
 * too many. */
bool cli_tag_arg(const cli_ctx *ctx, const char *opt, const char *arg,
                 bool is_type, const char **list, size_t *n);
/* CALL parsers (options.h) over a cli_tagging target: --tag adds to its
 * tags, the condition's tag and type options to cond_tags and
 * cond_types. */
int cli_opt_tag(cli_ctx *ctx, const char *option, const char *value,
                void *target);
int cli_opt_cond_tag(cli_ctx *ctx, const char *option, const char *value,
                     void *target);
int cli_opt_cond_type(cli_ctx *ctx, const char *option, const char *value,
                      void *target);
/* The condition in t as a query (t->query), or NULL when there is none;
 * false after a usage error when --after and --condition-tag do not come
 * together. */
bool cli_tag_condition(const cli_ctx *ctx, cli_tagging *t,
                       const esc_tag_query **out);
/* esc append --batch FILE [--atomic] (append_batch.c); a line's "tags"
 * are its event's, and cond (may be NULL) makes the batch conditional,
 * and so atomic. */
int cli_append_batch(cli_ctx *ctx, const char *path, bool atomic,
                     const esc_tag_query *cond, const char *token);
/* The metadata esc append stores by default: $USER and the time, as
 * msgpack into *out (the caller frees). */
esc_status cli_default_metadata(void **out, size_t *out_len, esc_error *err);
int cli_cmd_read(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_tail(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_streams(cli_ctx *ctx, int argc, char **argv);
/* read, tail and streams stop at --limit (100 by default): when more
 * items follow, they say so on stderr and how to go on (rest, e.g.
 * "--from 101"); stdout keeps only the items, for scripts. */
void cli_note_cut(const cli_ctx *ctx, int64_t shown, const char *what,
                  const char *rest);
int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_truncate(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_tombstone(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_projections(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_rebuild(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_dead_letters(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_metrics(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_check(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_retention(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_processes(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_console(cli_ctx *ctx, int argc, char **argv);

extern const char cli_help_migrate[];
extern const char cli_help_append[];
extern const char cli_help_read[];
extern const char cli_help_tail[];
extern const char cli_help_streams[];
extern const char cli_help_stats[];
extern const char cli_help_truncate[];
extern const char cli_help_tombstone[];
extern const char cli_help_projections[];
extern const char cli_help_rebuild[];
extern const char cli_help_dead_letters[];
extern const char cli_help_metrics[];
extern const char cli_help_check[];
extern const char cli_help_retention[];
extern const char cli_help_processes[];
extern const char cli_help_console[];

/* ------------------------------------------------------------------------
 * Option values (args.c) and option parsing (options.c)
 * ------------------------------------------------------------------------ */

/*
 * Strict number parsing for option values: the whole text must be a
 * decimal integer in [min, max]. On failure prints a usage error naming
 * the option and returns false.
 */
bool cli_parse_i64(const cli_ctx *ctx, const char *option, const char *text,
                   int64_t min, int64_t max, int64_t *out);

/* A duration for an option: a positive integer and a unit, s m h d or w
 * ("30d"), at most max seconds, into *seconds. On failure prints a usage
 * error naming the option and returns false (duration.c). */
bool cli_parse_duration(const cli_ctx *ctx, const char *option,
                        const char *text, int64_t max, int64_t *seconds);

/* A point in time for an option (--since): a duration ago ("2h", as
 * cli_parse_duration takes it) or a UTC time in ISO 8601
 * ("2026-12-07T10:00:00Z", a fraction of a second allowed), into
 * microseconds since the epoch. On failure prints a usage error naming
 * the option and returns false (duration.c). */
bool cli_parse_since(const cli_ctx *ctx, const char *option, const char *text,
                     int64_t *us);

/* A STREAM operand, or a --category value (NULL: none given), checked
 * before connecting: CLI_CONTINUE, or the error (ESC_EINVAL, naming the
 * name) is reported and its exit code returned. */
int cli_check_stream(const cli_ctx *ctx, const char *stream);
int cli_check_category(const cli_ctx *ctx, const char *category);

/* --expected: any | no-stream | exists | N (N >= 0). Usage error on
 * anything else. */
bool cli_parse_expected(const cli_ctx *ctx, const char *text, int64_t *out);

/* Parses the options of a command that has none of its own (the global
 * ones and --help); its operands are left at argv[optind..argc). Returns
 * CLI_CONTINUE to go on, or the exit code (after printing help or a usage
 * error). Commands with options use cli_parse (options.h). */
#define CLI_CONTINUE (-1)
int cli_parse_options(cli_ctx *ctx, int argc, char **argv, const char *help);

/* The same for a command that takes no operands either. */
int cli_parse_plain(cli_ctx *ctx, int argc, char **argv, const char *help);

/* One subcommand of a command: its name, the name messages give it
 * ("processes show"), and what runs it. */
typedef struct cli_subcommand {
  const char *name;
  const char *command;
  int (*run)(cli_ctx *ctx, int argc, char **argv);
} cli_subcommand;

/* When argv[1] names one of the n subs, runs it with ctx->command set to
 * its command and argv from the subcommand's name on, and returns its exit
 * code; else CLI_CONTINUE (subcommand.c). */
int cli_subcommand_run(cli_ctx *ctx, int argc, char **argv,
                       const cli_subcommand *subs, size_t n);

/* A command that is only its subcommands. */
typedef struct cli_subcommands {
  const cli_subcommand *subs;
  size_t n;
  const char *help;  /* for `esc CMD --help` and -h */
  const char *names; /* for messages: "list, retry or discard" */
  /* An option before the subcommand says the subcommand comes first
   * (else it is an unknown subcommand like any other word). */
  bool options_first_hint;
} cli_subcommands;

/* Runs the subcommand argv[1] names, as cli_subcommand_run; prints the
 * help for --help or -h; else prints a usage error naming what is
 * missing or unknown. Returns the exit code (subcommand.c). */
int cli_subcommand_only(cli_ctx *ctx, int argc, char **argv,
                        const cli_subcommands *set);

/* ------------------------------------------------------------------------
 * Running until stopped (stop.c)
 * ------------------------------------------------------------------------ */

/* From now on SIGINT and SIGTERM set the stop flag (and interrupt a
 * pause) instead of ending the process. */
void cli_catch_stop_signals(void);
/* Whether SIGINT or SIGTERM came since cli_catch_stop_signals. */
bool cli_stop_requested(void);
/* Sleeps ms, or less when a signal comes. */
void cli_pause_ms(int ms);
/* Writes to a closed pipe fail with EPIPE from now on instead of killing
 * the process. */
void cli_ignore_sigpipe(void);
/* The time now, in microseconds since the epoch. */
int64_t cli_now_us(void);

/* ------------------------------------------------------------------------
 * Input (input.c)
 * ------------------------------------------------------------------------ */

/*
 * Converts a JSON operand to msgpack; "-" reads the JSON from stdin. what
 * names the operand in messages ("data", "--metadata"). When must_be_object
 * is set, anything but a JSON object is ESC_EINVAL. *out is malloc'ed and
 * the caller frees it; on failure *out is NULL and err is filled.
 */
esc_status cli_json_arg(const char *what, const char *text, bool must_be_object,
                        void **out, size_t *out_len, esc_error *err);

/* ------------------------------------------------------------------------
 * Connecting (connect.c)
 * ------------------------------------------------------------------------ */

/* Opens the store named by ctx's --pg and --schema. Returns NULL and
 * fills err when that fails; the caller frees the store. */
esc_store *cli_open_store(const cli_ctx *ctx, esc_error *err);

/* What a command does with an open store; returns the exit code. */
typedef int cli_store_fn(const cli_ctx *ctx, esc_store *store, void *arg);

/* Opens the store, runs fn(ctx, store, arg) and frees the store; a store
 * that cannot be opened is reported (cli_fail). Returns the exit code. */
int cli_with_store(const cli_ctx *ctx, cli_store_fn *fn, void *arg);

/* ------------------------------------------------------------------------
 * Output (output.c)
 * ------------------------------------------------------------------------ */

/* The exit code for a library status. */
int cli_exit_code(esc_status code);

/* A stable, machine-friendly name for a status ("conflict"). */
const char *cli_status_name(esc_status code);

/*
 * Reports a failed library call: to stderr as
 *   esc: <command>: <message> (<esc_strerror(code)>)
 * and, with --json, as {"error":{...}} on stdout. Returns the exit code.
 */
int cli_fail(const cli_ctx *ctx, const esc_error *err);

/* cli_fail, then a second stderr line "esc: <command>: <hint>"; with
 * --json the error object also gets "hint" and, when id is not NULL,
 * "id" (the event id an unknown append is settled with). */
int cli_fail_hint(const cli_ctx *ctx, const esc_error *err, const char *hint,
                  const char *id);

/* Prefixes err->msg with "<prefix>: " (truncating), so the message names
 * the argument it is about. */
void cli_error_prefix(esc_error *err, const char *prefix);

/* Reports a usage error (exit 2) the same way, plus a pointer to --help.
 * Returns CLI_EXIT_USAGE. */
int cli_usage(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints a command's help text followed by the global options. */
void cli_print_help(const char *text);

/* Formats microseconds since the epoch as UTC ISO-8601 with milliseconds,
 * "2026-11-21T10:57:01.123Z", into out[32]. */
void cli_format_time(int64_t us, char out[32]);

/* How a recorded event is shown in text form. */
typedef enum cli_event_form {
  CLI_FORM_STREAM, /* esc read: version  type  vN  time  data */
  CLI_FORM_ALL     /* esc tail: position  stream@version  type  data */
} cli_event_form;

/* Prints one event: in text form or, with --json, as one JSON object on
 * one line. Returns false when stdout could not be written. */
bool cli_print_event(const cli_ctx *ctx, const esc_recorded_event *e,
                     cli_event_form form);

/* The same JSON line on out (the form of `esc read --json`), for files
 * such as a retention archive. *whole is false when data or metadata could
 * not be rendered and the line holds "<key>_error" instead. Returns false
 * when out could not be written. */
bool cli_write_event_json(FILE *out, const esc_recorded_event *e, bool *whole);

/* Stored msgpack (an event's data, a process record's command) as JSON
 * text, malloc'ed (the caller frees it); NULL with err filled when it
 * cannot be rendered. */
char *cli_payload_json(const void *data, size_t len, esc_error *err);

/* JSON helpers on top of jansson (json.c). The json_t type is jansson's;
 * cli.h keeps jansson out of files that do not print JSON. */
struct json_t;

/* A JSON string for s; invalid UTF-8 bytes become U+FFFD so that text
 * from the database (a truncated query, say) can always be printed. */
struct json_t *cli_json_string(const char *s);

/* Prints obj compactly on one line of stdout and drops the reference.
 * Returns false when it could not be written. */
bool cli_json_emit(struct json_t *obj);

/* The facts of `esc stats` (schema, identity, counts, head, the horizon
 * holder) as a new JSON object the caller owns; `esc stats --json` and
 * the console's /api/stats both use it (stats_json.c). */
struct json_t *cli_stats_json(const char *schema, const esc_uuid *id,
                              const esc_store_stats *s);
/* The horizon holder's age in seconds, never below zero. */
double cli_stats_holder_age(const esc_store_stats *s);

/* A position as its token, or JSON null when unset (projection_json.c). */
struct json_t *cli_position_json(const esc_position *p);

/* One partition's status, the object `esc projections --json` prints per
 * line and /api/projections lists; a new object the caller owns. */
struct esc_partition_status;
struct json_t *cli_partition_status_json(const struct esc_partition_status *s);

/* One dead letter, the object `esc dead-letters --json` prints per line,
 * as a new JSON object the caller owns; the console's /api/dead-letters
 * uses it too (dead_letters.c). */
struct esc_dead_letter;
struct json_t *cli_dead_letter_json(const struct esc_dead_letter *d);

/* esc_dead_letters_act on ctx's store: retry (else discard) the letters
 * filter selects, as `esc dead-letters retry|discard` and the console's
 * actions do; the arguments as esc_dead_letters_act takes them. */
struct esc_dead_letter_filter;
esc_status cli_dead_letters_act(const cli_ctx *ctx, bool retry,
                                const struct esc_dead_letter_filter *filter,
                                bool dry_run, struct esc_dead_letter **out,
                                size_t *count, esc_error *err);

#endif /* ESC_CLI_H */

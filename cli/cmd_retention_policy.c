/*
 * esc retention set|show|run|remove: retention policies ($maxAge and
 * $maxCount per stream or category) and the explicit run that applies
 * them, optionally archiving what it removes first (docs/retention.md).
 */
#include "archive.h"
#include "cli.h"
#include "options.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_retention[] =
    "Usage: esc retention set TARGET [--max-age D] [--max-count N]\n"
    "       esc retention show\n"
    "       esc retention run [--dry-run] [--archive FILE] [--force]\n"
    "       esc retention remove TARGET\n"
    "\n"
    "Retention policies, like EventStoreDB's $maxAge and $maxCount: how\n"
    "long and how many events a stream keeps. TARGET is a stream (order-42)\n"
    "or, without a '-', a category (order: all its streams); --stream or\n"
    "--category says which when the name alone does not. A stream's own\n"
    "policy replaces its category's. Setting a policy removes nothing;\n"
    "`run` applies every policy now: it removes the oldest events of each\n"
    "stream that a limit removes, never a stream's last event, by\n"
    "truncation (logged in the retention log, the policy as the reason;\n"
    "versions are kept). Needs the owner role.\n"
    "\n"
    "set      --max-age D (a number and s, m, h, d or w: 30d) and/or\n"
    "         --max-count N (N >= 1); replaces the target's policy. The\n"
    "         stream or category must exist.\n"
    "show     the policies, with who set them and when.\n"
    "run      --dry-run: per stream, what would go; nothing is removed.\n"
    "         --archive FILE: first write every event to go to FILE (a new\n"
    "         file, mode 0600) as JSON lines, the form of `esc read --json`,\n"
    "         and fsync it; when that fails nothing is removed.\n"
    "         A stream no snapshot covers is refused (its state could never\n"
    "         be loaded again): left alone, not archived; the others are\n"
    "         done and the run exits 1 (truncated). --force removes their\n"
    "         events too: for streams nothing loads a state from.\n"
    "remove   drops the target's policy.\n"
    "\n"
    "Output: text lines; with --json one object per line: show\n"
    "{\"scope\",\"target\",\"max_age_s\",\"max_count\",\"set_by\",\"set_at\"};"
    "\n"
    "run one "
    "{\"stream\",\"scope\",\"target\",\"version\",\"before\",\"events\","
    "\n"
    "\"refused\",\"dry_run\"} per stream, then {\"streams\",\"events\","
    "\"archived\",\n\"refused\",\"archive\",\"dry_run\"}; set and remove\n"
    "the policy they set or removed.\n";

typedef struct retention_args {
  esc_retention_policy policy;
  bool scope_given;
  bool dry_run;
  const char *archive; /* NULL: none */
  bool force;
} retention_args;

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

static int max_age(cli_ctx *ctx, const char *option, const char *value,
                   void *target) {
  return cli_parse_duration(ctx, option, value, ESC_RETENTION_MAX_AGE_S, target)
             ? CLI_CONTINUE
             : CLI_EXIT_USAGE;
}

/* --stream or --category: what TARGET is, instead of guessing from it. */
static int scope(cli_ctx *ctx, const char *option, const char *value,
                 void *target) {
  retention_args *a = target;
  (void)ctx, (void)value;
  a->policy.scope = strcmp(option, "--stream") == 0 ? ESC_RETENTION_STREAM
                                                    : ESC_RETENTION_CATEGORY;
  a->scope_given = true;
  return CLI_CONTINUE;
}

#define TARGET_OPTIONS(a)                                                      \
  CLI_CALL_FLAG("stream", (a), scope), CLI_CALL_FLAG("category", (a), scope)

/* Parses a subcommand's options (each accepts only its own) and operands:
 * want is 1 for a TARGET. Returns CLI_CONTINUE or the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv,
                      const cli_option *opts, int want, retention_args *a) {
  static const char *const names[] = {"TARGET"};
  cli_syntax s = {cli_help_retention, opts, want, want, names, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  if (want == 0)
    return CLI_CONTINUE;
  const char *target = argv[optind];
  if (strlen(target) >= sizeof a->policy.target)
    return cli_usage(ctx, "TARGET: longer than %d bytes", ESC_STREAM_ID_MAX);
  snprintf(a->policy.target, sizeof a->policy.target, "%s", target);
  if (!a->scope_given)
    a->policy.scope =
        strchr(target, '-') ? ESC_RETENTION_STREAM : ESC_RETENTION_CATEGORY;
  return CLI_CONTINUE;
}

/* ------------------------------------------------------------------------
 * Printing
 * ------------------------------------------------------------------------ */

static const char *scope_name(esc_retention_scope s) {
  return s == ESC_RETENTION_CATEGORY ? "category" : "stream";
}

static json_t *limit_json(int64_t v) {
  return v > 0 ? json_integer(v) : json_null();
}

static bool print_policy(const cli_ctx *ctx, const esc_retention_policy *p,
                         bool with_who) {
  char limits[96], when[32];
  esc_retention_policy_describe(p, limits, sizeof limits);
  cli_format_time(p->set_at_us, when);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "scope", json_string(scope_name(p->scope)));
    json_object_set_new(o, "target", json_string(p->target));
    json_object_set_new(o, "max_age_s", limit_json(p->max_age_s));
    json_object_set_new(o, "max_count", limit_json(p->max_count));
    if (with_who) {
      json_object_set_new(o, "set_by", cli_json_string(p->set_by));
      json_object_set_new(o, "set_at", json_string(when));
    }
    return cli_json_emit(o);
  }
  if (!with_who)
    return printf("retention policy of %s %s: %s\n", scope_name(p->scope),
                  p->target, limits) >= 0;
  return printf("%-9s %-32s %-28s %-16s %s\n", scope_name(p->scope), p->target,
                limits, p->set_by, when) >= 0;
}

typedef struct run_state {
  const cli_ctx *ctx;
  bool dry_run;
  bool write_failed;
} run_state;

static void print_item(void *userdata, const esc_retention_item *it) {
  run_state *rs = userdata;
  char limits[96];
  esc_retention_policy_describe(&it->policy, limits, sizeof limits);
  bool ok;
  if (rs->ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "stream", json_string(it->stream_id));
    json_object_set_new(o, "scope", json_string(scope_name(it->policy.scope)));
    json_object_set_new(o, "target", json_string(it->policy.target));
    json_object_set_new(o, "version", json_integer(it->version));
    json_object_set_new(o, "before", json_integer(it->before));
    json_object_set_new(o, "events", json_integer(it->events));
    json_object_set_new(o, "refused", json_boolean(it->refused));
    json_object_set_new(o, "dry_run", json_boolean(rs->dry_run));
    ok = cli_json_emit(o);
  } else if (it->refused) {
    ok = printf("%-24s %s: no snapshot covers versions below %" PRId64
                " (of %" PRId64 "; %s %s: %s; --force removes them)\n",
                it->stream_id, rs->dry_run ? "would be refused" : "refused",
                it->before, it->version, scope_name(it->policy.scope),
                it->policy.target, limits) >= 0;
  } else {
    ok = printf("%-24s %s %" PRId64 " events below version %" PRId64
                " (of %" PRId64 "; %s %s: %s)\n",
                it->stream_id, rs->dry_run ? "would remove" : "removed",
                it->events, it->before, it->version,
                scope_name(it->policy.scope), it->policy.target, limits) >= 0;
  }
  fflush(stdout); /* progress: one line per stream as it is done */
  rs->write_failed |= !ok;
}

static int print_summary(const cli_ctx *ctx, const retention_args *a,
                         const esc_retention_report *r) {
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "streams", json_integer(r->streams));
    json_object_set_new(o, "events", json_integer(r->events));
    json_object_set_new(o, "archived", json_integer(r->archived));
    json_object_set_new(o, "refused", json_integer(r->refused));
    json_object_set_new(o, "archive",
                        a->archive ? cli_json_string(a->archive) : json_null());
    json_object_set_new(o, "dry_run", json_boolean(a->dry_run));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  int n =
      printf("%s %" PRId64 " event%s of %" PRId64 " stream%s%s\n",
             a->dry_run ? "would remove" : "removed", r->events,
             r->events == 1 ? "" : "s", r->streams, r->streams == 1 ? "" : "s",
             a->dry_run ? " (dry run: nothing removed)" : "");
  if (n >= 0 && a->archive)
    n = printf("archived %" PRId64 " events to %s (fsync'ed)\n", r->archived,
               a->archive);
  if (n >= 0 && r->refused)
    n = printf("%s %" PRId64 " stream%s no snapshot covers (--force removes "
               "their events too)\n",
               a->dry_run ? "would refuse" : "refused", r->refused,
               r->refused == 1 ? "" : "s");
  return n >= 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* The archive's callbacks, with the run's state beside them. */
typedef struct run_archive {
  run_state *rs;
  cli_archive *archive;
} run_archive;

static esc_status archive_event(void *userdata, const esc_recorded_event *e,
                                esc_error *err) {
  return cli_archive_event(((run_archive *)userdata)->archive, e, err);
}

static esc_status archive_sync(void *userdata, esc_error *err) {
  return cli_archive_sync(((run_archive *)userdata)->archive, err);
}

static void print_archived_item(void *userdata, const esc_retention_item *it) {
  print_item(((run_archive *)userdata)->rs, it);
}

/* ------------------------------------------------------------------------
 * Subcommands
 * ------------------------------------------------------------------------ */

/* Opens the store, runs fn, reports its failure; returns the exit code. */
static int with_store(cli_ctx *ctx, retention_args *a,
                      int (*fn)(cli_ctx *, esc_store *, retention_args *,
                                esc_error *)) {
  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  int rc = fn(ctx, store, a, &err);
  esc_store_free(store);
  return rc;
}

static int do_set(cli_ctx *ctx, esc_store *st, retention_args *a,
                  esc_error *err) {
  if (esc_retention_policy_set(st, &a->policy, err) != ESC_OK)
    return cli_fail(ctx, err);
  return print_policy(ctx, &a->policy, false) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static int retention_set(cli_ctx *ctx, int argc, char **argv) {
  retention_args a = {ESC_RETENTION_POLICY_INIT, false, false, NULL, false};
  const cli_option opts[] = {
      CLI_CALL("max-age", &a.policy.max_age_s, max_age),
      CLI_INT("max-count", &a.policy.max_count, 1, INT64_MAX),
      TARGET_OPTIONS(&a), CLI_OPTIONS_END};
  int rc = parse_args(ctx, argc, argv, opts, 1, &a);
  if (rc != CLI_CONTINUE)
    return rc;
  if (a.policy.max_age_s == 0 && a.policy.max_count == 0)
    return cli_usage(ctx, "give --max-age D, --max-count N or both");
  return with_store(ctx, &a, do_set);
}

static int do_remove(cli_ctx *ctx, esc_store *st, retention_args *a,
                     esc_error *err) {
  if (esc_retention_policy_remove(st, a->policy.scope, a->policy.target, err))
    return cli_fail(ctx, err);
  if (!ctx->json)
    return printf("removed the retention policy of %s %s\n",
                  scope_name(a->policy.scope), a->policy.target) >= 0
               ? CLI_EXIT_OK
               : CLI_EXIT_ERROR;
  json_t *o = json_object();
  json_object_set_new(o, "scope", json_string(scope_name(a->policy.scope)));
  json_object_set_new(o, "target", json_string(a->policy.target));
  json_object_set_new(o, "removed", json_true());
  return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

static int retention_remove(cli_ctx *ctx, int argc, char **argv) {
  retention_args a = {ESC_RETENTION_POLICY_INIT, false, false, NULL, false};
  const cli_option opts[] = {TARGET_OPTIONS(&a), CLI_OPTIONS_END};
  int rc = parse_args(ctx, argc, argv, opts, 1, &a);
  return rc != CLI_CONTINUE ? rc : with_store(ctx, &a, do_remove);
}

/* Policies fetched per round trip. */
#define POLICY_PAGE 200

static int do_show(cli_ctx *ctx, esc_store *st, retention_args *a,
                   esc_error *err) {
  (void)a;
  esc_retention_policy page[POLICY_PAGE], last;
  size_t count = 0, total = 0;
  do {
    if (esc_retention_policy_list(st, total ? &last : NULL, page, POLICY_PAGE,
                                  &count, err) != ESC_OK)
      return cli_fail(ctx, err);
    if (!ctx->json && total == 0 && count > 0)
      printf("%-9s %-32s %-28s %-16s %s\n", "SCOPE", "TARGET", "LIMITS",
             "SET BY", "SET AT");
    for (size_t i = 0; i < count; i++)
      if (!print_policy(ctx, &page[i], true))
        return CLI_EXIT_ERROR;
    if (count > 0)
      last = page[count - 1];
    total += count;
  } while (count == POLICY_PAGE);
  if (!ctx->json && total == 0)
    printf("no retention policies (see esc retention --help)\n");
  return CLI_EXIT_OK;
}

static int retention_show(cli_ctx *ctx, int argc, char **argv) {
  retention_args a = {ESC_RETENTION_POLICY_INIT, false, false, NULL, false};
  int rc = parse_args(ctx, argc, argv, NULL, 0, &a);
  return rc != CLI_CONTINUE ? rc : with_store(ctx, &a, do_show);
}

static int do_run(cli_ctx *ctx, esc_store *st, retention_args *a,
                  esc_error *err) {
  cli_archive archive = {NULL, NULL, 0, false};
  run_state rs = {ctx, a->dry_run, false};
  esc_retention_run_options o = ESC_RETENTION_RUN_OPTIONS_INIT;
  esc_retention_report report = {0, 0, 0, 0};
  o.dry_run = a->dry_run;
  o.force = a->force;
  o.on_item = print_item;
  o.userdata = &rs;
  /* The archive first: a path that cannot be written stops the run
   * before anything is read or removed. */
  if (a->archive && cli_archive_open(&archive, a->archive, err) != ESC_OK)
    return cli_fail(ctx, err);
  run_archive ra = {&rs, &archive};
  if (a->archive) {
    o.archive_event = archive_event;
    o.archive_sync = archive_sync;
    o.on_item = print_archived_item;
    o.userdata = &ra;
  }
  esc_status rc = esc_retention_run(st, &o, &report, err);
  cli_archive_close(&archive);
  /* Refusals: the rest was done, so the summary, then the error. */
  if (rc != ESC_OK && rc != ESC_ETRUNCATED)
    return cli_fail(ctx, err);
  int exit_code = print_summary(ctx, a, &report);
  if (rc == ESC_ETRUNCATED)
    return cli_fail_hint(ctx, err,
                         "add --force to remove their events anyway: their "
                         "state can then never be loaded again",
                         NULL);
  return rs.write_failed ? CLI_EXIT_ERROR : exit_code;
}

static int retention_run(cli_ctx *ctx, int argc, char **argv) {
  retention_args a = {ESC_RETENTION_POLICY_INIT, false, false, NULL, false};
  const cli_option opts[] = {CLI_FLAG("dry-run", &a.dry_run),
                             CLI_TEXT("archive", &a.archive),
                             CLI_FLAG("force", &a.force), CLI_OPTIONS_END};
  int rc = parse_args(ctx, argc, argv, opts, 0, &a);
  if (rc != CLI_CONTINUE)
    return rc;
  if (a.dry_run && a.archive)
    return cli_usage(ctx, "--archive writes what a run removes; a dry run "
                          "removes nothing");
  return with_store(ctx, &a, do_run);
}

int cli_cmd_retention(cli_ctx *ctx, int argc, char **argv) {
  static const cli_subcommand subs[] = {
      {"set", "retention set", retention_set},
      {"show", "retention show", retention_show},
      {"run", "retention run", retention_run},
      {"remove", "retention remove", retention_remove},
  };
  static const cli_subcommands set = {subs, sizeof subs / sizeof *subs,
                                      cli_help_retention,
                                      "set, show, run or remove", false};
  return cli_subcommand_only(ctx, argc, argv, &set);
}

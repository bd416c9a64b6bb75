/*
 * The projection commands: esc projections (status of every partition),
 * esc projections repartition NAME N, esc projections move-keys NAME,
 * esc rebuild NAME, esc dead-letters
 * list|retry|discard. Thin layers over
 * the administration calls of <esc/projection.h>.
 */
#define _POSIX_C_SOURCE 200809L /* isatty */

#include "cli.h"
#include "options.h"

#include <esc/projection.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Help
 * ------------------------------------------------------------------------ */

const char cli_help_projections[] =
    "Usage: esc projections [NAME] [--watch [--interval S] [--count N]]\n"
    "       esc projections repartition NAME N\n"
    "       esc projections move-keys NAME\n"
    "\n"
    "Shows every partition of every projection and durable subscription a\n"
    "worker has registered in the schema (or of NAME only): the generation\n"
    "queries read, the partition's checkpoint, its lag, the worker holding\n"
    "its lease, its open dead letters and the progress of a rebuild. Needs\n"
    "Redis (--redis) for projections; a subscription's line is all\n"
    "PostgreSQL's (its checkpoint lives there; GEN is its layout's).\n"
    "\n"
    "LAG counts the events readable after the checkpoint in the\n"
    "projection's categories that belong to the partition (by the workers'\n"
    "hash of the stream id); 0 everywhere means caught up; past 10000 an\n"
    "estimate, ~N. LAG_S: age of the oldest of them. A long writing\n"
    "transaction holds every projection back; `esc stats` names it.\n"
    "\n"
    "Output: a table of PROJECTION, PART (partition/partitions), STATE\n"
    "(running: a worker holds it; idle: none does; stopped: it stopped on\n"
    "a failure; unknown: Redis could not be read, and only what PostgreSQL\n"
    "knows is shown), GEN (the\n"
    "serving generation; - before the first build; foreign when its Redis\n"
    "keys belong to another event store), CHECKPOINT, LAG, LAG_S,\n"
    "LEASE (pid and application_name of the worker's session; - when no\n"
    "worker runs it), DEAD (parked letters and letters awaiting retry) and\n"
    "REBUILD (the generation being built, its checkpoint and lag; - when\n"
    "none) and KIND (projection or subscription); with --json one object\n"
    "per line: {\"projection\",\"kind\",\"partition\",\n"
    "\"partitions\",\"version\",\"generation\",\"checkpoint\",\"lag_events\",\n"
    "\"lag_seconds\",\"lag_estimated\",\"lease\": null or {\"pid\",\"application\"},"
    "\"dead_letters\",\"foreign\",\n"
    "\"repartition_to\": null or N, \"rebuild_only\",\n"
    "\"rebuild\": null or {\"generation\",\"partitions\",\"checkpoint\",\n"
    "\"lag_events\"}, \"state\", \"reason\": null or why}. Below the table,\n"
    "one line per partition that has a reason: NAME/P: STATE: REASON.\n"
    "Exit 0 whatever the partitions' states: a stopped partition or an\n"
    "unreachable Redis is shown, not an error of this command.\n"
    "\n"
    "--watch shows it again every second (--interval S: 0.2 to 60) until\n"
    "SIGINT or SIGTERM, or after N refreshes with --count N, exit 0: on a\n"
    "terminal redrawn, else refreshes a blank line apart, each headed\n"
    "\"esc projections at TIME\" (--json: no header, just the lines). A\n"
    "failing server shows its error in place of the table and the watch\n"
    "goes on (docs/cli.md).\n"
    "\n"
    "A projection's partition layout is the store's: the first worker that\n"
    "runs it sets the count, and a worker started with another count\n"
    "refuses to run it, naming both counts and how to change it.\n"
    "\n"
    "repartition NAME N changes the layout to N partitions: a rebuild into\n"
    "a new generation with N partitions, built by workers started with N\n"
    "partitions while the current generation keeps serving (and its\n"
    "workers keep it up to date). The switch makes N the layout; workers\n"
    "of the old count then stop with the refusal. Without a worker of N\n"
    "partitions the rebuild waits: its lines (PART i/N, after the current\n"
    "layout's, \"rebuild_only\" in --json) say \"waiting for a worker with\n"
    "N partitions\". Output: \"repartition of NAME to N partitions\n"
    "requested\", or that NAME has N partitions already; with --json\n"
    "{\"projection\",\"partitions\",\"repartition_requested\"}. Exit 3\n"
    "while a repartition to another count is under way, 4 when NAME is\n"
    "not registered, 2 for an N outside 1..1024. (A projection named\n"
    "repartition: esc projections -- repartition.)\n"
    "\n"
    "move-keys NAME moves NAME's Redis keys from the names of a release\n"
    "before key namespaces (\"NAME:...\") into the store's namespace\n"
    "(--key-prefix), so that its model serves on and\n"
    "its partitions resume from their checkpoints; workers of this\n"
    "release refuse NAME until then. Stop every worker of the store\n"
    "first: it holds NAME's leases while it moves (exit 1 when a worker\n"
    "holds one; 3 when the keys are another store's or a new name is\n"
    "taken: nothing is overwritten). Run it again after an interruption.\n"
    "Output: \"moved N keys of NAME into the store's namespace\"; with --json\n"
    "{\"projection\",\"moved\"}.\n"
    "\n"
    "Exit 4 when NAME is not registered.\n";

const char cli_help_rebuild[] =
    "Usage: esc rebuild NAME [--wait] [--timeout S]\n"
    "\n"
    "Asks the workers of projection NAME to rebuild it: they build a new\n"
    "generation from the start of the log while the current one keeps\n"
    "serving, then switch queries to it atomically and delete the old keys.\n"
    "A worker picks the request up within seconds; `esc projections` shows\n"
    "the progress (REBUILD). Requests made before a rebuild starts are\n"
    "served by it; one made while it runs starts another one after it.\n"
    "Bumping the projection's version in code does the same.\n"
    "\n"
    "  --wait        follow the rebuild until the new generation serves,\n"
    "                printing its progress on stderr every second (needs\n"
    "                Redis, --redis)\n"
    "  --timeout S   with --wait, give up after S seconds (default 3600):\n"
    "                exit 7 (timed out); the rebuild itself goes on\n"
    "\n"
    "Output: \"rebuild of NAME requested\" (with --wait then \"rebuild of\n"
    "NAME done: generation G serves\"); with --json\n"
    "{\"projection\",\"rebuild_requested\":true} (with --wait plus\n"
    "\"generation\"). Exit 4 when no worker has registered NAME in this\n"
    "schema, 6 for an invalid name.\n";

const char cli_help_dead_letters[] =
    "Usage: esc dead-letters list [--projection P] [--all]\n"
    "       esc dead-letters retry|discard ID [--dry-run]\n"
    "       esc dead-letters retry|discard --all [--dry-run]\n"
    "       esc dead-letters retry|discard [--projection P] [--since WHEN]\n"
    "                                      [--error-like PATTERN] [--dry-run]\n"
    "\n"
    "Events a projection's handler kept failing on are parked as dead\n"
    "letters, with the error, so that the partition can move on.\n"
    "\n"
    "  list      open letters (parked, or awaiting retry), oldest first\n"
    "            --projection P  only those of projection P\n"
    "            --all           resolved and discarded ones too\n"
    "  retry     asks each letter's worker to apply the event again: once\n"
    "            (guarded in Redis), into the serving generation. It becomes\n"
    "            resolved, or parked again with the new error. Only parked\n"
    "            letters are retried.\n"
    "  discard   gives up on parked letters (or ones awaiting retry) for\n"
    "            good; they are kept, marked discarded.\n"
    "\n"
    "retry and discard act on letter ID (exit 4 when there is none, 6 when\n"
    "its state refuses), on every open letter with --all, or on the open\n"
    "letters that match every filter given, all in one transaction:\n"
    "  --projection P        of projection P\n"
    "  --since WHEN          last parked at or after WHEN: a duration ago\n"
    "                        (30m, 2h, 7d) or a UTC time\n"
    "                        (2026-12-07T10:00:00Z)\n"
    "  --error-like PATTERN  whose error matches the SQL LIKE pattern: %\n"
    "                        any run of characters, _ any one, \\ escapes\n"
    "                        them; case-sensitive ('%timeout%')\n"
    "  --dry-run             change nothing; show what would change\n"
    "Without an ID, --all or a filter they refuse (exit 2).\n"
    "\n"
    "Output of list: a table of ID, PROJECTION, PART, POSITION, EVENT\n"
    "(stream@version), TYPE, ATTEMPTS, STATE, PARKED (UTC) and ERROR; with\n"
    "--json one object per line: {\"id\",\"projection\",\"partition\",\n"
    "\"position\",\"event_id\",\"stream\",\"version\",\"type\",\"attempts\",\n"
    "\"commands_applied\" (of an event whose commands failed in Redis: how\n"
    "many took effect; a retry runs the rest),\"state\",\"parked_at\",\n"
    "\"error\"}. retry and discard print the letters they changed the same\n"
    "way, in their new state (with --dry-run the ones they would change,\n"
    "as they are), then \"N dead letters: retry requested\", \"N dead\n"
    "letters: discarded\" or \"would retry N dead letters (dry run)\"; with\n"
    "--json only the letters. When none matches they say so on stderr and\n"
    "exit 0.\n";

/* ------------------------------------------------------------------------
 * A text table: columns as wide as their widest cell, two spaces apart
 * ------------------------------------------------------------------------ */

#define TABLE_MAX_COLS 11

typedef struct table {
  size_t ncols;
  size_t nrows;
  size_t cap;
  char **cells; /* nrows * ncols, malloc'ed strings */
  bool oom;
} table;

static void table_add(table *t, ...) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    char **cells = realloc(t->cells, cap * t->ncols * sizeof *cells);
    if (!cells) {
      t->oom = true;
      return;
    }
    t->cells = cells;
    t->cap = cap;
  }
  va_list ap;
  va_start(ap, t);
  for (size_t c = 0; c < t->ncols; c++) {
    const char *s = va_arg(ap, const char *);
    char *copy = strdup(s ? s : "");
    t->oom = t->oom || !copy;
    t->cells[t->nrows * t->ncols + c] = copy;
  }
  va_end(ap);
  t->nrows++;
}

/* Prints the table; false when stdout could not be written. */
static bool table_print(const table *t) {
  size_t width[TABLE_MAX_COLS] = {0};
  bool ok = true;
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c];
      size_t n = s ? strlen(s) : 0;
      if (n > width[c])
        width[c] = n;
    }
  for (size_t r = 0; r < t->nrows && ok; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c];
      int w = c + 1 == t->ncols ? 0 : (int)width[c]; /* no trailing blanks */
      if (printf("%s%-*s", c ? "  " : "", w, s) < 0)
        ok = false;
    }
    if (putchar('\n') == EOF)
      ok = false;
  }
  return ok;
}

static void table_release(table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
}

static int oom_exit(const cli_ctx *ctx) {
  esc_error err = ESC_ERROR_INIT;
  err.code = ESC_ENOMEM;
  return cli_fail(ctx, &err);
}

/* ------------------------------------------------------------------------
 * esc projections
 * ------------------------------------------------------------------------ */

static bool position_set(const esc_position *p) {
  return p->tx_id != 0 || p->global != 0;
}

static bool print_status_json(const esc_partition_status *s) {
  return cli_json_emit(cli_partition_status_json(s));
}

/* The REBUILD cell: the generation being built and where it is; for a
 * repartition's lines also the layout, and whether anyone builds it. */
static void rebuild_cell(const esc_partition_status *s, char *out,
                         size_t size) {
  char rcp[ESC_POSITION_TOKEN_MAX] = "start";
  if (!s->rebuilding) {
    if (s->repartition_to)
      snprintf(out, size, "repartition to %d partitions requested",
               s->repartition_to);
    else
      snprintf(out, size, "-");
    return;
  }
  if (position_set(&s->rebuild_checkpoint))
    esc_position_format(&s->rebuild_checkpoint, rcp);
  if (!s->rebuild_only)
    snprintf(out, size, "g%" PRId64 " at %s, lag %" PRId64,
             s->rebuild_generation, rcp, s->rebuild_lag_events);
  else if (!s->lease_pid)
    snprintf(out, size,
             "g%" PRId64 " (%d partitions): waiting for a worker with %d "
             "partitions",
             s->rebuild_generation, s->rebuild_partitions,
             s->rebuild_partitions);
  else
    snprintf(out, size, "g%" PRId64 " (%d partitions) at %s, lag %" PRId64,
             s->rebuild_generation, s->rebuild_partitions, rcp,
             s->rebuild_lag_events);
}

static void add_status_row(table *t, const esc_partition_status *s) {
  char part[32], gen[24] = "-", cp[ESC_POSITION_TOKEN_MAX] = "-", lag[24] = "-",
                 lag_s[32] = "-", lease[96] = "-", dead[24], rb[160];
  bool serving = !s->rebuild_only;
  snprintf(part, sizeof part, "%d/%d", s->partition,
           serving ? s->partitions : s->rebuild_partitions);
  if (s->foreign)
    snprintf(gen, sizeof gen, "foreign");
  else if (s->generation && serving) {
    snprintf(gen, sizeof gen, "%" PRId64, s->generation);
    if (position_set(&s->checkpoint))
      esc_position_format(&s->checkpoint, cp);
    else
      snprintf(cp, sizeof cp, "start");
  }
  if (serving && strcmp(s->state, "unknown") != 0) { /* else not known */
    snprintf(lag, sizeof lag, "%s%" PRId64, s->lag_estimated ? "~" : "",
             s->lag_events);
    snprintf(lag_s, sizeof lag_s, "%.1f", s->lag_seconds);
  }
  if (s->lease_pid)
    snprintf(lease, sizeof lease, "%d %s", s->lease_pid,
             s->lease_holder[0] ? s->lease_holder : "?");
  snprintf(dead, sizeof dead, "%" PRId64, s->dead_letters);
  rebuild_cell(s, rb, sizeof rb);
  table_add(t, s->projection, part, s->state, gen, cp, lag, lag_s, lease,
            dead, rb, esc_consumer_kind_name(s->kind));
}

/* After the table, why each line that has a reason is as it is. */
static bool print_reasons(const esc_partition_status *st, size_t n,
                          const char *only) {
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++)
    if (st[i].reason[0] && (!only || strcmp(st[i].projection, only) == 0))
      ok = printf("%s/%d: %s: %s\n", st[i].projection, st[i].partition,
                  st[i].state, st[i].reason) >= 0;
  return ok;
}

static int print_status(const cli_ctx *ctx, const esc_partition_status *st,
                        size_t n, const char *only) {
  table t = {11, 0, 0, NULL, false};
  int rc = CLI_EXIT_OK;
  if (!ctx->json)
    table_add(&t, "PROJECTION", "PART", "STATE", "GEN", "CHECKPOINT", "LAG",
              "LAG_S", "LEASE", "DEAD", "REBUILD", "KIND");
  for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
    if (only && strcmp(st[i].projection, only) != 0)
      continue;
    if (ctx->json && !print_status_json(&st[i]))
      rc = CLI_EXIT_ERROR; /* main() reports the failed write */
    else if (!ctx->json)
      add_status_row(&t, &st[i]);
  }
  if (t.oom)
    rc = oom_exit(ctx);
  else if (!ctx->json && rc == CLI_EXIT_OK &&
           (!table_print(&t) || !print_reasons(st, n, only)))
    rc = CLI_EXIT_ERROR;
  table_release(&t);
  return rc;
}

/* esc projections repartition NAME N */
static int projections_repartition(cli_ctx *ctx, int argc, char **argv) {
  static const char *const names[] = {"NAME", "N"};
  int64_t n = 0;
  bool started = false;
  esc_error err = ESC_ERROR_INIT;
  cli_syntax s = {cli_help_projections, NULL, 2, 2, names, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;
  if (!cli_parse_i64(ctx, "N", argv[optind + 1], 1, 1024, &n))
    return CLI_EXIT_USAGE;
  const char *name = argv[optind];
  if (esc_projection_repartition(ctx->pg_url, ctx->schema, name, (int)n,
                                 &started, &err))
    return cli_fail(ctx, &err);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "projection", cli_json_string(name));
    json_object_set_new(o, "partitions", json_integer(n));
    json_object_set_new(o, "repartition_requested", json_boolean(started));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (started)
    printf("repartition of %s to %" PRId64 " partitions requested; workers "
           "started with %" PRId64 " partitions rebuild it while the current "
           "layout serves, then switch (esc projections %s shows it)\n",
           name, n, n, name);
  else
    printf("%s has %" PRId64 " partitions already; nothing to do\n", name, n);
  return CLI_EXIT_OK;
}

/* esc projections move-keys NAME */
static int projections_move_keys(cli_ctx *ctx, int argc, char **argv) {
  static const char *const names[] = {"NAME"};
  size_t moved = 0;
  esc_error err = ESC_ERROR_INIT;
  cli_syntax s = {cli_help_projections, NULL, 1, 1, names, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;
  const char *name = argv[optind];
  if (esc_projection_move_keys(ctx->pg_url, ctx->redis_url, ctx->schema,
                               ctx->key_prefix, name, &moved, &err))
    return cli_fail(ctx, &err);
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "projection", cli_json_string(name));
    json_object_set_new(o, "moved", json_integer((json_int_t)moved));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (moved)
    printf("moved %zu keys of %s into the store's namespace; start the "
           "workers\n",
           moved, name);
  else
    printf("%s has no keys from before key namespaces; nothing to do\n",
           name);
  return CLI_EXIT_OK;
}

/* The status of every projection, or of only; ESC_ENOTFOUND when only
 * is not registered. *st malloc'ed; the caller frees. */
static esc_status read_status(const cli_ctx *ctx, const char *only,
                              esc_partition_status **st, size_t *n,
                              esc_error *err) {
  esc_status rc = esc_projection_status(ctx->pg_url, ctx->redis_url,
                                        ctx->schema, ctx->key_prefix, st, n,
                                        err);
  if (rc)
    return rc;
  bool found = !only;
  for (size_t i = 0; i < *n && !found; i++)
    found = strcmp((*st)[i].projection, only) == 0;
  if (found)
    return ESC_OK;
  free(*st);
  *st = NULL;
  *n = 0;
  return esc_error_set(err, ESC_ENOTFOUND,
                       "no projection %s in schema %s (a worker registers it "
                       "when it starts)",
                       only, ctx->schema);
}

/* One refresh of --watch: a header (text only; on a terminal after
 * clearing it), then the table, or the error in its place. False when
 * stdout could not be written. */
static bool watch_once(const cli_ctx *ctx, const char *only, int interval_ms,
                       bool tty, bool first) {
  char when[32];
  esc_error err = ESC_ERROR_INIT;
  esc_partition_status *st = NULL;
  size_t n = 0;
  cli_format_time(cli_now_us(), when);
  if (!ctx->json) {
    if (tty)
      fputs("\033[H\033[2J", stdout); /* home, clear */
    else if (!first)
      putchar('\n');
    printf("esc projections at %s (every %.1f s)\n", when,
           interval_ms / 1000.0);
  }
  bool ok = true;
  if (read_status(ctx, only, &st, &n, &err) == ESC_OK)
    ok = print_status(ctx, st, n, only) == CLI_EXIT_OK;
  else if (ctx->json)
    cli_fail(ctx, &err); /* {"error":...} in place of the lines */
  else
    printf("error: %s (%s)\n", err.msg, esc_strerror(err.code));
  free(st);
  return fflush(stdout) == 0 && ok && !ferror(stdout);
}

/*
 * esc projections --watch: refreshes until SIGINT or SIGTERM, or after
 * `count` refreshes (0: no end). A failing server is shown, not fatal:
 * monitoring never goes blind. A reader that went away (| head) ends it
 * quietly, exit 0.
 */
static int watch_status(cli_ctx *ctx, const char *only, int interval_ms,
                        int64_t count) {
  bool tty = isatty(STDOUT_FILENO);
  cli_ignore_sigpipe();
  cli_catch_stop_signals();
  for (int64_t done = 0; count == 0 || done < count; done++) {
    if (done > 0)
      cli_pause_ms(interval_ms); /* no pause after the last refresh */
    if (cli_stop_requested())
      break;
    if (!watch_once(ctx, only, interval_ms, tty, done == 0)) {
      if (errno != EPIPE)
        return CLI_EXIT_ERROR; /* main() reports the failed write */
      /* What stdout still buffers has nowhere to go. */
      if (!freopen("/dev/null", "w", stdout))
        return CLI_EXIT_ERROR;
      return CLI_EXIT_OK;
    }
  }
  return CLI_EXIT_OK;
}

/* --interval S: seconds, 0.2 to 60, into milliseconds. */
static int interval(cli_ctx *ctx, const char *option, const char *text,
                    void *target) {
  int *ms = target;
  char *end = NULL;
  (void)option;
  errno = 0;
  double s = text[0] >= '0' && text[0] <= '9' ? strtod(text, &end) : -1;
  if (s < 0 || errno || *end || s < 0.2 || s > 60) {
    return cli_usage(
        ctx, "--interval: expected seconds from 0.2 to 60, got '%s'", text);
  }
  *ms = (int)(s * 1000 + 0.5);
  return CLI_CONTINUE;
}

int cli_cmd_projections(cli_ctx *ctx, int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "move-keys") == 0) {
    ctx->command = "projections move-keys";
    return projections_move_keys(ctx, argc - 1, argv + 1);
  }
  if (argc > 1 && strcmp(argv[1], "repartition") == 0) {
    ctx->command = "projections repartition";
    /* The subcommand sees its own name as argv[0]. */
    return projections_repartition(ctx, argc - 1, argv + 1);
  }
  bool watch = false;
  int interval_ms = 0; /* 0: not given; 1 s */
  int64_t count = 0;   /* 0: not given; until stopped */
  const cli_option opts[] = {
      CLI_FLAG("watch", &watch), CLI_CALL("interval", &interval_ms, interval),
      CLI_INT("count", &count, 1, 1000000000), CLI_OPTIONS_END};
  cli_syntax s = {cli_help_projections, opts, 0, 1, NULL, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;
  bool interval_given = interval_ms != 0, count_given = count != 0;
  if (!interval_given)
    interval_ms = 1000;
  if ((interval_given || count_given) && !watch)
    return cli_usage(ctx, "%s goes with --watch",
                     interval_given ? "--interval" : "--count");
  const char *only = argc - optind == 1 ? argv[optind] : NULL;
  if (watch)
    return watch_status(ctx, only, interval_ms, count);

  esc_error err = ESC_ERROR_INIT;
  esc_partition_status *st = NULL;
  size_t n = 0;
  if (read_status(ctx, only, &st, &n, &err) != ESC_OK)
    return cli_fail(ctx, &err);
  int rc = print_status(ctx, st, n, only);
  free(st);
  return rc;
}

/* ------------------------------------------------------------------------
 * esc rebuild
 * ------------------------------------------------------------------------ */

/* The serving generation of projection name, and a rebuild's progress:
 * the events its partitions still have to apply, summed (-1: none runs),
 * and whether any worker holds a partition. */
typedef struct rebuild_view {
  int64_t generation;
  int64_t to_go;
  bool worked_on;
} rebuild_view;

static esc_status view_rebuild(const cli_ctx *ctx, const char *name,
                               rebuild_view *v, esc_error *err) {
  esc_partition_status *st = NULL;
  size_t n = 0;
  *v = (rebuild_view){0, -1, false};
  esc_status rc = esc_projection_status(ctx->pg_url, ctx->redis_url,
                                        ctx->schema, ctx->key_prefix, &st, &n,
                                        err);
  for (size_t i = 0; !rc && i < n; i++) {
    if (strcmp(st[i].projection, name) != 0)
      continue;
    v->generation = st[i].generation;
    v->worked_on = v->worked_on || st[i].lease_pid != 0;
    if (st[i].rebuilding)
      v->to_go = (v->to_go < 0 ? 0 : v->to_go) + st[i].rebuild_lag_events;
  }
  free(st);
  return rc;
}

static void sleep_1s(void) {
  struct timespec ts = {1, 0};
  nanosleep(&ts, NULL);
}

/* Follows the rebuild requested when `before` served until a newer
 * generation serves; progress on stderr. *after gets that generation. */
static int follow_rebuild(cli_ctx *ctx, const char *name, int64_t before,
                          int64_t timeout_s, int64_t *after) {
  esc_error err = ESC_ERROR_INIT;
  rebuild_view v;
  bool said_waiting = false;
  for (int64_t waited = 0;; waited++) {
    if (view_rebuild(ctx, name, &v, &err))
      return cli_fail(ctx, &err);
    if (v.generation > before && v.to_go < 0) {
      *after = v.generation;
      return CLI_EXIT_OK;
    }
    if (v.to_go >= 0)
      fprintf(stderr, "esc: rebuild of %s: %" PRId64 " events to go\n", name,
              v.to_go);
    else if (!said_waiting || waited % 10 == 0)
      fprintf(stderr,
              "esc: rebuild of %s: waiting for a worker to start it%s\n", name,
              v.worked_on ? "" : " (no worker holds a partition now)");
    said_waiting = true;
    if (waited >= timeout_s) {
      esc_error_set(&err, ESC_ETIMEDOUT,
                    "rebuild of %s not done after %" PRId64
                    " s; it goes on (esc projections %s shows it)",
                    name, timeout_s, name);
      return cli_fail(ctx, &err);
    }
    sleep_1s();
  }
}

int cli_cmd_rebuild(cli_ctx *ctx, int argc, char **argv) {
  static const char *const names[] = {"NAME"};
  bool wait = false;
  int64_t timeout_s = 3600;
  const cli_option opts[] = {CLI_FLAG("wait", &wait),
                             CLI_INT("timeout", &timeout_s, 1, INT32_MAX),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_rebuild, opts, 1, 1, names, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;
  const char *name = argv[optind];

  esc_error err = ESC_ERROR_INIT;
  rebuild_view before = {0, -1, false};
  int64_t after = 0;
  if (wait && view_rebuild(ctx, name, &before, &err))
    return cli_fail(ctx, &err);
  if (esc_projection_request_rebuild(ctx->pg_url, ctx->schema, name, &err))
    return cli_fail(ctx, &err);
  if (!ctx->json)
    printf("rebuild of %s requested; its workers start it within seconds\n",
           name);
  fflush(stdout);
  int rc = wait
               ? follow_rebuild(ctx, name, before.generation, timeout_s, &after)
               : CLI_EXIT_OK;
  if (rc != CLI_EXIT_OK)
    return rc;
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "projection", cli_json_string(name));
    json_object_set_new(o, "rebuild_requested", json_true());
    if (wait)
      json_object_set_new(o, "generation", json_integer(after));
    return cli_json_emit(o) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
  }
  if (wait)
    printf("rebuild of %s done: generation %" PRId64 " serves\n", name, after);
  return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------
 * esc dead-letters
 * ------------------------------------------------------------------------ */

static bool print_letter_json(const esc_dead_letter *d) {
  return cli_json_emit(cli_dead_letter_json(d));
}

static void add_letter_row(table *t, const esc_dead_letter *d) {
  char id[24], part[16], pos[ESC_POSITION_TOKEN_MAX],
      ev[ESC_STREAM_ID_MAX + 24], attempts[16], when[32];
  snprintf(id, sizeof id, "%" PRId64, d->id);
  snprintf(part, sizeof part, "%d", d->partition);
  esc_position_format(&d->position, pos);
  snprintf(ev, sizeof ev, "%s@%" PRId64, d->stream_id, d->stream_version);
  snprintf(attempts, sizeof attempts, "%d", d->attempts);
  cli_format_time(d->parked_at_us, when);
  table_add(t, id, d->projection, part, pos, ev, d->event_type, attempts,
            d->state, when, d->error);
}

static int print_letters(const cli_ctx *ctx, const esc_dead_letter *l,
                         size_t n) {
  table t = {10, 0, 0, NULL, false};
  int rc = CLI_EXIT_OK;
  if (!ctx->json)
    table_add(&t, "ID", "PROJECTION", "PART", "POSITION", "EVENT", "TYPE",
              "ATTEMPTS", "STATE", "PARKED", "ERROR");
  for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
    if (ctx->json && !print_letter_json(&l[i]))
      rc = CLI_EXIT_ERROR;
    else if (!ctx->json)
      add_letter_row(&t, &l[i]);
  }
  if (t.oom)
    rc = oom_exit(ctx);
  else if (!ctx->json && rc == CLI_EXIT_OK && !table_print(&t))
    rc = CLI_EXIT_ERROR;
  table_release(&t);
  return rc;
}

static int dead_letters_list(cli_ctx *ctx, int argc, char **argv) {
  const char *projection = NULL;
  bool all = false;
  const cli_option opts[] = {CLI_TEXT("projection", &projection),
                             CLI_FLAG("all", &all), CLI_OPTIONS_END};
  cli_syntax s = {cli_help_dead_letters, opts, 0, 0, NULL, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;

  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  if (esc_dead_letters_list(ctx->pg_url, ctx->schema, projection, all, &l, &n,
                            &err)) {
    if (err.code == ESC_EINVAL)
      cli_error_prefix(&err, "--projection");
    return cli_fail(ctx, &err);
  }
  int rc = print_letters(ctx, l, n);
  free(l);
  return rc;
}

static int since(cli_ctx *ctx, const char *option, const char *value,
                 void *target) {
  return cli_parse_since(ctx, option, value, target) ? CLI_CONTINUE
                                                     : CLI_EXIT_USAGE;
}

/* What retry and discard act on: one ID, --all, or a filter. */
typedef struct change_args {
  esc_dead_letter_filter filter;
  int64_t id;
  bool all;
  bool dry_run;
} change_args;

/* Parses retry's and discard's arguments into a; returns CLI_CONTINUE
 * or the exit code. A bulk action needs a selector: nobody retries or
 * discards every letter by leaving the ID out. */
static int parse_change(cli_ctx *ctx, int argc, char **argv, change_args *a) {
  esc_dead_letter_filter *f = &a->filter;
  const cli_option opts[] = {CLI_TEXT("projection", &f->projection),
                             CLI_FLAG("all", &a->all),
                             CLI_CALL("since", &f->parked_since, since),
                             CLI_TEXT("error-like", &f->error_like),
                             CLI_FLAG("dry-run", &a->dry_run),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_dead_letters, opts, 0, 1, NULL, false, NULL};
  int parsed = cli_parse(ctx, argc, argv, &s);
  if (parsed != CLI_CONTINUE)
    return parsed;
  bool filtered = f->projection || f->parked_since || f->error_like;
  int operands = argc - optind;
  if (operands == 1 && (a->all || filtered))
    return cli_usage(ctx, "give an ID, or --all, or filters, not both");
  if (a->all && filtered)
    return cli_usage(ctx, "--all is every open letter; leave it out to "
                          "select by --projection, --since or --error-like");
  if (operands == 0 && !a->all && !filtered)
    return cli_usage(ctx, "which letters? give an ID, --all (every open "
                          "letter) or a filter: --projection, --since, "
                          "--error-like");
  if (operands == 1) {
    if (!cli_parse_i64(ctx, "ID", argv[optind], 1, INT64_MAX, &a->id))
      return CLI_EXIT_USAGE;
    f->ids = &a->id;
    f->nids = 1;
  }
  return CLI_CONTINUE;
}

/* After the letters: what was done to how many, or that none matched. */
static void print_change_summary(const cli_ctx *ctx, const change_args *a,
                                 bool retry, size_t n) {
  const char *letters = n == 1 ? "dead letter" : "dead letters";
  if (n == 0)
    fprintf(stderr, "esc: %s: no open dead letter matches%s\n", ctx->command,
            retry ? " (only a parked one can be retried)" : "");
  else if (ctx->json)
    return;
  else if (a->dry_run)
    printf("would %s %zu %s (dry run)\n", retry ? "retry" : "discard", n,
           letters);
  else if (retry)
    printf("%zu %s: retry requested; their workers apply them within "
           "seconds\n",
           n, letters);
  else
    printf("%zu %s: discarded\n", n, letters);
}

/* retry and discard: the selected letters, each shown as list shows it
 * (in its new state; with --dry-run in its current one). */
static int dead_letter_change(cli_ctx *ctx, int argc, char **argv, bool retry) {
  change_args a = {ESC_DEAD_LETTER_FILTER_INIT, 0, false, false};
  int parsed = parse_change(ctx, argc, argv, &a);
  if (parsed != CLI_CONTINUE)
    return parsed;

  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  if (cli_dead_letters_act(ctx, retry, &a.filter, a.dry_run, &l, &n, &err)) {
    if (err.code == ESC_EINVAL && a.filter.projection && !a.filter.nids)
      cli_error_prefix(&err, "--projection");
    return cli_fail(ctx, &err);
  }
  int rc = n ? print_letters(ctx, l, n) : CLI_EXIT_OK;
  free(l);
  if (rc == CLI_EXIT_OK)
    print_change_summary(ctx, &a, retry, n);
  return rc;
}

static int dead_letters_retry(cli_ctx *ctx, int argc, char **argv) {
  return dead_letter_change(ctx, argc, argv, true);
}

static int dead_letters_discard(cli_ctx *ctx, int argc, char **argv) {
  return dead_letter_change(ctx, argc, argv, false);
}

int cli_cmd_dead_letters(cli_ctx *ctx, int argc, char **argv) {
  static const cli_subcommand subs[] = {
      {"list", "dead-letters list", dead_letters_list},
      {"retry", "dead-letters retry", dead_letters_retry},
      {"discard", "dead-letters discard", dead_letters_discard},
  };
  static const cli_subcommands set = {subs, sizeof subs / sizeof *subs,
                                      cli_help_dead_letters,
                                      "list, retry or discard", true};
  return cli_subcommand_only(ctx, argc, argv, &set);
}

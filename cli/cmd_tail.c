/*
 * esc tail: $all or one category in subscription order, from a position
 * token, optionally following new events until SIGINT/SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, rand_r */

#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char cli_help_tail[] =
    "Usage: esc tail [options]\n"
    "\n"
    "Prints the events of $all, or of one category, in subscription order\n"
    "(the order projections see: gap-free, by writing transaction).\n"
    "\n"
    "Options:\n"
    "  --category C  only streams of category C (\"order\" for order-42)\n"
    "  --from TOKEN  start after position TOKEN (\"812/57\", as printed in\n"
    "                the first column), \"start\" (default), or \"end\": "
    "the\n"
    "                current head, so only events written from now on\n"
    "  --follow      keep waiting for new events until SIGINT or SIGTERM;\n"
    "                a lost connection is re-opened (backoff 0.1 s doubling\n"
    "                to 5 s, jittered) and it resumes after the last event\n"
    "                printed: none twice, none skipped\n"
    "  --retry-for S with --follow, give up (exit 5, or 7 when timed out)\n"
    "                after S seconds without a connection (default 60;\n"
    "                0: exit on the first connection error)\n"
    "  --retry-forever  with --follow, never give up\n"
    "                (either of these two also waits for a server that is\n"
    "                not up yet when tail starts)\n"
    "  --limit N     stop after N events (default 100, or no limit with\n"
    "                --follow; 0: no limit); when more follow, stderr says\n"
    "                so\n"
    "  --all         no limit (--limit 0)\n"
    "  --batch N     events per round trip (default 500)\n"
    "\n"
    "Output, one line per event:\n"
    "  812/57  order-1@3  OrderPlaced  {\"customer\":\"c-7\"}\n"
    "  (position token, stream@version, type, data as JSON); with --json "
    "the\n"
    "same objects as `esc read --json`. To continue where a listing "
    "stopped,\n"
    "pass the last position as --from.\n";

typedef struct tail_args {
  const char *category; /* NULL: $all */
  const char *from;     /* "start", "end" or a token */
  bool follow;
  int64_t limit; /* -1: the default */
  int64_t batch;
  int64_t retry_for_s; /* -1: forever */
  bool retry_given;    /* --retry-for or --retry-forever was asked for */
} tail_args;

/* Reconnect backoff of --follow: doubling, capped, each pause jittered to
 * half..all of it so many followers of one server do not retry in step. */
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000
/* --retry-for before parsing: neither it nor --retry-forever given. */
#define RETRY_DEFAULT INT64_MIN

/* How long one esc_wait_for_events call may sleep: bounds how late a
 * signal is noticed when the library's wait restarts after EINTR. */
#define TAIL_WAIT_MS 1000

/* Returns -1 to go on, else the exit code. */
static int parse_args(cli_ctx *ctx, int argc, char **argv, tail_args *a) {
  const cli_option opts[] = {
      CLI_TEXT("category", &a->category),
      CLI_TEXT("from", &a->from),
      CLI_FLAG("follow", &a->follow),
      CLI_LIMIT_ALL(&a->limit, INT64_MAX),
      CLI_INT("batch", &a->batch, 1, 100000),
      CLI_INT("retry-for", &a->retry_for_s, 0, INT32_MAX),
      CLI_SET("retry-forever", &a->retry_for_s, -1),
      CLI_OPTIONS_END};
  cli_syntax s = {cli_help_tail, opts, 0, 0, NULL, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (a->limit < 0)
    a->limit = a->follow ? 0 : 100;
  /* Retries asked for by name also cover the first connection. */
  a->retry_given = a->retry_for_s != RETRY_DEFAULT;
  if (!a->retry_given)
    a->retry_for_s = 60;
  return rc != CLI_CONTINUE ? rc : cli_check_category(ctx, a->category);
}

/* Parses --from, except "end", which needs the store. */
static esc_status parse_from(const char *from, esc_position *out,
                             esc_error *err) {
  esc_position start = ESC_POSITION_START;
  *out = start;
  if (strcmp(from, "start") == 0 || strcmp(from, "end") == 0)
    return ESC_OK;
  if (esc_position_parse(from, out, err) == ESC_OK)
    return ESC_OK;
  cli_error_prefix(err, "--from");
  return err->code = ESC_EINVAL;
}

/* The head: what a subscriber can read up to now. */
static esc_status head_position(esc_store *store, esc_position *out,
                                esc_error *err) {
  esc_store_stats stats;
  esc_status st = esc_store_stats_get(store, &stats, err);
  if (st == ESC_OK)
    *out = stats.head;
  return st;
}

/* ------------------------------------------------------------------------
 * Reconnecting (--follow)
 * ------------------------------------------------------------------------ */

/* Failures in a row since the connection was lost, and when that was. */
typedef struct retry_state {
  bool started; /* a connection was made: failures are losses */
  int failures;
  int64_t since_ms;
  int delay_ms;
  unsigned seed;
} retry_state;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pause before the next try: half to all of the current delay. */
static int jittered(retry_state *r) {
  int half = r->delay_ms / 2;
  return half + rand_r(&r->seed) % (half + 1);
}

/*
 * After a failed call of a follower: logs, sleeps and returns true to try
 * again (the store reconnects on its next call), or returns false to give
 * up, the caller reporting err. Only connection failures and time-outs
 * are retried, for --retry-for seconds from the first failure in a row.
 */
static bool retry_after(const tail_args *a, retry_state *r, esc_status st,
                        const esc_error *err) {
  if (!a->follow || cli_stop_requested() ||
      (st != ESC_ECONN && st != ESC_ETIMEDOUT))
    return false;
  int64_t now = mono_ms(), limit = a->retry_for_s * 1000;
  if (r->failures++ == 0) {
    r->since_ms = now;
    r->delay_ms = RETRY_FIRST_MS;
  }
  int64_t waited = now - r->since_ms;
  if (a->retry_for_s >= 0 && waited >= limit) {
    fprintf(stderr,
            "esc: tail: giving up: no connection to PostgreSQL for %.1f s "
            "(--retry-for %lld)\n",
            (double)waited / 1000, (long long)a->retry_for_s);
    return false;
  }
  int pause = jittered(r);
  if (a->retry_for_s >= 0 && waited + pause > limit)
    pause = (int)(limit - waited);
  if (r->failures == 1)
    fprintf(stderr, "esc: tail: %s: %s; %s in %.1f s\n",
            r->started ? "lost the connection" : "cannot connect", err->msg,
            r->started ? "reconnecting" : "trying again", pause / 1000.0);
  else
    fprintf(stderr, "esc: tail: reconnect %d failed: %s; next try in %.1f s\n",
            r->failures - 1, err->msg, pause / 1000.0);
  cli_pause_ms(pause);
  r->delay_ms = r->delay_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : r->delay_ms * 2;
  return !cli_stop_requested();
}

/* A call worked again: says so once, with where reading resumes. */
static void reconnected(retry_state *r, esc_position after) {
  char pos[ESC_POSITION_TOKEN_MAX];
  if (r->failures == 0)
    return;
  esc_position_format(&after, pos);
  fprintf(stderr,
          "esc: tail: reconnected after %d %s in %.1f s; resuming after %s\n",
          r->failures, r->failures == 1 ? "failure" : "failures",
          (double)(mono_ms() - r->since_ms) / 1000, pos);
  r->failures = 0;
}

/* Opens the store. A first connection that fails exits at once (a wrong
 * --pg should not take a minute to report) unless retries were asked for
 * by name: then a follower started while the server is down (restarting,
 * or its supervisor restarted the follower first) waits for it under the
 * same limit as one that lost its connection. */
static esc_store *open_store(const cli_ctx *ctx, const tail_args *a,
                             esc_error *err) {
  retry_state retry = {false, 0, 0, 0,
                       (unsigned)time(NULL) ^ (unsigned)getpid()};
  for (;;) {
    esc_store *store = cli_open_store(ctx, err);
    if (store || !a->retry_given || !retry_after(a, &retry, err->code, err)) {
      if (store && retry.failures)
        fprintf(stderr, "esc: tail: connected after %d %s in %.1f s\n",
                retry.failures, retry.failures == 1 ? "failure" : "failures",
                (double)(mono_ms() - retry.since_ms) / 1000);
      return store;
    }
    *err = (esc_error)ESC_ERROR_INIT;
  }
}

/* ------------------------------------------------------------------------ */

/* Reads, prints and (with --follow) waits; returns the exit code. */
static int tail_loop(const cli_ctx *ctx, esc_store *store, const tail_args *a,
                     esc_position after) {
  size_t left = a->limit == 0 ? SIZE_MAX : (size_t)a->limit;
  esc_events ev;
  esc_error err = ESC_ERROR_INIT;
  retry_state retry = {true, 0, 0, 0,
                       (unsigned)time(NULL) ^ (unsigned)getpid()};
  int rc = CLI_EXIT_OK;
  esc_events_init(&ev);
  while (left > 0 && !cli_stop_requested()) {
    size_t batch = (size_t)a->batch;
    size_t want = left < batch ? left : batch;
    esc_status st = esc_read_all(store, a->category, after, want, &ev, &err);
    if (st != ESC_OK) {
      if (retry_after(a, &retry, st, &err))
        continue; /* from `after`, the last event printed */
      goto out_fail;
    }
    reconnected(&retry, after);
    for (size_t i = 0; i < ev.count; i++)
      if (!cli_print_event(ctx, &ev.items[i], CLI_FORM_ALL)) {
        rc = CLI_EXIT_ERROR; /* main() reports the failed write */
        goto out;
      }
    left -= ev.count;
    after = ev.next;
    if (ev.count > 0)
      continue;
    /* Nothing more yet. */
    if (!a->follow)
      break;
    fflush(stdout);
    st = esc_wait_for_events(store, a->category, after, TAIL_WAIT_MS,
                             TAIL_WAIT_MS, &err);
    if (st != ESC_OK && st != ESC_ETIMEDOUT && !retry_after(a, &retry, st, &err))
      goto out_fail;
  }
  /* One more event read says whether the limit hid any. */
  if (left == 0 && !cli_stop_requested() &&
      esc_read_all(store, a->category, after, 1, &ev, &err) == ESC_OK &&
      ev.count > 0) {
    char rest[ESC_POSITION_TOKEN_MAX + 16];
    int n = snprintf(rest, sizeof rest, "--from ");
    esc_position_format(&after, rest + n);
    cli_note_cut(ctx, a->limit, "events", rest);
  }
  goto out;
out_fail:
  /* An error caused by the signal that stops us is not an error. */
  if (!cli_stop_requested())
    rc = cli_fail(ctx, &err);
out:
  esc_events_release(&ev);
  return rc;
}

int cli_cmd_tail(cli_ctx *ctx, int argc, char **argv) {
  tail_args a = {NULL, "start", false, -1, 500, RETRY_DEFAULT, false};
  int rc = parse_args(ctx, argc, argv, &a);
  if (rc >= 0)
    return rc;

  esc_error err = ESC_ERROR_INIT;
  esc_position after;
  if (parse_from(a.from, &after, &err) != ESC_OK)
    return cli_fail(ctx, &err);
  if (a.follow)
    cli_catch_stop_signals();
  esc_store *store = open_store(ctx, &a, &err);
  if (!store)
    return cli_stop_requested() ? CLI_EXIT_OK : cli_fail(ctx, &err);
  if (strcmp(a.from, "end") == 0 &&
      head_position(store, &after, &err) != ESC_OK) {
    rc = cli_fail(ctx, &err);
    goto out;
  }
  rc = tail_loop(ctx, store, &a, after);
out:
  esc_store_free(store);
  return rc;
}

/*
 * esc check: finds events that subscribers read before the previous version
 * of their stream (what appends before migration 5 could store) and, with
 * --repair, puts each such stream back in version order.
 */
#include "cli.h"
#include "options.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_check[] =
    "Usage: esc check [--repair] [--limit N]\n"
    "\n"
    "Scans the log for stream-order inversions: an event that $all and\n"
    "category subscribers read before the previous version of its stream.\n"
    "Stores written before migration 5 can hold them; projections built\n"
    "from such a log applied those events out of order. The result is\n"
    "recorded in the store; projection workers refuse to start while it\n"
    "records inversions.\n"
    "\n"
    "Options:\n"
    "  --repair   put every affected stream back in version order within\n"
    "             the positions its events occupy (logged in\n"
    "             <schema>.order_repairs; needs the owner role), then\n"
    "             check again. Afterwards rebuild every projection:\n"
    "             esc rebuild NAME\n"
    "  --limit N  list at most N inversions (default 100; 0: none)\n"
    "\n"
    "Output: one line per inversion,\n"
    "  hot-1@178 at 2017/121 is read before hot-1@177 at 2019/130\n"
    "then a summary line; with --json one object per inversion\n"
    "{\"stream\",\"version\",\"position\",\"previous_position\"} and a last\n"
    "{\"inversions\",\"streams\",\"repaired_streams\",\"moved_events\"}.\n"
    "\n"
    "Exit status: 0 the log is in order (after --repair: it is now),\n"
    "10 inversions found (and not repaired), else the usual codes.\n";

enum { CHECK_EXIT_FOUND = 10 };

typedef struct check_args {
  bool repair;
  int64_t limit;
} check_args;

static int parse_args(cli_ctx *ctx, int argc, char **argv, check_args *a) {
  const cli_option opts[] = {CLI_FLAG("repair", &a->repair),
                             CLI_INT("limit", &a->limit, 0, 100000),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_check, opts, 0, 0, NULL, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

static void print_inversion(const cli_ctx *ctx, const esc_order_inversion *i) {
  char at[ESC_POSITION_TOKEN_MAX], prev[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&i->position, at);
  esc_position_format(&i->prev_position, prev);
  if (!ctx->json) {
    printf("%s@%" PRId64 " at %s is read before %s@%" PRId64 " at %s\n",
           i->stream_id, i->version, at, i->stream_id, i->version - 1, prev);
    return;
  }
  json_t *o = json_object();
  json_object_set_new(o, "stream", cli_json_string(i->stream_id));
  json_object_set_new(o, "version", json_integer(i->version));
  json_object_set_new(o, "position", json_string(at));
  json_object_set_new(o, "previous_position", json_string(prev));
  cli_json_emit(o);
}

/* The distinct streams of a listing, each once (it is sorted by stream). */
static esc_status repair_listed(esc_store *st, const esc_order_inversion *inv,
                                size_t n, int64_t *streams, int64_t *moved,
                                esc_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && strcmp(inv[i].stream_id, inv[i - 1].stream_id) == 0)
      continue;
    int64_t m = 0;
    esc_status rc = esc_order_repair(st, inv[i].stream_id, &m, err);
    if (rc)
      return rc;
    fprintf(stderr, "esc check: repaired %s: %" PRId64 " events moved\n",
            inv[i].stream_id, m);
    (*streams)++;
    *moved += m;
  }
  return ESC_OK;
}

/* Repairs until a check finds nothing; a listing holds at most `room`
 * inversions, so a big log takes several passes. */
static esc_status repair_all(esc_store *st, esc_order_inversion *inv,
                             size_t room, esc_order_report *report,
                             int64_t *streams, int64_t *moved,
                             esc_error *err) {
  size_t n = 0;
  esc_status rc = esc_order_check(st, report, inv, room, &n, err);
  while (!rc && report->inversions > 0) {
    int64_t before = *moved;
    rc = repair_listed(st, inv, n, streams, moved, err);
    if (!rc && *moved == before) /* never loop on a stream it cannot fix */
      return esc_error_set(err, ESC_ECORRUPT,
                           "repair of %s moved nothing; %" PRId64
                           " inversions remain",
                           inv[0].stream_id, report->inversions);
    if (!rc)
      rc = esc_order_check(st, report, inv, room, &n, err);
  }
  return rc;
}

static int summarize(const cli_ctx *ctx, const esc_order_report *r,
                     const check_args *a, int64_t repaired, int64_t moved) {
  if (ctx->json) {
    json_t *o = json_object();
    json_object_set_new(o, "inversions", json_integer(r->inversions));
    json_object_set_new(o, "streams", json_integer(r->streams));
    json_object_set_new(o, "repaired_streams", json_integer(repaired));
    json_object_set_new(o, "moved_events", json_integer(moved));
    cli_json_emit(o);
  } else if (a->repair) {
    printf("repaired %" PRId64 " streams, %" PRId64 " events moved; the log "
           "is in stream order%s\n",
           repaired, moved,
           repaired ? ". Rebuild every projection now: esc rebuild NAME" : "");
  } else {
    printf("%" PRId64 " inversions in %" PRId64 " streams%s\n", r->inversions,
           r->streams,
           r->inversions ? ": repair with esc check --repair, then rebuild "
                           "every projection"
                         : "; the log is in stream order");
  }
  return r->inversions ? CHECK_EXIT_FOUND : CLI_EXIT_OK;
}

int cli_cmd_check(cli_ctx *ctx, int argc, char **argv) {
  check_args a = {false, 100};
  int parsed = parse_args(ctx, argc, argv, &a);
  if (parsed != CLI_CONTINUE)
    return parsed;
  /* Repairs work through listings; keep them of a useful size. */
  size_t room = (size_t)(a.repair && a.limit < 1000 ? 1000 : a.limit);
  esc_order_inversion *inv = room ? calloc(room, sizeof *inv) : NULL;
  esc_error err = ESC_ERROR_INIT;
  esc_order_report report = {0};
  int64_t repaired = 0, moved = 0;
  size_t n = 0;
  int rc;
  esc_store *st = room && !inv ? NULL : cli_open_store(ctx, &err);
  if (!st) {
    if (room && !inv)
      esc_error_set(&err, ESC_ENOMEM, "out of memory");
    free(inv);
    return cli_fail(ctx, &err);
  }
  esc_status s =
      a.repair ? repair_all(st, inv, room, &report, &repaired, &moved, &err)
               : esc_order_check(st, &report, inv, room, &n, &err);
  for (size_t i = 0; !s && i < n; i++)
    print_inversion(ctx, &inv[i]);
  rc = s ? cli_fail(ctx, &err) : summarize(ctx, &report, &a, repaired, moved);
  esc_store_free(st);
  free(inv);
  return rc;
}

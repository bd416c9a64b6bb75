/* esc stats: counts, the head position and what holds it back. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

const char cli_help_stats[] =
    "Usage: esc stats\n"
    "\n"
    "Shows the number of events and streams, the head (the newest position\n"
    "a subscriber can read up to), the highest global position stored, and\n"
    "the oldest running transaction that holds the head back, if any: "
    "while\n"
    "it runs, projections and `esc tail` cannot pass it.\n"
    "\n"
    "The identity is the store's random id (made by `esc migrate`), which\n"
    "projection workers mark their Redis keys with.\n"
    "\n"
    "Output: one \"name: value\" line each; with --json one object:\n"
    "{\"schema\",\"identity\",\"events\",\"streams\",\"head\",\"max_global_"
    "position\",\n"
    "\"horizon_holder\": null or {\"pid\",\"age_s\",\"state\","
    "\"application\",\"query\"}}.\n";

static int print_stats(const cli_ctx *ctx, const esc_uuid *id,
                       const esc_store_stats *s) {
  char head[ESC_POSITION_TOKEN_MAX], identity[37];
  esc_position_format(&s->head, head);
  esc_uuid_format(id, identity);
  if (ctx->json)
    return cli_json_emit(cli_stats_json(ctx->schema, id, s)) ? CLI_EXIT_OK
                                                              : CLI_EXIT_ERROR;
  printf("schema:              %s\n", ctx->schema);
  printf("identity:            %s\n", identity);
  printf("events:              %" PRId64 "\n", s->events);
  printf("streams:             %" PRId64 "\n", s->streams);
  printf("head:                %s\n", head);
  printf("max global position: %" PRId64 "\n", s->max_global);
  if (s->holder_pid == 0) {
    printf("horizon held by:     none\n");
    return CLI_EXIT_OK;
  }
  printf("horizon held by:     pid %d, %.1f s, %s, application \"%s\"\n",
         s->holder_pid, cli_stats_holder_age(s), s->holder_state,
         s->holder_app);
  printf("  query:             %s\n", s->holder_query);
  return CLI_EXIT_OK;
}

static int stats(const cli_ctx *ctx, esc_store *store, void *arg) {
  esc_error err = ESC_ERROR_INIT;
  esc_store_stats stats;
  esc_uuid id;
  (void)arg;
  return esc_store_identity(store, &id, &err) == ESC_OK &&
                 esc_store_stats_get(store, &stats, &err) == ESC_OK
             ? print_stats(ctx, &id, &stats)
             : cli_fail(ctx, &err);
}

int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv) {
  int parsed = cli_parse_plain(ctx, argc, argv, cli_help_stats);
  return parsed != CLI_CONTINUE ? parsed : cli_with_store(ctx, stats, NULL);
}

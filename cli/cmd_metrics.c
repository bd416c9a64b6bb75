/*
 * esc metrics: the store's and the projections' numbers in the Prometheus
 * text exposition format, for whatever scrapes them (node_exporter's
 * textfile collector, a cron job). The rendering is the library's
 * (esc_metrics_store_text), the same the workers' HTTP endpoint serves.
 * Only cheap lookups: no count(*) of the log.
 */
#include "cli.h"

#include <esc/metrics.h>

#include <stdio.h>
#include <stdlib.h>

const char cli_help_metrics[] =
    "Usage: esc metrics\n"
    "\n"
    "Prints the store's and every registered projection partition's numbers\n"
    "in the Prometheus text exposition format (0.0.4), for a scraper: e.g.\n"
    "node_exporter's textfile collector fed by\n"
    "  esc metrics > /var/lib/node_exporter/esc.prom.tmp &&\n"
    "  mv /var/lib/node_exporter/esc.prom.tmp /var/lib/node_exporter/esc.prom\n"
    "every few seconds. Index lookups only (no count of the log); needs\n"
    "Redis (--redis) for the projections.\n"
    "\n"
    "Store gauges, labelled {schema}: esc_store_head_position,\n"
    "esc_store_max_position, esc_store_horizon_held_seconds (age of the\n"
    "oldest transaction holding subscribers back; 0: none),\n"
    "esc_store_order_inversions (events the last `esc check` found read\n"
    "before their stream's previous version; workers refuse while > 0).\n"
    "Projection gauges, labelled {schema,projection,partition}:\n"
    "esc_projection_lag_events, esc_projection_lag_seconds,\n"
    "esc_projection_lag_estimated (1 past 10000 events: lag estimated),\n"
    "esc_projection_generation, esc_projection_checkpoint_position,\n"
    "esc_projection_lease_held (1 when a worker holds the partition),\n"
    "esc_projection_dead_letters, esc_projection_rebuilding (1 while a\n"
    "rebuild runs), esc_projection_rebuild_lag_events,\n"
    "esc_projection_foreign (1 when its Redis keys belong to another store),\n"
    "esc_projection_stopped (1 when it stopped on a failure; `esc\n"
    "projections` says why), esc_projection_state{...,state} (1 for the\n"
    "partition's state: running, idle, stopped or unknown; 0 for the\n"
    "others). esc_redis_reachable{schema} is 0 when Redis\n"
    "could not be read: the Redis-derived gauges are then left out.\n"
    "During a repartition the new layout's partitions also carry\n"
    "esc_projection_lease_held, esc_projection_rebuilding and\n"
    "esc_projection_rebuild_lag_events, labelled\n"
    "{schema,projection,partition,rebuild_layout=\"N\"}.\n"
    "\n"
    "Workers serve these (for their projections) and their own counters\n"
    "over HTTP with --metrics-listen (docs/operations.md#metrics).\n"
    "\n"
    "--json is refused (exit 2): `esc stats --json` and\n"
    "`esc projections --json` give the same numbers as JSON.\n";

int cli_cmd_metrics(cli_ctx *ctx, int argc, char **argv) {
  int parsed = cli_parse_plain(ctx, argc, argv, cli_help_metrics);
  if (parsed != CLI_CONTINUE)
    return parsed;
  if (ctx->json) {
    cli_usage(ctx, "--json: metrics are Prometheus text; use `esc stats "
                   "--json` or `esc projections --json`");
    return CLI_EXIT_USAGE;
  }

  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_fail(ctx, &err);
  /* One rendering for this and the workers' HTTP endpoint (<esc/metrics.h>). */
  char *text = NULL;
  esc_status rc = esc_metrics_store_text(store, ctx->pg_url, ctx->redis_url,
                                         ctx->key_prefix, &text, &err);
  esc_store_free(store);
  if (rc)
    return cli_fail(ctx, &err);
  fputs(text, stdout);
  free(text);
  return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

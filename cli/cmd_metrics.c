/*
 * esc metrics: the store's and the projections' numbers in the Prometheus
 * text exposition format, for whatever scrapes them (node_exporter's
 * textfile collector, a cron job, a small HTTP wrapper). Only cheap
 * lookups: no count(*) of the log.
 */
#include "cli.h"

#include <esc/projection.h>

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
    "esc_projection_generation, esc_projection_checkpoint_position,\n"
    "esc_projection_lease_held (1 when a worker holds the partition),\n"
    "esc_projection_dead_letters, esc_projection_rebuilding (1 while a\n"
    "rebuild runs), esc_projection_rebuild_lag_events,\n"
    "esc_projection_foreign (1 when its Redis keys belong to another store),\n"
    "esc_projection_stopped (1 when it stopped on a failure; `esc\n"
    "projections` says why). esc_redis_reachable{schema} is 0 when Redis\n"
    "could not be read: the Redis-derived gauges are then left out.\n"
    "During a repartition the new layout's partitions also carry\n"
    "esc_projection_lease_held, esc_projection_rebuilding and\n"
    "esc_projection_rebuild_lag_events, labelled\n"
    "{schema,projection,partition,rebuild_layout=\"N\"}.\n"
    "\n"
    "--json is refused (exit 2): `esc stats --json` and\n"
    "`esc projections --json` give the same numbers as JSON.\n";

/* One projection gauge: its name, help and value of a partition. */
typedef struct gauge {
  const char *name;
  const char *help;
  double (*value)(const esc_partition_status *s);
  bool from_redis; /* not printed for a line whose Redis is unknown: a 0
                      there would read as "caught up" */
} gauge;

static double lag_events(const esc_partition_status *s) {
  return (double)s->lag_events;
}
static double lag_seconds(const esc_partition_status *s) {
  return s->lag_seconds;
}
static double generation(const esc_partition_status *s) {
  return (double)s->generation;
}
static double checkpoint(const esc_partition_status *s) {
  return (double)s->checkpoint.global;
}
static double lease_held(const esc_partition_status *s) {
  return s->lease_pid ? 1 : 0;
}
static double dead_letters(const esc_partition_status *s) {
  return (double)s->dead_letters;
}
static double rebuilding(const esc_partition_status *s) {
  return s->rebuilding ? 1 : 0;
}
static double rebuild_lag(const esc_partition_status *s) {
  return s->rebuilding ? (double)s->rebuild_lag_events : 0;
}
static double foreign(const esc_partition_status *s) {
  return s->foreign ? 1 : 0;
}
static double stopped(const esc_partition_status *s) {
  return strcmp(s->state, "stopped") == 0 ? 1 : 0;
}

static const gauge gauges[] = {
    {"esc_projection_lag_events",
     "Readable events of the partition's streams after its checkpoint.",
     lag_events, true},
    {"esc_projection_lag_seconds",
     "Age of the oldest event the partition has not applied.", lag_seconds,
     true},
    {"esc_projection_generation", "The generation queries read.", generation,
     true},
    {"esc_projection_checkpoint_position",
     "Global position the partition has applied up to.", checkpoint, true},
    {"esc_projection_lease_held", "1 when a worker holds the partition.",
     lease_held, false},
    {"esc_projection_dead_letters", "Parked events not yet resolved.",
     dead_letters, false},
    {"esc_projection_rebuilding", "1 while a rebuild runs.", rebuilding, true},
    {"esc_projection_rebuild_lag_events",
     "Events the rebuild has still to apply.", rebuild_lag, true},
    {"esc_projection_foreign",
     "1 when the projection's Redis keys belong to another event store.",
     foreign, true},
    {"esc_projection_stopped",
     "1 when the partition stopped on a failure (esc projections says why).",
     stopped, true},
};

static void header(const char *name, const char *help) {
  printf("# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void store_metrics(const char *schema, const esc_store_stats *s,
                          const esc_order_report *order) {
  double held = s->holder_pid && s->holder_age_s > 0 ? s->holder_age_s : 0;
  header("esc_store_head_position",
         "Global position subscribers can read up to.");
  printf("esc_store_head_position{schema=\"%s\"} %lld\n", schema,
         (long long)s->head.global);
  header("esc_store_max_position", "Highest global position stored.");
  printf("esc_store_max_position{schema=\"%s\"} %lld\n", schema,
         (long long)s->max_global);
  header("esc_store_horizon_held_seconds",
         "Age of the oldest transaction holding subscribers back; 0: none.");
  printf("esc_store_horizon_held_seconds{schema=\"%s\"} %.3f\n", schema, held);
  header("esc_store_order_inversions",
         "Events the last order check found read before their stream's "
         "previous version.");
  printf("esc_store_order_inversions{schema=\"%s\"} %lld\n", schema,
         (long long)order->inversions);
}

/* Gauges that lines of a repartition's new layout (rebuild_only) have. */
static bool of_rebuild_lines(const gauge *g) {
  return g->value == lease_held || g->value == rebuilding ||
         g->value == rebuild_lag;
}

/* Names are [a-z0-9_] (schema and projection rules): no label escaping.
 * A repartition's new layout numbers its partitions from 0 too: its lines
 * carry rebuild_layout, so that no series is printed twice. */
static void projection_metrics(const char *schema,
                               const esc_partition_status *st, size_t n) {
  for (size_t g = 0; g < sizeof gauges / sizeof gauges[0] && n > 0; g++) {
    header(gauges[g].name, gauges[g].help);
    for (size_t i = 0; i < n; i++) {
      char layout[40] = "";
      if (st[i].rebuild_only && !of_rebuild_lines(&gauges[g]))
        continue;
      if (gauges[g].from_redis && strcmp(st[i].state, "unknown") == 0)
        continue;
      if (st[i].rebuild_only)
        snprintf(layout, sizeof layout, ",rebuild_layout=\"%d\"",
                 st[i].rebuild_partitions);
      printf("%s{schema=\"%s\",projection=\"%s\",partition=\"%d\"%s} "
             "%.15g\n",
             gauges[g].name, schema, st[i].projection, st[i].partition, layout,
             gauges[g].value(&st[i]));
    }
  }
}

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
  esc_store_stats stats;
  esc_order_report order;
  esc_status rc = esc_store_health(store, &stats, &err);
  if (!rc)
    rc = esc_order_recorded(store, &order, &err);
  esc_store_free(store);
  if (rc)
    return cli_fail(ctx, &err);

  esc_partition_status *st = NULL;
  size_t n = 0;
  if (esc_projection_status(ctx->pg_url, ctx->redis_url, ctx->schema,
                            ctx->key_prefix, &st, &n, &err) != ESC_OK)
    return cli_fail(ctx, &err);
  store_metrics(ctx->schema, &stats, &order);
  /* Without Redis the projections' lines still come, from PostgreSQL;
   * this says why their Redis gauges are missing. */
  bool redis_down = n > 0 && strcmp(st[0].state, "unknown") == 0;
  header("esc_redis_reachable",
         "1 when the projections' Redis answered (0: their lag is unknown).");
  printf("esc_redis_reachable{schema=\"%s\"} %d\n", ctx->schema,
         redis_down ? 0 : 1);
  projection_metrics(ctx->schema, st, n);
  free(st);
  return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

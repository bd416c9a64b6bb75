/* A projection partition's status as JSON: one builder for
 * `esc projections --json` and the console's /api/projections. */
#include "cli.h"

#include <esc/projection.h>

#include <jansson.h>

json_t *cli_position_json(const esc_position *p) {
  char token[ESC_POSITION_TOKEN_MAX];
  if (p->tx_id == 0 && p->global == 0)
    return json_null();
  esc_position_format(p, token);
  return json_string(token);
}

json_t *cli_partition_status_json(const esc_partition_status *s) {
  json_t *o = json_object();
  json_object_set_new(o, "projection", cli_json_string(s->projection));
  json_object_set_new(o, "kind", json_string(esc_consumer_kind_name(s->kind)));
  json_object_set_new(o, "partition", json_integer(s->partition));
  json_object_set_new(o, "partitions", json_integer(s->partitions));
  json_object_set_new(o, "version", json_integer(s->version));
  json_object_set_new(o, "generation", json_integer(s->generation));
  json_object_set_new(o, "checkpoint", cli_position_json(&s->checkpoint));
  json_object_set_new(o, "lag_events", json_integer(s->lag_events));
  json_object_set_new(o, "lag_seconds", json_real(s->lag_seconds));
  json_object_set_new(o, "lag_estimated", json_boolean(s->lag_estimated));
  if (s->lease_pid) {
    json_t *l = json_object();
    json_object_set_new(l, "pid", json_integer(s->lease_pid));
    json_object_set_new(l, "application", cli_json_string(s->lease_holder));
    json_object_set_new(o, "lease", l);
  } else {
    json_object_set_new(o, "lease", json_null());
  }
  json_object_set_new(o, "dead_letters", json_integer(s->dead_letters));
  json_object_set_new(o, "foreign", json_boolean(s->foreign));
  json_object_set_new(o, "repartition_to",
                      s->repartition_to ? json_integer(s->repartition_to)
                                        : json_null());
  json_object_set_new(o, "rebuild_only", json_boolean(s->rebuild_only));
  json_object_set_new(o, "state", json_string(s->state));
  json_object_set_new(o, "reason",
                      s->reason[0] ? cli_json_string(s->reason) : json_null());
  if (s->rebuilding) {
    json_t *r = json_object();
    json_object_set_new(r, "generation", json_integer(s->rebuild_generation));
    json_object_set_new(r, "partitions", json_integer(s->rebuild_partitions));
    json_object_set_new(r, "checkpoint", cli_position_json(&s->rebuild_checkpoint));
    json_object_set_new(r, "lag_events", json_integer(s->rebuild_lag_events));
    json_object_set_new(o, "rebuild", r);
  } else {
    json_object_set_new(o, "rebuild", json_null());
  }
  return o;
}


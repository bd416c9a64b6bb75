/* The facts of `esc stats` as JSON: one builder for `esc stats --json`
 * and the console's /api/stats, so both say the same. */
#include "cli.h"

#include <jansson.h>

double cli_stats_holder_age(const esc_store_stats *s) {
  /* The age comes from two clocks (transaction start, now) and can come
   * out a hair below zero for a transaction that just began. */
  return s->holder_age_s < 0 ? 0 : s->holder_age_s;
}

static json_t *holder_json(const esc_store_stats *s) {
  if (s->holder_pid == 0)
    return json_null();
  json_t *h = json_object();
  json_object_set_new(h, "pid", json_integer(s->holder_pid));
  json_object_set_new(h, "age_s", json_real(cli_stats_holder_age(s)));
  json_object_set_new(h, "state", cli_json_string(s->holder_state));
  json_object_set_new(h, "application", cli_json_string(s->holder_app));
  json_object_set_new(h, "query", cli_json_string(s->holder_query));
  return h;
}

json_t *cli_stats_json(const char *schema, const esc_uuid *id,
                       const esc_store_stats *s) {
  char head[ESC_POSITION_TOKEN_MAX], identity[37];
  esc_position_format(&s->head, head);
  esc_uuid_format(id, identity);
  json_t *o = json_object();
  json_object_set_new(o, "schema", cli_json_string(schema));
  json_object_set_new(o, "identity", json_string(identity));
  json_object_set_new(o, "events", json_integer(s->events));
  json_object_set_new(o, "streams", json_integer(s->streams));
  json_object_set_new(o, "head", json_string(head));
  json_object_set_new(o, "max_global_position", json_integer(s->max_global));
  json_object_set_new(o, "horizon_holder", holder_json(s));
  return o;
}

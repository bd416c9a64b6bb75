/* Dead letters as `esc dead-letters` and the console's /api/dead-letters
 * both show and act on them: one JSON builder, one call for actions. */
#include "cli.h"

#include <esc/projection.h>

#include <jansson.h>

json_t *cli_dead_letter_json(const esc_dead_letter *d) {
  char id[37], when[32];
  esc_uuid_format(&d->event_id, id);
  cli_format_time(d->parked_at_us, when);
  json_t *o = json_object();
  json_object_set_new(o, "id", json_integer(d->id));
  json_object_set_new(o, "projection", cli_json_string(d->projection));
  json_object_set_new(o, "partition", json_integer(d->partition));
  json_object_set_new(o, "position", cli_position_json(&d->position));
  json_object_set_new(o, "event_id", json_string(id));
  json_object_set_new(o, "stream", cli_json_string(d->stream_id));
  json_object_set_new(o, "version", json_integer(d->stream_version));
  json_object_set_new(o, "type", cli_json_string(d->event_type));
  json_object_set_new(o, "attempts", json_integer(d->attempts));
  json_object_set_new(o, "commands_applied", json_integer(d->commands_applied));
  json_object_set_new(o, "state", cli_json_string(d->state));
  json_object_set_new(o, "parked_at", json_string(when));
  json_object_set_new(o, "error", cli_json_string(d->error));
  return o;
}

esc_status cli_dead_letters_act(const cli_ctx *ctx, bool retry,
                                const esc_dead_letter_filter *filter,
                                bool dry_run, esc_dead_letter **out,
                                size_t *count, esc_error *err) {
  return esc_dead_letters_act(ctx->pg_url, ctx->schema,
                              retry ? ESC_DEAD_LETTER_RETRY
                                    : ESC_DEAD_LETTER_DISCARD,
                              filter, dry_run, out, count, err);
}

/*
 * Events as JSON: a struct through its type's encoder, a stored event
 * through the registry (decoded and upcast first), so what the CLI and
 * the test kit show is the current shape a program reads.
 */
#include <esc/event.h>

#include <stdlib.h>

esc_status esc_event_to_json(const esc_event_type *type, const void *event,
                             char **out, esc_error *err) {
  void *data = NULL;
  size_t len = 0;
  if (out)
    *out = NULL;
  if (!out)
    return esc_error_set(err, ESC_EINVAL, "event to JSON: out is NULL");
  esc_status st = esc_event_encode(type, event, &data, &len, err);
  if (st == ESC_OK)
    st = esc_msgpack_to_json(data, len, NULL, out, err);
  free(data);
  return st;
}

esc_status esc_event_render_json(const esc_event_registry *reg,
                                 const esc_recorded_event *rec, char **out,
                                 esc_error *err) {
  if (out)
    *out = NULL;
  if (!reg || !rec || !out)
    return esc_error_set(err, ESC_EINVAL,
                         "event render: registry, event or out is NULL");
  const esc_event_type *type = esc_event_registry_find(reg, rec->type);
  if (!type)
    return esc_error_set(err, ESC_ENOTFOUND, "unknown event type \"%.80s\"",
                         rec->type ? rec->type : "(null)");
  msgpack_zone zone;
  void *event = calloc(1, type->size);
  if (!event || !msgpack_zone_init(&zone, 2048)) {
    free(event);
    return esc_error_set(err, ESC_ENOMEM, "event render: out of memory");
  }
  esc_status st = esc_event_decode(reg, rec, &zone, event, &type, err);
  if (st == ESC_OK)
    st = esc_event_to_json(type, event, out, err);
  msgpack_zone_destroy(&zone);
  free(event);
  return st;
}

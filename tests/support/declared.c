/* The declared test event (see declared.h). */
#include "declared.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static const esc_field tag_table[] = {
    ESC_FIELD_STR(sink_tag, name, "name", 7, ESC_REQUIRED),
    ESC_FIELD_I64(sink_tag, weight, "weight", ESC_REQUIRED), ESC_FIELD_END};

static const esc_field item_table[] = {
    ESC_FIELD_STR(sink_item, sku, "sku", 15, ESC_REQUIRED),
    ESC_FIELD_BOOL(sink_item, gift, "gift", ESC_OPTIONAL),
    ESC_FIELD_ARRAY(sink_item, tags, tag_count, "tags", tag_table,
                    ESC_OPTIONAL),
    ESC_FIELD_END};

static const esc_field sink_table[] = {
    ESC_FIELD_STR(sink_event, text, "text", 31, ESC_REQUIRED),
    ESC_FIELD_STR(sink_event, note, "note", 8, ESC_OPTIONAL),
    ESC_FIELD_I64(sink_event, n, "n", ESC_REQUIRED),
    ESC_FIELD_I64(sink_event, opt_n, "opt_n", ESC_OPTIONAL),
    ESC_FIELD_BOOL(sink_event, flag, "flag", ESC_REQUIRED),
    ESC_FIELD_UUID(sink_event, id, "id", ESC_REQUIRED),
    ESC_FIELD_UUID(sink_event, ref, "ref", ESC_OPTIONAL),
    ESC_FIELD_TIME(sink_event, at, "at", ESC_REQUIRED),
    ESC_FIELD_BYTES(sink_event, blob, blob_len, "blob", 16, ESC_OPTIONAL),
    ESC_FIELD_ARRAY(sink_event, items, item_count, "items", item_table,
                    ESC_REQUIRED),
    ESC_FIELD_END};

const esc_fields sink_event_fields = {"SinkEvent", sizeof(sink_event),
                                      sink_table};

ESC_EVENT_TYPE(SINK_EVENT, "SinkEvent", 1, sink_event, sink_table, NULL);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static esc_event_registry *registry;

static void build(void) {
  esc_error err = ESC_ERROR_INIT;
  registry = esc_event_registry_new(&err);
  if (!registry || esc_event_registry_add(registry, &SINK_EVENT, &err)) {
    fprintf(stderr, "declared: %s\n", err.msg);
    abort();
  }
}

const esc_event_registry *sink_events(void) {
  pthread_once(&once, build);
  return registry;
}

esc_status sink_decode(const void *data, size_t len, msgpack_zone *zone,
                       sink_event *out, esc_error *err) {
  esc_recorded_event rec = {.stream_id = "sink-1",
                            .stream_version = 3,
                            .type = "SinkEvent",
                            .schema_version = 1,
                            .data = data,
                            .data_len = len};
  const esc_event_type *type = NULL;
  return esc_event_decode(sink_events(), &rec, zone, out, &type, err);
}

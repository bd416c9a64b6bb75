/*
 * A declared event type with every kind of field, two levels of nested
 * arrays and optional fields: for the field codec's unit tests and its
 * fuzz target (fuzz/fuzz_fields.c).
 */
#ifndef ESC_TEST_DECLARED_H
#define ESC_TEST_DECLARED_H

#include <esc/event.h>

typedef struct sink_tag {
  char name[8]; /* at most 7 */
  int64_t weight;
} sink_tag;

typedef struct sink_item {
  char sku[16]; /* at most 15 */
  bool gift;    /* optional */
  sink_tag tags[3];
  int tag_count; /* optional */
} sink_item;

typedef struct sink_event {
  char text[32]; /* at most 31 */
  char note[16]; /* optional, at most 8: below its array */
  int64_t n;
  int64_t opt_n; /* optional */
  bool flag;
  esc_uuid id;
  esc_uuid ref;     /* optional */
  int64_t at;       /* a time */
  const void *blob; /* optional, at most 16 bytes */
  size_t blob_len;
  sink_item items[4];
  int item_count;
} sink_event;

/* "SinkEvent" v1, its fields, and a registry holding it. */
extern const esc_event_type SINK_EVENT;
extern const esc_fields sink_event_fields;
const esc_event_registry *sink_events(void);

/* Decodes data as a stored SinkEvent ("sink-1", version 3) into *out
 * through sink_events(); bytes fields point into data. */
esc_status sink_decode(const void *data, size_t len, msgpack_zone *zone,
                       sink_event *out, esc_error *err);

#endif

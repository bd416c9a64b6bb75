/*
 * The eight array parameters of <schema>.append_group() and
 * append_atomic() (migrations 18 and 20), in PostgreSQL's binary format:
 * streams, expected versions and event counts, one element per request;
 * then ids, types, schema versions, data and metadata, the events of every
 * request in request order.
 */
#include "store_int.h"

#include <string.h>

enum {
  OID_INT4 = 23,
  OID_INT8 = 20,
  OID_TEXT = 25,
  OID_BYTEA = 17,
  OID_UUID = 2950
};
enum { ARRAY_HEADER = 20, ELEM_HEADER = 4 };

static size_t flush_params_size(const esc_append_request *const *reqs,
                                size_t count) {
  size_t size = ESC__APPEND_ARRAYS * ARRAY_HEADER;
  for (size_t i = 0; i < count; i++) {
    size += 3 * ELEM_HEADER + strlen(reqs[i]->stream_id) + 8 + 4;
    for (size_t k = 0; k < reqs[i]->n; k++) {
      const esc_event_data *e = &reqs[i]->events[k];
      size += 5 * ELEM_HEADER + 16 + strlen(e->type) + 4 + e->data_len +
              e->metadata_len;
    }
  }
  return size;
}

/* One array of the request fields, one element per request. */
static void put_request_array(struct esc__buf *b, int field,
                              const esc_append_request *const *reqs,
                              size_t count) {
  static const uint32_t oids[] = {OID_TEXT, OID_INT8, OID_INT4};
  esc__put_array_header(b, oids[field], count, false);
  for (size_t i = 0; i < count; i++) {
    unsigned char v[8];
    if (field == 0) {
      esc__put_array_elem(b, reqs[i]->stream_id, strlen(reqs[i]->stream_id));
    } else if (field == 1) {
      esc__put_be64(v, (uint64_t)reqs[i]->expected);
      esc__put_array_elem(b, v, 8);
    } else {
      esc__put_be32(v, (uint32_t)reqs[i]->n);
      esc__put_array_elem(b, v, 4);
    }
  }
}

/* One array of an event field, the events of every request in order. */
static void put_event_array(struct esc__buf *b, int field,
                            const esc_append_request *const *reqs, size_t count,
                            size_t events) {
  static const uint32_t oids[] = {OID_UUID, OID_TEXT, OID_INT4, OID_BYTEA,
                                  OID_BYTEA};
  bool hasnull = false;
  for (size_t i = 0; field == 4 && i < count; i++)
    for (size_t k = 0; k < reqs[i]->n; k++)
      hasnull |= reqs[i]->events[k].metadata == NULL;
  esc__put_array_header(b, oids[field], events, hasnull);
  for (size_t i = 0; i < count; i++)
    for (size_t k = 0; k < reqs[i]->n; k++) {
      const esc_event_data *e = &reqs[i]->events[k];
      unsigned char v[4];
      if (field == 0)
        esc__put_array_elem(b, e->id.bytes, 16);
      else if (field == 1)
        esc__put_array_elem(b, e->type, strlen(e->type));
      else if (field == 2) {
        esc__put_be32(v, (uint32_t)e->schema_version);
        esc__put_array_elem(b, v, 4);
      } else if (field == 3)
        esc__put_array_elem(b, e->data, e->data_len);
      else
        esc__put_array_elem(b, e->metadata, e->metadata_len);
    }
}

bool esc__append_arrays(struct esc__buf *b,
                        const esc_append_request *const *reqs, size_t count,
                        const char **values, int *lengths) {
  size_t offsets[ESC__APPEND_ARRAYS + 1], events = 0;
  b->len = 0;
  if (!esc__buf_reserve(b, flush_params_size(reqs, count)))
    return false;
  for (size_t i = 0; i < count; i++)
    events += reqs[i]->n;
  for (int f = 0; f < ESC__APPEND_ARRAYS; f++) {
    offsets[f] = b->len;
    if (f < 3)
      put_request_array(b, f, reqs, count);
    else
      put_event_array(b, f - 3, reqs, count, events);
  }
  offsets[ESC__APPEND_ARRAYS] = b->len;
  for (int f = 0; f < ESC__APPEND_ARRAYS; f++) {
    values[f] = (const char *)b->data + offsets[f];
    lengths[f] = (int)(offsets[f + 1] - offsets[f]);
  }
  return true;
}

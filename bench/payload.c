/*
 * Event payloads for the benchmarks: what an order domain's events look
 * like, sized so that every event's data is exactly BENCH_DATA_LEN bytes.
 *
 * The data map is written by hand (a handful of msgpack headers) because
 * the bench does not link msgpack-c; metadata comes from
 * esc_metadata_encode, as the command runtime would produce it.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * A minimal msgpack writer over a fixed buffer
 * ------------------------------------------------------------------------ */

struct mp_buf {
  unsigned char *p;
  size_t len;
  size_t cap;
  bool overflow;
};

static void mp_bytes(struct mp_buf *b, const void *src, size_t n) {
  if (b->overflow || n > b->cap - b->len) {
    b->overflow = true;
    return;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void mp_byte(struct mp_buf *b, unsigned v) {
  unsigned char c = (unsigned char)v;
  mp_bytes(b, &c, 1);
}

static void mp_be(struct mp_buf *b, uint64_t v, unsigned width) {
  unsigned char out[8];
  for (unsigned i = 0; i < width; i++)
    out[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
  mp_bytes(b, out, width);
}

static void mp_str_header(struct mp_buf *b, size_t n) {
  if (n < 32) {
    mp_byte(b, 0xa0u | (unsigned)n);
  } else if (n < 256) {
    mp_byte(b, 0xd9);
    mp_byte(b, (unsigned)n);
  } else {
    mp_byte(b, 0xda);
    mp_be(b, n, 2);
  }
}

static void mp_str(struct mp_buf *b, const char *s) {
  size_t n = strlen(s);
  mp_str_header(b, n);
  mp_bytes(b, s, n);
}

/* Always the 9-byte form, so the encoded size does not depend on v. */
static void mp_u64(struct mp_buf *b, uint64_t v) {
  mp_byte(b, 0xcf);
  mp_be(b, v, 8);
}

static void mp_u32(struct mp_buf *b, uint32_t v) {
  mp_byte(b, 0xce);
  mp_be(b, v, 4);
}

/*
 * {"stream": s, "seq": n, "sku": "...", "qty": 3, "price_cents": 129900,
 *  "note": "xxx..."} with the note padding the map to exactly `size` bytes.
 */
static int encode_data(unsigned char *out, size_t size, const char *stream,
                       uint64_t seq) {
  struct mp_buf b = {out, 0, size, false};
  mp_byte(&b, 0x86); /* fixmap, 6 entries */
  mp_str(&b, "stream");
  mp_str(&b, stream);
  mp_str(&b, "seq");
  mp_u64(&b, seq);
  mp_str(&b, "sku");
  mp_str(&b, "SKU-000123-BLUE-XL");
  mp_str(&b, "qty");
  mp_byte(&b, 3); /* positive fixint */
  mp_str(&b, "price_cents");
  mp_u32(&b, 129900);
  mp_str(&b, "note");
  if (b.overflow || b.len + 1 > size)
    return -1;
  size_t pad = size - b.len - 1;
  if (pad >= 32)
    pad--; /* str8 needs a second header byte */
  mp_str_header(&b, pad);
  while (pad-- > 0)
    mp_byte(&b, 'x');
  return b.overflow || b.len != size ? -1 : 0;
}

/* ------------------------------------------------------------------------
 * Payload
 * ------------------------------------------------------------------------ */

int bench_payload_init(bench_payload *p, size_t n, int writer, char *err,
                       size_t errlen) {
  memset(p, 0, sizeof(*p));
  p->events = calloc(n, sizeof(*p->events));
  p->data = malloc(n * BENCH_DATA_LEN);
  if (!p->events || !p->data) {
    bench_payload_release(p);
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  p->n = n;
  snprintf(p->actor, sizeof(p->actor), "bench-writer-%d", writer);
  return 0;
}

static int encode_metadata(bench_payload *p, char *err, size_t errlen) {
  esc_metadata m = ESC_METADATA_INIT;
  esc_error e = ESC_ERROR_INIT;

  m.correlation_id = esc_uuid_v4();
  m.causation_id = esc_uuid_v4();
  m.actor = p->actor;
  m.time_us = esc_now_us();
  free(p->metadata);
  p->metadata = NULL;
  if (esc_metadata_encode(&m, &p->metadata, &p->metadata_len, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc_metadata_encode: %s", e.msg);
    return -1;
  }
  return 0;
}

int bench_payload_fill(bench_payload *p, const char *stream_id, char *err,
                       size_t errlen) {
  if (encode_metadata(p, err, errlen) != 0)
    return -1;
  for (size_t i = 0; i < p->n; i++) {
    esc_event_data *ev = &p->events[i];
    unsigned char *data = p->data + i * BENCH_DATA_LEN;
    if (encode_data(data, BENCH_DATA_LEN, stream_id, p->seq++) != 0) {
      bench_errf(err, errlen, "stream id %s too long for the payload",
                 stream_id);
      return -1;
    }
    ev->id = esc_uuid_v4();
    ev->type = BENCH_EVENT_TYPE;
    ev->schema_version = 1;
    ev->data = data;
    ev->data_len = BENCH_DATA_LEN;
    ev->metadata = p->metadata;
    ev->metadata_len = p->metadata_len;
  }
  return 0;
}

void bench_payload_release(bench_payload *p) {
  if (!p)
    return;
  free(p->events);
  free(p->data);
  free(p->metadata);
  memset(p, 0, sizeof(*p));
}

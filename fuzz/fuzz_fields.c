/*
 * Arbitrary bytes as the stored data of a declared event type with every
 * kind of field and nested arrays (tests/support/declared.c): decoding
 * gives OK or EINVAL, never a crash; what decodes encodes again (a decoded
 * struct always passes the table's checks) and is a fixed point: decoding
 * that and encoding it once more gives the same bytes.
 */
#include "fuzz.h"

#include "declared.h"

#include <stdlib.h>
#include <string.h>

/* Decodes data as a stored SinkEvent, then encodes the struct again. */
static esc_status round_trip(const void *data, size_t len, void **out,
                             size_t *out_len) {
  esc_error err = ESC_ERROR_INIT;
  sink_event e;
  msgpack_zone zone;
  if (!msgpack_zone_init(&zone, 1024))
    abort();
  esc_status st = sink_decode(data, len, &zone, &e, &err);
  if (st != ESC_OK && st != ESC_EINVAL)
    abort();
  if (st == ESC_EINVAL && err.msg[0] == '\0')
    abort(); /* refused without saying why */
  if (st == ESC_OK &&
      esc_event_encode(&SINK_EVENT, &e, out, out_len, &err) != ESC_OK)
    abort(); /* decoded what the checks refuse */
  msgpack_zone_destroy(&zone);
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  void *once = NULL, *twice = NULL;
  size_t once_len = 0, twice_len = 0;
  if (round_trip(data, size, &once, &once_len) == ESC_OK) {
    if (round_trip(once, once_len, &twice, &twice_len) != ESC_OK)
      abort();
    if (twice_len != once_len || memcmp(once, twice, once_len) != 0)
      abort();
  }
  free(once);
  free(twice);
  return 0;
}

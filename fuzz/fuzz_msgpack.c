/*
 * Arbitrary bytes as stored event data or metadata: the checker, the JSON
 * renderer (what `esc read` prints) and the metadata decoder must give OK
 * or EINVAL, never crash; what renders must read back as JSON.
 */
#include "fuzz.h"

#include <stdlib.h>

#include <esc/store.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  esc_error err = ESC_ERROR_INIT;
  esc_status checked = esc_msgpack_check(data, size, NULL, &err);
  if (checked != ESC_OK && checked != ESC_EINVAL)
    abort();
  char *json = NULL;
  if (esc_msgpack_to_json(data, size, NULL, &json, &err) == ESC_OK) {
    if (checked != ESC_OK)
      abort(); /* rendered what the checker refused */
    void *back = NULL;
    size_t back_len = 0;
    esc_json_to_msgpack(json, &back, &back_len, &err);
    free(back);
  }
  free(json);
  esc_metadata m;
  char actor[16];
  esc_metadata_decode(data, size, &m, actor, sizeof actor, &err);
  return 0;
}

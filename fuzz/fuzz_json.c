/*
 * Arbitrary text as the JSON a user hands `esc append` (and the library's
 * esc_json_to_msgpack): parsed, encoded, checked and rendered back.
 */
#include "fuzz.h"

#include <stdlib.h>

#include <esc/store.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstring(data, size);
  void *mp = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  if (esc_json_to_msgpack(text, &mp, &len, &err) == ESC_OK) {
    if (esc_msgpack_check(mp, len, NULL, &err) != ESC_OK)
      abort(); /* what esc encoded it must accept */
    char *json = NULL;
    esc_msgpack_to_json(mp, len, NULL, &json, &err);
    free(json);
  }
  free(mp);
  free(text);
  return 0;
}

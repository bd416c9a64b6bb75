/*
 * Arbitrary text as the small tokens users and servers hand esc: position
 * tokens ("812/57", from --from and checkpoints in Redis) and event ids.
 * A token that parses must format to a token that parses to the same
 * position (leading zeros are accepted, so the text may differ).
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <esc/store.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstring(data, size);
  esc_error err = ESC_ERROR_INIT;
  esc_position p;
  if (esc_position_parse(text, &p, &err) == ESC_OK) {
    char back[ESC_POSITION_TOKEN_MAX];
    esc_position q;
    esc_position_format(&p, back);
    if (esc_position_parse(back, &q, &err) != ESC_OK ||
        esc_position_cmp(&p, &q) != 0)
      abort();
  }
  esc_uuid id;
  if (esc_uuid_parse(text, &id, &err) == ESC_OK) {
    char back[37];
    esc_uuid_format(&id, back);
    if (strcasecmp(back, text) != 0)
      abort();
  }
  free(text);
  return 0;
}

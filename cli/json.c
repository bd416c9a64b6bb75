/*
 * JSON output helpers on top of jansson: strings that are always valid
 * UTF-8, and one compact object per line.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *cli_json_string(const char *s) {
  if (!s)
    return json_null();
  size_t len = strlen(s);
  /* Each bad byte becomes the 3-byte U+FFFD. */
  char *clean = malloc(len * 3 + 1);
  if (!clean)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    size_t n = esc_utf8_char_len(s + i);
    if (n == 0) {
      memcpy(clean + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(clean + o, s + i, n);
    o += n;
    i += n;
  }
  clean[o] = '\0';
  json_t *str = json_stringn(clean, o);
  free(clean);
  return str;
}

bool cli_json_emit(json_t *obj) {
  if (!obj)
    return false;
  char *text = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(obj);
  if (!text)
    return false;
  bool ok = puts(text) >= 0;
  free(text);
  return ok;
}

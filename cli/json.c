/*
 * JSON output helpers on top of jansson: strings that are always valid
 * UTF-8, and one compact object per line.
 */
#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes
 * there are not one (overlong forms, surrogates, > U+10FFFF included). */
static size_t utf8_seq_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4)
    return 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
      (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
    return 0;
  return n;
}

json_t *cli_json_string(const char *s) {
  if (!s)
    return json_null();
  size_t len = strlen(s);
  /* Each bad byte becomes the 3-byte U+FFFD. */
  char *clean = malloc(len * 3 + 1);
  if (!clean)
    return NULL;
  size_t o = 0;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq_len(p + i);
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

/*
 * Redis key names of a projection (the layout is in projection_int.h) and
 * the projection name rule they rest on. Names are [a-z0-9_]: no glob
 * characters (SCAN MATCH patterns stay literal) and no ':' (the separator).
 */
#include "projection_int.h"
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool name_byte_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool esc__projection_name_valid(const char *name, esc_error *err) {
  if (!name) {
    esc_error_set(err, ESC_EINVAL, "projection name is NULL");
    return false;
  }
  size_t len = strlen(name);
  if (len == 0) {
    esc_error_set(err, ESC_EINVAL, "projection name is empty");
    return false;
  }
  if (len > ESC__PROJECTION_NAME_MAX) {
    esc_error_set(err, ESC_EINVAL,
                  "projection name is %zu bytes; the limit is %d", len,
                  ESC__PROJECTION_NAME_MAX);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (name_byte_ok(c))
      continue;
    char q[ESC__QUOTE_SIZE], b[8];
    esc__quote(q, sizeof q, name);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
      snprintf(b, sizeof b, "'%c'", c);
    else
      snprintf(b, sizeof b, "\\x%02x", c);
    esc_error_set(err, ESC_EINVAL,
                  "projection name \"%s\": byte %zu (%s) is not allowed; "
                  "use [a-z0-9_]",
                  q, i + 1, b);
    return false;
  }
  esc__clear(err);
  return true;
}

void esc__key_generation(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:generation", proj);
}

void esc__key_version(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:version", proj);
}

void esc__key_partitions(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:partitions", proj);
}

void esc__key_owner(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:owner", proj);
}

void esc__key_checkpoint(char *out, size_t size, const char *proj,
                         int64_t generation, int partition) {
  snprintf(out, size, "%s:g%" PRId64 ":p%d:checkpoint", proj, generation,
           partition);
}

void esc__key_stopped(char *out, size_t size, const char *proj,
                      int64_t generation, int partition) {
  snprintf(out, size, "%s:g%" PRId64 ":p%d:stopped", proj, generation,
           partition);
}

void esc__key_prefix(char *out, size_t size, const char *proj,
                     int64_t generation) {
  snprintf(out, size, "%s:g%" PRId64 ":", proj, generation);
}

void esc__key_rebuild(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:rebuild", proj);
}

void esc__key_rebuild_ready(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s:rebuild:ready", proj);
}

void esc__key_dead_letter_guard(char *out, size_t size, const char *proj,
                                int64_t generation, const esc_uuid *event) {
  char id[37];
  esc_uuid_format(event, id);
  snprintf(out, size, "%s:g%" PRId64 ":dl:%s", proj, generation, id);
}

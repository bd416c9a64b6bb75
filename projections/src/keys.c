/*
 * Redis key names of a projection (the layout is in projection_int.h), the
 * store's namespace they start with, and the name rules they rest on.
 * Projection names are [a-z0-9_] and prefixes [A-Za-z0-9_.-]: no glob
 * characters (SCAN MATCH patterns stay literal) and no ':' (the separator),
 * so one namespace or projection can never be the start of another's keys.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_byte_ok(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool prefix_byte_ok(unsigned char c) {
  return name_byte_ok(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-';
}

/* Checks text ("what" in messages) against a byte rule and a length; the
 * error names the first bad byte and where it is. */
static bool text_valid(const char *what, const char *text, size_t max,
                       bool (*ok)(unsigned char), const char *rule,
                       esc_error *err) {
  if (!text) {
    esc_error_set(err, ESC_EINVAL, "%s is NULL", what);
    return false;
  }
  size_t len = strlen(text);
  if (len == 0) {
    esc_error_set(err, ESC_EINVAL, "%s is empty", what);
    return false;
  }
  if (len > max) {
    esc_error_set(err, ESC_EINVAL, "%s is %zu bytes; the limit is %zu", what,
                  len, max);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (ok(c))
      continue;
    char q[ESC__QUOTE_SIZE], b[8];
    esc__quote(q, sizeof q, text);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
      snprintf(b, sizeof b, "'%c'", c);
    else
      snprintf(b, sizeof b, "\\x%02x", c);
    esc_error_set(err, ESC_EINVAL,
                  "%s \"%s\": byte %zu (%s) is not allowed; use %s", what, q,
                  i + 1, b, rule);
    return false;
  }
  esc__clear(err);
  return true;
}

bool esc__projection_name_valid(const char *name, esc_error *err) {
  return text_valid("projection name", name, ESC__PROJECTION_NAME_MAX,
                    name_byte_ok, "[a-z0-9_]", err);
}

bool esc__key_prefix_valid(const char *prefix, esc_error *err) {
  return text_valid("key prefix", prefix, ESC_KEY_PREFIX_MAX, prefix_byte_ok,
                    "[A-Za-z0-9_.-]", err);
}

/* ------------------------------------------------------- namespace --- */

const char *esc__key_prefix_configured(const char *key_prefix) {
  if (key_prefix)
    return key_prefix;
  const char *env = getenv("ESC_KEY_PREFIX");
  return env && *env ? env : NULL;
}

esc_status esc__namespace(char *out, size_t size, const char *configured,
                          const char *identity, esc_error *err) {
  if (configured && !esc__key_prefix_valid(configured, err))
    return ESC_EINVAL;
  if (!configured && (!identity || !*identity))
    return esc_error_set(err, ESC_EINVAL,
                         "key namespace: the store's identity is not known");
  /* "esc-": a '-' no projection name has, so these keys can never be
   * mistaken for those of a release before namespaces ("P:..."). */
  int n = configured ? snprintf(out, size, "%s", configured)
                     : snprintf(out, size, "esc-%s", identity);
  if (n < 0 || (size_t)n >= size)
    return esc_error_set(err, ESC_EINVAL, "key namespace: longer than %zu",
                         size - 1);
  esc__clear(err);
  return ESC_OK;
}

void esc__key_base(char *out, size_t size, const char *ns, const char *proj) {
  snprintf(out, size, "%s:%s", ns, proj);
}

/* ------------------------------------------------------------ keys --- */

void esc__key_generation(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:generation", base);
}

void esc__key_version(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:version", base);
}

void esc__key_partitions(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:partitions", base);
}

void esc__key_owner(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:owner", base);
}

void esc__key_checkpoint(char *out, size_t size, const char *base,
                         int64_t generation, int partition) {
  snprintf(out, size, "%s:g%" PRId64 ":p%d:checkpoint", base, generation,
           partition);
}

void esc__key_stopped(char *out, size_t size, const char *base,
                      int64_t generation, int partition) {
  snprintf(out, size, "%s:g%" PRId64 ":p%d:stopped", base, generation,
           partition);
}

void esc__key_prefix(char *out, size_t size, const char *base,
                     int64_t generation) {
  snprintf(out, size, "%s:g%" PRId64 ":", base, generation);
}

void esc__key_rebuild(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:rebuild", base);
}

void esc__key_rebuild_ready(char *out, size_t size, const char *base) {
  snprintf(out, size, "%s:rebuild:ready", base);
}

void esc__key_dead_letter_guard(char *out, size_t size, const char *base,
                                int64_t generation, const esc_uuid *event) {
  char id[37];
  esc_uuid_format(event, id);
  snprintf(out, size, "%s:g%" PRId64 ":dl:%s", base, generation, id);
}

/* ------------------------------------------------ before namespaces --- */

/* A release before namespaces named projection P's keys with the bare
 * name as their base: "P:generation", "P:g<G>:...". */
void esc__key_legacy_base(char *out, size_t size, const char *proj) {
  snprintf(out, size, "%s", proj);
}

bool esc__key_in_a_generation(const char *key, const char *base) {
  size_t n = strlen(base);
  if (strncmp(key, base, n) != 0 || strncmp(key + n, ":g", 2) != 0)
    return false;
  const char *p = key + n + 2;
  if (*p < '0' || *p > '9')
    return false;
  while (*p >= '0' && *p <= '9')
    p++;
  return *p == ':';
}

/* ------------------------------------------------------------ public --- */

esc_status esc_key_namespace(esc_store *store, const char *key_prefix,
                             char *out, size_t size, esc_error *err) {
  const char *configured = esc__key_prefix_configured(key_prefix);
  char identity[37] = "";
  if (!configured) {
    esc_uuid id;
    esc_status rc = store ? esc_store_identity(store, &id, err)
                          : esc_error_set(err, ESC_EINVAL,
                                          "key namespace: no store and no "
                                          "key prefix");
    if (rc)
      return rc;
    esc_uuid_format(&id, identity);
  }
  return esc__namespace(out, size, configured, identity, err);
}

/* Identifiers and positions: UUIDs (libuuid), position tokens, the clock. */
#include "store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

/* ------------------------------------------------------------------------
 * UUIDs
 * ------------------------------------------------------------------------ */

esc_uuid esc_uuid_v4(void) {
  esc_uuid id;
  uuid_generate_random(id.bytes);
  return id;
}

esc_uuid esc_uuid_v5(const esc_uuid *ns, const void *name, size_t len) {
  static const esc_uuid nil_ns = {{0}};
  esc_uuid id;
  if (!ns)
    ns = &nil_ns;
  if (!name)
    name = "", len = 0;
  uuid_generate_sha1(id.bytes, ns->bytes, (const char *)name, len);
  return id;
}

bool esc_uuid_is_nil(const esc_uuid *id) {
  for (size_t i = 0; i < sizeof id->bytes; i++)
    if (id->bytes[i])
      return false;
  return true;
}

void esc_uuid_format(const esc_uuid *id, char out[37]) {
  uuid_unparse_lower(id->bytes, out);
}

/* Hyphens sit at these offsets of the 36-character form. */
static bool is_dash_offset(size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

/* Strict: exactly 8-4-4-4-12 hex digits (either case), nothing around. */
esc_status esc_uuid_parse(const char *text, esc_uuid *out, esc_error *err) {
  char q[ESC__QUOTE_SIZE];
  if (!text)
    return esc__fail(err, ESC_EINVAL, "uuid is NULL");
  esc__quote(q, sizeof q, text);
  size_t len = strnlen(text, 37);
  if (len != 36)
    return esc__fail(err, ESC_EINVAL,
                     "uuid \"%s\": %s%zu characters; expected 36 like "
                     "123e4567-e89b-12d3-a456-426614174000",
                     q, len > 36 ? "more than " : "", len > 36 ? 36 : len);
  /* Checked here for messages that say where; libuuid converts. */
  for (size_t i = 0; i < 36; i++) {
    if (is_dash_offset(i) && text[i] != '-')
      return esc__fail(err, ESC_EINVAL,
                       "uuid \"%s\": character %zu should be '-'", q, i + 1);
    if (!is_dash_offset(i) && esc__hex_value(text[i]) < 0)
      return esc__fail(err, ESC_EINVAL,
                       "uuid \"%s\": character %zu is not a hex digit", q,
                       i + 1);
  }
  if (uuid_parse(text, out->bytes) != 0)
    return esc__fail(err, ESC_EINVAL, "uuid \"%s\": not a UUID", q);
  esc__clear(err);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Positions
 * ------------------------------------------------------------------------ */

int esc_position_cmp(const esc_position *a, const esc_position *b) {
  if (a->tx_id != b->tx_id)
    return a->tx_id < b->tx_id ? -1 : 1;
  if (a->global != b->global)
    return a->global < b->global ? -1 : 1;
  return 0;
}

void esc_position_format(const esc_position *p,
                         char out[ESC_POSITION_TOKEN_MAX]) {
  snprintf(out, ESC_POSITION_TOKEN_MAX, "%" PRIu64 "/%" PRId64, p->tx_id,
           p->global);
}

enum decimal_result { DECIMAL_OK, DECIMAL_NONE, DECIMAL_OVERFLOW };

/* Reads one unsigned decimal number of at most max from *s and advances *s
 * past it. */
static enum decimal_result parse_decimal(const char **s, uint64_t max,
                                         uint64_t *out) {
  const char *p = *s;
  uint64_t v = 0;
  if (*p < '0' || *p > '9')
    return DECIMAL_NONE;
  for (; *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (max - d) / 10)
      return DECIMAL_OVERFLOW;
    v = v * 10 + d;
  }
  *s = p;
  *out = v;
  return DECIMAL_OK;
}

/* Strict: "<tx>/<global>", both unsigned decimal, tx <= UINT64_MAX,
 * global <= INT64_MAX; no signs, spaces or anything else. */
esc_status esc_position_parse(const char *text, esc_position *out,
                              esc_error *err) {
  char q[ESC__QUOTE_SIZE];
  const char *why = "expected <tx>/<global>, two unsigned decimal numbers "
                    "like \"7731/42\"";
  if (!text)
    return esc__fail(err, ESC_EINVAL, "position is NULL");
  const char *p = text;
  uint64_t tx, global;
  enum decimal_result r = parse_decimal(&p, UINT64_MAX, &tx);
  if (r == DECIMAL_OVERFLOW)
    why = "the transaction id is above 18446744073709551615";
  if (r != DECIMAL_OK || *p++ != '/')
    goto bad;
  r = parse_decimal(&p, INT64_MAX, &global);
  if (r == DECIMAL_OVERFLOW)
    why = "the global position is above 9223372036854775807";
  if (r != DECIMAL_OK || *p != '\0')
    goto bad;
  out->tx_id = tx;
  out->global = (int64_t)global;
  esc__clear(err);
  return ESC_OK;
bad:
  esc__quote(q, sizeof q, text);
  return esc__fail(err, ESC_EINVAL, "position \"%s\": %s", q, why);
}

/* ------------------------------------------------------------------------
 * Clock
 * ------------------------------------------------------------------------ */

int64_t esc_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Names: stream ids, categories and event types. The rules live in
 * <esc/store.h>; messages say what is wrong and at which byte (counting
 * from 1), e.g.
 *   stream id "ord er-1": byte 4 (' ') is not allowed; use [A-Za-z0-9_.:@+=/-]
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

/* One byte as a message shows it: 'c' when printable, else \xNN. */
static void show_byte(char out[8], unsigned char c) {
  if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
    snprintf(out, 8, "'%c'", c);
  else
    snprintf(out, 8, "\\x%02x", c);
}

static bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* ------------------------------------------------------------------------
 * One checker for the three kinds of names
 * ------------------------------------------------------------------------ */

struct name_rule {
  const char *what;    /* "stream id", "category", "event type" */
  size_t max;          /* bytes */
  const char *extra;   /* allowed besides [A-Za-z0-9] */
  const char *charset; /* as shown in messages */
  bool letter_first;
};

static const struct name_rule stream_rule = {
    "stream id", ESC_STREAM_ID_MAX, "_.:@+=/-", "[A-Za-z0-9_.:@+=/-]", false};
static const struct name_rule category_rule = {
    "category", ESC_CATEGORY_MAX, "_.:@+=/", "[A-Za-z0-9_.:@+=/]", false};
static const struct name_rule type_rule = {"event type", ESC_TYPE_NAME_MAX,
                                           "_.:-", "[A-Za-z0-9_.:-]", true};

static bool check_name(const struct name_rule *r, const char *name,
                       esc_error *err) {
  char q[ESC__QUOTE_SIZE], b[8];
  if (!name) {
    esc__fail(err, ESC_EINVAL, "%s is NULL", r->what);
    return false;
  }
  size_t len = strlen(name);
  if (len == 0) {
    esc__fail(err, ESC_EINVAL, "%s is empty", r->what);
    return false;
  }
  if (len > r->max) {
    esc__fail(err, ESC_EINVAL, "%s is %zu bytes; the limit is %zu", r->what,
              len, r->max);
    return false;
  }
  esc__quote(q, sizeof q, name);
  unsigned char first = (unsigned char)name[0];
  if (r->letter_first) {
    if (!((first | 0x20) >= 'a' && (first | 0x20) <= 'z')) {
      show_byte(b, first);
      esc__fail(err, ESC_EINVAL, "%s \"%s\": must start with a letter, not %s",
                r->what, q, b);
      return false;
    }
  } else if (first == '$') {
    esc__fail(err, ESC_EINVAL,
              "%s \"%s\": must not start with '$' (reserved for system "
              "streams such as $all)",
              r->what, q);
    return false;
  } else if (first == '-') {
    esc__fail(err, ESC_EINVAL,
              "%s \"%s\": must not start with '-' (the category would be "
              "empty)",
              r->what, q);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (is_alnum(c) || strchr(r->extra, c))
      continue;
    show_byte(b, c);
    if (c == '-' && r == &category_rule)
      esc__fail(err, ESC_EINVAL,
                "category \"%s\": byte %zu ('-') is not allowed; a category "
                "is a stream id without '-'",
                q, i + 1);
    else
      esc__fail(err, ESC_EINVAL,
                "%s \"%s\": byte %zu (%s) is not allowed; "
                "use %s",
                r->what, q, i + 1, b, r->charset);
    return false;
  }
  esc__clear(err);
  return true;
}

/* ------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------ */

bool esc_stream_id_valid(const char *stream_id, esc_error *err) {
  return check_name(&stream_rule, stream_id, err);
}

bool esc_category_valid(const char *category, esc_error *err) {
  return check_name(&category_rule, category, err);
}

bool esc_type_name_valid(const char *type, esc_error *err) {
  return check_name(&type_rule, type, err);
}

void esc_stream_category(const char *stream_id, char *out, size_t out_size) {
  if (!out || out_size == 0)
    return;
  if (!stream_id) {
    out[0] = '\0';
    return;
  }
  size_t n = strcspn(stream_id, "-");
  if (n > out_size - 1)
    n = out_size - 1;
  memcpy(out, stream_id, n);
  out[n] = '\0';
}

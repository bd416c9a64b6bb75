/*
 * Strict parsing of option values (the options themselves: options.c).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_parse_i64(const cli_ctx *ctx, const char *option, const char *text,
                   int64_t min, int64_t max, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  /* strtoll skips leading blanks and accepts "+"; a value is digits. */
  bool ok = text[0] != '\0' && text[0] != ' ' && text[0] != '\t' &&
            text[0] != '+' && end && *end == '\0' && errno == 0 && v >= min &&
            v <= max;
  if (!ok) {
    if (max == INT64_MAX)
      cli_usage(ctx, "%s: expected an integer >= %" PRId64 ", got '%s'", option,
                min, text);
    else
      cli_usage(ctx,
                "%s: expected an integer from %" PRId64 " to %" PRId64
                ", got '%s'",
                option, min, max, text);
    return false;
  }
  *out = (int64_t)v;
  return true;
}

bool cli_parse_expected(const cli_ctx *ctx, const char *text, int64_t *out) {
  if (strcmp(text, "any") == 0) {
    *out = ESC_EXPECT_ANY;
    return true;
  }
  if (strcmp(text, "no-stream") == 0) {
    *out = ESC_EXPECT_NO_STREAM;
    return true;
  }
  if (strcmp(text, "exists") == 0) {
    *out = ESC_EXPECT_EXISTS;
    return true;
  }
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (text[0] >= '0' && text[0] <= '9' && end && *end == '\0' && errno == 0) {
    *out = (int64_t)v;
    return true;
  }
  cli_usage(ctx,
            "--expected: expected any, no-stream, exists or a version >= 0, "
            "got '%s'",
            text);
  return false;
}

/* Reports a name the library refused. */
static int invalid_name(const cli_ctx *ctx, esc_error *err) {
  err->code = ESC_EINVAL;
  return cli_fail(ctx, err);
}

int cli_check_stream(const cli_ctx *ctx, const char *stream) {
  esc_error err = ESC_ERROR_INIT;
  return esc_stream_id_valid(stream, &err) ? CLI_CONTINUE
                                           : invalid_name(ctx, &err);
}

int cli_check_category(const cli_ctx *ctx, const char *category) {
  esc_error err = ESC_ERROR_INIT;
  return !category || esc_category_valid(category, &err)
             ? CLI_CONTINUE
             : invalid_name(ctx, &err);
}

/* Durations on the command line: "30d", "12h", "90m", "45s", "2w". */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int64_t unit_seconds(const char *unit) {
  static const struct {
    const char *name;
    int64_t secs;
  } units[] = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
  for (size_t i = 0; i < sizeof units / sizeof *units; i++)
    if (strcmp(unit, units[i].name) == 0)
      return units[i].secs;
  return 0;
}

bool cli_parse_duration(const cli_ctx *ctx, const char *option,
                        const char *text, int64_t max, int64_t *seconds) {
  char *end = NULL;
  errno = 0;
  /* Digits only: strtoll would take blanks, signs and "0x". */
  bool digits = text[0] >= '0' && text[0] <= '9';
  long long n = digits ? strtoll(text, &end, 10) : 0;
  int64_t unit = digits && errno == 0 ? unit_seconds(end) : 0;
  if (!digits || unit == 0) {
    cli_usage(ctx,
              "%s: '%s' is not a duration: a whole number and a unit, s, m, "
              "h, d or w (30d)",
              option, text);
    return false;
  }
  if (n < 1 || n > max / unit) {
    cli_usage(ctx, "%s: '%s' is out of range: 1s to %" PRId64 "d", option, text,
              max / 86400);
    return false;
  }
  *seconds = n * unit;
  return true;
}

/* Durations and times on the command line: "30d", "12h", "90m", "45s",
 * "2w"; "2026-12-07T10:00:00Z". */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* "2026-12-07T10:00:00Z", optionally with a fraction of a second
 * (".5", up to microseconds), into microseconds since the epoch. */
static bool parse_utc_time(const char *text, int64_t *us) {
  int y, mo, d, h, mi, s, used = 0;
  if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s,
             &used) != 6 ||
      used != 19)
    return false;
  const char *at = text + used;
  int64_t frac = 0, scale = 1000000;
  if (*at == '.') {
    for (at++; *at >= '0' && *at <= '9' && scale > 1; at++) {
      scale /= 10;
      frac += (*at - '0') * scale;
    }
    if (at[-1] == '.')
      return false;
  }
  if (strcmp(at, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 ||
      h > 23 || mi > 59 || s > 59)
    return false;
  int64_t days = days_from_civil(y, mo, d);
  *us = ((days * 24 + h) * 60 + mi) * 60 * INT64_C(1000000) +
        s * INT64_C(1000000) + frac;
  return true;
}

bool cli_parse_since(const cli_ctx *ctx, const char *option, const char *text,
                     int64_t *us) {
  /* A time has a date; a duration starts with digits and ends in a unit. */
  if (strchr(text, 'T') || strchr(text, '-')) {
    if (parse_utc_time(text, us))
      return true;
    cli_usage(ctx,
              "%s: '%s' is neither a duration (2h) nor a UTC time "
              "(2026-12-07T10:00:00Z)",
              option, text);
    return false;
  }
  int64_t seconds;
  /* Up to 100 years ago. */
  if (!cli_parse_duration(ctx, option, text, INT64_C(3155760000), &seconds))
    return false;
  *us = ((int64_t)time(NULL) - seconds) * INT64_C(1000000);
  return true;
}

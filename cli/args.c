/*
 * Option parsing helpers: getopt_long with the CLI's global options and
 * error messages, and strict parsing of option values.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_getopt_begin(void) {
  /* optind = 0 makes glibc re-initialize its scanner, which a second
   * getopt_long pass over a different argv needs. */
  optind = 0;
  opterr = 0;
}

/* The argument getopt just rejected, for the message, into buf. Long
 * options are named by argv itself; for short ones glibc leaves the
 * letter in optopt (and the whole cluster in argv). */
static const char *rejected_arg(char **argv, int argc, char buf[3]) {
  const char *last = optind > 0 && optind <= argc ? argv[optind - 1] : NULL;
  if (last && strncmp(last, "--", 2) == 0)
    return last;
  if (optopt > ' ' && optopt < 127) {
    buf[0] = '-';
    buf[1] = (char)optopt;
    buf[2] = '\0';
    return buf;
  }
  return last ? last : "?";
}

/* --pg-timeout S: the library and the projection commands' sessions all
 * read ESC_PG_TIMEOUT, so setting it covers every connection the command
 * opens, whatever module opens it. */
static int pg_timeout(cli_ctx *ctx, const char *text) {
  int64_t s;
  if (!cli_parse_i64(ctx, "--pg-timeout", text, 0, 86400, &s))
    return CLI_OPT_ERROR;
  setenv("ESC_PG_TIMEOUT", text, 1);
  return CLI_OPT_GLOBAL;
}

int cli_getopt(cli_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts) {
  char spec[64], buf[3];
  /* ':' reports a missing value apart from an unknown option; glibc wants
   * it after a leading '+' (stop at the first operand). */
  if (shortopts[0] == '+')
    snprintf(spec, sizeof spec, "+:%s", shortopts + 1);
  else
    snprintf(spec, sizeof spec, ":%s", shortopts);
  int c = getopt_long(argc, argv, spec, longopts, NULL);
  switch (c) {
  case CLI_OPT_PG:
    ctx->pg_url = optarg;
    return CLI_OPT_GLOBAL;
  case CLI_OPT_REDIS:
    ctx->redis_url = optarg;
    return CLI_OPT_GLOBAL;
  case CLI_OPT_SCHEMA:
    ctx->schema = optarg;
    return CLI_OPT_GLOBAL;
  case CLI_OPT_KEY_PREFIX:
    ctx->key_prefix = optarg;
    return CLI_OPT_GLOBAL;
  case CLI_OPT_JSON:
    ctx->json = true;
    return CLI_OPT_GLOBAL;
  case CLI_OPT_PG_TIMEOUT:
    return pg_timeout(ctx, optarg);
  case ':':
    cli_usage(ctx, "option '%s' needs a value", rejected_arg(argv, argc, buf));
    return CLI_OPT_ERROR;
  case '?':
    cli_usage(ctx, "unknown option '%s'", rejected_arg(argv, argc, buf));
    return CLI_OPT_ERROR;
  default:
    return c;
  }
}

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

bool cli_operands(const cli_ctx *ctx, int argc, char **argv, int want,
                  const char *const *names) {
  int have = argc - optind;
  if (have < want) {
    cli_usage(ctx, "missing %s", names[have]);
    return false;
  }
  if (have > want) {
    cli_usage(ctx, "unexpected argument '%s'", argv[optind + want]);
    return false;
  }
  return true;
}

int cli_parse_options(cli_ctx *ctx, int argc, char **argv, const char *help) {
  static const struct option longopts[] = {CLI_GLOBAL_LONGOPTS,
                                           {NULL, 0, NULL, 0}};
  int c;
  cli_getopt_begin();
  while ((c = cli_getopt(ctx, argc, argv, "h", longopts)) != -1) {
    switch (c) {
    case CLI_OPT_GLOBAL:
      break;
    case CLI_OPT_HELP:
      cli_print_help(help);
      return CLI_EXIT_OK;
    default:
      return CLI_EXIT_USAGE;
    }
  }
  return CLI_CONTINUE;
}

int cli_parse_plain(cli_ctx *ctx, int argc, char **argv, const char *help) {
  int rc = cli_parse_options(ctx, argc, argv, help);
  if (rc != CLI_CONTINUE)
    return rc;
  return cli_operands(ctx, argc, argv, 0, NULL) ? CLI_CONTINUE : CLI_EXIT_USAGE;
}

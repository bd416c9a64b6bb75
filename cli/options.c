/*
 * cli_parse (options.h): one getopt_long loop for every command, driven
 * by the command's option table plus the global options.
 */
#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long returns this plus the option's index in the table. */
#define OPT_BASE 1000

/* --pg-timeout S: the library and the projection commands' sessions all
 * read ESC_PG_TIMEOUT, so setting it covers every connection the command
 * opens, whatever module opens it. */
static int pg_timeout(cli_ctx *ctx, const char *option, const char *value,
                      void *target) {
  int64_t s;
  (void)target;
  if (!cli_parse_i64(ctx, option, value, 0, 86400, &s))
    return CLI_EXIT_USAGE;
  setenv("ESC_PG_TIMEOUT", value, 1);
  return CLI_CONTINUE;
}

/* The command's options, then the global ones, into all; returns how
 * many. Too many is a bug in the command's table, caught by every run. */
static size_t collect(cli_ctx *ctx, const cli_option *own,
                      cli_option all[CLI_OPTIONS_MAX]) {
  const cli_option globals[] = {CLI_TEXT("pg", &ctx->pg_url),
                                CLI_TEXT("redis", &ctx->redis_url),
                                CLI_TEXT("schema", &ctx->schema),
                                CLI_FLAG("json", &ctx->json),
                                CLI_CALL("pg-timeout", NULL, pg_timeout),
                                CLI_TEXT("key-prefix", &ctx->key_prefix),
                                CLI_OPTIONS_END};
  size_t n = 0;
  for (const cli_option *o = own; o && o->name; o++)
    all[n++] = *o;
  for (const cli_option *o = globals; o->name; o++)
    all[n++] = *o;
  if (n >= CLI_OPTIONS_MAX) {
    fprintf(stderr, "esc: %s: %zu options, more than CLI_OPTIONS_MAX\n",
            ctx->command, n);
    abort();
  }
  return n;
}

/* all as getopt_long's table, "help" last. */
static void to_longopts(const cli_option *all, size_t n,
                        struct option longopts[CLI_OPTIONS_MAX + 2]) {
  for (size_t i = 0; i < n; i++) {
    bool value = all[i].kind == CLI_ARG_TEXT || all[i].kind == CLI_ARG_INT ||
                 all[i].kind == CLI_ARG_CALL;
    longopts[i] =
        (struct option){all[i].name, value ? required_argument : no_argument,
                        NULL, OPT_BASE + (int)i};
  }
  longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
  longopts[n + 1] = (struct option){NULL, 0, NULL, 0};
}

/* Stores one option's value; returns CLI_CONTINUE or the exit code. */
static int apply(cli_ctx *ctx, const cli_option *o, const char *value) {
  char option[64];
  snprintf(option, sizeof option, "--%s", o->name);
  switch (o->kind) {
  case CLI_ARG_FLAG:
    *(bool *)o->target = true;
    return CLI_CONTINUE;
  case CLI_ARG_TEXT:
    *(const char **)o->target = value;
    return CLI_CONTINUE;
  case CLI_ARG_INT:
    return cli_parse_i64(ctx, option, value, o->min, o->max, o->target)
               ? CLI_CONTINUE
               : CLI_EXIT_USAGE;
  case CLI_ARG_SET:
    *(int64_t *)o->target = o->min;
    return CLI_CONTINUE;
  case CLI_ARG_CALL:
  case CLI_ARG_CALL_FLAG:
    return o->parse(ctx, option, value, o->target);
  }
  return CLI_EXIT_USAGE;
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

static int help(const cli_syntax *s) {
  if (s->print_help)
    s->print_help();
  else
    cli_print_help(s->help);
  return CLI_EXIT_OK;
}

/* What getopt_long returned: an option of the table, help or an error. */
static int one_option(cli_ctx *ctx, int argc, char **argv, int c,
                      const cli_option *all, const cli_syntax *s) {
  char buf[3];
  if (c == 'h')
    return help(s);
  if (c == ':')
    return cli_usage(ctx, "option '%s' needs a value",
                     rejected_arg(argv, argc, buf));
  if (c < OPT_BASE)
    return cli_usage(ctx, "unknown option '%s'", rejected_arg(argv, argc, buf));
  return apply(ctx, &all[c - OPT_BASE], optarg);
}

/* Checks the operand count against the syntax. */
static int operands(const cli_ctx *ctx, int argc, char **argv,
                    const cli_syntax *s) {
  int have = argc - optind;
  if (s->stop_at_operand)
    return CLI_CONTINUE;
  if (have < s->min_operands)
    return cli_usage(ctx, "missing %s", s->operand_names[have]);
  if (have > s->max_operands)
    return cli_usage(ctx, "unexpected argument '%s'",
                     argv[optind + s->max_operands]);
  return CLI_CONTINUE;
}

int cli_parse(cli_ctx *ctx, int argc, char **argv, const cli_syntax *s) {
  cli_option all[CLI_OPTIONS_MAX];
  struct option longopts[CLI_OPTIONS_MAX + 2];
  size_t n = collect(ctx, s->options, all);
  to_longopts(all, n, longopts);
  /* ':' reports a missing value apart from an unknown option; '+' (stop
   * at the first operand) must come before it. optind = 0 makes glibc
   * re-initialize its scanner, which a second pass over a different argv
   * needs. */
  const char *spec = s->stop_at_operand ? "+:h" : ":h";
  int c, rc = CLI_CONTINUE;
  optind = 0;
  opterr = 0;
  while (rc == CLI_CONTINUE &&
         (c = getopt_long(argc, argv, spec, longopts, NULL)) != -1)
    rc = one_option(ctx, argc, argv, c, all, s);
  return rc == CLI_CONTINUE ? operands(ctx, argc, argv, s) : rc;
}

bool cli_operands(const cli_ctx *ctx, int argc, char **argv, int want,
                  const char *const *names) {
  cli_syntax s = {NULL, NULL, want, want, names, false, NULL};
  return operands(ctx, argc, argv, &s) == CLI_CONTINUE;
}

int cli_parse_options(cli_ctx *ctx, int argc, char **argv, const char *help) {
  cli_syntax s = {help, NULL, 0, CLI_ANY, NULL, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

int cli_parse_plain(cli_ctx *ctx, int argc, char **argv, const char *help) {
  cli_syntax s = {help, NULL, 0, 0, NULL, false, NULL};
  return cli_parse(ctx, argc, argv, &s);
}

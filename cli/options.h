/*
 * Table-driven option parsing for the esc commands (options.c).
 *
 * A command declares its own options once, as a table of cli_option
 * entries that say where each value goes; cli_parse adds the global
 * options every command takes (--pg, --redis, --schema, --json,
 * --pg-timeout, --key-prefix, --help), runs getopt_long over argv with
 * the CLI's error messages, and checks the operand count. So a command
 * writes no getopt loop, and every command prints the same messages for
 * the same mistakes.
 *
 * Tables usually live on the stack of the parsing function because they
 * point at its locals; cli_parse only reads them. Values of TEXT options
 * are borrowed from argv.
 */
#ifndef ESC_CLI_OPTIONS_H
#define ESC_CLI_OPTIONS_H

#include "cli.h"

#include <getopt.h>
#include <limits.h>

typedef enum cli_arg_kind {
  CLI_ARG_FLAG,      /* no value: *(bool *)target = true */
  CLI_ARG_TEXT,      /* *(const char **)target = the value */
  CLI_ARG_INT,       /* *(int64_t *)target = the value, in [min, max] */
  CLI_ARG_SET,       /* no value: *(int64_t *)target = min */
  CLI_ARG_CALL,      /* parse(ctx, "--name", value, target) */
  CLI_ARG_CALL_FLAG, /* no value: parse(ctx, "--name", NULL, target) */
} cli_arg_kind;

/* A value parser of CALL options: stores into target and returns
 * CLI_CONTINUE, or prints what is wrong (or what was asked for, as
 * --version does) and returns the exit code. option is "--name". */
typedef int cli_arg_parser(cli_ctx *ctx, const char *option, const char *value,
                           void *target);

typedef struct cli_option {
  const char *name; /* without the "--"; NULL ends a table */
  cli_arg_kind kind;
  void *target;
  int64_t min, max;      /* INT: the range; SET: min is the value */
  cli_arg_parser *parse; /* CALL and CALL_FLAG */
} cli_option;

/* The entries; each checks its target's type (a mismatch is a warning,
 * so an error with -Werror). */
#define CLI_FLAG(name, p)                                                      \
  { (name), CLI_ARG_FLAG, (1 ? (p) : (bool *)0), 0, 0, NULL }
#define CLI_TEXT(name, p)                                                      \
  { (name), CLI_ARG_TEXT, (1 ? (p) : (const char **)0), 0, 0, NULL }
#define CLI_INT(name, p, lo, hi)                                               \
  { (name), CLI_ARG_INT, (1 ? (p) : (int64_t *)0), (lo), (hi), NULL }
#define CLI_SET(name, p, value)                                                \
  { (name), CLI_ARG_SET, (1 ? (p) : (int64_t *)0), (value), 0, NULL }
#define CLI_CALL(name, p, fn)                                                  \
  { (name), CLI_ARG_CALL, (p), 0, 0, (fn) }
#define CLI_CALL_FLAG(name, p, fn)                                             \
  { (name), CLI_ARG_CALL_FLAG, (p), 0, 0, (fn) }
#define CLI_OPTIONS_END                                                        \
  { NULL, CLI_ARG_FLAG, NULL, 0, 0, NULL }

/* --limit N (0 to max; 0: no limit) and --all (--limit 0), the pair of
 * the listing commands. */
#define CLI_LIMIT_ALL(p, max)                                                  \
  CLI_INT("limit", (p), 0, (max)), CLI_SET("all", (p), 0)

/* No upper bound on the operand count. */
#define CLI_ANY INT_MAX

/* How a command is called: its help, its options, its operands. */
typedef struct cli_syntax {
  const char *help;               /* printed for --help / -h (cli_print_help) */
  const cli_option *options;      /* the command's own; NULL: none */
  int min_operands, max_operands; /* max CLI_ANY: unbounded */
  const char *const *operand_names; /* "missing NAME" for each below min */
  /* Stop at the first operand (esc's own options, before the command);
   * then the operands are not counted. */
  bool stop_at_operand;
  /* Replaces cli_print_help(help) when set (esc's own --help). */
  void (*print_help)(void);
} cli_syntax;

/* At most this many options per command, the global ones included. */
#define CLI_OPTIONS_MAX 32

/*
 * Parses argv[1..argc) (argv[0] is the command's name): options and
 * operands may be mixed, "--" ends the options, unique abbreviations of
 * long names are accepted (getopt_long). Unknown options, missing or bad
 * values and a wrong operand count are usage errors naming the argument.
 * Returns CLI_CONTINUE with the operands at argv[optind..argc), or the
 * exit code after printing help or an error.
 */
int cli_parse(cli_ctx *ctx, int argc, char **argv, const cli_syntax *s);

/* The operand check of cli_parse, for a command whose operand count
 * depends on its options: want operands exactly, names naming them.
 * Prints the usage error and returns false when the count is off. */
bool cli_operands(const cli_ctx *ctx, int argc, char **argv, int want,
                  const char *const *names);

#endif /* ESC_CLI_OPTIONS_H */

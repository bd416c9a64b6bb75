/*
 * esc - the admin CLI of the esc event store.
 *
 * main() parses the global options that come before the command, then
 * hands the rest of argv to the command (which accepts the global options
 * too, so `esc read order-1 --json` works). See docs/cli.md.
 */
#include "cli.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(cli_ctx *ctx, int argc, char **argv);
  const char *help;
} cli_command;

static const cli_command commands[] = {
    {"migrate", "create or upgrade the event store schema", cli_cmd_migrate,
     cli_help_migrate},
    {"append", "append one event to a stream", cli_cmd_append, cli_help_append},
    {"read", "read the events of one stream", cli_cmd_read, cli_help_read},
    {"tail", "read $all or a category in subscription order, or follow it",
     cli_cmd_tail, cli_help_tail},
    {"streams", "list streams and their versions", cli_cmd_streams,
     cli_help_streams},
    {"stats", "event and stream counts, head position, what holds it back",
     cli_cmd_stats, cli_help_stats},
    {"truncate", "remove a stream's events below a version (logged)",
     cli_cmd_truncate, cli_help_truncate},
    {"tombstone", "delete a stream for good (logged)", cli_cmd_tombstone,
     cli_help_tombstone},
    {"projections", "projection partitions: status; repartition NAME N",
     cli_cmd_projections, cli_help_projections},
    {"rebuild", "ask a projection's workers to rebuild it from the log",
     cli_cmd_rebuild, cli_help_rebuild},
    {"dead-letters", "list, retry or discard events projections parked",
     cli_cmd_dead_letters, cli_help_dead_letters},
    {"metrics", "store and projection gauges in the Prometheus text format",
     cli_cmd_metrics, cli_help_metrics},
    {"check", "find (and repair) events read out of stream order",
     cli_cmd_check, cli_help_check},
    {"retention", "retention policies ($maxAge, $maxCount): set, show, run",
     cli_cmd_retention, cli_help_retention},
    {"processes", "process managers: instances, history, deadlines, parked",
     cli_cmd_processes, cli_help_processes},
    {"console", "serve a read-only web console (overview) on loopback",
     cli_cmd_console, cli_help_console},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const cli_command *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void print_command_list(FILE *out) {
  fputs("Commands:\n", out);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
}

static void print_main_help(FILE *out) {
  fputs("Usage: esc [global options] COMMAND [arguments]\n"
        "       esc COMMAND --help | esc help COMMAND | esc --version\n"
        "\nThe admin tool of the esc event store.\n\n",
        out);
  print_command_list(out);
  if (out == stdout)
    cli_print_help("");
}

/* `esc help [COMMAND]` */
static int run_help(cli_ctx *ctx, int argc, char **argv) {
  if (argc < 1) {
    print_main_help(stdout);
    return CLI_EXIT_OK;
  }
  const cli_command *cmd = find_command(argv[0]);
  if (!cmd) {
    cli_usage(ctx, "help: unknown command '%s'", argv[0]);
    print_command_list(stderr);
    return CLI_EXIT_USAGE;
  }
  cli_print_help(cmd->help);
  return CLI_EXIT_OK;
}

static void print_main_help_stdout(void) {
  print_main_help(stdout);
}

static int version(cli_ctx *ctx, const char *option, const char *value,
                   void *target) {
  (void)ctx, (void)option, (void)value, (void)target;
  printf("esc %s\n", esc_version());
  return CLI_EXIT_OK;
}

/* Parses the global options before the command; returns the index of the
 * command in argv, or -1 with *exit_code set when main should stop. */
static int parse_globals(cli_ctx *ctx, int argc, char **argv, int *exit_code) {
  const cli_option opts[] = {CLI_CALL_FLAG("version", NULL, version),
                             CLI_OPTIONS_END};
  /* Stop at the command: its options are the command's business. */
  cli_syntax s = {NULL, opts, 0, CLI_ANY, NULL, true, print_main_help_stdout};
  *exit_code = cli_parse(ctx, argc, argv, &s);
  return *exit_code == CLI_CONTINUE ? optind : -1;
}

/* Reports buffered output that could not be written (a full disk, a
 * closed pipe with SIGPIPE ignored). */
static int finish(const cli_ctx *ctx, int exit_code) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "esc: %s: cannot write output\n", ctx->command);
    if (exit_code == CLI_EXIT_OK)
      exit_code = CLI_EXIT_ERROR;
  }
  return exit_code;
}

int main(int argc, char **argv) {
  cli_ctx ctx = CLI_CTX_INIT;
  int exit_code = CLI_EXIT_OK;
  int at = parse_globals(&ctx, argc, argv, &exit_code);
  if (at < 0)
    return finish(&ctx, exit_code);
  if (at >= argc) {
    cli_usage(&ctx, "missing command");
    print_command_list(stderr);
    return finish(&ctx, CLI_EXIT_USAGE);
  }
  const char *name = argv[at];
  if (strcmp(name, "help") == 0)
    return finish(&ctx, run_help(&ctx, argc - at - 1, argv + at + 1));
  const cli_command *cmd = find_command(name);
  if (!cmd) {
    cli_usage(&ctx, "unknown command '%s'", name);
    print_command_list(stderr);
    return finish(&ctx, CLI_EXIT_USAGE);
  }
  ctx.command = cmd->name;
  /* The command sees its own name as argv[0]. */
  return finish(&ctx, cmd->run(&ctx, argc - at, argv + at));
}

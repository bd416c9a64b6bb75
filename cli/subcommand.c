/* Commands made of subcommands (`esc processes show ...`). */
#include "cli.h"

#include <string.h>

int cli_subcommand_run(cli_ctx *ctx, int argc, char **argv,
                       const cli_subcommand *subs, size_t n) {
  for (size_t i = 0; argc > 1 && i < n; i++) {
    if (strcmp(argv[1], subs[i].name) != 0)
      continue;
    ctx->command = subs[i].command;
    /* The subcommand sees its own name as argv[0]. */
    return subs[i].run(ctx, argc - 1, argv + 1);
  }
  return CLI_CONTINUE;
}

int cli_subcommand_only(cli_ctx *ctx, int argc, char **argv,
                        const cli_subcommands *set) {
  const char *sub = argc > 1 ? argv[1] : NULL;
  if (sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
    cli_print_help(set->help);
    return CLI_EXIT_OK;
  }
  if (!sub)
    return cli_usage(ctx, "missing subcommand: %s", set->names);
  int rc = cli_subcommand_run(ctx, argc, argv, set->subs, set->n);
  if (rc != CLI_CONTINUE)
    return rc;
  if (sub[0] == '-' && set->options_first_hint)
    return cli_usage(ctx, "'%s': the subcommand (%s) comes first", sub,
                     set->names);
  return cli_usage(ctx, "unknown subcommand '%s': %s", sub, set->names);
}

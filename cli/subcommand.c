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

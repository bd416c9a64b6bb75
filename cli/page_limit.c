/* Output cut at --limit: said on stderr, with how to see the rest. */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>

void cli_note_cut(const cli_ctx *ctx, int64_t shown, const char *what,
                  const char *rest) {
  fflush(stdout); /* the note follows the items it is about */
  fprintf(stderr,
          "esc %s: stopped at the limit of %" PRId64 " %s; more follow "
          "(%s, or --all)\n",
          ctx->command, shown, what, rest);
}

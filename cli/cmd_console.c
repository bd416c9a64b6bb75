/* esc console: serves the web console until SIGINT or SIGTERM. */
#include "console.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

const char cli_help_console[] =
    "Usage: esc console [--listen ADDRESS:PORT]\n"
    "\n"
    "Serves a read-only web console from the esc binary: / is the overview\n"
    "(the facts of `esc stats`, refreshed every two seconds) and /api/ the\n"
    "JSON API it reads (docs/console.md). Pages, styles and scripts are\n"
    "built in; nothing is loaded from elsewhere.\n"
    "\n"
    "  --listen ADDRESS:PORT  where to listen (127.0.0.1:8077); port 0 picks\n"
    "                         a free one. Any address but loopback shows\n"
    "                         business data to the network: put TLS and\n"
    "                         authentication in front of it.\n"
    "\n"
    "Each request connects to PostgreSQL afresh, so the console keeps\n"
    "serving while the store is down (the API answers 503 with an error\n"
    "object) and recovers by itself. Every method but GET and HEAD is\n"
    "refused with 403: this console has no actions yet.\n";

static bool is_loopback(const char *listen) {
  return strncmp(listen, "127.", 4) == 0;
}

static int serve(cli_ctx *ctx, const char *listen) {
  esc_error err = ESC_ERROR_INIT;
  cli_catch_stop_signals();
  cli_ignore_sigpipe();
  cli_console *c = cli_console_start(ctx, listen, &err);
  if (!c)
    return err.code == ESC_EINVAL ? cli_usage(ctx, "%s", err.msg)
                                  : cli_fail(ctx, &err);
  if (!is_loopback(listen))
    fprintf(stderr, "esc: console: %s is not loopback: put TLS and "
                    "authentication in front of it\n",
            listen);
  printf("esc console: listening on port %d\n", cli_console_port(c));
  fflush(stdout);
  while (!cli_stop_requested())
    cli_pause_ms(500);
  cli_console_free(c);
  return CLI_EXIT_OK;
}

int cli_cmd_console(cli_ctx *ctx, int argc, char **argv) {
  const char *listen = "127.0.0.1:8077";
  const cli_option opts[] = {CLI_TEXT("listen", &listen), CLI_OPTIONS_END};
  cli_syntax s = {cli_help_console, opts, 0, 0, NULL, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  return serve(ctx, listen);
}

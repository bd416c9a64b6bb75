/* esc console: serves the web console until SIGINT or SIGTERM. */
#include "console.h"
#include "options.h"

#include <stdio.h>
#include <string.h>

const char cli_help_console[] =
    "Usage: esc console [--listen ADDRESS:PORT]\n"
    "                   [--allow-actions [--token-file FILE]]\n"
    "\n"
    "Serves a web console from the esc binary: / is the overview (the\n"
    "facts of `esc stats`, refreshed every two seconds), /dead-letters.html\n"
    "the open dead letters, and /api/ the JSON API they read\n"
    "(docs/console.md). Pages, styles and scripts are built in; nothing is\n"
    "loaded from elsewhere.\n"
    "\n"
    "  --listen ADDRESS:PORT  where to listen (127.0.0.1:8077); port 0 picks\n"
    "                         a free one. Any address but loopback shows\n"
    "                         business data to the network: put TLS and\n"
    "                         authentication in front of it.\n"
    "  --allow-actions        allow retrying and discarding dead letters\n"
    "                         (POST /api/dead-letters/retry and /discard),\n"
    "                         each with the header Authorization: Bearer\n"
    "                         TOKEN. Without it the console is read-only:\n"
    "                         every method but GET and HEAD is refused (403).\n"
    "  --token-file FILE      the token is the first line of FILE (16 to 256\n"
    "                         characters); without it a random one is made\n"
    "                         and printed once on stdout at start.\n"
    "\n"
    "Each request connects to PostgreSQL afresh, so the console keeps\n"
    "serving while the store is down (the API answers 503 with an error\n"
    "object) and recovers by itself.\n";

static bool is_loopback(const char *listen) {
  return strncmp(listen, "127.", 4) == 0;
}

/* The token of --allow-actions into token: the file's, or a new one,
 * printed (only then: a token from a file is the operator's already). */
static esc_status action_token(const char *file,
                               char token[CLI_CONSOLE_TOKEN_MAX + 1],
                               esc_error *err) {
  if (file)
    return cli_console_token_load(file, token, err);
  esc_status rc = cli_console_token_generate(token, err);
  if (rc == ESC_OK)
    printf("esc console: actions allowed; bearer token: %s\n", token);
  return rc;
}

static int serve(cli_ctx *ctx, const cli_console_options *o) {
  esc_error err = ESC_ERROR_INIT;
  cli_catch_stop_signals();
  cli_ignore_sigpipe();
  cli_console *c = cli_console_start(ctx, o, &err);
  if (!c)
    return err.code == ESC_EINVAL ? cli_usage(ctx, "%s", err.msg)
                                  : cli_fail(ctx, &err);
  if (!is_loopback(o->listen))
    fprintf(stderr, "esc: console: %s is not loopback: put TLS and "
                    "authentication in front of it\n",
            o->listen);
  printf("esc console: listening on port %d\n", cli_console_port(c));
  fflush(stdout);
  while (!cli_stop_requested())
    cli_pause_ms(500);
  cli_console_free(c);
  return CLI_EXIT_OK;
}

int cli_cmd_console(cli_ctx *ctx, int argc, char **argv) {
  cli_console_options o = {"127.0.0.1:8077", false, NULL};
  const char *token_file = NULL;
  char token[CLI_CONSOLE_TOKEN_MAX + 1];
  const cli_option opts[] = {CLI_TEXT("listen", &o.listen),
                             CLI_FLAG("allow-actions", &o.allow_actions),
                             CLI_TEXT("token-file", &token_file),
                             CLI_OPTIONS_END};
  cli_syntax s = {cli_help_console, opts, 0, 0, NULL, false, NULL};
  int rc = cli_parse(ctx, argc, argv, &s);
  if (rc != CLI_CONTINUE)
    return rc;
  if (token_file && !o.allow_actions)
    return cli_usage(ctx, "--token-file is the token of --allow-actions: "
                          "give both");
  if (o.allow_actions) {
    esc_error err = ESC_ERROR_INIT;
    if (action_token(token_file, token, &err) != ESC_OK)
      return err.code == ESC_EINVAL ? cli_usage(ctx, "%s", err.msg)
                                    : cli_fail(ctx, &err);
    o.token = token;
  }
  return serve(ctx, &o);
}

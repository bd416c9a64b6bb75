/*
 * The console's action token: read from --token-file or generated, and
 * checked on every action's Authorization: Bearer header. A header, not a
 * cookie: a browser sends cookies along with cross-site requests, but a
 * page of another origin cannot set this header without a CORS preflight,
 * which the console never grants.
 */
#include "console_routes.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A shorter secret is guessable; a longer line is not a token. */
#define TOKEN_MIN 16
#define RANDOM_BYTES 32

esc_status cli_console_token_load(const char *path,
                                  char out[CLI_CONSOLE_TOKEN_MAX + 1],
                                  esc_error *err) {
  char line[CLI_CONSOLE_TOKEN_MAX + 3];
  FILE *f = fopen(path, "r");
  if (!f)
    return esc_error_set(err, ESC_EINVAL, "--token-file %s: %s", path,
                         strerror(errno));
  bool got = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  size_t n = got ? strcspn(line, "\r\n") : 0;
  if (n < TOKEN_MIN || n > CLI_CONSOLE_TOKEN_MAX)
    return esc_error_set(err, ESC_EINVAL,
                         "--token-file %s: the first line must be a token of "
                         "%d to %d characters",
                         path, TOKEN_MIN, CLI_CONSOLE_TOKEN_MAX);
  memcpy(out, line, n);
  out[n] = '\0';
  return ESC_OK;
}

esc_status cli_console_token_generate(char out[CLI_CONSOLE_TOKEN_MAX + 1],
                                      esc_error *err) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[RANDOM_BYTES];
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(raw, 1, sizeof raw, f) : 0;
  if (f)
    fclose(f);
  if (got != sizeof raw)
    return esc_error_set(err, ESC_EIO,
                         "console: cannot read /dev/urandom for a token");
  for (size_t i = 0; i < sizeof raw; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[2 * sizeof raw] = '\0';
  return ESC_OK;
}

/* Whether given equals token, in a time that depends on the token's
 * length only, never on how much of given matches. */
static bool same_secret(const char *given, const char *token) {
  size_t glen = strlen(given), tlen = strlen(token);
  unsigned diff = glen != tlen;
  for (size_t i = 0; i < tlen; i++)
    diff |= (unsigned)(unsigned char)token[i] ^
            (unsigned)(unsigned char)(i < glen ? given[i] : 0);
  return diff == 0;
}

bool cli_console_refuse_action(const cli_console_env *env,
                               struct MHD_Connection *c, enum MHD_Result *r) {
  if (!env->allow_actions) {
    *r = cli_console_reply_error(c, MHD_HTTP_FORBIDDEN, "forbidden",
                                 "this console is read-only: start it with "
                                 "--allow-actions to allow actions");
    return true;
  }
  const char *h =
      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
    *r = cli_console_reply_unauthorized(c);
    return true;
  }
  if (!same_secret(h + 7, env->token)) {
    *r = cli_console_reply_error(c, MHD_HTTP_FORBIDDEN, "forbidden",
                                 "Authorization: the bearer token is wrong");
    return true;
  }
  return false;
}

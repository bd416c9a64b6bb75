/* Input: JSON operands (literal or from stdin) turned into msgpack. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON read from stdin is bounded before it is parsed: a JSON tree of
 * small values takes some 50 times its text in memory, so the bound is
 * what an event can need, not more. The CLI stores events of at most
 * 1 MiB of msgpack (the store's default limit); their JSON, escapes and
 * all, fits in 4 MiB. */
#define CLI_STDIN_MAX ((size_t)4 * 1024 * 1024)

/* Reads all of stdin into a malloc'ed, NUL-terminated buffer. */
static esc_status read_stdin(const char *what, char **out, esc_error *err) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  esc_status st = ESC_OK;
  if (!buf)
    goto out_nomem;
  for (;;) {
    if (len + 1 == cap) {
      if (cap >= CLI_STDIN_MAX) {
        st = ESC_EINVAL;
        snprintf(err->msg, sizeof err->msg, "%s: more than %zu MiB on stdin",
                 what, CLI_STDIN_MAX / ((size_t)1024 * 1024));
        goto out_free;
      }
      char *bigger = realloc(buf, cap * 2);
      if (!bigger)
        goto out_nomem;
      buf = bigger;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, stdin);
    len += n;
    if (n == 0)
      break;
  }
  if (ferror(stdin)) {
    st = ESC_EIO;
    snprintf(err->msg, sizeof err->msg, "%s: cannot read stdin", what);
    goto out_free;
  }
  buf[len] = '\0';
  if (strlen(buf) != len) {
    st = ESC_EINVAL;
    snprintf(err->msg, sizeof err->msg, "%s: NUL byte in JSON on stdin", what);
    goto out_free;
  }
  *out = buf;
  return ESC_OK;

out_nomem:
  st = ESC_ENOMEM;
  snprintf(err->msg, sizeof err->msg, "%s: out of memory reading stdin", what);
out_free:
  free(buf);
  err->code = st;
  err->sqlstate[0] = '\0';
  return st;
}

esc_status cli_json_arg(const char *what, const char *text, bool must_be_object,
                        void **out, size_t *out_len, esc_error *err) {
  char *owned = NULL;
  *out = NULL;
  *out_len = 0;
  if (strcmp(text, "-") == 0) {
    esc_status st = read_stdin(what, &owned, err);
    if (st != ESC_OK)
      return st;
    text = owned;
  }
  esc_status st = esc_json_to_msgpack(text, out, out_len, err);
  if (st != ESC_OK) {
    cli_error_prefix(err, what);
    goto out;
  }
  /* Valid JSON whose first token is '{' is an object. */
  const char *p = text + strspn(text, " \t\r\n");
  if (must_be_object && *p != '{') {
    free(*out);
    *out = NULL;
    *out_len = 0;
    st = err->code = ESC_EINVAL;
    err->sqlstate[0] = '\0';
    snprintf(err->msg, sizeof err->msg, "%s: expected a JSON object", what);
  }
out:
  free(owned);
  return st;
}

/* The console's HTTP server: libmicrohttpd with one polling thread. */
#include "console_routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* A client that sends nothing for this long is dropped, so slow or idle
 * clients cannot hold the server. */
#define CONNECTION_TIMEOUT_S 10u
#define CONNECTION_LIMIT 64u
/* An action's body is a small JSON object; a bigger one is refused
 * (413) without being kept, so no client can make the console hold more. */
#define BODY_MAX (64u * 1024u)

struct cli_console {
  cli_console_env env;
  struct MHD_Daemon *daemon;
  int port;
};

/* An action's body as it arrives, kept between the calls of on_request. */
typedef struct request_body {
  char data[BODY_MAX + 1];
  size_t len;
  bool too_large;
} request_body;

/* "A.B.C.D:PORT" into addr; ESC_EINVAL naming the text otherwise. */
static esc_status parse_listen(const char *listen, struct sockaddr_in *addr,
                               esc_error *err) {
  const char *colon = strrchr(listen, ':');
  char host[INET_ADDRSTRLEN];
  size_t n = colon ? (size_t)(colon - listen) : 0;
  char *end = NULL;
  long port = colon ? strtol(colon + 1, &end, 10) : -1;
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  if (!colon || n == 0 || n >= sizeof host || end == colon + 1 || *end ||
      port < 0 || port > 65535)
    return esc_error_set(err, ESC_EINVAL,
                         "--listen %s: want an IPv4 address and a port, "
                         "such as 127.0.0.1:8077",
                         listen);
  memcpy(host, listen, n);
  host[n] = '\0';
  if (inet_pton(AF_INET, host, &addr->sin_addr) != 1)
    return esc_error_set(err, ESC_EINVAL,
                         "--listen %s: %s is not an IPv4 address", listen,
                         host);
  addr->sin_port = htons((uint16_t)port);
  return ESC_OK;
}

static enum MHD_Result reply_too_large(struct MHD_Connection *c) {
  return cli_console_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                 "the body is over 64 KiB: an action's "
                                 "body is a small JSON object");
}

/* The first call of an action, on its headers: refused, or ready to take
 * its body (a declared length over BODY_MAX is refused at once). */
static enum MHD_Result action_start(const cli_console_env *env,
                                    struct MHD_Connection *c, void **state) {
  enum MHD_Result r;
  if (cli_console_refuse_action(env, c, &r))
    return r;
  const char *declared = MHD_lookup_connection_value(
      c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (declared && strtoull(declared, NULL, 10) > BODY_MAX)
    return reply_too_large(c);
  request_body *b = calloc(1, sizeof *b);
  if (!b)
    return MHD_NO;
  *state = b;
  return MHD_YES;
}

/* Keeps a chunk of the body, or notes that it is too large. */
static void action_take(request_body *b, const char *data, size_t n) {
  if (b->too_large || n > BODY_MAX - b->len) {
    b->too_large = true;
    return;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
}

/* libmicrohttpd calls this once on a request's headers, then once per
 * chunk of its body, then once more with none: reads are answered at
 * once, actions when their body is whole. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  cli_console *console = cls;
  request_body *b = *state;
  (void)version;
  if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
      strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
    return cli_console_route(&console->env, c, url);
  if (!b)
    return action_start(&console->env, c, state);
  if (*upload_size) {
    action_take(b, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (b->too_large)
    return reply_too_large(c);
  return cli_console_route_action(&console->env, c, url, method, b->data,
                                  b->len);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode why) {
  (void)cls;
  (void)c;
  (void)why;
  free(*state);
  *state = NULL;
}

static int bound_port(struct MHD_Daemon *d) {
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  return info ? (int)info->port : 0;
}

cli_console *cli_console_start(const cli_ctx *ctx,
                               const cli_console_options *o, esc_error *err) {
  struct sockaddr_in addr;
  const char *listen = o->listen;
  if (parse_listen(listen, &addr, err) != ESC_OK)
    return NULL;
  if (o->allow_actions && (!o->token || !*o->token)) {
    esc_error_set(err, ESC_EINVAL, "console: actions need a token");
    return NULL;
  }
  cli_console *c = calloc(1, sizeof *c);
  if (!c) {
    esc_error_set(err, ESC_ENOMEM, "console: out of memory");
    return NULL;
  }
  c->env.ctx = ctx;
  c->env.allow_actions = o->allow_actions;
  c->env.token = o->allow_actions ? o->token : NULL;
  errno = 0;
  c->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
      on_request, c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
      MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
  if (!c->daemon) {
    int e = errno;
    esc_error_set(err, ESC_EIO, "console: cannot listen on %s: %s", listen,
                  e ? strerror(e) : "libmicrohttpd refused to start");
    free(c);
    return NULL;
  }
  c->port = bound_port(c->daemon);
  return c;
}

int cli_console_port(const cli_console *c) { return c ? c->port : 0; }

void cli_console_free(cli_console *c) {
  if (!c)
    return;
  MHD_stop_daemon(c->daemon); /* joins its thread */
  free(c);
}

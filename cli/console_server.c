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

struct cli_console {
  const cli_ctx *ctx;
  struct MHD_Daemon *daemon;
  int port;
};

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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  cli_console *console = cls;
  (void)version;
  (void)upload;
  (void)upload_size;
  (void)state;
  return cli_console_route(console->ctx, c, url, method);
}

static int bound_port(struct MHD_Daemon *d) {
  const union MHD_DaemonInfo *info =
      MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  return info ? (int)info->port : 0;
}

cli_console *cli_console_start(const cli_ctx *ctx, const char *listen,
                               esc_error *err) {
  struct sockaddr_in addr;
  if (parse_listen(listen, &addr, err) != ESC_OK)
    return NULL;
  cli_console *c = calloc(1, sizeof *c);
  if (!c) {
    esc_error_set(err, ESC_ENOMEM, "console: out of memory");
    return NULL;
  }
  c->ctx = ctx;
  errno = 0;
  c->daemon = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
      on_request, c, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
      MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, MHD_OPTION_END);
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

/*
 * The endpoint's listen address, "HOST:PORT": numeric addresses only (and
 * "localhost"), so that what is checked for loopback is what is bound,
 * with no resolver in between.
 */
#include "metrics_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static esc_status bad(esc_error *err, const char *listen, const char *why) {
  return esc_error_set(err, ESC_EINVAL, "metrics listen address '%.100s': %s",
                       listen, why);
}

static bool parse_port(const char *s, int *port) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !*s || *end || v < 0 || v > 65535 || s[0] == '+' ||
      s[0] == '-' || s[0] == ' ')
    return false;
  *port = (int)v;
  return true;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host (without brackets) and port
 * text; false when the shape is wrong. */
static bool split(const char *listen, char *host, size_t size,
                  const char **port, bool *v6) {
  const char *colon;
  size_t n;
  *v6 = listen[0] == '[';
  if (*v6) {
    const char *close = strchr(listen, ']');
    if (!close || close[1] != ':')
      return false;
    n = (size_t)(close - listen - 1);
    listen++;
    colon = close + 1;
  } else {
    colon = strrchr(listen, ':');
    if (!colon || strchr(listen, ':') != colon)
      return false;
    n = (size_t)(colon - listen);
  }
  if (n == 0 || n >= size)
    return false;
  memcpy(host, listen, n);
  host[n] = '\0';
  *port = colon + 1;
  return true;
}

esc_status esc__listen_parse(const char *listen, bool allow_remote,
                             struct sockaddr_storage *addr, socklen_t *len,
                             esc_error *err) {
  char host[64];
  const char *port_text;
  bool v6;
  int port;
  if (!listen)
    listen = ESC_METRICS_LISTEN_DEFAULT;
  memset(addr, 0, sizeof *addr);
  if (!split(listen, host, sizeof host, &port_text, &v6))
    return bad(err, listen,
               "expected HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464");
  if (!parse_port(port_text, &port))
    return bad(err, listen, "the port must be a number from 0 to 65535");
  if (!v6 && strcmp(host, "localhost") == 0)
    snprintf(host, sizeof host, "127.0.0.1");
  bool loopback;
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
      return bad(err, listen, "not an IPv6 address between the brackets");
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    *len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)addr;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
      return bad(err, listen,
                 "the host must be an IPv4 address, [IPv6] or localhost "
                 "(names are not resolved)");
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    *len = sizeof *a;
  }
  if (!loopback && !allow_remote)
    return bad(err, listen,
               "not a loopback address; serving metrics beyond this machine "
               "must be asked for explicitly (allow_remote)");
  return ESC_OK;
}

esc_status esc_metrics_listen_check(const char *listen, bool allow_remote,
                                    esc_error *err) {
  struct sockaddr_storage addr;
  socklen_t len;
  return esc__listen_parse(listen, allow_remote, &addr, &len, err);
}

/* A minimal HTTP/1.0 client for tests and esc-bench (httpget.h): plain
 * POSIX, no cmocka, so that the bench can build it too. */
#include "httpget.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is readable or writable, up to the deadline. */
static bool ready(int fd, short events, long long deadline) {
  long long left = deadline - now_ms();
  struct pollfd p = {fd, events, 0};
  return left > 0 && poll(&p, 1, (int)left) == 1;
}

static int connect_to(int port, long long deadline) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
    return fd;
  int e = 0;
  socklen_t len = sizeof e;
  if (errno == EINPROGRESS && ready(fd, POLLOUT, deadline) &&
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e == 0)
    return fd;
  close(fd);
  return -1;
}

static bool send_all(int fd, const char *s, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!ready(fd, POLLOUT, deadline))
        return false;
      continue;
    }
    if (w <= 0)
      return false;
    s += w;
    n -= (size_t)w;
  }
  return true;
}

/* Reads until the server closes; the whole response, malloc'ed. */
static char *read_all(int fd, long long deadline) {
  size_t len = 0, cap = 8192;
  char *buf = malloc(cap);
  while (buf) {
    if (len + 4096 + 1 > cap) {
      char *p = realloc(buf, cap *= 2);
      if (!p)
        break;
      buf = p;
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!ready(fd, POLLIN, deadline))
        break;
      continue;
    }
    if (r == 0) {
      buf[len] = '\0';
      return buf;
    }
    if (r < 0)
      break;
    len += (size_t)r;
  }
  free(buf);
  return NULL;
}

/* The request's text, malloc'ed; NULL on no memory. */
static char *request_text(int port, const char *method, const char *path,
                          const char *headers, const char *body) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return NULL;
  fprintf(f, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s",
          method, path, port, headers ? headers : "");
  if (body)
    fprintf(f, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
            strlen(body));
  fprintf(f, "\r\n%s", body ? body : "");
  if (fclose(f) != 0) {
    free(text);
    return NULL;
  }
  return text;
}

int esc_test_http_request(int port, const char *method, const char *path,
                          const char *headers, const char *body,
                          int timeout_ms, char **resp_body) {
  long long deadline = now_ms() + timeout_ms;
  int status = -1;
  *resp_body = NULL;
  char *req = request_text(port, method, path, headers, body);
  int fd = req ? connect_to(port, deadline) : -1;
  char *resp = fd >= 0 && send_all(fd, req, strlen(req), deadline)
                   ? read_all(fd, deadline)
                   : NULL;
  if (fd >= 0)
    close(fd);
  free(req);
  const char *start = resp ? strstr(resp, "\r\n\r\n") : NULL;
  if (resp && start && sscanf(resp, "HTTP/%*d.%*d %d", &status) == 1) {
    *resp_body = strdup(start + 4);
  } else {
    status = -1;
  }
  free(resp);
  return *resp_body ? status : -1;
}

int esc_test_http_get(int port, const char *path, int timeout_ms, char **body) {
  return esc_test_http_request(port, "GET", path, NULL, NULL, timeout_ms, body);
}

char *esc_test_url_encode(const char *s, char *out, size_t size) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || strchr("-_.~", *p);
    if (o + 4 > size)
      return NULL;
    if (plain) {
      out[o++] = (char)*p;
    } else {
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  return out;
}

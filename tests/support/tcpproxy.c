/*
 * The loopback TCP proxy of tcpproxy.h: one thread polls the listener, a
 * wake-up pipe and both sockets of every forwarded connection. Mode
 * changes are applied by that thread; esc_test_proxy_set_mode waits until
 * it has, so a test knows the fault is in place when the call returns.
 */
#define _GNU_SOURCE /* accept4 */

#include "tcpproxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_LINKS = 64, BUF_SIZE = 64 * 1024 };

/* Bytes read from one side, not yet written to the other. */
struct flow {
  unsigned char buf[BUF_SIZE];
  size_t len;
};

struct link {
  int client, server;
  struct flow up;   /* client -> server */
  struct flow down; /* server -> client */
};

struct esc_test_proxy {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t applied;
  int wake[2];
  int target_port;
  int port;
  int listen_fd; /* -1 while refusing */
  /* Under lock: what the test asked for and what the thread has done. */
  esc_test_proxy_mode mode;
  unsigned asked, done;
  bool quit;
  int open;
  long accepted;
  /* The thread's own. */
  struct link *links[MAX_LINKS];
  int nlinks;
};

static void say(char *why, size_t size, const char *what) {
  if (why && size)
    snprintf(why, size, "tcp proxy: %s: %s", what, strerror(errno));
}

/* ------------------------------------------------------------ sockets -- */

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int listen_on(int port) {
  struct sockaddr_in a = loopback(port);
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int bound_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
    return -1;
  return ntohs(a.sin_port);
}

/* Closes with an RST rather than a FIN: the peer sees "connection reset". */
static void reset_fd(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/* Loopback connects at once or is refused at once: no need to wait. */
static int connect_target(int port) {
  struct sockaddr_in a = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* -------------------------------------------------------------- links -- */

static void count_open(esc_test_proxy *p, int delta, long accepted) {
  pthread_mutex_lock(&p->lock);
  p->open += delta;
  p->accepted += accepted;
  pthread_mutex_unlock(&p->lock);
}

static void drop_link(esc_test_proxy *p, int i, bool reset) {
  struct link *l = p->links[i];
  if (reset) {
    reset_fd(l->client);
    reset_fd(l->server);
  } else {
    close(l->client);
    close(l->server);
  }
  free(l);
  p->links[i] = p->links[--p->nlinks];
  count_open(p, -1, 0);
}

static void accept_one(esc_test_proxy *p, esc_test_proxy_mode mode) {
  int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  count_open(p, 0, 1);
  struct link *l = NULL;
  int server = -1;
  if (mode != ESC_PROXY_RESET && p->nlinks < MAX_LINKS)
    server = connect_target(p->target_port);
  if (server >= 0)
    l = calloc(1, sizeof *l);
  if (!l) {
    if (server >= 0)
      close(server);
    reset_fd(fd);
    return;
  }
  l->client = fd;
  l->server = server;
  p->links[p->nlinks++] = l;
  count_open(p, 1, 0);
}

/* Moves bytes from `from` into f; false when that side is done. */
static bool fill(int from, struct flow *f) {
  ssize_t n = read(from, f->buf + f->len, sizeof f->buf - f->len);
  if (n > 0) {
    f->len += (size_t)n;
    return true;
  }
  return n < 0 && (errno == EAGAIN || errno == EINTR);
}

/* Writes what f holds to `to`; false when that side is gone. send, not
 * write: a peer gone mid-write must be EPIPE here, not a SIGPIPE that
 * ends the process hosting the proxy. */
static bool drain(int to, struct flow *f) {
  ssize_t n = send(to, f->buf, f->len, MSG_NOSIGNAL);
  if (n < 0)
    return errno == EAGAIN || errno == EINTR;
  memmove(f->buf, f->buf + n, f->len - (size_t)n);
  f->len -= (size_t)n;
  return true;
}

/* One side ended: hand the other what is left of its bytes (best effort,
 * so a server's last words, a FATAL say, reach the client), then close. */
static void finish_link(esc_test_proxy *p, int i) {
  struct link *l = p->links[i];
  if (l->down.len)
    drain(l->client, &l->down);
  if (l->up.len)
    drain(l->server, &l->up);
  drop_link(p, i, false);
}

static short want_client(const struct link *l) {
  return (short)((l->up.len < BUF_SIZE ? POLLIN : 0) |
                 (l->down.len ? POLLOUT : 0));
}

static short want_server(const struct link *l) {
  return (short)((l->down.len < BUF_SIZE ? POLLIN : 0) |
                 (l->up.len ? POLLOUT : 0));
}

/* Acts on the poll result of link i; false when it was dropped. */
static bool serve_link(esc_test_proxy *p, int i, short client_ev,
                       short server_ev) {
  struct link *l = p->links[i];
  bool ok = true;
  if (client_ev & POLLIN)
    ok = fill(l->client, &l->up);
  if (ok && (server_ev & POLLIN))
    ok = fill(l->server, &l->down);
  if (ok && (server_ev & POLLOUT))
    ok = drain(l->server, &l->up);
  if (ok && (client_ev & POLLOUT))
    ok = drain(l->client, &l->down);
  if (ok && ((client_ev | server_ev) & (POLLERR | POLLNVAL)))
    ok = false;
  if (!ok)
    finish_link(p, i);
  return ok;
}

/* -------------------------------------------------------------- modes -- */

static void apply_mode(esc_test_proxy *p, esc_test_proxy_mode mode) {
  if (mode == ESC_PROXY_RESET)
    while (p->nlinks > 0)
      drop_link(p, p->nlinks - 1, true);
  if (mode == ESC_PROXY_REFUSE && p->listen_fd >= 0) {
    close(p->listen_fd);
    p->listen_fd = -1;
  }
  if (mode != ESC_PROXY_REFUSE && p->listen_fd < 0)
    p->listen_fd = listen_on(p->port);
}

/* Takes the latest request; applies it when new. Returns the mode. */
static esc_test_proxy_mode sync_mode(esc_test_proxy *p, bool *quit) {
  pthread_mutex_lock(&p->lock);
  esc_test_proxy_mode mode = p->mode;
  unsigned asked = p->asked;
  bool fresh = asked != p->done;
  *quit = p->quit;
  pthread_mutex_unlock(&p->lock);
  if (fresh)
    apply_mode(p, mode);
  pthread_mutex_lock(&p->lock);
  p->done = asked;
  pthread_cond_broadcast(&p->applied);
  pthread_mutex_unlock(&p->lock);
  return mode;
}

/* ------------------------------------------------------------- thread -- */

static void *run(void *arg) {
  esc_test_proxy *p = arg;
  struct pollfd fds[2 + 2 * MAX_LINKS];
  bool quit = false;
  for (;;) {
    esc_test_proxy_mode mode = sync_mode(p, &quit);
    if (quit)
      break;
    int n = 0;
    fds[n++] = (struct pollfd){p->wake[0], POLLIN, 0};
    fds[n++] = (struct pollfd){p->listen_fd, POLLIN, 0}; /* -1: ignored */
    bool forward = mode == ESC_PROXY_PASS || mode == ESC_PROXY_REFUSE;
    int links = forward ? p->nlinks : 0;
    for (int i = 0; i < links; i++) {
      fds[n++] = (struct pollfd){p->links[i]->client,
                                 want_client(p->links[i]), 0};
      fds[n++] = (struct pollfd){p->links[i]->server,
                                 want_server(p->links[i]), 0};
    }
    if (poll(fds, (nfds_t)n, -1) < 0)
      continue;
    if (fds[0].revents) {
      char drop[64];
      while (read(p->wake[0], drop, sizeof drop) > 0)
        ;
      continue; /* the mode may have changed under the links */
    }
    /* Backwards, so a dropped link (replaced by the last) is not skipped. */
    for (int i = links - 1; i >= 0; i--)
      serve_link(p, i, fds[2 + 2 * i].revents, fds[3 + 2 * i].revents);
    if (fds[1].revents & POLLIN)
      accept_one(p, mode);
  }
  while (p->nlinks > 0)
    drop_link(p, p->nlinks - 1, false);
  if (p->listen_fd >= 0)
    close(p->listen_fd);
  return NULL;
}

/* ---------------------------------------------------------------- api -- */

esc_test_proxy *esc_test_proxy_start(int target_port, char *why,
                                     size_t why_size) {
  esc_test_proxy *p = calloc(1, sizeof *p);
  if (!p) {
    say(why, why_size, "out of memory");
    return NULL;
  }
  p->target_port = target_port;
  p->listen_fd = listen_on(0);
  if (p->listen_fd < 0) {
    say(why, why_size, "listen on 127.0.0.1");
    free(p);
    return NULL;
  }
  p->port = bound_port(p->listen_fd);
  if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
    say(why, why_size, "pipe");
    close(p->listen_fd);
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->applied, NULL);
  int rc = pthread_create(&p->thread, NULL, run, p);
  if (rc != 0) {
    errno = rc;
    say(why, why_size, "pthread_create");
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->applied);
    free(p);
    return NULL;
  }
  return p;
}

int esc_test_proxy_port(const esc_test_proxy *p) {
  return p->port;
}

/* Records a request and waits until the thread has taken it. */
static void request(esc_test_proxy *p, esc_test_proxy_mode mode, bool quit) {
  pthread_mutex_lock(&p->lock);
  p->mode = mode;
  p->quit = quit;
  unsigned want = ++p->asked;
  if (write(p->wake[1], "x", 1) < 0) {
    /* a full pipe has a wake-up in it already */
  }
  while (!quit && (int)(p->done - want) < 0)
    pthread_cond_wait(&p->applied, &p->lock);
  pthread_mutex_unlock(&p->lock);
}

void esc_test_proxy_set_mode(esc_test_proxy *p, esc_test_proxy_mode mode) {
  request(p, mode, false);
}

int esc_test_proxy_connections(esc_test_proxy *p) {
  pthread_mutex_lock(&p->lock);
  int n = p->open;
  pthread_mutex_unlock(&p->lock);
  return n;
}

long esc_test_proxy_accepted(esc_test_proxy *p) {
  pthread_mutex_lock(&p->lock);
  long n = p->accepted;
  pthread_mutex_unlock(&p->lock);
  return n;
}

void esc_test_proxy_stop(esc_test_proxy *p) {
  if (!p)
    return;
  request(p, p->mode, true);
  pthread_join(p->thread, NULL);
  close(p->wake[0]);
  close(p->wake[1]);
  pthread_mutex_destroy(&p->lock);
  pthread_cond_destroy(&p->applied);
  free(p);
}

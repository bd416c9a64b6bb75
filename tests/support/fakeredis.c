/* A Redis that says what the test tells it to (fakeredis.h). */
#include "fakeredis.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct esc_test_fakeredis {
  int listener, port;
  pthread_t thread;
  atomic_bool stop;
  pthread_mutex_t lock;
  char *reply;
  size_t len;
};

/* Every read is taken as one command: hiredis sends one and waits. */
static void serve(esc_test_fakeredis *f, int c) {
  char buf[65536];
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {c, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    ssize_t n = read(c, buf, sizeof buf);
    if (n <= 0)
      return;
    pthread_mutex_lock(&f->lock);
    ssize_t w = f->reply ? send(c, f->reply, f->len, MSG_NOSIGNAL) : 0;
    pthread_mutex_unlock(&f->lock);
    if (w < 0)
      return;
  }
}

static void *run(void *arg) {
  esc_test_fakeredis *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {f->listener, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0)
      continue;
    int c = accept(f->listener, NULL, NULL);
    if (c < 0)
      continue;
    serve(f, c);
    close(c);
  }
  return NULL;
}

esc_test_fakeredis *esc_test_fakeredis_start(void) {
  esc_test_fakeredis *f = calloc(1, sizeof *f);
  struct sockaddr_in a = {0};
  socklen_t alen = sizeof a;
  if (!f)
    return NULL;
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  f->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (f->listener < 0 || bind(f->listener, (struct sockaddr *)&a, sizeof a) ||
      listen(f->listener, 8) ||
      getsockname(f->listener, (struct sockaddr *)&a, &alen)) {
    if (f->listener >= 0)
      close(f->listener);
    free(f);
    return NULL;
  }
  f->port = ntohs(a.sin_port);
  pthread_mutex_init(&f->lock, NULL);
  if (pthread_create(&f->thread, NULL, run, f) != 0) {
    close(f->listener);
    free(f);
    return NULL;
  }
  return f;
}

int esc_test_fakeredis_port(const esc_test_fakeredis *f) { return f->port; }

void esc_test_fakeredis_reply(esc_test_fakeredis *f, const char *resp,
                              size_t len) {
  char *copy = malloc(len ? len : 1);
  if (copy)
    memcpy(copy, resp, len);
  pthread_mutex_lock(&f->lock);
  free(f->reply);
  f->reply = copy;
  f->len = copy ? len : 0;
  pthread_mutex_unlock(&f->lock);
}

void esc_test_fakeredis_stop(esc_test_fakeredis *f) {
  if (!f)
    return;
  atomic_store(&f->stop, true);
  pthread_join(f->thread, NULL);
  close(f->listener);
  pthread_mutex_destroy(&f->lock);
  free(f->reply);
  free(f);
}

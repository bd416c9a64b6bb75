#include "worker_thread.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void *run(void *arg) {
  esc_test_worker_thread *t = arg;
  t->rc = esc_worker_run(t->w, &t->err);
  atomic_store(&t->finished, true);
  return NULL;
}

void esc_test_worker_thread_start(esc_test_worker_thread *t, esc_worker *w) {
  memset(t, 0, sizeof *t);
  t->w = w;
  t->err = (esc_error)ESC_ERROR_INIT;
  atomic_init(&t->finished, false);
  int e = pthread_create(&t->thread, NULL, run, t);
  if (e)
    fail_msg("cannot start a worker thread: %s", strerror(e));
}

bool esc_test_worker_thread_wait(esc_test_worker_thread *t, int timeout_ms) {
  for (int waited = 0; !atomic_load(&t->finished); waited += 20) {
    if (waited >= timeout_ms)
      return false;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return true;
}

esc_status esc_test_worker_thread_stop(esc_test_worker_thread *t) {
  esc_worker_stop(t->w);
  pthread_join(t->thread, NULL);
  return t->rc;
}

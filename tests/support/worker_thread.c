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

void esc_test_catch_up(const esc_worker_options *o, const esc_projection *p) {
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = esc_worker_new(o, &err);
  if (!w)
    fail_msg("worker: %s", err.msg);
  if (esc_worker_add(w, p, &err) != ESC_OK)
    fail_msg("add %s: %s", p->name, err.msg);
  esc_status rc = esc_worker_run_until_caught_up(w, 30000, &err);
  esc_worker_free(w);
  if (rc)
    fail_msg("catch up %s: %s", p->name, err.msg);
}

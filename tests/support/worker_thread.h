/*
 * A projection worker running esc_worker_run on a thread of its own, for
 * tests that append, query or break things while it works.
 */
#ifndef ESC_TEST_WORKER_THREAD_H
#define ESC_TEST_WORKER_THREAD_H

#include <esc/projection.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct esc_test_worker_thread {
  esc_worker *w; /* borrowed */
  pthread_t thread;
  esc_status rc; /* esc_worker_run's, once stopped */
  esc_error err;
  atomic_bool finished; /* esc_worker_run returned (t->rc is set) */
} esc_test_worker_thread;

/* Starts esc_worker_run(w) on a new thread; fails the test if it cannot. */
void esc_test_worker_thread_start(esc_test_worker_thread *t, esc_worker *w);

/* Waits up to timeout_ms for esc_worker_run to return on its own (a
 * fatal error); true when it did. The thread still needs _stop. */
bool esc_test_worker_thread_wait(esc_test_worker_thread *t, int timeout_ms);

/* Asks the worker to stop after the batch in flight, waits for the thread
 * and returns what esc_worker_run returned (t->err says why). */
esc_status esc_test_worker_thread_stop(esc_test_worker_thread *t);

/* A worker with options o running projection p until caught up (30 s at
 * most), then freed; fails the test, naming what, on any error. For
 * tests that need one catch-up, not a running worker. */
void esc_test_catch_up(const esc_worker_options *o, const esc_projection *p);

#endif

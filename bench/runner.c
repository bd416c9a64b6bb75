/*
 * The phase runner: N worker threads that set up, warm up, start together
 * and run timed operations until a shared deadline.
 *
 * Only operations that complete before the deadline count, so a phase's
 * rate is counted units over exactly the phase's duration; the operations
 * still in flight at the deadline are finished but not counted.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bench_esc_phase(int i) {
  return i % 4 == 1 || i % 4 == 2;
}

struct phase_sync {
  pthread_barrier_t ready; /* every worker set up (or failed) */
  pthread_barrier_t go;    /* the deadline is published */
  _Atomic uint64_t deadline_ns;
  atomic_int stop; /* a worker failed: everyone stops */
};

struct phase_thread {
  const bench_phase *phase;
  struct phase_sync *sync;
  int index;
  pthread_t tid;
  bench_hist *hist;
  uint64_t ops;
  uint64_t units;
  int failed;
  char err[BENCH_ERR_MAX];
};

/* ------------------------------------------------------------------------
 * Tally
 * ------------------------------------------------------------------------ */

int bench_tally_init(bench_tally *t, char *err, size_t errlen) {
  memset(t, 0, sizeof(*t));
  t->hist = malloc(sizeof(*t->hist));
  if (!t->hist) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  bench_hist_init(t->hist);
  return 0;
}

void bench_tally_release(bench_tally *t) {
  if (!t)
    return;
  free(t->hist);
  t->hist = NULL;
}

double bench_tally_rate(const bench_tally *t) {
  return t->seconds > 0 ? (double)t->units / t->seconds : 0.0;
}

/* ------------------------------------------------------------------------
 * Worker thread
 * ------------------------------------------------------------------------ */

static void thread_fail(struct phase_thread *th) {
  th->failed = 1;
  atomic_store(&th->sync->stop, 1);
}

static int warm_up(struct phase_thread *th, void *worker) {
  const bench_worker_ops *ops = th->phase->ops;
  for (int i = 0; i < th->phase->warmup_ops; i++) {
    uint64_t units = 0;
    if (ops->prepare(worker, th->err, sizeof(th->err)) != 0 ||
        ops->exec(worker, &units, th->err, sizeof(th->err)) != 0)
      return -1;
  }
  return 0;
}

static void measure(struct phase_thread *th, void *worker) {
  const bench_worker_ops *ops = th->phase->ops;
  uint64_t deadline = atomic_load(&th->sync->deadline_ns);

  while (!atomic_load_explicit(&th->sync->stop, memory_order_relaxed)) {
    uint64_t units = 0;
    if (ops->prepare(worker, th->err, sizeof(th->err)) != 0) {
      thread_fail(th);
      return;
    }
    uint64_t t0 = bench_now_ns();
    if (t0 >= deadline)
      return;
    if (ops->exec(worker, &units, th->err, sizeof(th->err)) != 0) {
      thread_fail(th);
      return;
    }
    uint64_t t1 = bench_now_ns();
    if (t1 > deadline)
      return; /* finished after the end: not counted */
    bench_hist_record(th->hist, t1 - t0);
    th->ops++;
    th->units += units;
  }
}

static void *thread_main(void *arg) {
  struct phase_thread *th = arg;
  const bench_phase *p = th->phase;
  void *worker = NULL;

  if (p->ops->setup(p->shared, th->index, &worker, th->err, sizeof(th->err)) !=
          0 ||
      warm_up(th, worker) != 0)
    thread_fail(th);

  /* Everyone reaches both barriers, failed or not, or the others hang. */
  pthread_barrier_wait(&th->sync->ready);
  pthread_barrier_wait(&th->sync->go);

  if (!th->failed && !atomic_load(&th->sync->stop))
    measure(th, worker);
  p->ops->teardown(worker);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Phase
 * ------------------------------------------------------------------------ */

static void collect(const bench_phase *p, struct phase_thread *threads,
                    bench_tally *tally) {
  for (int i = 0; i < p->threads; i++) {
    bench_hist_merge(tally->hist, threads[i].hist);
    tally->ops += threads[i].ops;
    tally->units += threads[i].units;
  }
  tally->seconds += p->seconds;
}

static int first_failure(const bench_phase *p, struct phase_thread *threads,
                         char *err, size_t errlen) {
  for (int i = 0; i < p->threads; i++) {
    if (threads[i].failed) {
      bench_errf(err, errlen, "%s worker %d: %s", p->label, i, threads[i].err);
      return -1;
    }
  }
  return 0;
}

static void free_threads(struct phase_thread *threads, int n) {
  for (int i = 0; i < n; i++)
    free(threads[i].hist);
  free(threads);
}

int bench_run_phase(const bench_phase *p, bench_tally *tally, char *err,
                    size_t errlen) {
  struct phase_sync sync;
  struct phase_thread *threads;
  int rc = -1;

  threads = calloc((size_t)p->threads, sizeof(*threads));
  if (!threads) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < p->threads; i++) {
    threads[i].hist = malloc(sizeof(*threads[i].hist));
    if (!threads[i].hist) {
      bench_errf(err, errlen, "out of memory");
      goto out_free;
    }
    bench_hist_init(threads[i].hist);
    threads[i].phase = p;
    threads[i].sync = &sync;
    threads[i].index = i;
  }

  atomic_init(&sync.deadline_ns, 0);
  atomic_init(&sync.stop, 0);
  pthread_barrier_init(&sync.ready, NULL, (unsigned)p->threads + 1);
  pthread_barrier_init(&sync.go, NULL, (unsigned)p->threads + 1);

  for (int i = 0; i < p->threads; i++) {
    if (pthread_create(&threads[i].tid, NULL, thread_main, &threads[i]) != 0) {
      /* Workers already started would wait at the barrier for ever. */
      fprintf(stderr, "esc-bench: cannot start a thread\n");
      abort();
    }
  }

  pthread_barrier_wait(&sync.ready);
  uint64_t start = bench_now_ns();
  atomic_store(&sync.deadline_ns, start + (uint64_t)(p->seconds * 1e9));
  pthread_barrier_wait(&sync.go);

  for (int i = 0; i < p->threads; i++)
    pthread_join(threads[i].tid, NULL);
  pthread_barrier_destroy(&sync.ready);
  pthread_barrier_destroy(&sync.go);

  rc = first_failure(p, threads, err, errlen);
  if (rc == 0)
    collect(p, threads, tally);

out_free:
  free_threads(threads, p->threads);
  return rc;
}

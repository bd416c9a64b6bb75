/*
 * Group commit: the esc_append calls of many threads coalesced into one
 * call of <schema>.append_group() (migration 18) per flush, one
 * transaction, one commit. See docs/decisions/0019-group-commit.md.
 *
 * Callers queue a request and sleep on their own condition variable.
 * Flushers (each a thread with its own esc_store) take turns gathering:
 * one at a time waits up to the window (or until max_batch are queued),
 * takes the queue and sends it; while it waits for the commit, the next
 * flusher gathers. A request is answered only once its flush's reply
 * came, i.e. after COMMIT returned.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FAILED = 4 }; /* append_group's status of a request that raised */
#define MAX_BATCH_LIMIT 1024
#define DEFAULT_MAX_BATCH 64
#define MAX_FLUSHERS 16
#define DEFAULT_WINDOW_US 200
#define DEFAULT_FLUSHERS 2

/* A caller's append: what to append and, once done, its outcome. */
struct request {
  esc_append_request a;
  bool done;
  pthread_cond_t cond; /* signalled once done */
  struct request *next;
};

struct flusher {
  esc_group_commit *gc;
  esc_store *store;
  pthread_t thread;
  bool started;
  struct esc__buf buf;
  struct request **reqs;            /* room for one flush's requests */
  const esc_append_request **areqs; /* the same, as esc__append_arrays wants */
};

struct esc_group_commit {
  pthread_mutex_t mu;
  pthread_cond_t work; /* an idle flusher waits for requests */
  pthread_cond_t more; /* the gathering flusher waits for a full batch */
  struct request *head, **tail;
  size_t queued;
  bool gathering; /* a flusher is waiting out its window */
  bool closing;
  size_t max_batch;
  int window_us;
  int nflushers;
  struct flusher *flushers;
};

/* ---------------------------------------------------------------- flush -- */

/* Request i's row of the reply. */
static void answer(struct request *r, const PGresult *res, int row) {
  int status = (int)esc__get_be32(PQgetvalue(res, row, 0));
  char what[ESC_STREAM_ID_MAX + 16];
  if (status != FAILED) {
    r->a.status = esc__append_interpret_row(
        res, row, r->a.stream_id, r->a.expected, &r->a.result, &r->a.error);
    return;
  }
  snprintf(what, sizeof what, "append to %s", r->a.stream_id);
  r->a.status = esc__fail_sqlstate(
      &r->a.error, PQgetisnull(res, row, 7) ? NULL : PQgetvalue(res, row, 7),
      PQgetisnull(res, row, 8) ? NULL : PQgetvalue(res, row, 8), what);
}

/* The flush never reached the server whole, or its reply was lost:
 * each request is told so (ESC_EUNKNOWN once it was sent). */
static void fail_all(esc_store *st, struct request *const *reqs, size_t count,
                     esc_status rc, const esc_error *why, const PGresult *res) {
  for (size_t i = 0; i < count; i++) {
    struct request *r = reqs[i];
    char what[ESC_STREAM_ID_MAX + 16];
    snprintf(what, sizeof what, "append to %s", r->a.stream_id);
    if (why) {
      r->a.error = *why;
      r->a.status = rc;
    } else if (esc__fail_store(&r->a.error, st, res, what) != ESC_ETIMEDOUT) {
      r->a.status = ESC_ECONN; /* the session ended: maybe committed */
    } else {
      r->a.status = ESC_ETIMEDOUT; /* cancelled, or no reply in time */
    }
    r->a.status = esc__append_outcome(st, r->a.stream_id, r->a.status,
                                      why ? false : st->call.sent, &r->a.error);
  }
}

/* The server refused the flush as a whole (so nothing of it committed):
 * each request on its own, as esc_append would send it. */
static void one_by_one(esc_store *st, struct request *const *reqs,
                       size_t count) {
  for (size_t i = 0; i < count; i++) {
    struct request *r = reqs[i];
    r->a.status =
        esc__append_direct(st, r->a.stream_id, r->a.expected, r->a.events,
                           r->a.n, &r->a.result, &r->a.error);
  }
}

/* Whether the flush may have committed although no whole reply came: the
 * round trip failed, or the server ended the session (FATAL), which it
 * may do after the commit of the statement's implicit transaction and
 * before its reply is complete. An ERROR is always before the commit. */
static bool outcome_unknown(const esc_store *st, const PGresult *res) {
  const char *severity =
      res ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
  return !res || esc__call_failed(&st->call) ||
         PQstatus(st->conn) != CONNECTION_OK ||
         (severity && strcmp(severity, "ERROR") != 0);
}

/* A statement the server cancelled (statement_timeout) was rolled back:
 * sending each request again would only time out again. */
static bool cancelled(const PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return state && strcmp(state, "57014") == 0;
}

static void flush(struct flusher *f, struct request *const *reqs,
                  size_t count) {
  esc_store *st = f->store;
  esc_error err = ESC_ERROR_INIT;
  const char *stmt, *values[ESC__APPEND_ARRAYS];
  int lengths[ESC__APPEND_ARRAYS], formats[ESC__APPEND_ARRAYS];
  esc_status rc = esc__prepare(st, ESC__STMT_APPEND_GROUP, &stmt, &err);
  if (rc) {
    fail_all(st, reqs, count, rc, &err, NULL);
    return;
  }
  for (size_t i = 0; i < count; i++)
    f->areqs[i] = &reqs[i]->a;
  if (!esc__append_arrays(&f->buf, f->areqs, count, values, lengths)) {
    esc__fail(&err, ESC_ENOMEM, "group commit: out of memory");
    fail_all(st, reqs, count, ESC_ENOMEM, &err, NULL);
    return;
  }
  for (int i = 0; i < ESC__APPEND_ARRAYS; i++)
    formats[i] = 1;
  PGresult *res = esc__exec(st, &(struct esc__query){.stmt = stmt,
                                                     .n = ESC__APPEND_ARRAYS,
                                                     .values = values,
                                                     .lengths = lengths,
                                                     .formats = formats,
                                                     .binary = 1});
  if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == (int)count &&
      PQnfields(res) == 9) {
    for (size_t i = 0; i < count; i++)
      answer(reqs[i], res, (int)i);
  } else if (outcome_unknown(st, res) || cancelled(res)) {
    fail_all(st, reqs, count, ESC_ECONN, NULL, res);
  } else {
    one_by_one(st, reqs, count);
  }
  PQclear(res);
}

/* -------------------------------------------------------------- flushers -- */

static void deadline_after_us(struct timespec *ts, int us) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_nsec += (long)us * 1000;
  ts->tv_sec += ts->tv_nsec / 1000000000;
  ts->tv_nsec %= 1000000000;
}

/* Takes up to max_batch requests off the queue into reqs; with mu held. */
static size_t take(esc_group_commit *gc, struct request **reqs) {
  size_t count = 0;
  while (gc->head && count < gc->max_batch) {
    reqs[count++] = gc->head;
    gc->head = gc->head->next;
    gc->queued--;
  }
  if (!gc->head)
    gc->tail = &gc->head;
  return count;
}

/* Waits, with mu held, for requests and the turn to gather them, then
 * for the window; returns how many it took (0: closing, queue empty). */
static size_t gather(esc_group_commit *gc, struct request **reqs) {
  while ((!gc->head || gc->gathering) && !gc->closing)
    pthread_cond_wait(&gc->work, &gc->mu);
  if (!gc->head)
    return 0;
  if (gc->window_us > 0 && gc->queued < gc->max_batch && !gc->closing) {
    struct timespec until;
    gc->gathering = true;
    deadline_after_us(&until, gc->window_us);
    while (gc->queued < gc->max_batch && !gc->closing &&
           pthread_cond_timedwait(&gc->more, &gc->mu, &until) != ETIMEDOUT)
      ;
    gc->gathering = false;
  }
  size_t count = take(gc, reqs);
  if (gc->head)
    pthread_cond_signal(&gc->work); /* the rest for the next flusher */
  return count;
}

static void *flusher_main(void *arg) {
  struct flusher *f = arg;
  esc_group_commit *gc = f->gc;
  struct request **reqs = f->reqs;
  pthread_mutex_lock(&gc->mu);
  for (;;) {
    size_t count = gather(gc, reqs);
    if (!count)
      break;
    pthread_mutex_unlock(&gc->mu);
    flush(f, reqs, count);
    pthread_mutex_lock(&gc->mu);
    for (size_t i = 0; i < count; i++) {
      reqs[i]->done = true;
      pthread_cond_signal(&reqs[i]->cond);
    }
  }
  pthread_mutex_unlock(&gc->mu);
  return NULL;
}

/* --------------------------------------------------------------- callers -- */

esc_status esc__group_append(esc_store *st, const char *stream_id,
                             int64_t expected, const esc_event_data *events,
                             size_t n, esc_append_result *result,
                             esc_error *err) {
  esc_group_commit *gc = st->group_commit;
  struct request r = {.a = {.stream_id = stream_id,
                            .expected = expected,
                            .events = events,
                            .n = n,
                            .error = ESC_ERROR_INIT}};
  esc_status rc = esc__append_validate(st, stream_id, expected, events, n, err);
  if (rc)
    return rc;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&r.cond, &attr);
  pthread_condattr_destroy(&attr);

  pthread_mutex_lock(&gc->mu);
  if (gc->closing) {
    pthread_mutex_unlock(&gc->mu);
    pthread_cond_destroy(&r.cond);
    return esc__fail(err, ESC_ECONN,
                     "append to %s: not sent, nothing was appended (the group "
                     "commit is closing)",
                     stream_id);
  }
  *gc->tail = &r;
  gc->tail = &r.next;
  gc->queued++;
  if (!gc->gathering)
    pthread_cond_signal(&gc->work);
  else if (gc->queued >= gc->max_batch)
    pthread_cond_signal(&gc->more);
  while (!r.done)
    pthread_cond_wait(&r.cond, &gc->mu);
  pthread_mutex_unlock(&gc->mu);
  pthread_cond_destroy(&r.cond);

  if (r.a.status) {
    if (err)
      *err = r.a.error;
    return r.a.status;
  }
  if (result)
    *result = r.a.result;
  esc__clear(err);
  return ESC_OK;
}

/* ------------------------------------------------------------- lifecycle -- */

static esc_status check_options(const esc_group_commit_options *o,
                                esc_error *err) {
  if (o->max_batch < 0 || o->max_batch > MAX_BATCH_LIMIT)
    return esc__fail(err, ESC_EINVAL,
                     "group commit: max_batch %d is not in 1..%d (0: %d)",
                     o->max_batch, MAX_BATCH_LIMIT, DEFAULT_MAX_BATCH);
  if (o->flushers < 0 || o->flushers > MAX_FLUSHERS)
    return esc__fail(err, ESC_EINVAL,
                     "group commit: flushers %d is not in 1..%d (0: %d)",
                     o->flushers, MAX_FLUSHERS, DEFAULT_FLUSHERS);
  if (o->window_us > 1000000)
    return esc__fail(err, ESC_EINVAL,
                     "group commit: window_us %d is over one second",
                     o->window_us);
  return ESC_OK;
}

static bool init_sync(esc_group_commit *gc) {
  pthread_condattr_t attr;
  bool ok = pthread_condattr_init(&attr) == 0;
  ok = ok && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0;
  ok = ok && pthread_mutex_init(&gc->mu, NULL) == 0;
  ok = ok && pthread_cond_init(&gc->work, &attr) == 0;
  ok = ok && pthread_cond_init(&gc->more, &attr) == 0;
  pthread_condattr_destroy(&attr);
  return ok;
}

static esc_status open_flushers(esc_group_commit *gc, const char *conninfo,
                                const esc_store_options *store_opts,
                                esc_error *err) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  if (store_opts)
    so = *store_opts;
  so.group_commit = NULL;
  if (!so.app_name)
    so.app_name = "esc-group-commit";
  for (int i = 0; i < gc->nflushers; i++) {
    struct flusher *f = &gc->flushers[i];
    f->gc = gc;
    f->reqs = calloc(gc->max_batch, sizeof *f->reqs);
    f->areqs = calloc(gc->max_batch, sizeof *f->areqs);
    if (!f->reqs || !f->areqs)
      return esc__fail(err, ESC_ENOMEM, "group commit: out of memory");
    f->store = esc_store_open(conninfo, &so, err);
    if (!f->store)
      return err ? err->code : ESC_ECONN;
  }
  for (int i = 0; i < gc->nflushers; i++) {
    struct flusher *f = &gc->flushers[i];
    if (pthread_create(&f->thread, NULL, flusher_main, f) != 0)
      return esc__fail(err, ESC_ENOMEM, "group commit: cannot start a thread");
    f->started = true;
  }
  return ESC_OK;
}

esc_group_commit *esc_group_commit_new(const char *conninfo,
                                       const esc_store_options *store_opts,
                                       const esc_group_commit_options *opts,
                                       esc_error *err) {
  esc_group_commit_options o = ESC_GROUP_COMMIT_OPTIONS_INIT;
  esc_error local = ESC_ERROR_INIT;
  if (!err)
    err = &local;
  if (opts)
    o = *opts;
  if (check_options(&o, err))
    return NULL;
  esc_group_commit *gc = calloc(1, sizeof *gc);
  int nflushers = o.flushers ? o.flushers : DEFAULT_FLUSHERS;
  struct flusher *fl = calloc((size_t)nflushers, sizeof *fl);
  if (!gc || !fl || !init_sync(gc)) {
    free(gc);
    free(fl);
    esc__fail(err, ESC_ENOMEM, "group commit: out of memory");
    return NULL;
  }
  gc->tail = &gc->head;
  gc->max_batch = o.max_batch ? (size_t)o.max_batch : DEFAULT_MAX_BATCH;
  gc->window_us = o.window_us ? o.window_us : DEFAULT_WINDOW_US;
  gc->nflushers = nflushers;
  gc->flushers = fl;
  if (open_flushers(gc, conninfo, store_opts, err)) {
    esc_group_commit_free(gc);
    return NULL;
  }
  esc__clear(err);
  return gc;
}

void esc_group_commit_free(esc_group_commit *gc) {
  if (!gc)
    return;
  pthread_mutex_lock(&gc->mu);
  gc->closing = true;
  pthread_cond_broadcast(&gc->work);
  pthread_cond_broadcast(&gc->more);
  pthread_mutex_unlock(&gc->mu);
  for (int i = 0; i < gc->nflushers; i++) {
    struct flusher *f = &gc->flushers[i];
    if (f->started)
      pthread_join(f->thread, NULL);
    esc_store_free(f->store);
    esc__buf_release(&f->buf);
    free(f->reqs);
    free(f->areqs);
  }
  free(gc->flushers);
  pthread_cond_destroy(&gc->more);
  pthread_cond_destroy(&gc->work);
  pthread_mutex_destroy(&gc->mu);
  free(gc);
}

/*
 * order-demo: the worker (the six projections and the fulfillment
 * process) on its own thread of this process, and waiting for the process
 * and the projections to catch up with the log at the end.
 */
#include "demo.h"

#include <stdio.h>
#include <string.h>

static void worker_log(void *userdata, const char *line) {
  (void)userdata;
  printf("  worker: %s\n", line);
  fflush(stdout);
}

static void *worker_main(void *arg) {
  demo *d = arg;
  d->worker_rc = esc_worker_run(d->worker, &d->worker_err);
  if (d->worker_rc)
    demo_fail(d, "projection worker", &d->worker_err);
  return NULL;
}

esc_status start_worker(demo *d, esc_error *err) {
  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  wo.pg_url = d->o.pg_url;
  wo.redis_url = d->o.redis_url;
  wo.schema = d->o.schema;
  wo.poll_ms = 200;
  if (d->o.verbose)
    wo.log = worker_log;
  d->worker = esc_worker_new(&wo, err);
  if (!d->worker)
    return err->code;
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++)
    if (esc_worker_add(d->worker, &d->projections[i], err))
      return err->code;
  d->fulfillment = (order_fulfillment_options)ORDER_FULFILLMENT_OPTIONS_INIT;
  order_fulfillment_init(&d->process, &d->fulfillment);
  esc_process_options po = ESC_PROCESS_OPTIONS_INIT;
  po.pg_url = d->o.pg_url;
  po.schema = d->o.schema;
  po.partitions = d->o.partitions;
  if (esc_worker_add_process(d->worker, &d->process, &po, err))
    return err->code;
  if (pthread_create(&d->worker_thread, NULL, worker_main, d))
    return esc_error_set(err, ESC_ENOMEM, "cannot start the worker thread");
  return ESC_OK;
}

/* Once told to stop, waits for the log's newest position to stay put
 * for a while: the process has done what the last commands triggered. */
static void *saga_main(void *arg) {
  demo *d = arg;
  int64_t last = -1;
  int quiet = 0;
  while (!atomic_load(&d->failed)) {
    if (!atomic_load(&d->saga_stop)) {
      sleep_ms(20);
      continue;
    }
    int64_t now = 0;
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_store_newest(d->saga_store, &now, &err);
    if (rc) {
      d->saga_rc = rc;
      d->saga_err = err;
      demo_fail(d, "fulfillment process", &err);
      break;
    }
    quiet = now == last ? quiet + 1 : 0;
    last = now;
    if (quiet >= 25)
      break;
    sleep_ms(40);
  }
  return NULL;
}

esc_status start_saga(demo *d, esc_error *err) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = d->o.schema;
  so.app_name = "order-demo";
  d->saga_store = esc_store_open(d->o.pg_url, &so, err);
  if (!d->saga_store)
    return err->code;
  if (pthread_create(&d->saga_thread, NULL, saga_main, d))
    return esc_error_set(err, ESC_ENOMEM, "cannot start the waiting thread");
  return ESC_OK;
}

/* Stops the fulfillment process (once idle) and the worker, and frees both. */
void stop_background(demo *d, bool saga_started, bool worker_started) {
  if (saga_started) {
    atomic_store(&d->saga_stop, true);
    pthread_join(d->saga_thread, NULL);
  }
  esc_store_free(d->saga_store);
  d->saga_store = NULL;
  if (worker_started) {
    esc_worker_stop(d->worker);
    pthread_join(d->worker_thread, NULL);
  }
  esc_worker_free(d->worker);
  d->worker = NULL;
}

/* ------------------------------------------------------------------------
 * Waiting for the projections
 * ------------------------------------------------------------------------ */

/* Waits until every projection has passed the last event of the
 * categories it follows, as read into the model. */
esc_status await_projections(const demo *d, esc_query *q, const model *m,
                             esc_error *err) {
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++) {
    const esc_projection *p = &d->projections[i];
    esc_position token = ESC_POSITION_START;
    for (size_t c = 0; p->categories && p->categories[c]; c++) {
      const esc_position *last = strcmp(p->categories[c], "order") == 0
                                     ? &m->order_next
                                     : &m->inventory_next;
      if (esc_position_cmp(last, &token) > 0)
        token = *last;
    }
    esc_status rc = esc_query_wait(q, p->name, p->partitions, &token,
                                   CATCH_UP_TIMEOUT_MS, err);
    if (rc)
      return rc;
  }
  return ESC_OK;
}

/*
 * The process runtime's own work between deliveries, run by the worker
 * holding any partition of the process (esc_subscription.tick): firing
 * due deadlines and retrying failing instances. Both claim their rows in
 * PostgreSQL first (a claim lapses when its worker dies), and both go
 * through esc__runner_input, so a firing or a retry done twice records
 * and executes nothing twice: a deadline already fired, cancelled or
 * replaced is dropped by its instance stream.
 */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

/* How often a worker looks for due deadlines and retries. */
#define TICK_EVERY_MS 100
#define DUE_BATCH 64
#define RETRY_BATCH 8

static int64_t mono_ms(void) {
  return esc_now_us() / 1000;
}

/* ----------------------------------------------------------- deadlines -- */

/* Fires one claimed deadline; an instance failing on it is parked. */
static esc_status fire(esc__runner *r, const struct esc__due *due,
                       esc_error *err) {
  esc__process_delivery in = {.kind = ESC_PROCESS_INPUT_DEADLINE,
                              .time_us = esc__runner_now_us(r),
                              .deadline_id = due->id};
  esc_error why = ESC_ERROR_INIT;
  esc_status rc = esc__runner_input(r, due->instance, &in, &why);
  if (rc == ESC_OK || esc__runner_passing(rc)) {
    if (rc && err)
      *err = why;
    return rc;
  }
  esc__runner_log(r, "process %s: instance %s parked on a deadline: %s",
                  r->p->name, due->instance, why.msg);
  return esc__runner_park(r, due->instance, "deadline", &due->id, why.msg,
                          err);
}

static esc_status fire_due(esc__runner *r, bool *worked, esc_error *err) {
  struct esc__due due[DUE_BATCH];
  size_t n = 0;
  esc_status rc = esc__runner_claim_deadlines(r, esc__runner_now_us(r), due,
                                              DUE_BATCH, &n, err);
  for (size_t i = 0; i < n && rc == ESC_OK; i++)
    rc = fire(r, &due[i], err);
  /* A full batch: more may be due, come back without sleeping. */
  *worked = *worked || n == DUE_BATCH;
  return rc;
}

/* -------------------------------------------------------------- retries -- */

/* The delivery of a kept input; an event is read back by its id
 * (*gone when retention removed it: nothing to replay). */
static esc_status kept_delivery(esc__runner *r, const struct esc__kept *k,
                                esc_events *ev, esc__process_delivery *in,
                                bool *gone, esc_error *err) {
  memset(in, 0, sizeof *in);
  *gone = false;
  if (k->deadline) {
    in->kind = ESC_PROCESS_INPUT_DEADLINE;
    in->time_us = esc__runner_now_us(r);
    in->deadline_id = k->ref;
    return ESC_OK;
  }
  esc_status rc = esc_read_event(r->store, &k->ref, ev, err);
  if (rc == ESC_ENOTFOUND) {
    *gone = true;
    return ESC_OK;
  }
  if (rc != ESC_OK)
    return rc;
  in->kind = ESC_PROCESS_INPUT_EVENT;
  in->event = &ev->items[0];
  in->time_us = ev->items[0].recorded_at_us;
  return ESC_OK;
}

/* Replays kept inputs after *upto, in order, moving *upto past each one
 * handled. A failure of the instance is ESC_EINVAL-style in why. */
static esc_status replay_page(esc__runner *r, const char *instance,
                              int64_t *upto, bool *empty, esc_error *why) {
  struct esc__kept *kept = NULL;
  size_t n = 0;
  esc_status rc = esc__runner_kept_inputs(r, instance, *upto, &kept, &n, why);
  *empty = n == 0;
  for (size_t i = 0; i < n && rc == ESC_OK; i++) {
    esc_events ev = ESC_EVENTS_INIT;
    esc__process_delivery in;
    bool gone = false;
    rc = kept_delivery(r, &kept[i], &ev, &in, &gone, why);
    if (rc == ESC_OK && !gone)
      rc = esc__runner_input(r, instance, &in, why);
    if (rc == ESC_OK)
      *upto = kept[i].seq;
    esc_events_release(&ev);
  }
  free(kept);
  return rc;
}

/* Retries one claimed instance: its pending commands, then its kept
 * inputs until none is left. */
static esc_status retry(esc__runner *r, const char *instance, int attempts,
                        esc_error *err) {
  esc_error why = ESC_ERROR_INIT;
  int64_t upto = 0;
  bool flows = false, empty = false;
  esc_status rc = esc__runner_input(r, instance, NULL, &why);
  while (rc == ESC_OK && !flows) {
    rc = replay_page(r, instance, &upto, &empty, &why);
    if (rc == ESC_OK && empty)
      rc = esc__runner_unpark(r, instance, upto, &flows, &why);
  }
  if (rc == ESC_OK) {
    esc__runner_log(r, "process %s: instance %s flows again", r->p->name,
                    instance);
    return ESC_OK;
  }
  if (esc__runner_passing(rc)) {
    if (err)
      *err = why;
    return rc;
  }
  esc__runner_log(r, "process %s: instance %s failed again (attempt %d): %s",
                  r->p->name, instance, attempts + 1, why.msg);
  return esc__runner_park_failed(r, instance, attempts, why.msg, err);
}

static esc_status retry_due(esc__runner *r, bool *worked, esc_error *err) {
  char instances[RETRY_BATCH][ESC_PROCESS_INSTANCE_MAX + 1];
  int attempts[RETRY_BATCH];
  size_t n = 0;
  esc_status rc =
      esc__runner_claim_parked(r, instances, attempts, RETRY_BATCH, &n, err);
  for (size_t i = 0; i < n && rc == ESC_OK; i++)
    rc = retry(r, instances[i], attempts[i], err);
  *worked = *worked || n == RETRY_BATCH;
  return rc;
}

/* ----------------------------------------------------------------- tick -- */

esc_status esc__runner_tick(int partition, bool *worked, void *userdata,
                            esc_error *err) {
  esc__runner *r = userdata;
  int64_t now = mono_ms();
  (void)partition; /* claims, not partitions, keep two workers apart */
  *worked = false;
  if (now < r->next_tick_ms)
    return ESC_OK;
  r->next_tick_ms = now + TICK_EVERY_MS;
  esc_status rc = fire_due(r, worked, err);
  if (rc == ESC_OK)
    rc = retry_due(r, worked, err);
  /* What the worker backs off on; the rest is tried again next tick
   * (the claims lapse). */
  if (rc == ESC_ECONN || rc == ESC_ETIMEDOUT || rc == ESC_EIO)
    return rc;
  if (rc != ESC_OK) {
    esc__runner_log(r, "process %s: %s; trying again", r->p->name,
                    err ? err->msg : esc_strerror(rc));
    r->next_tick_ms = now + 1000;
  }
  return ESC_OK;
}

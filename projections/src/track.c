/*
 * One batch of one track: read events after the track's checkpoint, run the
 * handler on those of this partition, and send the commands with the
 * checkpoint compare-and-set as one atomic unit. If Redis says the
 * checkpoint moved (a duplicate delivery, a zombie, a second worker), the
 * batch is dropped and the track continues from the checkpoint Redis has.
 */
#include "worker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ filters -- */

static bool listed(const char *const *list, const char *name) {
  if (!list)
    return true;
  for (; *list; list++)
    if (strcmp(*list, name) == 0)
      return true;
  return false;
}

/* A single followed category is read through its index; several (or none)
 * are read from $all and filtered here. */
static const char *read_category(const esc_projection *p) {
  return p->categories && p->categories[0] && !p->categories[1]
             ? p->categories[0]
             : NULL;
}

static bool wanted(const struct part *pt, const esc_recorded_event *e) {
  const esc_projection *p = pt->proj->def;
  char category[ESC_STREAM_ID_MAX + 1];
  esc_stream_category(e->stream_id, category, sizeof category);
  return listed(p->categories, category) && listed(p->event_types, e->type) &&
         esc__partition_of(e->stream_id, p->partitions) == pt->index;
}

/* ----------------------------------------------------------- handling -- */

/* Decodes e for the handler when the projection has a registry that knows
 * its type; otherwise the handler gets the raw event only. */
static esc_status decode(esc_worker *w, const esc_projection *p,
                         const esc_recorded_event *e, esc_event *out,
                         esc_error *err) {
  const esc_event_type *type;
  *out = (esc_event){NULL, NULL, e};
  if (!p->events || !(type = esc_event_registry_find(p->events, e->type)))
    return ESC_OK;
  if (type->size > w->decoded_size) {
    void *grown = realloc(w->decoded, type->size);
    if (!grown)
      return esc_error_set(err, ESC_ENOMEM, "decode: out of memory");
    w->decoded = grown;
    w->decoded_size = type->size;
  }
  msgpack_zone_clear(&w->zone);
  esc_status rc =
      esc_event_decode(p->events, e, &w->zone, w->decoded, &type, err);
  if (!rc)
    *out = (esc_event){type, w->decoded, e};
  return rc;
}

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Runs the handler on one event, retrying with backoff. On success the
 * event's commands stay in the batch; on failure they are dropped and err
 * says why. */
static esc_status handle(esc_worker *w, struct track *t,
                         const esc_projection *p, const esc_recorded_event *e,
                         int *attempts, esc_error *err) {
  int max = p->max_attempts > 0 ? p->max_attempts : 3;
  esc_status rc = ESC_OK;
  for (*attempts = 1;; (*attempts)++) {
    esc_event ev;
    esc__ctx_begin_event(&t->ctx);
    rc = decode(w, p, e, &ev, err);
    if (!rc)
      rc = p->handle(&t->ctx, &ev, p->userdata, err);
    if (!rc)
      return ESC_OK;
    esc__ctx_drop_event(&t->ctx);
    if (*attempts >= max || rc == ESC_ENOMEM)
      return rc;
    pause_ms(10 << (*attempts - 1));
  }
}

/* A handler gave up on e: park it, or stop the partition. *stop tells the
 * caller to end the batch before e. */
static esc_status give_up(esc_worker *w, struct part *pt, struct track *t,
                          const esc_recorded_event *e, int attempts,
                          const esc_error *why, bool *stop, esc_error *err) {
  const esc_projection *p = pt->proj->def;
  *stop = p->on_error == ESC_ON_ERROR_STOP;
  if (*stop) {
    t->stopped = true;
    esc__worker_log(w,
                    "%s/%d: stopped at %s@%" PRId64 " (%s) after %d attempts: "
                    "%s",
                    p->name, pt->index, e->stream_id, e->stream_version,
                    e->type, attempts, why->msg);
    return ESC_OK;
  }
  esc__worker_log(w, "%s/%d: parked %s@%" PRId64 " (%s): %s", p->name,
                  pt->index, e->stream_id, e->stream_version, e->type,
                  why->msg);
  return esc__dead_letter_park(w->pg, w->schema, p->name, pt->index, e,
                               why->msg, attempts, err);
}

/* Handles the events of a batch into t->ctx; *upto gets the position the
 * checkpoint may move to (the last event taken). */
static esc_status handle_batch(esc_worker *w, struct part *pt, struct track *t,
                               const esc_events *ev, esc_position *upto,
                               size_t *taken, esc_error *err) {
  const esc_projection *p = pt->proj->def;
  esc__ctx_reset(&t->ctx);
  *taken = 0;
  for (size_t i = 0; i < ev->count; i++) {
    const esc_recorded_event *e = &ev->items[i];
    if (wanted(pt, e)) {
      esc_error why = ESC_ERROR_INIT;
      int attempts = 0;
      bool stop = false;
      if (handle(w, t, p, e, &attempts, &why) != ESC_OK) {
        esc_status rc = give_up(w, pt, t, e, attempts, &why, &stop, err);
        if (rc)
          return rc;
        if (stop)
          break;
      }
    }
    *upto = e->position;
    (*taken)++;
  }
  return ESC_OK;
}

/* -------------------------------------------------------------- apply -- */

static esc_status apply(esc_worker *w, struct part *pt, struct track *t,
                        esc_position upto, size_t taken, esc_error *err) {
  const char *name = pt->proj->def->name;
  char gen_key[ESC__KEY_MAX], cp_key[ESC__KEY_MAX];
  char expected[ESC_POSITION_TOKEN_MAX] = "", next[ESC_POSITION_TOKEN_MAX];
  struct esc__apply_result res;
  esc__key_generation(gen_key, sizeof gen_key, name);
  esc__key_checkpoint(cp_key, sizeof cp_key, name, t->generation, pt->index);
  if (t->has_checkpoint)
    esc_position_format(&t->checkpoint, expected);
  esc_position_format(&upto, next);

  esc_status rc = esc__redis_apply(w->redis, gen_key, pt->proj->serving, cp_key,
                                   expected, next, NULL, &t->ctx, &res, err);
  if (rc)
    return rc;
  switch (res.outcome) {
  case ESC__APPLIED:
    t->checkpoint = upto;
    t->has_checkpoint = true;
    t->processed += (int64_t)taken;
    return ESC_OK;
  case ESC__STALE:
    if (strncmp(res.checkpoint, "failed", 6) == 0) {
      t->stopped = true;
      esc__worker_log(w, "%s/%d g%" PRId64 ": stopped: %s", name, pt->index,
                      t->generation, res.checkpoint);
      return ESC_OK;
    }
    /* Someone else applied from our checkpoint: continue from theirs, and
     * check the lease now (a zombie learns it lost it at once). */
    pt->next_lease_ms = 0;
    esc__worker_log(w,
                    "%s/%d g%" PRId64 ": checkpoint moved to \"%s\" by "
                    "another worker; continuing from there",
                    name, pt->index, t->generation, res.checkpoint);
    t->has_checkpoint = res.checkpoint[0] != '\0';
    if (t->has_checkpoint &&
        esc_position_parse(res.checkpoint, &t->checkpoint, err))
      return ESC_EIO;
    return ESC_OK;
  case ESC__VANISHED:
    return esc__generation_vanished(w, pt, t, err);
  case ESC__MOVED:
    esc__worker_log(w, "%s: now serving generation %" PRId64 "; reloading",
                    name, res.generation);
    return esc__generation_reload(w, pt->proj, err);
  case ESC__COMMAND_FAILED:
    t->stopped = true;
    return esc_error_set(err, ESC_EIO,
                         "%s/%d: command %zu of a batch failed in Redis (%s); "
                         "the partition is stopped: fix the handler and "
                         "rebuild",
                         name, pt->index, res.failed_command, res.error);
  }
  return ESC_OK;
}

esc_status esc__track_step(esc_worker *w, struct part *pt, struct track *t,
                           bool *worked, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_position from = ESC_POSITION_START, upto;
  size_t taken = 0;
  int batch = w->opts.batch_size > 0 ? w->opts.batch_size : 500;
  *worked = false;
  if (t->has_checkpoint)
    from = t->checkpoint;
  esc_status rc = esc_read_all(w->store, read_category(pt->proj->def), from,
                               (size_t)batch, &ev, err);
  if (rc || ev.count == 0) {
    t->idle = !rc;
    esc_events_release(&ev);
    return rc;
  }
  t->idle = false;
  rc = handle_batch(w, pt, t, &ev, &upto, &taken, err);
  if (!rc && taken > 0)
    rc = apply(w, pt, t, upto, taken, err);
  *worked = !rc && taken > 0;
  esc_events_release(&ev);
  return rc;
}

/* ------------------------------------------------------- dead letters -- */

/* Applies one parked event again, guarded so it applies at most once; the
 * checkpoint is compared but not moved. */
static esc_status retry_one(esc_worker *w, struct part *pt,
                            const esc_dead_letter *dl, esc_error *err) {
  const esc_projection *p = pt->proj->def;
  struct track *t = &pt->live;
  esc_events ev = ESC_EVENTS_INIT;
  esc_error why = ESC_ERROR_INIT;
  int attempts = 0;
  esc_status rc = esc_read_event(w->store, &dl->event_id, &ev, &why);
  esc__ctx_reset(&t->ctx);
  if (!rc)
    rc = handle(w, t, p, &ev.items[0], &attempts, &why);
  if (rc) {
    esc_events_release(&ev);
    return esc__dead_letter_finish(w->pg, w->schema, dl->id, false, why.msg,
                                   err);
  }
  char gen_key[ESC__KEY_MAX], cp_key[ESC__KEY_MAX], guard[ESC__KEY_MAX];
  char cp[ESC_POSITION_TOKEN_MAX] = "";
  struct esc__apply_result res;
  esc__key_generation(gen_key, sizeof gen_key, p->name);
  esc__key_checkpoint(cp_key, sizeof cp_key, p->name, t->generation, pt->index);
  esc__key_dead_letter_guard(guard, sizeof guard, p->name, t->generation,
                             &dl->event_id);
  if (t->has_checkpoint)
    esc_position_format(&t->checkpoint, cp);
  rc = esc__redis_apply(w->redis, gen_key, pt->proj->serving, cp_key, cp, cp,
                        guard, &t->ctx, &res, err);
  esc_events_release(&ev);
  if (rc || res.outcome != ESC__APPLIED)
    return rc; /* try again later: the letter stays in "retry" */
  esc__worker_log(w, "%s/%d: dead letter %" PRId64 " applied", p->name,
                  pt->index, dl->id);
  return esc__dead_letter_finish(w->pg, w->schema, dl->id, true, NULL, err);
}

esc_status esc__track_retry_dead_letters(esc_worker *w, struct part *pt,
                                         esc_error *err) {
  esc_dead_letter *dls = NULL;
  size_t n = 0;
  esc_status rc = esc__dead_letter_take_retries(
      w->pg, w->schema, pt->proj->def->name, pt->index, &dls, &n, err);
  for (size_t i = 0; i < n && !rc; i++)
    rc = retry_one(w, pt, &dls[i], err);
  free(dls);
  return rc;
}

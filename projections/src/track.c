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

bool esc__track_wanted(const struct part *pt, const esc_recorded_event *e) {
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
  const esc_event_registry *reg = p->events     ? p->events
                                  : p->registry ? p->registry()
                                                : NULL;
  *out = (esc_event){NULL, NULL, e};
  if (!reg || !(type = esc_event_registry_find(reg, e->type)))
    return ESC_OK;
  if (type->size > w->decoded_size) {
    void *grown = realloc(w->decoded, type->size);
    if (!grown)
      return esc_error_set(err, ESC_ENOMEM, "decode: out of memory");
    w->decoded = grown;
    w->decoded_size = type->size;
  }
  msgpack_zone_clear(&w->zone);
  esc_status rc = esc_event_decode(reg, e, &w->zone, w->decoded, &type, err);
  if (!rc)
    *out = (esc_event){type, w->decoded, e};
  return rc;
}

/* A handler's retries pause the whole worker: keep them short. */
#define HANDLER_PAUSE_MAX_MS 1000
/* Pauses before an event that failed in Redis is tried again. */
#define REDIS_RETRY_BASE_MS 50
#define REDIS_RETRY_MAX_MS 5000

static void pause_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

bool esc__handler_passing(esc_status rc) {
  return rc == ESC_ECONN || rc == ESC_ETIMEDOUT || rc == ESC_EBUSY ||
         rc == ESC_EUNKNOWN;
}

/* One attempt at e: a projection's handler queues its commands into
 * t->ctx (dropped again on failure), a subscription's gets the delivery. */
static esc_status attempt(esc_worker *w, const struct part *pt,
                          struct track *t, const esc_recorded_event *e,
                          int n, esc_error *err) {
  const esc_projection *p = pt->proj->def;
  esc_event ev;
  if (pt->proj->sub) {
    esc_status rc = decode(w, p, e, &ev, err);
    return rc ? rc : esc__subscription_deliver(w, pt, &ev, n, err);
  }
  esc__ctx_begin_event(&t->ctx);
  esc_status rc = decode(w, p, e, &ev, err);
  if (!rc)
    rc = p->handle(&t->ctx, &ev, p->userdata, err);
  if (rc)
    esc__ctx_drop_event(&t->ctx);
  return rc;
}

/* Runs the handler on one event, retrying with backoff. On success a
 * projection's commands stay in the batch; on failure they are dropped and
 * err says why. A subscription's passing error comes back at once: it is
 * retried later, without counting (esc__track_take). */
static esc_status handle(esc_worker *w, const struct part *pt,
                         struct track *t, const esc_recorded_event *e,
                         int *attempts, esc_error *err) {
  const esc_projection *p = pt->proj->def;
  int max = p->max_attempts > 0 ? p->max_attempts : 3;
  esc_status rc = ESC_OK;
  for (*attempts = 1;; (*attempts)++) {
    rc = attempt(w, pt, t, e, *attempts, err);
    if (!rc)
      return ESC_OK;
    if (*attempts >= max || rc == ESC_ENOMEM ||
        (pt->proj->sub && esc__handler_passing(rc)))
      return rc;
    pause_ms(esc__backoff_ms(w, *attempts, 10, HANDLER_PAUSE_MAX_MS));
  }
}

/* Leaves the reason of a stop where `esc projections` reads it: beside
 * the checkpoint, with the checkpoint it stopped at, so that a partition
 * that moved on since (a worker resumed it) no longer reads as stopped. */
static esc_status record_stop(esc_worker *w, const struct part *pt,
                              const struct track *t,
                              const esc_recorded_event *e, const char *why,
                              esc_error *err) {
  char key[ESC__KEY_MAX], cp[ESC_POSITION_TOKEN_MAX] = "", value[400];
  if (t->has_checkpoint)
    esc_position_format(&t->checkpoint, cp);
  esc__key_stopped(key, sizeof key, pt->proj->base, t->generation,
                   pt->index);
  snprintf(value, sizeof value, "%s at %s@%" PRId64 " (%s): %.250s",
           cp[0] ? cp : "start", e->stream_id, e->stream_version, e->type,
           why);
  const char *argv[] = {"SET", key, value};
  return esc__redis_run(w->redis, 3, argv, NULL, NULL, err);
}

/* Gave up on e (its handler, or its commands in Redis of which `done`
 * took effect): park it, or stop the partition. *stop tells the caller
 * to end the batch before e. */
static esc_status give_up(esc_worker *w, struct part *pt, struct track *t,
                          const esc_recorded_event *e, int attempts,
                          const char *why, size_t done, bool *stop,
                          esc_error *err) {
  const esc_projection *p = pt->proj->def;
  *stop = p->on_error == ESC_ON_ERROR_STOP;
  esc__worker_log_at(w, *stop ? ESC_LOG_ERROR : ESC_LOG_WARN, pt, e,
                  "%s/%d g%" PRId64 ": %s %s@%" PRId64
                  " (%s) after %d attempts (%zu of its commands took "
                  "effect): %s",
                  p->name, pt->index, t->generation,
                  *stop ? "stopped at" : "parked", e->stream_id,
                  e->stream_version, e->type, attempts, done, why);
  if (!*stop) {
    esc_status rc = esc__dead_letter_park(w->pg, w->schema, p->name,
                                          pt->index, e, why, attempts, done,
                                          err);
    pt->counts.parked += rc == ESC_OK;
    return rc;
  }
  t->stopped = true;
  snprintf(t->stop_reason, sizeof t->stop_reason,
           "%s/%d stopped at %s@%" PRId64 ": %s", p->name, pt->index,
           e->stream_id, e->stream_version, why);
  /* A subscription records it once its checkpoint moved past what it
   * delivered before e (subscription.c). */
  return pt->proj->sub ? ESC_OK : record_stop(w, pt, t, e, why, err);
}

/* Whether e is the event whose Redis failures used up its attempts. */
static bool given_up(const struct track *t, const esc_recorded_event *e) {
  return t->failure.pending && t->failure.give_up &&
         esc_position_cmp(&t->failure.at, &e->position) == 0;
}

/* A subscription's handler failed on e for a passing reason: e is
 * delivered again after a pause, the batch ends before it. */
static void handler_passing(esc_worker *w, const struct part *pt,
                            struct track *t, const esc_recorded_event *e,
                            const char *why) {
  struct redis_failure *f = &t->failure;
  if (!f->pending || esc_position_cmp(&f->at, &e->position) != 0)
    *f = (struct redis_failure){.at = e->position};
  f->pending = true;
  f->passing++;
  esc__copy_text(f->error, sizeof f->error, why);
  int pause = esc__backoff_ms(w, f->passing, REDIS_RETRY_BASE_MS,
                              REDIS_RETRY_MAX_MS);
  f->retry_ms = esc__now_ms() + pause;
  esc__worker_log_at(w, ESC_LOG_WARN, pt, e,
                  "%s/%d: %s@%" PRId64 " (%s): passing failure %d (%s); "
                  "delivering it again in %d ms",
                  pt->proj->def->name, pt->index, e->stream_id,
                  e->stream_version, e->type, f->passing, why, pause);
}

esc_status esc__track_take(esc_worker *w, struct part *pt, struct track *t,
                           const esc_recorded_event *e, esc_position before,
                           bool *stop, esc_error *err) {
  esc_error why = ESC_ERROR_INIT;
  int attempts = 0;
  *stop = false;
  if (given_up(t, e))
    return give_up(w, pt, t, e, t->failure.attempts, t->failure.error,
                   t->failure.done, stop, err);
  if (!esc__track_wanted(pt, e))
    return ESC_OK;
  esc_status rc = handle(w, pt, t, e, &attempts, &why);
  if (!rc && !pt->proj->sub &&
      (rc = esc__ctx_end_event(&t->ctx, before, e->position)))
    esc_error_set(&why, rc, "out of memory recording the event's commands");
  if (rc && pt->proj->sub && esc__handler_passing(rc)) {
    handler_passing(w, pt, t, e, why.msg);
    *stop = true;
    return ESC_OK;
  }
  if (rc)
    return give_up(w, pt, t, e, attempts, why.msg, 0, stop, err);
  return ESC_OK;
}

/* Whether the event just taken makes the batch too big: its commands
 * took the batch (`held` bytes before it) past the byte budget, and
 * earlier commands are there to send without it (an event alone always
 * goes, however big). It is then taken back, and read again after this
 * batch. */
static bool over_budget(const esc_worker *w, struct track *t, size_t held) {
  size_t now = t->ctx.arg_bytes;
  if (held == 0 || now == held || now <= esc__batch_bytes(w))
    return false;
  esc__ctx_undo_event(&t->ctx);
  return true;
}

/* Handles the events of a batch that moves the checkpoint from `start`
 * into t->ctx; *upto gets the position the checkpoint may move to (the
 * last event taken). start is not t->checkpoint for a page read ahead:
 * it begins where the batch still in flight ends, and a failing event's
 * "before" must never reach back into that batch (apply.lua moves the
 * checkpoint there: it would apply that batch twice). */
/* Whether the live track of pt must stop before e: once the partition's
 * rebuild has caught up, live follows it (see rebuild_caught_up). */
static bool behind_rebuild(const struct part *pt, const struct track *t,
                           const esc_recorded_event *e) {
  return t == &pt->live && pt->rebuild_caught_up && pt->proj->building &&
         !pt->rebuild.stopped && pt->rebuild.has_checkpoint &&
         esc_position_cmp(&e->position, &pt->rebuild.checkpoint) > 0;
}

static esc_status handle_batch(esc_worker *w, struct part *pt, struct track *t,
                               const esc_events *ev, esc_position start,
                               esc_position *upto, size_t *taken,
                               esc_error *err) {
  esc_position before = start;
  esc__ctx_reset(&t->ctx);
  *taken = 0;
  for (size_t i = 0; i < ev->count; i++) {
    const esc_recorded_event *e = &ev->items[i];
    bool stop = false;
    if (behind_rebuild(pt, t, e))
      break;
    size_t held = t->ctx.arg_bytes;
    esc_status rc = esc__track_take(w, pt, t, e, before, &stop, err);
    if (rc)
      return rc;
    if (stop || over_budget(w, t, held))
      break;
    before = *upto = e->position;
    (*taken)++;
  }
  return ESC_OK;
}

/* -------------------------------------------------------------- apply -- */

/* The keys and checkpoints of one apply; strings live here. */
struct apply_keys {
  char gen[ESC__KEY_MAX];
  char cp[ESC__KEY_MAX];
  char guard[ESC__KEY_MAX];
  char expected[ESC_POSITION_TOKEN_MAX];
  char next[ESC_POSITION_TOKEN_MAX];
  struct esc__apply_request req;
};

/* A batch moving t's checkpoint from where it is to upto. */
static void apply_request(const struct part *pt, const struct track *t,
                          esc_position upto, struct apply_keys *k) {
  const char *base = pt->proj->base;
  esc__key_generation(k->gen, sizeof k->gen, base);
  esc__key_checkpoint(k->cp, sizeof k->cp, base, t->generation, pt->index);
  k->expected[0] = '\0';
  if (t->has_checkpoint)
    esc_position_format(&t->checkpoint, k->expected);
  esc_position_format(&upto, k->next);
  k->req = (struct esc__apply_request){
      k->gen, pt->proj->serving, k->cp, k->expected, k->next, NULL, 0};
}

/* A command of the event at res->failed_at failed in Redis: the
 * checkpoint is just before that event now (apply.lua). It is tried again
 * after a pause; once its attempts are spent, the next batch gives up on
 * it (take). Passing errors are retried without counting. */
static esc_status command_failed(esc_worker *w, struct part *pt,
                                 struct track *t,
                                 const struct esc__apply_result *res) {
  const esc_projection *p = pt->proj->def;
  struct redis_failure *f = &t->failure;
  int max = p->max_attempts > 0 ? p->max_attempts : 3;
  bool passing = esc__redis_error_transient(res->error);
  t->checkpoint = res->failed_before;
  t->has_checkpoint = true;
  if (!f->pending || esc_position_cmp(&f->at, &res->failed_at) != 0)
    *f = (struct redis_failure){.at = res->failed_at};
  f->pending = true;
  f->done = res->commands_done;
  snprintf(f->error, sizeof f->error, "%s", res->error);
  if (passing)
    f->passing++;
  else
    f->attempts++;
  f->give_up = !passing && f->attempts >= max;
  int pause = f->give_up ? 0
              : passing  ? esc__backoff_ms(w, f->passing, REDIS_RETRY_BASE_MS,
                                           REDIS_RETRY_MAX_MS)
                         : esc__backoff_ms(w, f->attempts, REDIS_RETRY_BASE_MS,
                                           REDIS_RETRY_MAX_MS);
  f->retry_ms = esc__now_ms() + pause;
  char at[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&f->at, at);
  esc__worker_log(w,
                  "%s/%d g%" PRId64 ": command %zu of the event at %s failed "
                  "in Redis (%s; %s %d); %s",
                  p->name, pt->index, t->generation, res->commands_done, at,
                  res->error, passing ? "passing, try" : "attempt",
                  passing ? f->passing : f->attempts,
                  f->give_up ? "giving up on it" : "retrying");
  return ESC_OK;
}

/* Redis refused the batch for a passing reason before writing anything:
 * the same batch is tried again after a pause. */
static esc_status refused(esc_worker *w, struct part *pt, struct track *t,
                          const struct esc__apply_result *res) {
  struct redis_failure *f = &t->failure;
  if (!f->pending)
    *f = (struct redis_failure){.at = ESC_POSITION_START};
  f->pending = true;
  f->passing++;
  snprintf(f->error, sizeof f->error, "%s", res->error);
  f->retry_ms = esc__now_ms() + esc__backoff_ms(w, f->passing,
                                                REDIS_RETRY_BASE_MS,
                                                REDIS_RETRY_MAX_MS);
  esc__worker_log(w, "%s/%d g%" PRId64 ": Redis refused a batch (%s); retrying",
                  pt->proj->def->name, pt->index, t->generation, res->error);
  return ESC_OK;
}

void esc__track_moved_to(struct track *t, esc_position upto, size_t taken) {
  t->checkpoint = upto;
  t->has_checkpoint = true;
  t->processed += (int64_t)taken;
  if (t->failure.pending && esc_position_cmp(&upto, &t->failure.at) >= 0)
    t->failure = (struct redis_failure){.pending = false};
}

/* What Redis said about a batch that was to move t to upto. */
static esc_status settle(esc_worker *w, struct part *pt, struct track *t,
                         esc_position upto, size_t taken,
                         const struct esc__apply_result *res, esc_error *err) {
  const char *name = pt->proj->def->name;
  switch (res->outcome) {
  case ESC__APPLIED:
    esc__track_moved_to(t, upto, taken);
    return ESC_OK;
  case ESC__NOT_RUN:
    return ESC_OK; /* the checkpoint stays; the batch is read again */
  case ESC__STALE:
    if (strncmp(res->checkpoint, "failed", 6) == 0) {
      t->stopped = true;
      snprintf(t->stop_reason, sizeof t->stop_reason, "%s/%d: %s", name,
               pt->index, res->checkpoint);
      esc__worker_log(w, "%s/%d g%" PRId64 ": stopped: %s", name, pt->index,
                      t->generation, res->checkpoint);
      return ESC_OK;
    }
    /* Someone else applied from our checkpoint: continue from theirs, and
     * check the lease now (a zombie learns it lost it at once). */
    pt->next_lease_ms = 0;
    t->failure = (struct redis_failure){.pending = false};
    esc__worker_log(w,
                    "%s/%d g%" PRId64 ": checkpoint moved to \"%s\" by "
                    "another worker; continuing from there",
                    name, pt->index, t->generation, res->checkpoint);
    t->has_checkpoint = res->checkpoint[0] != '\0';
    if (t->has_checkpoint &&
        esc_position_parse(res->checkpoint, &t->checkpoint, err))
      return ESC_EIO;
    return ESC_OK;
  case ESC__VANISHED:
    return esc__generation_vanished(w, pt, t, err);
  case ESC__MOVED:
    esc__worker_log(w, "%s: now serving generation %" PRId64 "; reloading",
                    name, res->generation);
    return esc__generation_reload(w, pt->proj, err);
  case ESC__COMMAND_FAILED:
    return command_failed(w, pt, t, res);
  case ESC__REFUSED:
    return refused(w, pt, t, res);
  }
  return ESC_OK;
}

/* ------------------------------------------------------------- a burst -- */

/* A batch sent to Redis whose reply is still to be read. */
struct flight {
  bool active;
  esc_position upto;
  size_t taken;
  int64_t sent_ns; /* for the batch duration */
};

static esc_status send_batch(esc_worker *w, struct part *pt, struct track *t,
                             esc_position upto, size_t taken, struct flight *f,
                             esc_error *err) {
  struct apply_keys k;
  apply_request(pt, t, upto, &k);
  esc_status rc = esc__redis_apply_send(w->redis, &k.req, &t->ctx, err);
  if (rc)
    return rc;
  *f = (struct flight){true, upto, taken, esc__now_ns()};
  w->stats.batches++;
  if (t->ctx.arg_bytes > w->stats.peak_batch_bytes)
    w->stats.peak_batch_bytes = t->ctx.arg_bytes;
  return ESC_OK;
}

/* Counts a page read from PostgreSQL into the worker's stats; returns
 * whether more may follow it at once: it holds batch_size events, or the
 * byte budget probably cut it (one more event as big as its biggest would
 * not have fitted). A wrong guess costs a read that finds nothing, or a
 * page read without overlap, never an event. */
bool esc__track_note_read(esc_worker *w, const esc_events *ev, size_t batch) {
  size_t bytes = 0, biggest = 0;
  for (size_t i = 0; i < ev->count; i++) {
    size_t n = ev->items[i].data_len + ev->items[i].metadata_len;
    bytes += n;
    biggest = n > biggest ? n : biggest;
  }
  w->stats.reads++;
  if (ev->count > w->stats.peak_read_events)
    w->stats.peak_read_events = ev->count;
  if (bytes > w->stats.peak_read_bytes)
    w->stats.peak_read_bytes = bytes;
  return ev->count == batch || bytes + biggest > esc__batch_bytes(w);
}

/* Reads the reply of the batch in flight; *applied when it moved t. */
static esc_status land_batch(esc_worker *w, struct part *pt, struct track *t,
                             struct flight *f, bool *applied, esc_error *err) {
  struct esc__apply_result res;
  f->active = false;
  *applied = false;
  esc_status rc = esc__redis_apply_receive(w->redis, &res, err);
  if (rc)
    return rc;
  *applied = res.outcome == ESC__APPLIED;
  if (*applied)
    esc__metrics_batch(pt, f->taken,
                       (double)(esc__now_ns() - f->sent_ns) / 1e9);
  return settle(w, pt, t, f->upto, f->taken, &res, err);
}

#define BURST_MS 50
#define PROGRESS_MS 5000

static int64_t progress_every(const esc_worker *w) {
  return w->opts.progress_ms > 0 ? w->opts.progress_ms : PROGRESS_MS;
}

/* When the current burst must end: after BURST_MS, or earlier when a
 * progress line is due (it needs the store's connection). */
int64_t esc__track_burst_end(const esc_worker *w, const struct track *t) {
  int64_t now = esc__now_ms();
  int64_t due = (t->busy_since_ms ? t->progress_ms : now) + progress_every(w);
  return due < now + BURST_MS ? due : now + BURST_MS;
}

/* The line of a long replay: where the track is in the log, how fast it
 * moves, and about how long it has to go (by global positions, which is
 * what the checkpoint passes whatever the projection follows). */
static void log_progress(esc_worker *w, const struct part *pt,
                         const struct track *t, int64_t now) {
  esc_position head;
  if (esc_store_head(w->store, &head, NULL) != ESC_OK)
    return; /* the next read reports what is wrong */
  double secs = (double)(now - t->progress_ms) / 1000.0;
  double events = (double)(t->processed - t->progress_events) / secs;
  double moved = (double)(t->checkpoint.global - t->progress_global) / secs;
  int64_t left = head.global - t->checkpoint.global;
  double pct = head.global > 0
                   ? 100.0 * (double)t->checkpoint.global / (double)head.global
                   : 100.0;
  char eta[48] = "";
  if (left > 0 && moved > 0 && (double)left / moved >= 1)
    snprintf(eta, sizeof eta, ", about %.0f s to go", (double)left / moved);
  esc__worker_log(w,
                  "%s/%d g%" PRId64 ": %s: at global position %" PRId64
                  " of %" PRId64 " (%.0f%%), %.0f events/s%s",
                  pt->proj->def->name, pt->index, t->generation,
                  t == &pt->rebuild ? "rebuilding" : "catching up",
                  t->checkpoint.global, head.global, pct, events, eta);
}

/* Called after every step of a track: starts timing a replay when the
 * track gets busy, logs a line every progress_ms while it stays busy, and
 * one more when a replay that was reported catches up. */
void esc__track_report_progress(esc_worker *w, const struct part *pt,
                                struct track *t, bool worked) {
  int64_t now = esc__now_ms();
  if (!worked) {
    if (t->reported && t->idle)
      esc__worker_log(w,
                      "%s/%d g%" PRId64
                      ": caught up at global position %" PRId64 " after %.1f s",
                      pt->proj->def->name, pt->index, t->generation,
                      t->checkpoint.global,
                      (double)(now - t->busy_since_ms) / 1000.0);
    if (t->idle) {
      t->busy_since_ms = 0;
      t->reported = false;
    }
    return;
  }
  if (!t->busy_since_ms || t->processed < t->progress_events) {
    t->busy_since_ms = now;
  } else if (now - t->progress_ms >= progress_every(w)) {
    log_progress(w, pt, t, now);
    t->reported = true;
  } else {
    return;
  }
  t->progress_ms = now;
  t->progress_events = t->processed;
  t->progress_global = t->checkpoint.global;
}

/*
 * Reads, handles and applies batches of one track until it runs out of
 * full pages (or BURST_MS passes), keeping all three servers busy at once:
 * while the handler runs on page k, PostgreSQL already reads page k+1 and
 * Redis applies batch k-1. Page k+1 is read from where batch k ends, and
 * page k handled, before Redis has confirmed batch k-1: when it does not
 * (stale, moved, ...), that work is dropped and the track goes on from
 * the checkpoint Redis reports. Handlers only queue commands, so running
 * one ahead costs nothing but the work.
 */
esc_status esc__track_step(esc_worker *w, struct part *pt, struct track *t,
                           bool *worked, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  struct flight f = {false, ESC_POSITION_START, 0, 0};
  const char *category = read_category(pt->proj->def);
  size_t batch = (size_t)(w->opts.batch_size > 0 ? w->opts.batch_size : 500);
  int64_t until = esc__track_burst_end(w, t);
  bool applied = true;
  *worked = false;
  if (t->failure.pending && esc__now_ms() < t->failure.retry_ms)
    return ESC_OK;
  esc_position start =
      t->has_checkpoint ? t->checkpoint : (esc_position)ESC_POSITION_START;
  size_t bytes = esc__batch_bytes(w);
  esc_status rc =
      esc_read_all_send_bounded(esc__reader(w), category, start, batch, bytes, err);
  for (bool reading = !rc; reading;) {
    esc_position upto = ESC_POSITION_START;
    size_t taken = 0;
    reading = false;
    if ((rc = esc_read_all_receive(esc__reader(w), &ev, err)) != ESC_OK)
      break;
    bool more = esc__track_note_read(w, &ev, batch);
    t->idle = ev.count == 0;
    if (ev.count == 0)
      break;
    if (more && !w->stop && esc__now_ms() < until) {
      rc = esc_read_all_send_bounded(esc__reader(w), category, ev.next, batch, bytes,
                                     err);
      reading = !rc;
    }
    if (!rc)
      rc = handle_batch(w, pt, t, &ev, start, &upto, &taken, err);
    if (!rc && f.active)
      rc = land_batch(w, pt, t, &f, &applied, err);
    if (!rc && applied && taken > 0) {
      rc = send_batch(w, pt, t, upto, taken, &f, err);
      *worked = !rc;
      start = upto;
    }
    if (rc || !applied || taken < ev.count)
      break; /* a page still being read is dropped by the next call */
  }
  if (f.active) {
    esc_error later = ESC_ERROR_INIT;
    esc_status landed = land_batch(w, pt, t, &f, &applied, rc ? &later : err);
    rc = rc ? rc : landed;
  }
  esc_events_release(&ev);
  if (!rc)
    esc__track_report_progress(w, pt, t, *worked);
  return rc;
}

/* ------------------------------------------------------- dead letters -- */

/* Applies one parked event again, guarded so it applies at most once;
 * the checkpoint is compared but not moved. The commands of it that took
 * effect before (the letter says how many, the guard may say more) are
 * skipped. A letter whose commands fail in Redis again is parked again
 * with the new count; a passing failure leaves it to be retried. */
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
    rc = handle(w, pt, t, &ev.items[0], &attempts, &why);
  if (!rc && (rc = esc__ctx_end_event(&t->ctx, dl->position, dl->position)))
    esc_error_set(&why, rc, "out of memory");
  esc_events_release(&ev);
  if (rc)
    return esc__dead_letter_finish(w->pg, w->schema, dl->id, false, why.msg,
                                   -1, err);
  struct apply_keys k;
  struct esc__apply_result res;
  apply_request(pt, t, t->checkpoint, &k);
  /* compared, not moved */
  memcpy(k.next, k.expected, sizeof k.next);
  esc__key_dead_letter_guard(k.guard, sizeof k.guard, pt->proj->base,
                             t->generation, &dl->event_id);
  k.req.guard_key = k.guard;
  k.req.skip = dl->commands_applied > 0 ? (size_t)dl->commands_applied : 0;
  rc = esc__redis_apply(w->redis, &k.req, &t->ctx, &res, err);
  if (!rc && res.outcome == ESC__COMMAND_FAILED &&
      !esc__redis_error_transient(res.error)) {
    esc__worker_log(w,
                    "%s/%d: dead letter %" PRId64 " failed in Redis again "
                    "(%zu of its commands took effect): %s",
                    p->name, pt->index, dl->id, res.commands_done, res.error);
    return esc__dead_letter_finish(w->pg, w->schema, dl->id, false, res.error,
                                   (int)res.commands_done, err);
  }
  if (rc || res.outcome != ESC__APPLIED)
    return rc; /* try again later: the letter stays in "retry" */
  esc__worker_log(w, "%s/%d: dead letter %" PRId64 " applied", p->name,
                  pt->index, dl->id);
  pt->counts.retried++;
  return esc__dead_letter_finish(w->pg, w->schema, dl->id, true, NULL, -1,
                                 err);
}

/* Delivers one parked event to a subscription's handler again (with the
 * same key) and resolves the letter, or parks it again with the new
 * error. Nothing is fenced: delivery is at least once, and the
 * checkpoint is not involved. A passing failure leaves it in "retry". */
static esc_status redeliver_one(esc_worker *w, struct part *pt,
                                const esc_dead_letter *dl, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error why = ESC_ERROR_INIT;
  int attempts = 0;
  esc_status rc = esc_read_event(w->store, &dl->event_id, &ev, &why);
  if (!rc)
    rc = handle(w, pt, &pt->live, &ev.items[0], &attempts, &why);
  esc_events_release(&ev);
  if (rc && esc__handler_passing(rc))
    return ESC_OK;
  esc__worker_log(w, "%s/%d: dead letter %" PRId64 " %s%s",
                  pt->proj->def->name, pt->index, dl->id,
                  rc ? "failed again: " : "delivered", rc ? why.msg : "");
  pt->counts.retried += rc == ESC_OK;
  return esc__dead_letter_finish(w->pg, w->schema, dl->id, rc == ESC_OK,
                                 rc ? why.msg : NULL, -1, err);
}

esc_status esc__track_retry_dead_letters(esc_worker *w, struct part *pt,
                                         esc_error *err) {
  esc_dead_letter *dls = NULL;
  size_t n = 0;
  esc_status rc = esc__dead_letter_take_retries(
      w->pg, w->schema, pt->proj->def->name, pt->index, &dls, &n, err);
  for (size_t i = 0; i < n && !rc; i++)
    rc = pt->proj->sub ? redeliver_one(w, pt, &dls[i], err)
                       : retry_one(w, pt, &dls[i], err);
  free(dls);
  return rc;
}

/*
 * Durable subscriptions (<esc/projection.h>, esc_subscription): handlers
 * with side effects outside Redis, run by the projection worker on its
 * leases, partitions, wake-ups, retries and dead letters, with their
 * checkpoints in PostgreSQL (eventstore/sql/016_subscriptions.sql). See
 * docs/decisions/0017-durable-subscriptions.md.
 *
 * What is a subscription's own is the apply step of a partition: read a
 * page after the checkpoint, deliver its events to the handler one at a
 * time (track.c's esc__track_take: retries, dead letters, stops), then
 * move the checkpoint past what was delivered with a compare-and-set in
 * PostgreSQL, made on the lease's own session so that the server refuses
 * it unless that session holds the lease.
 */
#include "worker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

esc_uuid esc_subscription_key(const char *subscription,
                              const esc_uuid *event_id) {
  const char *name = subscription ? subscription : "";
  return esc_uuid_v5(event_id, name, strlen(name));
}

const char *esc_consumer_kind_name(esc_consumer_kind kind) {
  if (kind == ESC_CONSUMER_PROCESS)
    return "process";
  return kind == ESC_CONSUMER_SUBSCRIPTION ? "subscription" : "projection";
}

/* ------------------------------------------------------------ set-up -- */

static esc_status check_subscription(const esc_subscription *s,
                                     esc_error *err) {
  if (!s || !s->handle || s->partitions < 0 || s->max_attempts < 0)
    return esc_error_set(err, ESC_EINVAL,
                         "subscription %s: needs a handler, partitions >= 0 "
                         "and max_attempts >= 0",
                         s && s->name ? s->name : "(null)");
  if (s->on_error != ESC_ON_ERROR_PARK && s->on_error != ESC_ON_ERROR_STOP)
    return esc_error_set(err, ESC_EINVAL, "subscription %s: unknown on_error",
                         s->name ? s->name : "(null)");
  return esc__check_names(s->name, s->categories, err);
}

esc_status esc_worker_add_subscription(esc_worker *w, const esc_subscription *s,
                                       esc_error *err) {
  esc_status rc = check_subscription(s, err);
  if (rc)
    return rc;
  /* What the shared code reads of a consumer, in a projection's shape:
   * no handler (track.c calls the subscription's) and version 1. */
  esc_projection *def = calloc(1, sizeof *def);
  if (!def)
    return esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
  *def = (esc_projection){.name = s->name,
                          .version = 1,
                          .categories = s->categories,
                          .event_types = s->event_types,
                          .partitions = s->partitions,
                          .events = s->events,
                          .on_error = s->on_error,
                          .max_attempts = s->max_attempts};
  return esc__worker_enlist(w, def, s, def, err);
}

esc_status esc__subscription_register(esc_worker *w, struct proj *pj,
                                      esc_error *err) {
  esc_position start = ESC_POSITION_START;
  esc_status rc = ESC_OK;
  /* Read every time (cheap), used only when the store has no row yet. */
  if (pj->sub->start == ESC_SUBSCRIPTION_FROM_NOW)
    rc = esc_store_head(w->store, &start, err);
  if (!rc)
    rc = esc__registry_subscribe(w->pg, w->schema, pj->def, &start, &pj->layout,
                                 &pj->sub_generation, err);
  /* Its layout never changes under it (a repartition is refused), so the
   * generation's count is the layout's. */
  pj->serving_partitions = pj->layout.partitions;
  return rc;
}

/* ----------------------------------------------------------- delivery -- */

esc_status esc__subscription_deliver(esc_worker *w, const struct part *pt,
                                     const esc_event *ev, int attempt,
                                     esc_error *err) {
  const esc_subscription *s = pt->proj->sub;
  esc_delivery d = {s->name, pt->index, ev,
                    esc_subscription_key(s->name, &ev->recorded->id), attempt};
  (void)w;
  esc_status rc = s->handle(&d, s->userdata, err);
  if (rc && err && !err->msg[0])
    esc_error_set(err, rc, "the handler returned %s", esc_strerror(rc));
  return rc;
}

/* ------------------------------------------------------- checkpoints -- */

/* The checkpoint row of a partition, read when a worker takes it up. */
static const char SQL_LOAD[] =
    "SELECT tx_id::text, global_position FROM %s.subscription_checkpoints"
    " WHERE subscription = $1 AND generation = $2::int8"
    " AND partition = $3::int";

static const char SQL_MOVE[] =
    "SELECT outcome, tx_id::text, global_position FROM"
    " %s.subscription_checkpoint_move($1, $2::int8, $3::int, $4::int8,"
    " $5::xid8, $6::int8, $7::xid8, $8::int8)";

static const char SQL_STOPPED[] =
    "SELECT %s.subscription_stopped($1, $2::int8, $3::int, $4::int8,"
    " $5::xid8, $6::int8, $7)";

/* Runs one of the statements above (fmt, %s: the schema) on conn. */
static PGresult *run(esc_worker *w, PGconn *conn, const char *fmt, int n,
                     const char *const *values, const char *what,
                     esc_error *err) {
  return esc__pg_exec_in(conn, w->schema, fmt, n, values, PGRES_TUPLES_OK, what,
                         err);
}

/* A position from two text columns. */
static esc_position position_of(const PGresult *res, int col) {
  esc_position p = {strtoull(PQgetvalue(res, 0, col), NULL, 10),
                    strtoll(PQgetvalue(res, 0, col + 1), NULL, 10)};
  return p;
}

/* Text parameters naming pt's checkpoint: name, generation, partition
 * and lease key. */
struct names {
  char gen[24], part[16], lease[24];
  const char *values[8];
};

static void names_of(const struct part *pt, struct names *n) {
  snprintf(n->gen, sizeof n->gen, "%" PRId64, pt->proj->sub_generation);
  snprintf(n->part, sizeof n->part, "%d", pt->index);
  snprintf(n->lease, sizeof n->lease, "%" PRId64, pt->lease_key);
  n->values[0] = pt->proj->def->name;
  n->values[1] = n->gen;
  n->values[2] = n->part;
  n->values[3] = n->lease;
}

/* Points the live track at the partition's checkpoint in PostgreSQL. A
 * missing row (someone deleted it) stops the partition: starting over
 * would deliver everything again, skipping ahead would lose events. */
static esc_status load(esc_worker *w, struct part *pt, esc_error *err) {
  struct track *t = &pt->live;
  struct names n;
  char what[96];
  names_of(pt, &n);
  snprintf(what, sizeof what, "read the checkpoint of %s/%d",
           pt->proj->def->name, pt->index);
  PGresult *res = run(w, w->pg, SQL_LOAD, 3, n.values, what, err);
  if (!res)
    return esc__pg_failed(err);
  t->generation = pt->proj->sub_generation;
  t->failure = (struct redis_failure){.pending = false};
  t->stop_reason[0] = '\0';
  t->stopped = PQntuples(res) != 1;
  t->has_checkpoint = !t->stopped;
  if (t->stopped)
    snprintf(t->stop_reason, sizeof t->stop_reason,
             "%s/%d: its checkpoint (generation %" PRId64 ") is missing "
             "from %s.subscription_checkpoints",
             pt->proj->def->name, pt->index, t->generation, w->schema);
  else
    t->checkpoint = position_of(res, 0);
  PQclear(res);
  t->processed = 0;
  t->idle = false;
  t->busy_since_ms = 0;
  t->reported = false;
  if (t->stopped)
    esc__worker_log(w, "%s", t->stop_reason);
  pt->ready = true;
  return ESC_OK;
}

/* Moves the checkpoint from where t is to upto, on the lease's session.
 * *moved when it did; otherwise t follows what the server says. */
static esc_status move(esc_worker *w, struct part *pt, esc_position upto,
                       bool *moved, esc_error *err) {
  struct track *t = &pt->live;
  struct names n;
  char what[96], ftx[24], fg[24], ttx[24], tg[24], outcome[16];
  names_of(pt, &n);
  snprintf(ftx, sizeof ftx, "%" PRIu64, t->checkpoint.tx_id);
  snprintf(fg, sizeof fg, "%" PRId64, t->checkpoint.global);
  snprintf(ttx, sizeof ttx, "%" PRIu64, upto.tx_id);
  snprintf(tg, sizeof tg, "%" PRId64, upto.global);
  n.values[4] = ftx;
  n.values[5] = fg;
  n.values[6] = ttx;
  n.values[7] = tg;
  snprintf(what, sizeof what, "move the checkpoint of %s/%d",
           pt->proj->def->name, pt->index);
  *moved = false;
  PGresult *res = run(w, pt->lease_conn, SQL_MOVE, 8, n.values, what, err);
  if (!res)
    return esc__pg_failed(err);
  snprintf(outcome, sizeof outcome, "%s", PQgetvalue(res, 0, 0));
  esc_position now =
      PQgetisnull(res, 0, 1) ? t->checkpoint : position_of(res, 1);
  PQclear(res);
  *moved = strcmp(outcome, "moved") == 0;
  if (*moved)
    return ESC_OK;
  char cp[ESC_POSITION_TOKEN_MAX];
  esc_position_format(&now, cp);
  esc__worker_log(w, "%s/%d: checkpoint not moved (%s, it is at %s); %s",
                  pt->proj->def->name, pt->index, outcome, cp,
                  strcmp(outcome, "missing") == 0 ? "reloading"
                                                  : "checking the lease");
  /* Someone else moved it, or this session lost the lease: look at the
   * lease now, and set the partition up again from the store. */
  pt->next_lease_ms = 0;
  pt->ready = false;
  return ESC_OK;
}

/* Records in PostgreSQL why t stopped (on_error STOP) at the event after
 * its checkpoint, for `esc projections` to show. */
static esc_status record_stop(esc_worker *w, const struct part *pt,
                              esc_error *err) {
  const struct track *t = &pt->live;
  struct names n;
  char what[96], tx[24], g[24];
  names_of(pt, &n);
  snprintf(tx, sizeof tx, "%" PRIu64, t->checkpoint.tx_id);
  snprintf(g, sizeof g, "%" PRId64, t->checkpoint.global);
  n.values[4] = tx;
  n.values[5] = g;
  n.values[6] = t->stop_reason;
  snprintf(what, sizeof what, "record the stop of %s/%d", pt->proj->def->name,
           pt->index);
  PGresult *res = run(w, pt->lease_conn, SQL_STOPPED, 7, n.values, what, err);
  if (!res)
    return esc__pg_failed(err);
  PQclear(res);
  return ESC_OK;
}

/* -------------------------------------------------------------- steps -- */

/* Reads a page after the checkpoint and delivers it; *more when a full
 * page was delivered to its end (another may follow at once). */
static esc_status deliver_page(esc_worker *w, struct part *pt, bool *worked,
                               bool *more, esc_error *err) {
  struct track *t = &pt->live;
  esc_events ev = ESC_EVENTS_INIT;
  const char *const *cats = pt->proj->def->categories;
  const char *category = cats && cats[0] && !cats[1] ? cats[0] : NULL;
  size_t batch = (size_t)(w->opts.batch_size > 0 ? w->opts.batch_size : 500);
  esc_position upto = t->checkpoint;
  size_t taken = 0;
  *more = false;
  esc_status rc = esc_read_all_send_bounded(esc__reader(w), category, t->checkpoint,
                                            batch, esc__batch_bytes(w), err);
  if (!rc)
    rc = esc_read_all_receive(esc__reader(w), &ev, err);
  if (rc)
    goto out;
  bool full = esc__track_note_read(w, &ev, batch);
  t->idle = ev.count == 0;
  int64_t began = esc__now_ns();
  bool stop = false;
  for (size_t i = 0; i < ev.count && !stop && !w->stop && !rc; i++) {
    rc = esc__track_take(w, pt, t, &ev.items[i], upto, &stop, err);
    if (!rc && !stop) {
      upto = ev.items[i].position;
      taken++;
    }
  }
  /* What was delivered is done even when a later event failed: the
   * checkpoint moves past it (an error still comes back afterwards). */
  bool moved = false;
  esc_error later = ESC_ERROR_INIT;
  if (taken > 0) {
    esc_status mv = move(w, pt, upto, &moved, rc ? &later : err);
    rc = rc ? rc : mv;
  }
  if (moved) {
    esc__track_moved_to(t, upto, taken);
    esc__metrics_batch(pt, taken, (double)(esc__now_ns() - began) / 1e9);
    *worked = true;
    *more = full && taken == ev.count;
  }
  if (!rc && t->stopped && (moved || taken == 0))
    rc = record_stop(w, pt, err);
out:
  esc_events_release(&ev);
  return rc;
}

/* A held partition: set up from its checkpoint, then pages until none is
 * full or the burst's time is up. */
static esc_status subscription_step(esc_worker *w, struct part *pt,
                                    bool *worked, esc_error *err) {
  struct track *t = &pt->live;
  esc_status rc = pt->ready ? ESC_OK : load(w, pt, err);
  *worked = false;
  if (rc || t->stopped ||
      (t->failure.pending && esc__now_ms() < t->failure.retry_ms))
    return rc;
  /* At least one page, as a projection's burst: the burst's end may be
   * now already (a progress line is due), and the line is written only
   * after a step that worked. */
  int64_t until = esc__track_burst_end(w, t);
  bool more = false;
  do
    rc = deliver_page(w, pt, worked, &more, err);
  while (more && !rc && pt->ready && !w->stop && esc__now_ms() < until);
  if (!rc)
    esc__track_report_progress(w, pt, t, *worked);
  if (!rc && pt->ready && !t->stopped && pt->proj->sub->tick) {
    bool ticked = false;
    rc = pt->proj->sub->tick(pt->index, &ticked, pt->proj->sub->userdata, err);
    *worked = *worked || ticked;
  }
  return rc;
}

/* The layout, re-read about once a second: a worker of another count
 * stops (decision 12); a deleted registry row is made again. */
static esc_status subscription_bookkeeping(esc_worker *w, struct proj *pj,
                                           int64_t now, esc_error *err) {
  bool requested = false;
  if (!pj->registered || now < pj->next_request_ms)
    return ESC_OK;
  pj->next_request_ms = now + ESC__BOOKKEEPING_MS;
  return esc__layout_refresh(w, pj, &requested, err);
}

const struct esc__consumer_ops esc__subscription_ops = {
    ESC_CONSUMER_SUBSCRIPTION, subscription_step, subscription_bookkeeping};

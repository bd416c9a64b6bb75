/*
 * The worker's metrics: the worker thread keeps its own counts (part.counts)
 * and publishes them with its partitions' state into part.pub after every
 * step; esc_worker_metrics_get copies the published figures on whatever
 * thread asks (an HTTP server's). One mutex guards everything published,
 * so there is nothing to reason about: every read and write of pub, conn,
 * parts and nparts from two threads happens under it. It is taken once per
 * partition step and per connection event, never per event.
 */
#include "worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


void esc__metrics_connected(esc_worker *w, enum esc__conn which, bool ok) {
  pthread_mutex_lock(&w->metrics_lock);
  w->conn.up[which] = ok;
  if (ok && w->conn.ever[which])
    w->conn.reconnects[which]++;
  w->conn.ever[which] = w->conn.ever[which] || ok;
  pthread_mutex_unlock(&w->metrics_lock);
}

void esc__metrics_lost(esc_worker *w, enum esc__conn which) {
  pthread_mutex_lock(&w->metrics_lock);
  w->conn.up[which] = false;
  pthread_mutex_unlock(&w->metrics_lock);
}

void esc__metrics_round(esc_worker *w, const char *failure) {
  pthread_mutex_lock(&w->metrics_lock);
  w->conn.round_ms = esc__now_ms();
  snprintf(w->conn.last_error, sizeof w->conn.last_error, "%s",
           failure ? failure : "");
  pthread_mutex_unlock(&w->metrics_lock);
}

void esc__metrics_running(esc_worker *w, bool running) {
  pthread_mutex_lock(&w->metrics_lock);
  w->conn.running = running;
  pthread_mutex_unlock(&w->metrics_lock);
}

void esc__metrics_batch(struct part *pt, size_t events, double seconds) {
  struct part_counts *c = &pt->counts;
  c->buckets[esc__latency_bucket(seconds)]++;
  c->seconds += seconds;
  c->batches++;
  c->applied += (int64_t)events;
}

void esc__metrics_publish(esc_worker *w, struct part *pt) {
  const struct part_counts *c = &pt->counts;
  pthread_mutex_lock(&w->metrics_lock);
  esc_partition_metrics *m = &pt->pub;
  m->leased = pt->leased;
  m->stopped = pt->live.stopped;
  m->generation = pt->live.generation;
  m->checkpoint = pt->live.has_checkpoint ? pt->live.checkpoint.global : 0;
  m->events_applied = c->applied;
  m->batches = c->batches;
  memcpy(m->batch_buckets, c->buckets, sizeof m->batch_buckets);
  m->batch_seconds = c->seconds;
  m->dead_letters_parked = c->parked;
  m->dead_letters_retried = c->retried;
  pthread_mutex_unlock(&w->metrics_lock);
}

esc_status esc_worker_metrics_get(esc_worker *w, esc_worker_metrics *out,
                                  esc_error *err) {
  memset(out, 0, sizeof *out);
  out->since_round_s = -1;
  if (!w)
    return ESC_OK;
  pthread_mutex_lock(&w->metrics_lock);
  esc_status rc = ESC_OK;
  if (w->nparts > 0 && !(out->parts = malloc(w->nparts * sizeof *out->parts)))
    rc = esc_error_set(err, ESC_ENOMEM, "worker metrics: out of memory");
  for (size_t i = 0; !rc && i < w->nparts; i++)
    out->parts[i] = w->parts[i].pub;
  if (!rc)
    out->count = w->nparts;
  out->running = w->conn.running;
  if (w->conn.round_ms)
    out->since_round_s = (double)(esc__now_ms() - w->conn.round_ms) / 1000.0;
  out->pg_up = w->conn.up[ESC__CONN_PG];
  out->redis_up = w->conn.up[ESC__CONN_REDIS];
  out->pg_reconnects = w->conn.reconnects[ESC__CONN_PG];
  out->redis_reconnects = w->conn.reconnects[ESC__CONN_REDIS];
  memcpy(out->last_error, w->conn.last_error, sizeof out->last_error);
  out->replica = w->conn.replica;
  out->replica_reading = w->conn.replica_reading;
  out->replica_lag_events = w->conn.replica_lag_events;
  pthread_mutex_unlock(&w->metrics_lock);
  return rc;
}

void esc_worker_metrics_release(esc_worker_metrics *m) {
  if (!m)
    return;
  free(m->parts);
  m->parts = NULL;
  m->count = 0;
}

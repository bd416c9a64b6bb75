/*
 * The worker: holds leases on projection partitions, steps each held
 * partition's tracks in turn (a burst of batches each, see track.c), and
 * sleeps on the event store's wake-up when nothing is left to do.
 * Connection failures are retried with backoff on fresh connections; the
 * checkpoints in Redis are the truth to resume from.
 */
#include "worker_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


int64_t esc__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int esc__backoff_ms(esc_worker *w, int attempt, int base_ms, int cap_ms) {
  int64_t ms = base_ms;
  for (int i = 1; i < attempt && ms < cap_ms; i++)
    ms *= 2;
  if (ms > cap_ms)
    ms = cap_ms;
  /* xorshift64: no shared state, no locking, good enough for jitter */
  uint64_t x = w->jitter ? w->jitter : 0x9e3779b97f4a7c15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  w->jitter = x;
  int64_t half = ms / 2;
  return (int)(ms - (half > 0 ? (int64_t)(x % (uint64_t)(half + 1)) : 0));
}

/* Hands a formatted line to the callback and, with log_records, to
 * esc_log with what it is about. */
static void emit(esc_worker *w, esc_log_level level, const struct part *pt,
                 const esc_recorded_event *e, const char *line) {
  if (w->opts.log)
    w->opts.log(w->opts.log_userdata, line);
  if (!w->opts.log_records)
    return;
  esc_log_context c = ESC_LOG_CONTEXT_INIT;
  c.component = w->opts.log_component ? w->opts.log_component : "worker";
  if (pt && pt->proj) {
    c.consumer = pt->proj->def->name;
    c.consumer_kind = pt->proj->sub ? "subscription" : "projection";
    c.partition = pt->index;
  }
  c.event = e;
  esc_log(level, &c, "%s", line);
}

void esc__worker_log(esc_worker *w, const char *fmt, ...) {
  char line[512];
  va_list ap;
  if (!w->opts.log && !w->opts.log_records)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  emit(w, ESC_LOG_INFO, NULL, NULL, line);
}

void esc__worker_log_at(esc_worker *w, esc_log_level level,
                        const struct part *pt, const esc_recorded_event *e,
                        const char *fmt, ...) {
  char line[512];
  va_list ap;
  if (!w->opts.log && !w->opts.log_records)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  emit(w, level, pt, e, line);
}

/* ------------------------------------------------------------ set-up -- */

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

size_t esc__batch_bytes(const esc_worker *w) {
  return w->opts.max_batch_bytes ? w->opts.max_batch_bytes
                                 : ESC_WORKER_BATCH_BYTES_DEFAULT;
}

void esc_worker_get_stats(const esc_worker *w, esc_worker_stats *out) {
  esc_worker_stats none = {0, 0, 0, 0, 0};
  *out = w ? w->stats : none;
}

esc_worker *esc_worker_new(const esc_worker_options *opts, esc_error *err) {
  esc_worker_options defaults = ESC_WORKER_OPTIONS_INIT;
  if (opts && opts->max_batch_bytes > ESC_WORKER_BATCH_BYTES_MAX) {
    esc_error_set(err, ESC_EINVAL,
                  "worker: max_batch_bytes %zu is more than %zu (1 GiB), "
                  "past which Redis drops the connection; 0 means the "
                  "default, %zu",
                  opts->max_batch_bytes, ESC_WORKER_BATCH_BYTES_MAX,
                  ESC_WORKER_BATCH_BYTES_DEFAULT);
    return NULL;
  }
  esc_worker *w = calloc(1, sizeof *w);
  if (!w) {
    esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
    return NULL;
  }
  w->opts = opts ? *opts : defaults;
  w->opts.key_prefix = NULL; /* borrowed: resolved into w->ns below */
  const char *prefix =
      esc__key_prefix_configured(opts ? opts->key_prefix : NULL);
  if (prefix &&
      esc__namespace(w->ns, sizeof w->ns, prefix, NULL, err) != ESC_OK) {
    free(w);
    return NULL;
  }
  w->schema = strdup(w->opts.schema ? w->opts.schema : "esc");
  w->pg_url = dup_or_null(w->opts.pg_url);
  w->redis_url = dup_or_null(w->opts.redis_url);
  w->jitter = (uint64_t)esc_now_us() ^ ((uint64_t)getpid() << 32) ^
              (uint64_t)(uintptr_t)w;
  if (!w->schema || pthread_mutex_init(&w->metrics_lock, NULL) != 0) {
    free(w->schema);
    free(w);
    esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
    return NULL;
  }
  if (!msgpack_zone_init(&w->zone, 4096)) {
    pthread_mutex_destroy(&w->metrics_lock);
    free(w->schema);
    free(w);
    esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
    return NULL;
  }
  if (esc__replica_configure(w, err) != ESC_OK) {
    esc_worker_free(w);
    return NULL;
  }
  return w;
}

static bool runs_partition(const esc_worker *w, int index) {
  if (!w->opts.partitions)
    return true;
  for (size_t i = 0; i < w->opts.partition_count; i++)
    if (w->opts.partitions[i] == index)
      return true;
  return false;
}

esc_status esc__check_names(const char *name, const char *const *categories,
                            esc_error *err) {
  if (!name || !esc__projection_name_valid(name, err))
    return ESC_EINVAL;
  for (const char *const *c = categories; c && *c; c++)
    if (!esc_category_valid(*c, err))
      return ESC_EINVAL;
  return ESC_OK;
}

static esc_status check_definition(const esc_projection *p, esc_error *err) {
  if (!p || !p->handle || p->version < 1 || p->partitions < 0)
    return esc_error_set(err, ESC_EINVAL,
                         "projection %s: needs a handler, a version >= 1 and "
                         "partitions >= 0",
                         p && p->name ? p->name : "(null)");
  return esc__check_names(p->name, p->categories, err);
}

esc_status esc__worker_enlist(esc_worker *w, const esc_projection *p,
                              const esc_subscription *sub,
                              esc_projection *sub_def, esc_error *err) {
  const struct esc__consumer_ops *ops =
      sub ? &esc__subscription_ops : &esc__projection_ops;
  int parts = esc__def_partitions(p);
  struct proj *projs = realloc(w->projs, (w->nprojs + 1) * sizeof *projs);
  if (!projs) {
    free(sub_def);
    return esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
  }
  w->projs = projs;
  /* parts moves: not while esc_worker_metrics_get copies it */
  pthread_mutex_lock(&w->metrics_lock);
  struct part *all =
      realloc(w->parts, (w->nparts + (size_t)parts) * sizeof *all);
  if (!all) {
    pthread_mutex_unlock(&w->metrics_lock);
    free(sub_def);
    return esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
  }
  w->parts = all;
  w->projs[w->nprojs] =
      (struct proj){.def = p, .ops = ops, .sub = sub, .sub_def = sub_def};
  if (w->ns[0])
    esc__key_base(w->projs[w->nprojs].base, ESC__KEY_MAX, w->ns, p->name);
  for (int i = 0; i < parts; i++) {
    if (!runs_partition(w, i))
      continue;
    struct part *pt = &w->parts[w->nparts++];
    *pt = (struct part){
        .proj_index = w->nprojs,
        .index = i,
        .lease_key = esc__lease_key(w->schema, p->name, parts, i)};
    snprintf(pt->pub.projection, sizeof pt->pub.projection, "%s", p->name);
    pt->pub.partition = i;
    pt->pub.kind = sub && sub->kind == ESC_CONSUMER_PROCESS
                       ? ESC_CONSUMER_PROCESS
                       : ops->kind;
  }
  pthread_mutex_unlock(&w->metrics_lock);
  w->nprojs++;
  return ESC_OK;
}

esc_status esc_worker_add(esc_worker *w, const esc_projection *p,
                          esc_error *err) {
  esc_status rc = check_definition(p, err);
  return rc ? rc : esc__worker_enlist(w, p, NULL, NULL, err);
}

static void link_parts(esc_worker *w) {
  for (size_t i = 0; i < w->nparts; i++)
    w->parts[i].proj = &w->projs[w->parts[i].proj_index];
}

static void release_part(struct part *pt) {
  if (pt->lease_conn)
    PQfinish(pt->lease_conn); /* the lock goes with the session */
  pt->lease_conn = NULL;
  pt->leased = false;
  esc__ctx_release(&pt->live.ctx);
  esc__ctx_release(&pt->rebuild.ctx);
}

void esc_worker_free(esc_worker *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->nparts; i++)
    release_part(&w->parts[i]);
  esc_store_free(w->store);
  esc__replica_forget(w);
  free(w->pg_read_url);
  if (w->pg)
    PQfinish(w->pg);
  esc__redis_free(w->redis);
  msgpack_zone_destroy(&w->zone);
  free(w->decoded);
  free(w->parts);
  for (size_t i = 0; i < w->nprojs; i++) {
    free(w->projs[i].sub_def);
    const esc_subscription *sub = w->projs[i].sub;
    if (sub && sub->release)
      sub->release(sub->userdata); /* may free sub: read it first */
  }
  free(w->projs);
  free(w->schema);
  free(w->pg_url);
  free(w->redis_url);
  pthread_mutex_destroy(&w->metrics_lock);
  free(w);
}

void esc_worker_stop(esc_worker *w) {
  atomic_store(&w->stop, 1);
}

/* -------------------------------------------------------- connections -- */

/* A worker never applies events out of stream order silently: while the
 * store's recorded check (migration 5, `esc check`) lists inversions, it
 * refuses to run, saying how to repair. Read once per worker: since
 * migration 5 no append path can store new ones. */
static esc_status check_log_order(esc_worker *w, esc_error *err) {
  esc_order_report r;
  if (w->order_checked)
    return ESC_OK;
  esc_status rc = esc_order_recorded(w->store, &r, err);
  if (rc)
    return rc;
  if (r.inversions > 0) {
    esc__worker_log(w,
                    "worker: the log holds %lld stream-order inversions in "
                    "%lld streams; refusing to apply them out of order",
                    (long long)r.inversions, (long long)r.streams);
    return esc_error_set(err, ESC_ECORRUPT,
                         "schema %s: %lld events in %lld streams are read "
                         "before the previous version of their stream; run "
                         "`esc check --repair`, then rebuild the projections "
                         "(docs/operations.md)",
                         w->schema, (long long)r.inversions,
                         (long long)r.streams);
  }
  w->order_checked = true;
  return ESC_OK;
}

/* The store's identity, read once: it names the keys' owner (P:owner)
 * and, unless a prefix is configured, their namespace. */
static esc_status read_identity(esc_worker *w, esc_error *err) {
  if (w->identity[0])
    return ESC_OK;
  esc_uuid id;
  esc_status rc = esc_store_identity(w->store, &id, err);
  if (rc)
    return rc;
  esc_uuid_format(&id, w->identity);
  if (!w->ns[0])
    rc = esc__namespace(w->ns, sizeof w->ns, NULL, w->identity, err);
  for (size_t i = 0; !rc && i < w->nprojs; i++)
    esc__key_base(w->projs[i].base, sizeof w->projs[i].base, w->ns,
                  w->projs[i].def->name);
  if (rc)
    w->identity[0] = '\0';
  return rc;
}

/* A worker running only subscriptions never needs Redis. */
static bool needs_redis(const esc_worker *w) {
  for (size_t i = 0; i < w->nprojs; i++)
    if (!w->projs[i].sub)
      return true;
  return false;
}

static esc_status connect_all(esc_worker *w, esc_error *err) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = w->schema;
  so.app_name = "esc-worker";
  /* Redis first: its connect is one cheap round trip, while a PostgreSQL
   * session costs a TLS handshake, a SCRAM login and its prepares. After a
   * failure every connection is made anew (forget_state), so with Redis
   * away the other order paid for two PostgreSQL sessions each round, and
   * a round begun just before a caller's deadline ran far past it. */
  if (w->redis && !esc__redis_ok(w->redis) && needs_redis(w)) {
    esc_status again = esc__redis_reconnect(w->redis, err);
    esc__metrics_connected(w, ESC__CONN_REDIS, again == ESC_OK);
    if (again)
      return ESC_ECONN;
  }
  if (!w->redis && needs_redis(w)) {
    w->redis = esc__redis_connect(w->redis_url, err);
    esc__metrics_connected(w, ESC__CONN_REDIS, w->redis != NULL);
    if (!w->redis)
      return ESC_ECONN;
  }
  if (!w->store) {
    w->store = esc_store_open(w->pg_url, &so, err);
    esc__metrics_connected(w, ESC__CONN_PG, w->store != NULL);
    if (!w->store)
      return err ? err->code : ESC_ECONN;
  }
  esc_status standby = esc__replica_connect(w, &so, err);
  if (standby)
    return standby;
  esc_status named = read_identity(w, err);
  if (named)
    return named;
  esc_status order = check_log_order(w, err);
  if (order)
    return order;
  if (w->pg && PQstatus(w->pg) != CONNECTION_OK) {
    PQfinish(w->pg);
    w->pg = NULL;
  }
  if (!w->pg && !(w->pg = esc__pg_connect(w->pg_url, "esc-worker", err))) {
    esc__metrics_lost(w, ESC__CONN_PG);
    return ESC_ECONN;
  }
  /* Before anything is applied: registering reads the store's partition
   * layout, and a worker of another count refuses (layout.c). */
  for (size_t i = 0; i < w->nprojs; i++) {
    struct proj *pj = &w->projs[i];
    esc_status rc = pj->registered ? ESC_OK : esc__layout_register(w, pj, err);
    if (rc)
      return rc;
  }
  return ESC_OK;
}

/* After a failure, everything is set up again from Redis, on new
 * connections: a server restart or a network cut breaks all of them, and
 * each would otherwise surface as one more failure (and a longer pause)
 * on its first use. Lease connections stay: they are checked on their
 * own. */
static void forget_state(esc_worker *w) {
  esc_store_free(w->store);
  w->store = NULL;
  esc__replica_forget(w);
  if (w->pg)
    PQfinish(w->pg);
  w->pg = NULL;
  esc__redis_free(w->redis);
  w->redis = NULL;
  for (size_t i = 0; i < w->nparts; i++)
    w->parts[i].ready = false;
  for (size_t i = 0; i < w->nprojs; i++)
    w->projs[i].serving = 0;
}

/* ------------------------------------------------------------- leases -- */

/* Takes (or checks) the lease of a partition. A standby tries every
 * lease_poll_ms; a holder re-checks as often that its session is alive. */
static esc_status tend_lease(esc_worker *w, struct part *pt, int64_t now,
                             esc_error *err) {
  int every = w->opts.lease_poll_ms > 0 ? w->opts.lease_poll_ms : 1000;
  if (now < pt->next_lease_ms)
    return ESC_OK;
  pt->next_lease_ms = now + every;
  if (pt->leased) {
    if (esc__lease_held(pt->lease_conn, pt->lease_key))
      return ESC_OK;
    esc__worker_log_at(w, ESC_LOG_WARN, pt, NULL, "%s/%d: lost the lease",
                       pt->proj->def->name, pt->index);
    release_part(pt);
    pt->ready = false;
  }
  if (!pt->lease_conn) {
    char app[64];
    snprintf(app, sizeof app, "esc-worker %s/%d pid %d", pt->proj->def->name,
             pt->index, (int)getpid());
    pt->lease_conn = esc__pg_connect(w->pg_url, app, err);
    if (!pt->lease_conn)
      return ESC_ECONN;
  }
  esc_status rc =
      esc__lease_try(pt->lease_conn, pt->lease_key, &pt->leased, err);
  if (rc && PQstatus(pt->lease_conn) != CONNECTION_OK) {
    /* A broken session holds no lock and never works again: drop it, so
     * the next poll opens a new one (a standby would otherwise stay
     * blind after a server restart, and never take over). */
    PQfinish(pt->lease_conn);
    pt->lease_conn = NULL;
    pt->leased = false;
  }
  if (!rc && pt->leased) {
    esc__worker_log_at(w, ESC_LOG_INFO, pt, NULL, "%s/%d: lease taken",
                       pt->proj->def->name, pt->index);
    pt->ready = false;
  }
  return rc;
}

/* -------------------------------------------------------------- steps -- */

static esc_status prepare(esc_worker *w, struct part *pt, esc_error *err) {
  struct proj *pj = pt->proj;
  esc_status rc = ESC_OK;
  if (!pj->serving)
    rc = esc__generation_load(w, pj, err);
  if (!rc && !pt->ready)
    rc = esc__generation_setup(w, pt, err);
  return rc;
}

/* A projection partition's step: one burst of its rebuild track, then of
 * its live track (the serving generation's). */
static esc_status projection_step(esc_worker *w, struct part *pt, bool *worked,
                                  esc_error *err) {
  bool live = false, rebuild = false;
  esc_status rc = prepare(w, pt, err);
  if (!rc && pt->proj->building && pt->ready && !pt->rebuild.stopped) {
    rc = esc__track_step(w, pt, &pt->rebuild, &rebuild, err);
    if (!rc)
      rc = esc__generation_try_switch(w, pt, err);
  }
  if (!rc && !pt->ready)
    rc = prepare(w, pt, err);
  /* A serving generation of another partition count is not this worker's
   * to apply into: during a repartition the workers of the old count keep
   * it up to date (or, once it has switched, nobody does any more). */
  if (!rc && pt->ready && !pt->live.stopped &&
      pt->proj->serving_partitions == esc__def_partitions(pt->proj->def))
    rc = esc__track_step(w, pt, &pt->live, &live, err);
  *worked = live || rebuild;
  return rc;
}

/* Rebuild requests, the layout, and old generations' keys. */
static esc_status projection_bookkeeping(esc_worker *w, struct proj *pj,
                                         int64_t now, esc_error *err) {
  esc_status rc = ESC_OK;
  if (pj->serving && now >= pj->next_request_ms) {
    pj->next_request_ms = now + ESC__BOOKKEEPING_MS;
    rc = esc__generation_check_rebuild(w, pj, err);
  }
  return rc ? rc : esc__generation_delete_step(w, pj, err);
}

const struct esc__consumer_ops esc__projection_ops = {
    ESC_CONSUMER_PROJECTION, projection_step, projection_bookkeeping};

/* A held partition's tracks (as its kind steps them), then the dead
 * letters whose retry was asked for; *worked when any track did. */
static esc_status step_part(esc_worker *w, struct part *pt, int64_t now,
                            bool *worked, esc_error *err) {
  *worked = false;
  esc_status rc = tend_lease(w, pt, now, err);
  if (rc || !pt->leased)
    return rc;
  rc = pt->proj->ops->step(w, pt, worked, err);
  if (!rc && now >= pt->next_retries_ms && pt->ready) {
    pt->next_retries_ms = now + ESC__BOOKKEEPING_MS;
    rc = esc__track_retry_dead_letters(w, pt, err);
  }
  return rc;
}

static esc_status bookkeeping(esc_worker *w, int64_t now, esc_error *err) {
  esc_status rc = ESC_OK;
  for (size_t i = 0; i < w->nprojs && !rc; i++)
    rc = w->projs[i].ops->bookkeeping(w, &w->projs[i], now, err);
  return rc;
}

/* One pass over every partition; *worked when any handled events. */
static esc_status round_once(esc_worker *w, bool *worked, esc_error *err) {
  int64_t now = esc__now_ms();
  esc_status rc = connect_all(w, err);
  *worked = false;
  /* Taken before any read: an event committed after it wakes the wait at
   * the end of an idle round, one committed before is read in this round.
   * Only needed where the round may end in a wait: after a busy round,
   * skip it (saves a round trip per batch) and let an idle round without
   * a head run once more, with one, before sleeping. */
  w->has_round_head = false;
  if (!rc && !w->last_round_worked) {
    rc = esc__replica_heads(w, err);
    w->has_round_head = !rc;
  }
  for (size_t i = 0; i < w->nparts && !rc && !w->stop; i++) {
    bool did = false;
    rc = step_part(w, &w->parts[i], now, &did, err);
    esc__metrics_publish(w, &w->parts[i]);
    *worked = *worked || did;
  }
  if (!rc)
    rc = bookkeeping(w, now, err);
  w->last_round_worked = *worked;
  return rc;
}

/* Errors worth another try after a pause: connections, time-outs, Redis. */
static bool transient(esc_status rc) {
  return rc == ESC_ECONN || rc == ESC_EIO || rc == ESC_ETIMEDOUT;
}

/* Pauses after a failed round (never past deadline, when one is set) and
 * drops every connection. */
static void back_off(esc_worker *w, int *delay_ms, int64_t deadline,
                     const esc_error *why) {
  /* Only failures in a row (a server that stays away) make the pause
   * grow; one long after the last, a connection dropped while the worker
   * slept say, starts again from the shortest. */
  int64_t now = esc__now_ms();
  if (now - w->last_failure_ms > 2 * (int64_t)*delay_ms)
    *delay_ms = 100;
  w->last_failure_ms = now;
  snprintf(w->last_failure, sizeof w->last_failure, "%s", why->msg);
  /* What broke, for the metrics (connect_all says which come back). */
  if (!w->store || (w->pg && PQstatus(w->pg) != CONNECTION_OK))
    esc__metrics_lost(w, ESC__CONN_PG);
  if (needs_redis(w) && (!w->redis || !esc__redis_ok(w->redis)))
    esc__metrics_lost(w, ESC__CONN_REDIS);
  /* jittered: workers that lost a server together do not all come back
   * at the same instant */
  int pause = esc__backoff_ms(w, 1, *delay_ms, *delay_ms);
  if (deadline && now + pause > deadline)
    pause = deadline > now ? (int)(deadline - now) : 0;
  esc__worker_log(w, "worker: %s; retrying in %d ms", why->msg, pause);
  for (int slept = 0; slept < pause && !w->stop; slept += 50) {
    int step = pause - slept < 50 ? pause - slept : 50;
    struct timespec ts = {0, step * 1000000L};
    nanosleep(&ts, NULL);
  }
  *delay_ms = *delay_ms * 2 > 5000 ? 5000 : *delay_ms * 2;
  forget_state(w);
}

/* Caught up also means no rebuild or deletion of old keys is pending. */
static bool generations_settled(const esc_worker *w) {
  for (size_t i = 0; i < w->nprojs; i++)
    if (w->projs[i].building || w->projs[i].deleting)
      return false;
  return true;
}

/* Old keys to delete keep the loop busy; a rebuild waiting for partitions
 * held elsewhere does not. */
static bool deleting(const esc_worker *w) {
  int64_t now = esc__now_ms();
  for (size_t i = 0; i < w->nprojs; i++)
    if (w->projs[i].deleting && now >= w->projs[i].delete_after_ms)
      return true;
  return false;
}

/* Nothing can move: every partition's live track is stopped and no
 * rebuild is running to replace it. */
static bool any_stopped_all(const esc_worker *w) {
  for (size_t i = 0; i < w->nparts; i++) {
    const struct part *pt = &w->parts[i];
    if (!pt->live.stopped || (pt->proj->building && !pt->rebuild.stopped))
      return false;
  }
  return w->nparts > 0;
}

/* The first track an error stopped (a Redis or handler error with
 * ESC_ON_ERROR_STOP), or NULL. A track stopped for a rebuild to replace
 * it (a vanished checkpoint) has no reason and is not one. */
static const struct track *stopped_by_error(const esc_worker *w) {
  for (size_t i = 0; i < w->nparts; i++) {
    const struct part *pt = &w->parts[i];
    if (pt->live.stopped && pt->live.stop_reason[0])
      return &pt->live;
    if (pt->proj->building && pt->rebuild.stopped &&
        pt->rebuild.stop_reason[0])
      return &pt->rebuild;
  }
  return NULL;
}

/* The first partition with an event failing in Redis (*t its track), or
 * NULL. */
static const struct part *failing(const esc_worker *w,
                                  const struct track **t) {
  for (size_t i = 0; i < w->nparts; i++) {
    const struct part *pt = &w->parts[i];
    if ((*t = &pt->live)->failure.pending ||
        (pt->proj->building && (*t = &pt->rebuild)->failure.pending))
      return pt;
  }
  return NULL;
}

/* How long an idle wait may last: until the next retry of an event that
 * failed in Redis, at most poll_ms. */
static int idle_wait_ms(const esc_worker *w, int poll_ms) {
  int64_t now = esc__now_ms(), until = now + poll_ms;
  for (size_t i = 0; i < w->nparts; i++) {
    const struct track *ts[2] = {&w->parts[i].live, &w->parts[i].rebuild};
    for (int k = 0; k < 2; k++)
      if (ts[k]->failure.pending && ts[k]->failure.retry_ms < until)
        until = ts[k]->failure.retry_ms;
  }
  return until > now ? (int)(until - now) : 0;
}

/* With until_idle: done after a round without work, once the log as it
 * was at the start is readable and no rebuild or deletion is pending. */
static esc_status idle_enough(esc_worker *w, int64_t target, bool *done,
                              esc_error *err) {
  const struct track *t;
  *done = false;
  for (size_t i = 0; i < w->nparts; i++)
    if (!w->parts[i].leased)
      return ESC_OK; /* held elsewhere: not caught up by us; keep trying */
  if (!generations_settled(w) || failing(w, &t))
    return ESC_OK;
  /* Where the log is read: a standby must have replayed up to target. */
  return esc_store_readable_through(esc__reader(w), target, done, err);
}

/* Not caught up by the deadline: says what held it back, most telling
 * first. */
static esc_status timed_out(const esc_worker *w, esc_error *err) {
  const struct track *t, *stopped = stopped_by_error(w);
  const struct part *pt = failing(w, &t);
  if (stopped)
    return esc_error_set(err, ESC_ETIMEDOUT, "not caught up in time: %s",
                         stopped->stop_reason);
  if (pt)
    return esc_error_set(err, ESC_ETIMEDOUT,
                         "not caught up in time: %s/%d g%" PRId64
                         ": an event keeps failing %s: %s",
                         pt->proj->def->name, pt->index, t->generation,
                         pt->proj->sub ? "in its handler" : "in Redis",
                         t->failure.error);
  if (w->last_failure[0])
    return esc_error_set(err, ESC_ETIMEDOUT, "not caught up in time: %s",
                         w->last_failure);
  for (size_t i = 0; i < w->nparts; i++)
    if (!w->parts[i].leased)
      return esc_error_set(err, ESC_ETIMEDOUT,
                           "not caught up in time: %s/%d is held by another "
                           "worker",
                           w->parts[i].proj->def->name, w->parts[i].index);
  return esc_error_set(err, ESC_ETIMEDOUT, "not caught up in time");
}

/* Caught up but for partitions an error stopped: that is a failure to
 * report, naming the partition, the event and why. */
static esc_status stopped_error(const esc_worker *w, const struct track *t,
                                esc_error *err) {
  (void)w;
  return esc_error_set(err, ESC_EIO, "%s", t->stop_reason);
}

/* Runs rounds; with until_idle, returns once caught up (see idle_enough) or
 * at the deadline. */
static esc_status run(esc_worker *w, bool until_idle, int64_t deadline,
                      esc_error *err) {
  int64_t target = -1; /* the newest position when the run began */
  int delay = 100;
  link_parts(w);
  while (!w->stop) {
    bool worked = false;
    esc_error e = ESC_ERROR_INIT;
    esc_status rc = round_once(w, &worked, &e);
    esc__metrics_round(w, rc ? e.msg : NULL);
    if (rc && !transient(rc)) {
      if (err)
        *err = e;
      return rc;
    }
    if (!rc && until_idle && target < 0)
      rc = esc_store_newest(w->store, &target, &e);
    bool done = false;
    if (!rc && until_idle && !worked)
      rc = idle_enough(w, target, &done, &e);
    if (rc) {
      /* a server that stays away must not make the caller wait longer */
      back_off(w, &delay, deadline, &e);
      if (deadline && esc__now_ms() >= deadline)
        return timed_out(w, err);
      continue;
    }
    delay = 100;
    w->last_failure[0] = '\0';
    const struct track *stopped = stopped_by_error(w);
    if (any_stopped_all(w))
      return stopped ? stopped_error(w, stopped, err)
                     : esc_error_set(err, ESC_EIO, "every partition is "
                                                   "stopped");
    if (done)
      return stopped ? stopped_error(w, stopped, err) : ESC_OK;
    if (deadline && esc__now_ms() > deadline)
      return timed_out(w, err);
    if (!worked && w->has_round_head && !deleting(w)) {
      int poll = idle_wait_ms(w, w->opts.poll_ms > 0 ? w->opts.poll_ms : 1000);
      if (deadline && esc__now_ms() + poll > deadline)
        poll = (int)(deadline - esc__now_ms());
      if (poll > 0)
        esc__replica_wait(w, poll < 500 ? poll : 500, poll);
    }
  }
  return ESC_OK;
}

/* A stop requested before run() began still counts; it is cleared on the
 * way out so the worker can be run again. */
esc_status esc_worker_run(esc_worker *w, esc_error *err) {
  esc__metrics_running(w, true);
  esc_status rc = run(w, false, 0, err);
  esc__metrics_running(w, false);
  atomic_store(&w->stop, 0);
  return rc;
}

esc_status esc_worker_run_until_caught_up(esc_worker *w, int timeout_ms,
                                          esc_error *err) {
  esc__metrics_running(w, true);
  esc_status rc = run(w, true, esc__now_ms() + timeout_ms, err);
  esc__metrics_running(w, false);
  atomic_store(&w->stop, 0);
  return rc;
}

/*
 * Reading the log from a hot standby (esc_worker_options.pg_read_url).
 *
 * The worker reads events from a second store, on the standby, and keeps
 * everything else on the primary: leases and checkpoints must be where
 * the other workers agree, and a standby refuses writes and LISTEN. The
 * horizon needs nothing of ours: a standby's snapshot counts the
 * primary's transactions in progress as in progress (PostgreSQL marks
 * every xid below the newest it has seen as running until it sees the
 * commit), so `tx_id < pg_snapshot_xmin(pg_current_snapshot())` on the
 * standby never passes a late committer of the primary.
 *
 * What changes is waiting and lag. Wake-ups come from the primary, where
 * an event is committed before the standby has it: when the standby is
 * behind the primary the worker polls the standby briefly instead of
 * sleeping (the primary would wake it at once, over and over). A standby
 * behind for longer than replica_max_lag_ms, or one that cannot be
 * reached that long, is abandoned for the primary and looked at again
 * every ESC_WORKER_REPLICA_RECHECK_MS.
 */
#include "worker_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

/* The pause between two looks at a standby that is catching up. */
#define REPLICA_CATCH_UP_POLL_MS 5

static bool reading_replica(const esc_worker *w) {
  return w->reader && !w->replica.abandoned;
}

esc_store *esc__reader(const esc_worker *w) {
  return reading_replica(w) ? w->reader : w->store;
}

esc_status esc__replica_configure(esc_worker *w, esc_error *err) {
  const char *url = w->opts.pg_read_url;
  if (!url)
    url = getenv("ESC_PG_READ_URL");
  if (!url || !*url)
    return ESC_OK;
  w->pg_read_url = strdup(url);
  w->opts.pg_read_url = NULL; /* borrowed: the copy above is ours */
  if (!w->pg_read_url)
    return esc_error_set(err, ESC_ENOMEM, "worker: out of memory");
  if (w->opts.replica_max_lag_ms < 0)
    return esc_error_set(err, ESC_EINVAL,
                         "worker: replica_max_lag_ms must be >= 0 (0: never "
                         "abandon the standby)");
  return ESC_OK;
}

/* The standby has been behind (or away) since now, or longer: abandons
 * it once that lasted past the bound. */
static void behind(esc_worker *w, int64_t now, const char *why) {
  struct replica_state *r = &w->replica;
  if (!r->behind_since_ms)
    r->behind_since_ms = now;
  int64_t bound = w->opts.replica_max_lag_ms;
  if (!bound || r->abandoned || now - r->behind_since_ms <= bound)
    return;
  r->abandoned = true;
  r->recheck_ms = now + ESC_WORKER_REPLICA_RECHECK_MS;
  esc__worker_log(w,
                  "worker: the standby has been %s for %" PRId64
                  " ms (more than %" PRId64 "); reading the log from the "
                  "primary until it catches up",
                  why, now - r->behind_since_ms, bound);
}

esc_status esc__replica_connect(esc_worker *w, const esc_store_options *so,
                                esc_error *err) {
  struct replica_state *r = &w->replica;
  int64_t now = esc__now_ms();
  if (!w->pg_read_url || w->reader)
    return ESC_OK;
  if (r->abandoned && now < r->recheck_ms)
    return ESC_OK; /* reading the primary; not worth a connect yet */
  esc_error why = ESC_ERROR_INIT;
  esc_store_options o = *so;
  o.app_name = "esc-worker-read";
  w->reader = esc_store_open(w->pg_read_url, &o, &why);
  if (w->reader)
    return ESC_OK;
  if (w->opts.replica_max_lag_ms) {
    behind(w, now, "unreachable");
    if (r->abandoned) {
      r->recheck_ms = now + ESC_WORKER_REPLICA_RECHECK_MS;
      return ESC_OK;
    }
  }
  if (err)
    esc_error_set(err, why.code ? why.code : ESC_ECONN, "the standby: %s",
                  why.msg);
  return why.code ? why.code : ESC_ECONN;
}

void esc__replica_forget(esc_worker *w) {
  esc_store_free(w->reader);
  w->reader = NULL;
}

/* An abandoned standby that has caught up with where the primary was at
 * the last look is read again. */
static void recheck(esc_worker *w, const esc_position *standby, int64_t now) {
  struct replica_state *r = &w->replica;
  if (now < r->recheck_ms)
    return;
  r->recheck_ms = now + ESC_WORKER_REPLICA_RECHECK_MS;
  if (r->has_mark && esc_position_cmp(standby, &r->mark) >= 0) {
    r->abandoned = false;
    r->behind_since_ms = 0;
    r->has_mark = false;
    esc__worker_log(w, "worker: the standby has caught up; reading the log "
                       "from it again");
    return;
  }
  r->mark = w->primary_head;
  r->has_mark = true;
}

esc_status esc__replica_heads(esc_worker *w, esc_error *err) {
  struct replica_state *r = &w->replica;
  esc_status rc = esc_store_head(w->store, &w->primary_head, err);
  if (rc || !w->reader) {
    w->round_head = w->primary_head;
    return rc;
  }
  esc_position standby;
  if ((rc = esc_store_head(w->reader, &standby, err)) != ESC_OK)
    return rc;
  int64_t now = esc__now_ms();
  r->lag_events = w->primary_head.global > standby.global
                      ? w->primary_head.global - standby.global
                      : 0;
  if (r->abandoned)
    recheck(w, &standby, now);
  else if (esc_position_cmp(&standby, &w->primary_head) < 0)
    behind(w, now, "behind the primary");
  else
    r->behind_since_ms = 0;
  /* What the next round can read, and wait past. */
  w->round_head = reading_replica(w) ? standby : w->primary_head;
  esc__replica_publish(w);
  return ESC_OK;
}

void esc__replica_wait(esc_worker *w, int max_ms, int poll_ms) {
  if (reading_replica(w) &&
      esc_position_cmp(&w->round_head, &w->primary_head) < 0) {
    /* The primary has more than the standby showed: it is replaying. */
    int ms = max_ms < REPLICA_CATCH_UP_POLL_MS ? max_ms
                                               : REPLICA_CATCH_UP_POLL_MS;
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
    return;
  }
  esc_wait_for_events(w->store, NULL, w->round_head, max_ms, poll_ms, NULL);
}

void esc__replica_publish(esc_worker *w) {
  pthread_mutex_lock(&w->metrics_lock);
  w->conn.replica = w->pg_read_url != NULL;
  w->conn.replica_reading = reading_replica(w);
  w->conn.replica_lag_events = w->replica.lag_events;
  pthread_mutex_unlock(&w->metrics_lock);
}

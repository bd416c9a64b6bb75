/*
 * Waiting for new events without a global bottleneck. NOTIFY at commit
 * takes a database-wide lock, so appends notify only while some reader is
 * registered in <schema>.waiters. A reader registers, LISTENs, checks once
 * more for readable events, and only then sleeps; a bounded poll covers the
 * rare missed wake-up and a horizon held back by another transaction.
 */
#include "store_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Here ESC_ETIMEDOUT means "no events yet": a server that did not answer
 * in time is a broken connection to a waiter, who reconnects. */
static esc_status lost_in_wait(esc_status rc, esc_error *err) {
  if (rc != ESC_ETIMEDOUT)
    return rc;
  if (err)
    err->code = ESC_ECONN;
  return ESC_ECONN;
}

static esc_status start_listening(esc_store *st, esc_error *err) {
  if (st->listening)
    return ESC_OK;
  char *ident = PQescapeIdentifier(st->conn, st->channel, strlen(st->channel));
  char sql[128];
  if (!ident)
    return esc__fail_pg(err, st->conn, NULL, "listen");
  snprintf(sql, sizeof sql, "LISTEN %s", ident);
  PQfreemem(ident);
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = sql});
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = lost_in_wait(esc__fail_store(err, st, res, "listen"), err);
  else
    st->listening = true;
  PQclear(res);
  return rc;
}

/* Runs a prepared statement with text parameters, expecting rows. */
static esc_status exec_stmt(esc_store *st, enum esc__stmt s, int n,
                            const char *const *values, const int *lengths,
                            const int *formats, PGresult **out,
                            esc_error *err) {
  const char *name;
  esc_status rc = esc__prepare(st, s, &name, err);
  if (rc)
    return lost_in_wait(esc__prefix(err, rc, "wait for events"), err);
  PGresult *res = esc__exec(st, &(struct esc__query){.stmt = name,
                                                     .n = n,
                                                     .values = values,
                                                     .lengths = lengths,
                                                     .formats = formats});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = lost_in_wait(esc__fail_store(err, st, res, "wait for events"), err);
    PQclear(res);
    return rc;
  }
  if (out)
    *out = res;
  else
    PQclear(res);
  return ESC_OK;
}

static esc_status has_events(esc_store *st, const char *category,
                             esc_position after, bool *yes, esc_error *err) {
  unsigned char tx[8], global[8];
  esc__put_be64(tx, after.tx_id);
  esc__put_be64(global, (uint64_t)after.global);
  const char *values[] = {(const char *)tx, (const char *)global, category};
  int lengths[] = {8, 8, category ? (int)strlen(category) : 0};
  int formats[] = {1, 1, 0};
  PGresult *res = NULL;
  esc_status rc = exec_stmt(
      st, category ? ESC__STMT_HAS_EVENTS_CATEGORY : ESC__STMT_HAS_EVENTS_ALL,
      category ? 3 : 2, values, lengths, formats, &res, err);
  if (!rc)
    *yes = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return rc;
}

/* Consumes pending notifications; true if one concerns category. */
static bool drain_notifications(esc_store *st, const char *category) {
  bool relevant = false;
  PGnotify *n;
  PQconsumeInput(st->conn);
  while ((n = PQnotifies(st->conn)) != NULL) {
    if (!category || strcmp(n->extra, category) == 0)
      relevant = true;
    PQfreemem(n);
  }
  return relevant;
}

/*
 * Sleeps until a relevant notification, a poll that finds events, or the
 * deadline (deadline < 0: none). The poll runs every poll_ms whatever else
 * arrives, so a stream of other categories' notifications cannot starve it.
 */
static esc_status sleep_until_woken(esc_store *st, const char *category,
                                    esc_position after, int64_t deadline,
                                    int poll_ms, esc_error *err) {
  int64_t next_poll = esc__clock_ms() + poll_ms;
  for (;;) {
    if (drain_notifications(st, category))
      return ESC_OK;
    int64_t now = esc__clock_ms();
    if (now >= next_poll) {
      bool yes = false;
      esc_status rc = has_events(st, category, after, &yes, err);
      if (rc || yes)
        return rc;
      next_poll = now + poll_ms;
    }
    if (deadline >= 0 && now >= deadline)
      return esc__fail(err, ESC_ETIMEDOUT, "no new events in %s",
                       category ? category : "$all");
    int64_t until =
        deadline >= 0 && deadline < next_poll ? deadline : next_poll;
    struct pollfd pfd = {PQsocket(st->conn), POLLIN, 0};
    if (poll(&pfd, 1, (int)(until - now)) < 0 && errno != EINTR)
      return esc__fail(err, ESC_EIO, "wait for events: poll: %s",
                       strerror(errno));
    if (PQstatus(st->conn) != CONNECTION_OK)
      return esc__fail_store(err, st, NULL, "wait for events");
  }
}

esc_status esc_wait_for_events(esc_store *store, const char *category,
                               esc_position after, int timeout_ms, int poll_ms,
                               esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  bool yes = false;
  if (category && !esc_category_valid(category, &inner))
    return esc__fail(err, ESC_EINVAL, "wait for events: %s", inner.msg);
  int64_t deadline = timeout_ms < 0 ? -1 : esc__clock_ms() + timeout_ms;
  esc_status rc = esc__ensure_conn(store, err);
  if (!rc)
    rc = start_listening(store, err);
  if (rc)
    return rc;

  drain_notifications(store, NULL); /* stale hints from earlier waits */
  const char *values[] = {category};
  rc = exec_stmt(store, ESC__STMT_WAIT_REGISTER, 1, values, NULL, NULL, NULL,
                 err);
  if (!rc)
    rc = has_events(store, category, after, &yes, err);
  if (!rc && !yes)
    rc = sleep_until_woken(store, category, after, deadline,
                           poll_ms > 0 ? poll_ms : 1000, err);
  /* Stay registered only while asleep: a busy reader costs appends nothing.
   * A session that broke took its registration with it. */
  if (rc && PQstatus(store->conn) != CONNECTION_OK)
    return rc;
  esc_status un = exec_stmt(store, ESC__STMT_WAIT_UNREGISTER, 0, NULL, NULL,
                            NULL, NULL, rc ? NULL : err);
  return rc ? rc : un;
}

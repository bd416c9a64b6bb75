/*
 * Applying retention policies: plan, archive, then truncate.
 *
 * The order is what keeps a run from losing anything by surprise: the
 * plan fixes each stream's cut-off version once, every event below it
 * goes to the caller's archive (which is made durable) before the first
 * removal, and the removals go through esc_stream_truncate, so the guard
 * of migration 8 and the retention log see each one. A cut-off is at most
 * the stream's version when planned, so events appended during the run
 * are above it: what is removed is a subset of what was archived.
 *
 * A stream no snapshot covers would lose its state for good (migration
 * 15), so the plan marks it (truncation_uncovered, the rule truncate_stream
 * refuses on) and, unless the run is forced, it is neither archived nor
 * truncated; the run goes on with the others and ends in ESC_ETRUNCATED.
 * Should a snapshot go between plan and truncation, truncate_stream
 * refuses it all the same, and it is reported the same way.
 */
#include "retention_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events read per round trip while archiving. */
#define ARCHIVE_PAGE 500

/* Columns of the plan: stream_id, the policy (6), version, before, events,
 * the version a truncation would leave uncovered (NULL: none). */
static void item_row(const PGresult *res, int row, esc_retention_item *it) {
  snprintf(it->stream_id, sizeof it->stream_id, "%s", PQgetvalue(res, row, 0));
  esc__retention_policy_row(res, row, 1, &it->policy);
  it->version = strtoll(PQgetvalue(res, row, 7), NULL, 10);
  it->before = strtoll(PQgetvalue(res, row, 8), NULL, 10);
  it->events = strtoll(PQgetvalue(res, row, 9), NULL, 10);
  it->refused = !PQgetisnull(res, row, 10);
}

static esc_status fetch_plan(esc_store *st, PGresult **plan, esc_error *err) {
  char sql[400];
  esc_status rc = esc__ensure_conn(st, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql,
           "SELECT stream_id, " ESC__RETENTION_POLICY_COLUMNS
           ", version, before_version, events,"
           " %s.truncation_uncovered(stream_id, before_version)"
           " FROM %s.retention_plan()",
           st->schema_ident, st->schema_ident);
  PGresult *res = esc__exec(st, &(struct esc__query){.sql = sql});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, st, res, "plan retention");
    PQclear(res);
    return rc;
  }
  *plan = res;
  return ESC_OK;
}

/* Hands the stream's events below it->before to the archive callback. */
static esc_status archive_stream(esc_store *st, const esc_retention_item *it,
                                 const esc_retention_run_options *o,
                                 int64_t *archived, esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_status rc = ESC_OK;
  int64_t from = 0;
  bool more = true;
  while (!rc && more) {
    rc = esc_read_stream(st, it->stream_id, from, ESC_FORWARD, ARCHIVE_PAGE,
                         &ev, err);
    more = !rc && ev.count == ARCHIVE_PAGE;
    for (size_t i = 0; !rc && i < ev.count; i++) {
      const esc_recorded_event *e = &ev.items[i];
      if (e->stream_version >= it->before) {
        more = false;
        break;
      }
      rc = o->archive_event(o->userdata, e, err);
      if (!rc)
        (*archived)++;
      from = e->stream_version + 1;
    }
  }
  esc_events_release(&ev);
  if (rc && err)
    err->code = rc; /* a callback may have left it unset */
  return rc;
}

static esc_status archive_all(esc_store *st, const PGresult *plan,
                              const esc_retention_run_options *o,
                              esc_retention_report *report, esc_error *err) {
  esc_status rc = ESC_OK;
  for (int i = 0; !rc && i < PQntuples(plan); i++) {
    esc_retention_item it;
    item_row(plan, i, &it);
    if (!it.refused || o->force)
      rc = archive_stream(st, &it, o, &report->archived, err);
  }
  if (!rc && o->archive_sync) {
    rc = o->archive_sync(o->userdata, err);
    if (rc && err)
      err->code = rc;
  }
  return rc;
}

/* Truncates one planned stream. ESC_ETRUNCATED (no snapshot covers it)
 * marks the item refused and is no failure of the run. */
static esc_status truncate_one(esc_store *st, esc_retention_item *it,
                               const esc_retention_run_options *o,
                               esc_error *err) {
  char limits[96], reason[ESC_STREAM_ID_MAX + 160];
  esc_truncate_options t = ESC_TRUNCATE_OPTIONS_INIT;
  esc_error inner = ESC_ERROR_INIT;
  esc_retention_policy_describe(&it->policy, limits, sizeof limits);
  snprintf(reason, sizeof reason, "retention policy of %s %s (%s)",
           esc__retention_scope_name(it->policy.scope), it->policy.target,
           limits);
  t.reason = reason;
  t.force = o->force;
  esc_status rc = esc_stream_truncate_opts(st, it->stream_id, it->before, &t,
                                           &it->events, &inner);
  it->refused = rc == ESC_ETRUNCATED;
  if (it->refused)
    it->events = 0;
  else if (rc && err)
    *err = inner; /* the message names the stream */
  return it->refused ? ESC_OK : rc;
}

static void count_item(esc_retention_report *report,
                       const esc_retention_item *it) {
  if (it->refused) {
    report->refused++;
    return;
  }
  report->streams++;
  report->events += it->events;
}

/* Refusals end the run in ESC_ETRUNCATED, naming the first one. */
static esc_status refused(esc_retention_report *report, const char *first,
                          esc_error *err) {
  return esc_error_set(
      err, ESC_ETRUNCATED,
      "%" PRId64 " stream%s refused, %s the first: no "
      "snapshot covers the versions it would remove, so its state could "
      "never be loaded again; take a snapshot (esc_truncate_stream does) "
      "or force the run",
      report->refused, report->refused == 1 ? "" : "s", first);
}

static esc_status apply_plan(esc_store *st, const PGresult *plan,
                             const esc_retention_run_options *o,
                             esc_retention_report *report, esc_error *err) {
  char first[ESC_STREAM_ID_MAX + 1] = "";
  for (int i = 0; i < PQntuples(plan); i++) {
    esc_retention_item it;
    item_row(plan, i, &it);
    if (o->force)
      it.refused = false; /* truncate_stream says, with force, what was */
    if (!o->dry_run && !it.refused) {
      esc_status rc = truncate_one(st, &it, o, err);
      if (rc)
        return rc;
    }
    count_item(report, &it);
    if (it.refused && !first[0])
      snprintf(first, sizeof first, "%s", it.stream_id);
    if (o->on_item)
      o->on_item(o->userdata, &it);
  }
  if (report->refused && !o->dry_run)
    return refused(report, first, err);
  return ESC_OK;
}

esc_status esc_retention_run(esc_store *store,
                             const esc_retention_run_options *opts,
                             esc_retention_report *report, esc_error *err) {
  static const esc_retention_run_options defaults =
      ESC_RETENTION_RUN_OPTIONS_INIT;
  const esc_retention_run_options *o = opts ? opts : &defaults;
  esc_retention_report local = {0, 0, 0, 0};
  esc_retention_report *r = report ? report : &local;
  *r = local;
  PGresult *plan = NULL;
  esc_status rc = fetch_plan(store, &plan, err);
  if (rc)
    return rc;
  if (!o->dry_run && o->archive_event)
    rc = archive_all(store, plan, o, r, err);
  if (!rc)
    rc = apply_plan(store, plan, o, r, err);
  PQclear(plan);
  if (!rc)
    esc__clear(err);
  return rc;
}

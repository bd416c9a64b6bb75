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
 */
#include "retention_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events read per round trip while archiving. */
#define ARCHIVE_PAGE 500

/* Columns of the plan: stream_id, the policy (6), version, before, events. */
static void item_row(const PGresult *res, int row, esc_retention_item *it) {
  snprintf(it->stream_id, sizeof it->stream_id, "%s", PQgetvalue(res, row, 0));
  esc__retention_policy_row(res, row, 1, &it->policy);
  it->version = strtoll(PQgetvalue(res, row, 7), NULL, 10);
  it->before = strtoll(PQgetvalue(res, row, 8), NULL, 10);
  it->events = strtoll(PQgetvalue(res, row, 9), NULL, 10);
}

static esc_status fetch_plan(esc_store *st, PGresult **plan, esc_error *err) {
  char sql[320];
  esc_status rc = esc__ensure_conn(st, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql,
           "SELECT stream_id, " ESC__RETENTION_POLICY_COLUMNS
           ", version, before_version, events FROM %s.retention_plan()",
           st->schema_ident);
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
    rc = archive_stream(st, &it, o, &report->archived, err);
  }
  if (!rc && o->archive_sync) {
    rc = o->archive_sync(o->userdata, err);
    if (rc && err)
      err->code = rc;
  }
  return rc;
}

static esc_status truncate_one(esc_store *st, esc_retention_item *it,
                               esc_error *err) {
  char limits[96], reason[ESC_STREAM_ID_MAX + 160];
  esc_retention_policy_describe(&it->policy, limits, sizeof limits);
  snprintf(reason, sizeof reason, "retention policy of %s %s (%s)",
           esc__retention_scope_name(it->policy.scope), it->policy.target,
           limits);
  return esc_stream_truncate(st, it->stream_id, it->before, reason, &it->events,
                             err);
}

static esc_status apply_plan(esc_store *st, const PGresult *plan,
                             const esc_retention_run_options *o,
                             esc_retention_report *report, esc_error *err) {
  for (int i = 0; i < PQntuples(plan); i++) {
    esc_retention_item it;
    item_row(plan, i, &it);
    if (!o->dry_run) {
      esc_status rc = truncate_one(st, &it, err);
      if (rc)
        return rc; /* the message names the stream */
    }
    report->streams++;
    report->events += it.events;
    if (o->on_item)
      o->on_item(o->userdata, &it);
  }
  return ESC_OK;
}

esc_status esc_retention_run(esc_store *store,
                             const esc_retention_run_options *opts,
                             esc_retention_report *report, esc_error *err) {
  static const esc_retention_run_options defaults =
      ESC_RETENTION_RUN_OPTIONS_INIT;
  const esc_retention_run_options *o = opts ? opts : &defaults;
  esc_retention_report local = {0, 0, 0};
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

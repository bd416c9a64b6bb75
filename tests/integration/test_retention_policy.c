/*
 * Retention policies against a real PostgreSQL (#11 item 3): policies per
 * stream or category are stored with who set them and when; bad ones are
 * refused naming what is wrong and change nothing; a run removes only what
 * the applying policy says (the stream's own wins over its category's),
 * never a stream's last event, keeps versions, logs each removal with the
 * policy as its reason, and hands every event to the archive and syncs it
 * before the first removal; when the archive fails nothing is removed.
 * A stream no snapshot covers is refused unless the run is forced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testenv.h"

static char schema[40]; /* per process: parallel runs must not collide */

static const unsigned char PAYLOAD[] = {0x81, 0xa1, 'n', 0x01}; /* {"n":1} */

static void append_n(esc_store *st, const char *stream, int n) {
  esc_error err = ESC_ERROR_INIT;
  for (int i = 0; i < n; i++) {
    esc_event_data e = {esc_uuid_v4(),  "Tick", 1, PAYLOAD,
                        sizeof PAYLOAD, NULL,   0};
    if (esc_append(st, stream, ESC_EXPECT_ANY, &e, 1, NULL, &err))
      fail_msg("append %s: %s", stream, err.msg);
  }
}

/* The whole events table (every column of every row) as count:md5. */
static char *events_digest(PGconn *raw) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) || ':' || coalesce(md5(string_agg(e::text, ',' "
           "ORDER BY global_position)), '') FROM %s.events e",
           schema);
  return esc_test_query_text(raw, sql);
}

static long long query_ll(PGconn *raw, const char *fmt, const char *arg) {
  char sql[512];
  snprintf(sql, sizeof sql, fmt, schema, arg);
  return esc_test_query_ll(raw, sql);
}

static long long events_of(PGconn *raw, const char *stream) {
  return query_ll(raw, "SELECT count(*) FROM %s.events WHERE stream_id = '%s'",
                  stream);
}

static long long first_version(PGconn *raw, const char *stream) {
  return query_ll(raw,
                  "SELECT min(stream_version) FROM %s.events "
                  "WHERE stream_id = '%s'",
                  stream);
}

/* A snapshot at the stream's version: what lets a run truncate it (a
 * stream no snapshot covers is refused, migration 15). */
static void cover(esc_store *st, const char *stream) {
  esc_error err = ESC_ERROR_INIT;
  esc_stream_info si;
  if (esc_stream_get(st, stream, &si, &err) ||
      esc_snapshot_write(st, stream, si.version, 1, PAYLOAD, sizeof PAYLOAD,
                         &err))
    fail_msg("snapshot %s: %s", stream, err.msg);
}

static esc_retention_policy policy(esc_retention_scope scope,
                                   const char *target, int64_t age,
                                   int64_t count) {
  esc_retention_policy p = ESC_RETENTION_POLICY_INIT;
  p.scope = scope;
  snprintf(p.target, sizeof p.target, "%s", target);
  p.max_age_s = age;
  p.max_count = count;
  return p;
}

static void set_ok(esc_store *st, esc_retention_scope scope, const char *target,
                   int64_t age, int64_t count) {
  esc_error err = ESC_ERROR_INIT;
  esc_retention_policy p = policy(scope, target, age, count);
  if (esc_retention_policy_set(st, &p, &err))
    fail_msg("set %s: %s", target, err.msg);
}

/* ------------------------------------------------------------------------
 * Policies: set, list, replace, remove
 * ------------------------------------------------------------------------ */

static void policies_are_stored_with_who_and_when(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 1);
  set_ok(st, ESC_RETENTION_CATEGORY, "order", 30 * 86400, 0);
  set_ok(st, ESC_RETENTION_STREAM, "order-1", 0, 10);
  set_ok(st, ESC_RETENTION_STREAM, "order-1", 7200, 5); /* replaces */

  esc_retention_policy out[4];
  size_t n = 0;
  assert_int_equal(esc_retention_policy_list(st, NULL, out, 4, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 2);
  /* Ordered by target: "order" (the category), then "order-1". */
  assert_int_equal(out[0].scope, ESC_RETENTION_CATEGORY);
  assert_string_equal(out[0].target, "order");
  assert_int_equal(out[0].max_age_s, 30 * 86400);
  assert_int_equal(out[0].max_count, 0);
  assert_int_equal(out[1].scope, ESC_RETENTION_STREAM);
  assert_string_equal(out[1].target, "order-1");
  assert_int_equal(out[1].max_age_s, 7200);
  assert_int_equal(out[1].max_count, 5);
  PGconn *raw = esc_test_pg_tracked();
  char *login = esc_test_query_text(raw, "SELECT session_user::text");
  assert_string_equal(out[1].set_by, login);
  free(login);
  int64_t now = esc_now_us();
  assert_true(out[1].set_at_us > now - 60 * 1000000LL);
  assert_true(out[1].set_at_us <= now + 5 * 1000000LL);

  char text[96];
  esc_retention_policy_describe(&out[0], text, sizeof text);
  assert_string_equal(text, "max-age 30d");
  esc_retention_policy_describe(&out[1], text, sizeof text);
  assert_string_equal(text, "max-age 2h, max-count 5");

  /* Paging continues after the last one seen. */
  assert_int_equal(esc_retention_policy_list(st, &out[0], out, 4, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].target, "order-1");

  assert_int_equal(
      esc_retention_policy_remove(st, ESC_RETENTION_STREAM, "order-1", &err),
      ESC_OK);
  assert_int_equal(
      esc_retention_policy_remove(st, ESC_RETENTION_STREAM, "order-1", &err),
      ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "order-1"));
  assert_int_equal(esc_retention_policy_list(st, NULL, out, 4, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].target, "order");
  esc_store_free(st);
}

static void expect_refused(esc_store *st, esc_retention_policy p,
                           esc_status code, const char *needle) {
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_retention_policy_set(st, &p, &err);
  if (rc != code || !strstr(err.msg, needle))
    fail_msg("set %s (age %lld, count %lld): %s (%s), expected %s naming %s",
             p.target, (long long)p.max_age_s, (long long)p.max_count,
             esc_strerror(rc), err.msg, esc_strerror(code), needle);
  assert_int_equal(err.code, code);
}

static void bad_policies_are_refused_and_change_nothing(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 2);
  append_n(st, "gone-1", 1);
  assert_int_equal(esc_stream_tombstone(st, "gone-1", "t", NULL, &err), ESC_OK);
  set_ok(st, ESC_RETENTION_STREAM, "order-1", 0, 3);

  const esc_retention_scope S = ESC_RETENTION_STREAM,
                            C = ESC_RETENTION_CATEGORY;
  expect_refused(st, policy(S, "order-1", 0, -1), ESC_EINVAL, "max count -1");
  expect_refused(st, policy(S, "order-1", -5, 0), ESC_EINVAL, "max age -5");
  expect_refused(st, policy(S, "order-1", ESC_RETENTION_MAX_AGE_S + 1, 0),
                 ESC_EINVAL, "out of range");
  expect_refused(st, policy(S, "order-1", 0, 0), ESC_EINVAL,
                 "give a max age, a max count or both");
  expect_refused(st, policy(S, "ord er-1", 0, 1), ESC_EINVAL, "ord er-1");
  expect_refused(st, policy(C, "order-1", 0, 1), ESC_EINVAL, "order-1");
  expect_refused(st, policy(S, "order-404", 0, 1), ESC_ENOTFOUND, "order-404");
  expect_refused(st, policy(C, "invoice", 0, 1), ESC_ENOTFOUND, "invoice");
  expect_refused(st, policy(S, "gone-1", 0, 1), ESC_ENOTFOUND, "tombstoned");
  assert_int_equal(esc_retention_policy_remove(st, C, "order", &err),
                   ESC_ENOTFOUND);
  assert_int_equal(esc_retention_policy_remove(st, S, "bad id", &err),
                   ESC_EINVAL);

  /* Policies are the owner's: the writer role can neither set one
   * through the function nor write the table. */
  char writer[ESC_ROLE_NAME_MAX], reader[ESC_ROLE_NAME_MAX], sql[512];
  char code[6];
  assert_int_equal(esc_store_roles(st, writer, reader, &err), ESC_OK);
  snprintf(sql, sizeof sql, "SET ROLE \"%s\"", writer);
  esc_test_exec(raw, sql);
  snprintf(sql, sizeof sql,
           "SELECT %s.retention_policy_set('stream', 'order-1', NULL, 1)",
           schema);
  esc_test_exec_fails(raw, sql, code);
  assert_string_equal(code, "42501");
  snprintf(sql, sizeof sql,
           "INSERT INTO %s.retention_policies (kind, target, max_count) "
           "VALUES ('category', 'order', 1)",
           schema);
  esc_test_exec_fails(raw, sql, code);
  assert_string_equal(code, "42501");
  esc_test_exec(raw, "RESET ROLE");

  /* The one good policy is as it was. */
  assert_int_equal(query_ll(raw,
                            "SELECT count(*) FROM %s.retention_policies "
                            "WHERE target = '%s' AND max_count = 3 AND "
                            "max_age_s IS NULL",
                            "order-1"),
                   1);
  assert_int_equal(
      query_ll(raw, "SELECT count(*) FROM %s.retention_policies%s", ""), 1);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Running: max count, precedence, dry run, the log
 * ------------------------------------------------------------------------ */

typedef struct seen {
  esc_retention_item items[8];
  int n;
} seen;

static void on_item(void *userdata, const esc_retention_item *it) {
  seen *s = userdata;
  assert_true(s->n < 8);
  s->items[s->n++] = *it;
}

/* Options of a dry run that collects its items into *s. */
static esc_retention_run_options dry_run_into(seen *s) {
  esc_retention_run_options o = ESC_RETENTION_RUN_OPTIONS_INIT;
  s->n = 0;
  o.dry_run = true;
  o.on_item = on_item;
  o.userdata = s;
  return o;
}

static void dry_run_reports_and_run_removes_per_policy(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 5);
  append_n(st, "order-2", 1);
  append_n(st, "order-3", 6);
  append_n(st, "invoice-1", 4);
  set_ok(st, ESC_RETENTION_CATEGORY, "order", 0, 2);
  /* Looser than its category's, and it wins: order-3 keeps 4. */
  set_ok(st, ESC_RETENTION_STREAM, "order-3", 0, 4);
  cover(st, "order-1");
  cover(st, "order-3");
  char *before = events_digest(raw);

  seen s;
  esc_retention_run_options o = dry_run_into(&s);
  esc_retention_report rep;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 2);
  assert_int_equal(rep.events, 5);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.items[0].stream_id, "order-1");
  assert_int_equal(s.items[0].policy.scope, ESC_RETENTION_CATEGORY);
  assert_string_equal(s.items[0].policy.target, "order");
  assert_int_equal(s.items[0].before, 4);
  assert_int_equal(s.items[0].version, 5);
  assert_int_equal(s.items[0].events, 3);
  assert_string_equal(s.items[1].stream_id, "order-3");
  assert_int_equal(s.items[1].policy.scope, ESC_RETENTION_STREAM);
  assert_int_equal(s.items[1].before, 3);
  assert_int_equal(s.items[1].events, 2);
  char *after = events_digest(raw);
  assert_string_equal(after, before); /* a dry run removes nothing */
  free(after);
  assert_int_equal(query_ll(raw, "SELECT count(*) FROM %s.retention_log%s", ""),
                   0);

  s.n = 0;
  o.dry_run = false;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 2);
  assert_int_equal(rep.events, 5);
  assert_int_equal(s.items[0].events, 3);
  assert_int_equal(events_of(raw, "order-1"), 2);
  assert_int_equal(first_version(raw, "order-1"), 4);
  assert_int_equal(events_of(raw, "order-2"), 1);
  assert_int_equal(events_of(raw, "order-3"), 4);
  assert_int_equal(first_version(raw, "order-3"), 3);
  assert_int_equal(events_of(raw, "invoice-1"), 4);

  /* Each removal is logged by the guarded path, naming the policy. */
  assert_int_equal(query_ll(raw,
                            "SELECT count(*) FROM %s.retention_log WHERE "
                            "operation = 'truncate' AND tx_id IS NOT NULL AND "
                            "reason = '%s'",
                            "retention policy of category order "
                            "(max-count 2)"),
                   1);
  assert_int_equal(query_ll(raw,
                            "SELECT events_removed FROM %s.retention_log "
                            "WHERE stream_id = '%s'",
                            "order-3"),
                   2);
  /* Versions go on: expecting the old version works. */
  esc_event_data e = {esc_uuid_v4(),  "Tick", 1, PAYLOAD,
                      sizeof PAYLOAD, NULL,   0};
  esc_append_result res;
  assert_int_equal(esc_append(st, "order-1", 5, &e, 1, &res, &err), ESC_OK);
  assert_int_equal(res.first_version, 6);

  /* A second run has nothing more than the new event's overflow. */
  s.n = 0;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 1);
  assert_int_equal(rep.events, 1);
  assert_int_equal(first_version(raw, "order-1"), 5);
  free(before);
  esc_store_free(st);
}

static void max_age_removes_old_events_but_never_the_last(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 3);
  append_n(st, "order-2", 2);
  esc_test_sleep_ms(4000);
  append_n(st, "order-1", 2);
  set_ok(st, ESC_RETENTION_CATEGORY, "order", 3, 0);
  cover(st, "order-1");
  cover(st, "order-2");

  esc_retention_report rep;
  assert_int_equal(esc_retention_run(st, NULL, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 2);
  assert_int_equal(rep.events, 4);
  assert_int_equal(events_of(raw, "order-1"), 2);
  assert_int_equal(first_version(raw, "order-1"), 4);
  /* Every event of order-2 is old; its last one stays. */
  assert_int_equal(events_of(raw, "order-2"), 1);
  assert_int_equal(first_version(raw, "order-2"), 2);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Archive first
 * ------------------------------------------------------------------------ */

typedef struct archive {
  PGconn *raw;
  int events;
  int fail_at; /* fail on this event (1-based); 0: never */
  bool fail_sync;
  long long stored_at_sync; /* events in the table when sync ran */
  esc_uuid ids[16];
} archive;

static esc_status archive_event(void *userdata, const esc_recorded_event *e,
                                esc_error *err) {
  archive *a = userdata;
  if (++a->events == a->fail_at)
    return esc_error_set(err, ESC_EIO, "archive.jsonl: disk full (test)");
  assert_true(a->events <= 16);
  a->ids[a->events - 1] = e->id;
  return ESC_OK;
}

static esc_status archive_sync(void *userdata, esc_error *err) {
  archive *a = userdata;
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
  a->stored_at_sync = esc_test_query_ll(a->raw, sql);
  if (a->fail_sync)
    return esc_error_set(err, ESC_EIO, "archive.jsonl: fsync failed (test)");
  return ESC_OK;
}

static void expect_nothing_removed(esc_store *st, archive *a,
                                   const char *needle) {
  esc_error err = ESC_ERROR_INIT;
  char *before = events_digest(a->raw);
  esc_retention_run_options o = ESC_RETENTION_RUN_OPTIONS_INIT;
  o.archive_event = archive_event;
  o.archive_sync = archive_sync;
  o.userdata = a;
  esc_retention_report rep;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_EIO);
  assert_int_equal(err.code, ESC_EIO);
  if (!strstr(err.msg, needle))
    fail_msg("error %s does not say %s", err.msg, needle);
  assert_int_equal(rep.events, 0);
  char *after = events_digest(a->raw);
  assert_string_equal(after, before);
  free(after);
  free(before);
  assert_int_equal(
      query_ll(a->raw, "SELECT count(*) FROM %s.retention_log%s", ""), 0);
}

static void archive_gets_every_event_before_removal(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 4);
  append_n(st, "order-2", 3);
  set_ok(st, ESC_RETENTION_CATEGORY, "order", 0, 1);
  cover(st, "order-1");
  cover(st, "order-2");

  archive bad = {.raw = raw, .fail_at = 4};
  expect_nothing_removed(st, &bad, "disk full");
  archive unsynced = {.raw = raw, .fail_sync = true};
  expect_nothing_removed(st, &unsynced, "fsync failed");
  assert_int_equal(unsynced.events, 5);

  archive a = {.raw = raw};
  esc_retention_run_options o = ESC_RETENTION_RUN_OPTIONS_INIT;
  o.archive_event = archive_event;
  o.archive_sync = archive_sync;
  o.userdata = &a;
  esc_retention_report rep;
  char ids_sql[512];
  snprintf(ids_sql, sizeof ids_sql,
           "SELECT string_agg(event_id::text, ',' ORDER BY stream_id, "
           "stream_version) FROM %s.events WHERE stream_version < "
           "(SELECT version FROM %s.streams s WHERE s.stream_id = "
           "events.stream_id)",
           schema, schema);
  char *to_go = esc_test_query_text(raw, ids_sql);
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.archived, 5);
  assert_int_equal(rep.events, 5);
  assert_int_equal(a.stored_at_sync, 7); /* synced before any removal */
  char archived[16 * 37 + 1] = "";
  for (int i = 0; i < a.events; i++) {
    char id[37];
    esc_uuid_format(&a.ids[i], id);
    strcat(archived, i ? "," : "");
    strcat(archived, id);
  }
  assert_string_equal(archived, to_go);
  assert_int_equal(query_ll(raw, "SELECT count(*) FROM %s.events%s", ""), 2);
  free(to_go);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Streams no snapshot covers
 * ------------------------------------------------------------------------ */

/* A run leaves a stream alone that would lose its state for good (no
 * snapshot covers what goes): not archived, not truncated; the run does
 * the others and ends in ESC_ETRUNCATED naming it. A forced run removes
 * it too, and the log says it was forced. On the old main the run
 * truncated order-2 and returned ESC_OK. */
static void uncovered_streams_are_refused_unless_forced(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 4);
  append_n(st, "order-2", 4);
  set_ok(st, ESC_RETENTION_CATEGORY, "order", 0, 1);
  cover(st, "order-1");

  seen s;
  esc_retention_run_options o = dry_run_into(&s);
  esc_retention_report rep;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 1);
  assert_int_equal(rep.events, 3);
  assert_int_equal(rep.refused, 1);
  assert_int_equal(s.n, 2);
  assert_false(s.items[0].refused);
  assert_string_equal(s.items[1].stream_id, "order-2");
  assert_true(s.items[1].refused);

  archive a = {.raw = raw};
  s.n = 0;
  o.dry_run = false;
  o.archive_event = archive_event;
  o.archive_sync = archive_sync;
  o.userdata = &a;
  o.on_item = NULL;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_ETRUNCATED);
  assert_int_equal(err.code, ESC_ETRUNCATED);
  if (!strstr(err.msg, "1 stream refused, order-2"))
    fail_msg("error %s does not name order-2", err.msg);
  assert_int_equal(rep.streams, 1);
  assert_int_equal(rep.events, 3);
  assert_int_equal(rep.refused, 1);
  assert_int_equal(rep.archived, 3); /* order-1's only */
  assert_int_equal(events_of(raw, "order-1"), 1);
  assert_int_equal(events_of(raw, "order-2"), 4);
  assert_int_equal(query_ll(raw, "SELECT count(*) FROM %s.retention_log%s", ""),
                   1);

  o.archive_event = NULL;
  o.archive_sync = NULL;
  o.force = true;
  assert_int_equal(esc_retention_run(st, &o, &rep, &err), ESC_OK);
  assert_int_equal(rep.streams, 1);
  assert_int_equal(rep.events, 3);
  assert_int_equal(rep.refused, 0);
  assert_int_equal(events_of(raw, "order-2"), 1);
  assert_int_equal(query_ll(raw,
                            "SELECT count(*) FROM %s.retention_log WHERE "
                            "stream_id = 'order-2' AND reason = '%s'",
                            "[forced] retention policy of category order "
                            "(max-count 1)"),
                   1);
  esc_store_free(st);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_rpol_%d", (int)getpid());
  return 0;
}

static int teardown(void **state) {
  esc_test_close_tracked(state);
  esc_test_drop_schema(schema);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(policies_are_stored_with_who_and_when,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(bad_policies_are_refused_and_change_nothing,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(dry_run_reports_and_run_removes_per_policy,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(max_age_removes_old_events_but_never_the_last,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(archive_gets_every_event_before_removal,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(uncovered_streams_are_refused_unless_forced,
                                esc_test_close_tracked),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

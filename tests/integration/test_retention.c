/*
 * Immutability and retention against a real PostgreSQL (guarantee 5):
 * stored events are never updated or deleted, not even by the owner, except
 * through the explicit, logged retention operations; the writer role can
 * append but not change; the reader role can read but not append.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_int.h"
#include "testenv.h"

/* {"n": 1} */
static const unsigned char PAYLOAD[] = {0x81, 0xa1, 'n', 0x01};

static esc_event_data make_event(const char *type) {
  esc_event_data e = {esc_uuid_v4(), type, 1, PAYLOAD, sizeof PAYLOAD, NULL, 0};
  return e;
}

/* Appends n single-event appends to stream; keeps their ids in ids. */
static void append_n(esc_store *st, const char *stream, int n, esc_uuid *ids) {
  esc_error err = ESC_ERROR_INIT;
  for (int i = 0; i < n; i++) {
    esc_event_data e = make_event("Tick");
    if (esc_append(st, stream, ESC_EXPECT_ANY, &e, 1, NULL, &err))
      fail_msg("append %s: %s", stream, err.msg);
    if (ids)
      ids[i] = e.id;
  }
}

/* Everything stored in the events table, as one digest plus a count, so
 * "unchanged" covers content, not just the number of rows. */
static char *events_digest(PGconn *raw, const char *schema) {
  char sql[1024];
  snprintf(sql, sizeof sql,
           "SELECT count(*) || ':' || coalesce(md5(string_agg("
           "global_position || '/' || stream_id || '/' || stream_version || "
           "'/' || event_id || '/' || event_type || '/' || schema_version || "
           "'/' || encode(data, 'hex') || '/' || "
           "coalesce(encode(metadata, 'hex'), '-') || '/' || recorded_at || "
           "'/' || tx_id, ',' ORDER BY global_position)), '') "
           "FROM %s.events",
           schema);
  return esc_test_query_text(raw, sql);
}

static long long count_of(PGconn *raw, const char *fmt, const char *schema,
                          const char *arg) {
  char sql[512];
  snprintf(sql, sizeof sql, fmt, schema, arg);
  return esc_test_query_ll(raw, sql);
}

/* ------------------------------------------------------------------------
 * Not even the owner changes events
 * ------------------------------------------------------------------------ */

#define OWNER_SCHEMA "t_ret_owner"

static void owner_cannot_update_delete_or_truncate(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(OWNER_SCHEMA);
  PGconn *raw = esc_test_pg_tracked(); /* a superuser, and so the owner */
  char code[6];
  append_n(st, "order-1", 3, NULL);
  append_n(st, "order-2", 2, NULL);
  char *before = events_digest(raw, OWNER_SCHEMA);
  assert_non_null(before);
  assert_true(strncmp(before, "5:", 2) == 0);

  const char *attempts[] = {
      "UPDATE " OWNER_SCHEMA ".events SET event_type = 'X'",
      "UPDATE " OWNER_SCHEMA ".events SET data = '\\x81a16e02'::bytea "
      "WHERE stream_id = 'order-1' AND stream_version = 2",
      "DELETE FROM " OWNER_SCHEMA ".events",
      "DELETE FROM " OWNER_SCHEMA ".events WHERE stream_id = 'order-2'",
      "TRUNCATE " OWNER_SCHEMA ".events",
  };
  for (size_t i = 0; i < sizeof attempts / sizeof *attempts; i++) {
    esc_test_exec_fails(raw, attempts[i], code);
    if (strcmp(code, "ES001") != 0)
      fail_msg("%s: SQLSTATE %s, expected ES001 (the trigger)", attempts[i],
               code);
    char *after = events_digest(raw, OWNER_SCHEMA);
    assert_string_equal(after, before);
    free(after);
  }
  /* The session setting the retention functions once relied on lets
   * nothing through on its own (#11 item 3): it took one SET and a DELETE
   * to remove events without a record. */
  esc_test_exec(raw, "BEGIN");
  esc_test_exec(raw, "SET LOCAL esc.retention = 'on'");
  esc_test_exec_fails(raw,
                      "DELETE FROM " OWNER_SCHEMA ".events WHERE stream_id ="
                      " 'order-2'",
                      code);
  assert_string_equal(code, "ES001");
  esc_test_exec(raw, "ROLLBACK");
  esc_test_exec(raw, "SET esc.retention = 'on'");
  esc_test_exec_fails(raw, "DELETE FROM " OWNER_SCHEMA ".events", code);
  assert_string_equal(code, "ES001");
  esc_test_exec(raw, "RESET esc.retention");
  char *after = events_digest(raw, OWNER_SCHEMA);
  assert_string_equal(after, before);
  free(after);
  /* The retention log is a record: no edits, no deletes. */
  esc_test_exec(raw, "SELECT " OWNER_SCHEMA ".truncate_stream('order-1', 2,"
                     " 'test', true)"); /* forced: no snapshot */
  esc_test_exec_fails(raw,
                      "UPDATE " OWNER_SCHEMA ".retention_log SET reason = 'x'",
                      code);
  assert_string_equal(code, "ES001");
  esc_test_exec_fails(raw, "DELETE FROM " OWNER_SCHEMA ".retention_log", code);
  assert_string_equal(code, "ES001");
  assert_int_equal(esc_test_query_ll(raw,
                                     "SELECT count(*) FROM " OWNER_SCHEMA
                                     ".retention_log WHERE tx_id IS NOT NULL"
                                     " AND session_login = session_user"
                                     " AND events_removed = 1"),
                   1);
  /* The stream versions are untouched too. */
  assert_int_equal(esc_test_query_ll(raw,
                                     "SELECT sum(version) FROM " OWNER_SCHEMA
                                     ".streams"),
                   5);
  free(before);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * The writer role appends, the reader role reads
 * ------------------------------------------------------------------------ */

#define ROLES_SCHEMA "t_ret_roles"

static void role_append_sql(char *sql, size_t size, const char *stream) {
  esc_uuid id = esc_uuid_v4();
  char text[37];
  esc_uuid_format(&id, text);
  snprintf(sql, size,
           "SELECT status FROM " ROLES_SCHEMA ".append('%s', -1, "
           "ARRAY['%s'::uuid], ARRAY['Placed'], ARRAY[1], "
           "ARRAY['\\x81a16e01'::bytea], ARRAY[NULL::bytea])",
           stream, text);
}

static void expect_refused(PGconn *raw, const char *sql, bool trigger_ok) {
  char code[6];
  esc_test_exec_fails(raw, sql, code);
  if (strcmp(code, "42501") != 0 && !(trigger_ok && !strcmp(code, "ES001")))
    fail_msg("%s: SQLSTATE %s, expected 42501%s", sql, code,
             trigger_ok ? " or ES001" : "");
}

static void writer_appends_reader_reads(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(ROLES_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  char sql[512];
  append_n(st, "order-1", 2, NULL);
  char *before = events_digest(raw, ROLES_SCHEMA);
  char writer[ESC_ROLE_NAME_MAX], reader[ESC_ROLE_NAME_MAX], set[160];
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_roles(st, writer, reader, &err))
    fail_msg("roles: %s", err.msg);

  /* Writer: appends through the function, changes nothing. */
  snprintf(set, sizeof set, "SET ROLE \"%s\"", writer);
  esc_test_exec(raw, set);
  role_append_sql(sql, sizeof sql, "order-9");
  assert_int_equal(esc_test_query_ll(raw, sql), 0);
  role_append_sql(sql, sizeof sql, "order-1");
  assert_int_equal(esc_test_query_ll(raw, sql), 0);
  expect_refused(raw, "UPDATE " ROLES_SCHEMA ".events SET event_type = 'X'",
                 true);
  expect_refused(raw, "DELETE FROM " ROLES_SCHEMA ".events", true);
  expect_refused(raw, "TRUNCATE " ROLES_SCHEMA ".events", true);
  /* Setting the retention flag by hand does not help the writer. */
  esc_test_exec(raw, "BEGIN");
  esc_test_exec(raw, "SET LOCAL esc.retention = 'on'");
  expect_refused(raw, "DELETE FROM " ROLES_SCHEMA ".events", true);
  esc_test_exec(raw, "ROLLBACK");
  /* Retention is the owner's, not the writer's. */
  expect_refused(
      raw, "SELECT " ROLES_SCHEMA ".truncate_stream('order-1', 2, 'x')", false);
  expect_refused(
      raw, "SELECT " ROLES_SCHEMA ".tombstone_stream('order-1', 'x')", false);
  esc_test_exec(raw, "RESET ROLE");
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " ROLES_SCHEMA ".events"),
      4);

  /* Reader: reads, cannot append or insert. */
  snprintf(set, sizeof set, "SET ROLE \"%s\"", reader);
  esc_test_exec(raw, set);
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " ROLES_SCHEMA ".events"),
      4);
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " ROLES_SCHEMA ".streams"),
      2);
  role_append_sql(sql, sizeof sql, "order-10");
  expect_refused(raw, sql, false);
  expect_refused(raw,
                 "INSERT INTO " ROLES_SCHEMA ".events (stream_id, "
                 "stream_version, event_id, event_type, schema_version, data, "
                 "tx_id) VALUES ('order-11', 1, gen_random_uuid(), 'X', 1, "
                 "'\\x01', pg_current_xact_id())",
                 false);
  expect_refused(raw, "DELETE FROM " ROLES_SCHEMA ".events", true);
  esc_test_exec(raw, "RESET ROLE");

  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " ROLES_SCHEMA ".events"),
      4);
  /* The two events stored before are exactly as they were. */
  char *after = esc_test_query_text(
      raw, "SELECT count(*) || ':' || coalesce(md5(string_agg("
           "global_position || '/' || stream_id || '/' || stream_version || "
           "'/' || event_id || '/' || event_type || '/' || schema_version || "
           "'/' || encode(data, 'hex') || '/' || "
           "coalesce(encode(metadata, 'hex'), '-') || '/' || recorded_at || "
           "'/' || tx_id, ',' ORDER BY global_position)), '') "
           "FROM (SELECT * FROM " ROLES_SCHEMA ".events ORDER BY "
           "global_position LIMIT 2) e");
  assert_string_equal(after, before);
  free(after);
  free(before);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Truncation
 * ------------------------------------------------------------------------ */

#define TRUNC_SCHEMA "t_ret_trunc"

static void truncate_removes_old_versions_and_logs(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(TRUNC_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  esc_uuid ids[6];
  append_n(st, "order-1", 6, ids);
  append_n(st, "order-2", 2, NULL);

  int64_t removed = -1;
  /* A snapshot covering versions 1..3, without which the truncation is
   * refused (migration 15). */
  assert_int_equal(
      esc_snapshot_write(st, "order-1", 3, 1, PAYLOAD, sizeof PAYLOAD, &err),
      ESC_OK);
  esc_status rc =
      esc_stream_truncate(st, "order-1", 4, "gdpr request 17", &removed, &err);
  if (rc)
    fail_msg("truncate: %s", err.msg);
  assert_int_equal(removed, 3);

  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(
      esc_read_stream(st, "order-1", 0, ESC_FORWARD, 100, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(ev.items[i].stream_version, (int64_t)i + 4);
    assert_memory_equal(ev.items[i].id.bytes, ids[i + 3].bytes, 16);
  }
  /* Reading from a removed version starts at the first one kept. */
  assert_int_equal(
      esc_read_stream(st, "order-1", 2, ESC_FORWARD, 100, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 3);
  assert_int_equal(ev.items[0].stream_version, 4);
  assert_int_equal(
      esc_read_stream(st, "order-1", 0, ESC_BACKWARD, 100, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 3);
  assert_int_equal(ev.items[0].stream_version, 6);
  assert_int_equal(ev.items[2].stream_version, 4);

  esc_stream_info info;
  assert_int_equal(esc_stream_get(st, "order-1", &info, &err), ESC_OK);
  assert_int_equal(info.version, 6);
  assert_int_equal(info.truncated_before, 4);
  assert_false(info.tombstoned);

  /* The stream keeps its version: expecting 6 works, expecting 3 does not. */
  esc_event_data e = make_event("Tick");
  esc_append_result res;
  assert_int_equal(esc_append(st, "order-1", 3, &e, 1, &res, &err),
                   ESC_ECONFLICT);
  assert_int_equal(esc_append(st, "order-1", 6, &e, 1, &res, &err), ESC_OK);
  assert_int_equal(res.first_version, 7);

  /* Only order-1 below version 4 is gone. */
  assert_int_equal(count_of(raw,
                            "SELECT count(*) FROM %s.events WHERE "
                            "stream_id = '%s'",
                            TRUNC_SCHEMA, "order-1"),
                   4);
  assert_int_equal(count_of(raw,
                            "SELECT count(*) FROM %s.events WHERE "
                            "stream_id = '%s'",
                            TRUNC_SCHEMA, "order-2"),
                   2);

  /* Logged: what, how far, how many, why, who. */
  PGresult *r = PQexec(raw, "SELECT operation, before_version, events_removed, "
                            "reason, performed_by = current_user, "
                            "performed_at <= now() FROM " TRUNC_SCHEMA
                            ".retention_log WHERE stream_id = 'order-1'");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  assert_string_equal(PQgetvalue(r, 0, 0), "truncate");
  assert_string_equal(PQgetvalue(r, 0, 1), "4");
  assert_string_equal(PQgetvalue(r, 0, 2), "3");
  assert_string_equal(PQgetvalue(r, 0, 3), "gdpr request 17");
  assert_string_equal(PQgetvalue(r, 0, 4), "t");
  assert_string_equal(PQgetvalue(r, 0, 5), "t");
  PQclear(r);

  /* Bad requests change nothing. */
  assert_int_equal(esc_stream_truncate(st, "order-1", 0, "x", NULL, &err),
                   ESC_EINVAL);
  assert_int_equal(esc_stream_truncate(st, "bad id", 2, "x", NULL, &err),
                   ESC_EINVAL);
  assert_int_equal(esc_test_query_ll(raw, "SELECT count(*) FROM " TRUNC_SCHEMA
                                          ".retention_log"),
                   1);

  esc_events_release(&ev);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Tombstones and unknown streams
 * ------------------------------------------------------------------------ */

#define TOMB_SCHEMA "t_ret_tomb"

static void tombstone_deletes_for_good_and_logs(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(TOMB_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  append_n(st, "order-1", 3, NULL);
  append_n(st, "order-2", 2, NULL);
  char *other_before = esc_test_query_text(
      raw, "SELECT string_agg(event_id::text, ',' ORDER BY global_position) "
           "FROM " TOMB_SCHEMA ".events WHERE stream_id = 'order-2'");

  int64_t removed = -1;
  esc_status rc =
      esc_stream_tombstone(st, "order-1", "account closed", &removed, &err);
  if (rc)
    fail_msg("tombstone: %s", err.msg);
  assert_int_equal(removed, 3);
  assert_int_equal(count_of(raw,
                            "SELECT count(*) FROM %s.events WHERE "
                            "stream_id = '%s'",
                            TOMB_SCHEMA, "order-1"),
                   0);

  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(
      esc_read_stream(st, "order-1", 0, ESC_FORWARD, 10, &ev, &err),
      ESC_EDELETED);
  assert_int_equal(err.code, ESC_EDELETED);
  assert_non_null(strstr(err.msg, "order-1"));
  assert_int_equal(
      esc_read_stream(st, "order-1", 0, ESC_BACKWARD, 10, &ev, &err),
      ESC_EDELETED);

  const int64_t modes[] = {
      ESC_EXPECT_ANY, ESC_EXPECT_NO_STREAM, ESC_EXPECT_EXISTS, 0, 3, 42};
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    esc_event_data e = make_event("Tick");
    esc_append_result res;
    rc = esc_append(st, "order-1", modes[i], &e, 1, &res, &err);
    if (rc != ESC_EDELETED)
      fail_msg("append with expected %lld: %s (%s), expected deleted",
               (long long)modes[i], esc_strerror(rc), err.msg);
    assert_non_null(strstr(err.msg, "order-1"));
  }
  assert_int_equal(count_of(raw,
                            "SELECT count(*) FROM %s.events WHERE "
                            "stream_id = '%s'",
                            TOMB_SCHEMA, "order-1"),
                   0);

  esc_stream_info info;
  assert_int_equal(esc_stream_get(st, "order-1", &info, &err), ESC_OK);
  assert_true(info.tombstoned);

  PGresult *r = PQexec(raw, "SELECT operation, events_removed, reason, "
                            "performed_by = current_user FROM " TOMB_SCHEMA
                            ".retention_log WHERE stream_id = 'order-1'");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  assert_string_equal(PQgetvalue(r, 0, 0), "tombstone");
  assert_string_equal(PQgetvalue(r, 0, 1), "3");
  assert_string_equal(PQgetvalue(r, 0, 2), "account closed");
  assert_string_equal(PQgetvalue(r, 0, 3), "t");
  PQclear(r);

  /* The neighbour is untouched. */
  char *other_after = esc_test_query_text(
      raw, "SELECT string_agg(event_id::text, ',' ORDER BY global_position) "
           "FROM " TOMB_SCHEMA ".events WHERE stream_id = 'order-2'");
  assert_string_equal(other_after, other_before);
  assert_int_equal(
      esc_read_stream(st, "order-2", 0, ESC_FORWARD, 10, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 2);

  free(other_before);
  free(other_after);
  esc_events_release(&ev);
  esc_store_free(st);
}

static void retention_of_unknown_stream_is_not_found(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(TOMB_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  int64_t removed = -1;
  append_n(st, "order-1", 2, NULL);

  assert_int_equal(esc_stream_truncate(st, "order-404", 2, "r", &removed, &err),
                   ESC_ENOTFOUND);
  assert_int_equal(err.code, ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "order-404"));
  assert_int_equal(esc_stream_tombstone(st, "order-404", "r", &removed, &err),
                   ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "order-404"));

  /* Nothing logged, no stream created, nothing else touched. */
  assert_int_equal(esc_test_query_ll(raw, "SELECT count(*) FROM " TOMB_SCHEMA
                                          ".retention_log"),
                   0);
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " TOMB_SCHEMA ".streams"),
      1);
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " TOMB_SCHEMA ".events"), 2);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(owner_cannot_update_delete_or_truncate,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(writer_appends_reader_reads,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(truncate_removes_old_versions_and_logs,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(tombstone_deletes_for_good_and_logs,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(retention_of_unknown_stream_is_not_found,
                                esc_test_close_tracked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

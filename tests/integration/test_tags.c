/*
 * Tags (issue #21 item 2): an event may carry key:value tags, stored in
 * event_tags only when it has some; esc_read_tagged reads the events of
 * a query (tags ANDed within an item, items ORed, optional types) in log
 * order through the tag index; bad tags are refused by the client and by
 * the SQL; a retry is idempotent and must carry the same tags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_tags"

static esc_event_data event_of(const char *type, unsigned char *buf,
                               long long n) {
  size_t len = esc_test_payload(buf, n);
  return (esc_event_data){esc_uuid_v4(), type, 1, buf, len, NULL, 0};
}

/* Appends one event to stream with the given tags (NULL-terminated). */
static esc_event_data append_one(esc_store *st, const char *stream,
                                 const char *type, const char *const *tags) {
  static unsigned char buf[32];
  static long long n;
  esc_error err = ESC_ERROR_INIT;
  esc_event_data ev = event_of(type, buf, n++);
  size_t count = 0;
  while (tags && tags[count])
    count++;
  esc_tags t = {tags, count};
  esc_status rc =
      esc_append_tagged(st, stream, ESC_EXPECT_ANY, &ev, &t, 1, NULL, &err);
  if (rc)
    fail_msg("append to %s: %s", stream, err.msg);
  return ev;
}

static long long count_sql(const char *sql) {
  PGconn *pg = esc_test_pg();
  long long n = esc_test_query_ll(pg, sql);
  PQfinish(pg);
  return n;
}

static long long tag_rows(void) {
  return count_sql("SELECT count(*) FROM " SCHEMA ".event_tags");
}

/* The types of what esc_read_tagged returns for q, joined by ','. */
static void read_types(esc_store *st, const esc_tag_query *q, char *out,
                       size_t size) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  char token[ESC_TAG_QUERY_TOKEN_MAX];
  if (esc_read_tagged(st, q, 0, 0, &ev, token, &err))
    fail_msg("read: %s", err.msg);
  assert_true(strlen(token) > 2);
  out[0] = '\0';
  for (size_t i = 0; i < ev.count; i++) {
    assert_true(i == 0 ||
                ev.items[i].position.global > ev.items[i - 1].position.global);
    snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "",
             ev.items[i].type);
  }
  esc_events_release(&ev);
}

static void test_read_by_tags_and_types(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  const char *a[] = {"course:c1", "student:s1", NULL};
  const char *b[] = {"course:c1", "student:s2", NULL};
  const char *c[] = {"course:c2", "student:s1", NULL};
  append_one(st, "enrol-1", "Enrolled", a);
  append_one(st, "enrol-2", "Enrolled", b);
  append_one(st, "plain-1", "Untagged", NULL);
  append_one(st, "enrol-3", "Enrolled", c);
  append_one(st, "course-c1", "CourseFull",
             (const char *[]){"course:c1", NULL});

  char got[256];
  const char *c1[] = {"course:c1"}, *c1s1[] = {"course:c1", "student:s1"};
  const char *s1[] = {"student:s1"}, *enrolled[] = {"Enrolled"};
  esc_tag_query_item one = {c1, 1, NULL, 0};
  read_types(st, &(esc_tag_query){&one, 1}, got, sizeof got);
  assert_string_equal(got, "Enrolled,Enrolled,CourseFull");
  esc_tag_query_item both = {c1s1, 2, NULL, 0};
  read_types(st, &(esc_tag_query){&both, 1}, got, sizeof got);
  assert_string_equal(got, "Enrolled");
  esc_tag_query_item typed = {c1, 1, enrolled, 1};
  read_types(st, &(esc_tag_query){&typed, 1}, got, sizeof got);
  assert_string_equal(got, "Enrolled,Enrolled");
  /* Items are ORed; an event matching two is listed once. */
  esc_tag_query_item two[] = {{c1, 1, enrolled, 1}, {s1, 1, NULL, 0}};
  read_types(st, &(esc_tag_query){two, 2}, got, sizeof got);
  assert_string_equal(got, "Enrolled,Enrolled,Enrolled");
  const char *none[] = {"course:nope"};
  esc_tag_query_item missing = {none, 1, NULL, 0};
  read_types(st, &(esc_tag_query){&missing, 1}, got, sizeof got);
  assert_string_equal(got, "");

  /* Only tagged events have rows: 2 tags x 3 + 1. */
  assert_int_equal(tag_rows(), 7);
  esc_store_free(st);
}

static void test_untagged_appends_write_no_tag_rows(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  unsigned char buf[32];
  esc_event_data ev = event_of("Plain", buf, 1);
  assert_int_equal(
      esc_append(st, "plain-1", ESC_EXPECT_ANY, &ev, 1, NULL, &err), ESC_OK);
  ev.id = esc_uuid_v4();
  assert_int_equal(esc_append_tagged(st, "plain-1", ESC_EXPECT_ANY, &ev, NULL,
                                     1, NULL, &err),
                   ESC_OK);
  assert_int_equal(tag_rows(), 0);
  assert_int_equal(count_sql("SELECT count(*) FROM " SCHEMA ".events"), 2);
  esc_store_free(st);
}

/* The plan of sql (an EXPLAIN) into plan[size], one line a row. */
static void explain(PGconn *pg, const char *sql, char *plan, size_t size) {
  PGresult *res = PQexec(pg, sql);
  assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
  plan[0] = '\0';
  for (int i = 0; i < PQntuples(res); i++)
    snprintf(plan + strlen(plan), size - strlen(plan), "%s\n",
             PQgetvalue(res, i, 0));
  PQclear(res);
}

/* Reading by tag finds its events through the indexes: with thousands of
 * events in the log, hundreds of them tagged, the plan scans neither
 * table, also as a generic plan (what a prepared statement and PL/pgSQL
 * use after a few calls: it knows neither the tags nor how many). */
static void test_read_uses_the_tag_index(void **state) {
  (void)state;
  enum { BATCH = 500, BATCHES = 8 };
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  static esc_event_data ev[BATCH];
  static esc_tags tags[BATCH];
  static unsigned char bufs[BATCH][32];
  static char names[BATCH][16];
  static const char *items[BATCH];
  for (int b = 0; b < BATCHES; b++) {
    for (int i = 0; i < BATCH; i++) {
      ev[i] = event_of("Plain", bufs[i], i);
      snprintf(names[i], sizeof names[i], "k:%d", i);
      items[i] = names[i];
      tags[i] = (esc_tags){&items[i], b == 0 ? 1 : 0};
    }
    if (esc_append_tagged(st, "plain-1", ESC_EXPECT_ANY, ev, tags, BATCH, NULL,
                          &err))
      fail_msg("append: %s", err.msg);
  }
  PGconn *pg = esc_test_pg();
  esc_test_exec(pg, "ANALYZE " SCHEMA ".events; ANALYZE " SCHEMA ".event_tags");
  esc_test_exec(pg, "PREPARE q(text[]) AS SELECT * FROM " SCHEMA
                    ".events WHERE global_position IN (SELECT m FROM " SCHEMA
                    ".query_matches($1, '{1}', '{}', '{}', 0) m)");
  static const char *const modes[] = {"force_custom_plan",
                                      "force_generic_plan"};
  for (int m = 0; m < 2; m++) {
    char sql[96], plan[8192];
    snprintf(sql, sizeof sql, "SET plan_cache_mode = %s", modes[m]);
    esc_test_exec(pg, sql);
    explain(pg, "EXPLAIN EXECUTE q('{k:7}')", plan, sizeof plan);
    if (strstr(plan, "Seq Scan") || !strstr(plan, "event_tags_pkey"))
      fail_msg("%s: the read scans a table:\n%s", modes[m], plan);
  }
  PQfinish(pg);
  esc_store_free(st);
}

static void test_bad_tags_are_refused(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  static const struct {
    const char *tag, *says;
  } bad[] = {{"novalue", "key:value"},
             {":v", "key:value"},
             {"k:", "key:value"},
             {"k y:v", "byte 2 is not allowed in the key"},
             {"k:a\tb", "control character"},
             {"k:\xff", "not UTF-8"},
             {"", "0 bytes"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_false(esc_tag_valid(bad[i].tag, &err));
    assert_int_equal(err.code, ESC_EINVAL);
    if (!strstr(err.msg, bad[i].says))
      fail_msg("tag %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].says);
  }
  char long_tag[ESC_TAG_MAX + 2];
  memset(long_tag, 'v', sizeof long_tag);
  memcpy(long_tag, "k:", 2);
  long_tag[ESC_TAG_MAX + 1] = '\0';
  assert_false(esc_tag_valid(long_tag, &err));
  long_tag[ESC_TAG_MAX] = '\0';
  assert_true(esc_tag_valid(long_tag, &err));
  assert_true(esc_tag_valid("coupon:SAVE 10 \xc3\xa9", &err));

  /* Through an append: the stream and event are named; nothing stored. */
  unsigned char buf[32];
  esc_event_data ev[2] = {event_of("A", buf, 1), event_of("B", buf, 1)};
  const char *twice[] = {"k:v", "k:v"};
  esc_tags tags[2] = {{NULL, 0}, {twice, 2}};
  assert_int_equal(
      esc_append_tagged(st, "t-1", ESC_EXPECT_ANY, ev, tags, 2, NULL, &err),
      ESC_EINVAL);
  assert_non_null(strstr(err.msg, "append to t-1: event 1 has tag k:v twice"));
  const char *many[ESC_TAGS_MAX + 1];
  char names[ESC_TAGS_MAX + 1][8];
  for (int i = 0; i <= ESC_TAGS_MAX; i++) {
    snprintf(names[i], sizeof names[i], "k:%d", i);
    many[i] = names[i];
  }
  tags[1] = (esc_tags){many, ESC_TAGS_MAX + 1};
  assert_int_equal(
      esc_append_tagged(st, "t-1", ESC_EXPECT_ANY, ev, tags, 2, NULL, &err),
      ESC_EINVAL);
  assert_non_null(strstr(err.msg, "has 17 tags (16 at most)"));
  assert_int_equal(count_sql("SELECT count(*) FROM " SCHEMA ".events"), 0);
  esc_store_free(st);
}

/* The SQL checks the same rules, whoever calls append_tagged. */
static void test_sql_refuses_bad_tags(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  PGconn *pg = esc_test_pg();
  char sqlstate[6];
#define CALL(tags, events)                                                     \
  "SELECT * FROM " SCHEMA ".append_tagged('{t-1}', '{-1}', '{1}', "            \
  "'{6f1c2e0a-8d1b-4c36-9b0e-3a7d5e2f1a01}', '{A}', '{1}', '{\"\\\\x80\"}', "  \
  "'{NULL}', " events ", " tags ", NULL, NULL, NULL, NULL, NULL)"
  esc_test_exec_fails(pg, CALL("'{\"k y:v\"}'", "'{1}'"), sqlstate);
  assert_string_equal(sqlstate, "22023");
  esc_test_exec_fails(pg, CALL("'{k:v}'", "'{2}'"), sqlstate);
  assert_string_equal(sqlstate, "22023");
  esc_test_exec_fails(pg, CALL("'{k:v,k:v}'", "'{1,1}'"), sqlstate);
  assert_string_equal(sqlstate, "22023");
  esc_test_exec(pg, CALL("'{k:v}'", "'{1}'"));
#undef CALL
  /* And the table's own check, for a row stored some other way. */
  esc_test_exec_fails(
      pg, "INSERT INTO " SCHEMA ".event_tags VALUES ('nokey', 1)", sqlstate);
  assert_string_equal(sqlstate, "23514");
  PQfinish(pg);
  assert_int_equal(tag_rows(), 1);
  esc_store_free(st);
}

static void test_retry_is_idempotent_and_keeps_its_tags(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  unsigned char buf[32];
  esc_event_data ev = event_of("Redeemed", buf, 7);
  const char *t1[] = {"coupon:C1"}, *t2[] = {"coupon:C2"};
  esc_tags tags = {t1, 1};
  esc_append_result first, again;
  assert_int_equal(esc_append_tagged(st, "order-1", ESC_EXPECT_NO_STREAM, &ev,
                                     &tags, 1, &first, &err),
                   ESC_OK);
  assert_false(first.duplicate);
  assert_int_equal(esc_append_tagged(st, "order-1", ESC_EXPECT_NO_STREAM, &ev,
                                     &tags, 1, &again, &err),
                   ESC_OK);
  assert_true(again.duplicate);
  assert_int_equal(again.first_global, first.first_global);
  tags.items = t2;
  assert_int_equal(esc_append_tagged(st, "order-1", ESC_EXPECT_NO_STREAM, &ev,
                                     &tags, 1, &again, &err),
                   ESC_EDUPLICATE);
  assert_non_null(strstr(err.msg, "other tags"));
  /* A stale expectation stores nothing, tags included. */
  esc_event_data next = event_of("Redeemed", buf, 8);
  assert_int_equal(
      esc_append_tagged(st, "order-1", 5, &next, &tags, 1, NULL, &err),
      ESC_ECONFLICT);
  if (!strstr(err.msg, "append to order-1: expected version 5, stream is at 1"))
    fail_msg("%s", err.msg);
  assert_int_equal(
      esc_append_tagged(st, "order-1", 1, &next, &tags, 1, &again, &err),
      ESC_OK);
  assert_int_equal(again.last_version, 2);
  assert_int_equal(tag_rows(), 2);
  assert_int_equal(
      esc_append_tagged(st, "order-1", 1, &next, &tags, 1, &again, &err),
      ESC_OK);
  assert_true(again.duplicate);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_by_tags_and_types),
      cmocka_unit_test(test_untagged_appends_write_no_tag_rows),
      cmocka_unit_test(test_read_uses_the_tag_index),
      cmocka_unit_test(test_bad_tags_are_refused),
      cmocka_unit_test(test_sql_refuses_bad_tags),
      cmocka_unit_test(test_retry_is_idempotent_and_keeps_its_tags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

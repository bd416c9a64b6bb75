/*
 * The store's trust boundary (issue #11 item 1, migration 12): the writer
 * and reader roles write no table themselves. A writer with its own SQL
 * cannot insert an event with a made-up transaction id or position, nor
 * un-tombstone a stream; it stores events only through esc's SECURITY
 * DEFINER functions, which check names, sizes and metadata. And
 * everything esc itself does as a writer — appends of every kind,
 * snapshots, waiting, a projection worker parking and resolving dead
 * letters — works with nothing more.
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
#include <hiredis/hiredis.h>

#include "tally.h"
#include "testenv.h"

#define SCHEMA "t_boundary"

static char writer[ESC_ROLE_NAME_MAX], reader[ESC_ROLE_NAME_MAX];

static void as_role(PGconn *c, const char *role) {
  char sql[160];
  snprintf(sql, sizeof sql, "SET ROLE \"%s\"", role);
  esc_test_exec(c, sql);
}

/* The statement is refused for want of a privilege. */
static void refused(PGconn *c, const char *sql) {
  char code[6];
  esc_test_exec_fails(c, sql, code);
  if (strcmp(code, "42501") != 0)
    fail_msg("%s: SQLSTATE %s, expected 42501", sql, code);
}

/* The statement is refused by a check of what is stored. */
static void invalid(PGconn *c, const char *sql) {
  char code[6];
  esc_test_exec_fails(c, sql, code);
  if (strcmp(code, "23514") != 0)
    fail_msg("%s: SQLSTATE %s, expected 23514 (check violation)", sql, code);
}

/* The default URL, logged in as it is but acting as role. */
static char *url_as(const char *role) {
  const char *base = esc_test_pg_url();
  size_t n = strlen(base) + strlen(role) + 32;
  char *url = malloc(n);
  assert_non_null(url);
  snprintf(url, n, "%s%soptions=-crole%%3D%s", base,
           strchr(base, '?') ? "&" : "?", role);
  return url;
}

static char *digest(PGconn *c) {
  return esc_test_query_text(
      c, "SELECT count(*) || ':' || coalesce(md5(string_agg(global_position"
         " || '/' || tx_id || '/' || stream_id || '/' || stream_version || '/'"
         " || event_type, ',' ORDER BY global_position)), '')"
         " FROM " SCHEMA ".events");
}

/* ------------------------------------------------------- direct SQL -- */

static const char *const table_writes[] = {
    /* An event behind every subscriber's horizon, at a position of its
     * choosing: what a rebuild would see and live subscribers never. */
    "INSERT INTO " SCHEMA ".events (global_position, stream_id,"
    " stream_version, event_id, event_type, schema_version, data, tx_id)"
    " OVERRIDING SYSTEM VALUE VALUES (1000000, 'order-1', 3,"
    " gen_random_uuid(), 'Forged', 1, '\\x80', '1'::xid8)",
    "INSERT INTO " SCHEMA ".events (stream_id, stream_version, event_id,"
    " event_type, schema_version, data, tx_id) VALUES ('order-1', 3,"
    " gen_random_uuid(), 'Forged', 1, '\\x80', pg_current_xact_id())",
    "UPDATE " SCHEMA ".streams SET tombstoned = false",
    "UPDATE " SCHEMA ".streams SET version = 99",
    "INSERT INTO " SCHEMA ".streams (stream_id, version) VALUES ('x-1', 5)",
    "DELETE FROM " SCHEMA ".streams",
    "INSERT INTO " SCHEMA ".snapshots (stream_id, stream_version,"
    " state_version, data) VALUES ('order-1', 1, 1, '\\x80')",
    "UPDATE " SCHEMA ".snapshots SET data = '\\x80'",
    "DELETE FROM " SCHEMA ".snapshots",
    "INSERT INTO " SCHEMA ".projections (name, version, partitions)"
    " VALUES ('p', 1, 1)",
    "UPDATE " SCHEMA ".projections SET partitions = 3",
    "UPDATE " SCHEMA ".dead_letters SET state = 'resolved'",
    "DELETE FROM " SCHEMA ".waiters",
    /* A tag on an event that does not carry it: a query would see it. */
    "INSERT INTO " SCHEMA ".event_tags (tag, global_position)"
    " VALUES ('coupon:X', 1)",
    "DELETE FROM " SCHEMA ".event_tags",
    "INSERT INTO " SCHEMA ".retention_log (stream_id, operation,"
    " events_removed) VALUES ('order-1', 'truncate', 0)",
    "UPDATE " SCHEMA ".identity SET id = gen_random_uuid()",
    "UPDATE " SCHEMA ".store_roles SET writer = 'x'",
    /* Subscription checkpoints (migration 16) move only through
     * subscription_checkpoint_move, which a lease holder calls. */
    "INSERT INTO " SCHEMA ".subscription_checkpoints (subscription,"
    " generation, partition, tx_id, global_position)"
    " VALUES ('s', 1, 0, '0', 0)",
    "UPDATE " SCHEMA ".subscription_checkpoints SET global_position = 0",
    "DELETE FROM " SCHEMA ".subscription_checkpoints",
    /* The insides of the functions are the owner's too. */
    "SELECT " SCHEMA ".append_locked('order-1', -1, ARRAY[gen_random_uuid()],"
    " ARRAY['T'], ARRAY[1], ARRAY['\\x80'::bytea], ARRAY[NULL::bytea])",
    "SELECT " SCHEMA ".lock_stream('order-1')",
    "SELECT " SCHEMA ".notify_waiters('order-1')",
    "SELECT " SCHEMA ".truncate_stream('order-1', 2, 'x')",
    "SELECT " SCHEMA ".tombstone_stream('order-1', 'x')",
    "SELECT " SCHEMA ".repair_stream_order('order-1')",
    /* Retention policies (migration 14) are the owner's: a writer that
     * set one, or ran the plan's truncations, could remove events. */
    "INSERT INTO " SCHEMA ".retention_policies (kind, target, max_count)"
    " VALUES ('stream', 'order-1', 1)",
    "UPDATE " SCHEMA ".retention_policies SET max_count = 1",
    "DELETE FROM " SCHEMA ".retention_policies",
    "SELECT " SCHEMA ".retention_policy_set('stream', 'order-1', NULL, 1)",
    "SELECT " SCHEMA ".retention_policy_remove('category', 'order')",
    "SELECT * FROM " SCHEMA ".retention_plan()",
    NULL};

static void roles_write_no_table(void **state) {
  esc_store *st = *state;
  PGconn *c = esc_test_pg_tracked();
  tally_append_one(st, "order-1", 1, "a");
  tally_append_one(st, "order-1", 2, "b");
  char *before = digest(c);

  const char *roles[] = {writer, reader};
  for (int r = 0; r < 2; r++) {
    as_role(c, roles[r]);
    for (const char *const *sql = table_writes; *sql; sql++)
      refused(c, *sql);
    esc_test_exec(c, "RESET ROLE");
  }
  /* The reader calls none of the writing functions either. */
  as_role(c, reader);
  refused(c, "SELECT * FROM " SCHEMA ".append_fast1('order-1', -1,"
             " gen_random_uuid(), 'T', 1, '\\x80', NULL)");
  refused(c, "SELECT * FROM " SCHEMA ".append('order-1', -1,"
             " ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY[1],"
             " ARRAY['\\x80'::bytea], ARRAY[NULL::bytea])");
  refused(c, "SELECT " SCHEMA ".snapshot_write('order-1', 1, 1, '\\x80')");
  refused(c, "SELECT * FROM " SCHEMA ".projection_register('p', 1, 1, NULL,"
             " NULL)");
  refused(c, "SELECT " SCHEMA ".dead_letter_finish(1, true, '', 0)");
  refused(c, "SELECT * FROM " SCHEMA ".append_tagged('{order-1}', '{-1}',"
             " '{1}', ARRAY[gen_random_uuid()], '{T}', '{1}', '{\"\\\\x80\"}',"
             " '{NULL}', '{1}', '{k:v}', NULL, NULL, NULL, NULL, NULL)");
  esc_test_exec(c, "RESET ROLE");
  /* Retrying or discarding a parked process instance is an operator's
   * action: the writer may not either. */
  as_role(c, writer);
  refused(c, "SELECT " SCHEMA ".process_parked_retry('p', 'i')");
  refused(c, "SELECT " SCHEMA ".process_parked_discard('p', 'i')");
  esc_test_exec(c, "RESET ROLE");
  as_role(c, reader);
  /* ... and still reads. */
  assert_int_equal(
      esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA ".events"), 2);
  esc_test_exec(c, "RESET ROLE");

  char *after = digest(c);
  assert_string_equal(before, after);
  free(before);
  free(after);
}

/* ----------------------------------------------- what may be stored -- */

#define FAST1(stream, type, sv, data, md)                                      \
  "SELECT base FROM " SCHEMA ".append_fast1('" stream "', -1,"                 \
  " gen_random_uuid(), '" type "', " sv ", " data ", " md ")"

static void functions_check_what_they_store(void **state) {
  (void)state;
  PGconn *c = esc_test_pg_tracked();
  as_role(c, writer);
  invalid(c, FAST1("check-1", "9Lives", "1", "'\\x80'", "NULL"));
  invalid(c, FAST1("check-1", "Has Space", "1", "'\\x80'", "NULL"));
  invalid(c, FAST1("check-1", "Placed", "0", "'\\x80'", "NULL"));
  invalid(c, FAST1("check 1", "Placed", "1", "'\\x80'", "NULL"));
  invalid(c, FAST1("$all", "Placed", "1", "'\\x80'", "NULL"));
  invalid(c, FAST1("check-1", "Placed", "1",
                   "decode(repeat('a', 16777217), 'escape')", "NULL"));
  /* Metadata that readers would refuse: not msgpack, not a map, trailing
   * bytes, a known key of the wrong type, a malformed id. */
  invalid(c, FAST1("check-1", "Placed", "1", "'\\x80'", "'\\xc1'"));
  invalid(c, FAST1("check-1", "Placed", "1", "'\\x80'", "'\\x01'"));
  invalid(c, FAST1("check-1", "Placed", "1", "'\\x80'", "'\\x8000'"));
  invalid(c, FAST1("check-1", "Placed", "1", "'\\x80'",
                   "'\\x81a56163746f7205'")); /* {"actor": 5} */
  invalid(c, FAST1("check-1", "Placed", "1", "'\\x80'",
                   "'\\x81ae636f7272656c6174696f6e5f6964a3616263'"));
  /* The arrays path and the cold path check the same. */
  invalid(c, "SELECT base FROM " SCHEMA ".append_fast('check-1', -1,"
             " ARRAY[gen_random_uuid(), gen_random_uuid()], ARRAY['A', 'b c'],"
             " ARRAY[1, 1], ARRAY['\\x80', '\\x80']::bytea[],"
             " ARRAY[NULL, NULL]::bytea[])");
  invalid(c, "SELECT status FROM " SCHEMA ".append('check-2', -1,"
             " ARRAY[gen_random_uuid()], ARRAY['Placed'], ARRAY[1],"
             " ARRAY['\\x80'::bytea], ARRAY['\\x01'::bytea])");

  /* A valid event gets the position and transaction id of its own
   * transaction, whatever the caller would like. */
  esc_test_exec(c, "BEGIN");
  assert_int_equal(
      esc_test_query_ll(c, FAST1("check-3", "Placed", "1", "'\\x80'",
                                 "'\\x81a474696d6501'")),
      0);
  assert_int_equal(
      esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA ".events"
                           " WHERE stream_id = 'check-3'"
                           " AND tx_id = pg_current_xact_id()"),
      1);
  esc_test_exec(c, "COMMIT");
  esc_test_exec(c, "RESET ROLE");
  assert_int_equal(
      esc_test_query_ll(c, "SELECT count(*) FROM " SCHEMA ".events"
                           " WHERE stream_id LIKE 'check-%'"),
      1);
}

/* ----------------------------------------- esc itself, as the writer -- */

static esc_store *open_as(const char *role) {
  char *url = url_as(role);
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.app_name = "esc-test-boundary";
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_store_open(url, &o, &err);
  free(url);
  if (!st)
    fail_msg("open as %s: %s", role, err.msg);
  return st;
}

static esc_event_data event(const char *type) {
  static const unsigned char data[] = {0x80};
  esc_event_data e = {0};
  e.id = esc_uuid_v4();
  e.schema_version = 1;
  e.type = type;
  e.data = data;
  e.data_len = sizeof data;
  return e;
}

static void appends_as(esc_store *st, const char *stream) {
  esc_error err = ESC_ERROR_INIT;
  esc_append_result r;
  esc_event_data one = event("Placed");
  esc_event_data two[] = {event("Paid"), event("Shipped")};
  /* New stream (scalar and array fast paths), then exact versions. */
  assert_int_equal(esc_append(st, stream, ESC_EXPECT_NO_STREAM, &one, 1, &r,
                              &err),
                   ESC_OK);
  assert_int_equal(esc_append(st, stream, 1, two, 2, &r, &err), ESC_OK);
  assert_int_equal(r.last_version, 3);
  /* A retry returns the original; a stale version is a conflict (both
   * through the cold path). */
  assert_int_equal(esc_append(st, stream, 1, two, 2, &r, &err), ESC_OK);
  assert_int_equal(r.last_version, 3);
  esc_event_data late = event("Late");
  assert_int_equal(esc_append(st, stream, 1, &late, 1, &r, &err),
                   ESC_ECONFLICT);
  /* Pipelined. */
  esc_event_data a = event("A"), b = event("B");
  esc_append_request reqs[2] = {{.stream_id = stream,
                                 .expected = ESC_EXPECT_EXISTS,
                                 .events = &a,
                                 .n = 1},
                                {.stream_id = stream,
                                 .expected = ESC_EXPECT_ANY,
                                 .events = &b,
                                 .n = 1}};
  assert_int_equal(esc_append_many(st, reqs, 2, &err), ESC_OK);
  assert_int_equal(reqs[1].result.last_version, 5);
  /* Snapshots: written, read, and refused past the stream's end. */
  static const unsigned char state[] = {0x81, 0xa1, 0x6e, 0x05};
  assert_int_equal(
      esc_snapshot_write(st, stream, 5, 1, state, sizeof state, &err), ESC_OK);
  esc_snapshot snap = ESC_SNAPSHOT_INIT;
  assert_int_equal(esc_snapshot_read(st, stream, &snap, &err), ESC_OK);
  assert_int_equal(snap.version, 5);
  esc_snapshot_release(&snap);
  assert_int_not_equal(
      esc_snapshot_write(st, stream, 6, 1, state, sizeof state, &err), ESC_OK);
}

/* A reader sees the policies (esc retention show) and applies none. */
static void a_reader_shows_retention_policies(void **state) {
  esc_store *owner = *state;
  esc_error err = ESC_ERROR_INIT;
  tally_append_one(owner, "order-9", 1, "a");
  tally_append_one(owner, "order-9", 2, "b");
  esc_retention_policy p = ESC_RETENTION_POLICY_INIT;
  p.scope = ESC_RETENTION_CATEGORY;
  snprintf(p.target, sizeof p.target, "order");
  p.max_count = 1;
  assert_int_equal(esc_retention_policy_set(owner, &p, &err), ESC_OK);

  esc_store *rd = open_as(reader);
  esc_retention_policy out[2];
  size_t n = 0;
  assert_int_equal(esc_retention_policy_list(rd, NULL, out, 2, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].target, "order");
  assert_int_equal(out[0].max_count, 1);
  esc_retention_report rep;
  assert_int_not_equal(esc_retention_run(rd, NULL, &rep, &err), ESC_OK);
  assert_non_null(strstr(err.sqlstate, "42501"));
  esc_store_free(rd);
  assert_int_equal(esc_retention_policy_remove(owner, ESC_RETENTION_CATEGORY,
                                               "order", &err),
                   ESC_OK);
}

static void esc_works_as_the_writer(void **state) {
  (void)state;
  esc_store *st = open_as(writer);
  appends_as(st, "order-7");
  /* Waiting registers the session: the reader may wait too. */
  esc_store *rd = open_as(reader);
  esc_error err = ESC_ERROR_INIT;
  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(esc_read_stream(rd, "order-7", 0, ESC_FORWARD, 10, &ev,
                                   &err),
                   ESC_OK);
  assert_int_equal(ev.count, 5);
  esc_events_release(&ev);
  esc_store_free(rd);
  esc_store_free(st);
}

/* Tags through the roles: the writer appends tagged and on condition,
 * the reader reads by tag (SELECT on event_tags) and gets a token. */
static void tags_work_as_writer_and_reader(void **state) {
  (void)state;
  esc_store *wr = open_as(writer), *rd = open_as(reader);
  esc_error err = ESC_ERROR_INIT;
  esc_events ev = ESC_EVENTS_INIT;
  char token[ESC_TAG_QUERY_TOKEN_MAX];
  const char *tag[] = {"coupon:B1"};
  esc_tag_query_item item = {tag, 1, NULL, 0};
  esc_tag_query q = {&item, 1};
  esc_tags tags = {tag, 1};
  const esc_tags *per_request[] = {&tags};
  esc_event_data e = {esc_uuid_v4(), "Redeemed", 1, "\x80", 1, NULL, 0};
  esc_append_request req = {
      .stream_id = "order-8", .expected = ESC_EXPECT_ANY, .events = &e,
      .n = 1};
  if (esc_read_tagged(rd, &q, 0, 0, &ev, token, &err))
    fail_msg("read as the reader: %s", err.msg);
  assert_int_equal(ev.count, 0);
  if (esc_append_if(wr, &q, token, &req, per_request, 1, &err))
    fail_msg("append as the writer: %s", err.msg);
  assert_int_equal(esc_read_tagged(rd, &q, 0, 0, &ev, token, &err), ESC_OK);
  assert_int_equal(ev.count, 1);
  esc_events_release(&ev);
  esc_store_free(rd);
  esc_store_free(wr);
}

/* A worker with only the writer role: registers, applies, parks a poison
 * event, and resolves it when retried. */
static void a_worker_needs_only_the_writer(void **state) {
  esc_store *owner = *state;
  char name[32];
  snprintf(name, sizeof name, "tb%d", (int)getpid());
  redisContext *redis = esc_test_redis(NULL);
  char base[ESC_TEST_KEY_BASE_SIZE], prefix[ESC_TEST_KEY_BASE_SIZE + 1];
  snprintf(prefix, sizeof prefix, "%s:",
           esc_test_key_base(SCHEMA, name, base, sizeof base));
  esc_test_redis_delete_prefix(redis, prefix);
  tally_append_one(owner, "tally-1", 3, "a");
  tally_append_one(owner, "tally-2", 4, "poison");
  tally_append_one(owner, "tally-1", 5, "b");

  char *url = url_as(writer);
  esc_projection p;
  tally_projection(&p, name, 1, 1);
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.pg_url = url;
  o.lease_poll_ms = 100;
  esc_error err = ESC_ERROR_INIT;
  tally_poison_cured = 0;
  for (int round = 0; round < 2; round++) {
    esc_worker *w = esc_worker_new(&o, &err);
    assert_non_null(w);
    assert_int_equal(esc_worker_add(w, &p, &err), ESC_OK);
    esc_status rc = esc_worker_run_until_caught_up(w, 30000, &err);
    esc_worker_free(w);
    if (rc)
      fail_msg("round %d: %s", round, err.msg);
    esc_dead_letter *dl = NULL;
    size_t n = 0;
    assert_int_equal(esc_dead_letters_list(NULL, SCHEMA, name, false, &dl, &n,
                                           &err),
                     ESC_OK);
    if (round == 0) {
      assert_int_equal(n, 1);
      assert_string_equal(dl[0].stream_id, "tally-2");
      assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, dl[0].id, &err),
                       ESC_OK);
      tally_poison_cured = 1;
    } else {
      assert_int_equal(n, 0); /* resolved by the worker itself */
    }
    free(dl);
  }
  long long g = esc_test_redis_ll(redis, -1, "GET %s:generation", base);
  assert_int_equal(
      esc_test_redis_ll(redis, -1, "GET %s:g%lld:total", base, g), 12);
  esc_test_redis_delete_prefix(redis, prefix);
  redisFree(redis);
  esc_test_unregister_projection(SCHEMA, name);
  free(url);
}

/* A worker of a durable subscription with only the writer role:
 * registers it, delivers every event and moves its checkpoint. */
static esc_status count_delivery(const esc_delivery *d, void *userdata,
                                 esc_error *err) {
  (void)d;
  (void)err;
  (*(int *)userdata)++;
  return ESC_OK;
}

static void a_subscription_needs_only_the_writer(void **state) {
  esc_store *owner = *state;
  static const char *const tally[] = {"tally", NULL};
  char name[32];
  int delivered = 0;
  snprintf(name, sizeof name, "ts%d", (int)getpid());
  tally_append_one(owner, "tally-3", 1, "c");
  char *url = url_as(writer);
  esc_subscription s = ESC_SUBSCRIPTION_INIT;
  s.name = name;
  s.categories = tally;
  s.handle = count_delivery;
  s.userdata = &delivered;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.pg_url = url;
  o.lease_poll_ms = 100;
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add_subscription(w, &s, &err), ESC_OK);
  esc_status rc = esc_worker_run_until_caught_up(w, 30000, &err);
  esc_worker_free(w);
  if (rc)
    fail_msg("subscription as the writer: %s", err.msg);
  PGconn *c = esc_test_pg();
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " SCHEMA ".events WHERE stream_id LIKE"
           " 'tally-%%'");
  assert_int_equal(delivered, esc_test_query_ll(c, sql));
  snprintf(sql, sizeof sql,
           "SELECT global_position FROM " SCHEMA ".subscription_checkpoints"
           " WHERE subscription = '%s'",
           name);
  assert_true(esc_test_query_ll(c, sql) > 0);
  PQfinish(c);
  esc_test_unregister_projection(SCHEMA, name);
  free(url);
}

/* ----------------------------------------------------------- harness -- */

static int setup(void **state) {
  esc_store *st = esc_test_fresh_store(SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  if (esc_store_roles(st, writer, reader, &err))
    fail_msg("roles: %s", err.msg);
  *state = st;
  return 0;
}

static int teardown(void **state) {
  esc_store_free(*state);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(roles_write_no_table, esc_test_close_tracked),
      cmocka_unit_test_teardown(functions_check_what_they_store,
                                esc_test_close_tracked),
      cmocka_unit_test(a_reader_shows_retention_policies),
      cmocka_unit_test(tags_work_as_writer_and_reader),
      cmocka_unit_test(esc_works_as_the_writer),
      cmocka_unit_test(a_worker_needs_only_the_writer),
      cmocka_unit_test(a_subscription_needs_only_the_writer),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

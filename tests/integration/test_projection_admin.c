/*
 * The administrative side of projections against real PostgreSQL and
 * Redis: the registry and rebuild requests, dead letters (guarantee 10:
 * parked, visible, retryable), leases (guarantee 8: one holder per
 * partition, freed when its session dies) and the status `esc projections`
 * shows.
 *
 * Everything runs in its own schema; projection names carry the process
 * id, so Redis keys of concurrent or earlier runs never mix, and every key
 * a test sets is deleted at its end.
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

/* projections/src is not on the tests' include path */
#include "projection_int.h"
#include "testenv.h"

#define SCHEMA "t_proj_admin"

static esc_store *store;

/* A projection name unique to this process: "tpa<pid>_<what>". */
static void unique_name(char *out, size_t size, const char *what) {
  snprintf(out, size, "tpa%ld_%s", (long)getpid(), what);
}

static PGconn *connect_as(const char *app) {
  esc_error err = ESC_ERROR_INIT;
  PGconn *c = esc__pg_connect(NULL, app, &err);
  if (!c)
    fail_msg("esc__pg_connect: %s", err.msg);
  return c;
}

static esc_position append_one(const char *stream) {
  unsigned char data[16];
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  size_t len = esc_test_payload(data, 1);
  esc_event_data e = {esc_uuid_v4(), "Tick", 1, data, len, NULL, 0};
  if (esc_append(store, stream, ESC_EXPECT_ANY, &e, 1, &res, &err))
    fail_msg("append %s: %s", stream, err.msg);
  return res.position;
}

/* Reads the events of a category once every one up to `last` is readable
 * (another session's transaction may hold the horizon back for a while). */
static void read_category(const char *category, const esc_position *last,
                          esc_events *out) {
  esc_error err = ESC_ERROR_INIT;
  long long deadline = esc_test_now_ms() + 60000;
  for (;;) {
    esc_position start = ESC_POSITION_START;
    if (esc_read_all(store, category, start, 1000, out, &err))
      fail_msg("read %s: %s", category, err.msg);
    if (out->count > 0 &&
        esc_position_cmp(&out->items[out->count - 1].position, last) >= 0)
      return;
    if (esc_test_now_ms() > deadline)
      fail_msg("events of %s did not become readable", category);
    esc_test_sleep_ms(50);
  }
}

/* ------------------------------------------------------------------------
 * Redis, by hand
 * ------------------------------------------------------------------------ */

static esc__redis *redis;

static void redis_cmd(int argc, const char **argv) {
  esc_error err = ESC_ERROR_INIT;
  if (esc__redis_run(redis, argc, argv, NULL, NULL, &err))
    fail_msg("redis %s %s: %s", argv[0], argv[1], err.msg);
}

static void redis_set(const char *key, const char *value) {
  const char *argv[] = {"SET", key, value};
  redis_cmd(3, argv);
}

/* Deletes every key of projection proj (SCAN, so only this run's keys). */
static void redis_forget(const char *proj) {
  char pattern[ESC__KEY_MAX], cursor[32] = "0";
  esc_error err = ESC_ERROR_INIT;
  snprintf(pattern, sizeof pattern, "%s:*", proj);
  do {
    redisReply *r = NULL;
    const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    if (esc__redis_run(redis, 6, argv, NULL, &r, &err))
      fail_msg("redis SCAN: %s", err.msg);
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    for (size_t i = 0; i < r->element[1]->elements; i++) {
      const char *del[] = {"DEL", r->element[1]->element[i]->str};
      redis_cmd(2, del);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
}

static int group_setup(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  store = esc_test_fresh_store(SCHEMA);
  redis = esc__redis_connect(NULL, &err);
  if (!redis)
    fail_msg("redis: %s (did scripts/servers start run?)", err.msg);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  esc__redis_free(redis);
  esc_store_free(store);
  return 0;
}

/* ------------------------------------------------------------------------
 * Registry and rebuild requests
 * ------------------------------------------------------------------------ */

static bool requested(PGconn *c, const char *name) {
  esc_error err = ESC_ERROR_INIT;
  struct esc__layout l;
  bool found = false;
  if (esc__registry_read(c, SCHEMA, name, &l, &found, &err))
    fail_msg("registry_read: %s", err.msg);
  return found && l.rebuild_requested;
}

static void registry_upsert_and_rebuild_requests(void **state) {
  (void)state;
  char name[64], sql[256];
  esc_error err = ESC_ERROR_INIT;
  struct esc__layout layout;
  PGconn *c = connect_as("t-registry");
  unique_name(name, sizeof name, "reg");
  static const char *const cats1[] = {"order", NULL};
  /* Not valid categories; they check the array quoting. */
  static const char *const cats2[] = {"order", "in\"v\\x", "a,b", NULL};
  static const char *const types[] = {"OrderPlaced", NULL};
  esc_projection p = {
      name, 1, cats1, NULL, 2, NULL, NULL, NULL, ESC_ON_ERROR_PARK, 0, NULL};

  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err), ESC_OK);
  snprintf(sql, sizeof sql,
           "SELECT version || '/' || partitions || '/' || categories::text"
           " || '/' || coalesce(event_types::text, 'all')"
           " FROM " SCHEMA ".projections WHERE name = '%s'",
           name);
  char *row = esc_test_query_text(c, sql);
  assert_string_equal(row, "1/2/{order}/all");
  free(row);
  assert_int_equal(layout.partitions, 2);
  assert_int_equal(layout.repartition_to, 0);

  /* A second worker (or a new version) updates the row, but not the
   * partition layout: that is the store's, set by the first registration
   * (a worker with another count then refuses; test_partition_layout). */
  p.version = 2;
  p.partitions = 0; /* means 1 */
  p.categories = cats2;
  p.event_types = types;
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err), ESC_OK);
  snprintf(sql, sizeof sql,
           "SELECT version || '/' || partitions || '/' ||"
           " array_length(categories, 1) || '/' || categories[2] || '/' ||"
           " categories[3] || '/' || event_types[1]"
           " FROM " SCHEMA ".projections WHERE name = '%s'",
           name);
  row = esc_test_query_text(c, sql);
  assert_string_equal(row, "2/2/3/in\"v\\x/a,b/OrderPlaced");
  assert_int_equal(layout.partitions, 2);
  free(row);

  p.version = 0;
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err),
                   ESC_EINVAL);
  p.version = 2;
  p.name = "Bad-Name";
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err),
                   ESC_EINVAL);

  /* Requests: none yet; one; taken; another one after it. */
  assert_false(requested(c, name));
  assert_false(requested(c, "tpa_never_registered"));
  assert_int_equal(esc_projection_request_rebuild(NULL, SCHEMA, name, &err),
                   ESC_OK);
  assert_true(requested(c, name));
  assert_int_equal(esc_projection_request_rebuild(NULL, SCHEMA, name, &err),
                   ESC_OK);
  assert_int_equal(esc__registry_rebuild_taken(c, SCHEMA, name, &err), ESC_OK);
  assert_false(requested(c, name)); /* two requests, one rebuild */
  assert_int_equal(esc_projection_request_rebuild(NULL, SCHEMA, name, &err),
                   ESC_OK);
  assert_true(requested(c, name));

  /* Unknown and invalid names. */
  assert_int_equal(
      esc_projection_request_rebuild(NULL, SCHEMA, "tpa_nothing_here", &err),
      ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "tpa_nothing_here"));
  assert_int_equal(
      esc_projection_request_rebuild(NULL, SCHEMA, "Not-A-Name", &err),
      ESC_EINVAL);
  /* A schema that was never migrated. */
  assert_int_not_equal(
      esc_projection_request_rebuild(NULL, "t_proj_admin_none", name, &err),
      ESC_OK);
  assert_non_null(strstr(err.msg, "migrate"));
  PQfinish(c);
}

/* ------------------------------------------------------------------------
 * Dead letters
 * ------------------------------------------------------------------------ */

/* The letters of proj (all of them, or the open ones); *n of them. */
static esc_dead_letter *letters(const char *proj, bool all, size_t *n) {
  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  if (esc_dead_letters_list(NULL, SCHEMA, proj, all, &l, n, &err))
    fail_msg("list dead letters: %s", err.msg);
  return l;
}

static void dead_letter_lifecycle(void **state) {
  (void)state;
  char name[64];
  esc_error err = ESC_ERROR_INIT;
  esc_events ev = ESC_EVENTS_INIT;
  size_t n = 0;
  PGconn *c = connect_as("t-dead-letters");
  unique_name(name, sizeof name, "dl");
  append_one("dlcat-1");
  append_one("dlcat-1");
  if (esc_read_stream(store, "dlcat-1", 0, ESC_FORWARD, 10, &ev, &err))
    fail_msg("read: %s", err.msg);
  assert_int_equal(ev.count, 2);
  const esc_recorded_event *e1 = &ev.items[0], *e2 = &ev.items[1];

  /* Park; parking the same event again (a worker that died before its
   * checkpoint moved) updates the open letter. Bad bytes and line breaks
   * in the handler's message are made storable rather than lost. */
  assert_int_equal(
      esc__dead_letter_park(c, SCHEMA, name, 1, e1, "first try", 3, 0, &err),
      ESC_OK);
  assert_int_equal(esc__dead_letter_park(c, SCHEMA, name, 1, e1,
                                         "boom:\n bad \xff byte \xc3\xa9", 4,
                                         2, &err),
                   ESC_OK);
  esc_dead_letter *l = letters(name, false, &n);
  assert_int_equal(n, 1);
  int64_t id = l[0].id;
  assert_string_equal(l[0].projection, name);
  assert_int_equal(l[0].partition, 1);
  assert_int_equal(esc_position_cmp(&l[0].position, &e1->position), 0);
  assert_memory_equal(l[0].event_id.bytes, e1->id.bytes, 16);
  assert_string_equal(l[0].stream_id, "dlcat-1");
  assert_int_equal(l[0].stream_version, 1);
  assert_string_equal(l[0].event_type, "Tick");
  assert_string_equal(l[0].error, "boom:  bad ? byte \xc3\xa9");
  assert_int_equal(l[0].attempts, 4);
  assert_int_equal(l[0].commands_applied, 2); /* parking again updates it */
  assert_string_equal(l[0].state, "parked");
  assert_true(l[0].parked_at_us > 0);
  free(l);

  /* Nothing to retry until someone asks. */
  assert_int_equal(
      esc__dead_letter_take_retries(c, SCHEMA, name, 1, &l, &n, &err), ESC_OK);
  assert_int_equal(n, 0);
  assert_null(l);

  /* retry -> the worker takes it -> applied: resolved. */
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, id, &err), ESC_OK);
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, id, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "requested already"));
  assert_int_equal(
      esc__dead_letter_take_retries(c, SCHEMA, name, 0, &l, &n, &err), ESC_OK);
  assert_int_equal(n, 0); /* another partition */
  assert_int_equal(
      esc__dead_letter_take_retries(c, SCHEMA, name, 1, &l, &n, &err), ESC_OK);
  assert_int_equal(n, 1);
  assert_int_equal(l[0].id, id);
  assert_string_equal(l[0].state, "retry");
  assert_memory_equal(l[0].event_id.bytes, e1->id.bytes, 16);
  free(l);
  assert_int_equal(esc__dead_letter_finish(c, SCHEMA, id, true, NULL, -1, &err),
                   ESC_OK);
  l = letters(name, false, &n);
  assert_int_equal(n, 0);
  free(l);
  l = letters(name, true, &n);
  assert_int_equal(n, 1);
  assert_string_equal(l[0].state, "resolved");
  free(l);

  /* A resolved letter cannot be retried or discarded. */
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, id, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "resolved"));
  assert_int_equal(esc_dead_letter_discard(NULL, SCHEMA, id, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "resolved"));

  /* The same event parked again later is a new letter. Its retry fails:
   * back to parked with the new error and one more attempt. */
  assert_int_equal(
      esc__dead_letter_park(c, SCHEMA, name, 1, e1, "again", 3, 0, &err), ESC_OK);
  l = letters(name, false, &n);
  assert_int_equal(n, 1);
  int64_t id2 = l[0].id;
  assert_true(id2 != id);
  free(l);
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, id2, &err), ESC_OK);
  assert_int_equal(
      esc__dead_letter_finish(c, SCHEMA, id2, false, "still broken", -1, &err),
      ESC_OK);
  l = letters(name, false, &n);
  assert_int_equal(n, 1);
  assert_string_equal(l[0].state, "parked");
  assert_string_equal(l[0].error, "still broken");
  assert_int_equal(l[0].attempts, 4);
  free(l);

  /* Discard: recorded, not deleted; then neither retry nor discard. */
  assert_int_equal(
      esc__dead_letter_park(c, SCHEMA, name, 0, e2, "bad", 3, 0, &err), ESC_OK);
  l = letters(name, false, &n);
  assert_int_equal(n, 2);
  int64_t id3 = l[1].id;
  assert_int_equal(l[1].partition, 0);
  free(l);
  assert_int_equal(esc_dead_letter_discard(NULL, SCHEMA, id3, &err), ESC_OK);
  assert_int_equal(esc_dead_letter_discard(NULL, SCHEMA, id3, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "discarded"));
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, id3, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "discarded"));
  l = letters(name, true, &n);
  assert_int_equal(n, 3);
  assert_string_equal(l[2].state, "discarded");
  free(l);
  /* A finished retry does not undo a discard of a failed letter. */
  assert_int_equal(esc__dead_letter_finish(c, SCHEMA, id3, false, "x", -1, &err),
                   ESC_OK);
  l = letters(name, true, &n);
  assert_string_equal(l[2].state, "discarded");
  free(l);

  /* Unknown ids, bad names, everyone's letters. */
  assert_int_equal(esc_dead_letter_retry(NULL, SCHEMA, 987654321, &err),
                   ESC_ENOTFOUND);
  assert_int_equal(esc_dead_letter_discard(NULL, SCHEMA, 987654321, &err),
                   ESC_ENOTFOUND);
  assert_int_equal(
      esc_dead_letters_list(NULL, SCHEMA, "No Such", false, &l, &n, &err),
      ESC_EINVAL);
  l = letters(NULL, true, &n);
  assert_true(n >= 3);
  free(l);

  esc_events_release(&ev);
  PQfinish(c);
}

/* ------------------------------------------------------------------------
 * Leases
 * ------------------------------------------------------------------------ */

static bool try_lease(PGconn *c, int64_t key) {
  esc_error err = ESC_ERROR_INIT;
  bool got = false;
  if (esc__lease_try(c, key, &got, &err))
    fail_msg("lease_try: %s", err.msg);
  return got;
}

static void lease_keys_are_stable_and_distinct(void **state) {
  (void)state;
  int64_t k = esc__lease_key("esc", "orders", 1, 0);
  assert_true(k == esc__lease_key("esc", "orders", 1, 0));
  assert_true(k == esc__lease_key(NULL, "orders", 1, 0));
  assert_true(k == esc__lease_key("esc", "orders", 0, 0)); /* 0 means 1 */
  assert_true(k != esc__lease_key("esc", "orders", 1, 1));
  assert_true(k != esc__lease_key("esc2", "orders", 1, 0));
  assert_true(k != esc__lease_key("esc", "orders2", 1, 0));
  /* Two layouts never hold "the same" partition. */
  assert_true(k != esc__lease_key("esc", "orders", 2, 0));
  assert_true(esc__lease_key("esc", "orders", 2, 1) !=
              esc__lease_key("esc", "orders", 3, 1));
  /* FNV-1a of the namespaced text: the same on every machine. */
  const char text[] = "esc.lease:esc:orders:1:0";
  assert_true(k == (int64_t)esc__fnv1a64(text, strlen(text)));
}

static void one_holder_per_lease(void **state) {
  (void)state;
  char name[64];
  esc_error err = ESC_ERROR_INIT;
  unique_name(name, sizeof name, "lease");
  int64_t key = esc__lease_key(SCHEMA, name, 2, 0);
  int64_t other = esc__lease_key(SCHEMA, name, 2, 1);
  PGconn *a = connect_as("t-lease-a");
  PGconn *b = connect_as("t-lease-b");

  assert_true(try_lease(a, key));
  assert_true(try_lease(a, key)); /* again: still ours, not nested */
  assert_false(try_lease(b, key));
  assert_true(esc__lease_held(a, key));
  assert_false(esc__lease_held(b, key));
  assert_false(esc__lease_held(a, other));
  assert_true(try_lease(b, other)); /* partitions are independent */
  assert_int_equal(esc__lease_release(b, other, &err), ESC_OK);
  assert_false(esc__lease_held(b, other));

  /* The holder's session ends: the server frees the lease and the
   * standby gets it within a second. */
  PQfinish(a);
  long long until = esc_test_now_ms() + 1000;
  bool got = false;
  while (!(got = try_lease(b, key)) && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  assert_true(got);
  assert_true(esc__lease_held(b, key));

  /* Released once, it is free (taken twice above, never nested). */
  PGconn *c = connect_as("t-lease-c");
  assert_true(try_lease(b, key));
  assert_int_equal(esc__lease_release(b, key, &err), ESC_OK);
  assert_false(esc__lease_held(b, key));
  assert_true(try_lease(c, key));
  /* Releasing what is not held is harmless. */
  assert_int_equal(esc__lease_release(b, key, &err), ESC_OK);
  assert_true(esc__lease_held(c, key));

  /* A broken connection holds nothing. */
  assert_false(esc__lease_held(NULL, key));
  PQfinish(b);
  PQfinish(c);
}

static bool hold(esc_lease *l) {
  bool held = false;
  esc_error err = ESC_ERROR_INIT;
  if (esc_lease_hold(l, &held, &err))
    fail_msg("esc_lease_hold: %s", err.msg);
  return held;
}

/* Polls l for up to ms; whether it got the lease. */
static bool hold_within(esc_lease *l, int ms) {
  long long until = esc_test_now_ms() + ms;
  bool got;
  while (!(got = hold(l)) && esc_test_now_ms() < until)
    esc_test_sleep_ms(20);
  return got;
}

/* The public lease for work of the user's own (a saga, a job). */
static void a_job_lease_has_one_holder(void **state) {
  (void)state;
  char name[64], sql[256];
  esc_error err = ESC_ERROR_INIT;
  unique_name(name, sizeof name, "job");
  esc_lease *a = esc_lease_new(NULL, SCHEMA, name, &err);
  esc_lease *b = esc_lease_new(NULL, SCHEMA, name, &err);
  esc_lease *other = esc_lease_new(NULL, SCHEMA, "another_job", &err);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(other);

  assert_true(hold(a));
  assert_true(hold(a)); /* still held, not taken twice */
  assert_false(hold(b));
  assert_true(hold(other));
  /* apart from the projections' key space: partition 0 of a projection of
   * the same name is free */
  PGconn *c = connect_as("t-job-proj");
  assert_true(try_lease(c, esc__lease_key(SCHEMA, name, 1, 0)));
  PQfinish(c);

  /* The holder's session is killed: it learns it lost the lease, the
   * standby takes it. */
  PGconn *admin = connect_as("t-job-admin");
  snprintf(sql, sizeof sql,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
           " WHERE application_name = 'esc-lease %s pid %d'",
           name, (int)getpid());
  PQclear(PQexec(admin, sql)); /* both handles' sessions: a's holds it */
  assert_true(hold_within(b, 5000));
  assert_false(hold(a));
  PQfinish(admin);

  /* Freed with its handle. */
  esc_lease_free(b);
  assert_true(hold_within(a, 5000));
  esc_lease_free(a);
  esc_lease_free(other);

  /* Bad input and no server. */
  assert_null(esc_lease_new(NULL, SCHEMA, "Not-A-Name", &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "lease name"));
  esc_lease *far =
      esc_lease_new("postgresql://esc@127.0.0.1:1/esc", SCHEMA, "far", &err);
  assert_non_null(far);
  bool held = true;
  assert_int_equal(esc_lease_hold(far, &held, &err), ESC_ECONN);
  assert_false(held);
  esc_lease_free(far);
}

static void connect_failure_is_one_line(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  PGconn *c = esc__pg_connect("postgresql://esc@127.0.0.1:1/esc", "t", &err);
  assert_null(c);
  assert_int_equal(err.code, ESC_ECONN);
  assert_non_null(strstr(err.msg, "connect to PostgreSQL"));
  assert_null(strchr(err.msg, '\n'));
}

/* ------------------------------------------------------------------------
 * Status
 * ------------------------------------------------------------------------ */

static const esc_partition_status *find(const esc_partition_status *st,
                                        size_t n, const char *proj,
                                        int partition) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(st[i].projection, proj) == 0 && st[i].partition == partition)
      return &st[i];
  fail_msg("no status line for %s/%d", proj, partition);
  abort(); /* fail_msg does not return: said so, for the compiler */
}

static esc_partition_status *status(size_t *n) {
  esc_error err = ESC_ERROR_INIT;
  esc_partition_status *st = NULL;
  if (esc_projection_status(NULL, NULL, SCHEMA, NULL, &st, n, &err))
    fail_msg("status: %s", err.msg);
  return st;
}

static void status_shows_the_picture(void **state) {
  (void)state;
  char name[64], key[ESC__KEY_MAX], token[ESC_POSITION_TOKEN_MAX];
  esc_error err = ESC_ERROR_INIT;
  esc_events ev = ESC_EVENTS_INIT;
  size_t n = 0;
  unique_name(name, sizeof name, "st");
  char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": where its keys start */
  esc_test_key_base(SCHEMA, name, base, sizeof base);
  struct esc__layout layout;
  PGconn *c = connect_as("t-status");
  PGconn *holder = connect_as("t-status-holder");
  static const char *const cats[] = {"stcat", NULL};
  esc_projection p = {
      name, 3, cats, NULL, 2, NULL, NULL, NULL, ESC_ON_ERROR_PARK, 0, NULL};
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err), ESC_OK);

  /* The workers' hash puts stcat-1 in partition 0 and stcat-2 in 1: the
   * lag of each partition counts its own streams only. */
  assert_int_equal(esc__partition_of("stcat-1", 2), 0);
  assert_int_equal(esc__partition_of("stcat-2", 2), 1);

  /* Registered, nothing built: generation 0, everything is lag. */
  append_one("stcat-1");
  append_one("stother-1"); /* another category: never lag */
  append_one("stcat-1");
  append_one("stcat-2");
  esc_position last = append_one("stcat-1");
  read_category("stcat", &last, &ev);
  assert_int_equal(ev.count, 4);
  esc_partition_status *st = status(&n);
  const esc_partition_status *s0 = find(st, n, name, 0);
  assert_int_equal(s0->partitions, 2);
  assert_int_equal(s0->version, 3);
  assert_int_equal(s0->generation, 0);
  assert_int_equal(s0->lag_events, 3);                   /* stcat-1 */
  assert_int_equal(find(st, n, name, 1)->lag_events, 1); /* stcat-2 */
  assert_true(s0->lag_seconds >= 0 && s0->lag_seconds < 3600);
  assert_int_equal(s0->lease_pid, 0);
  assert_false(s0->rebuilding);
  assert_false(s0->foreign); /* no owner yet */
  free(st);

  /* Keys another store's workers wrote are flagged, not passed off as
   * this store's. */
  esc__key_owner(key, sizeof key, base);
  redis_set(key, "00000000-0000-4000-8000-000000000000");
  st = status(&n);
  assert_true(find(st, n, name, 0)->foreign);
  assert_true(find(st, n, name, 1)->foreign);
  free(st);
  const char *unowned[] = {"DEL", key};
  redis_cmd(2, unowned);

  /* Generation 7 serves; partition 0 is past the second event, partition
   * 1 has not started; partition 0's lease is held; partition 1 has a
   * parked letter; generation 8 is being rebuilt, partition 0 caught up. */
  esc__key_generation(key, sizeof key, base);
  redis_set(key, "7");
  esc_position_format(&ev.items[1].position, token);
  esc__key_checkpoint(key, sizeof key, base, 7, 0);
  redis_set(key, token);
  esc_position_format(&ev.items[3].position, token);
  esc__key_checkpoint(key, sizeof key, base, 8, 0);
  redis_set(key, token);
  esc__key_rebuild(key, sizeof key, base);
  const char *hset[] = {"HSET", key, "generation", "8", "version", "3"};
  redis_cmd(6, hset);
  assert_true(try_lease(holder, esc__lease_key(SCHEMA, name, 2, 0)));
  assert_int_equal(
      esc__dead_letter_park(c, SCHEMA, name, 1, &ev.items[2], "bad", 3, 0, &err),
      ESC_OK);

  st = status(&n);
  s0 = find(st, n, name, 0);
  const esc_partition_status *s1 = find(st, n, name, 1);
  assert_int_equal(s0->generation, 7);
  assert_int_equal(esc_position_cmp(&s0->checkpoint, &ev.items[1].position), 0);
  assert_int_equal(s0->lag_events, 1); /* item 3; item 2 is stcat-2's */
  assert_true(s0->lag_seconds >= 0 && s0->lag_seconds < 3600);
  assert_int_equal(s0->lease_pid, PQbackendPID(holder));
  assert_string_equal(s0->lease_holder, "t-status-holder");
  assert_int_equal(s0->dead_letters, 0);
  assert_true(s0->rebuilding);
  assert_int_equal(s0->rebuild_generation, 8);
  assert_int_equal(
      esc_position_cmp(&s0->rebuild_checkpoint, &ev.items[3].position), 0);
  assert_int_equal(s0->rebuild_lag_events, 0);

  assert_int_equal(s1->generation, 7);
  assert_int_equal(s1->checkpoint.global, 0); /* not started */
  assert_int_equal(s1->lag_events, 1);
  assert_int_equal(s1->lease_pid, 0);
  assert_string_equal(s1->lease_holder, "");
  assert_int_equal(s1->dead_letters, 1);
  assert_true(s1->rebuilding);
  assert_int_equal(s1->rebuild_lag_events, 1);
  free(st);

  /* Caught up; the lease holder gone; a stale rebuild marker (a finished
   * rebuild's generation is not above the serving one) is no rebuild. */
  esc_position_format(&ev.items[3].position, token);
  esc__key_checkpoint(key, sizeof key, base, 7, 0);
  redis_set(key, token);
  esc__key_rebuild(key, sizeof key, base);
  const char *stale[] = {"HSET", key, "generation", "7"};
  redis_cmd(4, stale);
  PQfinish(holder);
  long long until = esc_test_now_ms() + 5000;
  do {
    st = status(&n);
    s0 = find(st, n, name, 0);
    if (s0->lease_pid == 0 || esc_test_now_ms() > until)
      break;
    free(st);
    esc_test_sleep_ms(20);
  } while (true);
  assert_int_equal(s0->lag_events, 0);
  assert_true(s0->lag_seconds == 0);
  assert_int_equal(s0->lease_pid, 0);
  assert_false(s0->rebuilding);
  assert_int_equal(s0->rebuild_generation, 0);
  free(st);

  /* A corrupt checkpoint stops its line, naming the key; the status of
   * the rest goes on. */
  esc__key_checkpoint(key, sizeof key, base, 7, 1);
  redis_set(key, "not-a-token");
  st = status(&n);
  assert_string_equal(find(st, n, name, 1)->state, "stopped");
  assert_non_null(strstr(find(st, n, name, 1)->reason, key));
  assert_string_not_equal(find(st, n, name, 0)->state, "stopped");
  free(st);
  st = NULL;

  /* Servers that cannot be reached: without PostgreSQL there is nothing
   * to show; without Redis the lines say so (see the next test). */
  assert_int_equal(
      esc_projection_status(NULL, "redis://127.0.0.1:1", SCHEMA, NULL, &st, &n, &err),
      ESC_OK);
  assert_string_equal(find(st, n, name, 0)->state, "unknown");
  free(st);
  st = NULL;
  assert_int_equal(esc_projection_status("postgresql://esc@127.0.0.1:1/esc",
                                         NULL, SCHEMA, NULL, &st, &n, &err),
                   ESC_ECONN);

  redis_forget(name);
  esc_events_release(&ev);
  PQfinish(c);
}

/* Monitoring never goes blind (#10 item 4): a stopped partition (its
 * checkpoint records the failure, longer than any position) and an
 * unreachable Redis are states of the lines, not failures of the whole
 * status. Before, the first made status fail for every projection ("the
 * value is 67 bytes, more than the 47 expected") and the second gave no
 * lines at all. */
static void status_shows_stopped_and_unknown_states(void **state) {
  (void)state;
  char bad[64], good[64], key[ESC__KEY_MAX];
  esc_error err = ESC_ERROR_INIT;
  size_t n = 0;
  unique_name(bad, sizeof bad, "stopped");
  unique_name(good, sizeof good, "fine");
  char bad_base[ESC_TEST_KEY_BASE_SIZE], good_base[ESC_TEST_KEY_BASE_SIZE];
  esc_test_key_base(SCHEMA, bad, bad_base, sizeof bad_base);
  esc_test_key_base(SCHEMA, good, good_base, sizeof good_base);
  struct esc__layout layout;
  PGconn *c = connect_as("t-status-states");
  PGconn *holder = connect_as("t-status-states-holder");
  static const char *const cats[] = {"sscat", NULL};
  esc_projection p = {
      bad, 1, cats, NULL, 1, NULL, NULL, NULL, ESC_ON_ERROR_STOP, 0, NULL};
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err), ESC_OK);
  p.name = good;
  assert_int_equal(esc__registry_upsert(c, SCHEMA, &p, &layout, &err), ESC_OK);
  for (int i = 0; i < 2; i++) {
    esc__key_generation(key, sizeof key, i ? good_base : bad_base);
    redis_set(key, "3");
  }
  esc__key_checkpoint(key, sizeof key, bad_base, 3, 0);
  redis_set(key, "failed 812/57: command 1: ERR increment or decrement "
                 "would overflow");
  esc__key_checkpoint(key, sizeof key, good_base, 3, 0);
  redis_set(key, "812/57");
  assert_true(try_lease(holder, esc__lease_key(SCHEMA, good, 1, 0)));

  esc_partition_status *st = status(&n);
  const esc_partition_status *s = find(st, n, bad, 0);
  assert_non_null(s);
  assert_string_equal(s->state, "stopped");
  assert_non_null(strstr(s->reason, "would overflow"));
  assert_int_equal(s->checkpoint.tx_id, 812); /* where it stopped */
  assert_int_equal(s->checkpoint.global, 57);
  s = find(st, n, good, 0);
  assert_string_equal(s->state, "running");
  assert_string_equal(s->reason, "");
  free(st);

  /* Redis unreachable: every line is there, from what PostgreSQL knows,
   * and says why the rest is unknown. */
  st = NULL;
  assert_int_equal(esc_projection_status(NULL, "redis://127.0.0.1:1", SCHEMA, NULL,
                                         &st, &n, &err),
                   ESC_OK);
  s = find(st, n, good, 0);
  assert_non_null(s);
  assert_string_equal(s->state, "unknown");
  assert_non_null(strstr(s->reason, "Redis"));
  assert_int_equal(s->lease_pid != 0, true); /* PostgreSQL knows this */
  assert_string_equal(find(st, n, bad, 0)->state, "unknown");
  free(st);

  redis_forget(bad);
  redis_forget(good);
  PQfinish(holder);
  PQfinish(c);
}

/* Appends n events in 1000-event appends, one stream each, to
 * lagcap-<first>, lagcap-<first + 1>, ... */
static void append_streams(esc_store *st, int first, int n) {
  static esc_event_data evs[1000];
  static unsigned char data[1000][16];
  esc_error err = ESC_ERROR_INIT;
  for (int s = 0; s * 1000 < n; s++) {
    char stream[32];
    snprintf(stream, sizeof stream, "lagcap-%d", first + s);
    for (int i = 0; i < 1000; i++) {
      size_t len = esc_test_payload(data[i], (unsigned)i);
      evs[i] = (esc_event_data){esc_uuid_v4(), "Tick", 1, data[i], len,
                                NULL, 0};
    }
    esc_append_result res;
    if (esc_append(st, stream, ESC_EXPECT_NO_STREAM, evs, 1000, &res, &err))
      fail_msg("append %s: %s", stream, err.msg);
  }
}

/* A status counts 10000 events of a backlog at most, so that a scrape of
 * a worker far behind costs what one of a worker that keeps up does;
 * past that the lag is estimated from positions, and says so. In a log
 * without gaps the estimate of one partition is exact, and the
 * estimates of several partitions sum to the whole. */
static void status_counts_a_bounded_backlog(void **state) {
  (void)state;
  const char *schema = "t_proj_admin_lag";
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_test_fresh_store(schema);
  PGconn *c = connect_as("t-status-lag");
  static const char *const cats[] = {"lagcap", NULL};
  struct esc__layout layout;
  esc_projection one = {"lag_one", 1, cats, NULL, 1, NULL, NULL, NULL,
                        ESC_ON_ERROR_PARK, 0, NULL};
  esc_projection two = {"lag_two", 1, cats, NULL, 2, NULL, NULL, NULL,
                        ESC_ON_ERROR_PARK, 0, NULL};
  assert_int_equal(esc__registry_upsert(c, schema, &one, &layout, &err),
                   ESC_OK);
  assert_int_equal(esc__registry_upsert(c, schema, &two, &layout, &err),
                   ESC_OK);
  esc_partition_status *ps = NULL;
  size_t n = 0;

  append_streams(st, 1, 10000); /* exactly the bound: still counted */
  esc_test_await_readable(st, "lagcap");
  assert_int_equal(
      esc_projection_status(NULL, NULL, schema, NULL, &ps, &n, &err), ESC_OK);
  const esc_partition_status *p = find(ps, n, "lag_one", 0);
  assert_int_equal(p->lag_events, 10000);
  assert_false(p->lag_estimated);
  free(ps);

  append_streams(st, 11, 15000);
  esc_test_await_readable(st, "lagcap");
  assert_int_equal(
      esc_projection_status(NULL, NULL, schema, NULL, &ps, &n, &err), ESC_OK);
  p = find(ps, n, "lag_one", 0);
  assert_true(p->lag_estimated);
  assert_int_equal(p->lag_events, 25000);
  assert_true(p->lag_seconds >= 0 && p->lag_seconds < 3600);
  const esc_partition_status *a = find(ps, n, "lag_two", 0);
  const esc_partition_status *b = find(ps, n, "lag_two", 1);
  assert_true(a->lag_estimated && b->lag_estimated);
  int64_t sum = a->lag_events + b->lag_events;
  if (sum < 24999 || sum > 25001)
    fail_msg("two partitions' estimates sum to %lld, not 25000",
             (long long)sum);
  free(ps);
  PQfinish(c);
  esc_store_free(st);
}

/* The pids of the esc-admin sessions of this database, as an array
 * literal ("{1,2}"; "{}" for none). Other tests open such sessions too,
 * for a moment each (`esc projections`). */
static char *admin_pids(PGconn *c) {
  return esc_test_query_text(
      c, "SELECT coalesce(array_agg(pid ORDER BY pid), '{}')::text"
         " FROM pg_stat_activity WHERE application_name = 'esc-admin'"
         " AND datname = current_database()");
}

/* How many of the pids in the literal are still sessions. */
static long long still_there(PGconn *c, const char *pids) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY ('%s')",
           pids);
  return esc_test_query_ll(c, sql);
}

/* A monitor keeps its two sessions between calls (a scrape each second
 * would otherwise log in twice a second), and after they are killed it
 * fails once and connects afresh. */
static void a_monitor_keeps_its_sessions(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  PGconn *c = connect_as("t-monitor");
  esc_projection_monitor *m =
      esc_projection_monitor_new(NULL, NULL, SCHEMA, NULL, &err);
  assert_non_null(m);
  esc_partition_status *st = NULL;
  size_t n = 0;
  assert_int_equal(esc_projection_monitor_status(m, &st, &n, &err), ESC_OK);
  free(st);
  char *first = admin_pids(c);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(esc_projection_monitor_status(m, &st, &n, &err), ESC_OK);
    assert_true(n > 0);
    free(st);
  }
  /* the monitor's two sessions of the first call serve the later ones */
  assert_true(still_there(c, first) >= 2);
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
           " WHERE pid = ANY ('%s')",
           first);
  esc_test_exec(c, sql);
  free(first);
  esc_status rc = ESC_OK;
  for (int i = 0; i < 3 && (i == 0 || rc); i++) {
    rc = esc_projection_monitor_status(m, &st, &n, &err);
    free(st);
    st = NULL;
  }
  assert_int_equal(rc, ESC_OK);
  esc_projection_monitor_free(m);
  PQfinish(c);
}

/* An empty registry is an empty status, not an error. */
static void status_of_an_empty_registry(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  esc_partition_status *st = NULL;
  size_t n = 7;
  esc_store *empty = esc_test_fresh_store("t_proj_admin_empty");
  assert_int_equal(
      esc_projection_status(NULL, NULL, "t_proj_admin_empty", NULL, &st, &n, &err),
      ESC_OK);
  assert_int_equal(n, 0);
  assert_null(st);
  esc_store_free(empty);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(registry_upsert_and_rebuild_requests),
      cmocka_unit_test(dead_letter_lifecycle),
      cmocka_unit_test(lease_keys_are_stable_and_distinct),
      cmocka_unit_test(one_holder_per_lease),
      cmocka_unit_test(a_job_lease_has_one_holder),
      cmocka_unit_test(connect_failure_is_one_line),
      cmocka_unit_test(status_shows_the_picture),
      cmocka_unit_test(status_shows_stopped_and_unknown_states),
      cmocka_unit_test(status_of_an_empty_registry),
      cmocka_unit_test(status_counts_a_bounded_backlog),
      cmocka_unit_test(a_monitor_keeps_its_sessions),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

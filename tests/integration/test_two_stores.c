/*
 * Two stores, one Redis (issue 10, item 5): three event stores share one
 * Redis database — A and B are two schemas of one database, C has A's
 * schema name in a second database — with the same projection name and
 * the same stream names, and a worker for each running at once. Each
 * store's read models, checkpoints, leases, dead letters, status (`esc
 * projections`, `esc metrics`) and queries are its own: every Redis key
 * starts with the store's namespace. (The sample's fulfillment, once a
 * saga with its checkpoint in Redis, is a process now: its state and
 * checkpoint are in the store's own schema.)
 *
 * Before namespaces, the first worker claimed "P:owner" and the others
 * refused (or, without that check, applied into one model), and every
 * saga shared "fulfillment:checkpoint".
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
#include <pthread.h>

#include <esc/query.h>

#include "order.h"
#include "tally.h"
#include "testenv.h"

#define STORES 3
#define PARTITIONS 2

struct store {
  char url[512];
  char schema[48];
  esc_store *st;
  int64_t sum; /* of n over the store's counted events */
  int events;  /* counted events appended */
  int parked;  /* poison events appended (they park) */
  esc_position head;
  esc_worker *w;
  pthread_t thread;
  esc_status run_rc;
  char run_err[256];
};

static struct store stores[STORES];
static char db_c[64];
static char name[48]; /* one projection name in every store */
static esc_projection proj;

/* ------------------------------------------------------------------------
 * Set-up: a second database, three stores, their workers
 * ------------------------------------------------------------------------ */

/* ESC_PG_URL with another database (as test_store_roles.c does). */
static void url_of(const char *db, char *out, size_t size) {
  const char *base = esc_test_pg_url();
  const char *slash = strrchr(base, '/');
  const char *query = strchr(base, '?');
  if (!slash || slash < strstr(base, "://") + 3)
    fail_msg("cannot put a database into %s", base);
  snprintf(out, size, "%.*s/%s%s", (int)(slash - base), base, db,
           query ? query : "");
}

static esc_store *open_migrated(const char *url, const char *schema) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  esc_store *st = esc_store_open(url, &o, &err);
  if (!st || esc_store_migrate(st, NULL, &err))
    fail_msg("open and migrate %s in %s: %s", schema, url, err.msg);
  return st;
}

static void create_database_c(void) {
  char sql[128];
  snprintf(db_c, sizeof db_c, "t_two_c_%d", (int)getpid());
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db_c);
  esc_test_exec(c, sql);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db_c);
  esc_test_exec(c, sql);
  PQfinish(c);
}

/* Counted events over the same streams in every store, a different number
 * in each so that sums and positions differ; store 0 also gets an event
 * its handler refuses (parked as a dead letter). */
static void append_to(struct store *s, int count) {
  s->sum += tally_append(s->st, "s", 5, count);
  s->events += count;
}

static void *run_worker(void *arg) {
  struct store *s = arg;
  esc_error err = ESC_ERROR_INIT;
  s->run_rc = esc_worker_run(s->w, &err);
  snprintf(s->run_err, sizeof s->run_err, "%s", err.msg);
  return NULL;
}

static void start_worker(struct store *s) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.pg_url = s->url;
  o.schema = s->schema;
  o.batch_size = 7;
  o.poll_ms = 50;
  o.lease_poll_ms = 100;
  s->w = esc_worker_new(&o, &err);
  if (!s->w || esc_worker_add(s->w, &proj, &err))
    fail_msg("worker of %s: %s", s->schema, err.msg);
  if (pthread_create(&s->thread, NULL, run_worker, s))
    fail_msg("pthread_create");
}

/* "NS:name", where the projection's keys of store s start. */
static void base_of(const struct store *s, char *out, size_t size) {
  char ns[ESC_KEY_PREFIX_MAX + 1];
  esc_error err = ESC_ERROR_INIT;
  if (esc_key_namespace(s->st, NULL, ns, sizeof ns, &err))
    fail_msg("namespace of %s: %s", s->schema, err.msg);
  snprintf(out, size, "%s:%s", ns, name);
}

static esc_query *query_of(const struct store *s) {
  esc_query_options o = ESC_QUERY_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.pg_url = s->url;
  o.schema = s->schema;
  esc_query *q = esc_query_new(&o, &err);
  if (!q)
    fail_msg("query of %s: %s", s->schema, err.msg);
  return q;
}

/* Waits until the store's projection has passed its head. The head is
 * taken once every event of the store is readable: a transaction of
 * another test may hold the horizon back for a moment, and a head taken
 * then is passed by the worker later, which the status tests would read
 * as a checkpoint past the head. */
static void wait_caught_up(struct store *s) {
  esc_error err = ESC_ERROR_INIT;
  int64_t newest = 0;
  long long deadline = esc_test_now_ms() + 30000;
  do {
    if (esc_store_newest(s->st, &newest, &err) ||
        esc_store_head(s->st, &s->head, &err))
      fail_msg("head of %s: %s", s->schema, err.msg);
    if (s->head.global != newest) {
      if (esc_test_now_ms() > deadline)
        fail_msg("%s: the head stays at %lld of %lld for 30 s (a long "
                 "transaction holds the horizon back?)",
                 s->schema, (long long)s->head.global, (long long)newest);
      esc_test_sleep_ms(50);
    }
  } while (s->head.global != newest);
  esc_query *q = query_of(s);
  esc_status rc = esc_query_wait(q, name, 0, &s->head, 60000, &err);
  esc_query_free(q);
  if (rc)
    fail_msg("%s did not catch up: %s (worker: %s)", s->schema, err.msg,
             s->run_err);
}

static int group_setup(void **state) {
  (void)state;
  snprintf(name, sizeof name, "two%d", (int)getpid());
  tally_projection(&proj, name, 1, PARTITIONS);
  create_database_c();
  for (int i = 0; i < STORES; i++) {
    struct store *s = &stores[i];
    snprintf(s->schema, sizeof s->schema, "t_two_%s_%d", i == 1 ? "b" : "a",
             (int)getpid());
    if (i == 2)
      url_of(db_c, s->url, sizeof s->url);
    else
      snprintf(s->url, sizeof s->url, "%s", esc_test_pg_url());
    s->st = i == 2 ? open_migrated(s->url, s->schema)
                   : esc_test_fresh_store(s->schema);
    append_to(s, 40 + 13 * i);
  }
  tally_append_one(stores[0].st, "tally-s0", 1000, "poison");
  stores[0].parked = 1;
  for (int i = 0; i < STORES; i++)
    start_worker(&stores[i]);
  /* More while every worker runs: they take turns with one Redis. */
  for (int i = 0; i < STORES; i++)
    append_to(&stores[i], 11 + 5 * i);
  for (int i = 0; i < STORES; i++)
    wait_caught_up(&stores[i]);
  return 0;
}

static void drop_database_c(void) {
  char sql[512];
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db_c);
  esc_test_exec(c, sql);
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning;"
           " DROP ROLE IF EXISTS %s_%s_writer, %s_%s_reader",
           db_c, stores[2].schema, db_c, stores[2].schema);
  esc_test_exec(c, sql);
  PQfinish(c);
}

static int group_teardown(void **state) {
  (void)state;
  redisContext *r = esc_test_redis(NULL);
  char base[ESC_TEST_KEY_BASE_SIZE];
  for (int i = 0; i < STORES; i++) {
    struct store *s = &stores[i];
    if (s->w) {
      esc_worker_stop(s->w);
      pthread_join(s->thread, NULL);
      esc_worker_free(s->w);
    }
    if (!s->st)
      continue;
    base_of(s, base, sizeof base);
    esc_test_redis_delete_prefix(r, base);
    char ns[ESC_KEY_PREFIX_MAX + 1], saga[ESC_KEY_PREFIX_MAX + 32];
    if (esc_key_namespace(s->st, NULL, ns, sizeof ns, NULL) == ESC_OK) {
      snprintf(saga, sizeof saga, "%s:fulfillment:", ns);
      esc_test_redis_delete_prefix(r, saga);
    }
    esc_store_free(s->st);
    if (i < 2)
      esc_test_drop_schema(s->schema);
  }
  drop_database_c();
  redisFree(r);
  return 0;
}

/* ------------------------------------------------------------------------
 * Read models, checkpoints, queries
 * ------------------------------------------------------------------------ */

static void queries_read_each_stores_own_models(void **state) {
  (void)state;
  const char *seen[STORES];
  esc_query *q[STORES];
  for (int i = 0; i < STORES; i++) {
    esc_error err = ESC_ERROR_INIT;
    int64_t total = -1;
    esc_query_items items = ESC_QUERY_ITEMS_INIT;
    q[i] = query_of(&stores[i]);
    seen[i] = esc_query_namespace(q[i]);
    assert_int_equal(esc_query_counter(q[i], name, "total", &total, &err),
                     ESC_OK);
    assert_int_equal(total, stores[i].sum);
    assert_int_equal(esc_query_zrange(q[i], name, "items", 0, -1, false,
                                      &items, &err),
                     ESC_OK);
    double sum = 0;
    for (size_t k = 0; k < items.count; k++)
      sum += items.items[k].score;
    esc_query_items_release(&items);
    assert_true(sum == (double)stores[i].sum);
  }
  for (int i = 0; i < STORES; i++)
    for (int j = i + 1; j < STORES; j++)
      assert_string_not_equal(seen[i], seen[j]);
  for (int i = 0; i < STORES; i++)
    esc_query_free(q[i]);
}

/* Events of stream s<k> in a store: each append goes round-robin over
 * the 5 streams from stream 0. */
static int stream_events(int store, int k) {
  int first = 40 + 13 * store, second = 11 + 5 * store;
  return first / 5 + (k < first % 5) + second / 5 + (k < second % 5);
}

/* Each stream's list holds that store's versions of it and nothing of a
 * same-named stream of another store. */
static void same_named_streams_stay_apart(void **state) {
  (void)state;
  redisContext *r = esc_test_redis(NULL);
  char base[ESC_TEST_KEY_BASE_SIZE];
  for (int i = 0; i < STORES; i++) {
    base_of(&stores[i], base, sizeof base);
    long long g = esc_test_redis_ll(r, -1, "GET %s:generation", base);
    assert_true(g > 0);
    for (int k = 0; k < 5; k++)
      assert_int_equal(
          esc_test_redis_ll(r, -1, "LLEN %s:g%lld:seq:tally-s%d", base, g, k),
          stream_events(i, k));
  }
  redisFree(r);
}

/* ------------------------------------------------------------------------
 * Status: checkpoints, leases, dead letters
 * ------------------------------------------------------------------------ */

static void status_of(const struct store *s, esc_partition_status **st,
                      size_t *n) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_projection_status(s->url, NULL, s->schema, NULL, st, n, &err))
    fail_msg("status of %s: %s", s->schema, err.msg);
  assert_int_equal(*n, PARTITIONS);
}

static void status_shows_each_stores_own(void **state) {
  (void)state;
  int pids[STORES * PARTITIONS];
  for (int i = 0; i < STORES; i++) {
    esc_partition_status *st = NULL;
    size_t n = 0;
    int64_t parked = 0;
    status_of(&stores[i], &st, &n);
    for (size_t p = 0; p < n; p++) {
      assert_string_equal(st[p].projection, name);
      assert_string_equal(st[p].state, "running");
      assert_false(st[p].foreign);
      assert_int_equal(esc_position_cmp(&st[p].checkpoint, &stores[i].head),
                       0);
      assert_int_equal(st[p].lag_events, 0);
      assert_true(st[p].lease_pid > 0);
      pids[i * PARTITIONS + (int)p] = st[p].lease_pid;
      parked += st[p].dead_letters;
    }
    assert_int_equal(parked, stores[i].parked);
    free(st);
  }
  /* every lease is a session of its own store's worker */
  for (int a = 0; a < STORES * PARTITIONS; a++)
    for (int b = a + 1; b < STORES * PARTITIONS; b++)
      assert_int_not_equal(pids[a], pids[b]);
}

static void dead_letters_are_each_stores_own(void **state) {
  (void)state;
  for (int i = 0; i < STORES; i++) {
    esc_dead_letter *dl = NULL;
    size_t n = 0;
    esc_error err = ESC_ERROR_INIT;
    assert_int_equal(esc_dead_letters_list(stores[i].url, stores[i].schema,
                                           name, false, &dl, &n, &err),
                     ESC_OK);
    assert_int_equal(n, (size_t)stores[i].parked);
    if (n)
      assert_string_equal(dl[0].stream_id, "tally-s0");
    free(dl);
  }
}

/* ------------------------------------------------------------------------
 * The CLI: `esc projections --json`, `esc metrics`
 * ------------------------------------------------------------------------ */

/* The output of `esc ARGS --pg URL --schema S` (malloc'ed). */
static char *esc_output(const struct store *s, const char *args) {
  char cmd[1024];
  if ((size_t)snprintf(cmd, sizeof cmd, "'%s' %s --pg '%s' --schema %s",
                       ESC_CLI_PATH, args, s->url, s->schema) >= sizeof cmd)
    fail_msg("the esc command line is longer than %zu bytes", sizeof cmd);
  int status = -1;
  char *out = esc_test_command_output(cmd, &status);
  if (status != 0)
    fail_msg("%s exited with %d: %s", cmd, status, out);
  return out;
}

static void cli_status_shows_each_stores_own(void **state) {
  (void)state;
  for (int i = 0; i < STORES; i++) {
    const struct store *s = &stores[i];
    char token[ESC_POSITION_TOKEN_MAX], want[256];
    esc_position_format(&s->head, token);
    char *json = esc_output(s, "projections --json");
    snprintf(want, sizeof want, "\"checkpoint\": \"%s\"", token);
    char *compact = strstr(json, want);
    snprintf(want, sizeof want, "\"checkpoint\":\"%s\"", token);
    if (!compact && !strstr(json, want))
      fail_msg("%s: `esc projections` lacks checkpoint %s: %s", s->schema,
               token, json);
    assert_null(strstr(json, "\"foreign\": true"));
    assert_null(strstr(json, "\"foreign\":true"));
    free(json);

    char *prom = esc_output(s, "metrics");
    for (int p = 0; p < PARTITIONS; p++) {
      snprintf(want, sizeof want,
               "esc_projection_checkpoint_position{schema=\"%s\","
               "projection=\"%s\",partition=\"%d\"} %lld\n",
               s->schema, name, p, (long long)s->head.global);
      if (!strstr(prom, want))
        fail_msg("%s: `esc metrics` lacks %s", s->schema, want);
    }
    free(prom);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(queries_read_each_stores_own_models),
      cmocka_unit_test(same_named_streams_stay_apart),
      cmocka_unit_test(status_shows_each_stores_own),
      cmocka_unit_test(dead_letters_are_each_stores_own),
      cmocka_unit_test(cli_status_shows_each_stores_own),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

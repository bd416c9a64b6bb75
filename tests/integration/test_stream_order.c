/*
 * Subscription order agrees with stream order (guarantee 4, second half):
 * of two events of one stream, the lower version comes first in $all, in
 * a category and in a projection worker's delivery, whatever the number
 * of concurrent writers and the expected-version mode.
 *
 * The defect this guards against: a writer that waited for a stream's row
 * lock was given its transaction id before the wait, so it got the next
 * version but could sort before the transaction it waited for.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "testenv.h"
#include "worker_thread.h"

#define SCHEMA "t_stream_order"
#define HOT "hot-1"

/* How each writer thread appends; writers cycle through all of them. */
typedef enum write_mode {
  MODE_EXISTS,       /* --expected exists, one event */
  MODE_ANY,          /* --expected any, one event */
  MODE_EXACT,        /* the version last read, retried on conflict */
  MODE_EXISTS_MULTI, /* exists, three events in one call */
  MODE_MANY,         /* esc_append_many: the hot stream and a warm one */
  MODE_COUNT
} write_mode;

enum { WRITERS = 12, CALLS = 40, WARM_STREAMS = 3, MAX_STREAMS = 64 };

struct writer {
  int index;
  pthread_barrier_t *start;
  int errors;
  char last_error[256];
};

/* ------------------------------------------------------------- writing -- */

static esc_event_data event(unsigned char *payload, long long n) {
  esc_event_data ev = {esc_uuid_v4(), "Bumped", 1, payload, 0, NULL, 0};
  ev.data_len = esc_test_payload(payload, n);
  return ev;
}

static esc_status append_exact(esc_store *st, const char *stream,
                               esc_event_data *ev, esc_error *err) {
  for (;;) {
    esc_stream_info info;
    esc_status rc = esc_stream_get(st, stream, &info, err);
    if (rc)
      return rc;
    rc = esc_append(st, stream, info.version, ev, 1, NULL, err);
    if (rc != ESC_ECONFLICT)
      return rc;
  }
}

static esc_status append_many(esc_store *st, int w, int call,
                              unsigned char payload[2][32], esc_error *err) {
  char warm[16];
  esc_event_data ev[2] = {event(payload[0], call), event(payload[1], call)};
  snprintf(warm, sizeof warm, "warm-%d", (w + call) % WARM_STREAMS);
  esc_append_request reqs[2] = {
      {HOT, ESC_EXPECT_EXISTS, &ev[0], 1, ESC_OK, {0}, ESC_ERROR_INIT},
      {warm, ESC_EXPECT_ANY, &ev[1], 1, ESC_OK, {0}, ESC_ERROR_INIT}};
  esc_status rc = esc_append_many(st, reqs, 2, err);
  for (int i = 0; i < 2 && !rc; i++)
    if (reqs[i].status)
      rc = esc_error_set(err, reqs[i].status, "%s", reqs[i].error.msg);
  return rc;
}

static esc_status write_once(esc_store *st, int w, int call, esc_error *err) {
  unsigned char payload[3][32];
  esc_event_data ev[3] = {event(payload[0], w), event(payload[1], call),
                          event(payload[2], w + call)};
  switch ((write_mode)((w + call) % MODE_COUNT)) {
  case MODE_EXISTS:
    return esc_append(st, HOT, ESC_EXPECT_EXISTS, ev, 1, NULL, err);
  case MODE_ANY:
    return esc_append(st, HOT, ESC_EXPECT_ANY, ev, 1, NULL, err);
  case MODE_EXACT:
    return append_exact(st, HOT, ev, err);
  case MODE_EXISTS_MULTI:
    return esc_append(st, HOT, ESC_EXPECT_EXISTS, ev, 3, NULL, err);
  case MODE_MANY:
  case MODE_COUNT:
    break;
  }
  return append_many(st, w, call, payload, err);
}

static void *writer_main(void *arg) {
  struct writer *wr = arg;
  esc_store *st = esc_test_open_store(SCHEMA);
  pthread_barrier_wait(wr->start);
  for (int call = 0; call < CALLS; call++) {
    esc_error err = ESC_ERROR_INIT;
    if (write_once(st, wr->index, call, &err)) {
      wr->errors++;
      snprintf(wr->last_error, sizeof wr->last_error, "%s", err.msg);
    }
  }
  esc_store_free(st);
  return NULL;
}

static void write_concurrently(void) {
  pthread_barrier_t start;
  pthread_t th[WRITERS];
  struct writer w[WRITERS];
  pthread_barrier_init(&start, NULL, WRITERS);
  for (int i = 0; i < WRITERS; i++) {
    w[i] = (struct writer){.index = i, .start = &start};
    assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
  }
  for (int i = 0; i < WRITERS; i++) {
    pthread_join(th[i], NULL);
    if (w[i].errors)
      fail_msg("writer %d: %d failed appends, last: %s", i, w[i].errors,
               w[i].last_error);
  }
  pthread_barrier_destroy(&start);
}

/* ------------------------------------------------------------ checking -- */

/* Per-stream last version seen, for a handful of streams. */
struct order_check {
  char streams[MAX_STREAMS][32];
  int64_t last[MAX_STREAMS];
  int nstreams;
  int64_t events;
  int64_t inversions;
  char first_bad[160];
};

/* Records one delivered event; counts it as an inversion unless it is the
 * next version of its stream. */
static void order_see(struct order_check *c, const char *stream,
                      int64_t version, esc_position pos) {
  int i = 0;
  while (i < c->nstreams && strcmp(c->streams[i], stream) != 0)
    i++;
  if (i == c->nstreams) {
    assert_true(c->nstreams < MAX_STREAMS);
    snprintf(c->streams[i], sizeof c->streams[i], "%s", stream);
    c->last[i] = 0;
    c->nstreams++;
  }
  c->events++;
  if (version != c->last[i] + 1 && c->inversions++ == 0)
    snprintf(c->first_bad, sizeof c->first_bad,
             "%s@%lld delivered at %llu/%lld after @%lld", stream,
             (long long)version, (unsigned long long)pos.tx_id,
             (long long)pos.global, (long long)c->last[i]);
  if (version > c->last[i])
    c->last[i] = version;
}

static void read_order_once(esc_store *st, const char *category,
                            struct order_check *c) {
  esc_position after = ESC_POSITION_START;
  for (;;) {
    esc_events page = ESC_EVENTS_INIT;
    esc_error err = ESC_ERROR_INIT;
    if (esc_read_all(st, category, after, 200, &page, &err))
      fail_msg("read %s: %s", category ? category : "$all", err.msg);
    for (size_t i = 0; i < page.count; i++)
      order_see(c, page.items[i].stream_id, page.items[i].stream_version,
                page.items[i].position);
    after = page.next;
    size_t n = page.count;
    esc_events_release(&page);
    if (n == 0)
      break;
  }
}

/* Reads the scope from the start, again while fewer than want_events are
 * readable yet (another test's transaction may hold the horizon back). */
static void check_read_order(esc_store *st, const char *category,
                             int64_t want_events) {
  struct order_check c = {0};
  long long deadline = esc_test_now_ms() + 15000;
  for (;;) {
    memset(&c, 0, sizeof c);
    read_order_once(st, category, &c);
    if (c.inversions || c.events >= want_events ||
        esc_test_now_ms() > deadline)
      break;
    esc_test_sleep_ms(50);
  }
  if (c.inversions)
    fail_msg("%s: %lld of %lld events out of stream order; first: %s",
             category ? category : "$all", (long long)c.inversions,
             (long long)c.events, c.first_bad);
  assert_int_equal(c.events, want_events);
}

static int64_t stream_version(esc_store *st, const char *stream) {
  esc_stream_info info;
  esc_error err = ESC_ERROR_INIT;
  if (esc_stream_get(st, stream, &info, &err))
    fail_msg("stream %s: %s", stream, err.msg);
  return info.version;
}

static int64_t warm_total(esc_store *st) {
  int64_t n = 0;
  for (int i = 0; i < WARM_STREAMS; i++) {
    char s[16];
    snprintf(s, sizeof s, "warm-%d", i);
    n += stream_version(st, s);
  }
  return n;
}

static void seed_hot_stream(esc_store *st) {
  unsigned char payload[32];
  esc_event_data ev = event(payload, 0);
  esc_error err = ESC_ERROR_INIT;
  if (esc_append(st, HOT, ESC_EXPECT_NO_STREAM, &ev, 1, NULL, &err))
    fail_msg("seed: %s", err.msg);
}

/* ------------------------------------------------------------- tests -- */

static void threads_keep_stream_order(void **state) {
  esc_store *st = *state;
  seed_hot_stream(st);
  write_concurrently();
  int64_t hot = stream_version(st, HOT);
  check_read_order(st, NULL, hot + warm_total(st));
  check_read_order(st, "hot", hot);
  check_read_order(st, "warm", warm_total(st));
}

/* ---- the CLI, as a new user would try it: processes, not threads ---- */

enum { CLI_PROCS = 8, CLI_CALLS = 25 };

static void cli_loop(int proc) {
  const char *modes[] = {"exists", "any"};
  char data[32];
  for (int i = 0; i < CLI_CALLS; i++) {
    snprintf(data, sizeof data, "{\"p\":%d,\"i\":%d}", proc, i);
    const char *argv[] = {ESC_CLI_PATH, "--schema", SCHEMA,     "append",
                          "clihot-1",   "Bumped",   data,       "--expected",
                          modes[(proc + i) % 2],    NULL};
    pid_t pid = esc_test_spawn(ESC_CLI_PATH, argv, NULL, "/dev/null");
    int status = 0;
    if (!esc_test_wait_child(pid, 60000, &status) || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      _exit(1);
  }
  _exit(0);
}

static void cli_processes_keep_stream_order(void **state) {
  esc_store *st = *state;
  unsigned char payload[32];
  esc_event_data ev = event(payload, 0);
  esc_error err = ESC_ERROR_INIT;
  if (esc_append(st, "clihot-1", ESC_EXPECT_NO_STREAM, &ev, 1, NULL, &err))
    fail_msg("seed: %s", err.msg);
  pid_t loops[CLI_PROCS];
  for (int p = 0; p < CLI_PROCS; p++) {
    loops[p] = fork();
    assert_true(loops[p] >= 0);
    if (loops[p] == 0)
      cli_loop(p);
  }
  for (int p = 0; p < CLI_PROCS; p++) {
    int status = 0;
    assert_int_equal(waitpid(loops[p], &status, 0), loops[p]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("CLI loop %d: an append failed", p);
  }
  int64_t n = stream_version(st, "clihot-1");
  assert_int_equal(n, 1 + CLI_PROCS * CLI_CALLS);
  check_read_order(st, "clihot", n);
}

/* ---- a projection that insists on version == last + 1 ---- */

static esc_status strict_handle(esc_projection_ctx *ctx, const esc_event *e,
                                void *userdata, esc_error *err) {
  (void)ctx;
  (void)err;
  order_see(userdata, e->recorded->stream_id, e->recorded->stream_version,
            e->recorded->position);
  return ESC_OK;
}

static void worker_applies_in_stream_order(void **state) {
  esc_store *st = *state;
  static struct order_check seen;
  static const char *const categories[] = {"hot", NULL};
  esc_projection p = {0};
  char name[32];
  esc_error err = ESC_ERROR_INIT;
  memset(&seen, 0, sizeof seen);
  seed_hot_stream(st);
  write_concurrently();

  snprintf(name, sizeof name, "tso%d", (int)getpid());
  p.name = name;
  p.version = 1;
  p.categories = categories;
  p.handle = strict_handle;
  p.userdata = &seen;
  p.on_error = ESC_ON_ERROR_STOP;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.batch_size = 37;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  if (esc_worker_add(w, &p, &err) ||
      esc_worker_run_until_caught_up(w, 60000, &err))
    fail_msg("worker: %s", err.msg);
  esc_worker_free(w);
  if (seen.inversions)
    fail_msg("worker applied %lld of %lld events out of stream order; "
             "first: %s",
             (long long)seen.inversions, (long long)seen.events,
             seen.first_bad);
  assert_int_equal(seen.events, stream_version(st, HOT));
}

/* ---- a log written before the fix: found, refused, repaired ---- */

/* Stores old-1 @1..@5 the way the defect did: @5 is written (and so read)
 * before @4. Only the owner can write events by hand. */
static void store_inverted_stream(void) {
  PGconn *c = esc_test_pg();
  const char *ins = "INSERT INTO " SCHEMA ".events (stream_id, stream_version,"
                    " event_id, event_type, schema_version, data, tx_id)"
                    " VALUES ('old-1', %d, gen_random_uuid(), 'Old%d', 1,"
                    " '\\x80', pg_current_xact_id())";
  char sql[512];
  int order[] = {1, 2, 3, 5, 4};
  for (int i = 0; i < 5; i++) {
    snprintf(sql, sizeof sql, ins, order[i], order[i]);
    esc_test_exec(c, sql);
  }
  esc_test_exec(c, "INSERT INTO " SCHEMA ".streams (stream_id, version)"
                   " VALUES ('old-1', 5)");
  PQfinish(c);
}

static int run_cli(const char *arg1) {
  const char *argv[] = {ESC_CLI_PATH, "--schema", SCHEMA, "check", arg1, NULL};
  int status = 0;
  pid_t pid = esc_test_spawn(ESC_CLI_PATH, argv, NULL, NULL);
  assert_true(esc_test_wait_child(pid, 60000, &status));
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static esc_status run_strict_worker(struct order_check *seen, esc_error *err) {
  static const char *const categories[] = {"old", NULL};
  esc_projection p = {0};
  char name[32];
  snprintf(name, sizeof name, "tsold%d", (int)getpid());
  p.name = name;
  p.version = 1;
  p.categories = categories;
  p.handle = strict_handle;
  p.userdata = seen;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  esc_worker *w = esc_worker_new(&o, err);
  assert_non_null(w);
  esc_status rc = esc_worker_add(w, &p, err);
  if (!rc)
    rc = esc_worker_run_until_caught_up(w, 30000, err);
  esc_worker_free(w);
  return rc;
}

static void old_inversions_found_refused_repaired(void **state) {
  esc_store *st = *state;
  static struct order_check seen;
  esc_order_inversion inv[4];
  esc_order_report r;
  size_t n = 0;
  esc_error err = ESC_ERROR_INIT;
  memset(&seen, 0, sizeof seen);
  store_inverted_stream();

  assert_int_equal(esc_order_check(st, &r, inv, 4, &n, &err), ESC_OK);
  assert_int_equal(r.inversions, 1);
  assert_int_equal(r.streams, 1);
  assert_int_equal(n, 1);
  assert_string_equal(inv[0].stream_id, "old-1");
  assert_int_equal(inv[0].version, 5);
  assert_true(esc_position_cmp(&inv[0].prev_position, &inv[0].position) > 0);

  /* A worker says so instead of applying @5 before @4. */
  assert_int_equal(run_strict_worker(&seen, &err), ESC_ECORRUPT);
  assert_non_null(strstr(err.msg, "esc check --repair"));
  assert_int_equal(seen.events, 0);

  assert_int_equal(run_cli("--limit=10"), 10);
  assert_int_equal(run_cli("--repair"), 0);
  assert_int_equal(run_cli("--limit=10"), 0);
  check_read_order(st, "old", 5);

  /* Each version kept its own event: the type names it. */
  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(esc_read_stream(st, "old-1", 1, ESC_FORWARD, 10, &ev, &err),
                   ESC_OK);
  assert_int_equal(ev.count, 5);
  for (size_t i = 0; i < ev.count; i++) {
    char want[32];
    snprintf(want, sizeof want, "Old%zu", i + 1);
    assert_string_equal(ev.items[i].type, want);
  }
  esc_events_release(&ev);

  assert_int_equal(run_strict_worker(&seen, &err), ESC_OK);
  assert_int_equal(seen.inversions, 0);
  assert_int_equal(seen.events, 5);
}

static int fresh(void **state) {
  *state = esc_test_fresh_store(SCHEMA);
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  esc_store_free(*state);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(threads_keep_stream_order, fresh,
                                      teardown),
      cmocka_unit_test_setup_teardown(cli_processes_keep_stream_order, fresh,
                                      teardown),
      cmocka_unit_test_setup_teardown(worker_applies_in_stream_order, fresh,
                                      teardown),
      cmocka_unit_test_setup_teardown(old_inversions_found_refused_repaired,
                                      fresh, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

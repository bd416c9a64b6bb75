/*
 * A worker's memory is bounded by bytes, not only by event counts (issue
 * 10, item 6): pages read from PostgreSQL are cut by a byte budget
 * (esc_read_all_send_bounded), and so are the batches sent to Redis, with
 * events exactly at, below and above the budget, a single event bigger
 * than the budget processed alone, and every total exact. The bound is
 * checked on the worker's own figures (esc_worker_get_stats), which do not
 * depend on the allocator: RSS under ASan says little.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include <esc/projection.h>

#include "testenv.h"

static char schema[40];
static char name[48];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:<name>", its keys' start */
static redisContext *redis;

/* ------------------------------------------------------------ helpers -- */

/* The projection's keys ("NS:<name>:..."). */
static void delete_projection_keys(void) {
  char prefix[ESC_TEST_KEY_BASE_SIZE + 1];
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(redis, prefix);
}

/* A msgpack bin of exactly `total` bytes (>= 5) into a malloc'ed buffer:
 * events whose data size the test chooses to the byte. */
static unsigned char *bin_payload(size_t total) {
  assert_true(total >= 5);
  unsigned char *buf = malloc(total);
  assert_non_null(buf);
  size_t n = total - 5;
  buf[0] = 0xc6; /* bin 32 */
  for (int i = 0; i < 4; i++)
    buf[1 + i] = (unsigned char)(n >> (8 * (3 - i)));
  memset(buf + 5, 'x', n);
  return buf;
}

/* Appends one event per size to stream (no metadata: its data is all its
 * bytes). */
static void append_sizes(esc_store *st, const char *stream, const size_t *sizes,
                         size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char *data = bin_payload(sizes[i]);
    esc_event_data ev = {esc_uuid_v4(), "Sized", 1, data, sizes[i], NULL, 0};
    esc_error err = ESC_ERROR_INIT;
    esc_status rc = esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, NULL, &err);
    free(data);
    if (rc)
      fail_msg("append to %s: %s", stream, err.msg);
  }
}

static int setup(void **state) {
  static int test;
  snprintf(schema, sizeof schema, "t_bytes_%d_%d", (int)getpid(), test);
  snprintf(name, sizeof name, "tb%d_%d", (int)getpid(), test++);
  *state = esc_test_fresh_store(schema);
  esc_test_key_base(schema, name, base, sizeof base);
  redis = esc_test_redis(NULL);
  delete_projection_keys();
  return 0;
}

static int teardown(void **state) {
  delete_projection_keys();
  redisFree(redis);
  esc_store_free(*state);
  esc_test_drop_schema(schema);
  return 0;
}

/* ------------------------------------------------------- store pages -- */

#define MAX_PAGES 16

/* Reads category (NULL: $all) to its end in pages of at most max events
 * and max_bytes bytes; page sizes (in events) go to pages[], and the
 * events read must be exactly those of one unbounded read, in order. */
static size_t read_pages(esc_store *st, const char *category, size_t max,
                         size_t max_bytes, size_t *pages) {
  esc_events all = ESC_EVENTS_INIT, ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  esc_position at = ESC_POSITION_START;
  size_t npages = 0, seen = 0;
  esc_test_await_readable(st, category);
  if (esc_read_all(st, category, at, 0, &all, &err))
    fail_msg("read: %s", err.msg);
  for (;;) {
    if (esc_read_all_send_bounded(st, category, at, max, max_bytes, &err) ||
        esc_read_all_receive(st, &ev, &err))
      fail_msg("bounded read: %s", err.msg);
    if (ev.count == 0)
      break;
    size_t bytes = 0;
    for (size_t i = 0; i < ev.count; i++, seen++) {
      assert_true(seen < all.count);
      assert_int_equal(ev.items[i].position.global,
                       all.items[seen].position.global);
      bytes += ev.items[i].data_len + ev.items[i].metadata_len;
    }
    /* the bound: within the budget, or one event alone */
    assert_true(max_bytes == 0 || bytes <= max_bytes || ev.count == 1);
    assert_true(npages < MAX_PAGES);
    pages[npages++] = ev.count;
    at = ev.next;
  }
  assert_int_equal(seen, all.count);
  esc_events_release(&ev);
  esc_events_release(&all);
  return npages;
}

static void assert_pages(const size_t *got, size_t ngot, const size_t *want,
                         size_t nwant, const char *what) {
  char text[128] = "";
  for (size_t i = 0, len = 0; i < ngot && len < sizeof text - 8; i++)
    len += (size_t)snprintf(text + len, sizeof text - len, " %zu", got[i]);
  if (ngot != nwant || memcmp(got, want, nwant * sizeof *want) != 0)
    fail_msg("%s: pages of%s events", what, text);
}

#define B 1000 /* the budget of the page tests */
#define N(a) (sizeof(a) / sizeof((a)[0]))

static void pages_are_cut_at_the_byte_budget(void **state) {
  esc_store *st = *state;
  size_t pages[MAX_PAGES], n;
  const size_t exact[] = {B, B, B, B};
  const size_t half[] = {B / 2, B / 2, B / 2, B / 2};
  const size_t above[] = {B / 2 + 1, B / 2 + 1, B / 2 + 1, B / 2 + 1};
  const size_t below[] = {B / 2 - 1, B / 2 - 1, B / 2 - 1,
                          B / 2 - 1, B / 2 - 1, B / 2 - 1};
  const size_t big[] = {200, 3 * B, 200, 200};
  append_sizes(st, "exact-1", exact, N(exact));
  append_sizes(st, "half-1", half, N(half));
  append_sizes(st, "above-1", above, N(above));
  append_sizes(st, "below-1", below, N(below));
  append_sizes(st, "big-1", big, N(big));

  /* exactly at the budget: one event a page */
  n = read_pages(st, "exact", 500, B, pages);
  assert_pages(pages, n, (size_t[]){1, 1, 1, 1}, 4, "events of B");
  /* two halves fill a page exactly */
  n = read_pages(st, "half", 500, B, pages);
  assert_pages(pages, n, (size_t[]){2, 2}, 2, "events of B/2");
  /* a byte more and they no longer do */
  n = read_pages(st, "above", 500, B, pages);
  assert_pages(pages, n, (size_t[]){1, 1, 1, 1}, 4, "events of B/2+1");
  /* a byte less, and a third still does not fit */
  n = read_pages(st, "below", 500, B, pages);
  assert_pages(pages, n, (size_t[]){2, 2, 2}, 3, "events of B/2-1");
  /* one event of 3B comes alone and ends the page before it */
  n = read_pages(st, "big", 500, B, pages);
  assert_pages(pages, n, (size_t[]){1, 1, 2}, 3, "an event of 3B");
  /* the count still bounds; 0 bytes means no byte budget */
  n = read_pages(st, "half", 1, B, pages);
  assert_pages(pages, n, (size_t[]){1, 1, 1, 1}, 4, "max 1");
  n = read_pages(st, "exact", 500, 0, pages);
  assert_pages(pages, n, (size_t[]){4}, 1, "no byte budget");
  /* $all: the same cut over every category, 22 events */
  n = read_pages(st, NULL, 500, 4 * B, pages);
  assert_pages(pages, n, (size_t[]){4, 7, 8, 3}, 4, "$all");
}

/* ------------------------------------------------------------ workers -- */

/* The projection: per event INCR count, INCRBY bytes (its data size),
 * RPUSH seq (its global position, to check once and in order), and
 * `copies` SETs of its whole data (commands as big as the events). */
struct sized {
  int copies;
};

static esc_status handle_sized(esc_projection_ctx *ctx, const esc_event *ev,
                               void *userdata, esc_error *err) {
  (void)err;
  const struct sized *s = userdata;
  const esc_recorded_event *e = ev->recorded;
  const char *count = esc_ctx_key(ctx, "count");
  const char *bytes = esc_ctx_key(ctx, "bytes");
  const char *seq = esc_ctx_key(ctx, "seq");
  const char *len = esc_ctx_i64(ctx, (int64_t)e->data_len);
  const char *at = esc_ctx_i64(ctx, e->position.global);
  esc_status rc = esc_ctx_cmd(ctx, "INCR", count, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "INCRBY", bytes, len, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "RPUSH", seq, at, NULL);
  for (int i = 0; i < s->copies && !rc; i++) {
    const char *key =
        esc_ctx_key(ctx, "copy%d:%lld", i, (long long)e->position.global);
    const char *argv[] = {"SET", key, e->data};
    size_t lens[] = {3, strlen(key), e->data_len};
    rc = esc_ctx_command(ctx, 3, argv, lens);
  }
  return rc;
}

static void log_line(void *userdata, const char *line) {
  (void)userdata;
  fprintf(stderr, "  worker: %s\n", line);
}

/* Runs a worker with the budget (0: the default) until it caught up;
 * returns its stats. */
static esc_worker_stats catch_up(const esc_projection *p, size_t budget) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  esc_worker_stats stats;
  o.schema = schema;
  o.max_batch_bytes = budget;
  if (getenv("ESC_TEST_VERBOSE"))
    o.log = log_line;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w)
    fail_msg("worker: %s", err.msg);
  if (esc_worker_add(w, p, &err) ||
      esc_worker_run_until_caught_up(w, 120000, &err))
    fail_msg("catch up: %s", err.msg);
  esc_worker_get_stats(w, &stats);
  esc_worker_free(w);
  return stats;
}

/* The read model holds each of n events exactly once, in log order, with
 * `bytes` data bytes in all. */
static void assert_applied_once(long long n, long long bytes) {
  long long g = esc_test_redis_ll(redis, -1, "GET %s:generation", base);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:g%lld:count", base, g),
                   n);
  assert_int_equal(esc_test_redis_ll(redis, -1, "GET %s:g%lld:bytes", base, g),
                   bytes);
  redisReply *r = redisCommand(redis, "LRANGE %s:g%lld:seq 0 -1", base, g);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_ARRAY);
  assert_int_equal(r->elements, (size_t)n);
  for (size_t i = 1; i < r->elements; i++)
    if (strtoll(r->element[i - 1]->str, NULL, 10) >=
        strtoll(r->element[i]->str, NULL, 10))
      fail_msg("seq: position %s before %s", r->element[i - 1]->str,
               r->element[i]->str);
  freeReplyObject(r);
}

static void sized_projection(esc_projection *p, struct sized *s,
                             const char *const *categories) {
  *p = (esc_projection){.name = name,
                        .version = 1,
                        .categories = categories,
                        .handle = handle_sized,
                        .userdata = s,
                        .on_error = ESC_ON_ERROR_STOP};
}

#define BIG_EVENTS 100
#define BIG_SIZE 1000000 /* under the store's 1 MiB limit */

/* The case: 100 events of 1 MB read 100 MB at once before. */
static void big_events_are_read_a_few_at_a_time(void **state) {
  esc_store *st = *state;
  static const char *const categories[] = {"big", NULL};
  size_t sizes[BIG_EVENTS];
  for (size_t i = 0; i < BIG_EVENTS; i++)
    sizes[i] = BIG_SIZE;
  append_sizes(st, "big-1", sizes, BIG_EVENTS);
  struct sized s = {0};
  esc_projection p;
  sized_projection(&p, &s, categories);

  esc_worker_stats stats = catch_up(&p, 0);
  assert_applied_once(BIG_EVENTS, (long long)BIG_EVENTS * BIG_SIZE);
  if (stats.peak_read_bytes > ESC_WORKER_BATCH_BYTES_DEFAULT)
    fail_msg("a read held %zu bytes (%zu events), more than the %zu budget",
             stats.peak_read_bytes, stats.peak_read_events,
             ESC_WORKER_BATCH_BYTES_DEFAULT);
  /* 4 MiB holds 4 of them: 25 pages with events, then the empty one */
  assert_int_equal(stats.peak_read_events, 4);
  assert_true(stats.reads >= BIG_EVENTS / 4 + 1);
  assert_true(stats.peak_batch_bytes <= ESC_WORKER_BATCH_BYTES_DEFAULT);
}

#define SMALL_SIZE 10000
#define SMALL_EVENTS 30
#define SMALL_BUDGET 65536

/* Commands as big as three copies of each event: the batch, not only the
 * read, stops at the budget; an event whose commands alone pass it goes
 * alone; a second worker resumes with nothing applied twice. */
static void batches_are_cut_by_their_command_bytes(void **state) {
  esc_store *st = *state;
  size_t sizes[SMALL_EVENTS];
  for (size_t i = 0; i < SMALL_EVENTS; i++)
    sizes[i] = SMALL_SIZE;
  append_sizes(st, "small-1", sizes, SMALL_EVENTS / 2);
  struct sized s = {3};
  esc_projection p;
  sized_projection(&p, &s, NULL);

  esc_worker_stats a = catch_up(&p, SMALL_BUDGET);
  assert_applied_once(SMALL_EVENTS / 2, SMALL_EVENTS / 2 * SMALL_SIZE);
  /* a page holds 6 events (60,000 bytes), a batch 2 (3 x 10,000 bytes of
   * commands each, and a third would pass 65,536) */
  assert_int_equal(a.peak_read_events, 6);
  assert_true(a.peak_read_bytes <= SMALL_BUDGET);
  assert_true(a.peak_batch_bytes <= SMALL_BUDGET);
  assert_true(a.peak_batch_bytes > 2 * 3 * SMALL_SIZE);
  assert_true(a.batches >= SMALL_EVENTS / 2 / 2);

  /* then one event above the budget among the rest: read and applied
   * alone, never stalling the partition */
  append_sizes(st, "small-1", sizes, SMALL_EVENTS / 2 - 1);
  size_t huge = SMALL_BUDGET + 4000;
  append_sizes(st, "small-2", &huge, 1);
  esc_worker_stats b = catch_up(&p, SMALL_BUDGET);
  assert_applied_once(SMALL_EVENTS,
                      (long long)((SMALL_EVENTS - 1) * SMALL_SIZE + huge));
  assert_int_equal(b.peak_read_bytes, huge);
  assert_true(b.peak_batch_bytes >= 3 * huge);
  assert_true(b.peak_batch_bytes <= 3 * huge + 1000);
}

/* A budget Redis could never take is refused with a clear error; the
 * largest allowed one is taken. */
static void absurd_budgets_are_refused(void **state) {
  (void)state;
  const size_t bad[] = {ESC_WORKER_BATCH_BYTES_MAX + 1, SIZE_MAX};
  for (size_t i = 0; i < N(bad); i++) {
    esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
    esc_error err = ESC_ERROR_INIT;
    o.schema = schema;
    o.max_batch_bytes = bad[i];
    assert_null(esc_worker_new(&o, &err));
    assert_int_equal(err.code, ESC_EINVAL);
    assert_non_null(strstr(err.msg, "max_batch_bytes"));
  }
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.max_batch_bytes = ESC_WORKER_BATCH_BYTES_MAX;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  esc_worker_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(pages_are_cut_at_the_byte_budget, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(big_events_are_read_a_few_at_a_time,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(batches_are_cut_by_their_command_bytes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(absurd_budgets_are_refused, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

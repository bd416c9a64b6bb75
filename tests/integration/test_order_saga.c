/*
 * The sample order domain end to end on real servers: the fulfillment saga
 * (happy path, compensation, crashes between its steps and before its
 * checkpoint moved), the six projections as order_query_* reads them, and
 * read-your-writes through order_query_show.
 *
 * The projections' names are fixed, so their keys cannot be made unique
 * per test process: this test works in its own Redis database (3), which
 * it selects through ESC_REDIS_URL before anything connects and flushes
 * (FLUSHDB, that database only) before and after. The event store is a
 * schema of its own.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "order.h"
#include "testenv.h"
#include "worker_thread.h"

#define REDIS_DB "3"
#define PARTITIONS 2

static char schema[48];
static char redis_url[256];
static esc_store *store;
static esc_query *query;
static redisContext *redis;

/* ------------------------------------------------------------------------
 * Set-up: our own Redis database and schema
 * ------------------------------------------------------------------------ */

/* ESC_REDIS_URL (else the default) with its database replaced by ours. */
/* "<namespace>:fulfillment:checkpoint": the saga's checkpoint. */
static char saga_key[ESC_KEY_PREFIX_MAX + 32];

static void pick_redis_db(void) {
  const char *base = esc_default_redis_url();
  const char *host = strstr(base, "://");
  const char *slash = host ? strchr(host + 3, '/') : NULL;
  int len = slash ? (int)(slash - base) : (int)strlen(base);
  snprintf(redis_url, sizeof redis_url, "%.*s/%s", len, base, REDIS_DB);
  setenv("ESC_REDIS_URL", redis_url, 1);
}

static void flush_our_db(void) {
  redisReply *r = redisCommand(redis, "SELECT %s", REDIS_DB);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
  r = redisCommand(redis, "FLUSHDB");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STATUS);
  freeReplyObject(r);
}

static int setup(void **state) {
  (void)state;
  pick_redis_db();
  snprintf(schema, sizeof schema, "t_order_saga_%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  redis = esc_test_redis(redis_url);
  flush_our_db();
  esc_query_options qo = ESC_QUERY_OPTIONS_INIT;
  qo.store = store;
  query = esc_query_new(&qo, NULL);
  assert_non_null(query);
  char ns[ESC_KEY_PREFIX_MAX + 1];
  assert_int_equal(esc_key_namespace(store, NULL, ns, sizeof ns, NULL),
                   ESC_OK);
  snprintf(saga_key, sizeof saga_key, "%s:fulfillment:checkpoint", ns);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  flush_our_db();
  redisFree(redis);
  esc_query_free(query);
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* ------------------------------------------------------------------------
 * Helpers: commands, state, the worker, the saga
 * ------------------------------------------------------------------------ */

static esc_status exec_cmd(const esc_decider *d, const char *stream,
                           const void *cmd, const esc_uuid *id,
                           esc_command_result *res) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  if (id)
    o.command_id = *id;
  esc_status rc = esc_execute(store, d, stream, cmd, &o, res, &err);
  if (rc && rc != ESC_EREJECTED)
    fail_msg("execute on %s: %s", stream, err.msg);
  return rc;
}

static esc_command_result order_ok(const char *id, const order_cmd *cmd) {
  char stream[96];
  esc_command_result res;
  snprintf(stream, sizeof stream, "order-%s", id);
  if (exec_cmd(order_decider(), stream, cmd, NULL, &res))
    fail_msg("order %s: rejected: %s", id, res.domain_msg);
  return res;
}

static void stock_in(const char *sku, int64_t qty) {
  char stream[64];
  esc_command_result res;
  inventory_cmd cmd = {INVENTORY_STOCK_IN, qty, NULL};
  snprintf(stream, sizeof stream, "inventory-%s", sku);
  assert_int_equal(exec_cmd(inventory_decider(), stream, &cmd, NULL, &res),
                   ESC_OK);
}

static esc_command_result place(const char *id, const char *customer,
                                const order_line *lines, int n) {
  order_cmd cmd = {.kind = ORDER_PLACE,
                   .customer = customer,
                   .lines = lines,
                   .line_count = n};
  return order_ok(id, &cmd);
}

static esc_command_result simple(const char *id, order_cmd_kind kind) {
  order_cmd cmd = {.kind = kind};
  return order_ok(id, &cmd);
}

static esc_command_result pay(const char *id, int64_t amount) {
  order_cmd cmd = {.kind = ORDER_PAY, .amount = amount};
  return order_ok(id, &cmd);
}

static inventory_state stock_of(const char *sku) {
  char stream[64];
  inventory_state s;
  esc_error err = ESC_ERROR_INIT;
  snprintf(stream, sizeof stream, "inventory-%s", sku);
  memset(&s, 0, sizeof s);
  if (esc_load_state(store, inventory_decider(), stream, &s, NULL, &err))
    fail_msg("load %s: %s", stream, err.msg);
  return s;
}

static order_state order_of(const char *id) {
  char stream[96];
  order_state s;
  esc_error err = ESC_ERROR_INIT;
  snprintf(stream, sizeof stream, "order-%s", id);
  memset(&s, 0, sizeof s);
  if (esc_load_state(store, order_decider(), stream, &s, NULL, &err))
    fail_msg("load %s: %s", stream, err.msg);
  return s;
}

static int64_t version_of(const char *stream) {
  esc_stream_info info;
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = esc_stream_get(store, stream, &info, &err);
  if (rc == ESC_ENOTFOUND)
    return 0;
  if (rc)
    fail_msg("stream %s: %s", stream, err.msg);
  return info.version;
}

/* The newest event of a stream (the caller releases *ev). */
static const esc_recorded_event *last_event(const char *stream,
                                            esc_events *ev) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_read_stream(store, stream, 0, ESC_BACKWARD, 1, ev, &err))
    fail_msg("read %s: %s", stream, err.msg);
  assert_int_equal(ev->count, 1);
  return &ev->items[0];
}

/* The id of the order's OrderConfirmed (its newest event right after the
 * confirmation). */
static esc_uuid confirmed_id(const char *id) {
  char stream[96];
  esc_events ev = ESC_EVENTS_INIT;
  snprintf(stream, sizeof stream, "order-%s", id);
  const esc_recorded_event *rec = last_event(stream, &ev);
  assert_string_equal(rec->type, ORDER_CONFIRMED.name);
  esc_uuid out = rec->id;
  esc_events_release(&ev);
  return out;
}

/*
 * Waits until every event of the schema is readable by subscribers. The
 * horizon is database-wide: another test's open transaction holds it
 * back for a while, and a saga or worker run before then would stop
 * short of our newest events.
 */
static void wait_readable(void) {
  long long deadline = esc_test_now_ms() + 30000;
  for (;;) {
    esc_store_stats st;
    esc_error err = ESC_ERROR_INIT;
    if (esc_store_stats_get(store, &st, &err))
      fail_msg("stats: %s", err.msg);
    if (st.events == 0 || st.head.global >= st.max_global)
      return;
    if (esc_test_now_ms() > deadline)
      fail_msg("events up to %lld stored, readable only up to %lld after 30 "
               "s (held back by pid %d: %s)",
               (long long)st.max_global, (long long)st.head.global,
               st.holder_pid, st.holder_query);
    esc_test_sleep_ms(50);
  }
}

static esc_worker *new_worker(void) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.poll_ms = 100;
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w)
    fail_msg("worker: %s", err.msg);
  const esc_projection *p = order_projections(PARTITIONS);
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++)
    if (esc_worker_add(w, &p[i], &err))
      fail_msg("add %s: %s", p[i].name, err.msg);
  return w;
}

/* Projects everything written so far. */
static void catch_up(void) {
  wait_readable();
  esc_worker *w = new_worker();
  esc_error err = ESC_ERROR_INIT;
  if (esc_worker_run_until_caught_up(w, 30000, &err))
    fail_msg("catch up: %s", err.msg);
  esc_worker_free(w);
}

static order_saga *new_saga(void) {
  esc_error err = ESC_ERROR_INIT;
  order_saga *s = order_saga_new(store, NULL, &err);
  if (!s)
    fail_msg("saga: %s", err.msg);
  return s;
}

/* Steps (max events each) until a step finds nothing; returns how many
 * events were handled. */
static size_t drain(order_saga *s, size_t max) {
  size_t total = 0, n = 0;
  esc_error err = ESC_ERROR_INIT;
  do {
    if (order_saga_step(s, max, &n, &err))
      fail_msg("saga step: %s", err.msg);
    total += n;
  } while (n > 0);
  return total;
}

/* Drains until a pass that started with everything readable (the
 * saga's own events included) finds nothing. */
static size_t drain_all(order_saga *s, size_t max) {
  size_t total = 0, n;
  do {
    wait_readable();
    n = drain(s, max);
    total += n;
  } while (n > 0);
  return total;
}

/* A fresh saga instance drains the log and goes away. */
static size_t run_saga(void) {
  order_saga *s = new_saga();
  size_t n = drain_all(s, 0);
  order_saga_free(s);
  return n;
}

/* The saga's checkpoint in Redis, malloc'ed; NULL when absent. */
static char *saga_checkpoint(void) {
  redisReply *r = redisCommand(redis, "GET %s", saga_key);
  assert_non_null(r);
  char *out = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
  freeReplyObject(r);
  return out;
}

/* "Crashes" the saga after it acted but before its checkpoint moved: puts
 * back the checkpoint saved before (NULL: none). */
static void restore_checkpoint(const char *saved) {
  redisReply *r =
      saved ? redisCommand(redis, "SET %s %s", saga_key, saved)
            : redisCommand(redis, "DEL %s", saga_key);
  assert_non_null(r);
  assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
  freeReplyObject(r);
}

static order_view show(const char *id) {
  order_view v;
  esc_error err = ESC_ERROR_INIT;
  if (order_query_show(query, id, &v, &err))
    fail_msg("show %s: %s", id, err.msg);
  return v;
}

static int64_t stock_level(const char *sku) {
  int64_t n = -1;
  esc_error err = ESC_ERROR_INIT;
  if (order_query_stock(query, sku, &n, &err))
    fail_msg("stock %s: %s", sku, err.msg);
  return n;
}

static int64_t status_count(const char *status) {
  int64_t n = -1;
  esc_error err = ESC_ERROR_INIT;
  if (order_query_status_count(query, status, &n, &err))
    fail_msg("status %s: %s", status, err.msg);
  return n;
}

static bool in_status(const char *status, const char *id) {
  char suffix[32];
  esc_query_items set = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  bool found = false;
  snprintf(suffix, sizeof suffix, "status:%s", status);
  if (esc_query_set(query, "orders_by_status", suffix, &set, &err))
    fail_msg("status set %s: %s", status, err.msg);
  for (size_t i = 0; i < set.count; i++)
    found = found || strcmp(set.items[i].name, id) == 0;
  esc_query_items_release(&set);
  return found;
}

static void today(char out[16]) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, 16, "%Y-%m-%d", &tm);
}

/* ------------------------------------------------------------------------
 * (a) The happy path
 * ------------------------------------------------------------------------ */

static void fulfils_an_order(void **state) {
  (void)state;
  stock_in("ha", 10);
  stock_in("hb", 5);
  order_line lines[] = {{"ha", 2, 300}, {"hb", 1, 1000}};
  place("h1", "alice", lines, 2);
  simple("h1", ORDER_CONFIRM);
  assert_true(run_saga() >= 2);

  order_state o = order_of("h1");
  assert_int_equal(o.status, ORDER_STATUS_READY);
  assert_true(o.reserved);
  inventory_state a = stock_of("ha"), b = stock_of("hb");
  assert_int_equal(a.available, 8);
  assert_int_equal(a.reserved, 2);
  assert_int_equal(b.available, 4);
  assert_int_equal(b.reserved, 1);

  /* The saga's commands carry the trigger's correlation and its actor. */
  esc_events ev = ESC_EVENTS_INIT;
  esc_metadata meta, trigger_meta;
  char actor[32];
  assert_int_equal(
      esc_read_stream(store, "order-h1", 2, ESC_FORWARD, 1, &ev, NULL), ESC_OK);
  assert_string_equal(ev.items[0].type, ORDER_CONFIRMED.name);
  assert_int_equal(esc_metadata_decode(ev.items[0].metadata,
                                       ev.items[0].metadata_len, &trigger_meta,
                                       NULL, 0, NULL),
                   ESC_OK);
  const esc_recorded_event *rec = last_event("inventory-ha", &ev);
  assert_int_equal(esc_metadata_decode(rec->metadata, rec->metadata_len, &meta,
                                       actor, sizeof actor, NULL),
                   ESC_OK);
  assert_string_equal(actor, "fulfillment");
  assert_memory_equal(meta.correlation_id.bytes,
                      trigger_meta.correlation_id.bytes, 16);
  esc_events_release(&ev);

  catch_up();
  order_view v = show("h1");
  assert_string_equal(v.id, "h1");
  assert_string_equal(v.customer, "alice");
  assert_string_equal(v.status, "ready");
  assert_string_equal(v.currency, "EUR");
  assert_int_equal(v.total, 1600);
  assert_int_equal(v.lines, 2);
  assert_int_equal(v.paid, 0);
  assert_int_equal(stock_level("ha"), 8);
  assert_int_equal(stock_level("hb"), 4);
  assert_true(in_status("ready", "h1"));
  assert_false(in_status("confirmed", "h1"));

  pay("h1", 1600);
  order_cmd ship = {.kind = ORDER_SHIP, .carrier = "dhl"};
  order_ok("h1", &ship);
  run_saga();
  catch_up();
  v = show("h1");
  assert_string_equal(v.status, "shipped");
  assert_int_equal(v.paid, 1600);
  assert_int_equal(status_count("shipped"), 1);
  assert_int_equal(status_count("ready"), 0);

  esc_query_items top = ESC_QUERY_ITEMS_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(order_query_top_products(query, 5, &top, &err), ESC_OK);
  assert_int_equal(top.count, 2);
  assert_string_equal(top.items[0].name, "ha");
  assert_true(top.items[0].score == 2.0);
  assert_string_equal(top.items[1].name, "hb");
  esc_query_items_release(&top);

  char day[16];
  int64_t cents = 0;
  today(day);
  assert_int_equal(order_query_revenue(query, day, &cents, &err), ESC_OK);
  assert_int_equal(cents, 1600);

  char **ids = NULL;
  size_t n = 0;
  assert_int_equal(order_query_of_customer(query, "alice", &ids, &n, &err),
                   ESC_OK);
  assert_int_equal(n, 1);
  assert_string_equal(ids[0], "h1");
  order_query_free_ids(ids, n);
  assert_int_equal(order_query_show(query, "nope", &v, &err), ESC_ENOTFOUND);
}

/* Paid before the saga reserved: the order stays paid (order_state's rule),
 * in the status sets and in order_query_show. */
/* A customer cancelling an order that was marked ready gets its stock
 * released, once, even when the saga sees the cancellation twice. */
static void cancelling_a_ready_order_releases_its_stock(void **state) {
  (void)state;
  stock_in("rca", 6);
  order_line lines[] = {{"rca", 4, 100}};
  place("rc1", "carol", lines, 1);
  simple("rc1", ORDER_CONFIRM);
  run_saga();
  assert_int_equal(stock_of("rca").available, 2);
  order_cmd cancel = {.kind = ORDER_CANCEL, .reason = "changed my mind"};
  order_ok("rc1", &cancel);
  char *saved = saga_checkpoint();
  run_saga();
  inventory_state a = stock_of("rca");
  assert_int_equal(a.available, 6);
  assert_int_equal(a.reserved, 0);
  restore_checkpoint(saved); /* the saga crashed before its checkpoint */
  free(saved);
  run_saga();
  assert_int_equal(stock_of("rca").available, 6);
}

static void paid_before_ready_stays_paid(void **state) {
  (void)state;
  stock_in("pa", 3);
  order_line line = {"pa", 3, 100};
  place("p1", "bob", &line, 1);
  simple("p1", ORDER_CONFIRM);
  pay("p1", 300);
  run_saga();
  order_state o = order_of("p1");
  assert_int_equal(o.status, ORDER_STATUS_PAID);
  assert_true(o.reserved);
  catch_up();
  order_view v = show("p1");
  assert_string_equal(v.status, order_status_name(o.status));
  assert_true(in_status("paid", "p1"));
  assert_false(in_status("ready", "p1"));
  assert_false(in_status("confirmed", "p1"));
  assert_int_equal(stock_level("pa"), 0);
}

/* ------------------------------------------------------------------------
 * (b) Compensation
 * ------------------------------------------------------------------------ */

static void compensates_when_stock_is_short(void **state) {
  (void)state;
  stock_in("ca", 5);
  stock_in("cb", 1);
  order_line lines[] = {{"ca", 2, 100}, {"cb", 3, 100}};
  place("c1", "carol", lines, 2);
  simple("c1", ORDER_CONFIRM);
  run_saga();

  order_state o = order_of("c1");
  assert_int_equal(o.status, ORDER_STATUS_CANCELLED);
  assert_false(o.reserved);
  inventory_state a = stock_of("ca"), b = stock_of("cb");
  assert_int_equal(a.available, 5); /* reserved, then released */
  assert_int_equal(a.reserved, 0);
  assert_int_equal(version_of("inventory-ca"), 3);
  assert_int_equal(b.available, 1); /* refused: nothing stored */
  assert_int_equal(version_of("inventory-cb"), 1);

  esc_events ev = ESC_EVENTS_INIT;
  const esc_recorded_event *rec = last_event("order-c1", &ev);
  assert_string_equal(rec->type, ORDER_CANCELLED.name);
  msgpack_zone zone;
  msgpack_zone_init(&zone, 1024);
  order_cancelled c;
  const esc_event_type *type;
  assert_int_equal(
      esc_event_decode(order_events(), rec, &zone, &c, &type, NULL), ESC_OK);
  assert_string_equal(c.reason, "insufficient stock for cb");
  assert_int_equal(c.refund, 0);
  msgpack_zone_destroy(&zone);
  esc_events_release(&ev);

  catch_up();
  assert_string_equal(show("c1").status, "cancelled");
  assert_true(in_status("cancelled", "c1"));
  assert_false(in_status("confirmed", "c1"));
  assert_int_equal(stock_level("ca"), 5);
  assert_int_equal(stock_level("cb"), 1);
}

/* ------------------------------------------------------------------------
 * (c) Crashes
 * ------------------------------------------------------------------------ */

/* The saga crashed right after its first reservation: the replay finds
 * that command's first result and reserves nothing twice. */
static void replays_after_a_crash_between_steps(void **state) {
  (void)state;
  stock_in("xa", 10);
  stock_in("xb", 10);
  order_line lines[] = {{"xa", 3, 100}, {"xb", 4, 100}};
  place("x1", "dave", lines, 2);
  simple("x1", ORDER_CONFIRM);
  esc_uuid trigger = confirmed_id("x1");

  /* What the saga's first step would have done. */
  esc_uuid step = esc_uuid_v5(&trigger, "reserve:xa", strlen("reserve:xa"));
  inventory_cmd reserve = {INVENTORY_RESERVE, 3, "x1"};
  esc_command_result res;
  assert_int_equal(
      exec_cmd(inventory_decider(), "inventory-xa", &reserve, &step, &res),
      ESC_OK);
  assert_false(res.duplicate);

  run_saga();
  inventory_state a = stock_of("xa"), b = stock_of("xb");
  assert_int_equal(a.reserved, 3); /* once */
  assert_int_equal(a.available, 7);
  assert_int_equal(version_of("inventory-xa"), 2);
  assert_int_equal(b.reserved, 4);
  assert_int_equal(order_of("x1").status, ORDER_STATUS_READY);
}

/* The saga handled everything but died before its checkpoint moved: a new
 * instance (stepping one event at a time) issues nothing again. */
static void replays_after_a_crash_before_the_checkpoint(void **state) {
  (void)state;
  run_saga(); /* start from a settled checkpoint */
  char *saved = saga_checkpoint();
  stock_in("ka", 4);
  stock_in("kb", 4);
  order_line lines[] = {{"ka", 1, 250}, {"kb", 2, 250}};
  place("k1", "erin", lines, 2);
  simple("k1", ORDER_CONFIRM);
  order_line one = {"ka", 1, 100};
  place("k2", "erin", &one, 1);
  simple("k2", ORDER_CONFIRM);
  /* placed and confirmed twice, then the two OrderReady it wrote */
  assert_int_equal(run_saga(), 6);
  int64_t va = version_of("inventory-ka"), vb = version_of("inventory-kb");
  int64_t v1 = version_of("order-k1"), v2 = version_of("order-k2");
  assert_int_equal(va, 3);

  restore_checkpoint(saved);
  order_saga *s = new_saga();
  size_t n = drain_all(s, 1);
  order_saga_free(s);
  assert_int_equal(n, 6); /* the same events, and no new ones */
  assert_int_equal(version_of("inventory-ka"), va);
  assert_int_equal(version_of("inventory-kb"), vb);
  assert_int_equal(version_of("order-k1"), v1);
  assert_int_equal(version_of("order-k2"), v2);
  assert_int_equal(stock_of("ka").reserved, 2);
  assert_int_equal(stock_of("kb").reserved, 2);
  free(saved);
}

/* Compensation replayed after the missing stock came in: a retried
 * command id returns its first outcome, a rejection included (#11 item
 * 4), so the reservation the first run was refused is refused again
 * rather than decided anew on the new stock, and the replay does exactly
 * what the first run did: nothing new, each release once. (Before, the
 * replay got that reservation and had to release it again: inventory-gb
 * went to version 3.) */
static void replays_an_interrupted_compensation(void **state) {
  (void)state;
  run_saga();
  char *saved = saga_checkpoint();
  stock_in("ga", 5);
  order_line lines[] = {{"ga", 2, 100}, {"gb", 1, 100}};
  place("g1", "fay", lines, 2);
  simple("g1", ORDER_CONFIRM);
  run_saga();
  assert_int_equal(order_of("g1").status, ORDER_STATUS_CANCELLED);
  assert_int_equal(stock_of("ga").reserved, 0);

  restore_checkpoint(saved);
  stock_in("gb", 1);
  run_saga();
  inventory_state a = stock_of("ga"), b = stock_of("gb");
  assert_int_equal(a.reserved, 0);
  assert_int_equal(a.available, 5);
  assert_int_equal(version_of("inventory-ga"), 3); /* in, reserve, release */
  assert_int_equal(b.reserved, 0);
  assert_int_equal(b.available, 1);
  assert_int_equal(version_of("inventory-gb"), 1); /* in: no reservation */
  assert_int_equal(order_of("g1").status, ORDER_STATUS_CANCELLED);

  /* Once more from the same point: nothing at all happens now. */
  restore_checkpoint(saved);
  run_saga();
  assert_int_equal(version_of("inventory-ga"), 3);
  assert_int_equal(version_of("inventory-gb"), 1);
  free(saved);
}

/* Crashed in the middle of the compensation, after the cancel and before
 * any release (the steps done by hand with the saga's ids); the stock
 * came in meanwhile. The replay must not mark the order ready, and must
 * give back everything. */
static void replays_a_compensation_cut_after_the_cancel(void **state) {
  (void)state;
  run_saga();
  stock_in("ja", 5);
  order_line lines[] = {{"ja", 2, 100}, {"jb", 1, 100}};
  place("j1", "hal", lines, 2);
  simple("j1", ORDER_CONFIRM);
  esc_uuid trigger = confirmed_id("j1");
  esc_uuid reserve_id = esc_uuid_v5(&trigger, "reserve:ja", 10);
  esc_uuid cancel_id = esc_uuid_v5(&trigger, "cancel", 6);
  inventory_cmd reserve = {INVENTORY_RESERVE, 2, "j1"};
  order_cmd cancel = {.kind = ORDER_CANCEL,
                      .reason = "insufficient stock for jb"};
  esc_command_result res;
  assert_int_equal(exec_cmd(inventory_decider(), "inventory-ja", &reserve,
                            &reserve_id, &res),
                   ESC_OK);
  assert_int_equal(
      exec_cmd(order_decider(), "order-j1", &cancel, &cancel_id, &res), ESC_OK);
  stock_in("jb", 1);

  run_saga();
  assert_int_equal(order_of("j1").status, ORDER_STATUS_CANCELLED);
  assert_int_equal(version_of("order-j1"), 3); /* placed, confirmed, cancel */
  inventory_state a = stock_of("ja"), b = stock_of("jb");
  assert_int_equal(a.reserved, 0);
  assert_int_equal(a.available, 5);
  assert_int_equal(b.reserved, 0);
  assert_int_equal(b.available, 1);
}

/* ------------------------------------------------------------------------
 * (d) Read-your-writes
 * ------------------------------------------------------------------------ */

static order_view show_after(const esc_command_result *res, const char *id) {
  esc_error err = ESC_ERROR_INIT;
  if (esc_query_wait(query, "order_details", PARTITIONS, &res->position, 10000,
                     &err))
    fail_msg("wait for %s: %s", id, err.msg);
  return show(id);
}

static void reads_its_own_writes(void **state) {
  (void)state;
  esc_test_worker_thread r;
  esc_test_worker_thread_start(&r, new_worker());

  order_line lines[] = {{"ra", 2, 150}, {"rb", 1, 700}};
  esc_command_result res = place("r1", "gus", lines, 2);
  order_view v = show_after(&res, "r1");
  assert_string_equal(v.status, "placed");
  assert_int_equal(v.total, 1000);
  assert_int_equal(v.lines, 2);

  order_cmd add = {.kind = ORDER_ADD_ITEM, .line = {"rc", 3, 10}};
  res = order_ok("r1", &add);
  v = show_after(&res, "r1");
  assert_int_equal(v.total, 1030);
  assert_int_equal(v.lines, 3);

  order_cmd remove = {.kind = ORDER_REMOVE_ITEM, .line = {"rb", 0, 0}};
  res = order_ok("r1", &remove);
  v = show_after(&res, "r1");
  assert_int_equal(v.total, 330); /* the removed line's worth is gone */
  assert_int_equal(v.lines, 2);

  res = simple("r1", ORDER_CONFIRM);
  v = show_after(&res, "r1");
  assert_string_equal(v.status, "confirmed");
  assert_int_equal(v.total, 330);

  /* Revenue: the payment, then the refund on the cancellation's day. */
  char day[16];
  int64_t paid_in = 0, after_refund = 0;
  esc_error err = ESC_ERROR_INIT;
  today(day);
  res = pay("r1", 330);
  v = show_after(&res, "r1");
  assert_string_equal(v.status, "paid");
  assert_int_equal(v.paid, 330);
  assert_int_equal(
      esc_query_wait(query, "revenue", PARTITIONS, &res.position, 10000, &err),
      ESC_OK);
  assert_int_equal(order_query_revenue(query, day, &paid_in, &err), ESC_OK);

  order_cmd cancel = {.kind = ORDER_CANCEL, .reason = "changed my mind"};
  res = order_ok("r1", &cancel);
  v = show_after(&res, "r1");
  assert_string_equal(v.status, "cancelled");
  assert_int_equal(
      esc_query_wait(query, "revenue", PARTITIONS, &res.position, 10000, &err),
      ESC_OK);
  assert_int_equal(order_query_revenue(query, day, &after_refund, &err),
                   ESC_OK);

  esc_test_worker_thread_stop(&r);
  assert_int_equal(r.rc, ESC_OK);
  esc_worker_free(r.w);
  char now[16];
  today(now);
  if (strcmp(day, now) == 0) /* unless the day turned meanwhile */
    assert_int_equal(after_refund, paid_in - 330);
}

/* The saga's Redis URL follows the worker's rules and errors. */
static void a_bad_redis_url_is_refused(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  assert_null(order_saga_new(store, "http://127.0.0.1:63799", &err));
  assert_int_equal(err.code, ESC_EINVAL);
  assert_non_null(strstr(err.msg, "redis://"));
  assert_null(order_saga_new(store, "redis://127.0.0.1:1", &err));
  assert_int_equal(err.code, ESC_ECONN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cancelling_a_ready_order_releases_its_stock),
      cmocka_unit_test(fulfils_an_order),
      cmocka_unit_test(paid_before_ready_stays_paid),
      cmocka_unit_test(compensates_when_stock_is_short),
      cmocka_unit_test(replays_after_a_crash_between_steps),
      cmocka_unit_test(replays_after_a_crash_before_the_checkpoint),
      cmocka_unit_test(replays_an_interrupted_compensation),
      cmocka_unit_test(replays_a_compensation_cut_after_the_cancel),
      cmocka_unit_test(reads_its_own_writes),
      cmocka_unit_test(a_bad_redis_url_is_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

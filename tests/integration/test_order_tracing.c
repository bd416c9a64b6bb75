/*
 * Tracing one order by its correlation id, with the programs a user runs
 * (#14 item 4): order-cli places and confirms an order with
 * --correlation-id K, order-worker --once runs the fulfillment process,
 * and `esc tail --all --json` is filtered by metadata.correlation_id = K,
 * as docs/operations.md ("Tracing an order by correlation id") does with
 * jq. What it finds must be the customer's events, the process instance's
 * records and the reservation (and ready) events the process's commands
 * appended, and every causation id of the process's part must name an
 * event of the trace, back to the customer's OrderConfirmed, whose
 * causation is the confirm command's id.
 *
 * And `esc read --json` shows a command's correlation, causation and
 * custom fields as esc_execute stored them.
 *
 * The schema is the test's own, so its Redis keys (the store's namespace)
 * are too; they are deleted at the end.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "order.h"
#include "testenv.h"

#define MAX_LINES 256

static char schema[48];
static esc_store *store;

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_trace_%d", (int)getpid());
  store = esc_test_fresh_store(schema);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char ns[ESC_KEY_PREFIX_MAX + 2];
  esc_error err = ESC_ERROR_INIT;
  if (esc_key_namespace(store, NULL, ns, sizeof ns - 1, &err) == ESC_OK) {
    redisContext *c = esc_test_redis(esc_default_redis_url());
    strcat(ns, ":");
    esc_test_redis_delete_prefix(c, ns);
    redisFree(c);
  }
  esc_store_free(store);
  esc_test_drop_schema(schema);
  return 0;
}

/* ------------------------------------------------------------------------
 * Running the programs
 * ------------------------------------------------------------------------ */

/* Runs "PROGRAM --schema S ARGS" through the shell; returns its stdout
 * (free it) after checking its exit code. */
static char *run(const char *program, const char *args, int want_exit) {
  char cmd[1024];
  int status = 0;
  snprintf(cmd, sizeof cmd, "%s --schema %s %s", program, schema, args);
  char *out = esc_test_command_output(cmd, &status);
  if (status != want_exit)
    fail_msg("%s: exit %d, wanted %d; stdout: %s", cmd, status, want_exit,
             out);
  return out;
}

static void run_ok(const char *program, const char *args) {
  free(run(program, args, 0));
}

/* ------------------------------------------------------------------------
 * The trace: the events of `esc tail --all --json` with one correlation
 * ------------------------------------------------------------------------ */

typedef struct trace {
  json_t *lines[MAX_LINES];
  size_t count;
} trace;

static const char *str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

static const char *meta(const json_t *line, const char *key) {
  return str(json_object_get(line, "metadata"), key);
}

static void trace_load(trace *t, const char *correlation) {
  char *out = run(ESC_CLI_PATH, "tail --all --json", 0);
  t->count = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    if (!o)
      fail_msg("esc tail --json printed a line that is not JSON: %s (%s)",
               line, jerr.text);
    if (strcmp(meta(o, "correlation_id"), correlation) != 0) {
      json_decref(o);
      continue;
    }
    assert_true(t->count < MAX_LINES);
    t->lines[t->count++] = o;
  }
  free(out);
}

static void trace_release(trace *t) {
  for (size_t i = 0; i < t->count; i++)
    json_decref(t->lines[i]);
  t->count = 0;
}

/* The line with event id `id`, or NULL. */
static const json_t *by_id(const trace *t, const char *id) {
  for (size_t i = 0; i < t->count; i++)
    if (strcmp(str(t->lines[i], "id"), id) == 0)
      return t->lines[i];
  return NULL;
}

/* How many lines of type (and, when not NULL, stream) there are; *last
 * the last of them. */
static size_t count_of(const trace *t, const char *type, const char *stream,
                       const json_t **last) {
  size_t n = 0;
  for (size_t i = 0; i < t->count; i++) {
    const json_t *o = t->lines[i];
    if (strcmp(str(o, "type"), type) != 0 ||
        (stream && strcmp(str(o, "stream"), stream) != 0))
      continue;
    n++;
    if (last)
      *last = o;
  }
  return n;
}

/* Follows causation ids from line through the trace; returns the first
 * causation id that is not an event of the trace (the chain's root). */
static const char *root_cause(const trace *t, const json_t *line) {
  for (size_t steps = 0; steps <= t->count; steps++) {
    const char *cause = meta(line, "causation_id");
    const json_t *up = by_id(t, cause);
    if (!up)
      return cause;
    line = up;
  }
  fail_msg("the causation ids of the trace go round in a circle");
  return NULL;
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

static void an_order_is_traced_through_its_fulfillment(void **state) {
  (void)state;
  char k[37], confirm_id[37], args[256];
  esc_uuid kid = esc_uuid_v4(), cid = esc_uuid_v4();
  esc_uuid_format(&kid, k);
  esc_uuid_format(&cid, confirm_id);
  run_ok(ORDER_CLI_PATH, "stock-in book-1 5");
  run_ok(ORDER_CLI_PATH, "stock-in pen-2 5");
  snprintf(args, sizeof args,
           "place o-1 ann book-1:2:1250 pen-2:1:150 --correlation-id %s", k);
  run_ok(ORDER_CLI_PATH, args);
  snprintf(args, sizeof args, "confirm o-1 --correlation-id %s --command-id %s",
           k, confirm_id);
  run_ok(ORDER_CLI_PATH, args);
  run_ok(ORDER_WORKER_PATH, "--once --payment-timeout 1h 2>/dev/null");

  trace t;
  trace_load(&t, k);
  /* The customer's two events, nothing of the stock-ins. */
  const json_t *confirmed = NULL, *ready = NULL, *received = NULL;
  assert_int_equal(count_of(&t, "OrderPlaced", "order-o-1", NULL), 1);
  assert_int_equal(count_of(&t, "OrderConfirmed", "order-o-1", &confirmed), 1);
  assert_int_equal(count_of(&t, "StockAdded", NULL, NULL), 0);
  assert_string_equal(meta(confirmed, "causation_id"), confirm_id);
  assert_string_equal(meta(confirmed, "actor"), "order-cli");
  const char *e = str(confirmed, "id");

  /* The instance stream: it received the OrderConfirmed. */
  assert_int_equal(count_of(&t, "EventReceived", "process:fulfillment-o-1",
                            &received),
                   1);
  assert_string_equal(meta(received, "causation_id"), e);
  assert_int_equal(count_of(&t, "CommandIssued", NULL, NULL), 3);
  assert_int_equal(count_of(&t, "CommandOutcome", NULL, NULL), 3);

  /* One reservation per line, each caused by the OrderConfirmed. */
  const json_t *book = NULL, *pen = NULL;
  assert_int_equal(count_of(&t, "StockReserved", "inventory-book-1", &book), 1);
  assert_int_equal(count_of(&t, "StockReserved", "inventory-pen-2", &pen), 1);
  assert_string_equal(meta(book, "causation_id"), e);
  assert_string_equal(meta(pen, "causation_id"), e);
  assert_string_equal(meta(book, "actor"), "process:fulfillment");

  /* Ready once both answered: caused by the last reservation's outcome,
   * a record of the instance stream, whose cause is its CommandIssued. */
  assert_int_equal(count_of(&t, "OrderReady", "order-o-1", &ready), 1);
  const json_t *outcome = by_id(&t, meta(ready, "causation_id"));
  assert_non_null(outcome);
  assert_string_equal(str(outcome, "type"), "CommandOutcome");
  const json_t *issued = by_id(&t, meta(outcome, "causation_id"));
  assert_non_null(issued);
  assert_string_equal(str(issued, "type"), "CommandIssued");
  assert_string_equal(meta(issued, "causation_id"), e);

  /* Everything the process did goes back to the confirm command. */
  for (size_t i = 0; i < t.count; i++)
    if (strcmp(meta(t.lines[i], "actor"), "process:fulfillment") == 0)
      assert_string_equal(root_cause(&t, t.lines[i]), confirm_id);
  trace_release(&t);
}

static void read_json_shows_ids_and_fields(void **state) {
  (void)state;
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  esc_command_result res;
  esc_error err = ESC_ERROR_INIT;
  esc_metadata_field fields[] = {{"tenant", "acme"}, {"channel", "web"}};
  char corr[37], cause[37];
  o.correlation_id = esc_uuid_v4();
  o.causation_id = esc_uuid_v4();
  o.metadata = fields;
  o.metadata_count = 2;
  esc_uuid_format(&o.correlation_id, corr);
  esc_uuid_format(&o.causation_id, cause);
  inventory_cmd cmd = {INVENTORY_STOCK_IN, 3, NULL};
  if (esc_execute(store, inventory_decider(), "inventory-mug-3", &cmd, &o,
                  &res, &err))
    fail_msg("stock-in: %s", err.msg);

  char *out = run(ESC_CLI_PATH, "read inventory-mug-3 --json", 0);
  json_error_t jerr;
  json_t *line = json_loads(out, JSON_DISABLE_EOF_CHECK, &jerr);
  if (!line)
    fail_msg("esc read --json: %s: %s", jerr.text, out);
  const json_t *m = json_object_get(line, "metadata");
  assert_string_equal(str(m, "correlation_id"), corr);
  assert_string_equal(str(m, "causation_id"), cause);
  const json_t *f = json_object_get(m, "fields");
  assert_string_equal(str(f, "tenant"), "acme");
  assert_string_equal(str(f, "channel"), "web");
  json_decref(line);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(an_order_is_traced_through_its_fulfillment),
      cmocka_unit_test(read_json_shows_ids_and_fields),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

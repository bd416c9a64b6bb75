/*
 * The soak's history checker (tests/soak/checker.h) on histories with a
 * known answer: a consistent run passes clean, and every doctored copy of
 * it — a lost ack, a duplicate, a reorder, a gap, a follower that skipped
 * or repeated, a refused append that is stored, a retry that did not
 * return the original, a real-time inversion, a wrong conflict, a broken
 * read model, ... — is caught as the anomaly it is. A checker that cannot
 * fail proves nothing. No server: the records are parsed from JSON lines
 * as the soak writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checker.h"

/* ------------------------------------------------------------------------
 * A consistent run: tally-a (category tally) and misc-b (category misc).
 *
 *   op1  c1  tally-a no-stream  e1 e2  ok v1..2 at 10/1..10/2
 *   op2  c2  misc-b  any        e3     ok v1 at 11/3
 *   op3  c1  tally-a 2          e4     unknown, then ok (duplicate) v3 12/4
 *   op4  c2  tally-a 2          e5     conflict
 *   op5  c1  tally-a exists     e6     pending (the client died): absent
 *   op6  c2  misc-b  exists     e7     ok v2 at 14/5
 *   op7  cli tally-a any        e8     ok v4 at 15/6 (no first_global)
 *   op8  c2  misc-b  0          e9     conflict
 * ------------------------------------------------------------------------ */

#define ID(k) "00000000-0000-4000-8000-00000000000" #k
#define EV(k, n, item) "{\"id\":\"" ID(k) "\",\"data\":{\"n\":" #n ",\"item\":\"" item "\"}}"
#define INVOKE(op, client, att, t, stream, exp, events)                        \
  "{\"rec\":\"invoke\",\"op\":\"" op "\",\"client\":\"" client                  \
  "\",\"attempt\":" #att ",\"t\":" #t ",\"stream\":\"" stream                  \
  "\",\"expected\":" exp ",\"events\":[" events "]}\n"
#define OK(op, att, t, fv, lv, pos, fg, dup)                                   \
  "{\"rec\":\"complete\",\"op\":\"" op "\",\"attempt\":" #att ",\"t\":" #t     \
  ",\"outcome\":\"ok\",\"code\":\"ok\",\"first_version\":" #fv                \
  ",\"last_version\":" #lv ",\"position\":\"" pos "\",\"first_global\":" #fg   \
  ",\"duplicate\":" dup "}\n"
#define FAIL(op, att, t, outcome, code)                                        \
  "{\"rec\":\"complete\",\"op\":\"" op "\",\"attempt\":" #att ",\"t\":" #t     \
  ",\"outcome\":\"" outcome "\",\"code\":\"" code "\",\"detail\":\"-\"}\n"

static const char history_text[] =
    INVOKE("op1", "c1", 1, 100, "tally-a", "\"no-stream\"",
           EV(1, 1, "item0") "," EV(2, 2, "item1"))
    INVOKE("op2", "c2", 1, 150, "misc-b", "\"any\"", EV(3, 3, "item0"))
    OK("op1", 1, 200, 1, 2, "10/2", 1, "false")
    OK("op2", 1, 260, 1, 1, "11/3", 3, "false")
    INVOKE("op3", "c1", 1, 300, "tally-a", "2", EV(4, 4, "item1"))
    INVOKE("op4", "c2", 1, 320, "tally-a", "2", EV(5, 5, "item2"))
    FAIL("op3", 1, 400, "unknown", "outcome_unknown")
    FAIL("op4", 1, 420, "conflict", "conflict")
    INVOKE("op3", "c1", 2, 450, "tally-a", "2", EV(4, 4, "item1"))
    OK("op3", 2, 500, 3, 3, "12/4", 4, "true")
    INVOKE("op5", "c1", 1, 600, "tally-a", "\"exists\"", EV(6, 1, "item2"))
    INVOKE("op6", "c2", 1, 610, "misc-b", "\"exists\"", EV(7, 2, "item0"))
    OK("op6", 1, 700, 2, 2, "14/5", 5, "false")
    INVOKE("op7", "cli", 1, 800, "tally-a", "\"any\"", EV(8, 3, "item2"))
    OK("op7", 1, 900, 4, 4, "15/6", -1, "false")
    INVOKE("op8", "c2", 1, 950, "misc-b", "0", EV(9, 1, "item0"))
    FAIL("op8", 1, 990, "conflict", "conflict");

#define LOGGED(stream, v, k, pos, n, item)                                     \
  "{\"stream\":\"" stream "\",\"version\":" #v ",\"id\":\"" ID(k)              \
  "\",\"position\":\"" pos "\",\"data\":{\"n\":" #n ",\"item\":\"" item        \
  "\"}}\n"

#define L1 LOGGED("tally-a", 1, 1, "10/1", 1, "item0")
#define L2 LOGGED("tally-a", 2, 2, "10/2", 2, "item1")
#define L3 LOGGED("misc-b", 1, 3, "11/3", 3, "item0")
#define L4 LOGGED("tally-a", 3, 4, "12/4", 4, "item1")
#define L7 LOGGED("misc-b", 2, 7, "14/5", 2, "item0")
#define L8 LOGGED("tally-a", 4, 8, "15/6", 3, "item2")

static const char log_all_text[] = L1 L2 L3 L4 L7 L8;
static const char log_cat_text[] = L1 L2 L4 L8;
/* A follower of $all that got the first four, one of tally that got all. */
static const char follower_all_text[] = L1 L2 L3 L4;
static const char follower_cat_text[] = L1 L2 L4 L8;
static const char model_text[] =
    "{\"present\":true,\"generation\":7,\"total\":10,"
    "\"items\":{\"item0\":1,\"item1\":6,\"item2\":3},"
    "\"seq\":{\"tally-a\":[1,2,3,4]}}";

/* ------------------------------------------------------------------------
 * The fixture: the run parsed, to be doctored, then judged
 * ------------------------------------------------------------------------ */

typedef struct run {
  soak_history history;
  soak_deliveries log_all, log_cat, f_all, f_cat;
  soak_stream_version streams[2];
  soak_model model;
  soak_follower followers[2];
  soak_report rep;
} run;

static void parse_deliveries(soak_deliveries *d, const char *text) {
  char why[256] = "";
  if (!soak_deliveries_add_text(d, text, why, sizeof why))
    fail_msg("deliveries: %s", why);
}

static int setup(void **state) {
  run *r = calloc(1, sizeof *r);
  char why[256] = "";
  assert_non_null(r);
  if (!soak_history_add_text(&r->history, history_text, why, sizeof why))
    fail_msg("history: %s", why);
  parse_deliveries(&r->log_all, log_all_text);
  parse_deliveries(&r->log_cat, log_cat_text);
  parse_deliveries(&r->f_all, follower_all_text);
  parse_deliveries(&r->f_cat, follower_cat_text);
  r->streams[0] = (soak_stream_version){"tally-a", 4};
  r->streams[1] = (soak_stream_version){"misc-b", 2};
  if (!soak_model_parse(model_text, &r->model, why, sizeof why))
    fail_msg("model: %s", why);
  r->followers[0] = (soak_follower){"f-all", false, &r->f_all};
  r->followers[1] = (soak_follower){"f-tally", true, &r->f_cat};
  *state = r;
  return 0;
}

static int teardown(void **state) {
  run *r = *state;
  soak_history_release(&r->history);
  soak_deliveries_release(&r->log_all);
  soak_deliveries_release(&r->log_cat);
  soak_deliveries_release(&r->f_all);
  soak_deliveries_release(&r->f_cat);
  soak_model_release(&r->model);
  soak_report_release(&r->rep);
  free(r);
  return 0;
}

/* Judges the run; prints what was found, so a failure shows it. */
static void judge(run *r) {
  soak_input in = {&r->history, &r->log_all, &r->log_cat, "tally",
                   r->streams,  2,           r->followers, 2,
                   &r->model};
  soak_report_release(&r->rep);
  assert_true(soak_check(&in, &r->rep));
  for (size_t i = 0; i < r->rep.count; i++)
    fprintf(stderr, "  [%s] %s\n", soak_anomaly_name(r->rep.items[i].kind),
            r->rep.items[i].text);
}

/* The doctored run is caught as `kind`, with text naming `needle`. */
static void caught(run *r, soak_anomaly_kind kind, const char *needle) {
  judge(r);
  for (size_t i = 0; i < r->rep.count; i++)
    if (r->rep.items[i].kind == kind && strstr(r->rep.items[i].text, needle))
      return;
  fail_msg("no %s anomaly mentioning \"%s\"", soak_anomaly_name(kind),
           needle);
}

static soak_attempt *attempt(run *r, const char *op, int n) {
  for (size_t i = 0; i < r->history.count; i++)
    if (strcmp(r->history.items[i].op, op) == 0 &&
        r->history.items[i].attempt == n)
      return &r->history.items[i];
  fail_msg("no attempt %d of %s", n, op);
  return NULL;
}

/* The entry of d with event id k. */
static size_t find(const soak_deliveries *d, const char *id) {
  for (size_t i = 0; i < d->count; i++)
    if (strcmp(d->items[i].id, id) == 0)
      return i;
  fail_msg("no event %s", id);
  return 0;
}

static void drop(soak_deliveries *d, size_t i) {
  memmove(&d->items[i], &d->items[i + 1],
          (d->count - i - 1) * sizeof *d->items);
  d->count--;
}

static void insert(soak_deliveries *d, size_t i, const soak_delivery *e) {
  assert_true(soak_deliveries_push(d, e));
  memmove(&d->items[i + 1], &d->items[i],
          (d->count - i - 1) * sizeof *d->items);
  d->items[i] = *e;
}

static void set_position(soak_delivery *d, const char *token) {
  assert_int_equal(esc_position_parse(token, &d->position, NULL), ESC_OK);
}

/* ------------------------------------------------------------------------
 * The consistent run passes
 * ------------------------------------------------------------------------ */

static void consistent_run_has_no_anomaly(void **state) {
  run *r = *state;
  judge(r);
  assert_int_equal(soak_report_total(&r->rep), 0);
  const soak_stats *s = &r->rep.stats;
  assert_int_equal(s->ops, 8);
  assert_int_equal(s->attempts, 9);
  assert_int_equal(s->present, 5);
  assert_int_equal(s->absent, 3);       /* op4, op8 refused; op5 pending */
  assert_int_equal(s->unknown_absent, 1);
  assert_int_equal(s->duplicates_returned, 1);
  assert_int_equal(s->conflicts_judged, 2);
}

/* ------------------------------------------------------------------------
 * Doctored histories and logs
 * ------------------------------------------------------------------------ */

static void lost_ack_is_caught(void **state) {
  run *r = *state;
  drop(&r->log_all, find(&r->log_all, ID(8)));
  caught(r, SOAK_A_LOST_ACK, "op op7");
}

static void duplicate_in_log_is_caught(void **state) {
  run *r = *state;
  soak_delivery again = r->log_all.items[find(&r->log_all, ID(3))];
  again.version = 3;
  set_position(&again, "16/7");
  assert_true(soak_deliveries_push(&r->log_all, &again));
  caught(r, SOAK_A_DUPLICATE, ID(3));
}

/* tally-a@2 delivered before tally-a@1: positions stay increasing. */
static void reorder_in_stream_is_caught(void **state) {
  run *r = *state;
  soak_delivery *a = &r->log_all.items[0], *b = &r->log_all.items[1];
  soak_delivery t = *a;
  *a = *b;
  *b = t;
  set_position(a, "10/1");
  set_position(b, "10/2");
  caught(r, SOAK_A_STREAM_ORDER, "tally-a@1");
}

static void gap_in_versions_is_caught(void **state) {
  run *r = *state;
  r->log_all.items[find(&r->log_all, ID(8))].version = 5;
  caught(r, SOAK_A_GAP, "version 4 should be");
}

static void follower_skip_is_caught(void **state) {
  run *r = *state;
  drop(&r->f_all, 1);
  caught(r, SOAK_A_FOLLOWER, "skipped");
}

static void follower_duplicate_is_caught(void **state) {
  run *r = *state;
  insert(&r->f_cat, 2, &r->f_cat.items[1]);
  caught(r, SOAK_A_FOLLOWER, "duplicate");
}

static void follower_reorder_is_caught(void **state) {
  run *r = *state;
  soak_delivery t = r->f_all.items[2];
  r->f_all.items[2] = r->f_all.items[3];
  r->f_all.items[3] = t;
  caught(r, SOAK_A_FOLLOWER, "f-all, entry 3");
}

static void follower_out_of_stream_order_is_caught(void **state) {
  run *r = *state;
  soak_delivery t = r->f_cat.items[0];
  r->f_cat.items[0] = r->f_cat.items[1];
  r->f_cat.items[1] = t;
  caught(r, SOAK_A_STREAM_ORDER, "follower f-tally");
}

static void refused_append_present_is_caught(void **state) {
  run *r = *state;
  soak_delivery e5 = r->log_all.items[find(&r->log_all, ID(8))];
  snprintf(e5.id, sizeof e5.id, "%s", ID(5));
  e5.version = 5;
  e5.n = 5;
  set_position(&e5, "16/7");
  assert_true(soak_deliveries_push(&r->log_all, &e5));
  caught(r, SOAK_A_REFUSED_PRESENT, "op op4");
}

static void wrong_acknowledged_position_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op1", 1)->position.global = 3;
  caught(r, SOAK_A_WRONG_RESULT, "op op1");
}

static void retry_not_returning_the_original_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op3", 2)->first_version = 4;
  attempt(r, "op3", 2)->last_version = 4;
  caught(r, SOAK_A_RETRY, "op op3");
}

static void two_writers_of_one_op_are_caught(void **state) {
  run *r = *state;
  soak_attempt *first = attempt(r, "op3", 1), *second = attempt(r, "op3", 2);
  second->duplicate = false;
  *first = *second; /* the first send came back OK, not a duplicate */
  first->attempt = 1;
  caught(r, SOAK_A_RETRY, "2 attempts say they wrote it");
}

/* op3 first invoked after op6 was acknowledged, yet stored before it. */
static void realtime_inversion_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op3", 1)->invoke_us = 950;
  attempt(r, "op3", 1)->complete_us = 960;
  attempt(r, "op3", 2)->invoke_us = 970;
  attempt(r, "op3", 2)->complete_us = 990;
  caught(r, SOAK_A_REALTIME, "before op op3");
}

/* misc-b was at 2 all through op8's call, which expected 2. */
static void wrong_conflict_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op8", 1)->expected = 2;
  caught(r, SOAK_A_CONFLICT, "op op8");
}

static void conflict_on_expect_any_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op8", 1)->expected = ESC_EXPECT_ANY;
  caught(r, SOAK_A_CONFLICT, "expected any");
}

static void expected_version_violation_is_caught(void **state) {
  run *r = *state;
  attempt(r, "op7", 1)->expected = 2;
  caught(r, SOAK_A_EXPECTED, "op op7");
}

static void phantom_event_is_caught(void **state) {
  run *r = *state;
  soak_delivery x = r->log_all.items[find(&r->log_all, ID(8))];
  snprintf(x.id, sizeof x.id, "%s", "ffffffff-0000-4000-8000-000000000000");
  x.version = 5;
  set_position(&x, "16/7");
  assert_true(soak_deliveries_push(&r->log_all, &x));
  caught(r, SOAK_A_PHANTOM, "tally-a@5");
}

static void partial_append_is_caught(void **state) {
  run *r = *state;
  drop(&r->log_all, find(&r->log_all, ID(2)));
  caught(r, SOAK_A_PARTIAL, "only 1 of its 2");
}

static void other_content_is_caught(void **state) {
  run *r = *state;
  snprintf(r->log_all.items[find(&r->log_all, ID(4))].item, SOAK_ITEM_MAX,
           "item9");
  caught(r, SOAK_A_CONTENT, "item9");
}

static void streams_table_disagreement_is_caught(void **state) {
  run *r = *state;
  r->streams[1].version = 3;
  caught(r, SOAK_A_STREAM_VERSION, "misc-b");
}

static void category_read_disagreement_is_caught(void **state) {
  run *r = *state;
  drop(&r->log_cat, 2);
  caught(r, SOAK_A_CATEGORY, "tally-a@3");
}

static void unordered_log_is_caught(void **state) {
  run *r = *state;
  set_position(&r->log_all.items[3], "11/2");
  caught(r, SOAK_A_ORDER, "tally-a@3");
}

static void read_model_total_is_caught(void **state) {
  run *r = *state;
  r->model.total = 11;
  caught(r, SOAK_A_READ_MODEL, "total is 11");
}

static void read_model_applied_out_of_order_is_caught(void **state) {
  run *r = *state;
  r->model.seqs[0].versions[1] = 3;
  r->model.seqs[0].versions[2] = 2;
  caught(r, SOAK_A_READ_MODEL, "seq:tally-a entry 2");
}

static void read_model_applied_twice_is_caught(void **state) {
  run *r = *state;
  r->model.items[1].score = 10; /* item1's event 4 applied twice */
  caught(r, SOAK_A_READ_MODEL, "item item1");
}

static void model_matches_says_the_first_difference(void **state) {
  run *r = *state;
  char why[256] = "";
  assert_true(soak_model_matches(&r->log_cat, &r->model, why, sizeof why));
  r->model.present = false;
  assert_false(soak_model_matches(&r->log_cat, &r->model, why, sizeof why));
  assert_non_null(strstr(why, "no serving generation"));
}

/* ------------------------------------------------------------------------
 * Parsing: what a killed writer leaves, and malformed histories
 * ------------------------------------------------------------------------ */

static void half_written_last_line_is_ignored(void **state) {
  (void)state;
  soak_deliveries d = {0};
  soak_history h = {0};
  char why[256];
  assert_true(soak_deliveries_add_text(&d, L1 "{\"stream\":\"tal", why,
                                       sizeof why));
  assert_int_equal(d.count, 1);
  assert_false(soak_deliveries_add_text(&d, "{\"stream\":1}\n" L1, why,
                                        sizeof why));
  assert_true(soak_history_add_text(
      &h, INVOKE("x", "c", 1, 5, "tally-a", "\"any\"", EV(1, 1, "i"))
      "{\"rec\":\"comp",
      why, sizeof why));
  assert_int_equal(h.count, 1);
  assert_int_equal(h.items[0].outcome, SOAK_PENDING);
  soak_deliveries_release(&d);
  soak_history_release(&h);
}

static void lines_read_back_as_written(void **state) {
  run *r = *state;
  soak_history h = {0};
  char why[256] = "";
  for (size_t i = 0; i < r->history.count; i++) {
    const soak_attempt *a = &r->history.items[i];
    char *inv = soak_invoke_line(a), *done = soak_complete_line(a);
    assert_non_null(inv);
    assert_non_null(done);
    assert_true(soak_history_add_line(&h, inv, why, sizeof why));
    if (a->outcome != SOAK_PENDING)
      assert_true(soak_history_add_line(&h, done, why, sizeof why));
    free(inv);
    free(done);
    soak_attempt *b = &h.items[h.count - 1];
    assert_string_equal(a->op, b->op);
    assert_int_equal(a->outcome, b->outcome);
    assert_int_equal(a->expected, b->expected);
    assert_int_equal(a->first_version, b->first_version);
    assert_int_equal(esc_position_cmp(&a->position, &b->position), 0);
  }
  char *m = soak_model_json(&r->model);
  soak_model back;
  assert_true(soak_model_parse(m, &back, why, sizeof why));
  assert_int_equal(back.total, r->model.total);
  assert_int_equal(back.seqs[0].count, 4);
  free(m);
  soak_model_release(&back);
  soak_history_release(&h);
}

static void complete_without_invoke_is_a_history_anomaly(void **state) {
  run *r = *state;
  char why[256];
  assert_true(soak_history_add_line(&r->history,
                                    FAIL("nobody", 1, 5, "conflict", "c"),
                                    why, sizeof why));
  caught(r, SOAK_A_HISTORY, "name no invoked attempt");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(consistent_run_has_no_anomaly),
      T(lost_ack_is_caught),
      T(duplicate_in_log_is_caught),
      T(reorder_in_stream_is_caught),
      T(gap_in_versions_is_caught),
      T(follower_skip_is_caught),
      T(follower_duplicate_is_caught),
      T(follower_reorder_is_caught),
      T(follower_out_of_stream_order_is_caught),
      T(refused_append_present_is_caught),
      T(wrong_acknowledged_position_is_caught),
      T(retry_not_returning_the_original_is_caught),
      T(two_writers_of_one_op_are_caught),
      T(realtime_inversion_is_caught),
      T(wrong_conflict_is_caught),
      T(conflict_on_expect_any_is_caught),
      T(expected_version_violation_is_caught),
      T(phantom_event_is_caught),
      T(partial_append_is_caught),
      T(other_content_is_caught),
      T(streams_table_disagreement_is_caught),
      T(category_read_disagreement_is_caught),
      T(unordered_log_is_caught),
      T(read_model_total_is_caught),
      T(read_model_applied_out_of_order_is_caught),
      T(read_model_applied_twice_is_caught),
      T(model_matches_says_the_first_difference),
      T(half_written_last_line_is_ignored),
      T(lines_read_back_as_written),
      T(complete_without_invoke_is_a_history_anomaly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Appending against a real PostgreSQL: atomic batches with consecutive
 * versions (guarantee 1), every expected-version mode (2), idempotent
 * retries (3), and many streams in one pipelined call.
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

#define SCHEMA "t_append"

struct batch {
  esc_event_data ev[8];
  unsigned char payload[8][32];
};

/* n events of type "Tick" with payloads {"n": base + i} and fresh ids. */
static void make_batch(struct batch *b, size_t n, long long base) {
  memset(b, 0, sizeof *b);
  for (size_t i = 0; i < n; i++) {
    b->ev[i].id = esc_uuid_v4();
    b->ev[i].type = "Tick";
    b->ev[i].schema_version = 1;
    b->ev[i].data = b->payload[i];
    b->ev[i].data_len = esc_test_payload(b->payload[i], base + (long long)i);
  }
}

static long long count_rows(const char *sql) {
  PGconn *c = esc_test_pg();
  PGresult *res = PQexec(c, sql);
  assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
  long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  PQfinish(c);
  return n;
}

static int setup(void **state) {
  *state = esc_test_fresh_store(SCHEMA);
  return 0;
}

static int teardown(void **state) {
  esc_store_free(*state);
  return 0;
}

/* ------------------------------------------------------------------------ */

static void batch_gets_consecutive_versions(void **state) {
  esc_store *st = *state;
  struct batch b;
  esc_append_result r;
  esc_events ev = ESC_EVENTS_INIT;

  make_batch(&b, 3, 0);
  assert_int_equal(
      esc_append(st, "batch-1", ESC_EXPECT_NO_STREAM, b.ev, 3, &r, NULL),
      ESC_OK);
  assert_int_equal(r.first_version, 1);
  assert_int_equal(r.last_version, 3);
  assert_false(r.duplicate);
  make_batch(&b, 5, 3);
  assert_int_equal(esc_append(st, "batch-1", 3, b.ev, 5, &r, NULL), ESC_OK);
  assert_int_equal(r.first_version, 4);
  assert_int_equal(r.last_version, 8);
  assert_int_equal(r.position.global - r.first_global, 4);

  assert_int_equal(
      esc_read_stream(st, "batch-1", 0, ESC_FORWARD, 100, &ev, NULL), ESC_OK);
  assert_int_equal(ev.count, 8);
  for (size_t i = 0; i < ev.count; i++) {
    assert_int_equal(ev.items[i].stream_version, (int64_t)i + 1);
    assert_string_equal(ev.items[i].type, "Tick");
    assert_string_equal(ev.items[i].stream_id, "batch-1");
    if (i > 0) /* one transaction, one tx_id, ordered positions */
      assert_true(esc_position_cmp(&ev.items[i - 1].position,
                                   &ev.items[i].position) < 0);
  }
  assert_true(ev.items[7].position.tx_id == r.position.tx_id);
  assert_int_equal(ev.items[7].position.global, r.position.global);

  /* Backward from the end, and a window. */
  assert_int_equal(
      esc_read_stream(st, "batch-1", 0, ESC_BACKWARD, 2, &ev, NULL), ESC_OK);
  assert_int_equal(ev.count, 2);
  assert_int_equal(ev.items[0].stream_version, 8);
  assert_int_equal(ev.items[1].stream_version, 7);
  assert_int_equal(esc_read_stream(st, "batch-1", 5, ESC_FORWARD, 2, &ev, NULL),
                   ESC_OK);
  assert_int_equal(ev.count, 2);
  assert_int_equal(ev.items[0].stream_version, 5);
  esc_events_release(&ev);
}

static void batch_is_all_or_nothing(void **state) {
  esc_store *st = *state;
  struct batch first, b;
  esc_error err = ESC_ERROR_INIT;

  make_batch(&first, 1, 0);
  assert_int_equal(
      esc_append(st, "atomic-1", ESC_EXPECT_ANY, first.ev, 1, NULL, NULL),
      ESC_OK);
  /* Event 3 of 4 reuses a stored id: the database refuses the whole call. */
  make_batch(&b, 4, 10);
  b.ev[2].id = first.ev[0].id;
  assert_int_equal(
      esc_append(st, "atomic-1", ESC_EXPECT_ANY, b.ev, 4, NULL, &err),
      ESC_EDUPLICATE);
  assert_int_equal(count_rows("SELECT count(*) FROM " SCHEMA ".events "
                              "WHERE stream_id = 'atomic-1'"),
                   1);
  assert_int_equal(count_rows("SELECT version FROM " SCHEMA ".streams "
                              "WHERE stream_id = 'atomic-1'"),
                   1);
}

/* ------------------------------------------------------------------------ */

struct expect_case {
  const char *name;
  int prior_events; /* events in the stream before; -1: no stream */
  int64_t expected;
  esc_status want;
  const char *msg_part; /* in the conflict message */
};

static const struct expect_case expect_cases[] = {
    {"any on none", -1, ESC_EXPECT_ANY, ESC_OK, NULL},
    {"any on some", 2, ESC_EXPECT_ANY, ESC_OK, NULL},
    {"no-stream on none", -1, ESC_EXPECT_NO_STREAM, ESC_OK, NULL},
    {"no-stream on some", 2, ESC_EXPECT_NO_STREAM, ESC_ECONFLICT,
     "expected no stream, stream is at 2"},
    {"exists on some", 2, ESC_EXPECT_EXISTS, ESC_OK, NULL},
    {"exists on none", -1, ESC_EXPECT_EXISTS, ESC_ECONFLICT,
     "expected an existing stream, stream does not exist"},
    {"exact 0 on none", -1, 0, ESC_OK, NULL},
    {"exact 2 on 2", 2, 2, ESC_OK, NULL},
    {"exact 1 on 2", 2, 1, ESC_ECONFLICT, "expected version 1, stream is at 2"},
    {"exact 3 on 2", 2, 3, ESC_ECONFLICT, "expected version 3, stream is at 2"},
    {"exact 5 on none", -1, 5, ESC_ECONFLICT,
     "expected version 5, stream does not exist"},
};

static void every_expected_version_mode(void **state) {
  esc_store *st = *state;
  for (size_t i = 0; i < sizeof expect_cases / sizeof *expect_cases; i++) {
    const struct expect_case *c = &expect_cases[i];
    char stream[64];
    struct batch b;
    esc_error err = ESC_ERROR_INIT;
    esc_append_result r;
    snprintf(stream, sizeof stream, "expect-%zu", i);
    if (c->prior_events > 0) {
      make_batch(&b, (size_t)c->prior_events, 0);
      assert_int_equal(esc_append(st, stream, ESC_EXPECT_NO_STREAM, b.ev,
                                  (size_t)c->prior_events, NULL, NULL),
                       ESC_OK);
    }
    make_batch(&b, 1, 100);
    esc_status rc = esc_append(st, stream, c->expected, b.ev, 1, &r, &err);
    if (rc != c->want)
      fail_msg("%s: got %s (%s), want %s", c->name, esc_strerror(rc), err.msg,
               esc_strerror(c->want));
    int before = c->prior_events < 0 ? 0 : c->prior_events;
    if (rc == ESC_OK) {
      assert_int_equal(r.last_version, before + 1);
    } else {
      char want[160];
      snprintf(want, sizeof want, "append to %s: %s", stream, c->msg_part);
      if (strcmp(err.msg, want) != 0)
        fail_msg("%s: message \"%s\", want \"%s\"", c->name, err.msg, want);
      /* A failed append leaves no stream row behind. */
      char sql[160];
      snprintf(sql, sizeof sql,
               "SELECT count(*) FROM " SCHEMA ".events WHERE stream_id = '%s'",
               stream);
      assert_int_equal(count_rows(sql), before);
    }
  }
}

/* ------------------------------------------------------------------------ */

static void retry_returns_original_result(void **state) {
  esc_store *st = *state;
  struct batch b, later;
  esc_append_result first, again;

  make_batch(&b, 3, 0);
  assert_int_equal(
      esc_append(st, "idem-1", ESC_EXPECT_NO_STREAM, b.ev, 3, &first, NULL),
      ESC_OK);
  /* The stream moves on before the retry arrives. */
  make_batch(&later, 2, 50);
  assert_int_equal(
      esc_append(st, "idem-1", ESC_EXPECT_ANY, later.ev, 2, NULL, NULL),
      ESC_OK);

  /* The retry's expected version is stale, yet it is recognized. */
  assert_int_equal(
      esc_append(st, "idem-1", ESC_EXPECT_NO_STREAM, b.ev, 3, &again, NULL),
      ESC_OK);
  assert_true(again.duplicate);
  assert_int_equal(again.first_version, first.first_version);
  assert_int_equal(again.last_version, first.last_version);
  assert_int_equal(again.first_global, first.first_global);
  assert_int_equal(again.position.global, first.position.global);
  assert_true(again.position.tx_id == first.position.tx_id);
  assert_int_equal(count_rows("SELECT count(*) FROM " SCHEMA ".events "
                              "WHERE stream_id = 'idem-1'"),
                   5);

  /* A retry may carry new metadata (a later timestamp): still the same. */
  esc_metadata m = ESC_METADATA_INIT;
  void *meta = NULL;
  size_t meta_len = 0;
  m.time_us = esc_now_us();
  assert_int_equal(esc_metadata_encode(&m, &meta, &meta_len, NULL), ESC_OK);
  for (int i = 0; i < 3; i++) {
    b.ev[i].metadata = meta;
    b.ev[i].metadata_len = meta_len;
  }
  assert_int_equal(esc_append(st, "idem-1", 0, b.ev, 3, &again, NULL), ESC_OK);
  assert_true(again.duplicate);
  free(meta);
}

static void reused_id_with_other_content_fails(void **state) {
  esc_store *st = *state;
  struct batch b, other;
  esc_error err = ESC_ERROR_INIT;

  make_batch(&b, 2, 0);
  assert_int_equal(
      esc_append(st, "reuse-1", ESC_EXPECT_ANY, b.ev, 2, NULL, NULL), ESC_OK);
  /* Same ids, other data. */
  make_batch(&other, 2, 7);
  other.ev[0].id = b.ev[0].id;
  other.ev[1].id = b.ev[1].id;
  assert_int_equal(
      esc_append(st, "reuse-1", ESC_EXPECT_ANY, other.ev, 2, NULL, &err),
      ESC_EDUPLICATE);
  assert_non_null(strstr(err.msg, "reuse-1"));
  /* Same ids and data, another stream. */
  assert_int_equal(
      esc_append(st, "reuse-2", ESC_EXPECT_ANY, b.ev, 2, NULL, &err),
      ESC_EDUPLICATE);
  /* Same ids, other type. */
  b.ev[0].type = "Tock";
  assert_int_equal(
      esc_append(st, "reuse-1", ESC_EXPECT_ANY, b.ev, 2, NULL, &err),
      ESC_EDUPLICATE);
  /* A partial overlap: a new first id, a stored second one. */
  make_batch(&other, 2, 0);
  other.ev[1].id = b.ev[1].id;
  assert_int_equal(
      esc_append(st, "reuse-1", ESC_EXPECT_ANY, other.ev, 2, NULL, &err),
      ESC_EDUPLICATE);
  assert_int_equal(count_rows("SELECT count(*) FROM " SCHEMA ".events "
                              "WHERE stream_id LIKE 'reuse-%'"),
                   2);
  assert_int_equal(count_rows("SELECT count(*) FROM " SCHEMA ".streams "
                              "WHERE stream_id = 'reuse-2'"),
                   0);
}

/* ------------------------------------------------------------------------ */

static void many_streams_in_one_call(void **state) {
  esc_store *st = *state;
  enum { N = 300 }; /* more than one pipeline chunk */
  static struct batch b[N];
  static esc_append_request reqs[N];
  static char names[N][32];
  esc_error err = ESC_ERROR_INIT;

  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "many-%d", i);
    make_batch(&b[i], 2, i);
    reqs[i] =
        (esc_append_request){names[i], ESC_EXPECT_NO_STREAM, b[i].ev, 2, ESC_OK,
                             {0},      ESC_ERROR_INIT};
  }
  reqs[7].expected = 4; /* conflicts */
  b[9].ev[0].type = ""; /* invalid: never sent */
  assert_int_equal(esc_append_many(st, reqs, N, &err), ESC_OK);
  for (int i = 0; i < N; i++) {
    if (i == 7) {
      assert_int_equal(reqs[i].status, ESC_ECONFLICT);
      assert_non_null(strstr(reqs[i].error.msg, "many-7"));
    } else if (i == 9) {
      assert_int_equal(reqs[i].status, ESC_EINVAL);
    } else {
      assert_int_equal(reqs[i].status, ESC_OK);
      assert_int_equal(reqs[i].result.first_version, 1);
      assert_int_equal(reqs[i].result.last_version, 2);
    }
  }
  assert_int_equal(count_rows("SELECT count(*) FROM " SCHEMA ".events "
                              "WHERE stream_id LIKE 'many-%'"),
                   2 * (N - 2));
  /* The store is usable for plain calls after the pipeline. */
  struct batch one;
  make_batch(&one, 1, 0);
  assert_int_equal(esc_append(st, "many-0", 2, one.ev, 1, NULL, NULL), ESC_OK);
}

static void reading_unknown_stream_is_not_found(void **state) {
  esc_store *st = *state;
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_read_stream(st, "nobody-1", 0, ESC_FORWARD, 10, &ev, &err),
      ESC_ENOTFOUND);
  assert_non_null(strstr(err.msg, "nobody-1"));
  esc_events_release(&ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(batch_gets_consecutive_versions),
      cmocka_unit_test(batch_is_all_or_nothing),
      cmocka_unit_test(every_expected_version_mode),
      cmocka_unit_test(retry_returns_original_result),
      cmocka_unit_test(reused_id_with_other_content_fails),
      cmocka_unit_test(many_streams_in_one_call),
      cmocka_unit_test(reading_unknown_stream_is_not_found),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

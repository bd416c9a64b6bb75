/*
 * Bad input against a real PostgreSQL (guarantee 10): each bad append gets
 * the right code and a message that says what is wrong and where, and
 * nothing is stored; a connection killed mid-append loses nothing and a
 * retry on the same store succeeds once; an absent server is a clear
 * connection error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "store_int.h"
#include "testenv.h"

/* {"n": 1} */
static const unsigned char PAYLOAD[] = {0x81, 0xa1, 'n', 0x01};

static esc_event_data good_event(void) {
  esc_event_data e = {esc_uuid_v4(),  "Placed", 1, PAYLOAD,
                      sizeof PAYLOAD, NULL,     0};
  return e;
}

struct counts {
  long long events, streams, max_version_sum;
  char *digest;
};

static struct counts counts_of(PGconn *raw, const char *schema) {
  char sql[1024];
  struct counts c;
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.events", schema);
  c.events = esc_test_query_ll(raw, sql);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.streams", schema);
  c.streams = esc_test_query_ll(raw, sql);
  snprintf(sql, sizeof sql, "SELECT coalesce(sum(version), 0) FROM %s.streams",
           schema);
  c.max_version_sum = esc_test_query_ll(raw, sql);
  snprintf(sql, sizeof sql,
           "SELECT coalesce(md5(string_agg(global_position || '/' || "
           "stream_id || '/' || stream_version || '/' || event_id || '/' || "
           "event_type || '/' || encode(data, 'hex'), ',' ORDER BY "
           "global_position)), '') FROM %s.events",
           schema);
  c.digest = esc_test_query_text(raw, sql);
  return c;
}

static void assert_unchanged(PGconn *raw, const char *schema,
                             const struct counts *before, const char *what) {
  struct counts now = counts_of(raw, schema);
  if (now.events != before->events || now.streams != before->streams ||
      now.max_version_sum != before->max_version_sum ||
      strcmp(now.digest, before->digest) != 0)
    fail_msg("%s: the store changed (events %lld -> %lld, streams %lld -> "
             "%lld)",
             what, before->events, now.events, before->streams, now.streams);
  free(now.digest);
}

/*
 * Appends and expects `code` with a message containing every string of the
 * NULL-terminated list `needles`, and no change to the store.
 */
static void expect_rejected(esc_store *st, PGconn *raw, const char *what,
                            const char *stream, int64_t expected,
                            const esc_event_data *ev, size_t n, esc_status code,
                            const char *const *needles) {
  const char *schema = esc_store_schema(st);
  struct counts before = counts_of(raw, schema);
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  esc_status rc = esc_append(st, stream, expected, ev, n, &res, &err);
  if (rc != code)
    fail_msg("%s: got %s (%s), expected %s", what, esc_strerror(rc), err.msg,
             esc_strerror(code));
  if (err.code != code)
    fail_msg("%s: err.code %d, expected %d", what, err.code, code);
  for (size_t i = 0; needles && needles[i]; i++)
    if (!strstr(err.msg, needles[i]))
      fail_msg("%s: message \"%s\" does not mention \"%s\"", what, err.msg,
               needles[i]);
  assert_unchanged(raw, schema, &before, what);
  free(before.digest);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* A store on a fresh schema with one stream "order-1" at version 1. */
static esc_store *fresh_with_one(const char *schema) {
  esc_store *st = esc_test_fresh_store(schema);
  esc_error err = ESC_ERROR_INIT;
  esc_event_data e = good_event();
  if (esc_append(st, "order-1", ESC_EXPECT_NO_STREAM, &e, 1, NULL, &err))
    fail_msg("append: %s", err.msg);
  return st;
}

/* ------------------------------------------------------------------------
 * Malformed msgpack
 * ------------------------------------------------------------------------ */

#define MP_SCHEMA "t_bad_msgpack"

static void malformed_msgpack_is_rejected(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(MP_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();

  /* {"n": <fixstr of 5 bytes with only 2 present>} */
  static const unsigned char truncated_str[] = {0x81, 0xa1, 'n',
                                                0xa5, 'a',  'b'};
  /* {"n": 0xc1} */
  static const unsigned char never_used[] = {0x81, 0xa1, 'n', 0xc1};
  /* {"n": 1} followed by a stray byte */
  static const unsigned char trailing[] = {0x81, 0xa1, 'n', 0x01, 0x02};
  /* an array32 claiming 4G elements, in 5 bytes */
  static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
  /* a map32 claiming 4G entries */
  static const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
  /* a str32 claiming 4 GB */
  static const unsigned char huge_str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};

  struct {
    const char *what;
    const unsigned char *data;
    size_t len;
    const char *where;
    const char *detail;
  } cases[] = {
      {"truncated str", truncated_str, sizeof truncated_str, "byte 3",
       "fixstr"},
      {"0xc1", never_used, sizeof never_used, "byte 3", "0xc1"},
      {"trailing bytes", trailing, sizeof trailing, "byte 4", "follow"},
      {"array32 of 4G", huge_array, sizeof huge_array, "byte 0", "array32"},
      {"map32 of 4G", huge_map, sizeof huge_map, "byte 0", "map32"},
      {"str32 of 4 GB", huge_str, sizeof huge_str, "byte 0", "str32"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    /* The bad event second in the batch, to an existing and a new stream. */
    esc_event_data ev[2] = {good_event(), good_event()};
    ev[1].data = cases[i].data;
    ev[1].data_len = cases[i].len;
    expect_rejected(st, raw, cases[i].what, "order-1", ESC_EXPECT_ANY, ev, 2,
                    ESC_EINVAL,
                    NEEDLES("order-1", "event 1", "msgpack", cases[i].where,
                            cases[i].detail));
    expect_rejected(st, raw, cases[i].what, "order-2", ESC_EXPECT_NO_STREAM, ev,
                    2, ESC_EINVAL,
                    NEEDLES("order-2", "event 1", "msgpack", cases[i].where));
  }

  /* Empty and NULL data. */
  esc_event_data e = good_event();
  e.data_len = 0;
  expect_rejected(st, raw, "empty data", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "msgpack"));
  e.data = NULL;
  expect_rejected(st, raw, "NULL data", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0"));

  /* Metadata that is not a map, and metadata that is not msgpack. */
  static const unsigned char array_md[] = {0x93, 0x01, 0x02, 0x03};
  static const unsigned char str_md[] = {0xa2, 'h', 'i'};
  static const unsigned char bad_md[] = {0x81, 0xa1, 'k', 0xc1};
  e = good_event();
  e.metadata = array_md;
  e.metadata_len = sizeof array_md;
  expect_rejected(st, raw, "array metadata", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "metadata", "map"));
  e.metadata = str_md;
  e.metadata_len = sizeof str_md;
  expect_rejected(st, raw, "str metadata", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "metadata", "map"));
  e.metadata = bad_md;
  e.metadata_len = sizeof bad_md;
  expect_rejected(st, raw, "malformed metadata", "order-1", ESC_EXPECT_ANY, &e,
                  1, ESC_EINVAL,
                  NEEDLES("order-1", "event 0", "metadata", "byte 3"));

  /* A map whose known keys have the wrong types: refused at append, as
   * reads would refuse it (once it was stored, then failed every read). */
  static const unsigned char actor_md[] = {0x81, 0xa5, 'a', 'c', 't',
                                           'o',  'r',  0x05};
  static const unsigned char time_md[] = {0x81, 0xa4, 't', 'i', 'm', 'e',
                                          0xa1, 'x'};
  e.metadata = actor_md;
  e.metadata_len = sizeof actor_md;
  expect_rejected(st, raw, "integer actor", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "actor", "string"));
  e.metadata = time_md;
  e.metadata_len = sizeof time_md;
  expect_rejected(st, raw, "string time", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "time"));

  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Oversized events
 * ------------------------------------------------------------------------ */

#define SIZE_SCHEMA "t_bad_size"

/* A msgpack bin value of exactly total bytes (total >= 5). */
static unsigned char *bin_of_size(size_t total) {
  unsigned char *p = calloc(1, total);
  assert_non_null(p);
  size_t body = total - 5;
  p[0] = 0xc6; /* bin32 */
  p[1] = (unsigned char)(body >> 24);
  p[2] = (unsigned char)(body >> 16);
  p[3] = (unsigned char)(body >> 8);
  p[4] = (unsigned char)body;
  memset(p + 5, 'x', body);
  return p;
}

static void oversized_events_are_rejected(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(SIZE_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;

  /* The default limit, 1 MiB of data + metadata. */
  unsigned char *big = bin_of_size(ESC_DEFAULT_MAX_EVENT_SIZE + 1);
  esc_event_data e = good_event();
  e.data = big;
  e.data_len = ESC_DEFAULT_MAX_EVENT_SIZE + 1;
  expect_rejected(st, raw, "1 MiB + 1", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL,
                  NEEDLES("order-1", "event 0", "1048577", "1048576"));
  free(big);

  /* A store with a limit of 1000 bytes: 1000 pass, 1001 do not. */
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = SIZE_SCHEMA;
  opts.max_event_size = 1000;
  esc_store *small = esc_store_open(NULL, &opts, &err);
  if (!small)
    fail_msg("open: %s", err.msg);
  unsigned char *b1001 = bin_of_size(1001);
  e = good_event();
  e.data = b1001;
  e.data_len = 1001;
  expect_rejected(small, raw, "1001 of 1000", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "1001", "1000"));
  /* data and metadata count together: 996 + 5 = 1001 */
  static const unsigned char md[] = {0x81, 0xa1, 'a', 0xa1, 'b'};
  unsigned char *b996 = bin_of_size(996);
  e = good_event();
  e.data = b996;
  e.data_len = 996;
  e.metadata = md;
  e.metadata_len = sizeof md;
  expect_rejected(small, raw, "996 + 5 of 1000", "order-1", ESC_EXPECT_ANY, &e,
                  1, ESC_EINVAL, NEEDLES("order-1", "event 0", "1001"));
  /* Exactly the limit is fine. */
  unsigned char *b1000 = bin_of_size(1000);
  e = good_event();
  e.data = b1000;
  e.data_len = 1000;
  esc_append_result res;
  if (esc_append(small, "order-1", 1, &e, 1, &res, &err))
    fail_msg("1000 bytes: %s", err.msg);
  assert_int_equal(res.last_version, 2);

  free(b1001);
  free(b996);
  free(b1000);
  esc_store_free(small);
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Names, ids, versions, counts
 * ------------------------------------------------------------------------ */

#define NAMES_SCHEMA "t_bad_names"

static void invalid_names_and_arguments_are_rejected(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(NAMES_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_event_data e = good_event();

  /* Stream ids. */
  char long_id[ESC_STREAM_ID_MAX + 2];
  memset(long_id, 'a', ESC_STREAM_ID_MAX + 1);
  long_id[ESC_STREAM_ID_MAX + 1] = '\0';
  expect_rejected(st, raw, "empty stream id", "", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "empty"));
  expect_rejected(st, raw, "NULL stream id", NULL, ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "NULL"));
  expect_rejected(st, raw, "201-byte stream id", long_id, ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "201", "200"));
  expect_rejected(st, raw, "space", "order 1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "order 1", "byte 6"));
  expect_rejected(st, raw, "leading $", "$all", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "$all", "'$'"));
  expect_rejected(st, raw, "leading -", "-order1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "-order1", "'-'"));
  expect_rejected(st, raw, "control byte", "order-\n1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("stream id", "byte 7", "\\x0a"));

  /* Event types, named by event index and stream. */
  const char *bad_types[] = {"", "1Placed", "Order Placed", "Placed$",
                             "-Placed"};
  const char *type_needles[] = {"empty", "1Placed", "Order Placed", "Placed$",
                                "-Placed"};
  for (size_t i = 0; i < sizeof bad_types / sizeof *bad_types; i++) {
    esc_event_data ev[3] = {good_event(), good_event(), good_event()};
    ev[2].type = bad_types[i];
    char what[64];
    snprintf(what, sizeof what, "event type \"%s\"", bad_types[i]);
    expect_rejected(
        st, raw, what, "order-1", ESC_EXPECT_ANY, ev, 3, ESC_EINVAL,
        NEEDLES("order-1", "event 2", "event type", type_needles[i]));
  }
  char long_type[ESC_TYPE_NAME_MAX + 2];
  memset(long_type, 'T', ESC_TYPE_NAME_MAX + 1);
  long_type[ESC_TYPE_NAME_MAX + 1] = '\0';
  e = good_event();
  e.type = long_type;
  expect_rejected(st, raw, "129-byte type", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "129", "128"));
  e.type = NULL;
  expect_rejected(st, raw, "NULL type", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "type"));

  /* A nil id: retries would not be safe. */
  e = good_event();
  memset(&e.id, 0, sizeof e.id);
  expect_rejected(st, raw, "nil id", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "event 0", "nil id"));

  /* Schema versions start at 1. */
  e = good_event();
  e.schema_version = 0;
  expect_rejected(st, raw, "schema version 0", "order-1", ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL,
                  NEEDLES("order-1", "event 0", "schema version 0"));
  e.schema_version = -3;
  expect_rejected(st, raw, "schema version -3", "order-1", ESC_EXPECT_ANY, &e,
                  1, ESC_EINVAL, NEEDLES("schema version -3"));

  /* No events, a NULL array, an expected version that is no mode. */
  e = good_event();
  expect_rejected(st, raw, "n = 0", "order-1", ESC_EXPECT_ANY, &e, 0,
                  ESC_EINVAL, NEEDLES("order-1", "no events"));
  expect_rejected(st, raw, "NULL events", "order-1", ESC_EXPECT_ANY, NULL, 1,
                  ESC_EINVAL, NEEDLES("order-1"));
  expect_rejected(st, raw, "expected -7", "order-1", -7, &e, 1, ESC_EINVAL,
                  NEEDLES("order-1", "expected", "-7"));
  expect_rejected(st, raw, "expected INT64_MIN", "order-1", INT64_MIN, &e, 1,
                  ESC_EINVAL, NEEDLES("order-1", "expected"));

  /* Reads name bad arguments too. */
  esc_events out = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  esc_position start = ESC_POSITION_START;
  assert_int_equal(esc_read_all(st, "order-1", start, 10, &out, &err),
                   ESC_EINVAL);
  assert_non_null(strstr(err.msg, "category"));
  assert_int_equal(
      esc_read_stream(st, "order 1", 0, ESC_FORWARD, 10, &out, &err),
      ESC_EINVAL);
  assert_non_null(strstr(err.msg, "order 1"));
  assert_int_equal(
      esc_read_stream(st, "order-1", -1, ESC_FORWARD, 10, &out, &err),
      ESC_EINVAL);
  assert_non_null(strstr(err.msg, "order-1"));
  esc_events_release(&out);

  /* After all that, the good append still works where it left off. */
  e = good_event();
  esc_append_result res;
  if (esc_append(st, "order-1", 1, &e, 1, &res, &err))
    fail_msg("append: %s", err.msg);
  assert_int_equal(res.first_version, 2);

  esc_store_free(st);
}

/* The longest valid stream id and type name must not crowd the reason and
 * the byte offset out of the 256-byte message. */
static void long_names_do_not_hide_the_reason(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(NAMES_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  char stream[ESC_STREAM_ID_MAX + 1];
  memset(stream, 'a', ESC_STREAM_ID_MAX);
  memcpy(stream, "order-", 6);
  stream[ESC_STREAM_ID_MAX] = '\0';
  char type[ESC_TYPE_NAME_MAX + 1];
  memset(type, 'T', ESC_TYPE_NAME_MAX);
  type[ESC_TYPE_NAME_MAX] = '\0';
  assert_true(esc_stream_id_valid(stream, NULL));
  assert_true(esc_type_name_valid(type, NULL));

  /* {"n": 0xc1} */
  static const unsigned char never_used[] = {0x81, 0xa1, 'n', 0xc1};
  esc_event_data e = good_event();
  e.data = never_used;
  e.data_len = sizeof never_used;
  expect_rejected(st, raw, "200-byte stream id", stream, ESC_EXPECT_ANY, &e, 1,
                  ESC_EINVAL, NEEDLES("event 0", "msgpack", "byte 3"));
  e.type = type;
  expect_rejected(st, raw, "200-byte stream id, 128-byte type", stream,
                  ESC_EXPECT_ANY, &e, 1, ESC_EINVAL,
                  NEEDLES("event 0", "msgpack", "byte 3"));
  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * One bad event spoils the whole batch
 * ------------------------------------------------------------------------ */

#define BATCH_SCHEMA "t_bad_batch"

static void bad_event_in_batch_stores_nothing(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(BATCH_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  static const unsigned char bad[] = {0x82, 0xa1, 'n', 0x01}; /* 1 of 2 */

  /* Caught in the client: event 3 of 5 (index 2) is not msgpack. */
  esc_event_data ev[5];
  for (int i = 0; i < 5; i++)
    ev[i] = good_event();
  ev[2].data = bad;
  ev[2].data_len = sizeof bad;
  expect_rejected(st, raw, "bad third event, new stream", "order-5",
                  ESC_EXPECT_NO_STREAM, ev, 5, ESC_EINVAL,
                  NEEDLES("order-5", "event 2", "msgpack", "map"));
  expect_rejected(st, raw, "bad third event, existing stream", "order-1", 1, ev,
                  5, ESC_EINVAL, NEEDLES("order-1", "event 2"));

  /* Caught in the database: event 3 of 5 reuses an id stored elsewhere, so
   * the insert fails after two rows of the batch went in: none may stay. */
  esc_events stored = ESC_EVENTS_INIT;
  assert_int_equal(
      esc_read_stream(st, "order-1", 1, ESC_FORWARD, 1, &stored, &err), ESC_OK);
  assert_int_equal(stored.count, 1);
  ev[2] = good_event();
  ev[2].id = stored.items[0].id;
  ev[2].type = "Other";
  expect_rejected(st, raw, "reused id in third event", "order-5",
                  ESC_EXPECT_NO_STREAM, ev, 5, ESC_EDUPLICATE,
                  NEEDLES("order-5"));
  esc_events_release(&stored);

  esc_stream_info info;
  assert_int_equal(esc_stream_get(st, "order-5", &info, &err), ESC_ENOTFOUND);

  /* The same batch, repaired, goes in whole with consecutive versions. */
  ev[2] = good_event();
  esc_append_result res;
  if (esc_append(st, "order-5", ESC_EXPECT_NO_STREAM, ev, 5, &res, &err))
    fail_msg("append: %s", err.msg);
  assert_int_equal(res.first_version, 1);
  assert_int_equal(res.last_version, 5);

  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * A connection killed mid-append
 * ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------
 * A version someone else took
 * ------------------------------------------------------------------------ */

#define TAKEN_SCHEMA "t_bad_taken"

/* A row at the stream's next version that the streams table does not know
 * of (an owner's hand, or a writer that went around esc): the append that
 * meets it is a concurrency conflict, not "event id reused" as it was
 * reported, and the message names the constraint. */
static void a_taken_version_is_a_conflict(void **state) {
  (void)state;
  esc_store *st = fresh_with_one(TAKEN_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_test_exec(raw, "INSERT INTO " TAKEN_SCHEMA ".events (stream_id,"
                     " stream_version, event_id, event_type, schema_version,"
                     " data, tx_id) VALUES ('order-1', 2, gen_random_uuid(),"
                     " 'T', 1, '\\x80', pg_current_xact_id())");
  esc_event_data e = good_event();
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(esc_append(st, "order-1", ESC_EXPECT_ANY, &e, 1, NULL, &err),
                   ESC_ECONFLICT);
  assert_non_null(strstr(err.msg, "order-1"));
  assert_non_null(strstr(err.msg, "stream version"));
  /* A reused id is still a duplicate. */
  esc_event_data again = good_event();
  err = (esc_error)ESC_ERROR_INIT;
  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(esc_read_stream(st, "order-1", 0, ESC_FORWARD, 1, &ev, &err),
                   ESC_OK);
  again.id = ev.items[0].id;
  again.type = "Other";
  assert_int_equal(esc_append(st, "order-2", ESC_EXPECT_ANY, &again, 1, NULL,
                              &err),
                   ESC_EDUPLICATE);
  esc_events_release(&ev);
  esc_store_free(st);
}

#define KILL_SCHEMA "t_bad_kill"

struct blocked_append {
  esc_store *st;
  esc_event_data *ev;
  esc_append_result res;
  esc_status rc;
  esc_error err;
};

static void *blocked_append_main(void *arg) {
  struct blocked_append *b = arg;
  b->rc = esc_append(b->st, "acct-1", 1, b->ev, 3, &b->res, &b->err);
  return NULL;
}

static void killed_connection_loses_nothing(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(KILL_SCHEMA);
  PGconn *locker = esc_test_pg_tracked();
  PGconn *admin = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  esc_event_data first = good_event();
  if (esc_append(st, "acct-1", ESC_EXPECT_NO_STREAM, &first, 1, NULL, &err))
    fail_msg("append: %s", err.msg);

  esc_test_exec(locker, "BEGIN");
  esc_test_exec(locker, "SELECT 1 FROM " KILL_SCHEMA
                        ".streams WHERE stream_id = 'acct-1' FOR UPDATE");

  esc_event_data ev[3] = {good_event(), good_event(), good_event()};
  int pid = PQbackendPID(st->conn);
  assert_true(pid > 0);
  struct blocked_append b = {st, ev, {0}, ESC_OK, ESC_ERROR_INIT};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, blocked_append_main, &b), 0);

  /* Wait until the append is blocked on the stream's row lock. */
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
           "wait_event_type = 'Lock'",
           pid);
  long long deadline = esc_test_now_ms() + 10000;
  while (esc_test_query_ll(admin, sql) == 0) {
    if (esc_test_now_ms() > deadline)
      fail_msg("the append never blocked on the stream lock");
    esc_test_sleep_ms(10);
  }
  snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)::int", pid);
  assert_int_equal(esc_test_query_ll(admin, sql), 1);
  pthread_join(t, NULL);

  /* It was sent when the connection broke: unknown to the client. */
  if (b.rc != ESC_EUNKNOWN)
    fail_msg("killed append: %s (%s), expected outcome unknown",
             esc_strerror(b.rc), b.err.msg);
  assert_int_equal(b.err.code, ESC_EUNKNOWN);
  assert_true(strlen(b.err.msg) > 0);
  assert_non_null(strstr(b.err.msg, "acct-1"));
  esc_test_exec(locker, "ROLLBACK");

  /* Nothing of the killed append is stored. */
  assert_int_equal(esc_test_query_ll(admin, "SELECT version FROM " KILL_SCHEMA
                                            ".streams WHERE stream_id = "
                                            "'acct-1'"),
                   1);
  assert_int_equal(
      esc_test_query_ll(admin, "SELECT count(*) FROM " KILL_SCHEMA ".events"),
      1);

  /* The same append again, on the same store: it reconnects and succeeds. */
  esc_append_result res;
  if (esc_append(st, "acct-1", 1, ev, 3, &res, &err))
    fail_msg("retry: %s", err.msg);
  assert_false(res.duplicate);
  assert_int_equal(res.first_version, 2);
  assert_int_equal(res.last_version, 4);
  assert_int_not_equal(PQbackendPID(st->conn), pid);

  /* Once more (a lost reply, say): the original result, nothing new. */
  esc_append_result again;
  if (esc_append(st, "acct-1", 1, ev, 3, &again, &err))
    fail_msg("second retry: %s", err.msg);
  assert_true(again.duplicate);
  assert_int_equal(again.first_version, res.first_version);
  assert_int_equal(again.last_version, res.last_version);
  assert_int_equal(again.first_global, res.first_global);
  assert_int_equal(again.position.global, res.position.global);
  assert_int_equal(again.position.tx_id, res.position.tx_id);
  assert_int_equal(
      esc_test_query_ll(admin, "SELECT count(*) FROM " KILL_SCHEMA ".events"),
      4);
  assert_int_equal(esc_test_query_ll(admin, "SELECT version FROM " KILL_SCHEMA
                                            ".streams WHERE stream_id = "
                                            "'acct-1'"),
                   4);

  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * No server
 * ------------------------------------------------------------------------ */

static void absent_server_is_a_connection_error(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.connect_timeout_s = 3;
  long long t0 = esc_test_now_ms();
  esc_store *st =
      esc_store_open("postgresql://esc@127.0.0.1:1/esc", &opts, &err);
  assert_null(st);
  assert_int_equal(err.code, ESC_ECONN);
  assert_true(strlen(err.msg) > 0);
  if (!strstr(err.msg, "127.0.0.1") || !strstr(err.msg, "connect"))
    fail_msg("message does not say where: \"%s\"", err.msg);
  assert_true(esc_test_now_ms() - t0 < 10000);
  /* Without an esc_error to fill, it still just returns NULL. */
  assert_null(esc_store_open("postgresql://esc@127.0.0.1:1/esc", &opts, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(malformed_msgpack_is_rejected,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(oversized_events_are_rejected,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(invalid_names_and_arguments_are_rejected,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(long_names_do_not_hide_the_reason,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(bad_event_in_batch_stores_nothing,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(a_taken_version_is_a_conflict,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(killed_connection_loses_nothing,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(absent_server_is_a_connection_error,
                                esc_test_close_tracked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

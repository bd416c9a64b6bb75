/*
 * Subscriptions against a real PostgreSQL: gap-free global order
 * (guarantee 4) when transactions commit out of order, and the wake-up
 * mechanism (waiters table + NOTIFY only while someone waits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store_int.h"
#include "testenv.h"

/* {"n": 1} */
static const unsigned char PAYLOAD[] = {0x81, 0xa1, 'n', 0x01};

static esc_event_data make_event(const char *type) {
  esc_event_data e = {esc_uuid_v4(), type, 1, PAYLOAD, sizeof PAYLOAD, NULL, 0};
  return e;
}

static int uuid_cmp(const void *a, const void *b) {
  return memcmp(a, b, sizeof(esc_uuid));
}

/* Asserts that got[0..ngot) holds every id of want[0..nwant) exactly once
 * and nothing else. Sorts both arrays. */
static void assert_same_ids(esc_uuid *want, size_t nwant, esc_uuid *got,
                            size_t ngot, const char *who) {
  qsort(want, nwant, sizeof *want, uuid_cmp);
  qsort(got, ngot, sizeof *got, uuid_cmp);
  for (size_t i = 1; i < ngot; i++) {
    if (uuid_cmp(&got[i - 1], &got[i]) == 0) {
      char s[37];
      esc_uuid_format(&got[i], s);
      fail_msg("%s: event %s delivered more than once", who, s);
    }
  }
  for (size_t i = 0; i < nwant; i++) {
    if (!bsearch(&want[i], got, ngot, sizeof *got, uuid_cmp)) {
      char s[37];
      esc_uuid_format(&want[i], s);
      fail_msg("%s: event %s was never delivered (%zu of %zu delivered)", who,
               s, ngot, nwant);
    }
  }
  if (ngot != nwant)
    fail_msg("%s: %zu events delivered, %zu expected", who, ngot, nwant);
}

static bool has_id(const esc_uuid *ids, size_t n, const esc_uuid *id) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&ids[i], id, sizeof *id) == 0)
      return true;
  return false;
}

static long long waiter_rows(PGconn *raw, const char *schema, int pid) {
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.waiters WHERE pid = %d",
           schema, pid);
  return esc_test_query_ll(raw, sql);
}

/* ------------------------------------------------------------------------
 * A transaction that commits late is not skipped
 * ------------------------------------------------------------------------ */

#define LATE_SCHEMA "t_sub_late"
#define MAX_SEEN 64

/* A reader following one scope from its own checkpoint. */
struct follower {
  const char *category; /* NULL: $all */
  const char *name;
  esc_position next;
  esc_uuid seen[MAX_SEEN];
  esc_position pos[MAX_SEEN];
  size_t nseen;
};

/* Reads in small pages from the checkpoint until a read comes back empty;
 * returns how many events this call delivered. */
static size_t follow(esc_store *st, struct follower *f) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  size_t got = 0;
  for (int page = 0; page < 100; page++) {
    esc_status rc = esc_read_all(st, f->category, f->next, 2, &ev, &err);
    if (rc != ESC_OK)
      fail_msg("%s: esc_read_all: %s", f->name, err.msg);
    for (size_t i = 0; i < ev.count; i++) {
      if (f->nseen == MAX_SEEN)
        fail_msg("%s: more than %d events delivered", f->name, MAX_SEEN);
      if (f->nseen > 0 &&
          esc_position_cmp(&f->pos[f->nseen - 1], &ev.items[i].position) >= 0)
        fail_msg("%s: positions not increasing at event %zu", f->name,
                 f->nseen);
      f->seen[f->nseen] = ev.items[i].id;
      f->pos[f->nseen++] = ev.items[i].position;
    }
    got += ev.count;
    if (ev.count == 0) {
      assert_int_equal(esc_position_cmp(&ev.next, &f->next), 0);
      break;
    }
    f->next = ev.next;
  }
  esc_events_release(&ev);
  return got;
}

/* The store's view of the horizon while the late transaction is open:
 * everything is committed up to `newest`, but nothing from the late
 * event on is readable, and a subscriber's backlog holds only what it
 * could read (the early event). */
static void check_horizon_while_held(esc_store *st, int64_t newest) {
  esc_error err = ESC_ERROR_INIT;
  int64_t got = 0;
  bool yes = true;
  assert_int_equal(esc_store_newest(st, &got, &err), ESC_OK);
  assert_int_equal(got, newest);
  /* The later events are committed but behind the open transaction; the
   * late event itself is not committed, so not counted either way. */
  assert_int_equal(esc_store_readable_through(st, newest, &yes, &err), ESC_OK);
  assert_false(yes);
  esc_backlog b;
  esc_position start = ESC_POSITION_START;
  assert_int_equal(esc_store_backlog(st, NULL, &start, false, &b, &err),
                   ESC_OK);
  assert_true(b.events <= 1); /* the early event, if the horizon passed it */
  esc_backlog_release(&b);
}

/* Once all is committed and readable: per stream and per category. */
static void check_backlog_after_commit(esc_store *st, int64_t newest) {
  esc_error err = ESC_ERROR_INIT;
  bool yes = false;
  /* Other databases' transactions may hold the horizon back a moment. */
  long long deadline = esc_test_now_ms() + 15000;
  do {
    assert_int_equal(esc_store_readable_through(st, newest, &yes, &err),
                     ESC_OK);
    if (!yes)
      esc_test_sleep_ms(20);
  } while (!yes && esc_test_now_ms() < deadline);
  assert_true(yes);
  static const char *const order[] = {"order", NULL};
  static const char *const both[] = {"user", "order", "no\"such,one", NULL};
  esc_position start = ESC_POSITION_START;
  esc_backlog b;
  assert_int_equal(esc_store_backlog(st, order, &start, true, &b, &err),
                   ESC_OK);
  assert_int_equal(b.events, 7); /* early, late, a x3, b x2 */
  assert_int_equal(b.count, 4);
  for (size_t i = 0; i < b.count; i++) {
    const esc_backlog_stream *s = &b.streams[i];
    int64_t want = strcmp(s->stream_id, "order-a") == 0   ? 3
                   : strcmp(s->stream_id, "order-b") == 0 ? 2
                                                          : 1;
    assert_int_equal(s->events, want);
    assert_true(s->oldest_age_s >= 0);
  }
  esc_backlog_release(&b);
  assert_int_equal(esc_store_backlog(st, both, &start, false, &b, &err),
                   ESC_OK);
  assert_int_equal(b.count, 1);
  assert_int_equal(b.events, 9);
  esc_backlog_release(&b);
  /* Past the newest event nothing is left. */
  esc_position head;
  assert_int_equal(esc_store_head(st, &head, &err), ESC_OK);
  assert_int_equal(esc_store_backlog(st, NULL, &head, false, &b, &err),
                   ESC_OK);
  assert_int_equal(b.events, 0);
  esc_backlog_release(&b);
}

static void late_committer_is_not_skipped(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(LATE_SCHEMA);
  PGconn *late = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;

  /* Committed before the late transaction starts: readers may get it. */
  esc_event_data early = make_event("Early");
  assert_int_equal(
      esc_append(st, "order-early", ESC_EXPECT_ANY, &early, 1, &res, &err),
      ESC_OK);
  int64_t early_global = res.first_global;

  /* The late transaction appends first (takes the lowest global position
   * after "early") and stays open. */
  esc_uuid late_id = esc_uuid_v4();
  char late_text[37], sql[512];
  esc_uuid_format(&late_id, late_text);
  esc_test_exec(late, "BEGIN");
  snprintf(sql, sizeof sql,
           "SELECT status, tx_id::text, first_global FROM " LATE_SCHEMA
           ".append('order-late', -1, ARRAY['%s'::uuid], ARRAY['Late'], "
           "ARRAY[1], ARRAY['\\x81a16e01'::bytea], ARRAY[NULL::bytea])",
           late_text);
  PGresult *r = PQexec(late, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("late append: %s", PQresultErrorMessage(r));
  assert_string_equal(PQgetvalue(r, 0, 0), "0");
  uint64_t late_tx = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
  int64_t late_global = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
  PQclear(r);

  /* Later transactions that commit while the late one is open. */
  const char *streams[] = {"order-a", "order-a", "order-b", "user-1",
                           "order-b", "user-1",  "order-a"};
  const size_t nlater = sizeof streams / sizeof *streams;
  esc_uuid later_ids[16], order_ids[16], all_ids[16];
  size_t norder = 0, nall = 0;
  order_ids[norder++] = early.id;
  order_ids[norder++] = late_id;
  all_ids[nall++] = early.id;
  all_ids[nall++] = late_id;
  for (size_t i = 0; i < nlater; i++) {
    esc_event_data e = make_event("Later");
    if (esc_append(st, streams[i], ESC_EXPECT_ANY, &e, 1, &res, &err))
      fail_msg("append %s: %s", streams[i], err.msg);
    later_ids[i] = e.id;
    all_ids[nall++] = e.id;
    if (strncmp(streams[i], "order-", 6) == 0)
      order_ids[norder++] = e.id;
    /* What a reader ordering by global position alone would have skipped:
     * these committed first but sit after the late event. */
    assert_true(res.first_global > late_global);
    assert_true(res.position.tx_id > late_tx);
  }
  assert_true(early_global < late_global);

  struct follower cat = {.category = "order", .name = "category reader"};
  struct follower all = {.category = NULL, .name = "$all reader"};
  esc_position start = ESC_POSITION_START;
  cat.next = all.next = start;

  /* While the late transaction is open, nothing from a later transaction
   * may be delivered (the early event may be). */
  for (int round = 0; round < 3; round++) {
    follow(st, &cat);
    follow(st, &all);
    esc_test_sleep_ms(30);
  }
  for (size_t i = 0; i < cat.nseen; i++)
    assert_true(has_id(&early.id, 1, &cat.seen[i]));
  for (size_t i = 0; i < all.nseen; i++)
    assert_true(has_id(&early.id, 1, &all.seen[i]));
  for (size_t i = 0; i < all.nseen; i++)
    assert_false(has_id(later_ids, nlater, &all.seen[i]));
  check_horizon_while_held(st, res.first_global);

  esc_test_exec(late, "COMMIT");

  /* From their checkpoints, both readers now deliver everything, the late
   * event included, exactly once. Other databases' transactions may hold
   * the horizon back for a moment, so keep reading for a while. */
  long long deadline = esc_test_now_ms() + 15000;
  while ((cat.nseen < norder || all.nseen < nall) &&
         esc_test_now_ms() < deadline) {
    follow(st, &cat);
    follow(st, &all);
    if (cat.nseen < norder || all.nseen < nall)
      esc_test_sleep_ms(20);
  }
  esc_test_sleep_ms(100);
  follow(st, &cat);
  follow(st, &all);

  assert_true(has_id(cat.seen, cat.nseen, &late_id));
  assert_true(has_id(all.seen, all.nseen, &late_id));
  assert_same_ids(order_ids, norder, cat.seen, cat.nseen, cat.name);
  assert_same_ids(all_ids, nall, all.seen, all.nseen, all.name);
  check_backlog_after_commit(st, res.first_global);

  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * Concurrent writers, one follower: every event exactly once, in order
 * ------------------------------------------------------------------------ */

#define CONC_SCHEMA "t_sub_conc"
#define WRITERS 4
#define APPENDS 200
#define MAX_BATCH 3

struct writer {
  int index;
  esc_uuid ids[APPENDS * MAX_BATCH];
  bool in_order[APPENDS * MAX_BATCH]; /* written to category "order" */
  size_t nids;
  esc_status rc;
  esc_error err;
};

static void *writer_main(void *arg) {
  struct writer *w = arg;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = CONC_SCHEMA;
  esc_store *st = esc_store_open(NULL, &opts, &w->err);
  if (!st) {
    w->rc = w->err.code;
    return NULL;
  }
  for (int i = 0; i < APPENDS && !w->rc; i++) {
    char stream[32];
    esc_event_data ev[MAX_BATCH];
    size_t n = (size_t)(i % MAX_BATCH) + 1;
    snprintf(stream, sizeof stream, "%s-%d-%d", (i % 2) ? "order" : "user",
             w->index, i % 7);
    for (size_t k = 0; k < n; k++) {
      ev[k] = make_event("Tick");
      w->ids[w->nids + k] = ev[k].id;
      w->in_order[w->nids + k] = (i % 2) != 0;
    }
    w->rc = esc_append(st, stream, ESC_EXPECT_ANY, ev, n, NULL, &w->err);
    if (!w->rc)
      w->nids += n;
  }
  esc_store_free(st);
  return NULL;
}

struct reader {
  const char *category; /* NULL: $all */
  size_t expected;
  atomic_int writers_done; /* set once every writer has finished */
  esc_uuid *seen;
  size_t cap, nseen;
  size_t out_of_order;
  char first_disorder[160];
  esc_status rc;
  esc_error err;
};

static void *reader_main(void *arg) {
  struct reader *rd = arg;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = CONC_SCHEMA;
  esc_store *st = esc_store_open(NULL, &opts, &rd->err);
  if (!st) {
    rd->rc = rd->err.code;
    return NULL;
  }
  esc_events ev = ESC_EVENTS_INIT;
  esc_position pos = ESC_POSITION_START;
  long long deadline = esc_test_now_ms() + 25000;
  long long quiet_until = 0;
  long long last_progress = esc_test_now_ms();
  for (;;) {
    if (esc_test_now_ms() > deadline) {
      rd->rc = ESC_ETIMEDOUT;
      snprintf(rd->err.msg, sizeof rd->err.msg,
               "reader saw %zu of %zu events before its deadline", rd->nseen,
               rd->expected);
      break;
    }
    rd->rc = esc_read_all(st, rd->category, pos, 50, &ev, &rd->err);
    if (rd->rc)
      break;
    for (size_t i = 0; i < ev.count; i++) {
      if (esc_position_cmp(&pos, &ev.items[i].position) >= 0 &&
          rd->out_of_order++ == 0)
        snprintf(rd->first_disorder, sizeof rd->first_disorder,
                 "event %zu (%s) at %" PRIu64 "/%" PRId64 " came after %" PRIu64
                 "/%" PRId64,
                 rd->nseen, ev.items[i].stream_id, ev.items[i].position.tx_id,
                 ev.items[i].position.global, pos.tx_id, pos.global);
      pos = ev.items[i].position;
      if (rd->nseen < rd->cap)
        rd->seen[rd->nseen] = ev.items[i].id;
      rd->nseen++;
    }
    if (esc_position_cmp(&ev.next, &pos) != 0) {
      rd->out_of_order++;
      pos = ev.next;
    }
    if (ev.count > 0) {
      last_progress = esc_test_now_ms();
      continue;
    }
    /* Writers done and nothing new for a while: a skipped event will not
     * turn up any more. */
    if (atomic_load(&rd->writers_done) &&
        esc_test_now_ms() - last_progress > 3000)
      break;
    if (rd->nseen >= rd->expected) {
      /* Everything seen: linger briefly so duplicates would show up. */
      if (quiet_until == 0)
        quiet_until = esc_test_now_ms() + 300;
      else if (esc_test_now_ms() > quiet_until)
        break;
    }
    esc_status w =
        esc_wait_for_events(st, rd->category, pos, 200, 100, &rd->err);
    if (w != ESC_OK && w != ESC_ETIMEDOUT) {
      rd->rc = w;
      break;
    }
  }
  esc_events_release(&ev);
  esc_store_free(st);
  return NULL;
}

static void check_reader(struct reader *rd, esc_uuid *want, size_t nwant,
                         const char *who) {
  if (rd->rc)
    fail_msg("%s: %s (%s)", who, esc_strerror(rd->rc), rd->err.msg);
  if (rd->out_of_order)
    fail_msg("%s: %zu events out of order; the first: %s", who,
             rd->out_of_order, rd->first_disorder);
  assert_true(rd->nseen <= rd->cap);
  assert_same_ids(want, nwant, rd->seen, rd->nseen, who);
}

static void concurrent_writers_two_followers(void **state) {
  (void)state;
  esc_store_free(esc_test_fresh_store(CONC_SCHEMA));
  static struct writer w[WRITERS];
  pthread_t wt[WRITERS], rt[2];
  size_t total = 0, in_order = 0;
  for (int i = 0; i < APPENDS; i++) {
    total += (size_t)(i % MAX_BATCH) + 1;
    if (i % 2)
      in_order += (size_t)(i % MAX_BATCH) + 1;
  }
  total *= WRITERS;
  in_order *= WRITERS;

  /* A $all follower and an "order" category follower. */
  static struct reader rd[2];
  memset(rd, 0, sizeof rd);
  rd[0].category = NULL;
  rd[0].expected = total;
  rd[1].category = "order";
  rd[1].expected = in_order;
  for (int r = 0; r < 2; r++) {
    rd[r].cap = rd[r].expected * 2;
    rd[r].seen = calloc(rd[r].cap, sizeof *rd[r].seen);
    assert_non_null(rd[r].seen);
    assert_int_equal(pthread_create(&rt[r], NULL, reader_main, &rd[r]), 0);
  }
  for (int i = 0; i < WRITERS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].index = i;
    assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &w[i]), 0);
  }
  for (int i = 0; i < WRITERS; i++)
    pthread_join(wt[i], NULL);
  for (int r = 0; r < 2; r++) {
    atomic_store(&rd[r].writers_done, 1);
    pthread_join(rt[r], NULL);
  }

  esc_uuid *written = calloc(total, sizeof *written);
  esc_uuid *ordered = calloc(total, sizeof *ordered);
  assert_non_null(written);
  assert_non_null(ordered);
  size_t nwritten = 0, nordered = 0;
  for (int i = 0; i < WRITERS; i++) {
    if (w[i].rc)
      fail_msg("writer %d: %s", i, w[i].err.msg);
    for (size_t k = 0; k < w[i].nids; k++) {
      written[nwritten++] = w[i].ids[k];
      if (w[i].in_order[k])
        ordered[nordered++] = w[i].ids[k];
    }
  }
  assert_int_equal(nwritten, total);
  assert_int_equal(nordered, in_order);
  check_reader(&rd[0], written, nwritten, "$all follower");
  check_reader(&rd[1], ordered, nordered, "category follower");
  free(written);
  free(ordered);
  free(rd[0].seen);
  free(rd[1].seen);
}

/* ------------------------------------------------------------------------
 * esc_wait_for_events
 * ------------------------------------------------------------------------ */

#define WAIT_SCHEMA "t_sub_wait"

struct delayed_append {
  const char *stream;
  int delay_ms;
  esc_status rc;
  esc_error err;
};

static void *delayed_append_main(void *arg) {
  struct delayed_append *d = arg;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = WAIT_SCHEMA;
  esc_store *st = esc_store_open(NULL, &opts, &d->err);
  if (!st) {
    d->rc = d->err.code;
    return NULL;
  }
  esc_test_sleep_ms(d->delay_ms);
  esc_event_data e = make_event("Poke");
  d->rc = esc_append(st, d->stream, ESC_EXPECT_ANY, &e, 1, NULL, &d->err);
  esc_store_free(st);
  return NULL;
}

static void append_one_to(esc_store *st, const char *stream) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_data e = make_event("Poke");
  if (esc_append(st, stream, ESC_EXPECT_ANY, &e, 1, NULL, &err))
    fail_msg("append %s: %s", stream, err.msg);
}

static int wait_setup(void **state) {
  *state = esc_test_fresh_store(WAIT_SCHEMA);
  return 0;
}

static int wait_teardown(void **state) {
  esc_test_close_tracked(state);
  esc_store_free(*state);
  return 0;
}

/* The head of a scope right now, to wait for what comes after it: reads
 * from the start until every stored event of the scope was delivered (a
 * transaction elsewhere may hold the horizon back for a moment), so that
 * nothing readable is left after it. */
static esc_position head_of(esc_store *st, PGconn *raw, const char *category) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM " WAIT_SCHEMA ".events WHERE %s%s%s",
           category ? "split_part(stream_id, '-', 1) = '" : "true",
           category ? category : "", category ? "'" : "");
  long long stored = esc_test_query_ll(raw, sql);
  long long deadline = esc_test_now_ms() + 10000;
  for (;;) {
    esc_position pos = ESC_POSITION_START;
    long long seen = 0;
    for (;;) {
      if (esc_read_all(st, category, pos, 1000, &ev, &err))
        fail_msg("read: %s", err.msg);
      if (ev.count == 0)
        break;
      seen += (long long)ev.count;
      pos = ev.next;
    }
    if (seen == stored) {
      esc_events_release(&ev);
      return pos;
    }
    if (esc_test_now_ms() > deadline)
      fail_msg("only %lld of %lld events readable", seen, stored);
    esc_test_sleep_ms(20);
  }
}

static void wait_times_out_when_nothing_comes(void **state) {
  esc_store *st = *state;
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  int pid = PQbackendPID(st->conn);
  const char *scopes[] = {"order", NULL};
  for (int i = 0; i < 2; i++) {
    esc_position after = head_of(st, raw, scopes[i]);
    long long t0 = esc_test_now_ms();
    esc_status rc = esc_wait_for_events(st, scopes[i], after, 300, 100, &err);
    long long took = esc_test_now_ms() - t0;
    assert_int_equal(rc, ESC_ETIMEDOUT);
    assert_int_equal(err.code, ESC_ETIMEDOUT);
    assert_true(took >= 280);
    assert_true(took < 2000);
    assert_int_equal(waiter_rows(raw, WAIT_SCHEMA, pid), 0);
  }
}

static void wait_wakes_on_append_to_its_category(void **state) {
  esc_store *st = *state;
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  int pid = PQbackendPID(st->conn);
  const char *scopes[] = {"order", NULL};
  for (int i = 0; i < 2; i++) {
    esc_position after = head_of(st, raw, scopes[i]);
    struct delayed_append d = {"order-7", 200, ESC_OK, ESC_ERROR_INIT};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, delayed_append_main, &d), 0);
    long long t0 = esc_test_now_ms();
    /* The poll alone would take 5 s: returning sooner means NOTIFY. */
    esc_status rc =
        esc_wait_for_events(st, scopes[i], after, 10000, 5000, &err);
    long long took = esc_test_now_ms() - t0;
    pthread_join(t, NULL);
    if (d.rc)
      fail_msg("appender: %s", d.err.msg);
    if (rc)
      fail_msg("wait: %s", err.msg);
    assert_true(took >= 100);
    assert_true(took < 3000);
    assert_int_equal(waiter_rows(raw, WAIT_SCHEMA, pid), 0);
  }
}

static PGnotify *await_notify(PGconn *conn, int ms) {
  long long deadline = esc_test_now_ms() + ms;
  for (;;) {
    PQconsumeInput(conn);
    PGnotify *n = PQnotifies(conn);
    long long left = deadline - esc_test_now_ms();
    if (n || left <= 0)
      return n;
    struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
    poll(&pfd, 1, (int)left);
  }
}

static void wait_ignores_other_categories(void **state) {
  esc_store *st = *state;
  PGconn *raw = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  int pid = PQbackendPID(st->conn);

  /* A $all waiter elsewhere makes every append notify, so the category
   * waiter really receives the "user" hint and has to ignore it. */
  esc_test_exec(raw, "LISTEN \"" WAIT_SCHEMA "_events\"");
  esc_test_exec(raw, "SELECT " WAIT_SCHEMA ".wait_register(NULL)");

  esc_position after = head_of(st, raw, "order");
  struct delayed_append d = {"user-1", 200, ESC_OK, ESC_ERROR_INIT};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, delayed_append_main, &d), 0);
  long long t0 = esc_test_now_ms();
  esc_status rc = esc_wait_for_events(st, "order", after, 1200, 5000, &err);
  long long took = esc_test_now_ms() - t0;
  pthread_join(t, NULL);
  if (d.rc)
    fail_msg("appender: %s", d.err.msg);
  assert_int_equal(rc, ESC_ETIMEDOUT);
  assert_true(took >= 1150);
  assert_int_equal(waiter_rows(raw, WAIT_SCHEMA, pid), 0);

  /* The append did notify (for "user"): the waiter was told and ignored it. */
  PGnotify *n = await_notify(raw, 2000);
  assert_non_null(n);
  assert_string_equal(n->relname, WAIT_SCHEMA "_events");
  assert_string_equal(n->extra, "user");
  PQfreemem(n);

  esc_test_exec(raw, "SELECT " WAIT_SCHEMA ".wait_unregister()");
}

/* An event that becomes readable without any NOTIFY for it: it was
 * committed (before anyone waited) behind an older open transaction, which
 * then ends. Only the bounded poll can notice. */
struct horizon_release {
  PGconn *holder;
  int delay_ms;
  atomic_int stop; /* noise: stop appending */
  bool noise;      /* append to "user-1" every 50 ms meanwhile */
  int noise_appends;
  esc_status rc;
  esc_error err;
};

static void *release_horizon_main(void *arg) {
  struct horizon_release *h = arg;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = WAIT_SCHEMA;
  esc_store *st = esc_store_open(NULL, &opts, &h->err);
  if (!st) {
    h->rc = h->err.code;
    return NULL;
  }
  long long release_at = esc_test_now_ms() + h->delay_ms;
  bool released = false;
  while (!atomic_load(&h->stop) && !h->rc) {
    if (!released && esc_test_now_ms() >= release_at) {
      PGresult *r = PQexec(h->holder, "COMMIT");
      if (PQresultStatus(r) != PGRES_COMMAND_OK)
        h->rc = ESC_EIO;
      PQclear(r);
      released = true;
      if (!h->noise)
        break;
    }
    if (h->noise) {
      esc_event_data e = make_event("Noise");
      h->rc = esc_append(st, "user-1", ESC_EXPECT_ANY, &e, 1, NULL, &h->err);
      h->noise_appends++;
    }
    esc_test_sleep_ms(h->noise ? 50 : 10);
  }
  esc_store_free(st);
  return NULL;
}

static void horizon_release_case(esc_store *st, bool noise) {
  PGconn *raw = esc_test_pg_tracked();
  PGconn *holder = esc_test_pg_tracked();
  esc_error err = ESC_ERROR_INIT;
  int pid = PQbackendPID(st->conn);
  esc_position after = head_of(st, raw, "order");

  /* An older transaction with an id holds the horizon back... */
  esc_test_exec(holder, "BEGIN");
  esc_test_exec(holder, "SELECT pg_current_xact_id()");
  /* ...so this committed event is not readable yet; nobody waits, so it
   * sends no NOTIFY either. */
  append_one_to(st, "order-held");
  esc_events ev = ESC_EVENTS_INIT;
  assert_int_equal(esc_read_all(st, "order", after, 10, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 0);

  if (noise) /* every append notifies: the waiter hears "user" hints */
    esc_test_exec(raw, "SELECT " WAIT_SCHEMA ".wait_register(NULL)");
  struct horizon_release h = {holder, 400, 0, noise, 0, ESC_OK, ESC_ERROR_INIT};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, release_horizon_main, &h), 0);
  long long t0 = esc_test_now_ms();
  esc_status rc = esc_wait_for_events(st, "order", after, 5000, 200, &err);
  long long took = esc_test_now_ms() - t0;
  atomic_store(&h.stop, 1);
  pthread_join(t, NULL);
  if (h.rc)
    fail_msg("horizon release thread: %s", h.err.msg);
  if (noise)
    esc_test_exec(raw, "SELECT " WAIT_SCHEMA ".wait_unregister()");
  if (rc != ESC_OK)
    fail_msg("wait returned %s after %lld ms (%s); the event became "
             "readable at ~400 ms and the poll is 200 ms%s",
             esc_strerror(rc), took, err.msg,
             noise ? " (other categories' hints kept arriving)" : "");
  assert_true(took >= 300);
  assert_true(took < 2000);
  if (noise)
    assert_true(h.noise_appends >= 3);
  assert_int_equal(waiter_rows(raw, WAIT_SCHEMA, pid), 0);

  assert_int_equal(esc_read_all(st, "order", after, 10, &ev, &err), ESC_OK);
  assert_int_equal(ev.count, 1);
  assert_string_equal(ev.items[0].stream_id, "order-held");
  esc_events_release(&ev);
}

static void wait_polls_when_the_horizon_moves(void **state) {
  horizon_release_case(*state, false);
}

/* The poll must happen every poll_ms even while hints for other categories
 * keep the socket busy. */
static void wait_polls_despite_other_hints(void **state) {
  horizon_release_case(*state, true);
}

/* ------------------------------------------------------------------------
 * Appends notify only while someone waits
 * ------------------------------------------------------------------------ */

#define NOTIFY_SCHEMA "t_sub_notify"

static void append_one(esc_store *st, const char *stream) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_data e = make_event("Poke");
  if (esc_append(st, stream, ESC_EXPECT_ANY, &e, 1, NULL, &err))
    fail_msg("append %s: %s", stream, err.msg);
}

static void notify_only_when_someone_waits(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(NOTIFY_SCHEMA);
  PGconn *raw = esc_test_pg_tracked();
  esc_test_exec(raw, "LISTEN \"" NOTIFY_SCHEMA "_events\"");

  /* Nobody waits: no NOTIFY (and so no commit-time lock). */
  append_one(st, "order-1");
  PGnotify *n = await_notify(raw, 200);
  assert_null(n);
  assert_int_equal(
      esc_test_query_ll(raw, "SELECT count(*) FROM " NOTIFY_SCHEMA ".waiters"),
      0);

  /* A waiter for another category: still none. */
  esc_test_exec(raw, "SELECT " NOTIFY_SCHEMA ".wait_register('user')");
  append_one(st, "order-2");
  n = await_notify(raw, 200);
  assert_null(n);

  /* A waiter for this category: one notification naming the category. */
  append_one(st, "user-9");
  n = await_notify(raw, 3000);
  assert_non_null(n);
  assert_string_equal(n->relname, NOTIFY_SCHEMA "_events");
  assert_string_equal(n->extra, "user");
  PQfreemem(n);

  /* A $all waiter: every append notifies. */
  esc_test_exec(raw, "SELECT " NOTIFY_SCHEMA ".wait_register(NULL)");
  append_one(st, "order-3");
  n = await_notify(raw, 3000);
  assert_non_null(n);
  assert_string_equal(n->extra, "order");
  PQfreemem(n);

  /* Unregistered again: silence. */
  esc_test_exec(raw, "SELECT " NOTIFY_SCHEMA ".wait_unregister()");
  append_one(st, "order-4");
  n = await_notify(raw, 200);
  assert_null(n);

  esc_store_free(st);
}

/* ------------------------------------------------------------------------
 * esc_read_all in two halves
 * ------------------------------------------------------------------------ */

#define SPLIT_SCHEMA "t_sub_split"

static void assert_same_events(const esc_events *a, const esc_events *b) {
  assert_int_equal(a->count, b->count);
  for (size_t i = 0; i < a->count; i++) {
    assert_memory_equal(a->items[i].id.bytes, b->items[i].id.bytes, 16);
    assert_int_equal(a->items[i].position.global, b->items[i].position.global);
  }
  assert_int_equal(a->next.global, b->next.global);
}

/* Waits until the first n events of the store are readable: a transaction
 * in another test's database may hold the horizon back for a moment, and
 * once past our events the horizon stays past them. */
static void wait_readable(esc_store *st, size_t n) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_error err = ESC_ERROR_INIT;
  long long deadline = esc_test_now_ms() + 15000;
  for (;;) {
    esc_position start = ESC_POSITION_START;
    if (esc_read_all(st, NULL, start, 1000, &ev, &err))
      fail_msg("read: %s", err.msg);
    if (ev.count >= n)
      break;
    if (esc_test_now_ms() > deadline)
      fail_msg("only %zu of %zu events became readable", ev.count, n);
    esc_test_sleep_ms(20);
  }
  esc_events_release(&ev);
}

/* A sent read returns what esc_read_all returns; a read nobody received is
 * dropped by the next call, which then works as if it never was; receive
 * without a send is an error, not a hang. */
static void split_read_matches_and_drops_cleanly(void **state) {
  (void)state;
  esc_store *st = esc_test_fresh_store(SPLIT_SCHEMA);
  esc_error err = ESC_ERROR_INIT;
  esc_events whole = ESC_EVENTS_INIT, half = ESC_EVENTS_INIT;
  esc_position start = ESC_POSITION_START;
  for (int i = 0; i < 5; i++)
    append_one(st, i % 2 ? "order-a" : "cart-b");
  wait_readable(st, 5);

  assert_int_equal(esc_read_all(st, "order", start, 10, &whole, &err), ESC_OK);
  assert_int_equal(whole.count, 2);
  assert_int_equal(esc_read_all_send(st, "order", start, 10, &err), ESC_OK);
  assert_int_equal(esc_read_all_receive(st, &half, &err), ESC_OK);
  assert_same_events(&whole, &half);

  /* an empty page continues from where it was asked */
  assert_int_equal(esc_read_all_send(st, "order", whole.next, 10, &err),
                   ESC_OK);
  assert_int_equal(esc_read_all_receive(st, &half, &err), ESC_OK);
  assert_int_equal(half.count, 0);
  assert_int_equal(half.next.global, whole.next.global);

  /* a read left in flight: the append after it works, and so does a read */
  assert_int_equal(esc_read_all_send(st, NULL, start, 10, &err), ESC_OK);
  append_one(st, "order-c");
  assert_int_equal(esc_read_all_receive(st, &half, &err), ESC_EINVAL);
  assert_non_null(strstr(err.msg, "esc_read_all_send"));
  wait_readable(st, 6);
  assert_int_equal(esc_read_all(st, NULL, start, 10, &whole, &err), ESC_OK);
  assert_int_equal(whole.count, 6);

  /* a second send replaces the first */
  assert_int_equal(esc_read_all_send(st, NULL, start, 1, &err), ESC_OK);
  assert_int_equal(esc_read_all_send(st, "order", start, 10, &err), ESC_OK);
  assert_int_equal(esc_read_all_receive(st, &half, &err), ESC_OK);
  assert_int_equal(half.count, 3);

  /* bad input is refused before anything is sent */
  assert_int_equal(esc_read_all_send(st, "no-dash-allowed", start, 10, &err),
                   ESC_EINVAL);
  assert_int_equal(esc_read_all_receive(st, &half, &err), ESC_EINVAL);

  esc_events_release(&whole);
  esc_events_release(&half);
  esc_store_free(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(late_committer_is_not_skipped,
                                esc_test_close_tracked),
      cmocka_unit_test_teardown(concurrent_writers_two_followers,
                                esc_test_close_tracked),
      cmocka_unit_test_setup_teardown(wait_times_out_when_nothing_comes,
                                      wait_setup, wait_teardown),
      cmocka_unit_test_setup_teardown(wait_wakes_on_append_to_its_category,
                                      wait_setup, wait_teardown),
      cmocka_unit_test_setup_teardown(wait_ignores_other_categories, wait_setup,
                                      wait_teardown),
      cmocka_unit_test_setup_teardown(wait_polls_when_the_horizon_moves,
                                      wait_setup, wait_teardown),
      cmocka_unit_test_setup_teardown(wait_polls_despite_other_hints,
                                      wait_setup, wait_teardown),
      cmocka_unit_test_teardown(notify_only_when_someone_waits,
                                esc_test_close_tracked),
      cmocka_unit_test(split_read_matches_and_drops_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

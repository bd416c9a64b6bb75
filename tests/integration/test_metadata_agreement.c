/*
 * One validator for metadata, on both sides (issue #11 items 1 and 5): the
 * server's <schema>.metadata_valid(), which the append functions apply to
 * whatever a writer sends, accepts exactly what the client accepts —
 * esc_msgpack_check and then esc_metadata_decode. Checked on what
 * esc_metadata_encode writes (the server's short cut), on hand-made maps
 * of every msgpack kind, and on a few thousand seeded mutations of both.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testenv.h"

#define SCHEMA "t_md_agree"
#define MAX_BYTES 512

static PGconn *conn;

static bool client_accepts(const unsigned char *p, size_t n) {
  esc_metadata m;
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  return esc_msgpack_check(p, n, &limits, NULL) == ESC_OK &&
         esc_metadata_decode(p, n, &m, NULL, 0, NULL) == ESC_OK;
}

/* What the append functions let through: the short cut for what the
 * encoder writes, or the full walk. */
static bool server_accepts(const unsigned char *p, size_t n) {
  const char *values[] = {(const char *)p};
  int lengths[] = {(int)n}, formats[] = {1};
  PGresult *r = PQexecParams(conn,
                             "SELECT " SCHEMA ".metadata_canonical($1)"
                             " OR " SCHEMA ".metadata_valid($1)",
                             1, NULL, values, lengths, formats, 0);
  if (PQresultStatus(r) != PGRES_TUPLES_OK)
    fail_msg("metadata_valid: %s", PQerrorMessage(conn));
  bool ok = PQgetvalue(r, 0, 0)[0] == 't';
  PQclear(r);
  return ok;
}

static long long checked, accepted;

static void agree(const unsigned char *p, size_t n, const char *what) {
  bool c = client_accepts(p, n), s = server_accepts(p, n);
  if (c != s) {
    char hex[2 * MAX_BYTES + 1] = "";
    for (size_t i = 0; i < n && i < MAX_BYTES; i++)
      snprintf(hex + 2 * i, 3, "%02x", p[i]);
    fail_msg("%s: client %s, server %s: %s", what, c ? "accepts" : "refuses",
             s ? "accepts" : "refuses", hex);
  }
  checked++;
  accepted += c;
}

/* ------------------------------------------------------------ inputs -- */

struct sample {
  unsigned char b[MAX_BYTES];
  size_t n;
};

static void from_hex(struct sample *s, const char *hex) {
  s->n = 0;
  for (; hex[0] && hex[1] && s->n < MAX_BYTES; hex += 2)
    sscanf(hex, "%2hhx", &s->b[s->n++]);
}

static void encoded(struct sample *s, bool corr, bool cause, int actor_len,
                    int64_t time_us) {
  static char actor[301];
  memset(actor, 'a', sizeof actor - 1);
  esc_metadata m = ESC_METADATA_INIT;
  if (corr)
    m.correlation_id = esc_uuid_v4();
  if (cause)
    m.causation_id = esc_uuid_v4();
  if (actor_len >= 0) {
    actor[actor_len] = '\0';
    m.actor = actor;
  }
  m.time_us = time_us;
  void *out;
  size_t len;
  assert_int_equal(esc_metadata_encode(&m, &out, &len, NULL), ESC_OK);
  assert_true(len <= MAX_BYTES);
  memcpy(s->b, out, len);
  s->n = len;
  free(out);
  if (actor_len >= 0)
    actor[actor_len] = 'a';
}

/* Maps the encoder never writes: other key orders and encodings, nil for
 * known keys, unknown keys of every kind, nesting at and past the limit. */
static const char *const handmade[] = {
    "80",                                     /* {} */
    "81a474696d65c0",                         /* time: nil */
    "81a474696d65cb3ff0000000000000",         /* time: a float */
    "81a474696d65cf7fffffffffffffff",         /* time: INT64_MAX */
    "81a474696d65cf8000000000000000",         /* time: 2^63 */
    "81a474696d65d3ffffffffffffffff",         /* time: -1 as int64 */
    "81d90474696d6501",                       /* "time" as str8 */
    "81a56163746f72c403616263",               /* actor: binary */
    "81a56163746f72da0003616263",             /* actor: str16 */
    "82a474696d6501a474696d65a131",           /* time twice, then a string */
    "81a178c70301616263",                     /* x: ext8 */
    "81a178d401ff",                           /* x: fixext1 */
    "81a17892c0c3",                           /* x: [nil, true] */
    "81a17881a179a17a",                       /* x: {y: "z"} */
    "81a178c1",                               /* x: 0xc1 */
    "81a178dc0002c0c0",                       /* x: array16 of 2 */
    "81a178dd00000002c0",                     /* x: array32 of 2, one missing */
    "de000181a474696d6501",                   /* map16 wrapping a map as key */
    "df00000001a474696d6501",                 /* map32 */
    "81ae636f7272656c6174696f6e5f6964a3616263", /* correlation_id: "abc" */
    "9101",                                   /* an array */
    "",                                       /* nothing */
    "81",                                     /* a map missing its entry */
    "81a474696d6501c0",                       /* trailing byte */
    NULL};

static void nested(struct sample *s, int depth) {
  /* {x: [[[...]]]} with depth containers in all. */
  s->n = 0;
  s->b[s->n++] = 0x81;
  s->b[s->n++] = 0xa1;
  s->b[s->n++] = 'x';
  for (int i = 1; i < depth; i++)
    s->b[s->n++] = 0x91;
  s->b[s->n++] = 0xc0;
}

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* One random change: a byte replaced, flipped, dropped, added, or the
 * end cut. */
static void mutate(struct sample *s) {
  size_t at = s->n ? next() % s->n : 0;
  switch (next() % 5) {
  case 0:
    if (s->n)
      s->b[at] = (unsigned char)next();
    break;
  case 1:
    if (s->n)
      s->b[at] ^= (unsigned char)(1u << (next() % 8));
    break;
  case 2:
    if (s->n) {
      memmove(s->b + at, s->b + at + 1, s->n - at - 1);
      s->n--;
    }
    break;
  case 3:
    if (s->n < MAX_BYTES) {
      memmove(s->b + at + 1, s->b + at, s->n - at);
      s->b[at] = (unsigned char)next();
      s->n++;
    }
    break;
  default:
    s->n = at;
  }
}

/* ------------------------------------------------------------- tests -- */

static void what_the_encoder_writes_is_accepted(void **state) {
  (void)state;
  const int actors[] = {-1, 0, 5, 31, 32, 255, 256};
  const int64_t times[] = {0, 1, 127, 128, -1, -33, 65536, INT64_MAX,
                           INT64_MIN, 1700000000000000};
  struct sample s;
  for (int mask = 0; mask < 4; mask++)
    for (size_t a = 0; a < sizeof actors / sizeof *actors; a++)
      for (size_t t = 0; t < sizeof times / sizeof *times; t++) {
        encoded(&s, mask & 1, mask & 2, actors[a], times[t]);
        assert_true(client_accepts(s.b, s.n));
        agree(s.b, s.n, "encoded");
      }
}

static void both_sides_agree_on_other_maps(void **state) {
  (void)state;
  struct sample s;
  for (const char *const *h = handmade; *h; h++) {
    from_hex(&s, *h);
    agree(s.b, s.n, *h);
  }
  for (int depth = 30; depth <= 34; depth++) {
    nested(&s, depth);
    agree(s.b, s.n, "nested");
  }
}

static void both_sides_agree_on_mutations(void **state) {
  (void)state;
  struct sample base[8], s;
  encoded(&base[0], true, true, 7, 1700000000000000);
  encoded(&base[1], false, true, 40, -5);
  encoded(&base[2], true, false, -1, 3);
  encoded(&base[3], false, false, 300, INT64_MAX);
  from_hex(&base[4], handmade[12]);
  from_hex(&base[5], handmade[13]);
  from_hex(&base[6], handmade[9]);
  nested(&base[7], 31);
  long long before = accepted;
  for (int i = 0; i < 3000; i++) {
    s = base[i % 8];
    for (int k = 1 + (int)(next() % 3); k > 0; k--)
      mutate(&s);
    agree(s.b, s.n, "mutated");
  }
  /* Mutations must reach both verdicts, or the test proves little. */
  assert_true(accepted - before > 100);
  assert_true(accepted - before < 2900);
  print_message("      %lld inputs, %lld accepted\n", checked, accepted);
}

/* The UUID check runs inside every metadata check of every append. As a
 * function call of its own, PostgreSQL parses and plans its body anew in
 * each transaction (a fifth of a one-event append's server time); it
 * must be inlined into its caller's expression instead. */
static void the_uuid_check_is_inlined(void **state) {
  (void)state;
  PGresult *r = PQexec(conn, "EXPLAIN (VERBOSE, COSTS OFF) SELECT " SCHEMA
                             ".is_uuid_text(convert_to(now()::text, 'UTF8'))");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  bool saw_output = false;
  for (int i = 0; i < PQntuples(r); i++) {
    const char *line = PQgetvalue(r, i, 0);
    if (!strstr(line, "Output:"))
      continue;
    saw_output = true;
    if (strstr(line, "is_uuid_text"))
      fail_msg("is_uuid_text is called, not inlined: %s", line);
  }
  PQclear(r);
  assert_true(saw_output);
  r = PQexec(conn, "SELECT " SCHEMA ".is_uuid_text(NULL) IS FALSE");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_string_equal(PQgetvalue(r, 0, 0), "t");
  PQclear(r);
}

static int setup(void **state) {
  esc_store *st = esc_test_fresh_store(SCHEMA);
  *state = st;
  conn = esc_test_pg();
  return 0;
}

static int teardown(void **state) {
  PQfinish(conn);
  esc_store_free(*state);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(what_the_encoder_writes_is_accepted),
      cmocka_unit_test(both_sides_agree_on_other_maps),
      cmocka_unit_test(both_sides_agree_on_mutations),
      cmocka_unit_test(the_uuid_check_is_inlined),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

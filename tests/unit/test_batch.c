/*
 * Unit tests: the batch a projection handler writes into
 * (projections/src/batch.c): the flat argument layout the apply script
 * reads, dropping a failed event's commands, scratch strings that never
 * move, binary-safe arguments. No servers.
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

/* projections/src is not on the tests' include path */
#include "worker_int.h"

static const esc_projection PROJ = {.name = "orders", .version = 1};

/* Asserts that the batch's flat list is exactly want[0..n) (strings). */
static void assert_args(const esc_projection_ctx *ctx, const char *const *want,
                        size_t n) {
  if (ctx->nargs != n)
    fail_msg("batch has %zu arguments, expected %zu", ctx->nargs, n);
  for (size_t i = 0; i < n; i++) {
    if (ctx->arglens[i] != strlen(want[i]) ||
        memcmp(ctx->args[i], want[i], ctx->arglens[i]) != 0)
      fail_msg("argument %zu is \"%.*s\", expected \"%s\"", i,
               (int)ctx->arglens[i], ctx->args[i], want[i]);
  }
}

static void test_init_and_accessors(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 2, 7);
  assert_string_equal(ctx.prefix, "orders:g7:");
  assert_int_equal(esc_ctx_partition(&ctx), 2);
  assert_int_equal(esc_ctx_generation(&ctx), 7);
  assert_int_equal(ctx.nargs, 0);
  assert_int_equal(ctx.ncommands, 0);
  esc__ctx_begin_event(&ctx);
  assert_string_equal(esc_ctx_key(&ctx, "order:%d", 42), "orders:g7:order:42");
  assert_string_equal(esc_ctx_key(&ctx, "totals"), "orders:g7:totals");
  assert_string_equal(esc_ctx_i64(&ctx, 0), "0");
  assert_string_equal(esc_ctx_i64(&ctx, INT64_MIN), "-9223372036854775808");
  assert_string_equal(esc_ctx_i64(&ctx, INT64_MAX), "9223372036854775807");
  esc__ctx_release(&ctx);
  esc__ctx_release(&ctx); /* twice is fine */
  esc__ctx_release(NULL);
}

static void test_layout(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc__ctx_begin_event(&ctx);
  const char *key = esc_ctx_key(&ctx, "order:%s", "a1");
  assert_int_equal(esc_ctx_cmd(&ctx, "HSET", key, "status", "paid", NULL),
                   ESC_OK);
  const char *argv[] = {"INCRBY", "orders:g1:count", "5"};
  assert_int_equal(esc_ctx_command(&ctx, 3, argv, NULL), ESC_OK);
  assert_int_equal(esc_ctx_cmd(&ctx, "PING", NULL), ESC_OK);
  static const char *const want[] = {
      "4",   "HSET",   "orders:g1:order:a1", "status", "paid",
      "3",   "INCRBY", "orders:g1:count",    "5",      "1",
      "PING"};
  assert_args(&ctx, want, sizeof want / sizeof want[0]);
  assert_int_equal(ctx.ncommands, 3);
  /* copies, NUL-terminated: the caller's strings are not referenced */
  assert_ptr_not_equal(ctx.args[2], key);
  assert_int_equal(ctx.args[2][ctx.arglens[2]], '\0');

  esc__ctx_reset(&ctx);
  assert_int_equal(ctx.nargs, 0);
  assert_int_equal(ctx.ncommands, 0);
  assert_int_equal(esc_ctx_cmd(&ctx, "DEL", "k", NULL), ESC_OK);
  static const char *const want2[] = {"2", "DEL", "k"};
  assert_args(&ctx, want2, 3);
  esc__ctx_release(&ctx);
}

static void test_invalid_commands(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc__ctx_begin_event(&ctx);
  const char *argv[] = {"SET", NULL, "v"};
  assert_int_equal(esc_ctx_command(&ctx, 0, argv, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_command(&ctx, -1, argv, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_command(&ctx, 1, NULL, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_command(&ctx, 3, argv, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_command(NULL, 1, argv, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_cmd(&ctx, NULL), ESC_EINVAL);
  assert_int_equal(esc_ctx_cmd(NULL, "PING", NULL), ESC_EINVAL);
  assert_null(esc_ctx_key(&ctx, NULL));
  assert_null(esc_ctx_key(NULL, "x"));
  assert_null(esc_ctx_i64(NULL, 1));
  assert_int_equal(ctx.nargs, 0);
  assert_int_equal(ctx.ncommands, 0);
  esc__ctx_release(&ctx);
}

/* esc_ctx_cmd_i64: one key and a decimal integer, the full int64 range;
 * a NULL key is refused rather than read as the end of the list. */
static void test_cmd_i64(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc__ctx_begin_event(&ctx);
  const char *key = esc_ctx_key(&ctx, "balance:%s", "a-1");
  assert_int_equal(esc_ctx_cmd_i64(&ctx, "INCRBY", key, -42), ESC_OK);
  assert_int_equal(esc_ctx_cmd_i64(&ctx, "SET", key, INT64_MIN), ESC_OK);
  assert_int_equal(esc_ctx_cmd_i64(&ctx, "SET", key, INT64_MAX), ESC_OK);
  static const char *const want[] = {
      "3", "INCRBY", "orders:g1:balance:a-1", "-42",
      "3", "SET",    "orders:g1:balance:a-1", "-9223372036854775808",
      "3", "SET",    "orders:g1:balance:a-1", "9223372036854775807"};
  assert_args(&ctx, want, sizeof want / sizeof want[0]);
  assert_int_equal(esc_ctx_cmd_i64(&ctx, "SET", NULL, 1), ESC_EINVAL);
  assert_int_equal(esc_ctx_cmd_i64(&ctx, NULL, key, 1), ESC_EINVAL);
  assert_int_equal(esc_ctx_cmd_i64(NULL, "SET", key, 1), ESC_EINVAL);
  assert_int_equal(ctx.ncommands, 3);
  esc__ctx_release(&ctx);
}

static void test_binary_args(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc__ctx_begin_event(&ctx);
  static const char key[] = "orders:g1:k\0ey";
  static const char val[] = {'a', '\0', 'b', '\xff', '\0'};
  const char *argv[] = {"SET", key, val, ""};
  const size_t lens[] = {3, sizeof key - 1, sizeof val, 0};
  assert_int_equal(esc_ctx_command(&ctx, 4, argv, lens), ESC_OK);
  assert_int_equal(ctx.nargs, 5);
  assert_string_equal(ctx.args[0], "4");
  assert_int_equal(ctx.arglens[2], sizeof key - 1);
  assert_memory_equal(ctx.args[2], key, sizeof key - 1);
  assert_int_equal(ctx.arglens[3], sizeof val);
  assert_memory_equal(ctx.args[3], val, sizeof val);
  assert_int_equal(ctx.arglens[4], 0); /* an empty argument is kept */
  assert_string_equal(ctx.args[4], "");
  esc__ctx_release(&ctx);
}

static void test_drop_event(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);

  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "a", NULL), ESC_OK);

  esc__ctx_begin_event(&ctx); /* an event whose handler fails */
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "b", NULL), ESC_OK);
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "c", NULL), ESC_OK);
  assert_int_equal(ctx.ncommands, 3);
  esc__ctx_drop_event(&ctx);
  static const char *const want[] = {"2", "INCR", "a"};
  assert_args(&ctx, want, 3);
  assert_int_equal(ctx.ncommands, 1);

  /* the retry of that event queues again */
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "d", NULL), ESC_OK);
  static const char *const want2[] = {"2", "INCR", "a", "2", "INCR", "d"};
  assert_args(&ctx, want2, 6);
  assert_int_equal(ctx.ncommands, 2);

  /* dropping an event that queued nothing drops nothing */
  esc__ctx_begin_event(&ctx);
  esc__ctx_drop_event(&ctx);
  assert_args(&ctx, want2, 6);
  esc__ctx_release(&ctx);
}

/* arg_bytes, the byte budget's measure, follows every argument queued,
 * dropped and taken back; undoing the event just ended unlists it. */
static void test_bytes_and_undo(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc_position p0 = ESC_POSITION_START, p1 = {1, 1}, p2 = {1, 2};
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc_ctx_cmd(&ctx, "SET", "k", "value", NULL), ESC_OK);
  assert_int_equal(ctx.arg_bytes, 1 + 3 + 1 + 5); /* "3" SET k value */
  assert_int_equal(esc__ctx_end_event(&ctx, p0, p1), ESC_OK);

  esc__ctx_begin_event(&ctx);
  const char *argv[] = {"SET", "k2", "a\0b"};
  const size_t lens[] = {3, 2, 3};
  assert_int_equal(esc_ctx_command(&ctx, 3, argv, lens), ESC_OK);
  assert_int_equal(ctx.arg_bytes, 10 + 1 + 3 + 2 + 3);
  assert_int_equal(esc__ctx_end_event(&ctx, p1, p2), ESC_OK);
  assert_int_equal(ctx.nevents, 2);
  esc__ctx_undo_event(&ctx);
  assert_int_equal(ctx.nevents, 1);
  assert_int_equal(ctx.ncommands, 1);
  assert_int_equal(ctx.arg_bytes, 10);
  static const char *const want[] = {"3", "SET", "k", "value"};
  assert_args(&ctx, want, 4);

  /* an event that queued nothing leaves the list as it is */
  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc__ctx_end_event(&ctx, p1, p2), ESC_OK);
  esc__ctx_undo_event(&ctx);
  assert_int_equal(ctx.nevents, 1);
  assert_int_equal(ctx.arg_bytes, 10);

  esc__ctx_reset(&ctx);
  assert_int_equal(ctx.arg_bytes, 0);
  assert_int_equal(ctx.nargs, 0);
  esc__ctx_release(&ctx);
}

static void test_scratch_never_moves(void **state) {
  (void)state;
  enum { N = 20000 };
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 3);
  const char **ptrs = malloc(N * sizeof *ptrs);
  assert_non_null(ptrs);
  char big[5000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';

  for (int round = 0; round < 3; round++) {
    esc__ctx_begin_event(&ctx);
    for (int i = 0; i < N; i++) {
      if (i % 1000 == 999) /* bigger than a whole chunk */
        ptrs[i] = esc_ctx_key(&ctx, "%s", big);
      else if (i % 2)
        ptrs[i] = esc_ctx_i64(&ctx, (int64_t)i * 1000003);
      else
        ptrs[i] = esc_ctx_key(&ctx, "item:%d:%d", round, i);
      assert_non_null(ptrs[i]);
    }
    /* every earlier string is still there, unchanged */
    char want[64];
    for (int i = 0; i < N; i++) {
      if (i % 1000 == 999) {
        assert_int_equal(strlen(ptrs[i]), strlen("orders:g3:") + 4999);
        continue;
      }
      if (i % 2)
        snprintf(want, sizeof want, "%" PRId64, (int64_t)i * 1000003);
      else
        snprintf(want, sizeof want, "orders:g3:item:%d:%d", round, i);
      assert_string_equal(ptrs[i], want);
    }
    /* and usable as command arguments */
    assert_int_equal(esc_ctx_cmd(&ctx, "SET", ptrs[0], ptrs[1], NULL), ESC_OK);
  }
  assert_int_equal(ctx.ncommands, 3);
  free(ptrs);
  esc__ctx_release(&ctx);
}

static void test_many_commands(void **state) {
  (void)state;
  enum { N = 5000 };
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 1, 1);
  esc__ctx_begin_event(&ctx);
  for (int i = 0; i < N; i++) {
    const char *k = esc_ctx_key(&ctx, "c:%d", i % 10);
    assert_int_equal(esc_ctx_cmd(&ctx, "INCRBY", k, esc_ctx_i64(&ctx, i), NULL),
                     ESC_OK);
  }
  assert_int_equal(ctx.ncommands, N);
  assert_int_equal(ctx.nargs, (size_t)N * 4);
  assert_true(ctx.cap >= ctx.nargs);
  char want[32];
  for (size_t i = 0; i < N; i++) {
    assert_string_equal(ctx.args[i * 4], "3");
    assert_string_equal(ctx.args[i * 4 + 1], "INCRBY");
    snprintf(want, sizeof want, "orders:g1:c:%zu", i % 10);
    assert_string_equal(ctx.args[i * 4 + 2], want);
    snprintf(want, sizeof want, "%zu", i);
    assert_string_equal(ctx.args[i * 4 + 3], want);
  }
  /* reset keeps the memory */
  size_t cap = ctx.cap;
  esc__ctx_reset(&ctx);
  assert_int_equal(ctx.cap, cap);
  assert_int_equal(ctx.nargs, 0);
  esc__ctx_release(&ctx);
}

/* Each event that queued commands is recorded with its boundaries, so a
 * command failing in Redis is attributed to its event; an event without
 * commands, or one dropped, leaves no record; a reset forgets them. */
static void test_event_boundaries(void **state) {
  (void)state;
  esc_projection_ctx ctx;
  esc__ctx_init(&ctx, &PROJ, "orders", 0, 1);
  esc_position p0 = {1, 1}, p1 = {1, 2}, p2 = {1, 3}, p3 = {1, 4};
  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "a", NULL), ESC_OK);
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "b", NULL), ESC_OK);
  assert_int_equal(esc__ctx_end_event(&ctx, p0, p1), ESC_OK);
  esc__ctx_begin_event(&ctx); /* filtered: nothing queued */
  assert_int_equal(esc__ctx_end_event(&ctx, p1, p2), ESC_OK);
  esc__ctx_begin_event(&ctx); /* failed: dropped */
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "c", NULL), ESC_OK);
  esc__ctx_drop_event(&ctx);
  esc__ctx_begin_event(&ctx);
  assert_int_equal(esc_ctx_cmd(&ctx, "INCR", "d", NULL), ESC_OK);
  assert_int_equal(esc__ctx_end_event(&ctx, p2, p3), ESC_OK);
  assert_int_equal(ctx.nevents, 2);
  assert_int_equal(ctx.events[0].ncommands, 2);
  assert_int_equal(esc_position_cmp(&ctx.events[0].before, &p0), 0);
  assert_int_equal(esc_position_cmp(&ctx.events[0].at, &p1), 0);
  assert_int_equal(ctx.events[1].ncommands, 1);
  assert_int_equal(esc_position_cmp(&ctx.events[1].before, &p2), 0);
  assert_int_equal(esc_position_cmp(&ctx.events[1].at, &p3), 0);
  assert_int_equal(ctx.ncommands, 3);
  esc__ctx_reset(&ctx);
  assert_int_equal(ctx.nevents, 0);
  esc__ctx_release(&ctx);
}

/* Retry pauses grow to their cap and stay there (the old 10 << (n - 1)
 * overflowed at 30 attempts), never below half of it, and vary. */
static void test_backoff_capped_with_jitter(void **state) {
  (void)state;
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = esc_worker_new(NULL, &err);
  assert_non_null(w);
  int first = esc__backoff_ms(w, 1, 10, 1000), distinct = 0, last = -1;
  assert_true(first >= 5 && first <= 10);
  for (int attempt = 1; attempt <= 200; attempt++) {
    int ms = esc__backoff_ms(w, attempt, 10, 1000);
    assert_true(ms > 0 && ms <= 1000);
    if (attempt >= 8)
      assert_true(ms >= 500);
    distinct += ms != last;
    last = ms;
  }
  assert_true(distinct > 100);
  assert_true(esc__backoff_ms(w, 1 << 30, 50, 5000) <= 5000);
  esc_worker_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_and_accessors),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_invalid_commands),
      cmocka_unit_test(test_cmd_i64),
      cmocka_unit_test(test_binary_args),
      cmocka_unit_test(test_drop_event),
      cmocka_unit_test(test_bytes_and_undo),
      cmocka_unit_test(test_scratch_never_moves),
      cmocka_unit_test(test_many_commands),
      cmocka_unit_test(test_event_boundaries),
      cmocka_unit_test(test_backoff_capped_with_jitter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

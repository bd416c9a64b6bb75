/*
 * The batch a projection handler writes into (esc_projection_ctx).
 *
 * Commands are kept as one flat list of binary-safe copies, each command
 * preceded by its argument count in decimal: exactly the tail of the apply
 * script's ARGV (see apply.lua), so sending a batch copies nothing more.
 * The copies live in an arena (ctx->bytes) emptied with the batch, so a
 * steady load queues commands without calling malloc.
 *
 * Scratch strings (esc_ctx_key, esc_ctx_i64) must stay where they are
 * until the handler returns, however many more it asks for: they live in a
 * second arena, emptied at each event.
 *
 * A scratch allocation that fails is remembered until the next event, and
 * every later esc_ctx_command of that event returns ESC_ENOMEM. This
 * matters for esc_ctx_cmd, whose argument list a NULL key would silently
 * cut short.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct esc__chunk {
  struct esc__chunk *prev;
  char data[];
};

#define CHUNK_MIN 1024
#define ARGS_MIN 64

/* ------------------------------------------------------------------------
 * Arenas
 * ------------------------------------------------------------------------ */

/* n bytes that stay put until the arena is emptied; NULL when out of
 * memory. */
static char *arena_alloc(struct esc__arena *a, size_t n) {
  if (a->head && a->cap - a->len >= n) {
    char *p = a->head->data + a->len;
    a->len += n;
    return p;
  }
  size_t cap = a->cap ? a->cap : CHUNK_MIN / 2;
  do {
    if (cap > (SIZE_MAX - sizeof(struct esc__chunk)) / 2)
      return NULL;
    cap *= 2;
  } while (cap < n);
  struct esc__chunk *c = malloc(sizeof *c + cap);
  if (!c)
    return NULL;
  c->prev = a->head;
  a->head = c;
  a->cap = cap;
  a->len = n;
  return c->data;
}

/* Empties the arena, keeping its newest (biggest) chunk. */
static void arena_empty(struct esc__arena *a) {
  struct esc__chunk *c = a->head ? a->head->prev : NULL;
  while (c) {
    struct esc__chunk *prev = c->prev;
    free(c);
    c = prev;
  }
  if (a->head)
    a->head->prev = NULL;
  a->len = 0;
}

static void arena_free(struct esc__arena *a) {
  arena_empty(a);
  free(a->head);
  *a = (struct esc__arena){NULL, 0, 0};
}

/* A scratch allocation: NULL (and the event marked failed) when out of
 * memory. */
static char *scratch_alloc(esc_projection_ctx *ctx, size_t n) {
  char *p = ctx->scratch_failed ? NULL : arena_alloc(&ctx->scratch, n);
  if (!p)
    ctx->scratch_failed = true;
  return p;
}

/* ------------------------------------------------------------------------
 * The flat argument list
 * ------------------------------------------------------------------------ */

static bool args_reserve(esc_projection_ctx *ctx, size_t more) {
  if (more > SIZE_MAX - ctx->nargs)
    return false;
  size_t need = ctx->nargs + more;
  if (need <= ctx->cap)
    return true;
  size_t cap = ctx->cap ? ctx->cap : ARGS_MIN;
  while (cap < need) {
    if (cap > SIZE_MAX / 2 / sizeof(char *))
      return false;
    cap *= 2;
  }
  char **args = realloc(ctx->args, cap * sizeof *args);
  if (!args)
    return false;
  ctx->args = args;
  size_t *lens = realloc(ctx->arglens, cap * sizeof *lens);
  if (!lens)
    return false; /* args grew already; harmless, cap stays */
  ctx->arglens = lens;
  ctx->cap = cap;
  return true;
}

/* Appends a copy of data[0..len) (NUL-terminated for convenience); the
 * room was reserved. */
static bool push_arg(esc_projection_ctx *ctx, const void *data, size_t len) {
  char *copy = len == SIZE_MAX ? NULL : arena_alloc(&ctx->bytes, len + 1);
  if (!copy)
    return false;
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  ctx->args[ctx->nargs] = copy;
  ctx->arglens[ctx->nargs] = len;
  ctx->nargs++;
  ctx->arg_bytes += len;
  return true;
}

/* Forgets the arguments from index `from` on; their bytes go with the
 * batch. */
static void truncate_args(esc_projection_ctx *ctx, size_t from) {
  for (; ctx->nargs > from; ctx->nargs--)
    ctx->arg_bytes -= ctx->arglens[ctx->nargs - 1];
}

static bool push_count(esc_projection_ctx *ctx, int argc) {
  char n[16];
  int len = snprintf(n, sizeof n, "%d", argc);
  return push_arg(ctx, n, (size_t)len);
}

/* ------------------------------------------------------------------------
 * Internal lifecycle
 * ------------------------------------------------------------------------ */

void esc__ctx_init(esc_projection_ctx *ctx, const esc_projection *p,
                   const char *base, int partition, int64_t generation) {
  memset(ctx, 0, sizeof *ctx);
  ctx->projection = p;
  ctx->partition = partition;
  ctx->generation = generation;
  if (base)
    esc__key_prefix(ctx->prefix, sizeof ctx->prefix, base, generation);
}

void esc__ctx_begin_event(esc_projection_ctx *ctx) {
  ctx->event_nargs = ctx->nargs;
  ctx->event_ncommands = ctx->ncommands;
  arena_empty(&ctx->scratch);
  ctx->scratch_failed = false;
}

void esc__ctx_drop_event(esc_projection_ctx *ctx) {
  truncate_args(ctx, ctx->event_nargs);
  ctx->ncommands = ctx->event_ncommands;
  /* The handler has returned: its scratch strings are dead, and a failed
   * allocation must not poison a retry of the same event. */
  ctx->scratch_failed = false;
}

esc_status esc__ctx_end_event(esc_projection_ctx *ctx, esc_position before,
                              esc_position at) {
  size_t n = ctx->ncommands - ctx->event_ncommands;
  if (n == 0)
    return ESC_OK;
  if (ctx->nevents == ctx->events_cap) {
    size_t cap = ctx->events_cap ? ctx->events_cap * 2 : ARGS_MIN;
    struct esc__ctx_event *grown =
        cap > SIZE_MAX / sizeof *grown
            ? NULL
            : realloc(ctx->events, cap * sizeof *grown);
    if (!grown) {
      esc__ctx_drop_event(ctx);
      return ESC_ENOMEM;
    }
    ctx->events = grown;
    ctx->events_cap = cap;
  }
  ctx->events[ctx->nevents++] = (struct esc__ctx_event){before, at, n};
  return ESC_OK;
}

void esc__ctx_undo_event(esc_projection_ctx *ctx) {
  if (ctx->ncommands > ctx->event_ncommands && ctx->nevents > 0)
    ctx->nevents--;
  esc__ctx_drop_event(ctx);
}

void esc__ctx_reset(esc_projection_ctx *ctx) {
  ctx->nevents = 0;
  ctx->nargs = 0;
  ctx->arg_bytes = 0;
  ctx->ncommands = 0;
  ctx->event_nargs = 0;
  ctx->event_ncommands = 0;
  arena_empty(&ctx->bytes);
  arena_empty(&ctx->scratch);
  ctx->scratch_failed = false;
}

void esc__ctx_release(esc_projection_ctx *ctx) {
  if (!ctx)
    return;
  esc__ctx_reset(ctx);
  free(ctx->args);
  free(ctx->arglens);
  free(ctx->events);
  ctx->args = NULL;
  ctx->arglens = NULL;
  ctx->events = NULL;
  ctx->events_cap = 0;
  ctx->cap = 0;
  arena_free(&ctx->bytes);
  arena_free(&ctx->scratch);
}

/* ------------------------------------------------------------------------
 * Public: what handlers call
 * ------------------------------------------------------------------------ */

const char *esc_ctx_key(esc_projection_ctx *ctx, const char *fmt, ...) {
  if (!ctx || !fmt)
    return NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    ctx->scratch_failed = true;
    return NULL;
  }
  size_t plen = strlen(ctx->prefix);
  if ((size_t)n > SIZE_MAX - plen - 1) {
    ctx->scratch_failed = true;
    return NULL;
  }
  char *s = scratch_alloc(ctx, plen + (size_t)n + 1);
  if (!s)
    return NULL;
  memcpy(s, ctx->prefix, plen);
  va_start(ap, fmt);
  vsnprintf(s + plen, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

const char *esc_ctx_i64(esc_projection_ctx *ctx, int64_t value) {
  if (!ctx)
    return NULL;
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%" PRId64, value);
  char *s = scratch_alloc(ctx, (size_t)n + 1);
  if (!s)
    return NULL;
  memcpy(s, buf, (size_t)n + 1);
  return s;
}

esc_status esc_ctx_command(esc_projection_ctx *ctx, int argc,
                           const char *const *argv, const size_t *argvlen) {
  if (!ctx || argc < 1 || !argv)
    return ESC_EINVAL;
  for (int i = 0; i < argc; i++)
    if (!argv[i])
      return ESC_EINVAL;
  if (ctx->scratch_failed)
    return ESC_ENOMEM;
  size_t start = ctx->nargs;
  if (!args_reserve(ctx, (size_t)argc + 1) || !push_count(ctx, argc))
    return ESC_ENOMEM;
  for (int i = 0; i < argc; i++) {
    size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
    if (!push_arg(ctx, argv[i], len)) {
      truncate_args(ctx, start);
      return ESC_ENOMEM;
    }
  }
  ctx->ncommands++;
  return ESC_OK;
}

esc_status esc_ctx_cmd(esc_projection_ctx *ctx, const char *arg0, ...) {
  if (!ctx || !arg0)
    return ESC_EINVAL;
  if (ctx->scratch_failed)
    return ESC_ENOMEM;
  va_list ap;
  va_start(ap, arg0);
  int argc = 1;
  while (va_arg(ap, const char *)) {
    if (argc == INT_MAX - 1) {
      va_end(ap);
      return ESC_EINVAL;
    }
    argc++;
  }
  va_end(ap);

  size_t start = ctx->nargs;
  if (!args_reserve(ctx, (size_t)argc + 1) || !push_count(ctx, argc))
    return ESC_ENOMEM;
  esc_status rc = ESC_OK;
  const char *a = arg0;
  va_start(ap, arg0);
  for (int i = 0; i < argc; i++) {
    if (i > 0)
      a = va_arg(ap, const char *);
    if (!push_arg(ctx, a, strlen(a))) {
      rc = ESC_ENOMEM;
      break;
    }
  }
  va_end(ap);
  if (rc != ESC_OK) {
    truncate_args(ctx, start);
    return rc;
  }
  ctx->ncommands++;
  return ESC_OK;
}

int esc_ctx_partition(const esc_projection_ctx *ctx) {
  return ctx ? ctx->partition : 0;
}

int64_t esc_ctx_generation(const esc_projection_ctx *ctx) {
  return ctx ? ctx->generation : 0;
}

esc_status esc_ctx_cmd_i64(esc_projection_ctx *ctx, const char *cmd,
                           const char *key, int64_t value) {
  char buf[24];
  if (!ctx || !cmd)
    return ESC_EINVAL;
  if (ctx->scratch_failed)
    return ESC_ENOMEM; /* key may be the NULL of a failed esc_ctx_key */
  if (!key)
    return ESC_EINVAL; /* esc_ctx_cmd would take it for the list's end */
  snprintf(buf, sizeof buf, "%" PRId64, value);
  /* The argument is copied: buf need not outlive the call. */
  return esc_ctx_cmd(ctx, cmd, key, buf, NULL);
}

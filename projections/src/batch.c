/*
 * The batch a projection handler writes into (esc_projection_ctx).
 *
 * Commands are kept as one flat list of owned, binary-safe copies, each
 * command preceded by its argument count in decimal: exactly the tail of
 * the apply script's ARGV (see apply.lua), so sending a batch copies
 * nothing.
 *
 * Scratch strings (esc_ctx_key, esc_ctx_i64) must stay where they are
 * until the handler returns, however many more it asks for. They live in a
 * chain of chunks: ctx->scratch is the newest chunk, whose header points at
 * the previous one; a full chunk is never reallocated, a bigger one is
 * chained in front. esc__ctx_begin_event frees all but the newest (the
 * biggest) and reuses it.
 *
 * A scratch allocation that fails is remembered until the next event by
 * the otherwise impossible state scratch_len > scratch_cap, and every
 * later esc_ctx_command of that event returns ESC_ENOMEM. This matters for
 * esc_ctx_cmd, whose argument list a NULL key would silently cut short.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scratch_chunk {
  struct scratch_chunk *prev;
  char data[];
};

#define SCRATCH_MIN 1024
#define ARGS_MIN 64

/* ------------------------------------------------------------------------
 * Scratch strings
 * ------------------------------------------------------------------------ */

static struct scratch_chunk *scratch_head(const esc_projection_ctx *ctx) {
  return (struct scratch_chunk *)(void *)ctx->scratch;
}

static bool scratch_failed(const esc_projection_ctx *ctx) {
  return ctx->scratch_len > ctx->scratch_cap;
}

static void scratch_mark_failed(esc_projection_ctx *ctx) {
  ctx->scratch_len = ctx->scratch_cap + 1;
}

/* Frees every chunk older than the newest one. */
static void scratch_trim(esc_projection_ctx *ctx) {
  struct scratch_chunk *head = scratch_head(ctx);
  if (!head)
    return;
  struct scratch_chunk *c = head->prev;
  while (c) {
    struct scratch_chunk *prev = c->prev;
    free(c);
    c = prev;
  }
  head->prev = NULL;
}

static void scratch_free_all(esc_projection_ctx *ctx) {
  scratch_trim(ctx);
  free(ctx->scratch);
  ctx->scratch = NULL;
  ctx->scratch_len = ctx->scratch_cap = 0;
}

/* n bytes that stay put until the next event; NULL (and the event marked
 * failed) when out of memory. */
static char *scratch_alloc(esc_projection_ctx *ctx, size_t n) {
  if (scratch_failed(ctx))
    return NULL;
  if (ctx->scratch && ctx->scratch_cap - ctx->scratch_len >= n) {
    char *p = scratch_head(ctx)->data + ctx->scratch_len;
    ctx->scratch_len += n;
    return p;
  }
  size_t cap = ctx->scratch_cap ? ctx->scratch_cap : SCRATCH_MIN / 2;
  do {
    if (cap > (SIZE_MAX - sizeof(struct scratch_chunk)) / 2) {
      scratch_mark_failed(ctx);
      return NULL;
    }
    cap *= 2;
  } while (cap < n);
  struct scratch_chunk *c = malloc(sizeof *c + cap);
  if (!c) {
    scratch_mark_failed(ctx);
    return NULL;
  }
  c->prev = scratch_head(ctx);
  ctx->scratch = (char *)(void *)c;
  ctx->scratch_cap = cap;
  ctx->scratch_len = n;
  return c->data;
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
  if (len == SIZE_MAX)
    return false;
  char *copy = malloc(len + 1);
  if (!copy)
    return false;
  if (len)
    memcpy(copy, data, len);
  copy[len] = '\0';
  ctx->args[ctx->nargs] = copy;
  ctx->arglens[ctx->nargs] = len;
  ctx->nargs++;
  return true;
}

/* Frees the arguments from index `from` on. */
static void truncate_args(esc_projection_ctx *ctx, size_t from) {
  for (size_t i = from; i < ctx->nargs; i++)
    free(ctx->args[i]);
  if (from < ctx->nargs)
    ctx->nargs = from;
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
                   int partition, int64_t generation) {
  memset(ctx, 0, sizeof *ctx);
  ctx->projection = p;
  ctx->partition = partition;
  ctx->generation = generation;
  if (p && p->name)
    esc__key_prefix(ctx->prefix, sizeof ctx->prefix, p->name, generation);
}

void esc__ctx_begin_event(esc_projection_ctx *ctx) {
  ctx->event_nargs = ctx->nargs;
  ctx->event_ncommands = ctx->ncommands;
  scratch_trim(ctx);
  ctx->scratch_len = 0;
}

void esc__ctx_drop_event(esc_projection_ctx *ctx) {
  truncate_args(ctx, ctx->event_nargs);
  ctx->ncommands = ctx->event_ncommands;
  /* The handler has returned: its scratch strings are dead, and a failed
   * allocation must not poison a retry of the same event. */
  if (scratch_failed(ctx))
    ctx->scratch_len = 0;
}

void esc__ctx_reset(esc_projection_ctx *ctx) {
  truncate_args(ctx, 0);
  ctx->ncommands = 0;
  ctx->event_nargs = 0;
  ctx->event_ncommands = 0;
  scratch_trim(ctx);
  ctx->scratch_len = 0;
}

void esc__ctx_release(esc_projection_ctx *ctx) {
  if (!ctx)
    return;
  truncate_args(ctx, 0);
  free(ctx->args);
  free(ctx->arglens);
  ctx->args = NULL;
  ctx->arglens = NULL;
  ctx->cap = 0;
  ctx->ncommands = ctx->event_nargs = ctx->event_ncommands = 0;
  scratch_free_all(ctx);
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
    scratch_mark_failed(ctx);
    return NULL;
  }
  size_t plen = strlen(ctx->prefix);
  if ((size_t)n > SIZE_MAX - plen - 1) {
    scratch_mark_failed(ctx);
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
  if (scratch_failed(ctx))
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
  if (scratch_failed(ctx))
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

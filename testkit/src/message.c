/*
 * Messages of the test kits: a growable string. The kits abort when out of
 * memory, since a check that cannot say why it failed must not pass.
 */
#include "testkit_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void esc__kit_oom(void) {
  fputs("esc testkit: out of memory\n", stderr);
  abort();
}

static void kit_vaddf(esc__kit_buf *b, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 0)))
#endif
    ;

static void kit_vaddf(esc__kit_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    esc__kit_oom();
  size_t need = b->len + (size_t)n + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 128;
    while (cap < need)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
      esc__kit_oom();
    b->p = p;
    b->cap = cap;
  }
  vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  b->len += (size_t)n;
}

void esc__kit_addf(esc__kit_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kit_vaddf(b, fmt, ap);
  va_end(ap);
}

char *esc__kit_printf(const char *fmt, ...) {
  esc__kit_buf b = ESC__KIT_BUF_INIT;
  va_list ap;
  va_start(ap, fmt);
  kit_vaddf(&b, fmt, ap);
  va_end(ap);
  return b.p;
}

const char *esc__kit_plural(size_t n) {
  return n == 1 ? "" : "s";
}

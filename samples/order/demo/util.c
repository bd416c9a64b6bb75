/*
 * order-demo: small helpers the other files share - the clock, parsing a
 * number, and memory that is there or the program ends.
 */
#include "demo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

bool parse_int(const char *text, long long min, long long max, long long *out) {
  char *end = NULL;
  errno = 0;
  if (!text[0] || text[0] == ' ' || text[0] == '+' || text[0] == '-')
    return false;
  long long v = strtoll(text, &end, 10);
  if (errno || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

static void oom(void) {
  fputs("order-demo: out of memory\n", stderr);
  exit(1);
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom();
  return q;
}

char *xstrdup(const char *s) {
  char *p = dup_str(s);
  if (!p)
    oom();
  return p;
}

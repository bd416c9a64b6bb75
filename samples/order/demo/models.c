/*
 * order-demo: models of the read models - a Redis hash, a Redis sorted
 * set - and a string map to find them by name, for the recomputation.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hfield *hm_find(const hmodel *h, const char *name) {
  for (size_t i = 0; i < h->n; i++)
    if (strcmp(h->f[i].name, name) == 0)
      return &h->f[i];
  return NULL;
}

void hm_set(hmodel *h, const char *name, const char *value) {
  hfield *f = hm_find(h, name);
  if (f) {
    free(f->value);
    f->value = xstrdup(value);
    return;
  }
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 8;
    h->f = xrealloc(h->f, h->cap * sizeof *h->f);
  }
  h->f[h->n].name = xstrdup(name);
  h->f[h->n].value = xstrdup(value);
  h->n++;
}

void hm_set_i64(hmodel *h, const char *name, int64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  hm_set(h, name, buf);
}

void hm_incr(hmodel *h, const char *name, int64_t delta) {
  hfield *f = hm_find(h, name);
  int64_t v = f ? strtoll(f->value, NULL, 10) : 0;
  hm_set_i64(h, name, v + delta);
}

void hm_del(hmodel *h, const char *name) {
  hfield *f = hm_find(h, name);
  if (!f)
    return;
  free(f->name);
  free(f->value);
  *f = h->f[--h->n];
}

void hm_free(hmodel *h) {
  for (size_t i = 0; i < h->n; i++) {
    free(h->f[i].name);
    free(h->f[i].value);
  }
  free(h->f);
}

static zentry *zm_find(const zmodel *z, const char *member) {
  for (size_t i = 0; i < z->n; i++)
    if (strcmp(z->e[i].member, member) == 0)
      return &z->e[i];
  return NULL;
}

void zm_incr(zmodel *z, const char *member, double delta, bool set) {
  zentry *e = zm_find(z, member);
  if (e) {
    e->score = set ? delta : e->score + delta;
    return;
  }
  if (z->n == z->cap) {
    z->cap = z->cap ? z->cap * 2 : 8;
    z->e = xrealloc(z->e, z->cap * sizeof *z->e);
  }
  z->e[z->n].member = xstrdup(member);
  z->e[z->n].score = delta;
  z->n++;
}

void zm_free(zmodel *z) {
  for (size_t i = 0; i < z->n; i++)
    free(z->e[i].member);
  free(z->e);
}

/* Redis's order for ZRANGE ... REV: score descending, then member
 * descending (byte order). */
int zentry_rev_cmp(const void *a, const void *b) {
  const zentry *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? 1 : -1;
  return -strcmp(x->member, y->member);
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

bool sm_get(const strmap *m, const char *key, size_t *val) {
  if (!m->cap)
    return false;
  for (size_t i = fnv1a(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i])
      return false;
    if (strcmp(m->keys[i], key) == 0) {
      *val = m->vals[i];
      return true;
    }
  }
}

static void sm_put_owned(strmap *m, char *key, size_t val) {
  size_t i = fnv1a(key) & (m->cap - 1);
  while (m->keys[i])
    i = (i + 1) & (m->cap - 1);
  m->keys[i] = key;
  m->vals[i] = val;
  m->n++;
}

/* Adds a key that is not in the map yet (copied). */
void sm_add(strmap *m, const char *key, size_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    strmap g = {NULL, NULL, m->cap ? m->cap * 2 : 64, 0};
    g.keys = xrealloc(NULL, g.cap * sizeof *g.keys);
    g.vals = xrealloc(NULL, g.cap * sizeof *g.vals);
    memset(g.keys, 0, g.cap * sizeof *g.keys);
    for (size_t i = 0; i < m->cap; i++)
      if (m->keys[i])
        sm_put_owned(&g, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = g;
  }
  sm_put_owned(m, xstrdup(key), val);
}

void sm_free(strmap *m) {
  for (size_t i = 0; i < m->cap; i++)
    free(m->keys[i]);
  free(m->keys);
  free(m->vals);
}

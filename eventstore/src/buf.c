/* A growable byte buffer, for building binary parameters. */
#include "store_int.h"

#include <stdlib.h>

bool esc__buf_reserve(struct esc__buf *b, size_t n) {
  if (b->cap - b->len >= n)
    return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2)
      return false;
    cap *= 2;
  }
  unsigned char *data = realloc(b->data, cap);
  if (!data)
    return false;
  b->data = data;
  b->cap = cap;
  return true;
}

void esc__buf_release(struct esc__buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/*
 * replay - runs a fuzz target without libFuzzer: every file of a corpus
 * directory as it is, then seeded mutations of them (bit flips, byte
 * changes, cuts, splices, inserted "interesting" bytes), each in a fresh
 * buffer of its exact size so the sanitizers see any over-read. A crash or
 * a sanitizer report fails the run; a clean one prints what it ran.
 *
 *   <target>-replay CORPUS_DIR [--mutations N] [--seed S]
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_INPUTS = 256, MAX_SIZE = 1 << 16 };

struct input {
  uint8_t *data;
  size_t size;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static bool load(const char *path, struct input *in) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  in->data = malloc(MAX_SIZE);
  in->size = in->data ? fread(in->data, 1, MAX_SIZE, f) : 0;
  fclose(f);
  return in->data != NULL;
}

/* One run on an exact-size copy. */
static void run(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy)
    abort();
  if (size)
    memcpy(copy, data, size);
  LLVMFuzzerTestOneInput(copy, size);
  free(copy);
}

static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xc1,
                                      0xdb, 0xdf, '\r', '\n', '*',  '$',
                                      ':',  '-',  '"',  '{',  '}',  '/'};

static size_t mutate(const struct input *in, const struct input *other,
                     uint8_t *out) {
  size_t n = in->size;
  memcpy(out, in->data, n);
  for (int k = 1 + (int)below(4); k > 0; k--) {
    switch (below(6)) {
    case 0: /* flip a bit */
      if (n)
        out[below(n)] ^= (uint8_t)(1u << below(8));
      break;
    case 1: /* an interesting byte */
      if (n)
        out[below(n)] = interesting[below(sizeof interesting)];
      break;
    case 2: /* cut the tail */
      n = below(n + 1);
      break;
    case 3: /* insert a byte */
      if (n < MAX_SIZE - 1) {
        size_t at = below(n + 1);
        memmove(out + at + 1, out + at, n - at);
        out[at] = interesting[below(sizeof interesting)];
        n++;
      }
      break;
    case 4: /* splice another input's tail in */
      if (other->size) {
        size_t at = below(n + 1), from = below(other->size);
        size_t len = other->size - from;
        if (at + len > MAX_SIZE)
          len = MAX_SIZE - at;
        memcpy(out + at, other->data + from, len);
        n = at + len;
      }
      break;
    default: /* a random byte */
      if (n)
        out[below(n)] = (uint8_t)next();
      break;
    }
  }
  return n;
}

int main(int argc, char **argv) {
  struct input inputs[MAX_INPUTS];
  size_t count = 0;
  long mutations = 20000;
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR [--mutations N] [--seed S]\n",
            argv[0]);
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--mutations") == 0)
      mutations = strtol(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--seed") == 0)
      rng = strtoull(argv[i + 1], NULL, 10) | 1;
  }
  DIR *d = opendir(argv[1]);
  if (!d) {
    fprintf(stderr, "%s: cannot open %s: %s\n", argv[0], argv[1],
            strerror(errno));
    return 2;
  }
  char path[4096];
  for (struct dirent *e; count < MAX_INPUTS && (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
    if (load(path, &inputs[count]))
      count++;
  }
  closedir(d);
  if (count == 0) {
    fprintf(stderr, "%s: no inputs in %s\n", argv[0], argv[1]);
    return 2;
  }
  clock_t t0 = clock();
  for (size_t i = 0; i < count; i++)
    run(inputs[i].data, inputs[i].size);
  uint8_t *buf = malloc(2 * MAX_SIZE);
  if (!buf)
    abort();
  for (long m = 0; m < mutations; m++) {
    const struct input *in = &inputs[below(count)];
    run(buf, mutate(in, &inputs[below(count)], buf));
  }
  free(buf);
  for (size_t i = 0; i < count; i++)
    free(inputs[i].data);
  printf("%s: %zu corpus inputs and %ld mutations, %.2f s CPU, no crash\n",
         argv[0], count, mutations, (double)(clock() - t0) / CLOCKS_PER_SEC);
  return 0;
}

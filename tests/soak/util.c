/* Small helpers of the soak (see util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void soak_rng_seed(soak_rng *r, uint64_t seed, const char *name) {
  uint64_t h = 1469598103934665603ULL ^ seed; /* FNV-1a over the name */
  for (const char *p = name; p && *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  r->s = h ? h : 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 4; i++)
    soak_rng_next(r);
}

uint64_t soak_rng_next(soak_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ULL;
}

int soak_rng_below(soak_rng *r, int n) {
  return (int)(soak_rng_next(r) % (uint64_t)n);
}

int soak_rng_range(soak_rng *r, int lo, int hi) {
  return lo + soak_rng_below(r, hi - lo + 1);
}

int64_t soak_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void soak_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool soak_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    buf += w;
    len -= (size_t)w;
  }
  return true;
}

/* The length of the file up to and including its last newline. */
static off_t complete_length(int fd) {
  off_t end = lseek(fd, 0, SEEK_END);
  char buf[4096];
  while (end > 0) {
    off_t start = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
    ssize_t n = pread(fd, buf, (size_t)(end - start), start);
    if (n <= 0)
      return 0;
    for (ssize_t i = n - 1; i >= 0; i--)
      if (buf[i] == '\n')
        return start + i + 1;
    end = start;
  }
  return 0;
}

int soak_open_lines(const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  off_t keep = complete_length(fd);
  if (keep != lseek(fd, 0, SEEK_END) && ftruncate(fd, keep) != 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
}

char *soak_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *bigger = realloc(buf, cap * 2);
    if (!bigger) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  fclose(f);
  if (!buf)
    return NULL;
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

bool soak_last_line(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  off_t end = complete_length(fd);
  bool ok = false;
  if (end > 0) {
    off_t start = end - 1 > (off_t)size ? end - 1 - (off_t)size : 0;
    char *buf = malloc((size_t)(end - start) + 1);
    ssize_t n = buf ? pread(fd, buf, (size_t)(end - start), start) : -1;
    if (n == end - start) {
      buf[n - 1] = '\0'; /* the newline */
      char *nl = strrchr(buf, '\n');
      snprintf(out, size, "%s", nl ? nl + 1 : buf);
      ok = nl != NULL || start == 0;
    }
    free(buf);
  }
  close(fd);
  return ok;
}

bool soak_mkdirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    mkdir(buf, 0755);
    *p = '/';
  }
  struct stat st;
  return (mkdir(buf, 0755) == 0 || errno == EEXIST) && stat(buf, &st) == 0 &&
         S_ISDIR(st.st_mode);
}

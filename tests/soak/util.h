/*
 * util.h - small things every part of the soak uses: a seeded random
 * generator (runs are reproducible from --seed), the one clock history
 * records are stamped with, and line-oriented files that survive a
 * SIGKILL in the middle of a write.
 */
#ifndef SOAK_UTIL_H
#define SOAK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* xorshift64*: fast, seedable, good enough to pick faults and streams. */
typedef struct soak_rng {
  uint64_t s;
} soak_rng;

/* Seeds from a number and a name, so every client and thread of one run
 * draws its own sequence from the run's one seed. */
void soak_rng_seed(soak_rng *r, uint64_t seed, const char *name);
uint64_t soak_rng_next(soak_rng *r);
/* Uniform in [0, n); n > 0. */
int soak_rng_below(soak_rng *r, int n);
/* Uniform in [lo, hi]. */
int soak_rng_range(soak_rng *r, int lo, int hi);

/*
 * Microseconds on CLOCK_MONOTONIC. The clock is system-wide, so times
 * stamped by different processes of one run compare: real-time order in
 * the history rests on it.
 */
int64_t soak_now_us(void);
void soak_sleep_ms(int ms);

/* Writes all of buf with write(2), retrying short writes and EINTR. */
bool soak_write_all(int fd, const char *buf, size_t len);

/*
 * Opens path for appending lines, first cutting off a last line without
 * its newline (what a SIGKILL in the middle of a write leaves). Returns
 * the descriptor (O_APPEND, close-on-exec) or -1 with errno set.
 */
int soak_open_lines(const char *path);

/*
 * Reads a whole file into a malloc'ed NUL-terminated buffer (the caller
 * frees); NULL when it cannot (errno set). *len (may be NULL) gets the
 * length.
 */
char *soak_read_file(const char *path, size_t *len);

/*
 * The last complete line of a file (without its newline) into out; false
 * when the file is missing or holds no complete line.
 */
bool soak_last_line(const char *path, char *out, size_t size);

/* mkdir -p; true when the directory exists afterwards. */
bool soak_mkdirs(const char *path);

#endif

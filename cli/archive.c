/* The retention archive: see archive.h. */
#define _POSIX_C_SOURCE 200809L /* fdopen, O_CLOEXEC */

#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Progress on stderr every this many events. */
#define ARCHIVE_PROGRESS_EVERY 10000

/* ESC_EIO: there is no status for file I/O, and this is an I/O failure
 * (exit 1); a path that cannot be created is the caller's input
 * (ESC_EINVAL, exit 6). */
static esc_status io_error(const cli_archive *a, esc_status code,
                           const char *doing, esc_error *err) {
  return esc_error_set(err, code, "archive %s: %s: %s", a->path, doing,
                       strerror(errno));
}

esc_status cli_archive_open(cli_archive *a, const char *path, esc_error *err) {
  *a = (cli_archive){path, NULL, 0, false};
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return io_error(a, ESC_EINVAL,
                    errno == EEXIST ? "exists already (never overwritten)"
                                    : "cannot create it",
                    err);
  a->file = fdopen(fd, "w");
  if (!a->file) {
    esc_status rc = io_error(a, ESC_EIO, "cannot open it", err);
    close(fd);
    unlink(path);
    return rc;
  }
  return ESC_OK;
}

esc_status cli_archive_event(void *userdata, const esc_recorded_event *e,
                             esc_error *err) {
  cli_archive *a = userdata;
  bool whole = false;
  errno = 0;
  if (!cli_write_event_json(a->file, e, &whole) || ferror(a->file))
    return io_error(a, ESC_EIO, "cannot write", err);
  if (!whole)
    return esc_error_set(err, ESC_EINVAL,
                         "archive %s: %s@%" PRId64 " cannot be written as "
                         "JSON whole (see esc read %s --json)",
                         a->path, e->stream_id, e->stream_version,
                         e->stream_id);
  if (++a->written % ARCHIVE_PROGRESS_EVERY == 0)
    fprintf(stderr, "esc: retention run: archived %" PRId64 " events\n",
            a->written);
  return ESC_OK;
}

/* A new file's name lives in its directory: sync that too. */
static int sync_directory(const char *path) {
  char *copy = strdup(path);
  if (!copy)
    return -1;
  int fd = open(dirname(copy), O_RDONLY | O_CLOEXEC);
  free(copy);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

esc_status cli_archive_sync(void *userdata, esc_error *err) {
  cli_archive *a = userdata;
  errno = 0;
  if (fflush(a->file) != 0 || ferror(a->file))
    return io_error(a, ESC_EIO, "cannot write", err);
  if (fsync(fileno(a->file)) != 0)
    return io_error(a, ESC_EIO, "fsync", err);
  if (sync_directory(a->path) != 0)
    return io_error(a, ESC_EIO, "fsync of its directory", err);
  a->synced = true;
  return ESC_OK;
}

void cli_archive_close(cli_archive *a) {
  if (!a || !a->file)
    return;
  fclose(a->file);
  a->file = NULL;
  if (!a->synced)
    unlink(a->path);
}

/*
 * The archive of `esc retention run --archive FILE`: the events a run
 * removes, written as JSON lines (the form of `esc read --json`) and
 * made durable before the first removal. Private to the CLI.
 */
#ifndef ESC_CLI_ARCHIVE_H
#define ESC_CLI_ARCHIVE_H

#include "cli.h"

typedef struct cli_archive {
  const char *path; /* borrowed */
  FILE *file;
  int64_t written; /* events */
  bool synced;     /* fsync'ed: it may hold events that are gone now */
} cli_archive;

/*
 * Creates FILE (mode 0600: it holds event data); an existing file is
 * never overwritten or appended to. ESC_EINVAL naming the path and the
 * reason when it cannot be created.
 */
esc_status cli_archive_open(cli_archive *a, const char *path, esc_error *err);

/* esc_retention_archive_fn: one JSON line; ESC_EINVAL for an event whose
 * data or metadata cannot be rendered whole (the archive would lose it),
 * ESC_EIO when the file cannot be written. Progress goes to stderr. */
esc_status cli_archive_event(void *userdata, const esc_recorded_event *e,
                             esc_error *err);

/* esc_retention_sync_fn: flush, fsync the file and its directory. */
esc_status cli_archive_sync(void *userdata, esc_error *err);

/* Closes the file, and removes it unless it was synced: an archive that
 * never became durable held nothing that was removed. */
void cli_archive_close(cli_archive *a);

#endif

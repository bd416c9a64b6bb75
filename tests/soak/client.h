/*
 * client.h - a soak client: a process that appends ops drawn from the
 * workload until SIGTERM, retrying unknown outcomes with the same event
 * ids, and records every attempt in its history file (an invoke line
 * before the call, a complete line after it). The driver starts clients
 * as `esc-soak client ...` processes so the nemesis can SIGKILL and
 * SIGSTOP them like any other client of esc.
 *
 * Two kinds, the same loop: a library client calls esc_append on one
 * esc_store (which re-opens a broken connection by itself); a CLI client
 * runs one `esc append --json` process per attempt, as a shell script
 * would, and reads its outcome from the JSON and the exit code.
 */
#ifndef SOAK_CLIENT_H
#define SOAK_CLIENT_H

#include <stdint.h>

typedef struct soak_client_opts {
  const char *pg_url;
  const char *schema;
  const char *name;     /* the client's name in the history: "lib1.2" */
  const char *history;  /* the file its records are appended to */
  const char *esc_path; /* the esc program: a CLI client; NULL: library */
  uint64_t seed;
  int pause_ms; /* at most this long between two ops */
} soak_client_opts;

/* Runs until SIGTERM or SIGINT; the process's exit status (0 after a stop,
 * 2 when the history cannot be written). */
int soak_client_main(const soak_client_opts *o);

#endif

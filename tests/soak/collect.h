/*
 * collect.h - what the checker judges, gathered after the faults stop:
 * the final log ($all and the category, read with the library straight
 * from the server, not through a proxy), the streams table, the read
 * model as Redis serves it, every client's history and every follower's
 * output, all read from the run directory and the servers.
 */
#ifndef SOAK_COLLECT_H
#define SOAK_COLLECT_H

#include <stdbool.h>

#include "checker.h"
#include "world.h"

typedef struct soak_evidence {
  soak_history history;
  soak_deliveries log_all, log_category;
  soak_stream_version *streams;
  size_t n_streams;
  soak_deliveries follow_all, follow_category;
  soak_model model;
} soak_evidence;

/* Reads the final log and the streams table; false (said) when it cannot. */
bool soak_collect_log(soak_world *w, soak_evidence *ev);

/* Reads the histories and the followers' outputs. */
bool soak_collect_files(soak_world *w, soak_evidence *ev);

/* The read model as served now, into ev->model. */
bool soak_collect_model(soak_world *w, soak_evidence *ev);

void soak_evidence_release(soak_evidence *ev);

#endif

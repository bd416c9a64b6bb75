/*
 * runner.h - the process runtime's parts, shared by runner.c (set-up, the
 * subscription's handler, handling one input to the end), runner_tables.c
 * (the deadline and parking tables of migration 17) and runner_tick.c
 * (firing deadlines, retrying failing instances). Private to processes/.
 */
#ifndef ESC_PROCESS_RUNNER_H
#define ESC_PROCESS_RUNNER_H

#include <esc_internal/pg.h>
#include <esc_internal/process.h>

typedef struct esc__runner {
  esc_subscription sub; /* first: the worker borrows &sub */
  const esc_process *p;
  esc_process_options o;
  char *pg_url, *schema; /* owned copies of o's */
  const char **types;    /* starts + continues, NULL-terminated */
  esc_store *store;      /* instance streams, commands */
  PGconn *pg;            /* the process tables; NULL until used */
  char *ident;           /* the schema, quoted for SQL; with pg */
  int64_t next_tick_ms;
  int64_t snapshot_failures; /* snapshots not stored (logged each time) */
} esc__runner;

/* The runtime's clock (o.now_us, else esc_now_us). */
int64_t esc__runner_now_us(const esc__runner *r);
/* A log line through o.log, when set. */
void esc__runner_log(const esc__runner *r, const char *fmt, ...)
    ESC__PRINTF(2, 3);

/* Errors of a server being away or busy, never an instance's fault: the
 * input is tried again later instead of parking its instance. */
bool esc__runner_passing(esc_status rc);

/* Loads the instance, finishes its pending commands, handles `in` (NULL:
 * none), finishes the commands that decided, mirrors its deadlines;
 * on a conflict, again from the load. */
esc_status esc__runner_input(esc__runner *r, const char *instance,
                             const esc__process_delivery *in, esc_error *err);

/* ---------------------------------------------------- runner_tables.c -- */

void esc__runner_tables_close(esc__runner *r);

/* Mirrors inst into the tables: its version, whether it ended, and its
 * pending deadlines. */
esc_status esc__runner_sync_instance(esc__runner *r,
                                      const esc__process_instance *inst,
                                      esc_error *err);

/* A due deadline, as claimed. */
struct esc__due {
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  esc_uuid id;
};
/* Claims up to max deadlines due at now_us into out; *n of them. */
esc_status esc__runner_claim_deadlines(esc__runner *r, int64_t now_us,
                                       struct esc__due *out, size_t max,
                                       size_t *n, esc_error *err);

/* Parks instance on an input (kind "event" or "deadline", ref its id)
 * with the error, or adds the input to it when parked already. */
esc_status esc__runner_park(esc__runner *r, const char *instance,
                            const char *kind, const esc_uuid *ref,
                            const char *error, esc_error *err);
/* *kept when the instance is parked and the input was queued. */
esc_status esc__runner_park_input(esc__runner *r, const char *instance,
                                  const char *kind, const esc_uuid *ref,
                                  bool *kept, esc_error *err);

/* Claims up to max instances due for a retry; names into out. */
esc_status esc__runner_claim_parked(esc__runner *r,
                                    char (*out)[ESC_PROCESS_INSTANCE_MAX + 1],
                                    int *attempts, size_t max, size_t *n,
                                    esc_error *err);

/* One kept input of a parked instance. */
struct esc__kept {
  int64_t seq;
  bool deadline; /* else an event */
  esc_uuid ref;
};
/* The kept inputs after seq `after`, in order (malloc'ed into *out). */
esc_status esc__runner_kept_inputs(esc__runner *r, const char *instance,
                                   int64_t after, struct esc__kept **out,
                                   size_t *n, esc_error *err);
/* Drops the kept inputs up to upto; *flows when none is left (the
 * instance is no longer parked). */
esc_status esc__runner_unpark(esc__runner *r, const char *instance,
                              int64_t upto, bool *flows, esc_error *err);
/* A retry failed: counts it, waits for an operator after max_attempts. */
esc_status esc__runner_park_failed(esc__runner *r, const char *instance,
                                   int attempts, const char *error,
                                   esc_error *err);
/* The pause before automatic retry number `attempt` (1, 2, ...). */
int esc__runner_backoff_ms(const esc__runner *r, int attempt);

/* ------------------------------------------------------ runner_tick.c -- */

esc_status esc__runner_tick(int partition, bool *worked, void *userdata,
                            esc_error *err);

#endif

/*
 * world.h - everything one soak run starts, and the supervisor that keeps
 * it running: a private PostgreSQL cluster and Redis server, a TCP proxy
 * in front of each (the nemesis's handle on the network), and the
 * processes — clients, followers (`esc tail --follow`) and projection
 * workers (tests/fault/projector) — restarted when the nemesis kills them.
 *
 * Everything lives under one run directory:
 *   history/<client>.jsonl    a client incarnation's records
 *   follow-all.jsonl          the $all follower's output (all incarnations)
 *   follow-category.jsonl     the category follower's
 *   faults.jsonl              what the nemesis did, when
 *   logs/                     every process's stderr, the servers' logs
 */
#ifndef SOAK_WORLD_H
#define SOAK_WORLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "checker.h"
#include "pgcluster.h"
#include "tcpproxy.h"
#include "util.h"
#include "workload.h"

#define SOAK_SCHEMA "soak"
#define SOAK_PROJECTION "soaktally"

typedef enum soak_proc_kind {
  SOAK_LIB_CLIENT,
  SOAK_CLI_CLIENT,
  SOAK_FOLLOWER_ALL,
  SOAK_FOLLOWER_CATEGORY,
  SOAK_WORKER
} soak_proc_kind;

typedef struct soak_proc {
  soak_proc_kind kind;
  char name[32];   /* "lib1", "follow-all", "worker2" */
  int incarnation; /* 1, 2, ... one per start */
  pid_t pid;       /* 0 while down */
  bool stopped;    /* SIGSTOP'd by the nemesis */
  int64_t cont_at_us, restart_at_us;
  bool killed;     /* by the nemesis: its death is expected */
} soak_proc;

enum { SOAK_MAX_PROCS = 16 };

typedef struct soak_config {
  int seconds;
  uint64_t seed;
  const char *dir; /* the run directory (made) */
  int lib_clients, cli_clients, workers;
  bool quiet;
} soak_config;

typedef struct soak_world {
  const soak_config *cfg;
  esc_test_pg_cluster *pg;
  int redis_port;
  pid_t redis_pid;
  esc_test_proxy *pg_proxy, *redis_proxy;
  char pg_url[160], redis_url[64]; /* through the proxies */
  char direct_pg_url[160];         /* what the driver itself reads with */
  soak_proc procs[SOAK_MAX_PROCS];
  size_t nprocs;
  soak_report *rep; /* crashes are anomalies too */
  long restarts, crashes;
} soak_world;

/* Starts servers and proxies, migrates the store; false (why said on
 * stderr) when it cannot. */
bool soak_world_start(soak_world *w, const soak_config *cfg, soak_report *rep);

/* Starts every process of the configuration. */
void soak_world_spawn_all(soak_world *w);

/* Reaps dead processes and restarts them when due; resumes stopped ones
 * when due. Call often (the driver's loop does, every few ms). */
void soak_world_tend(soak_world *w);

/* Kill and stop, as the nemesis does them. */
void soak_world_kill(soak_world *w, soak_proc *p);
void soak_world_stop_for(soak_world *w, soak_proc *p, int ms);

/* Restarts PostgreSQL ("fast" or "immediate") or Redis (SIGKILL: it keeps
 * nothing, the workers rebuild). */
void soak_world_restart_pg(soak_world *w, const char *mode);
void soak_world_restart_redis(soak_world *w);

/* SIGCONT for all, proxies to PASS. */
void soak_world_heal(soak_world *w);

/* SIGTERM to every process of the kinds in mask (1 << kind), and waits
 * (up to timeout_ms, then SIGKILL) until they are gone; no restarts. */
void soak_world_stop_kinds(soak_world *w, unsigned mask, int timeout_ms);

/* Stops everything it started and removes nothing (the run directory is
 * the evidence). */
void soak_world_free(soak_world *w);

/* A file of the run directory: "<dir>/<name>" into out. */
void soak_world_path(const soak_world *w, const char *name, char *out,
                     size_t size);

/* One line on stderr, stamped with the run's elapsed time. */
void soak_say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif

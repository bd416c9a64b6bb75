/*
 * nemesis.h - the faults of a soak run, drawn from the run's seed, on
 * this machine's loopback only:
 *   pg-fast, pg-immediate   PostgreSQL restarted (pg_ctl stop -m ...)
 *   redis-restart           Redis SIGKILLed and started empty
 *   kill-client, kill-worker, kill-follower   SIGKILL; the supervisor
 *                           restarts it
 *   pause                   SIGSTOP, SIGCONT after up to 4 s
 *   pg-reset, pg-refuse, pg-stall, redis-reset, redis-stall
 *                           what the proxy in front of the server does
 *                           to connections, for up to 3 s
 * One network fault per proxy at a time; each is healed when its time is
 * up, and soak_world_heal heals whatever is left at the end.
 */
#ifndef SOAK_NEMESIS_H
#define SOAK_NEMESIS_H

#include "world.h"

#define SOAK_FAULT_LIST(X)                                                     \
  X(PG_FAST, "pg-fast")                                                        \
  X(PG_IMMEDIATE, "pg-immediate")                                              \
  X(REDIS_RESTART, "redis-restart")                                            \
  X(KILL_CLIENT, "kill-client")                                                \
  X(KILL_WORKER, "kill-worker")                                                \
  X(KILL_FOLLOWER, "kill-follower")                                            \
  X(PAUSE, "pause")                                                            \
  X(PG_RESET, "pg-reset")                                                      \
  X(PG_REFUSE, "pg-refuse")                                                    \
  X(PG_STALL, "pg-stall")                                                      \
  X(REDIS_RESET, "redis-reset")                                                \
  X(REDIS_STALL, "redis-stall")

#define SOAK_FAULT_ENUM(id, name) SOAK_F_##id,
typedef enum soak_fault { SOAK_FAULT_LIST(SOAK_FAULT_ENUM) SOAK_F__COUNT } soak_fault;
#undef SOAK_FAULT_ENUM

const char *soak_fault_name(soak_fault f);

typedef struct soak_nemesis {
  soak_rng rng;
  int64_t next_us;              /* when the next fault is due */
  int64_t pg_heal_us, redis_heal_us; /* proxy faults in force until then */
  long count[SOAK_F__COUNT];
  int log_fd; /* faults.jsonl */
} soak_nemesis;

void soak_nemesis_init(soak_nemesis *n, soak_world *w);
/* Heals what is due and injects the next fault when it is time. */
void soak_nemesis_step(soak_nemesis *n, soak_world *w);
long soak_nemesis_total(const soak_nemesis *n);
void soak_nemesis_close(soak_nemesis *n);

#endif

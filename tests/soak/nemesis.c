/* The soak's faults (nemesis.h). */
#include "nemesis.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SOAK_FAULT_NAME(id, name) name,
static const char *const fault_names[] = {SOAK_FAULT_LIST(SOAK_FAULT_NAME)};
#undef SOAK_FAULT_NAME

const char *soak_fault_name(soak_fault f) {
  return f < SOAK_F__COUNT ? fault_names[f] : "?";
}

void soak_nemesis_init(soak_nemesis *n, soak_world *w) {
  char path[600];
  memset(n, 0, sizeof *n);
  soak_rng_seed(&n->rng, w->cfg->seed, "nemesis");
  n->next_us = soak_now_us() + 1000000; /* let everything start first */
  soak_world_path(w, "faults.jsonl", path, sizeof path);
  n->log_fd = soak_open_lines(path);
}

static void note(soak_nemesis *n, soak_fault f, const char *target, int ms) {
  char line[256];
  n->count[f]++;
  int len = snprintf(line, sizeof line,
                     "{\"t\":%" PRId64 ",\"fault\":\"%s\",\"target\":\"%s\","
                     "\"ms\":%d}\n",
                     soak_now_us(), soak_fault_name(f), target, ms);
  if (n->log_fd >= 0)
    soak_write_all(n->log_fd, line, (size_t)len);
  soak_say("nemesis: %s %s%s%.0d%s", soak_fault_name(f), target,
           ms ? " for " : "", ms, ms ? " ms" : "");
}

/* A running process of one of the kinds in mask, or NULL. */
static soak_proc *pick(soak_nemesis *n, soak_world *w, unsigned mask) {
  soak_proc *c[SOAK_MAX_PROCS];
  size_t k = 0;
  for (size_t i = 0; i < w->nprocs; i++)
    if ((mask & (1u << w->procs[i].kind)) && w->procs[i].pid &&
        !w->procs[i].stopped)
      c[k++] = &w->procs[i];
  return k ? c[soak_rng_below(&n->rng, (int)k)] : NULL;
}

enum {
  CLIENTS = 1u << SOAK_LIB_CLIENT | 1u << SOAK_CLI_CLIENT,
  FOLLOWERS = 1u << SOAK_FOLLOWER_ALL | 1u << SOAK_FOLLOWER_CATEGORY,
  WORKERS = 1u << SOAK_WORKER
};

static void proxy_fault(soak_nemesis *n, soak_fault f, esc_test_proxy *p,
                        int64_t *heal_us, const char *target) {
  int ms = soak_rng_range(&n->rng, 200, 3000);
  if (*heal_us)
    return; /* one at a time per proxy */
  if (f == SOAK_F_PG_REFUSE)
    esc_test_proxy_set_mode(p, ESC_PROXY_RESET); /* down: reset, refuse */
  esc_test_proxy_set_mode(p, f == SOAK_F_PG_REFUSE  ? ESC_PROXY_REFUSE
                             : f == SOAK_F_PG_STALL || f == SOAK_F_REDIS_STALL
                                 ? ESC_PROXY_STALL
                                 : ESC_PROXY_RESET);
  *heal_us = soak_now_us() + (int64_t)ms * 1000;
  note(n, f, target, ms);
}

static void signal_fault(soak_nemesis *n, soak_world *w, soak_fault f) {
  unsigned mask = f == SOAK_F_KILL_CLIENT   ? CLIENTS
                  : f == SOAK_F_KILL_WORKER ? WORKERS
                  : f == SOAK_F_KILL_FOLLOWER
                      ? FOLLOWERS
                      : CLIENTS | FOLLOWERS | WORKERS;
  soak_proc *p = pick(n, w, mask);
  if (!p)
    return;
  char target[48];
  snprintf(target, sizeof target, "%s#%d", p->name, p->incarnation);
  if (f == SOAK_F_PAUSE) {
    int ms = soak_rng_range(&n->rng, 200, 4000);
    soak_world_stop_for(w, p, ms);
    note(n, f, target, ms);
  } else {
    soak_world_kill(w, p);
    note(n, f, target, 0);
  }
}

static void inject(soak_nemesis *n, soak_world *w, soak_fault f) {
  switch (f) {
  case SOAK_F_PG_FAST:
  case SOAK_F_PG_IMMEDIATE:
    note(n, f, "postgresql", 0);
    soak_world_restart_pg(w, f == SOAK_F_PG_FAST ? "fast" : "immediate");
    break;
  case SOAK_F_REDIS_RESTART:
    note(n, f, "redis", 0);
    soak_world_restart_redis(w);
    break;
  case SOAK_F_PG_RESET:
  case SOAK_F_PG_REFUSE:
  case SOAK_F_PG_STALL:
    proxy_fault(n, f, w->pg_proxy, &n->pg_heal_us, "pg-proxy");
    break;
  case SOAK_F_REDIS_RESET:
  case SOAK_F_REDIS_STALL:
    proxy_fault(n, f, w->redis_proxy, &n->redis_heal_us, "redis-proxy");
    break;
  default:
    signal_fault(n, w, f);
    break;
  }
}

/* Weights: process faults are cheap and many, server restarts rarer. */
static soak_fault draw(soak_nemesis *n) {
  static const int weight[SOAK_F__COUNT] = {4, 4, 2, 8, 5, 4, 8,
                                            5, 4, 5, 3, 3};
  int total = 0;
  for (int i = 0; i < SOAK_F__COUNT; i++)
    total += weight[i];
  int roll = soak_rng_below(&n->rng, total);
  for (int i = 0; i < SOAK_F__COUNT; i++) {
    if (roll < weight[i])
      return (soak_fault)i;
    roll -= weight[i];
  }
  return SOAK_F_PAUSE;
}

void soak_nemesis_step(soak_nemesis *n, soak_world *w) {
  int64_t now = soak_now_us();
  if (n->pg_heal_us && now >= n->pg_heal_us) {
    esc_test_proxy_set_mode(w->pg_proxy, ESC_PROXY_PASS);
    n->pg_heal_us = 0;
  }
  if (n->redis_heal_us && now >= n->redis_heal_us) {
    esc_test_proxy_set_mode(w->redis_proxy, ESC_PROXY_PASS);
    n->redis_heal_us = 0;
  }
  if (now < n->next_us)
    return;
  inject(n, w, draw(n));
  n->next_us = soak_now_us() + (int64_t)soak_rng_range(&n->rng, 300, 2500) * 1000;
}

long soak_nemesis_total(const soak_nemesis *n) {
  long t = 0;
  for (int i = 0; i < SOAK_F__COUNT; i++)
    t += n->count[i];
  return t;
}

void soak_nemesis_close(soak_nemesis *n) {
  if (n->log_fd >= 0)
    close(n->log_fd);
  n->log_fd = -1;
}

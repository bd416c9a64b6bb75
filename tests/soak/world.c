/* The servers and processes of a soak run (world.h). */
#include "world.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <esc/store.h>

#include "testenv.h"

static int64_t started_us;
static soak_world *live; /* for the atexit clean-up */

void soak_say(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  double t = started_us ? (double)(soak_now_us() - started_us) / 1e6 : 0;
  fprintf(stderr, "soak %7.2fs  %s\n", t, line);
}

void soak_world_path(const soak_world *w, const char *name, char *out,
                     size_t size) {
  snprintf(out, size, "%s/%s", w->cfg->dir, name);
}

static void at_exit(void) {
  if (live)
    soak_world_free(live);
}

static bool migrate(soak_world *w) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SOAK_SCHEMA;
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_store_open(w->direct_pg_url, &o, &err);
  if (st)
    esc_store_migrate(st, NULL, &err);
  esc_store_free(st);
  if (err.code)
    soak_say("cannot set up the store: %s", err.msg);
  return err.code == ESC_OK;
}

bool soak_world_start(soak_world *w, const soak_config *cfg, soak_report *rep) {
  char path[512], why[256] = "";
  memset(w, 0, sizeof *w);
  w->cfg = cfg;
  w->rep = rep;
  started_us = soak_now_us();
  if (!soak_mkdirs(cfg->dir)) {
    soak_say("cannot make %s: %s", cfg->dir, strerror(errno));
    return false;
  }
  soak_world_path(w, "history", path, sizeof path);
  soak_mkdirs(path);
  soak_world_path(w, "logs", path, sizeof path);
  soak_mkdirs(path);
  live = w;
  atexit(at_exit);
  w->pg = esc_test_pg_cluster_new(cfg->dir);
  w->redis_port = esc_test_free_port(23400, 400);
  soak_world_path(w, "logs/redis.log", path, sizeof path);
  w->redis_pid = esc_test_redis_server_start(w->redis_port, path);
  w->pg_proxy = esc_test_proxy_start(esc_test_pg_cluster_port(w->pg), why,
                                     sizeof why);
  if (w->pg_proxy)
    w->redis_proxy = esc_test_proxy_start(w->redis_port, why, sizeof why);
  if (!w->redis_proxy) {
    soak_say("cannot start a proxy: %s", why);
    return false;
  }
  /* Short connect waits: under REFUSE and STALL a client should fail
   * fast and retry, not sit out libpq's default. */
  snprintf(w->pg_url, sizeof w->pg_url,
           "postgresql://esc@127.0.0.1:%d/postgres?connect_timeout=2",
           esc_test_proxy_port(w->pg_proxy));
  snprintf(w->direct_pg_url, sizeof w->direct_pg_url, "%s",
           esc_test_pg_cluster_url(w->pg));
  snprintf(w->redis_url, sizeof w->redis_url, "redis://127.0.0.1:%d",
           esc_test_proxy_port(w->redis_proxy));
  return migrate(w);
}

/* ------------------------------------------------------------ processes */

static soak_proc *add(soak_world *w, soak_proc_kind kind, const char *name) {
  soak_proc *p = &w->procs[w->nprocs++];
  memset(p, 0, sizeof *p);
  p->kind = kind;
  snprintf(p->name, sizeof p->name, "%s", name);
  return p;
}

static const char *self_path(void) {
  static char path[512];
  ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  path[n > 0 ? n : 0] = '\0';
  return path;
}

static pid_t spawn_client(soak_world *w, soak_proc *p) {
  char name[48], hist[600], log[600], seed[24], rel[96];
  snprintf(name, sizeof name, "%s.%d", p->name, p->incarnation);
  snprintf(rel, sizeof rel, "history/%s-%d.jsonl", p->name, p->incarnation);
  soak_world_path(w, rel, hist, sizeof hist);
  snprintf(rel, sizeof rel, "logs/%s.log", p->name);
  soak_world_path(w, rel, log, sizeof log);
  snprintf(seed, sizeof seed, "%" PRIu64, w->cfg->seed + (uint64_t)p->incarnation);
  const char *argv[] = {self_path(), "client",   "--pg",      w->pg_url,
                        "--schema",  SOAK_SCHEMA, "--name",   name,
                        "--history", hist,       "--seed",    seed,
                        "--esc",     p->kind == SOAK_CLI_CLIENT ? ESC_CLI_PATH
                                                                : "",
                        NULL};
  return esc_test_spawn(argv[0], argv, NULL, log);
}

/* The position after the last event a follower printed ("start" when it
 * printed none), so its next incarnation continues exactly there. */
static void resume_from(const char *out, char *from, size_t size) {
  char line[8192];
  snprintf(from, size, "start");
  int fd = soak_open_lines(out); /* cuts a line the kill left half-written */
  if (fd >= 0)
    close(fd);
  if (!soak_last_line(out, line, sizeof line))
    return;
  json_t *o = json_loads(line, 0, NULL);
  const char *pos = json_string_value(json_object_get(o, "position"));
  if (pos)
    snprintf(from, size, "%s", pos);
  json_decref(o);
}

static pid_t spawn_follower(soak_world *w, soak_proc *p) {
  char out[600], log[600], from[ESC_POSITION_TOKEN_MAX + 8], cmd[2400];
  bool cat = p->kind == SOAK_FOLLOWER_CATEGORY;
  char rel[96];
  snprintf(rel, sizeof rel, "%s.jsonl", p->name);
  soak_world_path(w, rel, out, sizeof out);
  snprintf(rel, sizeof rel, "logs/%s.log", p->name);
  soak_world_path(w, rel, log, sizeof log);
  resume_from(out, from, sizeof from);
  /* sh only sets up the redirections: exec leaves esc with its pid. */
  snprintf(cmd, sizeof cmd,
           "exec '%s' --pg '%s' --schema %s --pg-timeout 5 --json tail "
           "--follow --retry-forever --from %s %s >>'%s' 2>>'%s'",
           ESC_CLI_PATH, w->pg_url, SOAK_SCHEMA, from,
           cat ? "--category " SOAK_CATEGORY : "", out, log);
  const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
  return esc_test_spawn(argv[0], argv, NULL, NULL);
}

static pid_t spawn_worker(soak_world *w, soak_proc *p) {
  char log[600], rel[96];
  snprintf(rel, sizeof rel, "logs/%s.log", p->name);
  soak_world_path(w, rel, log, sizeof log);
  const char *argv[] = {ESC_PROJECTOR_PATH, "--schema",     SOAK_SCHEMA,
                        "--name",           SOAK_PROJECTION, "--partitions",
                        "4",                "--pg",          w->pg_url,
                        "--redis",          w->redis_url,    "--lease-poll",
                        "200",              "--poll",        "50",
                        NULL};
  return esc_test_spawn(argv[0], argv, NULL, log);
}

static void spawn(soak_world *w, soak_proc *p) {
  p->incarnation++;
  p->killed = p->stopped = false;
  p->restart_at_us = 0;
  switch (p->kind) {
  case SOAK_LIB_CLIENT:
  case SOAK_CLI_CLIENT:
    p->pid = spawn_client(w, p);
    break;
  case SOAK_FOLLOWER_ALL:
  case SOAK_FOLLOWER_CATEGORY:
    p->pid = spawn_follower(w, p);
    break;
  case SOAK_WORKER:
    p->pid = spawn_worker(w, p);
    break;
  }
}

void soak_world_spawn_all(soak_world *w) {
  char name[32];
  const soak_config *c = w->cfg;
  for (int i = 1; i <= c->workers; i++) {
    snprintf(name, sizeof name, "worker%d", i);
    add(w, SOAK_WORKER, name);
  }
  add(w, SOAK_FOLLOWER_ALL, "follow-all");
  add(w, SOAK_FOLLOWER_CATEGORY, "follow-category");
  for (int i = 1; i <= c->lib_clients; i++) {
    snprintf(name, sizeof name, "lib%d", i);
    add(w, SOAK_LIB_CLIENT, name);
  }
  for (int i = 1; i <= c->cli_clients; i++) {
    snprintf(name, sizeof name, "cli%d", i);
    add(w, SOAK_CLI_CLIENT, name);
  }
  for (size_t i = 0; i < w->nprocs; i++)
    spawn(w, &w->procs[i]);
}

/* A death nobody asked for: an anomaly, and the process comes back. */
static void crashed(soak_world *w, soak_proc *p, int status) {
  char what[64];
  if (WIFSIGNALED(status))
    snprintf(what, sizeof what, "died of signal %d", WTERMSIG(status));
  else
    snprintf(what, sizeof what, "exited with status %d", WEXITSTATUS(status));
  w->crashes++;
  soak_report_add(w->rep, SOAK_A_CRASH, "%s#%d (pid %d) %s (see logs/%s.log)",
                  p->name, p->incarnation, (int)p->pid, what, p->name);
  soak_say("%s#%d %s", p->name, p->incarnation, what);
}

void soak_world_tend(soak_world *w) {
  int64_t now = soak_now_us();
  for (size_t i = 0; i < w->nprocs; i++) {
    soak_proc *p = &w->procs[i];
    int status = 0;
    if (p->pid && esc_test_wait_child(p->pid, 0, &status)) {
      if (!p->killed)
        crashed(w, p, status);
      p->pid = 0;
      p->restart_at_us = now + 100000 + (int64_t)(rand() % 900) * 1000;
    }
    if (p->pid && p->stopped && now >= p->cont_at_us) {
      kill(p->pid, SIGCONT);
      p->stopped = false;
    }
    if (!p->pid && p->restart_at_us && now >= p->restart_at_us) {
      w->restarts++;
      spawn(w, p);
    }
  }
}

void soak_world_kill(soak_world *w, soak_proc *p) {
  (void)w;
  if (!p->pid)
    return;
  p->killed = true;
  kill(p->pid, SIGKILL);
}

void soak_world_stop_for(soak_world *w, soak_proc *p, int ms) {
  (void)w;
  if (!p->pid || p->stopped)
    return;
  kill(p->pid, SIGSTOP);
  p->stopped = true;
  p->cont_at_us = soak_now_us() + (int64_t)ms * 1000;
}

void soak_world_restart_pg(soak_world *w, const char *mode) {
  esc_test_pg_cluster_stop(w->pg, mode);
  soak_sleep_ms(100 + rand() % 400);
  esc_test_pg_cluster_start(w->pg);
}

void soak_world_restart_redis(soak_world *w) {
  char log[600];
  esc_test_kill_child(w->redis_pid);
  soak_world_path(w, "logs/redis.log", log, sizeof log);
  soak_sleep_ms(100 + rand() % 400);
  w->redis_pid = esc_test_redis_server_start(w->redis_port, log);
}

void soak_world_heal(soak_world *w) {
  esc_test_proxy_set_mode(w->pg_proxy, ESC_PROXY_PASS);
  esc_test_proxy_set_mode(w->redis_proxy, ESC_PROXY_PASS);
  for (size_t i = 0; i < w->nprocs; i++)
    if (w->procs[i].pid && w->procs[i].stopped) {
      kill(w->procs[i].pid, SIGCONT);
      w->procs[i].stopped = false;
    }
}

void soak_world_stop_kinds(soak_world *w, unsigned mask, int timeout_ms) {
  for (size_t i = 0; i < w->nprocs; i++) {
    soak_proc *p = &w->procs[i];
    if (!(mask & (1u << p->kind)))
      continue;
    p->restart_at_us = 0; /* for good */
    if (p->pid) {
      p->killed = true; /* whatever its exit status now, we asked */
      kill(p->pid, SIGCONT);
      kill(p->pid, SIGTERM);
    }
  }
  for (size_t i = 0; i < w->nprocs; i++) {
    soak_proc *p = &w->procs[i];
    if (!(mask & (1u << p->kind)) || !p->pid)
      continue;
    if (!esc_test_wait_child(p->pid, timeout_ms, NULL)) {
      soak_say("%s#%d did not stop on SIGTERM within %d ms: killed", p->name,
               p->incarnation, timeout_ms);
      esc_test_kill_child(p->pid);
    }
    p->pid = 0;
  }
}

void soak_world_free(soak_world *w) {
  live = NULL;
  for (size_t i = 0; i < w->nprocs; i++)
    if (w->procs[i].pid)
      esc_test_kill_child(w->procs[i].pid);
  w->nprocs = 0;
  esc_test_proxy_stop(w->pg_proxy);
  esc_test_proxy_stop(w->redis_proxy);
  w->pg_proxy = w->redis_proxy = NULL;
  if (w->redis_pid)
    esc_test_kill_child(w->redis_pid);
  w->redis_pid = 0;
  esc_test_pg_cluster_free(w->pg);
  w->pg = NULL;
}

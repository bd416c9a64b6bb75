/*
 * esc-soak - the fault-injection soak (docs/soak.md).
 *
 *   esc-soak run [--seconds N | --minutes N] [--seed N] [--dir D]
 *                [--clients N] [--cli-clients N] [--workers N] [--keep]
 *   esc-soak client --pg URL --schema S --name C --history F --seed N
 *                [--esc PATH] [--pause-ms MS]
 *
 * `run` starts a private PostgreSQL and Redis, clients, followers and
 * projection workers, lets the nemesis loose for the given time, heals
 * everything, waits for followers and workers to catch up, and judges the
 * whole history. It prints one JSON summary on stdout and each anomaly on
 * stderr. Exit status: 0 no anomaly, 1 anomalies, 2 the soak itself could
 * not run (usage, a server that would not start).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "collect.h"
#include "nemesis.h"
#include "world.h"

static int usage(const char *why) {
  fprintf(stderr,
          "esc-soak: %s\n"
          "usage: esc-soak run [--seconds N | --minutes N] [--seed N] "
          "[--dir D]\n"
          "                    [--clients N] [--cli-clients N] [--workers N] "
          "[--keep]\n"
          "       esc-soak client --pg URL --schema S --name C --history F "
          "--seed N\n"
          "                    [--esc PATH] [--pause-ms MS]\n"
          "See docs/soak.md. Exit: 0 no anomaly, 1 anomalies, 2 the soak "
          "could not run.\n",
          why);
  return 2;
}

static bool number(const char *s, long long min, long long max,
                   long long *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || !*s || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static int client_main(int argc, char **argv) {
  soak_client_opts o = {0};
  long long v;
  o.pause_ms = 5;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *a = argv[i], *val = argv[i + 1];
    if (strcmp(a, "--pg") == 0)
      o.pg_url = val;
    else if (strcmp(a, "--schema") == 0)
      o.schema = val;
    else if (strcmp(a, "--name") == 0)
      o.name = val;
    else if (strcmp(a, "--history") == 0)
      o.history = val;
    else if (strcmp(a, "--esc") == 0)
      o.esc_path = *val ? val : NULL;
    else if (strcmp(a, "--seed") == 0 && number(val, 0, INT64_MAX, &v))
      o.seed = (uint64_t)v;
    else if (strcmp(a, "--pause-ms") == 0 && number(val, 0, 10000, &v))
      o.pause_ms = (int)v;
    else
      return usage(a);
  }
  if (!o.pg_url || !o.schema || !o.name || !o.history)
    return usage("client needs --pg, --schema, --name and --history");
  return soak_client_main(&o);
}

static int parse_run(int argc, char **argv, soak_config *c, bool *keep) {
  static char dir[512];
  long long v;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : "";
    bool ok = true;
    if (strcmp(a, "--keep") == 0) {
      *keep = true;
      continue;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
      return usage("help") ? -1 : -1;
    i++;
    if (strcmp(a, "--seconds") == 0 && (ok = number(val, 5, 86400, &v)))
      c->seconds = (int)v;
    else if (strcmp(a, "--minutes") == 0 && (ok = number(val, 1, 1440, &v)))
      c->seconds = (int)v * 60;
    else if (strcmp(a, "--seed") == 0 && (ok = number(val, 0, INT64_MAX, &v)))
      c->seed = (uint64_t)v;
    else if (strcmp(a, "--dir") == 0)
      c->dir = val;
    else if (strcmp(a, "--clients") == 0 && (ok = number(val, 0, 8, &v)))
      c->lib_clients = (int)v;
    else if (strcmp(a, "--cli-clients") == 0 && (ok = number(val, 0, 4, &v)))
      c->cli_clients = (int)v;
    else if (strcmp(a, "--workers") == 0 && (ok = number(val, 1, 4, &v)))
      c->workers = (int)v;
    else
      return usage(a) ? 2 : 2;
    if (!ok)
      return usage(a) ? 2 : 2;
  }
  if (!c->dir) {
    snprintf(dir, sizeof dir, "%s/soak-%" PRIu64 "-%d", ESC_TEST_TMP_DIR,
             c->seed, (int)getpid());
    c->dir = dir;
  }
  return 0;
}

/* Lines in a file: what a follower has printed. */
static size_t lines_of(const char *path) {
  char *text = soak_read_file(path, NULL);
  size_t n = 0;
  for (const char *p = text; p && *p; p++)
    n += *p == '\n';
  free(text);
  return n;
}

static void tend_ms(soak_world *w, int ms) {
  for (int64_t end = soak_now_us() + ms * 1000; soak_now_us() < end;) {
    soak_world_tend(w);
    soak_sleep_ms(10);
  }
}

/* Waits (tending) until both followers printed the whole final log. */
static void wait_followers(soak_world *w, soak_evidence *ev, soak_report *rep) {
  char all[600], cat[600];
  soak_world_path(w, "follow-all.jsonl", all, sizeof all);
  soak_world_path(w, "follow-category.jsonl", cat, sizeof cat);
  /* 90 s, and a second more per 5000 events: a long run's log is long. */
  int64_t budget_s = 90 + (int64_t)ev->log_all.count / 5000;
  int64_t deadline = soak_now_us() + budget_s * 1000000LL;
  size_t a = 0, c = 0;
  while (soak_now_us() < deadline) {
    a = lines_of(all);
    c = lines_of(cat);
    if (a >= ev->log_all.count && c >= ev->log_category.count)
      return;
    tend_ms(w, 200);
  }
  soak_report_add(rep, SOAK_A_FOLLOWER,
                  "followers did not catch up within %lld s: $all %zu of %zu, "
                  "category %zu of %zu",
                  (long long)budget_s, a, ev->log_all.count, c,
                  ev->log_category.count);
}

/* Waits (tending) until the read model is the rebuild of the log. */
static void wait_model(soak_world *w, soak_evidence *ev) {
  char why[512] = "";
  int64_t budget_s = 120 + (int64_t)ev->log_category.count / 5000;
  int64_t deadline = soak_now_us() + budget_s * 1000000LL;
  while (soak_now_us() < deadline) {
    if (soak_collect_model(w, ev) &&
        soak_model_matches(&ev->log_category, &ev->model, why, sizeof why))
      return;
    tend_ms(w, 250);
  }
  soak_say("the read model did not match the log within %lld s: %s",
           (long long)budget_s, why);
}

static json_t *summary(const soak_config *c, const soak_world *w,
                       const soak_nemesis *n, const soak_report *rep) {
  const soak_stats *s = &rep->stats;
  json_t *faults = json_object(), *kinds = json_object(),
         *outcomes = json_object();
  for (int i = 0; i < SOAK_F__COUNT; i++)
    json_object_set_new(faults, soak_fault_name((soak_fault)i),
                        json_integer(n->count[i]));
  for (int k = 0; k < SOAK_A__COUNT; k++)
    if (rep->per_kind[k])
      json_object_set_new(kinds, soak_anomaly_name((soak_anomaly_kind)k),
                          json_integer((json_int_t)rep->per_kind[k]));
  for (int o = 1; o < 5; o++)
    json_object_set_new(outcomes, soak_outcome_name((soak_outcome)o),
                        json_integer((json_int_t)s->outcomes[o]));
  json_object_set_new(outcomes, "pending",
                      json_integer((json_int_t)s->outcomes[0]));
  return json_pack(
      "{s:i, s:I, s:s, s:i, s:i, s:i, s:I, s:I, s:o, s:I, s:I, s:I, s:I, "
      "s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:o}",
      "seconds", c->seconds, "seed", (json_int_t)c->seed, "dir", c->dir,
      "clients", c->lib_clients, "cli_clients", c->cli_clients, "workers",
      c->workers, "ops", (json_int_t)s->ops, "attempts",
      (json_int_t)s->attempts, "outcomes", outcomes, "acked",
      (json_int_t)s->acked, "unknown_present", (json_int_t)s->unknown_present,
      "unknown_absent", (json_int_t)s->unknown_absent, "retried",
      (json_int_t)s->retried, "duplicates_returned",
      (json_int_t)s->duplicates_returned, "log_events",
      (json_int_t)s->log_events, "streams", (json_int_t)s->streams,
      "deliveries", (json_int_t)s->deliveries, "faults", faults,
      "faults_total", (json_int_t)soak_nemesis_total(n), "restarts",
      (json_int_t)w->restarts, "crashes", (json_int_t)w->crashes,
      "anomalies", (json_int_t)soak_report_total(rep), "anomaly_kinds", kinds);
}

static void print_anomalies(const soak_report *rep) {
  for (size_t i = 0; i < rep->count; i++)
    fprintf(stderr, "ANOMALY %s: %s\n",
            soak_anomaly_name(rep->items[i].kind), rep->items[i].text);
}

/* The whole run: faults, healing, catching up, judging. */
static int run(const soak_config *cfg, bool keep) {
  soak_world w;
  soak_report rep = {0};
  soak_evidence ev = {0};
  soak_nemesis n;
  if (!soak_world_start(&w, cfg, &rep)) {
    soak_world_free(&w);
    return 2;
  }
  soak_say("run %s: %d s, seed %" PRIu64 ", pg proxy %s", cfg->dir,
           cfg->seconds, cfg->seed, w.pg_url);
  soak_world_spawn_all(&w);
  soak_nemesis_init(&n, &w);
  int64_t end = soak_now_us() + (int64_t)cfg->seconds * 1000000;
  while (soak_now_us() < end) {
    soak_world_tend(&w);
    soak_nemesis_step(&n, &w);
    soak_sleep_ms(10);
  }
  soak_say("faults over (%ld injected): healing, stopping the clients",
           soak_nemesis_total(&n));
  soak_world_heal(&w);
  tend_ms(&w, 500);
  soak_world_stop_kinds(&w, 1u << SOAK_LIB_CLIENT | 1u << SOAK_CLI_CLIENT,
                        20000);
  bool ok = soak_collect_log(&w, &ev);
  if (ok) {
    soak_say("log: %zu events; waiting for followers and workers",
             ev.log_all.count);
    wait_followers(&w, &ev, &rep);
    wait_model(&w, &ev);
  }
  soak_world_stop_kinds(&w, ~0u, 20000);
  ok = ok && soak_collect_files(&w, &ev);
  soak_follower followers[] = {{"follow-all", false, &ev.follow_all},
                               {"follow-category", true, &ev.follow_category}};
  soak_input in = {&ev.history,  &ev.log_all, &ev.log_category, SOAK_CATEGORY,
                   ev.streams,   ev.n_streams, followers,       2,
                   &ev.model};
  if (ok && !soak_check(&in, &rep)) {
    soak_say("out of memory while checking");
    ok = false;
  }
  soak_nemesis_close(&n);
  soak_world_free(&w);
  int rc = !ok ? 2 : soak_report_total(&rep) ? 1 : 0;
  if (ok) {
    print_anomalies(&rep);
    json_t *s = summary(cfg, &w, &n, &rep);
    char *text = json_dumps(s, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(s);
  }
  soak_say("%s: %zu anomalies", rc == 0 ? "PASS" : rc == 1 ? "FAIL" : "ERROR",
           soak_report_total(&rep));
  if (rc == 0 && !keep) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cfg->dir);
    if (system(cmd) != 0)
      soak_say("could not remove %s", cfg->dir);
  }
  soak_evidence_release(&ev);
  soak_report_release(&rep);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return usage("a mode is required: run or client");
  if (strcmp(argv[1], "client") == 0)
    return client_main(argc, argv);
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage("help");
    return 0;
  }
  if (strcmp(argv[1], "run") != 0)
    return usage(argv[1]);
  soak_config cfg = {60, 0, NULL, 4, 2, 2, false};
  cfg.seed = (uint64_t)time(NULL);
  bool keep = false;
  int rc = parse_run(argc, argv, &cfg, &keep);
  if (rc)
    return rc < 0 ? 0 : rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  return run(&cfg, keep);
}

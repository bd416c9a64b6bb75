/*
 * The command group: esc_execute throughput (load, fold, decide, append)
 * against plain single-event esc_append throughput, measured in the same
 * run.
 *
 * Both sides run 8 threads, each with its own esc_store (one connection),
 * each owning its own aggregates ("counter-w<t>a<i>"), so no two threads
 * ever touch the same stream and every command succeeds at its first
 * attempt (reported as attempts_mean; anything above 1 would mean a
 * conflict the bench did not expect).
 *
 * The esc side executes INCREMENT commands of the counter decider
 * (tests/support/counter.c) round-robin over the thread's aggregates. Each
 * aggregate is pre-filled, untimed, with events_per_aggregate - 1
 * Incremented events (esc_append_many, one stream per request), then every
 * thread executes one untimed command per aggregate as its warm-up: that
 * brings each aggregate to exactly events_per_aggregate events, prepares
 * the statements, and, with snapshot_every = 100, stores a snapshot at that
 * version (the append from 999 to 1000 crosses a multiple of 100), so the
 * timed commands load from snapshots.
 *
 * The baseline side appends one Incremented event (the event a command
 * appends, with the same kind of metadata) per esc_append, with the exact
 * expected version the writer tracks: what a command costs with the load,
 * fold and decide taken away.
 *
 * Phases alternate (baseline esc | esc baseline | ...) through the shared
 * runner, each on a freshly migrated schema.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"
#include "counter.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events per esc_append_many call while pre-filling. */
#define FILL_EVENTS_PER_CALL 20000

struct command_params {
  int threads;
  int events;         /* events per aggregate when timing starts */
  int aggregates;     /* per thread */
  int snapshot_every; /* 0: no snapshots */
  double target_ratio;
};

/* What every worker of one phase shares; the stats are summed over the
 * esc phases of a scenario. */
struct command_shared {
  const bench_config *cfg;
  const struct command_params *cp;
  esc_decider decider;
  pthread_mutex_t mu;
  /* esc side, every execution after the warm-up (the one in flight at
   * the deadline included): */
  uint64_t executions;
  uint64_t attempts;
  int attempts_max;
  uint64_t folded;         /* events read and folded after the snapshot */
  uint64_t snapshot_loads; /* executions that started from a snapshot */
  /* both sides: stream lengths at the end of each phase */
  double end_versions;
  uint64_t end_streams;
};

struct command_worker {
  struct command_shared *sh;
  int index;
  esc_store *store;
  unsigned next;
  unsigned cur;
  char stream_id[48];
  char actor[32];
  int64_t *versions; /* per aggregate */
  /* baseline: the one event of each append */
  esc_event_data event;
  void *data;
  size_t data_len;
  void *metadata;
  size_t metadata_len;
  /* esc side, this thread's share of the stats */
  uint64_t warmed_up;
  uint64_t executions, attempts, folded, snapshot_loads;
  int attempts_max;
};

static void stream_name(char *out, size_t size, int thread, unsigned agg) {
  snprintf(out, size, "counter-w%da%u", thread, agg);
}

/* ------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------ */

static void worker_teardown(void *worker) {
  struct command_worker *w = worker;
  if (!w)
    return;
  struct command_shared *sh = w->sh;
  pthread_mutex_lock(&sh->mu);
  sh->executions += w->executions;
  sh->attempts += w->attempts;
  sh->folded += w->folded;
  sh->snapshot_loads += w->snapshot_loads;
  if (w->attempts_max > sh->attempts_max)
    sh->attempts_max = w->attempts_max;
  if (w->versions && w->store) {
    for (int i = 0; i < sh->cp->aggregates; i++)
      sh->end_versions += (double)w->versions[i];
    sh->end_streams += (uint64_t)sh->cp->aggregates;
  }
  pthread_mutex_unlock(&sh->mu);
  esc_store_free(w->store);
  free(w->versions);
  free(w->data);
  free(w->metadata);
  free(w);
}

static int worker_setup(void *shared, int index, void **worker, bool esc,
                        char *err, size_t errlen) {
  struct command_shared *sh = shared;
  struct command_worker *w = calloc(1, sizeof(*w));
  if (!w) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  *worker = w;
  w->sh = sh;
  w->index = index;
  snprintf(w->actor, sizeof(w->actor), "bench-writer-%d", index);
  w->versions = calloc((size_t)sh->cp->aggregates, sizeof(*w->versions));
  if (!w->versions) {
    bench_errf(err, errlen, "out of memory");
    return -1;
  }
  /* The esc side's aggregates were pre-filled with events - 1 events; the
   * baseline's streams start empty. */
  for (int i = 0; esc && i < sh->cp->aggregates; i++)
    w->versions[i] = sh->cp->events - 1;
  if (!esc) {
    esc_error e = ESC_ERROR_INIT;
    counter_incremented_t inc = {.by = 1};
    if (esc_event_encode(&counter_incremented, &inc, &w->data, &w->data_len,
                         &e) != ESC_OK) {
      bench_errf(err, errlen, "esc_event_encode: %s", e.msg);
      return -1;
    }
  }
  w->store = bench_esc_open(sh->cfg, err, errlen);
  return w->store ? 0 : -1;
}

static int esc_setup(void *shared, int index, void **worker, char *err,
                     size_t errlen) {
  return worker_setup(shared, index, worker, true, err, errlen);
}

static int base_setup(void *shared, int index, void **worker, char *err,
                      size_t errlen) {
  return worker_setup(shared, index, worker, false, err, errlen);
}

/* The next aggregate of this thread, round-robin. */
static int esc_prepare(void *worker, char *err, size_t errlen) {
  struct command_worker *w = worker;
  (void)err;
  (void)errlen;
  w->cur = w->next++ % (unsigned)w->sh->cp->aggregates;
  stream_name(w->stream_id, sizeof(w->stream_id), w->index, w->cur);
  return 0;
}

/* The next stream, and the event with a fresh id and metadata as a
 * command would write it (correlation = causation = a command id). */
static int base_prepare(void *worker, char *err, size_t errlen) {
  struct command_worker *w = worker;
  esc_metadata m = ESC_METADATA_INIT;
  esc_error e = ESC_ERROR_INIT;

  esc_prepare(worker, err, errlen);
  m.causation_id = esc_uuid_v4();
  m.correlation_id = m.causation_id;
  m.actor = w->actor;
  m.time_us = esc_now_us();
  free(w->metadata);
  w->metadata = NULL;
  if (esc_metadata_encode(&m, &w->metadata, &w->metadata_len, &e) != ESC_OK) {
    bench_errf(err, errlen, "esc_metadata_encode: %s", e.msg);
    return -1;
  }
  w->event = (esc_event_data){esc_uuid_v4(),
                              counter_incremented.name,
                              counter_incremented.schema_version,
                              w->data,
                              w->data_len,
                              w->metadata,
                              w->metadata_len};
  return 0;
}

static int esc_exec(void *worker, uint64_t *units, char *err, size_t errlen) {
  struct command_worker *w = worker;
  const counter_cmd cmd = {COUNTER_INCREMENT, 1};
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  esc_command_result res;
  esc_error e = ESC_ERROR_INIT;
  int64_t before = w->versions[w->cur];

  o.actor = w->actor;
  if (esc_execute(w->store, &w->sh->decider, w->stream_id, &cmd, &o, &res,
                  &e) != ESC_OK) {
    bench_errf(err, errlen, "esc_execute on %s: %s: %s", w->stream_id,
               esc_strerror(e.code), e.msg);
    return -1;
  }
  if (res.event_count != 1 || res.duplicate ||
      res.first_version != before + 1 || res.version != before + 1) {
    bench_errf(err, errlen,
               "esc_execute on %s at version %" PRId64 ": appended %zu "
               "event(s) at %" PRId64 "..%" PRId64 "%s",
               w->stream_id, before, res.event_count, res.first_version,
               res.version, res.duplicate ? " (duplicate)" : "");
    return -1;
  }
  w->versions[w->cur] = res.version;
  /* The first `aggregates` executions are the warm-up: not in the stats. */
  if (w->warmed_up++ < (uint64_t)w->sh->cp->aggregates) {
    *units = 1;
    return 0;
  }
  w->executions++;
  w->attempts += (uint64_t)res.attempts;
  if (res.attempts > w->attempts_max)
    w->attempts_max = res.attempts;
  /* With one attempt, the command loaded version first_version - 1. */
  w->folded += (uint64_t)(res.first_version - 1 - res.snapshot_version);
  if (res.snapshot_version > 0)
    w->snapshot_loads++;
  *units = 1;
  return 0;
}

static int base_exec(void *worker, uint64_t *units, char *err, size_t errlen) {
  struct command_worker *w = worker;
  int64_t expected = w->versions[w->cur];
  esc_append_result res;
  esc_error e = ESC_ERROR_INIT;

  if (esc_append(w->store, w->stream_id, expected, &w->event, 1, &res, &e) !=
      ESC_OK) {
    bench_errf(err, errlen, "esc_append to %s: %s: %s", w->stream_id,
               esc_strerror(e.code), e.msg);
    return -1;
  }
  if (res.duplicate || res.last_version != expected + 1) {
    bench_errf(err, errlen,
               "esc_append to %s at version %" PRId64 ": got %" PRId64 "%s",
               w->stream_id, expected, res.last_version,
               res.duplicate ? " (duplicate)" : "");
    return -1;
  }
  w->versions[w->cur] = res.last_version;
  *units = 1;
  return 0;
}

static const bench_worker_ops esc_ops = {esc_setup, esc_prepare, esc_exec,
                                         worker_teardown};
static const bench_worker_ops base_ops = {base_setup, base_prepare, base_exec,
                                          worker_teardown};

/* ------------------------------------------------------------------------
 * Pre-filling the aggregates (untimed)
 * ------------------------------------------------------------------------ */

/*
 * Appends n - 1 Incremented events to every aggregate of every thread,
 * many streams per esc_append_many call, one connection.
 */
static int fill_aggregates(const bench_config *cfg,
                           const struct command_params *cp, char *err,
                           size_t errlen) {
  size_t per_stream = (size_t)(cp->events - 1);
  size_t streams = (size_t)cp->threads * (size_t)cp->aggregates;
  size_t per_call = per_stream ? FILL_EVENTS_PER_CALL / per_stream : 0;
  esc_store *st = NULL;
  esc_event_data *events = NULL;
  esc_append_request *reqs = NULL;
  char(*names)[48] = NULL;
  void *data = NULL, *meta = NULL;
  size_t data_len = 0, meta_len = 0;
  esc_error e = ESC_ERROR_INIT;
  esc_metadata m = ESC_METADATA_INIT;
  int rc = -1;

  if (per_stream == 0)
    return 0;
  if (per_call == 0)
    per_call = 1;
  if (per_call > streams)
    per_call = streams;
  events = calloc(per_call * per_stream, sizeof(*events));
  reqs = calloc(per_call, sizeof(*reqs));
  names = calloc(per_call, sizeof(*names));
  if (!events || !reqs || !names) {
    bench_errf(err, errlen, "out of memory");
    goto out;
  }
  counter_incremented_t inc = {.by = 1};
  m.correlation_id = esc_uuid_v4();
  m.causation_id = m.correlation_id;
  m.actor = "bench-fill";
  m.time_us = esc_now_us();
  if (esc_event_encode(&counter_incremented, &inc, &data, &data_len, &e) !=
          ESC_OK ||
      esc_metadata_encode(&m, &meta, &meta_len, &e) != ESC_OK) {
    bench_errf(err, errlen, "fill: encode: %s", e.msg);
    goto out;
  }
  st = bench_esc_open_async(cfg, err, errlen);
  if (!st)
    goto out;

  for (size_t s = 0; s < streams; s += per_call) {
    size_t n = streams - s < per_call ? streams - s : per_call;
    for (size_t r = 0; r < n; r++) {
      size_t k = s + r;
      esc_event_data *ev = events + r * per_stream;
      stream_name(names[r], sizeof(names[r]), (int)(k / (size_t)cp->aggregates),
                  (unsigned)(k % (size_t)cp->aggregates));
      for (size_t i = 0; i < per_stream; i++)
        ev[i] = (esc_event_data){esc_uuid_v4(),
                                 counter_incremented.name,
                                 counter_incremented.schema_version,
                                 data,
                                 data_len,
                                 meta,
                                 meta_len};
      reqs[r] = (esc_append_request){.stream_id = names[r],
                                     .expected = ESC_EXPECT_NO_STREAM,
                                     .events = ev,
                                     .n = per_stream};
    }
    if (esc_append_many(st, reqs, n, &e) != ESC_OK) {
      bench_errf(err, errlen, "fill: esc_append_many: %s: %s",
                 esc_strerror(e.code), e.msg);
      goto out;
    }
    for (size_t r = 0; r < n; r++) {
      if (reqs[r].status != ESC_OK) {
        bench_errf(err, errlen, "fill %s: %s: %s", names[r],
                   esc_strerror(reqs[r].status), reqs[r].error.msg);
        goto out;
      }
    }
  }
  rc = 0;
out:
  esc_store_free(st);
  free(events);
  free(reqs);
  free(names);
  free(data);
  free(meta);
  return rc;
}

/* ------------------------------------------------------------------------
 * Phases and scenarios
 * ------------------------------------------------------------------------ */

static int count_events(const bench_config *cfg, PGconn *admin, int64_t *out,
                        char *err, size_t errlen) {
  char sql[256];
  char *ident = bench_pg_ident(admin, cfg->schema, err, errlen);
  if (!ident)
    return -1;
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.events", ident);
  free(ident);
  return bench_pg_query_i64(admin, sql, out, err, errlen);
}

static int run_side(const bench_config *cfg, const bench_scenario *sc,
                    struct command_shared *sh, PGconn *admin, bool esc,
                    double seconds, bench_tally *tally, char *err,
                    size_t errlen) {
  const struct command_params *cp = sc->params;
  bench_phase p = {esc ? "esc" : "baseline",
                   esc ? &esc_ops : &base_ops,
                   sh,
                   cp->threads,
                   seconds,
                   cp->aggregates}; /* warm-up: one op per aggregate */
  uint64_t before = tally->units;
  double before_s = tally->seconds;
  int64_t filled = 0, stored = 0;

  if (bench_esc_reset(cfg, admin, err, errlen) != 0)
    return -1;
  if (esc) {
    uint64_t t0 = bench_now_ns();
    if (fill_aggregates(cfg, cp, err, errlen) != 0)
      return -1;
    filled = (int64_t)cp->threads * cp->aggregates * (cp->events - 1);
    bench_log("%s: pre-filled %d aggregates with %d events each in %.1f s",
              sc->name, cp->threads * cp->aggregates, cp->events - 1,
              (double)(bench_now_ns() - t0) / 1e9);
  }
  bench_pg_checkpoint(cfg, admin);

  if (bench_run_phase(&p, tally, err, errlen) != 0)
    return -1;
  /* Stored rows must cover the fill and every counted operation. */
  if (count_events(cfg, admin, &stored, err, errlen) != 0)
    return -1;
  if (stored < filled || (uint64_t)(stored - filled) < tally->units - before) {
    bench_errf(err, errlen, "%s side stored %lld events but counted %llu",
               p.label, (long long)(stored - filled),
               (unsigned long long)(tally->units - before));
    return -1;
  }
  bench_log("%s %s: %.0f %s/s", sc->name, p.label,
            (double)(tally->units - before) / (tally->seconds - before_s),
            esc ? "commands" : "appends");
  return 0;
}

static void fill_output(const bench_config *cfg,
                        const struct command_params *cp,
                        const struct command_shared *esc_sh,
                        const bench_tally *esc, const bench_tally *base,
                        bench_output *out) {
  double n = (double)esc_sh->executions;
  out->value = bench_tally_rate(esc);
  out->unit = "commands/s";
  out->baseline = bench_tally_rate(base);
  out->baseline_name = "esc-append-1ev-8w";
  out->target_ratio = cp->target_ratio;
  out->seconds = esc->seconds;
  out->rounds = cfg->rounds;
  out->p50_ms = bench_hist_quantile_ms(esc->hist, 0.50);
  out->p99_ms = bench_hist_quantile_ms(esc->hist, 0.99);
  out->baseline_p50_ms = bench_hist_quantile_ms(base->hist, 0.50);
  out->baseline_p99_ms = bench_hist_quantile_ms(base->hist, 0.99);
  bench_output_add(out, "threads", cp->threads, true);
  bench_output_add(out, "events_per_aggregate", cp->events, true);
  bench_output_add(out, "aggregates_per_thread", cp->aggregates, true);
  bench_output_add(out, "snapshot_every", cp->snapshot_every, true);
  bench_output_add(out, "attempts_mean",
                   n > 0 ? (double)esc_sh->attempts / n : NAN, false);
  bench_output_add(out, "attempts_max", esc_sh->attempts_max, true);
  bench_output_add(out, "folded_events_mean",
                   n > 0 ? (double)esc_sh->folded / n : NAN, false);
  bench_output_add(out, "snapshot_load_ratio",
                   n > 0 ? (double)esc_sh->snapshot_loads / n : NAN, false);
  bench_output_add(out, "events_per_aggregate_end",
                   esc_sh->end_streams
                       ? esc_sh->end_versions / (double)esc_sh->end_streams
                       : NAN,
                   false);
  bench_output_add(out, "commands", (double)esc->ops, true);
  bench_output_add(out, "baseline_appends", (double)base->ops, true);
}

static void shared_init(struct command_shared *sh, const bench_config *cfg,
                        const struct command_params *cp) {
  memset(sh, 0, sizeof(*sh));
  sh->cfg = cfg;
  sh->cp = cp;
  counter_decider_init(&sh->decider, cp->snapshot_every);
  pthread_mutex_init(&sh->mu, NULL);
}

static int run_command(const bench_config *cfg, const bench_scenario *sc,
                       bench_output *out, char *err, size_t errlen) {
  const struct command_params *cp = sc->params;
  struct command_shared esc_sh, base_sh;
  bench_tally esc = {0}, base = {0};
  double phase_s = cfg->seconds / cfg->rounds;
  PGconn *admin = NULL;
  int rc = -1;

  shared_init(&esc_sh, cfg, cp);
  shared_init(&base_sh, cfg, cp);
  if (bench_tally_init(&esc, err, errlen) != 0 ||
      bench_tally_init(&base, err, errlen) != 0)
    goto out_release;
  admin = bench_pg_connect(cfg, err, errlen);
  if (!admin)
    goto out_release;

  for (int i = 0; i < 2 * cfg->rounds; i++) {
    bool side_esc = bench_esc_phase(i);
    if (run_side(cfg, sc, side_esc ? &esc_sh : &base_sh, admin, side_esc,
                 phase_s, side_esc ? &esc : &base, err, errlen) != 0)
      goto out_release;
  }
  fill_output(cfg, cp, &esc_sh, &esc, &base, out);
  rc = 0;
out_release:
  PQfinish(admin);
  bench_tally_release(&esc);
  bench_tally_release(&base);
  pthread_mutex_destroy(&esc_sh.mu);
  pthread_mutex_destroy(&base_sh.mu);
  return rc;
}

/* ------------------------------------------------------------------------
 * The group
 * ------------------------------------------------------------------------ */

static const struct command_params p_10 = {8, 10, 250, 0, 0.5};
static const struct command_params p_1000 = {8, 1000, 20, 0, NAN};
static const struct command_params p_1000_snap = {8, 1000, 20, 100, NAN};

static const bench_scenario command_scenarios[] = {
    {"command-10ev", "INCREMENT commands on 10-event aggregates, 8 threads",
     run_command, &p_10},
    {"command-1000ev", "INCREMENT commands on 1000-event aggregates, 8 threads",
     run_command, &p_1000},
    {"command-1000ev-snapshot",
     "command-1000ev with a snapshot every 100 events", run_command,
     &p_1000_snap},
};

const bench_group bench_command_group = {"command", command_scenarios,
                                         sizeof(command_scenarios) /
                                             sizeof(command_scenarios[0])};

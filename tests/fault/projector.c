/*
 * projector - a worker process for the fault tests: runs the tally
 * projection (tests/support/tally.h) in an esc_worker until SIGTERM or
 * SIGINT, so that tests can start, kill -9, stop and restart real worker
 * processes.
 *
 *   projector --schema S --name N [--version V] [--partitions K]
 *             [--only P,Q,...] [--batch B] [--batch-bytes N]
 *             [--redis URL] [--pg URL]
 *             [--lease-poll MS] [--poll MS] [--delay-us US] [--quiet]
 *             [--subscription]
 *
 * --subscription runs a durable subscription N of category "tally"
 * instead of the projection (no Redis needed). Its handler records each
 * delivery, on a connection of its own, in the test's tables of schema S
 * (tests/fault/test_subscription_kills.c makes them):
 *   sub_deliveries (seq, pid, stream_id, version, event_id)  every one
 *   sub_handled (key primary key, event_id)  its dedupe: the first only
 *
 * Worker log lines go to stderr, each with a wall-clock timestamp and the
 * pid. Exit status: 0 after a clean stop, 1 when the worker failed, 2 for
 * bad usage.
 *
 * TALLY_CURE_FILE: when it names an existing file, poison events are
 * handled like any other (tally_poison_cured is set). It is looked at only
 * for poison events, before each handler call, so creating the file cures
 * a running worker.
 *
 * --delay-us slows the handler down by that much per event, so that a
 * signal lands in the middle of a batch more often than not.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tally.h"
#include "testenv.h"

#include <libpq-fe.h>

static esc_worker *volatile worker;
static volatile sig_atomic_t stop_requested;
static esc_projection_handler tally_handle;
static const char *cure_file;
static long delay_us;
static bool quiet;
static PGconn *sub_pg;      /* --subscription: the handler's connection */
static const char *sub_url; /* and where it connects */
static char sub_sql[512];

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
  esc_worker *w = worker;
  if (w)
    esc_worker_stop(w);
}

static void say(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void say(const char *fmt, ...) {
  char line[768];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "%02d:%02d:%02d.%03ld projector[%d] %s\n", tm.tm_hour,
          tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, (int)getpid(), line);
}

static void log_line(void *userdata, const char *line) {
  (void)userdata;
  if (!quiet)
    say("%s", line);
}

/* The tally handler, plus the cure switch and the slow-down. */
static esc_status handle(esc_projection_ctx *ctx, const esc_event *event,
                         void *userdata, esc_error *err) {
  const tally_counted *c = event->data;
  if (cure_file && !tally_poison_cured && c && strcmp(c->item, "poison") == 0 &&
      access(cure_file, F_OK) == 0)
    tally_poison_cured = 1;
  if (delay_us > 0) {
    struct timespec ts = {delay_us / 1000000L, (delay_us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
  }
  return tally_handle(ctx, event, userdata, err);
}

/* The subscription's handler: one statement records the delivery and,
 * deduplicated on the delivery's key, the effect. A broken connection is
 * a passing failure: the same event comes again after a pause. */
static esc_status deliver(const esc_delivery *d, void *userdata,
                          esc_error *err) {
  char pid[16], version[24], id[37], key[37];
  (void)userdata;
  if (delay_us > 0) {
    struct timespec ts = {delay_us / 1000000L, (delay_us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
  }
  if (sub_pg && PQstatus(sub_pg) != CONNECTION_OK) {
    PQfinish(sub_pg);
    sub_pg = NULL;
  }
  /* Bounded like every wait of esc's: a handler stuck on the server
   * shows as a failure in the log instead of a silent stall. */
  static const char *const keys[] = {"dbname", "connect_timeout", "options",
                                     NULL};
  const char *const vals[] = {sub_url, "5", "-c statement_timeout=5000", NULL};
  if (!sub_pg && PQstatus(sub_pg = PQconnectdbParams(keys, vals, 1)) !=
                     CONNECTION_OK)
    return esc_error_set(err, ESC_ECONN, "handler: connect: %s",
                         PQerrorMessage(sub_pg));
  const esc_recorded_event *e = d->event->recorded;
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  snprintf(version, sizeof version, "%lld", (long long)e->stream_version);
  esc_uuid_format(&e->id, id);
  esc_uuid_format(&d->key, key);
  const char *values[] = {pid, e->stream_id, version, id, key};
  PGresult *res = PQexecParams(sub_pg, sub_sql, 5, NULL, values, NULL, NULL, 0);
  esc_status rc = ESC_OK;
  if (PQresultStatus(res) != PGRES_COMMAND_OK)
    rc = esc_error_set(err,
                       PQstatus(sub_pg) == CONNECTION_OK ? ESC_EIO : ESC_ECONN,
                       "handler: %s", PQerrorMessage(sub_pg));
  PQclear(res);
  return rc;
}

static int usage(const char *why) {
  fprintf(stderr,
          "projector: %s\n"
          "usage: projector --schema S --name N [--version V] "
          "[--partitions K] [--only P,Q] [--batch B] [--redis URL] "
          "[--pg URL] [--pg-read URL] [--replica-max-lag MS] "
          "[--lease-poll MS] [--poll MS] [--delay-us US] "
          "[--quiet] [--subscription]\n",
          why);
  return 2;
}

static bool number(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || !*s || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* "0,2,3" into parts; false when malformed. */
static bool parse_only(const char *s, int *parts, size_t max, size_t *n) {
  char buf[256];
  *n = 0;
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    long v;
    if (*n == max || !number(tok, 0, 1023, &v))
      return false;
    parts[(*n)++] = (int)v;
  }
  return *n > 0;
}

int main(int argc, char **argv) {
  const char *schema = NULL, *name = NULL;
  long version = 1, partitions = 1, v;
  int only[64];
  size_t nonly = 0;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  bool subscribe = false;
  /* First thing: a SIGTERM during start-up is a stop request too. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quiet") == 0) {
      quiet = true;
      continue;
    }
    if (strcmp(a, "--subscription") == 0) {
      subscribe = true;
      continue;
    }
    if (!val)
      return usage("an option without its value");
    i++;
    if (strcmp(a, "--schema") == 0)
      schema = val;
    else if (strcmp(a, "--name") == 0)
      name = val;
    else if (strcmp(a, "--version") == 0 && number(val, 1, 1 << 30, &v))
      version = v;
    else if (strcmp(a, "--partitions") == 0 && number(val, 1, 1024, &v))
      partitions = v;
    else if (strcmp(a, "--only") == 0 && parse_only(val, only, 64, &nonly)) {
      o.partitions = only;
      o.partition_count = nonly;
    } else if (strcmp(a, "--batch") == 0 && number(val, 1, 100000, &v))
      o.batch_size = (int)v;
    else if (strcmp(a, "--batch-bytes") == 0 && number(val, 0, LONG_MAX, &v))
      o.max_batch_bytes = (size_t)v; /* esc_worker_new refuses > 1 GiB */
    else if (strcmp(a, "--redis") == 0)
      o.redis_url = val;
    else if (strcmp(a, "--pg") == 0)
      o.pg_url = val;
    else if (strcmp(a, "--pg-read") == 0)
      o.pg_read_url = val;
    else if (strcmp(a, "--replica-max-lag") == 0 &&
             number(val, 0, 600000, &v))
      o.replica_max_lag_ms = (int)v;
    else if (strcmp(a, "--lease-poll") == 0 && number(val, 1, 600000, &v))
      o.lease_poll_ms = (int)v;
    else if (strcmp(a, "--poll") == 0 && number(val, 1, 600000, &v))
      o.poll_ms = (int)v;
    else if (strcmp(a, "--delay-us") == 0 && number(val, 0, 10000000, &v))
      delay_us = v;
    else
      return usage(a);
  }
  if (!schema || !name)
    return usage("--schema and --name are required");
  const char *cure = getenv("TALLY_CURE_FILE");
  cure_file = cure && *cure ? cure : NULL;

  esc_projection p;
  tally_projection(&p, name, (int32_t)version, (int)partitions);
  tally_handle = p.handle;
  p.handle = handle;
  static const char *const tally_only[] = {"tally", NULL};
  esc_subscription s = ESC_SUBSCRIPTION_INIT;
  s.name = name;
  s.categories = tally_only;
  s.partitions = (int)partitions;
  s.events = tally_events();
  s.handle = deliver;
  sub_url = o.pg_url ? o.pg_url : esc_test_pg_url();
  snprintf(sub_sql, sizeof sub_sql,
           "WITH d AS (INSERT INTO \"%s\".sub_deliveries (pid, stream_id,"
           " version, event_id) VALUES ($1::int, $2, $3::int8, $4::uuid))"
           " INSERT INTO \"%s\".sub_handled (key, event_id)"
           " VALUES ($5::uuid, $4::uuid) ON CONFLICT DO NOTHING",
           schema, schema);

  o.schema = schema;
  o.log = log_line;
  esc_error err = ESC_ERROR_INIT;
  worker = esc_worker_new(&o, &err);
  if (!worker) {
    say("cannot create the worker: %s", err.msg);
    return 1;
  }
  if (subscribe ? esc_worker_add_subscription(worker, &s, &err)
                : esc_worker_add(worker, &p, &err)) {
    say("cannot add %s %s: %s", subscribe ? "subscription" : "projection",
        name, err.msg);
    esc_worker_free(worker);
    worker = NULL;
    return 1;
  }
  if (!quiet)
    say("running %s v%ld, %ld partition(s), schema %s", name, version,
        partitions, schema);
  /* esc_worker_run forgets a stop asked for before it started, so a
   * signal that came during start-up is looked at here. */
  esc_status rc = stop_requested ? ESC_OK : esc_worker_run(worker, &err);
  if (rc)
    say("worker failed: %s", err.msg);
  else if (!quiet)
    say("stopped");
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, NULL); /* the handler uses worker */
  esc_worker *w = worker;
  worker = NULL;
  esc_worker_free(w);
  PQfinish(sub_pg);
  return rc ? 1 : 0;
}

/*
 * Broken connections during a catch-up (guarantee 6, with the worker's
 * reads and applies in flight): while one worker projects 20,000 events,
 * another thread keeps terminating its PostgreSQL sessions and killing its
 * Redis connection at random moments — with a page read ahead, a batch on
 * its way to Redis, or between. The worker reconnects each time and goes
 * on from the checkpoint Redis holds. At the end the read model equals the
 * log exactly: nothing applied twice, nothing skipped, every stream in
 * order.
 *
 * The worker runs in this process, its Redis is a private server (so
 * CLIENT KILL hits nobody else), and its PostgreSQL sessions are told
 * apart from other tests' by their client ports: this process's sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

enum { EVENTS = 20000, STREAMS = 100, KILLS = 30, HANDLER_DELAY_US = 500 };

static char schema[48], name[48], redis_url[64], redis_log[96];
static char base[ESC_TEST_KEY_BASE_SIZE]; /* "NS:name": its keys' start */
static esc_projection_handler tally_handle;

/* The tally handler, slowed so that the catch-up outlasts the kills. */
static esc_status slow_handle(esc_projection_ctx *ctx, const esc_event *e,
                              void *userdata, esc_error *err) {
  struct timespec ts = {0, HANDLER_DELAY_US * 1000L};
  nanosleep(&ts, NULL);
  return tally_handle(ctx, e, userdata, err);
}

/* ESC_TEST_VERBOSE=1 shows the worker's log lines. */
static void log_line(void *userdata, const char *line) {
  (void)userdata;
  fprintf(stderr, "  worker: %s\n", line);
}

/* The local TCP ports of this process's sockets: /proc/self/fd names
 * socket inodes, /proc/net/tcp maps inodes to local ports. Other tests may
 * run workers against the same server; only ours are to be broken. */
static size_t own_ports(int *ports, size_t max) {
  unsigned long inodes[256];
  size_t ninodes = 0, n = 0;
  char path[64], target[64], line[512];
  for (int fd = 0; fd < 1024 && ninodes < 256; fd++) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, target, sizeof target - 1);
    if (len <= 0)
      continue;
    target[len] = '\0';
    if (sscanf(target, "socket:[%lu]", &inodes[ninodes]) == 1)
      ninodes++;
  }
  FILE *f = fopen("/proc/net/tcp", "r");
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f) && n < max) {
    unsigned port;
    unsigned long inode;
    if (sscanf(line, " %*d: %*x:%x %*x:%*x %*x %*x:%*x %*x:%*x %*x %*u %*u %lu",
               &port, &inode) != 2)
      continue;
    for (size_t i = 0; i < ninodes; i++)
      if (inodes[i] == inode)
        ports[n++] = (int)port;
  }
  fclose(f);
  return n;
}

/* Terminates the worker's PostgreSQL sessions (every session of this
 * process but admin's own); how many. */
static int kill_pg(PGconn *admin) {
  int ports[256];
  size_t n = own_ports(ports, 256);
  char list[2048] = "", sql[2300];
  size_t at = 0;
  for (size_t i = 0; i < n && at < sizeof list - 16; i++)
    at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", i ? "," : "",
                           ports[i]);
  if (n == 0)
    return 0;
  snprintf(sql, sizeof sql,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
           " WHERE client_port IN (%s) AND pid <> pg_backend_pid()"
           " AND client_addr = '127.0.0.1'",
           list);
  PGresult *res = PQexec(admin, sql);
  int killed =
      PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
  PQclear(res);
  return killed;
}

/* Kills every Redis client but this one (the worker's); how many. */
static long long kill_redis(redisContext *c) {
  return esc_test_redis_ll(c, 0, "CLIENT KILL TYPE normal SKIPME yes");
}

static void broken_connections_lose_and_double_nothing(void **state) {
  (void)state;
  char why[512];
  esc_store *st = esc_test_fresh_store(schema);
  esc_test_key_base(schema, name, base, sizeof base);
  int64_t sum = tally_append(st, "c", STREAMS, EVENTS);
  esc_test_tally *m = esc_test_tally_from_log(st, true);
  assert_int_equal(esc_test_tally_total(m), sum);

  esc_projection p;
  tally_projection(&p, name, 1, 1);
  tally_handle = p.handle;
  p.handle = slow_handle;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.redis_url = redis_url;
  o.batch_size = 100; /* many batches: many moments in flight */
  o.lease_poll_ms = 100;
  o.poll_ms = 200;
  if (getenv("ESC_TEST_VERBOSE"))
    o.log = log_line;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, &p, &err), ESC_OK);
  esc_test_worker_thread r;
  esc_test_worker_thread_start(&r, w);

  PGconn *admin = esc_test_pg();
  redisContext *c = esc_test_redis(redis_url);
  srand((unsigned)getpid());
  /* A kill counts when it broke something: between kills the worker
   * reconnects (after its 100 ms back-off), so some find nothing. */
  int kills = 0, tries = 0, pg_kills = 0;
  long long redis_kills = 0, t0 = esc_test_now_ms();
  while (kills < KILLS && esc_test_now_ms() - t0 < 60000) {
    esc_test_sleep_ms(150 + rand() % 250);
    long long g = esc_test_redis_ll(c, -1, "GET %s:generation", base);
    long long total =
        g < 0 ? 0 : esc_test_redis_ll(c, 0, "GET %s:g%lld:total", base, g);
    if (total >= sum)
      break; /* done: further kills would prove nothing */
    int pg = 0;
    long long rd = 0;
    if (tries++ % 2 == 0)
      pg = kill_pg(admin);
    else
      rd = kill_redis(c);
    pg_kills += pg;
    redis_kills += rd;
    kills += pg > 0 || rd > 0;
  }
  fprintf(stderr,
          "%d kills (of %d tries) in %lld ms, before the projection was "
          "complete: %d PostgreSQL sessions, %lld Redis connections\n",
          kills, tries, esc_test_now_ms() - t0, pg_kills, redis_kills);
  /* The test proves something only if the kills hit a running catch-up. */
  assert_true(kills >= KILLS);
  assert_true(pg_kills > 0 && redis_kills > 0);

  long long ms = esc_test_tally_wait(m, c, base, 120000, why, sizeof why);
  esc_status worked = esc_test_worker_thread_stop(&r);
  if (ms < 0)
    fail_msg("not exact after the kills: %s", why);
  if (worked != ESC_OK)
    fail_msg("worker: %s", r.err.msg);
  /* Still exact once stopped: nothing was applied late. */
  if (!esc_test_tally_matches(m, c, base, why, sizeof why))
    fail_msg("not exact after the stop: %s", why);
  fprintf(stderr, "exact %lld ms after the last kill\n", ms);

  esc_worker_free(w);
  esc_test_tally_free(m);
  redisFree(c);
  PQfinish(admin);
  esc_store_free(st);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_pck_%d", (int)getpid());
  snprintf(name, sizeof name, "pck%d", (int)getpid());
  int port = esc_test_free_port(64100, 100);
  snprintf(redis_url, sizeof redis_url, "redis://127.0.0.1:%d", port);
  snprintf(redis_log, sizeof redis_log, "/tmp/esc-pck-redis-%d.log",
           (int)getpid());
  esc_test_redis_server_start(port, redis_log);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children(); /* the private Redis goes with its keys */
  esc_test_remove_log(redis_log);
  esc_test_drop_schema(schema);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(broken_connections_lose_and_double_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/* Helpers for integration and fault tests (see testenv.h). */
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "tally.h"

const char *esc_test_pg_url(void) {
  return esc_default_pg_url();
}

PGconn *esc_test_pg(void) {
  PGconn *conn = PQconnectdb(esc_test_pg_url());
  if (PQstatus(conn) != CONNECTION_OK) {
    fail_msg("cannot connect to %s: %s (did scripts/servers start run, "
             "and eval \"$(scripts/servers env)\" for its password?)",
             esc_test_pg_url(), PQerrorMessage(conn));
  }
  return conn;
}

void esc_test_exec(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    PQclear(res);
    fail_msg("SQL failed: %s\n  %s", sql, msg);
  }
  PQclear(res);
}

/* Drops the schema and its roles: those it recorded (migration 10), or
 * the "<schema>_writer" ones of a store made before. */
static void drop_schema(const char *schema) {
  char sql[1024];
  PGconn *conn = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SET client_min_messages = warning; "
           "DO $$ DECLARE w name; r name; BEGIN "
           "  IF to_regclass(quote_ident('%s') || '.store_roles') IS NOT NULL "
           "  THEN EXECUTE 'SELECT writer, reader FROM \"%s\".store_roles' "
           "       INTO w, r; "
           "  ELSE w := '%s_writer'; r := '%s_reader'; END IF; "
           "  EXECUTE 'DROP SCHEMA IF EXISTS \"%s\" CASCADE'; "
           "  EXECUTE format('DROP ROLE IF EXISTS %%I, %%I', w, r); "
           "END $$",
           schema, schema, schema, schema, schema);
  esc_test_exec(conn, sql);
  PQfinish(conn);
}

esc_store *esc_test_open_store(const char *schema) {
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  opts.schema = schema;
  esc_store *st = esc_store_open(NULL, &opts, &err);
  if (!st)
    fail_msg("esc_store_open(%s): %s", schema, err.msg);
  return st;
}

esc_store *esc_test_fresh_store(const char *schema) {
  esc_error err = ESC_ERROR_INIT;
  int applied = 0;
  drop_schema(schema);
  esc_store *st = esc_test_open_store(schema);
  if (esc_store_migrate(st, &applied, &err) != ESC_OK)
    fail_msg("migrate %s: %s", schema, err.msg);
  assert_true(applied >= 1);
  return st;
}

size_t esc_test_payload(unsigned char *buf, long long n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "n", 1);
  msgpack_pack_long_long(&pk, n);
  size_t len = sb.size;
  memcpy(buf, sb.data, len);
  msgpack_sbuffer_destroy(&sb);
  return len;
}

static PGresult *query_one(PGconn *conn, const char *sql) {
  PGresult *res = PQexec(conn, sql);
  if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 ||
      PQnfields(res) < 1) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    PQclear(res);
    fail_msg("SQL returned no value: %s\n  %s", sql, msg);
  }
  return res;
}

long long esc_test_query_ll(PGconn *conn, const char *sql) {
  PGresult *res = query_one(conn, sql);
  if (PQgetisnull(res, 0, 0)) {
    PQclear(res);
    fail_msg("SQL returned NULL: %s", sql);
  }
  long long v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
  PQclear(res);
  return v;
}

char *esc_test_query_text(PGconn *conn, const char *sql) {
  PGresult *res = query_one(conn, sql);
  char *v = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
  PQclear(res);
  return v;
}

void esc_test_exec_fails(PGconn *conn, const char *sql, char sqlstate[6]) {
  PGresult *res = PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    PQclear(res);
    fail_msg("SQL succeeded but should have failed: %s", sql);
  }
  if (sqlstate) {
    const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    snprintf(sqlstate, 6, "%s", code ? code : "");
  }
  PQclear(res);
}

long long esc_test_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void esc_test_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static PGconn *tracked[16];
static size_t ntracked;

PGconn *esc_test_pg_tracked(void) {
  if (ntracked == sizeof tracked / sizeof *tracked)
    fail_msg("too many tracked connections");
  PGconn *conn = esc_test_pg();
  tracked[ntracked++] = conn;
  return conn;
}

int esc_test_close_tracked(void **state) {
  (void)state;
  while (ntracked > 0)
    PQfinish(tracked[--ntracked]);
  return 0;
}

/* ------------------------------------------------------------------------
 * Fault tests: child processes
 * ------------------------------------------------------------------------ */

extern char **environ;

enum { MAX_CHILDREN = 64 };
static pid_t children[MAX_CHILDREN];
static bool children_atexit;

static void remember_child(pid_t pid) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
  kill(pid, SIGKILL);
  fail_msg("too many child processes");
}

static void forget_child(pid_t pid) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (children[i] == pid)
      children[i] = 0;
}

pid_t esc_test_spawn(const char *path, const char *const *argv,
                     const char *const *env, const char *log_path) {
  size_t nenv = 0, nextra = 0;
  while (environ[nenv])
    nenv++;
  while (env && env[nextra])
    nextra++;
  /* Built before fork: the child may only make async-signal-safe calls. */
  char **envp = calloc(nenv + nextra + 1, sizeof *envp);
  assert_non_null(envp);
  size_t n = 0;
  for (size_t i = 0; i < nextra; i++)
    envp[n++] = (char *)env[i];
  for (size_t i = 0; i < nenv; i++) {
    bool overridden = false;
    for (size_t j = 0; j < nextra && !overridden; j++) {
      const char *eq = strchr(env[j], '=');
      size_t klen = eq ? (size_t)(eq - env[j]) : strlen(env[j]);
      overridden =
          strncmp(environ[i], env[j], klen) == 0 && environ[i][klen] == '=';
    }
    if (!overridden)
      envp[n++] = environ[i];
  }
  envp[n] = NULL;
  int fd = -1;
  if (log_path) {
    fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      fail_msg("open %s: %s", log_path, strerror(errno));
  }
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    for (int i = 3; i < 1024; i++)
      close(i); /* hiredis sockets are not close-on-exec */
    execve(path, (char *const *)argv, envp);
    _exit(127);
  }
  if (fd >= 0)
    close(fd);
  free(envp);
  if (!children_atexit) {
    children_atexit = true;
    atexit(esc_test_kill_children);
  }
  remember_child(pid);
  return pid;
}

bool esc_test_wait_child(pid_t pid, int timeout_ms, int *status) {
  long long deadline = esc_test_now_ms() + timeout_ms;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      forget_child(pid);
      if (status)
        *status = st;
      return true;
    }
    if (esc_test_now_ms() > deadline)
      return false;
    esc_test_sleep_ms(5);
  }
}

void esc_test_kill_child(pid_t pid) {
  if (pid <= 0)
    return;
  kill(pid, SIGKILL);
  kill(pid, SIGCONT); /* a stopped child dies only once it runs */
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  forget_child(pid);
}

void esc_test_kill_children(void) {
  for (size_t i = 0; i < MAX_CHILDREN; i++)
    if (children[i] > 0)
      esc_test_kill_child(children[i]);
}

int esc_test_kill_children_teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  return 0;
}

/* ------------------------------------------------------------------------
 * Fault tests: Redis
 * ------------------------------------------------------------------------ */

/* url's host and port, after any user:password@ (the last '@'); the
 * password, if any, into pass and the user into user (both "" if none). */
static void redis_url_parts(const char *url, char *host, size_t hsize,
                            int *port, char *user, size_t usize, char *pass,
                            size_t psize) {
  const char *s = strncmp(url, "redis://", 8) == 0 ? url + 8 : NULL;
  if (!s)
    fail_msg("a Redis URL must start with redis://");
  const char *end = s + strcspn(s, "/");
  const char *at = NULL;
  for (const char *p = s; p < end; p++)
    if (*p == '@')
      at = p;
  user[0] = pass[0] = '\0';
  if (at) {
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (colon) {
      snprintf(user, usize, "%.*s", (int)(colon - s), s);
      snprintf(pass, psize, "%.*s", (int)(at - colon - 1), colon + 1);
    } else
      snprintf(pass, psize, "%.*s", (int)(at - s), s);
    s = at + 1;
  }
  const char *colon = memchr(s, ':', (size_t)(end - s));
  const char *hend = colon ? colon : end;
  if (hend > s)
    snprintf(host, hsize, "%.*s", (int)(hend - s), s);
  if (colon)
    *port = atoi(colon + 1);
}

redisContext *esc_test_redis_try(const char *url) {
  char host[128] = "127.0.0.1", user[128], pass[128];
  int port = 6379;
  if (!url)
    url = esc_default_redis_url();
  redis_url_parts(url, host, sizeof host, &port, user, sizeof user, pass,
                  sizeof pass);
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  if (!c || c->err) {
    if (c)
      redisFree(c);
    return NULL;
  }
  struct timeval cmd = {30, 0};
  redisSetTimeout(c, cmd);
  if (pass[0]) {
    const char *argv[3] = {"AUTH", user[0] ? user : pass, pass};
    redisReply *r = redisCommandArgv(c, user[0] ? 3 : 2, argv, NULL);
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok)
      fail_msg("Redis at %s:%d refused AUTH", host, port);
  }
  return c;
}

redisContext *esc_test_redis(const char *url) {
  redisContext *c = esc_test_redis_try(url);
  if (!c) {
    char host[128] = "127.0.0.1", user[128], pass[128];
    int port = 6379;
    redis_url_parts(url ? url : esc_default_redis_url(), host, sizeof host,
                    &port, user, sizeof user, pass, sizeof pass);
    fail_msg("cannot connect to Redis at %s:%d", host, port);
  }
  return c;
}

long long esc_test_redis_ll(redisContext *c, long long missing, const char *fmt,
                            ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (!r)
    fail_msg("redis %s: %s", fmt, c->errstr);
  long long v = missing;
  if (r->type == REDIS_REPLY_INTEGER)
    v = r->integer;
  else if (r->type == REDIS_REPLY_STRING)
    v = strtoll(r->str, NULL, 10);
  else if (r->type == REDIS_REPLY_ERROR) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", r->str);
    freeReplyObject(r);
    fail_msg("redis %s: %s", fmt, msg);
  }
  freeReplyObject(r);
  return v;
}

/* One SCAN pass over pattern; unlinks what it finds when del. */
static long long scan_keys(redisContext *c, const char *pattern, bool del) {
  char cursor[32] = "0";
  long long n = 0;
  do {
    redisReply *r =
        redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      fail_msg("redis SCAN %s failed", pattern);
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    redisReply *keys = r->element[1];
    n += (long long)keys->elements;
    if (del && keys->elements > 0) {
      size_t argc = keys->elements + 1;
      const char **argv = calloc(argc, sizeof *argv);
      size_t *lens = calloc(argc, sizeof *lens);
      assert_non_null(argv);
      assert_non_null(lens);
      argv[0] = "UNLINK";
      lens[0] = 6;
      for (size_t i = 0; i < keys->elements; i++) {
        argv[i + 1] = keys->element[i]->str;
        lens[i + 1] = keys->element[i]->len;
      }
      redisReply *u = redisCommandArgv(c, (int)argc, argv, lens);
      freeReplyObject(u);
      free(argv);
      free(lens);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return n;
}

long long esc_test_redis_delete_prefix(redisContext *c, const char *prefix) {
  char pattern[256];
  snprintf(pattern, sizeof pattern, "%s*", prefix);
  return scan_keys(c, pattern, true);
}

long long esc_test_redis_count(redisContext *c, const char *pattern) {
  return scan_keys(c, pattern, false);
}

static const char *redis_server_path(void) {
  static const char *const paths[] = {"/usr/bin/redis-server",
                                      "/usr/local/bin/redis-server",
                                      "/usr/sbin/redis-server", NULL};
  for (size_t i = 0; paths[i]; i++)
    if (access(paths[i], X_OK) == 0)
      return paths[i];
  fail_msg("redis-server not found");
  return NULL;
}

pid_t esc_test_redis_server_start(int port, const char *log_path) {
  char p[16], url[64];
  snprintf(p, sizeof p, "%d", port);
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
  const char *argv[] = {"redis-server", "--port",      p,    "--bind",
                        "127.0.0.1",    "--save",      "",   "--appendonly",
                        "no",           "--daemonize", "no", "--protected-mode",
                        "no",           NULL};
  pid_t pid = esc_test_spawn(redis_server_path(), argv, NULL, log_path);
  long long deadline = esc_test_now_ms() + 10000;
  while (esc_test_now_ms() < deadline) {
    redisContext *c = esc_test_redis_try(url);
    if (c) {
      redisReply *r = redisCommand(c, "PING");
      bool ok = r && r->type == REDIS_REPLY_STATUS;
      freeReplyObject(r);
      redisFree(c);
      if (ok)
        return pid;
    }
    if (esc_test_wait_child(pid, 0, NULL))
      fail_msg("redis-server on port %d exited at start (see %s)", port,
               log_path ? log_path : "stderr");
    esc_test_sleep_ms(20);
  }
  esc_test_kill_child(pid);
  fail_msg("redis-server on port %d did not answer within 10 s", port);
  return -1;
}

int esc_test_free_port(int base, int span) {
  for (int k = 0; k < span; k++) {
    int port = base + ((int)getpid() + k) % span;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      continue;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    if (rc == 0)
      return port;
  }
  fail_msg("no free port in %d..%d", base, base + span - 1);
  return -1;
}

void esc_test_unregister_projection(const char *schema, const char *name) {
  char sql[256];
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql, "DELETE FROM %s.projections WHERE name = '%s'",
           schema, name);
  esc_test_exec(c, sql);
  PQfinish(c);
}

void esc_test_drop_schema(const char *schema) {
  drop_schema(schema);
}

/* ------------------------------------------------------------------------
 * Fault tests: the tally projection's expected read model
 * ------------------------------------------------------------------------ */

struct tally_stream {
  char *id;
  int64_t *versions;
  size_t n, cap;
};

struct esc_test_tally {
  int64_t total;
  int64_t events;
  size_t nitems;
  char items[64][32];
  int64_t sums[64];
  struct tally_stream *streams;
  size_t nstreams, cap;
  size_t last; /* the stream found last: appends are round-robin */
};

static struct tally_stream *tally_stream(esc_test_tally *m, const char *id) {
  for (size_t k = 0; k < m->nstreams; k++) {
    size_t i = (m->last + k) % m->nstreams;
    if (strcmp(m->streams[i].id, id) == 0) {
      m->last = (i + 1) % m->nstreams;
      return &m->streams[i];
    }
  }
  if (m->nstreams == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 64;
    m->streams = realloc(m->streams, m->cap * sizeof *m->streams);
    assert_non_null(m->streams);
  }
  struct tally_stream *s = &m->streams[m->nstreams++];
  memset(s, 0, sizeof *s);
  s->id = strdup(id);
  assert_non_null(s->id);
  return s;
}

static void tally_add(esc_test_tally *m, const esc_recorded_event *e,
                      const tally_counted *c) {
  size_t i = 0;
  while (i < m->nitems && strcmp(m->items[i], c->item) != 0)
    i++;
  if (i == m->nitems) {
    if (m->nitems == sizeof m->items / sizeof m->items[0])
      fail_msg("too many distinct items");
    snprintf(m->items[m->nitems++], sizeof m->items[0], "%s", c->item);
  }
  m->sums[i] += c->n;
  m->total += c->n;
  m->events++;
  struct tally_stream *s = tally_stream(m, e->stream_id);
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    s->versions = realloc(s->versions, s->cap * sizeof *s->versions);
    assert_non_null(s->versions);
  }
  s->versions[s->n++] = e->stream_version;
}

/* One pass over the log; returns how many events it read. */
static int64_t tally_read(esc_test_tally *m, esc_store *st, bool with_poison) {
  esc_position at = ESC_POSITION_START;
  msgpack_zone zone;
  int64_t read = 0;
  if (!msgpack_zone_init(&zone, 4096))
    fail_msg("out of memory");
  for (;;) {
    esc_events ev = ESC_EVENTS_INIT;
    esc_error err = ESC_ERROR_INIT;
    if (esc_read_all(st, "tally", at, 2000, &ev, &err))
      fail_msg("read the log: %s", err.msg);
    if (ev.count == 0) {
      esc_events_release(&ev);
      break;
    }
    for (size_t i = 0; i < ev.count; i++) {
      const esc_recorded_event *e = &ev.items[i];
      tally_counted c;
      const esc_event_type *type = NULL;
      read++;
      msgpack_zone_clear(&zone);
      if (esc_event_decode(tally_events(), e, &zone, &c, &type, &err))
        fail_msg("decode %s@%lld: %s", e->stream_id,
                 (long long)e->stream_version, err.msg);
      if (!with_poison && strcmp(c.item, "poison") == 0)
        continue;
      tally_add(m, e, &c);
    }
    at = ev.next;
    esc_events_release(&ev);
  }
  msgpack_zone_destroy(&zone);
  return read;
}

static void tally_clear(esc_test_tally *m) {
  for (size_t i = 0; i < m->nstreams; i++) {
    free(m->streams[i].id);
    free(m->streams[i].versions);
  }
  free(m->streams);
  memset(m, 0, sizeof *m);
}

/* How many events a read of category (NULL: $all) returns now. */
static long long count_readable(esc_store *st, const char *category) {
  esc_position at = ESC_POSITION_START;
  long long read = 0;
  for (;;) {
    esc_events ev = ESC_EVENTS_INIT;
    esc_error err = ESC_ERROR_INIT;
    if (esc_read_all(st, category, at, 2000, &ev, &err))
      fail_msg("read the log: %s", err.msg);
    read += (long long)ev.count;
    at = ev.next;
    bool end = ev.count == 0;
    esc_events_release(&ev);
    if (end)
      return read;
  }
}

void esc_test_await_readable(esc_store *st, const char *category) {
  char sql[256];
  PGconn *c = esc_test_pg();
  if (category)
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM \"%s\".events WHERE stream_id LIKE '%s-%%'",
             esc_store_schema(st), category);
  else
    snprintf(sql, sizeof sql, "SELECT count(*) FROM \"%s\".events",
             esc_store_schema(st));
  long long deadline = esc_test_now_ms() + 30000;
  for (;;) {
    long long stored = esc_test_query_ll(c, sql);
    long long read = count_readable(st, category);
    if (read == stored)
      break;
    if (esc_test_now_ms() > deadline) {
      PQfinish(c);
      fail_msg("only %lld of %lld events readable after 30 s (a long "
               "transaction holds the horizon back?)",
               read, stored);
    }
    esc_test_sleep_ms(50);
  }
  PQfinish(c);
}

esc_test_tally *esc_test_tally_from_log(esc_store *st, bool with_poison) {
  esc_test_tally *m = calloc(1, sizeof *m);
  assert_non_null(m);
  esc_test_await_readable(st, "tally");
  tally_read(m, st, with_poison);
  return m;
}

void esc_test_tally_free(esc_test_tally *m) {
  if (!m)
    return;
  tally_clear(m);
  free(m);
}

int64_t esc_test_tally_total(const esc_test_tally *m) {
  return m->total;
}

int64_t esc_test_tally_events(const esc_test_tally *m) {
  return m->events;
}

char *esc_test_command_output(const char *cmd, int *status) {
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  for (size_t got; (got = fread(out + len, 1, cap - 1 - len, f)) > 0;)
    len += got;
  out[len] = '\0';
  int st = pclose(f);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

const char *esc_test_key_base(const char *schema, const char *proj, char *out,
                              size_t size) {
  char ns[ESC_KEY_PREFIX_MAX + 1];
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_test_open_store(schema);
  esc_status rc = esc_key_namespace(st, NULL, ns, sizeof ns, &err);
  esc_store_free(st);
  if (rc)
    fail_msg("key namespace of %s: %s", schema, err.msg);
  snprintf(out, size, "%s:%s", ns, proj);
  return out;
}

bool esc_test_tally_matches(const esc_test_tally *m, redisContext *c,
                            const char *proj, char *why, size_t size) {
  long long g = esc_test_redis_ll(c, -1, "GET %s:generation", proj);
  if (g < 0) {
    snprintf(why, size, "%s:generation is missing", proj);
    return false;
  }
  long long total = esc_test_redis_ll(c, 0, "GET %s:g%lld:total", proj, g);
  if (total != m->total) {
    snprintf(why, size, "g%lld total %lld, expected %lld", g, total,
             (long long)m->total);
    return false;
  }
  redisReply *r =
      redisCommand(c, "ZRANGE %s:g%lld:items 0 -1 WITHSCORES", proj, g);
  if (!r || r->type != REDIS_REPLY_ARRAY)
    fail_msg("ZRANGE %s:g%lld:items failed", proj, g);
  bool ok = r->elements == 2 * m->nitems;
  if (!ok)
    snprintf(why, size, "g%lld holds %zu items, expected %zu", g,
             r->elements / 2, m->nitems);
  for (size_t i = 0; ok && i + 1 < r->elements; i += 2) {
    const char *item = r->element[i]->str;
    long long score = strtoll(r->element[i + 1]->str, NULL, 10);
    size_t k = 0;
    while (k < m->nitems && strcmp(m->items[k], item) != 0)
      k++;
    if (k == m->nitems || score != m->sums[k]) {
      snprintf(why, size, "g%lld item %s scores %lld, expected %lld", g, item,
               score, k == m->nitems ? 0LL : (long long)m->sums[k]);
      ok = false;
    }
  }
  freeReplyObject(r);
  for (size_t s = 0; ok && s < m->nstreams; s++) {
    const struct tally_stream *st = &m->streams[s];
    r = redisCommand(c, "LRANGE %s:g%lld:seq:%s 0 -1", proj, g, st->id);
    if (!r || r->type != REDIS_REPLY_ARRAY)
      fail_msg("LRANGE of %s failed", st->id);
    if (r->elements != st->n) {
      snprintf(why, size, "g%lld seq:%s holds %zu versions, expected %zu", g,
               st->id, r->elements, st->n);
      ok = false;
    }
    for (size_t i = 0; ok && i < r->elements; i++)
      if (strtoll(r->element[i]->str, NULL, 10) != st->versions[i]) {
        snprintf(why, size,
                 "g%lld seq:%s position %zu holds version %s, expected %lld "
                 "(out of order or twice)",
                 g, st->id, i, r->element[i]->str, (long long)st->versions[i]);
        ok = false;
      }
    freeReplyObject(r);
  }
  if (ok) {
    char pattern[256];
    snprintf(pattern, sizeof pattern, "%s:g%lld:seq:*", proj, g);
    long long n = esc_test_redis_count(c, pattern);
    if (n != (long long)m->nstreams) {
      snprintf(why, size, "g%lld has %lld seq lists, expected %zu", g, n,
               m->nstreams);
      ok = false;
    }
  }
  return ok;
}

long long esc_test_tally_wait(const esc_test_tally *m, redisContext *c,
                              const char *proj, int timeout_ms, char *why,
                              size_t size) {
  long long start = esc_test_now_ms();
  for (;;) {
    if (esc_test_tally_matches(m, c, proj, why, size))
      return esc_test_now_ms() - start;
    if (esc_test_now_ms() - start > timeout_ms)
      return -1;
    esc_test_sleep_ms(100);
  }
}

/* ------------------------------------------------------------------------
 * Fault tests: workers, leases, writers, logs
 * ------------------------------------------------------------------------ */

pid_t esc_test_projector(const char *path, const char *log_path,
                         const char *const *env, ...) {
  const char *argv[64];
  size_t n = 0;
  va_list ap;
  argv[n++] = "projector";
  va_start(ap, env);
  for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
    if (n + 1 == sizeof argv / sizeof *argv)
      fail_msg("too many projector arguments");
    argv[n++] = a;
  }
  va_end(ap);
  argv[n] = NULL;
  return esc_test_spawn(path, argv, env, log_path);
}

int esc_test_lease_holder(PGconn *conn, const char *proj, int partition,
                          int *backend) {
  char app[96], part[16];
  snprintf(app, sizeof app, "esc-worker %s/%d pid %%", proj, partition);
  snprintf(part, sizeof part, "%d", partition);
  const char *values[] = {app};
  PGresult *res =
      PQexecParams(conn,
                   "SELECT a.pid, a.application_name FROM pg_locks l"
                   " JOIN pg_stat_activity a ON a.pid = l.pid"
                   " WHERE l.locktype = 'advisory' AND l.granted"
                   " AND a.application_name LIKE $1",
                   1, NULL, values, NULL, NULL, 0);
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    PQclear(res);
    fail_msg("lease holder query: %s", msg);
  }
  int n = PQntuples(res), holder = 0;
  if (backend)
    *backend = 0;
  if (n == 1) {
    const char *at = strstr(PQgetvalue(res, 0, 1), " pid ");
    holder = at ? atoi(at + 5) : 0;
    if (backend)
      *backend = atoi(PQgetvalue(res, 0, 0));
  } else if (n > 1)
    holder = -1;
  PQclear(res);
  return holder;
}

void esc_test_checkpoint(redisContext *c, const char *proj, int partition,
                         char *out, size_t size) {
  long long g = esc_test_redis_ll(c, -1, "GET %s:generation", proj);
  out[0] = '\0';
  if (g < 0)
    return;
  redisReply *r =
      redisCommand(c, "GET %s:g%lld:p%d:checkpoint", proj, g, partition);
  if (!r)
    fail_msg("redis GET checkpoint: %s", c->errstr);
  if (r->type == REDIS_REPLY_STRING)
    snprintf(out, size, "%s", r->str);
  freeReplyObject(r);
}

/* The test server's URL with synchronous_commit off. */
static void async_url(char *url, size_t size) {
  const char *base = esc_test_pg_url();
  if (strncmp(base, "postgres://", 11) == 0 ||
      strncmp(base, "postgresql://", 13) == 0)
    snprintf(url, size, "%s%coptions=-c%%20synchronous_commit%%3Doff", base,
             strchr(base, '?') ? '&' : '?');
  else
    snprintf(url, size, "%s options='-c synchronous_commit=off'", base);
}

struct esc_test_writer {
  pthread_t thread;
  char schema[64];
  char prefix[32];
  int streams, batch, pause_ms;
  atomic_bool stop;
  long long appended;
  int calls;
};

static void *writer_main(void *arg) {
  esc_test_writer *w = arg;
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = w->schema;
  /* Per process: a test that terminates sessions by name must never hit
   * the writer of a test running beside it. */
  char app[64];
  snprintf(app, sizeof app, "esc-test-writer-%d", (int)getpid());
  opts.app_name = app;
  char url[1024];
  async_url(url, sizeof url);
  esc_store *st = esc_store_open(url, &opts, NULL);
  if (!st) {
    fprintf(stderr, "writer: cannot open the store\n");
    abort();
  }
  while (!atomic_load(&w->stop)) {
    /* A distinct prefix per call: tally_append numbers from 0 each time,
     * so reusing streams would always hit the first ones. */
    char prefix[48];
    snprintf(prefix, sizeof prefix, "%sc%d-", w->prefix, w->calls++ % 50);
    tally_append(st, prefix, w->streams, w->batch);
    w->appended += w->batch;
    if (w->pause_ms > 0)
      esc_test_sleep_ms(w->pause_ms);
  }
  esc_store_free(st);
  return NULL;
}

esc_test_writer *esc_test_writer_start(const char *schema, const char *prefix,
                                       int streams, int batch, int pause_ms) {
  esc_test_writer *w = calloc(1, sizeof *w);
  assert_non_null(w);
  snprintf(w->schema, sizeof w->schema, "%s", schema);
  snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
  w->streams = streams;
  w->batch = batch;
  w->pause_ms = pause_ms;
  atomic_init(&w->stop, false);
  if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
    fail_msg("cannot start the writer thread");
  return w;
}

long long esc_test_writer_stop(esc_test_writer *w) {
  if (!w)
    return 0;
  atomic_store(&w->stop, true);
  pthread_join(w->thread, NULL);
  long long n = w->appended;
  free(w);
  return n;
}

void esc_test_print_tail(const char *path, int lines) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "(no log %s)\n", path);
    return;
  }
  char **ring = calloc((size_t)lines, sizeof *ring);
  char buf[1024];
  long n = 0;
  while (ring && fgets(buf, sizeof buf, f)) {
    free(ring[n % lines]);
    ring[n % lines] = strdup(buf);
    n++;
  }
  fclose(f);
  fprintf(stderr, "---- last lines of %s ----\n", path);
  for (long i = n > lines ? n - lines : 0; ring && i < n; i++)
    fputs(ring[i % lines] ? ring[i % lines] : "", stderr);
  for (int i = 0; ring && i < lines; i++)
    free(ring[i]);
  free(ring);
}

bool esc_test_file_contains(const char *path, const char *text) {
  FILE *f = fopen(path, "r");
  char buf[2048];
  bool found = false;
  if (!f)
    return false;
  while (!found && fgets(buf, sizeof buf, f))
    found = strstr(buf, text) != NULL;
  fclose(f);
  return found;
}

esc_store *esc_test_open_store_async(const char *schema) {
  char url[1024];
  async_url(url, sizeof url);
  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  opts.schema = schema;
  esc_store *st = esc_store_open(url, &opts, &err);
  if (!st)
    fail_msg("esc_store_open(%s): %s", schema, err.msg);
  return st;
}

void esc_test_remove_log(const char *path) {
  const char *keep = getenv("ESC_TEST_KEEP_LOGS");
  if (keep && *keep && strcmp(keep, "0") != 0)
    fprintf(stderr, "log kept: %s\n", path);
  else
    unlink(path);
}

void esc_test_fault_cleanup(const char *schema, const char *log_path,
                            bool passed) {
  esc_test_kill_children();
  esc_test_drop_schema(schema);
  if (passed)
    esc_test_remove_log(log_path);
  else
    esc_test_print_tail(log_path, 60);
}

long long esc_test_tally_expect_exact(esc_store *st, redisContext *c,
                                      const char *proj, int timeout_ms) {
  char why[512];
  esc_test_tally *m = esc_test_tally_from_log(st, true);
  long long ms = esc_test_tally_wait(m, c, proj, timeout_ms, why, sizeof why);
  esc_test_tally_free(m);
  if (ms < 0)
    fail_msg("read model not exact after %d ms: %s", timeout_ms, why);
  return ms;
}

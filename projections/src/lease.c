/*
 * Leases: one active worker per projection partition (guarantee 8).
 *
 * A lease is a session-level PostgreSQL advisory lock on a connection used
 * for nothing else. The server releases it when the session ends, so a
 * worker that dies (or whose connection breaks) frees its partitions
 * without anyone's help, and a standby that polls pg_try_advisory_lock
 * takes over. Holding the lock is not the whole story, though: a worker
 * cut off from the server still believes it holds it, so the Redis
 * checkpoint compare-and-set remains the fencing token (guarantee 6).
 */
#include "projection_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The advisory lock key space is database-wide and shared with every other
 * application, so the key hashes a namespaced text: schema, projection,
 * the layout's partition count and the partition. With the count in it,
 * workers of two layouts can never hold "the same" partition (partition 1
 * of 2 and partition 1 of 3 are different streams of work). FNV-1a is
 * stable across machines and versions, which a lease needs (workers of
 * different builds must agree).
 */
#define KEY_TEXT_MAX 160

static int64_t key_of(const char *text, int n) {
  size_t len = n < 0 ? 0 : (size_t)n;
  if (len >= KEY_TEXT_MAX)
    len = KEY_TEXT_MAX - 1; /* names are bounded; never happens */
  return (int64_t)esc__fnv1a64(text, len);
}

int64_t esc__lease_key(const char *schema, const char *proj, int partitions,
                       int partition) {
  char text[KEY_TEXT_MAX];
  int n = snprintf(text, sizeof text, "esc.lease:%s:%s:%d:%d",
                   schema ? schema : "esc", proj,
                   partitions < 1 ? 1 : partitions, partition);
  return key_of(text, n);
}

/* A job's lease: "esc.job:" keeps it apart from every partition's. */
static int64_t job_key(const char *schema, const char *name) {
  char text[KEY_TEXT_MAX];
  int n = snprintf(text, sizeof text, "esc.job:%s:%s", schema ? schema : "esc",
                   name);
  return key_of(text, n);
}

/*
 * pg_locks shows a bigint advisory key as classid = its high 32 bits,
 * objid = its low 32 bits and objsubid = 1 (the int4-pair form uses 2).
 * Both are computed from the int8 parameter, masked to 0..2^32-1 before
 * the cast to oid, so negative keys match as well.
 */
#define LOCK_MATCHES_KEY(param)                                                \
  "l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"                   \
  " AND l.database = (SELECT oid FROM pg_database"                             \
  "                    WHERE datname = current_database())"                    \
  " AND l.classid = ((" param "::int8 >> 32) & 4294967295)::oid"               \
  " AND l.objid = (" param "::int8 & 4294967295)::oid"

/* Whether this session holds the lease already: then it is not taken a
 * second time (advisory locks nest, and one unlock would not free it). */
static const char SQL_TRY[] =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks l"
    "  WHERE l.pid = pg_backend_pid() AND " LOCK_MATCHES_KEY(
        "$1") ")"
              " THEN true ELSE pg_try_advisory_lock($1::int8) END";

static const char SQL_RELEASE[] = "SELECT pg_advisory_unlock($1::int8)";

static const char SQL_HELD[] =
    "SELECT EXISTS (SELECT 1 FROM pg_locks l"
    "  WHERE l.pid = pg_backend_pid() AND " LOCK_MATCHES_KEY("$1") ")";

/* Runs a one-parameter query returning one boolean. */
static esc_status query_bool(PGconn *conn, const char *sql, int64_t key,
                             bool *out, const char *what, esc_error *err) {
  char k[24];
  snprintf(k, sizeof k, "%" PRId64, key);
  const char *values[] = {k};
  PGresult *res = esc__pg_exec(conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  if (PQntuples(res) != 1)
    rc = esc__fail(err, ESC_EIO, "%s: expected one row", what);
  else
    *out = PQgetvalue(res, 0, 0)[0] == 't';
  PQclear(res);
  return rc;
}

esc_status esc__lease_try(PGconn *conn, int64_t key, bool *got,
                          esc_error *err) {
  char what[64];
  *got = false;
  snprintf(what, sizeof what, "take lease %" PRId64, key);
  esc_status rc = query_bool(conn, SQL_TRY, key, got, what, err);
  if (!rc)
    esc__clear(err);
  return rc;
}

esc_status esc__lease_release(PGconn *conn, int64_t key, esc_error *err) {
  char what[64];
  bool was_held = false;
  snprintf(what, sizeof what, "release lease %" PRId64, key);
  /* Releasing a lease not held is not an error: the server may have
   * released it already with a broken session. */
  esc_status rc = query_bool(conn, SQL_RELEASE, key, &was_held, what, err);
  if (!rc)
    esc__clear(err);
  return rc;
}

bool esc__lease_held(PGconn *conn, int64_t key) {
  bool held = false;
  if (!conn || PQstatus(conn) != CONNECTION_OK)
    return false;
  if (query_bool(conn, SQL_HELD, key, &held, "check lease", NULL))
    return false;
  return held;
}

/* ------------------------------------------------------------------------
 * esc_lease: the same for work of the user's own
 * ------------------------------------------------------------------------ */

struct esc_lease {
  char *pg_url;  /* NULL: the default */
  char app[100]; /* application_name: "esc-lease <name> pid <pid>" */
  int64_t key;
  PGconn *conn; /* NULL until connected, and after a failure */
  bool held;
};

esc_lease *esc_lease_new(const char *pg_url, const char *schema,
                         const char *name, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!name || !esc__projection_name_valid(name, &inner)) {
    /* the rule is the projections' one; say what was checked */
    esc__fail(err, ESC_EINVAL, "lease name: %s",
              name ? inner.msg : "name is NULL");
    return NULL;
  }
  esc_lease *l = calloc(1, sizeof *l);
  if (!l || (pg_url && !(l->pg_url = strdup(pg_url)))) {
    free(l);
    esc__fail(err, ESC_ENOMEM, "lease %s: out of memory", name);
    return NULL;
  }
  snprintf(l->app, sizeof l->app, "esc-lease %s pid %d", name, (int)getpid());
  l->key = job_key(schema, name);
  return l;
}

/* Drops the connection, and with it whatever the session held. */
static void lease_disconnect(esc_lease *l) {
  PQfinish(l->conn);
  l->conn = NULL;
  l->held = false;
}

esc_status esc_lease_hold(esc_lease *l, bool *held, esc_error *err) {
  *held = false;
  if (l->held && esc__lease_held(l->conn, l->key)) {
    *held = true;
    return ESC_OK;
  }
  if (l->held)
    lease_disconnect(l); /* lost it: start over on a fresh session */
  /* A session that broke since the last call (a restart, a terminated
   * backend) shows only when used: then once more on a new one. */
  for (int attempt = 0;; attempt++) {
    if (!l->conn && !(l->conn = esc__pg_connect(l->pg_url, l->app, err)))
      return ESC_ECONN;
    esc_status rc = esc__lease_try(l->conn, l->key, &l->held, err);
    if (!rc) {
      *held = l->held;
      return ESC_OK;
    }
    bool broken = PQstatus(l->conn) != CONNECTION_OK;
    lease_disconnect(l);
    if (!broken || attempt > 0)
      return rc;
  }
}

void esc_lease_free(esc_lease *l) {
  if (!l)
    return;
  lease_disconnect(l);
  free(l->pg_url);
  free(l);
}

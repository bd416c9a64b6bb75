/*
 * A private PostgreSQL 15 cluster for tests that stop, restart or crash
 * the server: the shared test server must never be touched that way.
 *
 * The cluster lives in a temporary directory under dir (initdb'ed once,
 * removed by esc_test_pg_cluster_free), listens on 127.0.0.1 only, on a
 * free port from esc_test_free_port, and serves the database "postgres"
 * to superuser "esc" with trust authentication. fsync is off: a test
 * cluster needs no durability across machine crashes, only across server
 * restarts, which it keeps. Run as root, the server runs as "postgres"
 * (as scripts/servers does). Failures fail the calling cmocka test.
 */
#ifndef ESC_TEST_PGCLUSTER_H
#define ESC_TEST_PGCLUSTER_H

typedef struct esc_test_pg_cluster esc_test_pg_cluster;

/* initdb under dir (made if missing) and start; waits until it accepts
 * connections. dir must be reachable by the server's user. */
esc_test_pg_cluster *esc_test_pg_cluster_new(const char *dir);

/* "postgresql://esc@127.0.0.1:<port>/postgres" */
const char *esc_test_pg_cluster_url(const esc_test_pg_cluster *c);
int esc_test_pg_cluster_port(const esc_test_pg_cluster *c);

/* pg_ctl stop -m mode ("smart", "fast" or "immediate"), waiting until the
 * server is down. */
void esc_test_pg_cluster_stop(esc_test_pg_cluster *c, const char *mode);

/* Starts a stopped cluster again on the same port; waits until it accepts
 * connections (crash recovery included after an immediate stop). */
void esc_test_pg_cluster_start(esc_test_pg_cluster *c);

/* Stops the cluster (immediate) if it runs and removes its directory.
 * Accepts NULL. Never fails the test: usable in teardowns. */
void esc_test_pg_cluster_free(esc_test_pg_cluster *c);

/* A hot standby of primary (pg_basebackup -R -X stream: streaming
 * replication, its own port, the same superuser), started and accepting
 * read-only connections; free it like a cluster (before its primary).
 * esc_test_pg_cluster_start/stop restart it. */
esc_test_pg_cluster *esc_test_pg_standby_new(const esc_test_pg_cluster *primary);

/* Waits (up to timeout_ms, else fails the test) until standby has
 * replayed everything primary had written when it was called. */
void esc_test_pg_standby_catch_up(const esc_test_pg_cluster *primary,
                                  const esc_test_pg_cluster *standby,
                                  int timeout_ms);

/* ------------------------------------------------------------------------
 * Holding a client in the middle of a statement: a session holds a table
 * lock, the client's statement waits for it, and the test acts on the
 * waiting backend (terminates it, stops the server, stalls the network).
 * ------------------------------------------------------------------------ */

#include <libpq-fe.h>
#include <stdbool.h>

/* BEGIN; LOCK TABLE <schema>.<table> IN <mode> MODE on conn. "EXCLUSIVE" on
 * streams holds appends (reads go on); "ACCESS EXCLUSIVE" on events holds
 * reads too. End it with esc_test_exec(conn, "ROLLBACK"). */
void esc_test_hold_lock(PGconn *conn, const char *schema, const char *table,
                        const char *mode);

/* BEGIN; and a row lock on the stream's row of <schema>.streams: appends
 * to it wait while they execute (their statements prepare unhindered). The
 * stream must exist. End it with ROLLBACK. */
void esc_test_hold_stream(PGconn *conn, const char *schema,
                          const char *stream);

/* The pid of a backend whose application_name is app and which waits for
 * a lock; polls up to timeout_ms, then fails the test. */
int esc_test_lock_waiter(PGconn *conn, const char *app, int timeout_ms);

/* pg_terminate_backend(pid): the backend ends with FATAL 57P01, what a
 * fast shutdown sends every session. */
void esc_test_terminate(PGconn *conn, int pid);

/* Keeps ending the sessions named app (application_name) until *stop,
 * every pause_ms, each with a chance that grows with the session's age
 * until it is certain at max_age_ms: so kills land at every step of what
 * the session does. After a round that ended a session it kills again
 * only once *progress (the caller's count of finished work) has moved:
 * on a machine so loaded that a login and a try outlast max_age_ms, an
 * age rule alone would end every try and the test would starve. Returns
 * how many it ended. Fails no test (for killer threads). */
int esc_test_kill_sessions(const char *app, int pause_ms, int max_age_ms,
                           const _Atomic long *progress,
                           const _Atomic bool *stop);

#endif

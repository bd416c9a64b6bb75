/*
 * Helpers for integration and fault tests: real servers, one schema per
 * test so tests never see each other's events.
 */
#ifndef ESC_TESTENV_H
#define ESC_TESTENV_H

#include <esc/store.h>
#include <libpq-fe.h>

/* The PostgreSQL URL tests use: ESC_PG_URL, else the embedded default. */
const char *esc_test_pg_url(void);

/* A raw libpq connection to the test server; fails the test if it can't. */
PGconn *esc_test_pg(void);

/* Drops schema (and its roles) if present, then opens a store on it and
 * migrates. Fails the test on any error. */
esc_store *esc_test_fresh_store(const char *schema);

/* Opens another store on an already migrated schema. */
esc_store *esc_test_open_store(const char *schema);

/* Runs sql (no parameters) on conn and fails the test unless it succeeds. */
void esc_test_exec(PGconn *conn, const char *sql);

/* One msgpack-encoded small map {"n": n} into buf (>= 16 bytes); returns
 * its length. Handy as event data. */
size_t esc_test_payload(unsigned char *buf, long long n);

/* Runs sql on conn and returns the first column of its first row as a long
 * long; fails the test unless it returns a non-NULL value. */
long long esc_test_query_ll(PGconn *conn, const char *sql);

/* The same as a malloc'ed string (NULL for SQL NULL); the caller frees. */
char *esc_test_query_text(PGconn *conn, const char *sql);

/* Runs sql expecting an error; fails the test if it succeeds. Copies the
 * SQLSTATE into sqlstate (may be NULL; "" when none was reported). */
void esc_test_exec_fails(PGconn *conn, const char *sql, char sqlstate[6]);

/* Milliseconds on a monotonic clock, and a sleep of ms milliseconds. */
long long esc_test_now_ms(void);
void esc_test_sleep_ms(int ms);

/* A raw connection that esc_test_close_tracked() closes. Use that as (or
 * call it from) a cmocka teardown, so a test that fails while holding a
 * transaction open cannot hold the following tests back. Do not PQfinish
 * a tracked connection yourself. At most 16 are open at a time. */
PGconn *esc_test_pg_tracked(void);
int esc_test_close_tracked(void **state);

#endif

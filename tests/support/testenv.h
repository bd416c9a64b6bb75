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

/* ------------------------------------------------------------------------
 * Fault tests: child processes, Redis, and the tally projection's expected
 * read model computed from the log.
 * ------------------------------------------------------------------------ */

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Starts path with argv (argv[0] first, NULL-terminated) and the current
 * environment plus env ("K=V" strings, NULL-terminated; may be NULL),
 * stdout and stderr appended to log_path (NULL: inherited). The child gets
 * SIGKILL when the test process dies, and is remembered so that
 * esc_test_kill_children() ends it. Fails the test if fork fails. Call it
 * from the main thread only (PR_SET_PDEATHSIG follows the forking thread). */
pid_t esc_test_spawn(const char *path, const char *const *argv,
                     const char *const *env, const char *log_path);

/* Waits up to timeout_ms for a child to exit; true (and its wait status in
 * *status, may be NULL) when it did. The child is forgotten then. */
bool esc_test_wait_child(pid_t pid, int timeout_ms, int *status);

/* SIGKILLs a child and reaps it. */
void esc_test_kill_child(pid_t pid);

/* SIGKILLs and reaps every child still running; usable as (or from) a
 * cmocka teardown. Also registered with atexit by the first spawn. */
void esc_test_kill_children(void);
int esc_test_kill_children_teardown(void **state);

/* A connection to the Redis at url (NULL: esc_default_redis_url()), or
 * NULL when it cannot connect (quiet: for polling a server starting). */
redisContext *esc_test_redis_try(const char *url);
/* The same, failing the test when it cannot connect. */
redisContext *esc_test_redis(const char *url);

/* Runs a command and returns its integer or number-as-string reply;
 * `missing` for a nil reply. Fails the test on an error or I/O failure. */
long long esc_test_redis_ll(redisContext *c, long long missing, const char *fmt,
                            ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Deletes every key starting with prefix (SCAN + UNLINK); returns how
 * many. Never FLUSHALL a shared server. */
long long esc_test_redis_delete_prefix(redisContext *c, const char *prefix);

/* Counts the keys matching a glob pattern (SCAN). */
long long esc_test_redis_count(redisContext *c, const char *pattern);

/* Starts a private, persistence-free redis-server on 127.0.0.1:port as a
 * child (see esc_test_spawn) and waits until it answers PING. */
pid_t esc_test_redis_server_start(int port, const char *log_path);

/* A TCP port on 127.0.0.1 in [base, base + span) that nothing listens on,
 * starting the search at base + getpid() % span. For a server a test
 * starts, keep the range below 32768: ports of Linux's ephemeral range
 * (32768-60999) may be taken by any client connection meanwhile. */
int esc_test_free_port(int base, int span);

/*
 * Waits (up to 30 s) until a read of category (NULL: $all) returns every
 * event of it that the schema's events table holds: under ctest -j2 a
 * transaction of another test may hold the subscription horizon back for
 * a moment after an append. Fails the test if they never agree.
 */
void esc_test_await_readable(esc_store *st, const char *category);

/*
 * What the tally projection (tally.h) should hold after projecting the
 * log of category "tally": the sum of n, the sum per item and, per
 * stream, the stream versions in order. Read back from the log with
 * esc_read_all and decoded with esc_event_decode. Events whose item is
 * "poison" are left out unless with_poison. Waits (up to 30 s) until every
 * event of the schema's events table is readable; fails the test if not.
 */
typedef struct esc_test_tally esc_test_tally;
esc_test_tally *esc_test_tally_from_log(esc_store *st, bool with_poison);
void esc_test_tally_free(esc_test_tally *m);
int64_t esc_test_tally_total(const esc_test_tally *m);
int64_t esc_test_tally_events(const esc_test_tally *m);

/* Runs cmd through the shell: its standard output (the first 64 KiB,
 * malloc'ed; the caller frees) and, in *status, its exit code (-1 when a
 * signal ended it). */
char *esc_test_command_output(const char *cmd, int *status);

/* The key base "NS:proj" where every Redis key of projection proj starts,
 * NS being the namespace schema's store has by default (esc_key_namespace:
 * "esc-<identity>"), into out (ESC_TEST_KEY_BASE_SIZE); returns out.
 * Fails the test on an error. */
#define ESC_TEST_KEY_BASE_SIZE 160
const char *esc_test_key_base(const char *schema, const char *proj, char *out,
                              size_t size);

/*
 * Whether projection proj's serving generation in Redis holds exactly m
 * (proj: its key base, esc_test_key_base):
 * the total, every item's score (and no other item), and every stream's
 * seq list equal to its versions in order (and no other seq list). The
 * first difference goes into why. Cheap when the total differs.
 */
bool esc_test_tally_matches(const esc_test_tally *m, redisContext *c,
                            const char *proj, char *why, size_t size);

/* Polls esc_test_tally_matches every 100 ms until it holds or timeout_ms
 * passes; returns the milliseconds it took, or -1 (why says the last
 * difference). */
long long esc_test_tally_wait(const esc_test_tally *m, redisContext *c,
                              const char *proj, int timeout_ms, char *why,
                              size_t size);

/* The tally of st's whole log (poison included), then waits up to
 * timeout_ms until proj's read model in Redis holds it exactly, or fails
 * the test saying how it differs; returns the milliseconds it took. */
long long esc_test_tally_expect_exact(esc_store *st, redisContext *c,
                                      const char *proj, int timeout_ms);

/* Starts the fault tests' worker program (tests/fault/projector.c at
 * path) with the arguments that follow (NULL-terminated), through
 * esc_test_spawn. */
pid_t esc_test_projector(const char *path, const char *log_path,
                         const char *const *env, ...);

/* The pid of the process holding the lease of proj/partition, parsed from
 * its lease connection's application_name ("esc-worker N/P pid X"); 0 when
 * nobody holds it, -1 when more than one backend does (two active
 * workers). backend (may be NULL) gets the holder's backend pid. */
int esc_test_lease_holder(PGconn *conn, const char *proj, int partition,
                          int *backend);

/* The checkpoint of partition in proj's serving generation, "" when absent,
 * into out (ESC_POSITION_TOKEN_MAX). proj: the key base (esc_test_key_base). */
void esc_test_checkpoint(redisContext *c, const char *proj, int partition,
                         char *out, size_t size);

/* A thread appending tally events (tally_append on its own store) in
 * batches of `batch` over `streams` streams "tally-<prefix><i>", pausing
 * pause_ms between batches, until stopped. */
typedef struct esc_test_writer esc_test_writer;
esc_test_writer *esc_test_writer_start(const char *schema, const char *prefix,
                                       int streams, int batch, int pause_ms);
/* Stops it; returns how many events it appended. */
long long esc_test_writer_stop(esc_test_writer *w);

/* Prints the last `lines` lines of a log file to stderr. */
void esc_test_print_tail(const char *path, int lines);

/* Removes a child's log file, unless ESC_TEST_KEEP_LOGS is set (then
 * says where it is). */
void esc_test_remove_log(const char *path);

/* The end of a fault test that ran children logging to log_path: kills
 * what still runs, drops schema, and removes the log when the test passed
 * (esc_test_remove_log) or prints its tail when not. */
void esc_test_fault_cleanup(const char *schema, const char *log_path,
                            bool passed);

/* Whether the file at path contains text. */
bool esc_test_file_contains(const char *path, const char *text);

/* Opens a store on a migrated schema whose commits do not wait for the
 * WAL flush (synchronous_commit off): for appending test data quickly. */
esc_store *esc_test_open_store_async(const char *schema);

/* Deletes projection name's registry row in schema, so that the next
 * worker registers it anew, with its own partition count as the layout
 * (the first registration sets it; other counts are refused). */
void esc_test_unregister_projection(const char *schema, const char *name);

/* Drops a test schema and its roles (for teardowns). */
void esc_test_drop_schema(const char *schema);

#endif

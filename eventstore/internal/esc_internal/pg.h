/*
 * <esc_internal/pg.h> - the PostgreSQL layer that esc's modules above the
 * event store build on: errors from libpq results, bounded round trips,
 * session-level connections with esc's parameters, quoting for messages.
 *
 * Internal: not installed, and visible only to esc's own modules (and
 * their tests), never to users (docs/architecture.md, decision 0018).
 */
#ifndef ESC_INTERNAL_PG_H
#define ESC_INTERNAL_PG_H

#include <esc/store.h>
#include <esc_internal/text.h>
#include <libpq-fe.h>

#if defined(__GNUC__)
#define ESC__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ESC__PRINTF(a, b)
#endif

/* Fills err (when not NULL) and returns code, so callers can write
 * `return esc__fail(err, ESC_EINVAL, "stream %s: ...", id);`. */
esc_status esc__fail(esc_error *err, esc_status code, const char *fmt, ...)
    ESC__PRINTF(3, 4);

/* Maps a failed PGresult (or a NULL one) to an esc_error: the SQLSTATE is
 * copied, the code chosen from it, and the message prefixed by `what`. A
 * broken connection (the connection is bad, or the server said it ends the
 * session: 08*, 57P01-57P03) is always ESC_ECONN, "lost the connection to
 * PostgreSQL: <why>", never libpq's raw lines. */
esc_status esc__fail_pg(esc_error *err, PGconn *conn, const PGresult *res,
                        const char *what);

/* Clears err to ESC_OK (when not NULL). */
void esc__clear(esc_error *err);


/* The per-call timeout for `requested` ms (esc_store_options.timeout_ms):
 * > 0 as is, < 0 none (-1), 0 ESC_PG_TIMEOUT's seconds (0: none), else
 * 30000. ESC_EINVAL for an ESC_PG_TIMEOUT that is not whole seconds. */
esc_status esc__timeout_ms(int requested, int *out, esc_error *err);

/*
 * One round trip with a deadline. The connection must be nonblocking
 * (esc__pg_session does that). Begin, send with a PQsend* call, then take
 * results with esc__call_next (or all at once with esc__call_finish): each
 * waits at most until the deadline, then shuts the connection down
 * (timed_out; PQstatus is CONNECTION_BAD from then on).
 */
struct esc__call {
  PGconn *conn;
  int timeout_ms;      /* -1: none */
  int64_t deadline_ms; /* esc__clock_ms() time; -1: none */
  /* The whole request (its final Sync included) reached the kernel: the
   * server may act on it. Before that, nothing was sent that it could. */
  bool sent;
  bool timed_out;
  char ended[6]; /* SQLSTATE of a notice saying the session ends */
};

/* Fills err for a failed round trip: "no reply within ..." when it timed
 * out (ESC_ETIMEDOUT), else as esc__fail_pg. */
esc_status esc__fail_call(esc_error *err, const struct esc__call *c,
                          const PGresult *res, const char *what);

/* A growable byte buffer for binary parameters. */
struct esc__buf {
  unsigned char *data;
  size_t len;
  size_t cap;
};
/* Makes room for n more bytes; false when out of memory. */
bool esc__buf_reserve(struct esc__buf *b, size_t n);
void esc__buf_release(struct esc__buf *b);

/* ------------------------------------------------------------------------
 * Session-level connections (session.c)
 *
 * A worker's lease connection, its registry and dead letter connection,
 * and the short-lived ones of admin calls. Session level matters: an
 * advisory lock belongs to the server session that took it, so these must
 * not go through a transaction-pooling PgBouncer (docs/operations.md).
 * ------------------------------------------------------------------------ */

/* Connects with esc_store_open's parameters, timeouts and messages; the
 * application_name names the connection's role in pg_stat_activity (and
 * so in `esc projections`). url NULL: esc_default_pg_url(). */
PGconn *esc__pg_connect(const char *url, const char *app_name, esc_error *err);

/* The schema name (NULL: "esc") as a quoted identifier; PQfreemem it.
 * NULL and err filled on failure. */
char *esc__pg_schema_ident(PGconn *conn, const char *schema, esc_error *err);

/* Runs sql with n text parameters within the per-call timeout; returns the
 * result when its status is want, else NULL with err filled ("<what>: ..."). */
PGresult *esc__pg_exec(PGconn *conn, const char *sql, int n,
                       const char *const *values, ExecStatusType want,
                       const char *what, esc_error *err);

/* esc__pg_exec of sql_fmt, whose one %s is replaced by the schema (NULL:
 * "esc") as a quoted identifier: SQL on one store's objects. */
PGresult *esc__pg_exec_in(PGconn *conn, const char *schema,
                          const char *sql_fmt, int n,
                          const char *const *values, ExecStatusType want,
                          const char *what, esc_error *err);

/* err's code, or ESC_EIO when err is NULL or says OK. */
esc_status esc__pg_failed(const esc_error *err);

/* Room for a store identity (a UUID's text) and its NUL. */
#define ESC__IDENTITY_SIZE 37

/* Reads the store's identity into out (ESC__IDENTITY_SIZE); "" when the
 * schema has no identity row. */
esc_status esc__pg_read_identity(PGconn *conn, const char *schema, char *out,
                                 esc_error *err);

#endif

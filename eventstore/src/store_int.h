/*
 * Internals of the event store shared between its source files. Not
 * installed; nothing outside eventstore/ includes this. What the modules
 * above may use is in <esc_internal/pg.h>.
 */
#ifndef ESC_STORE_INT_H
#define ESC_STORE_INT_H

#include <esc/store.h>
#include <esc_internal/pg.h>
#include <libpq-fe.h>

/* The same, with `ended` (may be NULL or ""): the SQLSTATE of a notice that
 * said why the server ended an idle session. */
esc_status esc__fail_pg_ended(esc_error *err, PGconn *conn,
                              const PGresult *res, const char *what,
                              const char *ended);

/* Prefixes err's message with "<what>: " (err may be NULL); returns code.
 * For a failure of an inner step (preparing a statement) named from the
 * operation the caller knows. */
esc_status esc__prefix(esc_error *err, esc_status code, const char *what);

/* Joins libpq's multi-line messages into one line, in place (NULL: no-op). */
void esc__flatten(char *msg);

/* ------------------------------------------------------------------------
 * Connections and bounded round trips (conn.c)
 * ------------------------------------------------------------------------ */

/* Milliseconds on a monotonic clock. */
int64_t esc__clock_ms(void);

void esc__call_begin(struct esc__call *c, PGconn *conn, int timeout_ms);
/* Starts the deadline again (a result taken long after its send). */
void esc__call_rearm(struct esc__call *c);
/* Pushes what was sent out; sets sent. false on a broken connection or
 * at the deadline. */
bool esc__call_flush(struct esc__call *c);
/* The next result, as PQgetResult; NULL at the end of one query's results
 * (in pipeline mode, between queries), or on a fault. */
PGresult *esc__call_next(struct esc__call *c);
/* Takes every result to the end, like PQexec: the first error, else the
 * last result. On a fault, an error result the server sent, else NULL:
 * rows without the end of their query are no answer. */
PGresult *esc__call_finish(struct esc__call *c);
/* Whether the round trip failed: timed out or the connection broke. */
bool esc__call_failed(const struct esc__call *c);

/* What to send: a prepared statement (stmt) or SQL text (sql) with n
 * parameters; text without parameters may hold several statements. */
struct esc__query {
  const char *stmt;
  const char *sql;
  int n;
  const char *const *values;
  const int *lengths; /* for binary parameters */
  const int *formats; /* NULL: all text */
  int binary;         /* results in binary */
};

/* Begin, send q, finish: NULL when it could not be sent or on a fault. */
PGresult *esc__call_run(struct esc__call *c, PGconn *conn, int timeout_ms,
                        const struct esc__query *q);

/* "<what> at host:port: <libpq's reason>" (ESC_ECONN) for a failed
 * connect or reconnect. */
esc_status esc__fail_connect(esc_error *err, PGconn *conn, const char *what);
/* Why a connection is gone, in one line, from a SQLSTATE (may be NULL)
 * or else libpq's message on conn. */
void esc__why_lost(const char *sqlstate, PGconn *conn, char *out,
                   size_t size);

struct esc__conn_opts {
  const char *app_name;  /* NULL: "esc" */
  int connect_timeout_s; /* > 0 wins over the URL; 0: URL, env, else 10 */
  int timeout_ms;        /* resolved (esc__timeout_ms); -1: none */
};

/*
 * Connects with libpq's URL and environment parameters honoured and esc's
 * defaults only where none is set (see esc_store_open), then sets the
 * session up (esc__pg_session). notices (may be NULL) records why the
 * server ends a session (its `ended`); it must outlive the connection.
 * NULL and err filled (ESC_ECONN, ESC_EINVAL, ESC_ENOMEM) on failure.
 */
PGconn *esc__pg_open(const char *conninfo, const struct esc__conn_opts *o,
                     struct esc__call *notices, esc_error *err);
/* Nonblocking mode and the server-side statement_timeout: after every
 * connect and PQreset. */
esc_status esc__pg_session(PGconn *conn, int timeout_ms, esc_error *err);

/* Prepared statement names; see store.c for their SQL. */
enum esc__stmt {
  ESC__STMT_APPEND_FAST,
  ESC__STMT_APPEND_FAST1,
  ESC__STMT_APPEND,
  ESC__STMT_READ_FWD,
  ESC__STMT_READ_BWD,
  ESC__STMT_READ_ALL,
  ESC__STMT_READ_CATEGORY,
  ESC__STMT_STREAM_GET,
  ESC__STMT_WAIT_REGISTER,
  ESC__STMT_WAIT_UNREGISTER,
  ESC__STMT_HAS_EVENTS_ALL,
  ESC__STMT_HAS_EVENTS_CATEGORY,
  ESC__STMT_READ_BY_ID,
  ESC__STMT_HEAD,
  ESC__STMT_SNAPSHOT_WRITE,
  ESC__STMT_SNAPSHOT_READ,
  ESC__STMT_READ_ALL_BOUNDED,
  ESC__STMT_READ_CATEGORY_BOUNDED,
  ESC__STMT_APPEND_GROUP,
  ESC__STMT_APPEND_ATOMIC,
  ESC__STMT_APPEND_TAGGED,
  ESC__STMT_READ_QUERY,
  ESC__STMT_COUNT
};

struct esc_store {
  PGconn *conn;
  char *schema;       /* unquoted */
  char *schema_ident; /* quoted identifier, for SQL text */
  char *channel;      /* NOTIFY channel name, unquoted */
  size_t max_event_size;
  bool prepared[ESC__STMT_COUNT];
  bool listening;
  /* An esc_read_all_send whose result nobody has received yet. */
  bool read_in_flight;
  esc_position read_after;
  char read_what[ESC_CATEGORY_MAX + 16]; /* "read <category>", for errors */
  int timeout_ms;        /* per round trip; -1: none */
  struct esc__call call; /* the last (or the running) round trip */
  esc_group_commit *group_commit; /* borrowed; NULL: esc_append appends */
};

/* esc__call_run on the store's connection with its timeout. */
PGresult *esc__exec(esc_store *st, const struct esc__query *q);
/* esc__exec of prepared statement stmt whose one parameter is a stream
 * id (sent as binary text), with binary results. */
PGresult *esc__exec_by_stream(esc_store *st, const char *stmt,
                              const char *stream_id);
/* esc__fail_call for the store's last round trip. */
esc_status esc__fail_store(esc_error *err, const esc_store *st,
                           const PGresult *res, const char *what);

/* Makes the connection ready for a request: waits out a read nobody
 * received, and reconnects one that broke — also one the server closed
 * while it was idle, noticed here before anything is sent on it (prepared
 * statements and LISTEN are forgotten with it). ESC_ECONN when the server
 * cannot be reached. */
esc_status esc__ensure_conn(esc_store *st, esc_error *err);

/* Counts one append call that began at began_ns (esc__now_ns) and ended
 * with rc: `conflicts` of its requests were refused by a concurrent
 * writer, `duplicates` were idempotent replays. */
void esc__append_observe(int64_t began_ns, esc_status rc, size_t conflicts,
                         size_t duplicates);

/* ------------------------------------------------------------------------
 * Appending (append.c), shared with group commit (group.c)
 * ------------------------------------------------------------------------ */

/* Checks a request as esc_append does before anything is sent. */
esc_status esc__append_validate(const esc_store *st, const char *stream,
                                int64_t expected, const esc_event_data *events,
                                size_t n, esc_error *err);
/* esc_append without group commit and metrics: on st's own connection. */
esc_status esc__append_direct(esc_store *st, const char *stream_id,
                              int64_t expected, const esc_event_data *events,
                              size_t n, esc_append_result *result,
                              esc_error *err);
/* What a failed append means to its caller, from rc and whether it was
 * sent on st's last round trip (ESC_EUNKNOWN when the reply was lost). */
esc_status esc__append_outcome(const esc_store *st, const char *stream,
                               esc_status rc, bool sent, esc_error *err);
/* "no stream", "an existing stream" or "version N", for messages. */
void esc__describe_expected(int64_t expected, char *out, size_t size);
/* Reads row `row` of a result whose first seven columns are those of
 * <schema>.append() (status, versions, tx id, positions, actual version). */
esc_status esc__append_interpret_row(const PGresult *res, int row,
                                     const char *stream, int64_t expected,
                                     esc_append_result *out, esc_error *err);
/* PostgreSQL's binary array format: a one-dimensional array's header,
 * then each element (p NULL: SQL NULL). The caller reserved the room. */
void esc__put_array_header(struct esc__buf *b, uint32_t elem_oid, size_t n,
                           bool hasnull);
void esc__put_array_elem(struct esc__buf *b, const void *p, size_t len);

/* The eight array parameters of append_group() and append_atomic() for
 * count requests (append_arrays.c), built in b, which values and lengths
 * then point into; false when out of memory. */
enum { ESC__APPEND_ARRAYS = 8 };
bool esc__append_arrays(struct esc__buf *b,
                        const esc_append_request *const *reqs, size_t count,
                        const char **values, int *lengths);

/* esc_append of a store with group commit (group.c): validates, hands the
 * request to the group and waits for its flush. */
esc_status esc__group_append(esc_store *st, const char *stream_id,
                             int64_t expected, const esc_event_data *events,
                             size_t n, esc_append_result *result,
                             esc_error *err);

/* Fills err for an error the server reported as a SQLSTATE and message
 * without a PGresult (a row of append_group): the code as esc__fail_pg
 * chooses it, the message prefixed by `what`. */
esc_status esc__fail_sqlstate(esc_error *err, const char *sqlstate,
                              const char *msg, const char *what);

/* The name statement s is prepared under. */
const char *esc__stmt_name(enum esc__stmt s);

/* Prepares statement s on first use; returns its name. */
esc_status esc__prepare(esc_store *st, enum esc__stmt s, const char **name,
                        esc_error *err);

/* Binary-format helpers for libpq parameters and results (network order). */
void esc__put_be64(unsigned char out[8], uint64_t v);
void esc__put_be32(unsigned char out[4], uint32_t v);
uint64_t esc__get_be64(const void *p);
uint32_t esc__get_be32(const void *p);

/* Fills an esc_events from a binary-format result of the event columns;
 * takes ownership of res on success and on failure. */
esc_status esc__events_from_result(PGresult *res, esc_events *out,
                                   esc_error *err);

/* esc__events_from_result for a result whose rows carry one more column,
 * a consistency token, copied into token[size] (esc_read_tagged). */
esc_status esc__events_with_token(PGresult *res, esc_events *out, char *token,
                                  size_t size, esc_error *err);

/* ------------------------------------------------------------------------
 * Tags and queries (tags.c)
 * ------------------------------------------------------------------------ */
/* Checks tags[i][k] of every request's events (tags may be NULL). */
esc_status esc__tags_validate(const esc_append_request *reqs,
                              const esc_tags *const *tags, size_t n,
                              esc_error *err);
esc_status esc__query_validate(const esc_tag_query *q, esc_error *err);
/* "coupon:X+order:1 of type A|B or ..." into out, cut to size. */
void esc__query_describe(const esc_tag_query *q, char *out, size_t size);
/* append_tagged()'s tag arrays (2) and query_matches()' query arrays (4),
 * built in b, which values and lengths point into; false: out of memory. */
bool esc__tag_arrays(struct esc__buf *b, const esc_append_request *reqs,
                     const esc_tags *const *tags, size_t n, const char **values,
                     int *lengths);
bool esc__query_arrays(struct esc__buf *b, const esc_tag_query *q,
                       const char **values, int *lengths);

/* ------------------------------------------------------------------------
 * Atomic appends with more (atomic.c, append_if.c)
 * ------------------------------------------------------------------------ */
enum { ESC__ATOMIC_EXTRA_MAX = 7 };
/* Parameters after append_atomic's eight arrays, for statement stmt whose
 * rows are append_atomic's; condition (may be NULL) names an ES011
 * refusal; validate (may be NULL) checks more before anything is sent. */
struct esc__atomic_extra {
  enum esc__stmt stmt;
  int n;
  const char *values[ESC__ATOMIC_EXTRA_MAX];
  int lengths[ESC__ATOMIC_EXTRA_MAX];
  const esc_tag_query *condition;
  const esc_tags *const *tags;
  esc_status (*validate)(const struct esc__atomic_extra *x,
                         const esc_append_request *reqs, size_t n,
                         esc_error *err);
};
/* esc_append_atomic, with x (NULL: none). */
esc_status esc__atomic_run(esc_store *store, esc_append_request *reqs, size_t n,
                           const struct esc__atomic_extra *x, esc_error *err);
/* Fills err for ES011 from its DETAIL ("global/version/id/type/stream"). */
void esc__condition_failed(const esc_tag_query *q, const char *detail,
                           esc_error *err);
#endif

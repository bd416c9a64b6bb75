/*
 * Internals of the event store shared between its source files. Not
 * installed; nothing outside eventstore/ includes this.
 */
#ifndef ESC_STORE_INT_H
#define ESC_STORE_INT_H

#include <esc/store.h>
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
 * copied, the code chosen from it, and the message prefixed by `what`. */
esc_status esc__fail_pg(esc_error *err, PGconn *conn, const PGresult *res,
                        const char *what);

/* Room for a quoted piece of caller text: all of its 48 printable bytes,
 * fewer escaped ones, so messages keep their tail within esc_error.msg. */
#define ESC__QUOTE_SIZE 104

/* Writes text into out (out_size >= 4) as it may appear between double
 * quotes in a message: printable ASCII as is, '"' and '\' escaped, other
 * bytes as \xNN, cut with "..." when too long. */
void esc__quote(char *out, size_t out_size, const char *text);

/* Clears err to ESC_OK (when not NULL). */
void esc__clear(esc_error *err);

/* Prepared statement names; see store.c for their SQL. */
enum esc__stmt {
  ESC__STMT_APPEND_UPDATE,
  ESC__STMT_APPEND_UPSERT,
  ESC__STMT_APPEND1_UPDATE,
  ESC__STMT_APPEND1_UPSERT,
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
};

/* Reconnects a broken connection (prepared statements and LISTEN are
 * forgotten with it); ESC_ECONN when the server cannot be reached. */
esc_status esc__ensure_conn(esc_store *st, esc_error *err);

/* Prepares statement s on first use; returns its name. */
esc_status esc__prepare(esc_store *st, enum esc__stmt s, const char **name,
                        esc_error *err);

/* Binary-format helpers for libpq parameters and results (network order). */
void esc__put_be64(unsigned char out[8], uint64_t v);
void esc__put_be32(unsigned char out[4], uint32_t v);
uint64_t esc__get_be64(const void *p);
uint32_t esc__get_be32(const void *p);

/* A growable byte buffer for binary parameters. */
struct esc__buf {
  unsigned char *data;
  size_t len;
  size_t cap;
};
/* Makes room for n more bytes; false when out of memory. */
bool esc__buf_reserve(struct esc__buf *b, size_t n);
void esc__buf_release(struct esc__buf *b);

/* Fills an esc_events from a binary-format result of the event columns;
 * takes ownership of res on success and on failure. */
esc_status esc__events_from_result(PGresult *res, esc_events *out,
                                   esc_error *err);

#endif

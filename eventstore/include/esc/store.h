/*
 * <esc/store.h> - the esc event store on PostgreSQL.
 *
 * The event store is the log everything else in esc stands on: command
 * handlers append to it, projections follow it, the CLI inspects it.
 *
 * Threading: an esc_store wraps one PostgreSQL connection and is not
 * thread-safe; open one per thread. Values (events, results, errors) are
 * plain structs the caller owns.
 *
 * Errors: every action returns an esc_status and, on failure, fills the
 * caller's esc_error (when not NULL) with the code, the SQLSTATE when the
 * database reported one, and a message naming what failed and where.
 */
#ifndef ESC_STORE_H
#define ESC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <esc/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ESC_BUILDING_LIBRARY)
#define ESC_API __attribute__((visibility("default")))
#else
#define ESC_API
#endif

#define ESC_VERSION_MAJOR 0
#define ESC_VERSION_MINOR 1
#define ESC_VERSION_PATCH 0
#define ESC_VERSION_STRING "0.1.0"

/* The library's version string, which may differ from the header's. */
ESC_API const char *esc_version(void);

/* ------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------ */

/*
 * The codes, made from ESC_STATUS_LIST (<esc/status.h>, append-only: codes
 * are never renumbered). What they mean:
 *
 * ESC_OK          0
 * ESC_EINVAL      invalid input: names, sizes, msgpack, arguments
 * ESC_ECONFLICT   expected version did not match the stream; or a setting
 *                 disagrees with what the store records (a projection's
 *                 partition layout)
 * ESC_ENOTFOUND   stream (or other named thing) does not exist
 * ESC_EDUPLICATE  an event id is stored already with other content
 * ESC_EDELETED    the stream is tombstoned
 * ESC_ECONN       could not connect, or the connection broke; for an
 *                 append: it was not sent, nothing happened
 * ESC_EIO         the database reported an error
 * ESC_ENOMEM      out of memory
 * ESC_ETIMEDOUT   a wait ran out: the server did not answer in time (or
 *                 cancelled the statement), or what a call waits for did
 *                 not happen in time
 * ESC_EBUSY       a lock or lease is held by someone else
 * ESC_EREJECTED   a decider rejected the command (a domain error)
 * ESC_ECORRUPT    the stored log breaks a guarantee: see esc check
 * ESC_EUNKNOWN    the request was sent, then the connection broke or no
 *                 reply came in time: it may or may not have been applied.
 *                 Settle it by sending it again with the same event ids
 *                 (idempotent append: a repeat returns the original
 *                 result) or by reading the stream.
 * ESC_ETRUNCATED  a stream's early events were removed (truncated) and no
 *                 usable snapshot covers them: its state cannot be built,
 *                 and folding only the rest would be wrong. Also a
 *                 truncation refused because it would leave such a stream.
 */
#define ESC__STATUS_ENUM(name, value, message, key, exit) name = value,
typedef enum esc_status { ESC_STATUS_LIST(ESC__STATUS_ENUM) } esc_status;
#undef ESC__STATUS_ENUM

typedef struct esc_error {
  esc_status code;
  char sqlstate[6]; /* "" when the database did not report one */
  char msg[256];
} esc_error;

#define ESC_ERROR_INIT                                                         \
  { ESC_OK, "", "" }

/*
 * Fills err (when not NULL) with code and a printf-style message, and
 * returns code: for user code (event codecs, handlers) that reports errors
 * the way esc does.
 */
ESC_API esc_status esc_error_set(esc_error *err, esc_status code,
                                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A short, static, human name for a code ("conflict", "invalid input"). */
ESC_API const char *esc_strerror(esc_status code);

/* ------------------------------------------------------------------------
 * Identifiers, positions, expected versions
 * ------------------------------------------------------------------------ */

typedef struct esc_uuid {
  unsigned char bytes[16];
} esc_uuid;

/* A random (v4) id. */
ESC_API esc_uuid esc_uuid_v4(void);
/* A name-based (v5, SHA-1) id: the same namespace and name give the same id. */
ESC_API esc_uuid esc_uuid_v5(const esc_uuid *ns, const void *name, size_t len);
ESC_API bool esc_uuid_is_nil(const esc_uuid *id);
/* Formats as 36 characters plus NUL into out[37]. */
ESC_API void esc_uuid_format(const esc_uuid *id, char out[37]);
/* Parses the 36-character form (hex digits in either case, nothing around
 * it); ESC_EINVAL naming the text when it is not one, out untouched. */
ESC_API esc_status esc_uuid_parse(const char *text, esc_uuid *out,
                                  esc_error *err);

/*
 * A position in subscription order. Events are delivered to subscribers
 * ordered by (tx_id, global), where tx_id is the writing transaction's id:
 * a checkpoint is such a pair, and a position token handed out by an append
 * is the pair of its last event. ESC_POSITION_START precedes every event.
 */
typedef struct esc_position {
  uint64_t tx_id;
  int64_t global;
} esc_position;

#define ESC_POSITION_START                                                     \
  { 0, 0 }
#define ESC_POSITION_TOKEN_MAX 48

/* -1, 0 or 1 as a is before, equal to or after b in subscription order. */
ESC_API int esc_position_cmp(const esc_position *a, const esc_position *b);
/* "tx_id/global", e.g. "7731/42", into out[ESC_POSITION_TOKEN_MAX]. */
ESC_API void esc_position_format(const esc_position *p,
                                 char out[ESC_POSITION_TOKEN_MAX]);
/* Parses that form strictly: two unsigned decimal numbers and a '/', no
 * signs or spaces, tx_id <= UINT64_MAX, global <= INT64_MAX. ESC_EINVAL
 * naming the text otherwise, out untouched. */
ESC_API esc_status esc_position_parse(const char *text, esc_position *out,
                                      esc_error *err);

/*
 * Expected version for an append: one of the constants below, or an exact
 * stream version >= 0 (0 means the stream has no events yet). Stream
 * versions start at 1.
 */
#define ESC_EXPECT_ANY (-1)
#define ESC_EXPECT_NO_STREAM (-2)
#define ESC_EXPECT_EXISTS (-3)

/* ------------------------------------------------------------------------
 * Names and limits
 * ------------------------------------------------------------------------ */

#define ESC_STREAM_ID_MAX 200
#define ESC_TYPE_NAME_MAX 128
#define ESC_CATEGORY_MAX ESC_STREAM_ID_MAX
#define ESC_DEFAULT_MAX_EVENT_SIZE (1024 * 1024)

/*
 * A stream id is 1..ESC_STREAM_ID_MAX bytes of [A-Za-z0-9_.:@+=/-] that
 * does not start with '-' or '$'. Its category is the part before the first
 * '-' ("order-42" is in "order"). Returns false and fills err (ESC_EINVAL;
 * err may be NULL) otherwise; messages count bytes from 1 and show
 * unprintable ones as \xNN, e.g.
 *   stream id "ord er-1": byte 4 (' ') is not allowed; use [A-Za-z0-9_.:@+=/-]
 */
ESC_API bool esc_stream_id_valid(const char *stream_id, esc_error *err);
/* A category: a stream id without '-'. */
ESC_API bool esc_category_valid(const char *category, esc_error *err);
/* An event type: 1..ESC_TYPE_NAME_MAX bytes of [A-Za-z0-9_.:-], starting
 * with a letter. */
ESC_API bool esc_type_name_valid(const char *type, esc_error *err);
/* Copies the category of a valid stream id (the bytes before the first
 * '-') into out, NUL-terminated, truncated to out_size - 1 bytes; a buffer
 * of ESC_CATEGORY_MAX + 1 always suffices. */
ESC_API void esc_stream_category(const char *stream_id, char *out,
                                 size_t out_size);

/* ------------------------------------------------------------------------
 * Codec: msgpack payloads, metadata, JSON
 * ------------------------------------------------------------------------ */

/*
 * Bounds for decoding untrusted msgpack. msgpack-c trusts the lengths in
 * its input; esc checks them against these limits and against the bytes
 * actually present before anything is unpacked. A NULL limits pointer or a
 * zero field means the default. Depth counts nested arrays and maps and is
 * capped at 32 whatever max_depth says: msgpack-c's unpacker cannot go
 * deeper (MSGPACK_EMBED_STACK_SIZE).
 */
typedef struct esc_decode_limits {
  size_t max_bytes;    /* whole input */
  size_t max_depth;    /* nesting of arrays and maps */
  size_t max_elements; /* all array items + map entries, summed */
} esc_decode_limits;

#define ESC_DECODE_LIMITS_INIT                                                 \
  { ESC_DEFAULT_MAX_EVENT_SIZE, 32, 100000 }

/*
 * Checks that data[0..len) is exactly one well-formed msgpack object within
 * the limits (no trailing bytes, no 0xc1, not empty). Allocates nothing and
 * trusts no declared length. On failure returns ESC_EINVAL and fills err
 * with what is wrong and at which byte offset (counting from 0), e.g.
 *   msgpack: str32 at byte 12 declares 4294967295 bytes but 3 remain
 * What passes is safe to hand to msgpack_unpack.
 */
ESC_API esc_status esc_msgpack_check(const void *data, size_t len,
                                     const esc_decode_limits *limits,
                                     esc_error *err);

/*
 * Renders msgpack as JSON text (compact, one line, map order kept). *out is
 * malloc'ed and NUL-terminated; the caller frees it; it is NULL on failure.
 * Checks the input first, as above. What JSON lacks renders as follows:
 * binary and extension values as {"$bin":"<hex>"} and
 * {"$ext":type,"hex":"<hex>"}; strings that are not UTF-8 as {"$bin":...}
 * too; integers above INT64_MAX (JSON numbers here are int64) as a string
 * of their digits, "18446744073709551615"; NaN and infinities as null;
 * map keys that are not strings as their JSON text (1 becomes "1"). A map
 * with two keys that render the same is ESC_EINVAL, since JSON cannot hold
 * both. Reals print with the fewest digits (at most 17) that read back
 * exactly for every real in the document.
 */
ESC_API esc_status esc_msgpack_to_json(const void *data, size_t len,
                                       const esc_decode_limits *limits,
                                       char **out, esc_error *err);

/*
 * Parses JSON text (any value at the top) and encodes it as msgpack:
 * objects become maps in the order written, integers the smallest msgpack
 * integer, other numbers float64. *out is malloc'ed; the caller frees it;
 * NULL on failure. ESC_EINVAL, naming line and column, e.g.
 *   JSON at line 1, column 9: invalid token near 'tru'
 * for a syntax error, a duplicate object key, an integer outside int64, or
 * \u0000 in an object key (it is fine in strings).
 */
ESC_API esc_status esc_json_to_msgpack(const char *json, void **out,
                                       size_t *out_len, esc_error *err);

/*
 * Event metadata, stored as a msgpack map with the keys "correlation_id",
 * "causation_id" (UUID strings), "actor" (string) and "time" (integer,
 * microseconds since the Unix epoch). Nil ids and a NULL actor are omitted;
 * "time" is always written.
 */
/* Length of the valid UTF-8 character at s (1..4), or 0 when the bytes
 * there are not one (overlong forms, surrogates, > U+10FFFF included). */
ESC_API size_t esc_utf8_char_len(const char *s);

/*
 * A user's own metadata field ("tenant" = "acme"): keys are 1..64 bytes
 * of [A-Za-z0-9_.-], values valid UTF-8 of at most 512 bytes, at most 16
 * fields, no key twice. Stored under "fields" in the metadata map, so
 * `esc read --json` shows them.
 */
typedef struct esc_metadata_field {
  const char *key;
  const char *value;
} esc_metadata_field;

#define ESC_METADATA_FIELDS_MAX 16
#define ESC_METADATA_KEY_MAX 64
#define ESC_METADATA_VALUE_MAX 512

typedef struct esc_metadata {
  esc_uuid correlation_id;
  esc_uuid causation_id;
  const char *actor; /* borrowed */
  int64_t time_us;
  /* Encoding: the user's fields (borrowed). Decoding leaves them NULL:
   * read one with esc_metadata_field_get. */
  const esc_metadata_field *fields;
  size_t field_count;
} esc_metadata;

#define ESC_METADATA_INIT                                                      \
  { {{0}}, {{0}}, NULL, 0, NULL, 0 }

/*
 * The value of the user field `key` in stored metadata, copied into out
 * (NUL-terminated). ESC_ENOTFOUND when there is none, ESC_EINVAL for
 * metadata whose fields are malformed or a value that does not fit.
 */
ESC_API esc_status esc_metadata_field_get(const void *data, size_t len,
                                          const char *key, char *out,
                                          size_t size, esc_error *err);

/* Encodes m; *out is malloc'ed and the caller frees it. */
ESC_API esc_status esc_metadata_encode(const esc_metadata *m, void **out,
                                       size_t *out_len, esc_error *err);
/*
 * Decodes a metadata map, checked first with the default limits. Unknown
 * keys are ignored and a nil value counts as absent; a known key with the
 * wrong type (or an id that is not a UUID) is ESC_EINVAL naming the key.
 * Empty input (len 0) decodes as ESC_METADATA_INIT. The actor is copied
 * into actor_buf, NUL-terminated and cut to actor_buf_size - 1 bytes at a
 * UTF-8 character boundary, and m->actor points at actor_buf; it stays
 * NULL when there is no actor or no buffer. On failure *m is
 * ESC_METADATA_INIT.
 */
ESC_API esc_status esc_metadata_decode(const void *data, size_t len,
                                       esc_metadata *m, char *actor_buf,
                                       size_t actor_buf_size, esc_error *err);

/* Current time in microseconds since the Unix epoch. */
ESC_API int64_t esc_now_us(void);

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

/* An event to append. Everything is borrowed for the duration of the call. */
typedef struct esc_event_data {
  esc_uuid id;            /* must not be nil: the id makes retries safe */
  const char *type;       /* esc_type_name_valid() */
  int32_t schema_version; /* >= 1 */
  const void *data;       /* one msgpack object */
  size_t data_len;
  const void *metadata; /* a msgpack map, or NULL */
  size_t metadata_len;
} esc_event_data;

/*
 * A stored event as read back. Pointers stay valid until the esc_events
 * holding it is released; strings are NUL-terminated.
 */
typedef struct esc_recorded_event {
  esc_position position;
  const char *stream_id;
  int64_t stream_version;
  esc_uuid id;
  const char *type;
  int32_t schema_version;
  const void *data;
  size_t data_len;
  const void *metadata; /* NULL when none was stored */
  size_t metadata_len;
  int64_t recorded_at_us; /* microseconds since the Unix epoch */
} esc_recorded_event;

/* A batch of read events (caller memory: esc_events_init/release). */
typedef struct esc_events {
  esc_recorded_event *items;
  size_t count;
  /* Where the next read in subscription order should continue from: the
   * position of the last event, or the position read from when empty. */
  esc_position next;
  void *priv_; /* owned storage; do not touch */
} esc_events;

#define ESC_EVENTS_INIT                                                        \
  { NULL, 0, ESC_POSITION_START, NULL }

ESC_API void esc_events_init(esc_events *ev);
/* Frees what the batch holds; accepts a released or zeroed batch. */
ESC_API void esc_events_release(esc_events *ev);

/* ------------------------------------------------------------------------
 * Opening a store
 * ------------------------------------------------------------------------ */

typedef struct esc_store esc_store;

/* Group commit: see esc_group_commit_new below. */
typedef struct esc_group_commit esc_group_commit;

typedef struct esc_store_options {
  const char *schema;    /* default "esc" */
  size_t max_event_size; /* data + metadata bytes; default 1 MiB */
  const char *app_name;  /* application_name reported to PostgreSQL */
  /* Seconds to wait for a connection. > 0 wins over the URL and the
   * environment; 0: the URL's connect_timeout, else PGCONNECT_TIMEOUT,
   * else 10. */
  int connect_timeout_s;
  /* Milliseconds any one round trip may wait for the server. 0: the
   * ESC_PG_TIMEOUT environment variable (whole seconds; 0 there means no
   * limit), else 30000; < 0: no limit. */
  int timeout_ms;
  /* Group commit (borrowed; NULL: off, the default): esc_append on this
   * store hands its request to the group, which coalesces it with the
   * concurrent appends of other threads into one transaction. It must
   * outlive the store. See esc_group_commit_new. */
  esc_group_commit *group_commit;
} esc_store_options;

#define ESC_STORE_OPTIONS_INIT                                                 \
  { NULL, 0, NULL, 0, 0, NULL }

/*
 * Connects to PostgreSQL. conninfo is a libpq URL or key=value string; NULL
 * means ESC_PG_URL from the environment, else the local server that
 * `scripts/servers start` runs. Returns NULL and fills err on failure:
 * ESC_ECONN when the server cannot be reached, ESC_EINVAL for a conninfo
 * libpq cannot parse or a bad ESC_PG_TIMEOUT.
 *
 * Bounded waits (docs/operations.md, "Timeouts"). libpq's parameters in
 * the URL and the environment are honoured as libpq does; esc adds its
 * defaults only where neither sets one (and none at all when a service is
 * named, whose file may set them): connect_timeout=10,
 * keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
 * tcp_user_timeout=30000. Every round trip waits at most timeout_ms (plus
 * 1 s): past it the connection is closed and the call fails with
 * ESC_ETIMEDOUT (ESC_EUNKNOWN for an append already sent). The session's
 * statement_timeout is set to the same limit unless something else set
 * one, so a slow statement is cancelled by the server, which then applies
 * nothing of it.
 *
 * A broken connection is re-opened by the next call (prepared statements
 * and LISTEN are set up again); a call fails only when it was in flight.
 */
ESC_API esc_store *esc_store_open(const char *conninfo,
                                  const esc_store_options *opts,
                                  esc_error *err);
ESC_API void esc_store_free(esc_store *store);

/* The conninfo esc_store_open(NULL, ...) would use (static storage). */
ESC_API const char *esc_default_pg_url(void);
/* The schema name the store works in. */
ESC_API const char *esc_store_schema(const esc_store *store);

/*
 * Applies the SQL migrations under eventstore/sql that are not yet applied,
 * each in its own transaction, under an advisory lock so concurrent callers
 * are safe. Needs the owner role. *applied (may be NULL) gets the count.
 */
ESC_API esc_status esc_store_migrate(esc_store *store, int *applied,
                                     esc_error *err);

/* PostgreSQL's limit on a role name, with the NUL. */
#define ESC_ROLE_NAME_MAX 64

/*
 * The roles a new store's migrations create and grant to. Roles belong to
 * the whole cluster: by default a store's are named from its database and
 * schema ("<db>_<schema>_writer", "<db>_<schema>_reader"), so no two
 * stores share them, and a role that already holds rights anywhere in the
 * cluster is refused (ESC_EINVAL naming it) unless share_roles is set.
 * A store's roles are recorded when it is created (migration 10); a store
 * made before that keeps "<schema>_writer" and "<schema>_reader". Naming
 * other roles than the recorded ones is ESC_EINVAL: migrate renames
 * nothing.
 */
typedef struct esc_migrate_options {
  const char *writer_role; /* NULL: the default */
  const char *reader_role; /* NULL: the default */
  bool share_roles;        /* grant roles that hold rights elsewhere too */
} esc_migrate_options;

#define ESC_MIGRATE_OPTIONS_INIT                                               \
  { NULL, NULL, false }

/* esc_store_migrate with options (NULL: the defaults). */
ESC_API esc_status esc_store_migrate_with(esc_store *store,
                                          const esc_migrate_options *opts,
                                          int *applied, esc_error *err);

/* The writer and reader roles of a migrated store; ESC_ENOTFOUND when the
 * schema is not a store yet. */
ESC_API esc_status esc_store_roles(esc_store *store,
                                   char writer[ESC_ROLE_NAME_MAX],
                                   char reader[ESC_ROLE_NAME_MAX],
                                   esc_error *err);

/* ------------------------------------------------------------------------
 * Appending
 * ------------------------------------------------------------------------ */

typedef struct esc_append_result {
  int64_t first_version; /* stream version of the first event */
  int64_t last_version;  /* and of the last: the stream's new version */
  esc_position position; /* of the last event: a read-your-writes token */
  int64_t first_global;  /* global position of the first event */
  bool duplicate;        /* the ids were stored already; nothing was written */
} esc_append_result;

/*
 * Appends n >= 1 events to one stream, atomically, in one round trip.
 * expected is ESC_EXPECT_* or an exact version. When every event id is
 * stored already, in this stream, in this order, with the same type,
 * schema version and data, it returns the original result with
 * duplicate = true and stores nothing (metadata is not compared, so a
 * retry may carry a new timestamp). Errors: ESC_ECONFLICT (the message
 * names stream, expected and actual version), ESC_EDUPLICATE (an id stored
 * with other content or elsewhere), ESC_EDELETED, ESC_EINVAL.
 *
 * When the connection fails, the status says what is known: ESC_ECONN or
 * ESC_ETIMEDOUT when the append was not sent, or the server cancelled it
 * (nothing was appended); ESC_EUNKNOWN when it was sent and the reply was
 * lost — it may have been applied. Settle an unknown append by calling
 * esc_append again with the same events (same ids): it appends them, or
 * returns the original result with duplicate = true.
 */
ESC_API esc_status esc_append(esc_store *store, const char *stream_id,
                              int64_t expected, const esc_event_data *events,
                              size_t n, esc_append_result *result,
                              esc_error *err);

/* ------------------------------------------------------------------------
 * Group commit: many threads' appends, one transaction per flush
 * ------------------------------------------------------------------------ */

/*
 * A group commit coalesces the esc_append calls of many threads (each on
 * its own esc_store opened with esc_store_options.group_commit) into one
 * transaction per flush, so N concurrent appends cost one commit instead
 * of N. Each append still gets exactly what esc_append promises on its
 * own: it is checked against its own expected version and reported with
 * its own status and result; a conflict, a tombstoned stream or an event
 * the server refuses fails that append only, never the others of its
 * flush. An append returns only
 * after the COMMIT of its flush returned, so an ESC_OK is as durable as a
 * plain esc_append's; idempotency by event id and the order of each
 * stream's events in subscription order are as without the group.
 *
 * When the flush's connection breaks after the flush was sent, each of
 * its appends is ESC_EUNKNOWN (settle it by appending again with the same
 * ids, as for esc_append); one the server rejects as a whole (nothing was
 * committed) is retried append by append, each its own transaction.
 *
 * What it costs: an append waits up to window_us for others to join its
 * flush (or less, once max_batch have), plus its flush's time. A thread
 * that appends alone gains nothing and waits the window; it pays off when
 * several threads append at once. Only esc_append is grouped:
 * esc_append_many and every other call use the store's own connection.
 *
 * Threading: an esc_group_commit is thread-safe; the stores using it are
 * not, as ever (one per thread). It owns `flushers` connections of its
 * own (and a thread for each) that do the appends.
 */
typedef struct esc_group_commit_options {
  /* Appends per flush, 1..1024; 0: 64. */
  int max_batch;
  /* Microseconds a free flusher waits, from the first queued append, for
   * more to join before it flushes; 0: 200; < 0: no wait (flush what is
   * queued at once). */
  int window_us;
  /* Flushes in flight at once, each on its own connection, 1..16; 0: 2.
   * While one flush waits for its commit, the next one gathers. */
  int flushers;
} esc_group_commit_options;

#define ESC_GROUP_COMMIT_OPTIONS_INIT                                          \
  { 0, 0, 0 }

/*
 * Starts a group commit for the store that conninfo and store_opts
 * (schema, timeouts, max_event_size; NULL: the defaults; its group_commit
 * is ignored) name, as esc_store_open would open it, and opts (NULL: the
 * defaults). Opens its connections now: NULL and err filled as for
 * esc_store_open, or ESC_EINVAL for options out of range.
 */
ESC_API esc_group_commit *
esc_group_commit_new(const char *conninfo, const esc_store_options *store_opts,
                     const esc_group_commit_options *opts, esc_error *err);

/*
 * Flushes what is queued, stops the flushers and closes their
 * connections. Call it once no esc_append through it is running, and
 * after freeing (or no longer using) the stores that name it. Accepts
 * NULL.
 */
ESC_API void esc_group_commit_free(esc_group_commit *gc);

/* One stream's part of esc_append_many. */
typedef struct esc_append_request {
  const char *stream_id;
  int64_t expected;
  const esc_event_data *events;
  size_t n;
  /* filled by esc_append_many: */
  esc_status status;
  esc_append_result result;
  esc_error error;
} esc_append_request;

/*
 * Appends to many streams in one round trip (libpq pipeline mode). Each
 * request is its own transaction: atomic per stream, independent of the
 * others, so one conflict does not undo the rest. Returns ESC_OK when every
 * request was sent and answered (then look at each request's status), or
 * the error that stopped the pipeline (a broken connection, say): then
 * each request's status says what became of it, as for esc_append —
 * answered, not sent (ESC_ECONN), or sent without a reply (ESC_EUNKNOWN;
 * the call returns ESC_EUNKNOWN when any request is).
 */
ESC_API esc_status esc_append_many(esc_store *store, esc_append_request *reqs,
                                   size_t n, esc_error *err);

/* Streams one esc_append_atomic call may append to. */
#define ESC_APPEND_ATOMIC_MAX 1000

/*
 * Appends to 1..ESC_APPEND_ATOMIC_MAX distinct streams in one transaction,
 * one round trip: all or nothing. Each request is checked as esc_append
 * checks it, against its own expected version. The stream locks are taken
 * in one order that every appender shares, so concurrent atomic appends
 * (and group commit flushes) over the same streams never deadlock.
 *
 * ESC_OK: every request's events were appended (status ESC_OK, result
 * filled), or every request's ids were stored already by one earlier call
 * (each result the original one with duplicate = true; nothing written).
 * ESC_ECONFLICT: some expectations failed and nothing was stored; err names
 * every such stream with its expected and actual version, and each
 * request's status and error say what became of it (ESC_ECONFLICT for a
 * failed expectation, ESC_EDELETED for a tombstoned stream, ESC_ECONFLICT
 * with "not appended" for the others). Other errors (ESC_EINVAL for bad
 * input or a stream given twice, ESC_EDUPLICATE for ids stored with other
 * content or for a partial retry, connection errors) are the status of
 * every request, and nothing was stored.
 *
 * ESC_EUNKNOWN: sent, then the reply was lost; it committed whole or not
 * at all. Settle it by calling again with the same requests (same ids):
 * it appends them all, or returns the original results as duplicates.
 * reqs is borrowed; the call fills its status, result and error fields.
 */
ESC_API esc_status esc_append_atomic(esc_store *store, esc_append_request *reqs,
                                     size_t n, esc_error *err);

/* ------------------------------------------------------------------------
 * Tags, queries of tagged events, and appends conditioned on a query
 * ------------------------------------------------------------------------ */

/*
 * A tag is "key:value": a key of 1..ESC_TAG_KEY_MAX bytes of
 * [A-Za-z0-9_.-], a ':', and a value of valid UTF-8 without control
 * characters, ESC_TAG_MAX bytes in all ("coupon:SAVE10",
 * "student:42"). An event has at most ESC_TAGS_MAX tags, each once.
 * Returns false and fills err (ESC_EINVAL; may be NULL) naming the byte
 * that is wrong otherwise. The store checks the same rule again.
 */
#define ESC_TAG_MAX 128
#define ESC_TAG_KEY_MAX 64
#define ESC_TAGS_MAX 16
ESC_API bool esc_tag_valid(const char *tag, esc_error *err);

/* One event's tags (borrowed): count strings, as esc_tag_valid says. */
typedef struct esc_tags {
  const char *const *items;
  size_t count;
} esc_tags;

/*
 * esc_append with tags: tags[i] (tags may be NULL: none at all) are the
 * tags of events[i]. Stored in the event_tags table, so reading by tag
 * (esc_read_tagged) does not scan the log; untagged appends never touch
 * it. One transaction, as esc_append; idempotent the same way, and a
 * retry must carry the same tags (ESC_EDUPLICATE otherwise). Tagged
 * appends bypass group commit: they take a lock per tag (see
 * esc_append_if) besides the stream's.
 */
ESC_API esc_status esc_append_tagged(esc_store *store, const char *stream_id,
                                     int64_t expected,
                                     const esc_event_data *events,
                                     const esc_tags *tags, size_t n,
                                     esc_append_result *result, esc_error *err);

/*
 * A query of tagged events: an event matches an item when it carries
 * every tag of the item (1..ESC_TAGS_MAX of them) and, when the item
 * names types, is of one of them; it matches the query when it matches
 * any item (1..ESC_TAG_QUERY_ITEMS_MAX). Every item needs a tag. Borrowed.
 */
#define ESC_TAG_QUERY_ITEMS_MAX 16
typedef struct esc_tag_query_item {
  const char *const *tags;
  size_t tag_count;
  const char *const *types; /* NULL / 0: any type */
  size_t type_count;
} esc_tag_query_item;

typedef struct esc_tag_query {
  const esc_tag_query_item *items;
  size_t count;
} esc_tag_query;

/*
 * A consistency token: what the reader's snapshot saw (a pg_snapshot as
 * text, "xmin:xmax:xip,..."). Opaque to callers; pass it to
 * esc_append_if. When the snapshot's text would not fit, the token
 * holds a coarser one (every transaction from xmin on counts as after
 * the read): still sound, it may only refuse more.
 */
#define ESC_TAG_QUERY_TOKEN_MAX 512

/*
 * Reads up to max (0: no limit) events matching q whose global position
 * is after after_global, in log order (global position), and the token
 * of the snapshot the read saw, into token. Uses the tag index: the cost
 * follows the events carrying the query's tags, not the log. To page,
 * read on from the last event's global position and keep the first
 * page's token (an older token is never less safe). out must be
 * initialized; its previous contents are released. ESC_EINVAL for a
 * query as esc_tag_query says it must not be.
 */
ESC_API esc_status esc_read_tagged(esc_store *store, const esc_tag_query *q,
                                   int64_t after_global, size_t max,
                                   esc_events *out,
                                   char token[ESC_TAG_QUERY_TOKEN_MAX],
                                   esc_error *err);

/*
 * esc_append_atomic with tags and a condition: appends every request in
 * one transaction only if no event matching `condition` was appended
 * after `token` (from esc_read_tagged of that query) — whatever its
 * global position, also one whose transaction began before the read and
 * committed after it. tags[i] (tags may be NULL; tags[i] may be NULL)
 * holds reqs[i].n esc_tags. condition and token NULL: no condition (an
 * atomic tagged append).
 *
 * ESC_ECONFLICT when the condition fails, nothing stored: err names the
 * query and the first conflicting event (id, type, stream, version,
 * position), every request's status is ESC_ECONFLICT. The other outcomes
 * are esc_append_atomic's, expectations included. Idempotent: a retry
 * with the same ids after ESC_EUNKNOWN returns the original results as
 * duplicates (the condition is not checked again: the events it would
 * find are the call's own).
 *
 * Correct under any concurrency at READ COMMITTED: every tagged append
 * and every conditional one takes transaction-scoped locks on its tags
 * and its query's tags, in one order, before it checks or writes;
 * appenders whose tags are disjoint do not wait for each other.
 * See docs/decisions/0022-tags-and-conditional-appends.md.
 */
ESC_API esc_status esc_append_if(esc_store *store,
                                 const esc_tag_query *condition,
                                 const char *token, esc_append_request *reqs,
                                 const esc_tags *const *tags, size_t n,
                                 esc_error *err);

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

typedef enum esc_direction { ESC_FORWARD = 0, ESC_BACKWARD = 1 } esc_direction;

/*
 * Reads up to max events of one stream starting at stream version from
 * (inclusive; 0 means the first event forward, the last one backward).
 * ESC_ENOTFOUND when the stream does not exist, ESC_EDELETED when it is
 * tombstoned. out must be initialized; its previous contents are released.
 */
ESC_API esc_status esc_read_stream(esc_store *store, const char *stream_id,
                                   int64_t from, esc_direction dir, size_t max,
                                   esc_events *out, esc_error *err);

/*
 * Reads up to max events after position `after`, in subscription order,
 * from one category (category != NULL) or from $all (NULL). Only events of
 * transactions older than every transaction still running are returned, so
 * a reader that continues from out->next never skips an event, even when
 * writers commit out of order. An empty batch means "nothing more yet".
 */
ESC_API esc_status esc_read_all(esc_store *store, const char *category,
                                esc_position after, size_t max, esc_events *out,
                                esc_error *err);

/*
 * esc_read_all in two halves, so the server reads the next page while the
 * caller works on this one (projection workers do). esc_read_all_send
 * sends the read and returns at once; esc_read_all_receive waits for it
 * and fills out as esc_read_all would. One read may be in flight per store:
 * any other call on the store (a second send included) first waits for it
 * and throws its result away. ESC_EINVAL from receive when nothing was sent.
 */
ESC_API esc_status esc_read_all_send(esc_store *store, const char *category,
                                     esc_position after, size_t max,
                                     esc_error *err);
ESC_API esc_status esc_read_all_receive(esc_store *store, esc_events *out,
                                        esc_error *err);

/*
 * esc_read_all_send with a byte budget as well as an event count, so that
 * what a page holds in memory is bounded however big the events are: the
 * page ends before the event that would take the data and metadata bytes
 * of the page beyond max_bytes, but always holds at least one event (a
 * single event larger than the budget comes alone, so a reader never
 * stalls on it). out->next works as for esc_read_all. max_bytes 0: no byte
 * budget, the same as esc_read_all_send. Received with
 * esc_read_all_receive.
 */
ESC_API esc_status esc_read_all_send_bounded(esc_store *store,
                                             const char *category,
                                             esc_position after, size_t max,
                                             size_t max_bytes, esc_error *err);

/*
 * The newest position a subscriber of $all can read up to now (START when
 * nothing is readable). One index probe: cheap enough to call per batch.
 */
ESC_API esc_status esc_store_head(esc_store *store, esc_position *out,
                                  esc_error *err);

/* ------------------------------------------------------------------------
 * Logging: one format for every long-running esc program
 * ------------------------------------------------------------------------ */

typedef enum esc_log_level {
  ESC_LOG_DEBUG = 0,
  ESC_LOG_INFO = 1,
  ESC_LOG_WARN = 2,
  ESC_LOG_ERROR = 3
} esc_log_level;

typedef enum esc_log_format {
  ESC_LOG_HUMAN = 0, /* "2026-12-07T12:00:00.123Z info orders/0: ..." */
  ESC_LOG_JSON = 1   /* one JSON object per line */
} esc_log_format;

/*
 * What a record is about; every member may be left empty. With event
 * set, the record carries its id, stream, version and position, and the
 * correlation and causation ids of its metadata.
 */
typedef struct esc_log_context {
  const char *component; /* the program or part: "order-worker", "worker" */
  const char *consumer;  /* a projection's, subscription's or process's name */
  const char *consumer_kind; /* "projection", "subscription", "process" */
  int partition;             /* < 0: none */
  const esc_recorded_event *event;
} esc_log_context;

#define ESC_LOG_CONTEXT_INIT                                                   \
  { NULL, NULL, NULL, -1, NULL }

/*
 * Writes one record: to stderr unless esc_log_set_sink said otherwise, in
 * the format of ESC_LOG_FORMAT ("json" or "human", the default) unless
 * esc_log_set_format said otherwise. Records below ESC_LOG_LEVEL (debug,
 * info, warn, error; default info) are dropped. One call, one line; safe
 * from any thread (each line is written whole).
 */
ESC_API void esc_log(esc_log_level level, const esc_log_context *ctx,
                     const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

ESC_API void esc_log_set_format(esc_log_format format);
/* Where lines go (each without its newline); NULL: stderr again. */
ESC_API void esc_log_set_sink(void (*sink)(void *userdata, const char *line),
                              void *userdata);

/* ------------------------------------------------------------------------
 * Client-side figures: what this process's appends took
 * ------------------------------------------------------------------------ */

/*
 * Latency histograms share one set of bucket bounds, in seconds; a
 * histogram has a bucket per bound and one beyond the last (+Inf).
 */
#define ESC_LATENCY_BUCKETS 13
ESC_API extern const double esc_latency_bounds[ESC_LATENCY_BUCKETS];

typedef struct esc_latency {
  uint64_t buckets[ESC_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
  uint64_t count;
  double sum_s;
} esc_latency;

/*
 * Every esc_append and esc_append_many call of this process (all stores,
 * all threads) since it started: how long each took (validation, the
 * round trip, the cold path), and how they ended. Counted with relaxed
 * atomics: cheap beside a round trip, never a lock.
 */
typedef struct esc_append_metrics {
  esc_latency duration;
  uint64_t conflicts;  /* appends refused by a concurrent writer */
  uint64_t duplicates; /* requests found stored already (idempotent) */
  uint64_t failures;   /* calls that failed otherwise */
} esc_append_metrics;

ESC_API void esc_append_metrics_read(esc_append_metrics *out);

/*
 * Turns this process's client-side figures on or off (all threads, at
 * once): esc_append_metrics and <esc/command.h>'s esc_command_metrics.
 * On by default; off, appends and commands record nothing (what was
 * counted before stays readable). It exists so that their cost can be
 * measured (esc-bench append-8w-metrics); it is small beside a round
 * trip, so leave them on.
 */
ESC_API void esc_client_metrics_enable(bool on);
ESC_API bool esc_client_metrics_enabled(void);

/*
 * The newest committed event's global position, readable or not (0: the
 * log is empty): what a catch-up is measured to.
 */
ESC_API esc_status esc_store_newest(esc_store *store, int64_t *global,
                                    esc_error *err);

/*
 * Whether every committed event at or before global position `through` is
 * readable by subscribers: a transaction still open elsewhere holds later
 * commits behind the horizon (docs/concepts.md).
 */
ESC_API esc_status esc_store_readable_through(esc_store *store,
                                              int64_t through, bool *yes,
                                              esc_error *err);

/* What a subscriber has yet to read of one stream (or of all, as one). */
typedef struct esc_backlog_stream {
  const char *stream_id; /* "" when not counted per stream */
  int64_t events;
  double oldest_age_s; /* age of the oldest of them, in seconds */
} esc_backlog_stream;

typedef struct esc_backlog {
  esc_backlog_stream *streams; /* count entries; one block, see release */
  size_t count;
  int64_t events;      /* the sum over streams */
  double oldest_age_s; /* the oldest over streams */
  int64_t last_global; /* the newest global position counted; 0: none */
  bool capped;         /* esc_store_backlog_upto stopped at its bound: the
                          counts are of the oldest max_events only */
} esc_backlog;

/*
 * The readable events after `after` in the categories (NULL-terminated;
 * NULL: every category): a subscriber's lag. per_stream counts each
 * stream apart, so a caller that splits streams into partitions can sum
 * its own; else one entry holds the total. Release with
 * esc_backlog_release (also after a failure).
 */
ESC_API esc_status esc_store_backlog(esc_store *store,
                                     const char *const *categories,
                                     const esc_position *after,
                                     bool per_stream, esc_backlog *out,
                                     esc_error *err);
/*
 * esc_store_backlog over the oldest max_events readable events at most
 * (in subscription order), so that its cost stays bounded however far
 * behind the subscriber is: monitoring calls it on every scrape. When
 * more follow, out->capped is set; the oldest age is that of the events
 * counted, which come first, and a caller can estimate the rest from the
 * positions: last_global against esc_store_newest.
 * max_events 0: no bound.
 */
ESC_API esc_status esc_store_backlog_upto(esc_store *store,
                                          const char *const *categories,
                                          const esc_position *after,
                                          bool per_stream, int64_t max_events,
                                          esc_backlog *out, esc_error *err);
ESC_API void esc_backlog_release(esc_backlog *b);

/*
 * Reads the one event with this id into out (count 1), wherever it is.
 * ESC_ENOTFOUND when no event has it.
 */
ESC_API esc_status esc_read_event(esc_store *store, const esc_uuid *id,
                                  esc_events *out, esc_error *err);

/*
 * An event's id and where it is, or was: truncation keeps the ids and
 * positions of the events it removes, so a retry of what stored them
 * (same ids) can still find them.
 */
typedef struct esc_event_ref {
  esc_uuid id;
  int64_t stream_version;
  esc_position position;
} esc_event_ref;

/*
 * Reads the refs of up to max events of a stream from version `from` on,
 * in version order, removed ones included, into out[max]; *count gets how
 * many. An unknown stream has none (ESC_OK, *count 0).
 */
ESC_API esc_status esc_read_event_ids(esc_store *store, const char *stream_id,
                                      int64_t from, esc_event_ref *out,
                                      size_t max, size_t *count,
                                      esc_error *err);

/* ------------------------------------------------------------------------
 * Command outcomes: what an earlier execution of a command id did
 * ------------------------------------------------------------------------ */

typedef struct esc_command_outcome {
  bool found;    /* the command was executed before */
  bool appended; /* it stored events (first_event is or was stored) */
  char stream_id[ESC_STREAM_ID_MAX + 1];
  /* appended: the version of its first event; else the version it was
   * decided at */
  int64_t version;
  int domain_code; /* not appended: > 0 rejected, 0 decided no change */
  char domain_msg[256];
} esc_command_outcome;

/*
 * Looks up a command by its id and the id of the first event it would
 * store (the command layer derives event ids from the command id). Fills
 * *out; out->found false when it was never executed.
 */
ESC_API esc_status esc_command_outcome_read(esc_store *store,
                                            const esc_uuid *command_id,
                                            const esc_uuid *first_event_id,
                                            esc_command_outcome *out,
                                            esc_error *err);

/*
 * Records that a command stored no events: rejected (domain_code > 0,
 * with its message) or decided no change (0), at the stream version it
 * was decided at. The first outcome recorded for a command id stays; this
 * one is then ignored (ESC_OK). ESC_ECONFLICT, recording nothing, when
 * the stream is no longer at `version`: the decision was made on a state
 * that has moved on, so decide again.
 */
ESC_API esc_status esc_command_outcome_write(
    esc_store *store, const esc_uuid *command_id, const char *stream_id,
    int64_t version, int domain_code, const char *domain_msg, esc_error *err);

/* ------------------------------------------------------------------------
 * Snapshots: a stream's folded state at a version, kept beside the log
 * ------------------------------------------------------------------------ */

/* A snapshot as read back (caller memory: ESC_SNAPSHOT_INIT / release). */
typedef struct esc_snapshot {
  int64_t version;       /* the stream version the state includes */
  int32_t state_version; /* the schema of the state's encoding */
  const void *data;      /* valid until esc_snapshot_release */
  size_t data_len;
  void *priv_;
} esc_snapshot;

#define ESC_SNAPSHOT_INIT                                                      \
  { 0, 0, NULL, 0, NULL }

ESC_API void esc_snapshot_release(esc_snapshot *snap);

/*
 * Stores a snapshot of a stream, replacing an older one; a snapshot at a
 * version not newer than the stored one is ignored. Snapshots are a cache:
 * they can be dropped at any time and are never part of the log.
 */
ESC_API esc_status esc_snapshot_write(esc_store *store, const char *stream_id,
                                      int64_t version, int32_t state_version,
                                      const void *data, size_t len,
                                      esc_error *err);

/* Reads the stream's snapshot; ESC_ENOTFOUND when there is none. */
ESC_API esc_status esc_snapshot_read(esc_store *store, const char *stream_id,
                                     esc_snapshot *out, esc_error *err);

/* ------------------------------------------------------------------------
 * Following: subscription reads that wait
 * ------------------------------------------------------------------------ */

/*
 * Waits until events after `after` may be readable in category (NULL: $all)
 * or until timeout_ms passes. It registers this connection as a waiter,
 * LISTENs, checks once more, then sleeps; appends notify only while someone
 * is registered. A wake-up is a hint: read again from your checkpoint.
 * poll_ms bounds each sleep (covers a missed wake-up and a horizon held
 * back by another transaction); 0 means 1000. Returns ESC_OK when woken or
 * when events are readable, ESC_ETIMEDOUT when the timeout passed. A
 * server that stops answering during the wait is ESC_ECONN here (the
 * message says it timed out), so that ESC_ETIMEDOUT means only "no events
 * yet" and a follower knows to reconnect.
 */
ESC_API esc_status esc_wait_for_events(esc_store *store, const char *category,
                                       esc_position after, int timeout_ms,
                                       int poll_ms, esc_error *err);

/* ------------------------------------------------------------------------
 * Inspection
 * ------------------------------------------------------------------------ */

typedef struct esc_stream_info {
  char stream_id[ESC_STREAM_ID_MAX + 1];
  int64_t version;          /* last stream version */
  int64_t truncated_before; /* versions below this were removed; 0 if none */
  bool tombstoned;
  int64_t updated_at_us;
} esc_stream_info;

/* Information on one stream; ESC_ENOTFOUND when it does not exist. */
ESC_API esc_status esc_stream_get(esc_store *store, const char *stream_id,
                                  esc_stream_info *out, esc_error *err);

/*
 * Lists streams (of one category, or all for NULL) ordered by id, starting
 * after `after_id` (NULL: from the start). Fills up to max entries of out
 * and sets *count.
 */
ESC_API esc_status esc_stream_list(esc_store *store, const char *category,
                                   const char *after_id, esc_stream_info *out,
                                   size_t max, size_t *count, esc_error *err);

/*
 * The store's identity: a random id `esc migrate` made when it created the
 * store. It tells stores apart where names do not: two schemas, two
 * databases, or a store dropped and created again under the same name.
 */
ESC_API esc_status esc_store_identity(esc_store *store, esc_uuid *out,
                                      esc_error *err);

typedef struct esc_store_stats {
  int64_t events;
  int64_t streams;
  esc_position head;  /* newest position a subscriber can read up to */
  int64_t max_global; /* highest global position stored, visible or not */
  /* The oldest running transaction that holds the subscription horizon
   * back (pid 0 when none): */
  int holder_pid;
  double holder_age_s;
  char holder_state[32];
  char holder_query[160];
  char holder_app[64];
} esc_store_stats;

ESC_API esc_status esc_store_stats_get(esc_store *store, esc_store_stats *out,
                                       esc_error *err);

/*
 * esc_store_stats_get without the counting: the head, the highest position
 * and the horizon holder, with events and streams set to -1. Index
 * lookups only, cheap enough for a metrics scrape every few seconds.
 */
ESC_API esc_status esc_store_health(esc_store *store, esc_store_stats *out,
                                    esc_error *err);

/* ------------------------------------------------------------------------
 * Retention: explicit, logged removal of events
 * ------------------------------------------------------------------------ */

/*
 * Removes the events of a stream below version `before` and records the
 * operation (who, when, how many) in the retention log. The stream keeps its
 * version; the removed events' ids and positions are kept, so idempotent
 * retries of what stored them still find them. *removed (may be NULL) gets
 * the count. Needs the owner role.
 *
 * A stream's state can only be loaded once its early events are gone from
 * a snapshot at or after the last removed version, so without one the
 * truncation is refused with ESC_ETRUNCATED and nothing is removed.
 * esc_truncate_stream (<esc/command.h>) takes that snapshot first.
 */
ESC_API esc_status esc_stream_truncate(esc_store *store, const char *stream_id,
                                       int64_t before, const char *reason,
                                       int64_t *removed, esc_error *err);

typedef struct esc_truncate_options {
  const char *reason; /* kept in the retention log; may be NULL */
  /* Truncate even when no snapshot covers the removed versions: loading
   * the stream's state then fails (ESC_ETRUNCATED) for good. Logged with
   * the reason prefixed "[forced] ". */
  bool force;
} esc_truncate_options;

#define ESC_TRUNCATE_OPTIONS_INIT                                              \
  { NULL, false }

/* esc_stream_truncate with options (NULL: the defaults). */
ESC_API esc_status esc_stream_truncate_opts(esc_store *store,
                                            const char *stream_id,
                                            int64_t before,
                                            const esc_truncate_options *opts,
                                            int64_t *removed, esc_error *err);

/*
 * Removes all events of a stream and marks it deleted for good: later
 * appends fail with ESC_EDELETED. Logged like truncation.
 */
ESC_API esc_status esc_stream_tombstone(esc_store *store, const char *stream_id,
                                        const char *reason, int64_t *removed,
                                        esc_error *err);

/* ------------------------------------------------------------------------
 * Retention policies: $maxAge / $maxCount per stream or category
 * ------------------------------------------------------------------------ */

/*
 * A policy says how long and how many events a stream keeps. It targets
 * one stream or every stream of a category; a stream's own policy replaces
 * its category's (they are not merged). Setting one removes nothing: only
 * esc_retention_run does, by truncation (esc_stream_truncate's path, so
 * each removal is in the retention log with the policy as its reason).
 * A run removes the longest prefix of a stream that either limit removes,
 * but max_age only a prefix whose every event is older than the age, and
 * never the stream's last event. Streams keep their versions.
 */
typedef enum esc_retention_scope {
  ESC_RETENTION_STREAM = 0,
  ESC_RETENTION_CATEGORY = 1
} esc_retention_scope;

#define ESC_RETENTION_MAX_AGE_S INT64_C(3155760000) /* 100 years */

typedef struct esc_retention_policy {
  esc_retention_scope scope;
  char target[ESC_STREAM_ID_MAX + 1]; /* a stream id or a category */
  int64_t max_age_s; /* 1..ESC_RETENTION_MAX_AGE_S; 0: no age limit */
  int64_t max_count; /* >= 1; 0: no count limit */
  /* Filled when read back (ignored by esc_retention_policy_set): */
  char set_by[64];   /* the login that set it */
  int64_t set_at_us; /* when, microseconds since the Unix epoch */
} esc_retention_policy;

#define ESC_RETENTION_POLICY_INIT                                              \
  { ESC_RETENTION_STREAM, "", 0, 0, "", 0 }

/*
 * Sets (replaces) the policy of p->scope / p->target, recording who and
 * when. ESC_EINVAL naming the field for a bad target, an age or count out
 * of range, or neither limit given; ESC_ENOTFOUND when the stream does not
 * exist (or is tombstoned) or the category has no streams. Nothing changes
 * on failure.
 */
ESC_API esc_status esc_retention_policy_set(esc_store *store,
                                            const esc_retention_policy *p,
                                            esc_error *err);

/* Removes a policy; ESC_ENOTFOUND when there is none for it. */
ESC_API esc_status esc_retention_policy_remove(esc_store *store,
                                               esc_retention_scope scope,
                                               const char *target,
                                               esc_error *err);

/*
 * Lists policies ordered by target, then scope (category first), starting
 * after `after` (NULL: from the start; else the last one of the previous
 * page). Fills up to max entries of out and sets *count.
 */
ESC_API esc_status esc_retention_policy_list(esc_store *store,
                                             const esc_retention_policy *after,
                                             esc_retention_policy *out,
                                             size_t max, size_t *count,
                                             esc_error *err);

/* "max-age 30d, max-count 100" (the largest exact unit of w, d, h, m, s)
 * into out, NUL-terminated and cut to size - 1 bytes. */
ESC_API void esc_retention_policy_describe(const esc_retention_policy *p,
                                           char *out, size_t size);

/* One stream's part of a run. */
typedef struct esc_retention_item {
  char stream_id[ESC_STREAM_ID_MAX + 1];
  esc_retention_policy policy; /* the one that applies */
  int64_t version;             /* the stream's version */
  int64_t before;              /* events below this version go */
  int64_t events; /* dry run: how many would go; else how many went */
  /* No snapshot covers the versions it would remove (see
   * esc_stream_truncate): left alone, events 0, unless the run is forced.
   * A dry run says what a run would refuse. */
  bool refused;
} esc_retention_item;

/* Called with each event to go, before anything is removed. A status
 * other than ESC_OK (with err filled) stops the run: nothing is removed. */
typedef esc_status (*esc_retention_archive_fn)(void *userdata,
                                               const esc_recorded_event *e,
                                               esc_error *err);
/* Called once every event went to archive_event, before the first
 * removal: make the archive durable (fsync). Failing stops the run as
 * above. */
typedef esc_status (*esc_retention_sync_fn)(void *userdata, esc_error *err);
/* Called per stream: planned (dry run), truncated or refused. */
typedef void (*esc_retention_item_fn)(void *userdata,
                                      const esc_retention_item *item);

typedef struct esc_retention_run_options {
  bool dry_run;                          /* report, remove nothing */
  esc_retention_archive_fn archive_event; /* NULL: no archive */
  esc_retention_sync_fn archive_sync;     /* may be NULL */
  esc_retention_item_fn on_item;          /* may be NULL */
  void *userdata;
  /* Truncate also the streams no snapshot covers, so that their state
   * can never be loaded again (esc_stream_truncate_opts's force). For
   * streams nothing loads a state from, such as logs and inputs. */
  bool force;
} esc_retention_run_options;

#define ESC_RETENTION_RUN_OPTIONS_INIT                                         \
  { false, NULL, NULL, NULL, NULL, false }

typedef struct esc_retention_report {
  int64_t streams;  /* streams truncated (dry run: that would be) */
  int64_t events;   /* removed (dry run: that would be) */
  int64_t archived; /* events handed to archive_event */
  int64_t refused;  /* streams left alone: no snapshot covers them */
} esc_retention_report;

/*
 * Applies every policy now (opts NULL: the defaults). It plans first (per
 * stream: the policy, the cut-off version, how many events), then, with
 * an archive, hands every event to go to archive_event and calls
 * archive_sync, and only then truncates stream by stream, each its own
 * transaction, each logged with a reason naming the policy. Events
 * appended meanwhile are never removed: the cut-offs are those planned.
 * On a failure while truncating, the streams done stay done (report says
 * how far it got) and the status says what failed. Needs the owner role.
 *
 * A stream whose removed versions no snapshot covers is refused, as
 * esc_stream_truncate refuses it: it is neither archived nor truncated,
 * the run goes on with the others, and then returns ESC_ETRUNCATED naming
 * the first refused stream and how many there were (report and on_item
 * say which). opts->force truncates them too. A dry run reports them
 * (item->refused) and returns ESC_OK.
 */
ESC_API esc_status esc_retention_run(esc_store *store,
                                     const esc_retention_run_options *opts,
                                     esc_retention_report *report,
                                     esc_error *err);

/* ------------------------------------------------------------------------
 * Checking the log: stream order in subscription order
 * ------------------------------------------------------------------------ */

/*
 * An event that subscribers read before the previous version of its stream
 * (prev_position is after position). Stores written before migration 5 can
 * hold these; since then every append path prevents them.
 */
typedef struct esc_order_inversion {
  char stream_id[ESC_STREAM_ID_MAX + 1];
  int64_t version;            /* read before version - 1 */
  esc_position position;      /* this event's */
  esc_position prev_position; /* version - 1's: later in subscription order */
} esc_order_inversion;

typedef struct esc_order_report {
  int64_t inversions; /* events read before their predecessor */
  int64_t streams;    /* streams with at least one */
  int64_t checked_at_us; /* when the recorded check ran (0: never) */
} esc_order_report;

/*
 * Scans the whole log for inversions: *report gets the totals, out the
 * first max of them by stream and version (*count how many were filled;
 * out may be NULL with max 0). The totals are recorded in the store, where
 * esc_order_recorded and projection workers find them; recording needs the
 * owner role, and without it the scan still reports (and records nothing).
 * One pass over the log: an admin command, not a per-request call.
 */
ESC_API esc_status esc_order_check(esc_store *store, esc_order_report *report,
                                   esc_order_inversion *out, size_t max,
                                   size_t *count, esc_error *err);

/* What the last esc_order_check (or migration 5) recorded: cheap. */
ESC_API esc_status esc_order_recorded(esc_store *store,
                                      esc_order_report *report,
                                      esc_error *err);

/*
 * Puts one stream's events back in version order within the positions they
 * occupy (the k-th lowest position goes to version k), logged in
 * <schema>.order_repairs; nothing of other streams moves. Projections that
 * read past the stream's first moved position must be rebuilt. *moved (may
 * be NULL) gets the events moved. Needs the owner role.
 */
ESC_API esc_status esc_order_repair(esc_store *store, const char *stream_id,
                                    int64_t *moved, esc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ESC_STORE_H */

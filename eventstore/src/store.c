/*
 * Opening and closing a store, and the prepared statements every other
 * file in the event store uses.
 */
#include "store_int.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_PG_URL "postgresql://esc@127.0.0.1:54329/esc"
#define SCHEMA_NAME_MAX 40

/* Type OIDs of parameters, fixed by PostgreSQL's catalog. */
enum {
  OID_INT4 = 23,
  OID_INT8 = 20,
  OID_TEXT = 25,
  OID_XID8 = 5069,
  OID_UUID = 2950,
  OID_BYTEA = 17,
  OID_UUID_ARRAY = 2951,
  OID_TEXT_ARRAY = 1009,
  OID_INT4_ARRAY = 1007,
  OID_BYTEA_ARRAY = 1001,
  OID_INT8_ARRAY = 1016
};

/* Columns of every event read, in the order read.c decodes them. */
#define EVENT_COLUMNS                                                          \
  "global_position, tx_id, stream_id, stream_version, event_id, "              \
  "event_type, schema_version, data, metadata, recorded_at"

/* Visible to subscribers: every transaction below the horizon has ended. */
#define BELOW_HORIZON "tx_id < pg_snapshot_xmin(pg_current_snapshot())"

/*
 * The append fast path: <schema>.append_fast() (migration 12) takes the
 * stream's lock, bumps the stream row when it matches (checking the
 * expected version in the same step), inserts the events and notifies a
 * registered waiter. When the row does not match (a conflict, a
 * tombstone, a retry) it inserts nothing, base is NULL, and the caller
 * falls back to <schema>.append(), which sorts out why. Both are SECURITY
 * DEFINER: the writer role has no rights on the tables themselves.
 * Result columns: base, first and last global position, tx id, notified.
 */
#define APPEND_FAST_RESULT                                                     \
  "SELECT base, first_global, last_global, tx_id, notified"

/*
 * A page of $all (or of a category: `where`) cut by a byte budget as well
 * as by $3 events: it ends before the event that would take the page's
 * data and metadata beyond $4 bytes, but always holds the first event,
 * however big, so that a reader never stalls on one. octet_length reads
 * a TOASTed value's size without fetching it, so the events past the cut
 * cost an index step each and are never sent. The window runs in the
 * index's order: no sort, and the LIMIT stops the scan.
 */
#define READ_BOUNDED(where)                                                    \
  "SELECT " EVENT_COLUMNS " FROM (SELECT " EVENT_COLUMNS ","                   \
  " sum(octet_length(data) + coalesce(octet_length(metadata), 0))"             \
  " OVER w AS upto, row_number() OVER w AS n FROM @S@.events"                  \
  " WHERE " where " AND (tx_id, global_position) > ($1, $2)"                   \
  " AND " BELOW_HORIZON                                                        \
  " WINDOW w AS (ORDER BY tx_id, global_position ROWS UNBOUNDED PRECEDING)"    \
  " ORDER BY tx_id, global_position LIMIT $3) page"                            \
  " WHERE upto <= $4 OR n = 1 ORDER BY tx_id, global_position"

struct stmt_def {
  const char *name;
  const char *sql; /* @S@ stands for the quoted schema, @C@ for the channel */
  int nparams;
  Oid types[15];
};

static const struct stmt_def stmt_defs[ESC__STMT_COUNT] = {
    [ESC__STMT_APPEND_FAST] = {"esc_append_fast",
                               APPEND_FAST_RESULT
                               " FROM @S@.append_fast($1, $2, $3, $4, $5,"
                               " $6, $7)",
                               7,
                               {OID_TEXT, OID_INT8, OID_UUID_ARRAY,
                                OID_TEXT_ARRAY, OID_INT4_ARRAY, OID_BYTEA_ARRAY,
                                OID_BYTEA_ARRAY}},
    /* One event: scalar parameters, no arrays to build or unnest. */
    [ESC__STMT_APPEND_FAST1] = {"esc_append_fast1",
                                APPEND_FAST_RESULT
                                " FROM @S@.append_fast1($1, $2, $3, $4, $5,"
                                " $6, $7)",
                                7,
                                {OID_TEXT, OID_INT8, OID_UUID, OID_TEXT,
                                 OID_INT4, OID_BYTEA, OID_BYTEA}},
    [ESC__STMT_APPEND] = {"esc_append",
                          "SELECT status, first_version, last_version, "
                          "tx_id, first_global, last_global, actual_version "
                          "FROM @S@.append($1, $2, $3, $4, $5, $6, $7)",
                          7,
                          {OID_TEXT, OID_INT8, OID_UUID_ARRAY, OID_TEXT_ARRAY,
                           OID_INT4_ARRAY, OID_BYTEA_ARRAY, OID_BYTEA_ARRAY}},
    [ESC__STMT_READ_FWD] = {"esc_read_fwd",
                            "SELECT " EVENT_COLUMNS " FROM @S@.events "
                            "WHERE stream_id = $1 AND stream_version >= $2 "
                            "ORDER BY stream_version LIMIT $3",
                            3,
                            {OID_TEXT, OID_INT8, OID_INT8}},
    [ESC__STMT_READ_BWD] = {"esc_read_bwd",
                            "SELECT " EVENT_COLUMNS " FROM @S@.events "
                            "WHERE stream_id = $1 AND stream_version <= $2 "
                            "ORDER BY stream_version DESC LIMIT $3",
                            3,
                            {OID_TEXT, OID_INT8, OID_INT8}},
    [ESC__STMT_READ_ALL] = {"esc_read_all",
                            "SELECT " EVENT_COLUMNS " FROM @S@.events "
                            "WHERE (tx_id, global_position) > ($1, $2) "
                            "AND " BELOW_HORIZON " "
                            "ORDER BY tx_id, global_position LIMIT $3",
                            3,
                            {OID_XID8, OID_INT8, OID_INT8}},
    [ESC__STMT_READ_CATEGORY] = {"esc_read_category",
                                 "SELECT " EVENT_COLUMNS " FROM @S@.events "
                                 "WHERE split_part(stream_id, '-', 1) = $4 "
                                 "AND (tx_id, global_position) > ($1, $2) "
                                 "AND " BELOW_HORIZON " "
                                 "ORDER BY tx_id, global_position LIMIT $3",
                                 4,
                                 {OID_XID8, OID_INT8, OID_INT8, OID_TEXT}},
    [ESC__STMT_READ_ALL_BOUNDED] = {"esc_read_all_bounded",
                                    READ_BOUNDED("TRUE"),
                                    4,
                                    {OID_XID8, OID_INT8, OID_INT8, OID_INT8}},
    [ESC__STMT_READ_CATEGORY_BOUNDED] =
        {"esc_read_category_bounded",
         READ_BOUNDED("split_part(stream_id, '-', 1) = $5"),
         5,
         {OID_XID8, OID_INT8, OID_INT8, OID_INT8, OID_TEXT}},
    /* Group commit (migration 18): many requests, one transaction, one
     * row per request with <schema>.append()'s columns and, for a request
     * that failed, its SQLSTATE and message. */
    [ESC__STMT_APPEND_GROUP] = {"esc_append_group",
                                "SELECT status, first_version, last_version,"
                                " tx_id, first_global, last_global,"
                                " actual_version, err_state, err_message"
                                " FROM @S@.append_group($1, $2, $3, $4, $5,"
                                " $6, $7, $8)",
                                8,
                                {OID_TEXT_ARRAY, OID_INT8_ARRAY,
                                 OID_INT4_ARRAY, OID_UUID_ARRAY, OID_TEXT_ARRAY,
                                 OID_INT4_ARRAY, OID_BYTEA_ARRAY,
                                 OID_BYTEA_ARRAY}},
    /* Atomic multi-stream append (migration 20): append_group's rows,
     * or an error when any request fails. */
    [ESC__STMT_APPEND_ATOMIC] = {"esc_append_atomic",
                                 "SELECT status, first_version, last_version,"
                                 " tx_id, first_global, last_global,"
                                 " actual_version, err_state, err_message"
                                 " FROM @S@.append_atomic($1, $2, $3, $4, $5,"
                                 " $6, $7, $8)",
                                 8,
                                 {OID_TEXT_ARRAY, OID_INT8_ARRAY,
                                  OID_INT4_ARRAY, OID_UUID_ARRAY,
                                  OID_TEXT_ARRAY, OID_INT4_ARRAY,
                                  OID_BYTEA_ARRAY, OID_BYTEA_ARRAY}},
    /* Tagged and conditional appends (migration 21): append_atomic's
     * arrays and rows, then the tags, the query and the token. */
    [ESC__STMT_APPEND_TAGGED] =
        {"esc_append_tagged",
         "SELECT status, first_version, last_version,"
         " tx_id, first_global, last_global,"
         " actual_version, err_state, err_message"
         " FROM @S@.append_tagged($1, $2, $3, $4, $5,"
         " $6, $7, $8, $9, $10, $11, $12, $13, $14,"
         " $15)",
         15,
         {OID_TEXT_ARRAY, OID_INT8_ARRAY, OID_INT4_ARRAY, OID_UUID_ARRAY,
          OID_TEXT_ARRAY, OID_INT4_ARRAY, OID_BYTEA_ARRAY, OID_BYTEA_ARRAY,
          OID_INT4_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_INT4_ARRAY,
          OID_TEXT_ARRAY, OID_INT4_ARRAY, OID_TEXT}},
    /* The events matching a query and, in the same statement (so the same
     * snapshot), the token of that snapshot; one row of NULL events when
     * none match. A snapshot too long for a token becomes "xmin:xmin:":
     * everything from xmin on counts as unseen, which is safe. */
    [ESC__STMT_READ_QUERY] =
        {"esc_read_tagged",
         "SELECT " EVENT_COLUMNS ", s.token FROM"
         " (SELECT CASE WHEN octet_length(c::text) < 512"
         " THEN c::text ELSE pg_snapshot_xmin(c)::text"
         " || ':' || pg_snapshot_xmin(c)::text || ':'"
         " END AS token FROM pg_current_snapshot() c) s"
         " LEFT JOIN LATERAL (SELECT " EVENT_COLUMNS
         " FROM @S@.events WHERE global_position IN"
         " (SELECT m FROM @S@.query_matches($1, $2, $3, $4, $5) m)"
         " ORDER BY global_position LIMIT $6) e ON true"
         " ORDER BY global_position",
         6,
         {OID_TEXT_ARRAY, OID_INT4_ARRAY, OID_TEXT_ARRAY, OID_INT4_ARRAY,
          OID_INT8, OID_INT8}},
    [ESC__STMT_STREAM_GET] = {"esc_stream_get",
                              "SELECT stream_id, version, truncated_before, "
                              "tombstoned, "
                              "(extract(epoch FROM updated_at) * 1e6)::int8 "
                              "FROM @S@.streams WHERE stream_id = $1",
                              1,
                              {OID_TEXT}},
    [ESC__STMT_WAIT_REGISTER] = {"esc_wait_register",
                                 "SELECT @S@.wait_register($1)",
                                 1,
                                 {OID_TEXT}},
    [ESC__STMT_WAIT_UNREGISTER] = {"esc_wait_unregister",
                                   "SELECT @S@.wait_unregister()",
                                   0,
                                   {0}},
    [ESC__STMT_HAS_EVENTS_ALL] = {"esc_has_events_all",
                                  "SELECT EXISTS (SELECT 1 FROM @S@.events "
                                  "WHERE (tx_id, global_position) > ($1, $2) "
                                  "AND " BELOW_HORIZON ")",
                                  2,
                                  {OID_XID8, OID_INT8}},
    [ESC__STMT_HAS_EVENTS_CATEGORY] =
        {"esc_has_events_category",
         "SELECT EXISTS (SELECT 1 FROM "
         "@S@.events WHERE split_part(stream_id, '-', 1) = $3 "
         "AND (tx_id, global_position) > "
         "($1, $2) AND " BELOW_HORIZON ")",
         3,
         {OID_XID8, OID_INT8, OID_TEXT}},
    [ESC__STMT_READ_BY_ID] = {"esc_read_by_id",
                              "SELECT " EVENT_COLUMNS " FROM @S@.events "
                              "WHERE event_id = $1",
                              1,
                              {OID_UUID}},
    [ESC__STMT_HEAD] = {"esc_head",
                        "SELECT tx_id, global_position FROM @S@.events"
                        " WHERE " BELOW_HORIZON
                        " ORDER BY tx_id DESC, global_position DESC LIMIT 1",
                        0,
                        {0}},
    [ESC__STMT_SNAPSHOT_WRITE] = {"esc_snapshot_write",
                                  "SELECT @S@.snapshot_write($1, $2, $3, $4)",
                                  4,
                                  {OID_TEXT, OID_INT8, OID_INT4, OID_BYTEA}},
    [ESC__STMT_SNAPSHOT_READ] = {"esc_snapshot_read",
                                 "SELECT stream_version, state_version, data"
                                 " FROM @S@.snapshots WHERE stream_id = $1",
                                 1,
                                 {OID_TEXT}},
};

const char *esc_default_pg_url(void) {
  const char *env = getenv("ESC_PG_URL");
  return env && *env ? env : DEFAULT_PG_URL;
}

const char *esc_store_schema(const esc_store *store) {
  return store->schema;
}

/* Schema names become part of identifiers and role names: keep them plain. */
static bool schema_name_valid(const char *s, esc_error *err) {
  size_t len = strlen(s);
  if (len == 0 || len > SCHEMA_NAME_MAX) {
    esc__fail(err, ESC_EINVAL, "schema name \"%s\" must be 1..%d bytes", s,
              SCHEMA_NAME_MAX);
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(islower(c) || c == '_' || (i > 0 && isdigit(c)))) {
      esc__fail(err, ESC_EINVAL,
                "schema name \"%s\": byte %zu is not allowed; use "
                "[a-z_][a-z0-9_]*",
                s, i);
      return false;
    }
  }
  return true;
}

static esc_status connect(esc_store *st, const char *conninfo,
                          const esc_store_options *opts, esc_error *err) {
  struct esc__conn_opts o = {opts->app_name, opts->connect_timeout_s, 0};
  esc_error local = ESC_ERROR_INIT;
  if (!err)
    err = &local; /* the code is needed even when the caller is not */
  esc_status rc = esc__timeout_ms(opts->timeout_ms, &st->timeout_ms, err);
  if (rc)
    return rc;
  o.timeout_ms = st->timeout_ms;
  /* Notices land in st->call: it lives as long as the connection. */
  st->conn = esc__pg_open(conninfo, &o, &st->call, err);
  if (!st->conn)
    return err->code;
  esc__call_begin(&st->call, st->conn, st->timeout_ms);
  return ESC_OK;
}

esc_store *esc_store_open(const char *conninfo, const esc_store_options *opts,
                          esc_error *err) {
  esc_store_options defaults = ESC_STORE_OPTIONS_INIT;
  if (!opts)
    opts = &defaults;
  const char *schema = opts->schema ? opts->schema : "esc";
  if (!schema_name_valid(schema, err))
    return NULL;

  esc_store *st = calloc(1, sizeof *st);
  if (!st) {
    esc__fail(err, ESC_ENOMEM, "open store: out of memory");
    return NULL;
  }
  st->max_event_size =
      opts->max_event_size ? opts->max_event_size : ESC_DEFAULT_MAX_EVENT_SIZE;
  st->group_commit = opts->group_commit;
  if (connect(st, conninfo ? conninfo : esc_default_pg_url(), opts, err))
    goto fail;

  size_t channel_len = strlen(schema) + sizeof "_events";
  st->schema = strdup(schema);
  st->channel = malloc(channel_len);
  st->schema_ident = PQescapeIdentifier(st->conn, schema, strlen(schema));
  if (!st->schema || !st->channel || !st->schema_ident) {
    esc__fail(err, ESC_ENOMEM, "open store: out of memory");
    goto fail;
  }
  snprintf(st->channel, channel_len, "%s_events", schema);
  esc__clear(err);
  return st;

fail:
  esc_store_free(st);
  return NULL;
}

void esc_store_free(esc_store *store) {
  if (!store)
    return;
  PQfinish(store->conn);
  free(store->schema);
  free(store->channel);
  PQfreemem(store->schema_ident);
  free(store);
}

/* Waits for a read nobody received and drops it: the connection must be
 * idle before anything else is sent on it. */
static void drop_read_in_flight(esc_store *st) {
  if (!st->read_in_flight)
    return;
  st->read_in_flight = false;
  esc__call_rearm(&st->call);
  PQclear(esc__call_finish(&st->call));
}

/* False when the connection is broken, or the server closed it while it
 * was idle (a shutdown, pg_terminate_backend): what it sent then is
 * waiting on the socket, so look before sending anything. */
static bool conn_alive(PGconn *conn) {
  /* The goodbye message and the end of the stream may need a read each:
   * libpq sees the closed socket only on the read after the message. */
  for (int reads = 0; reads < 4 && PQstatus(conn) == CONNECTION_OK; reads++) {
    struct pollfd p = {PQsocket(conn), POLLIN, 0};
    if (poll(&p, 1, 0) <= 0 || !PQconsumeInput(conn))
      break;
  }
  return PQstatus(conn) == CONNECTION_OK;
}

esc_status esc__ensure_conn(esc_store *st, esc_error *err) {
  drop_read_in_flight(st);
  if (conn_alive(st->conn))
    return ESC_OK;
  /* A broken session lost its prepared statements and LISTEN with it. */
  PQreset(st->conn);
  memset(st->prepared, 0, sizeof st->prepared);
  st->listening = false;
  esc__call_begin(&st->call, st->conn, st->timeout_ms);
  if (PQstatus(st->conn) != CONNECTION_OK)
    return esc__fail_connect(err, st->conn, "reconnect to PostgreSQL");
  return esc__pg_session(st->conn, st->timeout_ms, err);
}

PGresult *esc__exec(esc_store *st, const struct esc__query *q) {
  return esc__call_run(&st->call, st->conn, st->timeout_ms, q);
}

PGresult *esc__exec_by_stream(esc_store *st, const char *stmt,
                              const char *stream_id) {
  const char *values[] = {stream_id};
  int lengths[] = {(int)strlen(stream_id)};
  int formats[] = {1};
  return esc__exec(st, &(struct esc__query){.stmt = stmt,
                                            .n = 1,
                                            .values = values,
                                            .lengths = lengths,
                                            .formats = formats,
                                            .binary = 1});
}

esc_status esc__fail_store(esc_error *err, const esc_store *st,
                           const PGresult *res, const char *what) {
  return esc__fail_call(err, &st->call, res, what);
}

/* Replaces @S@ by the quoted schema and @C@ by the channel as a literal (its
 * characters are those of a validated schema name plus "_events"). */
static bool expand(char *out, size_t size, const char *sql,
                   const char *schema_ident, const char *channel) {
  size_t n = 0;
  for (const char *p = sql; *p; p++) {
    char piece[128];
    const char *add = piece;
    if (strncmp(p, "@S@", 3) == 0) {
      add = schema_ident;
      p += 2;
    } else if (strncmp(p, "@C@", 3) == 0) {
      snprintf(piece, sizeof piece, "'%s'", channel);
      p += 2;
    } else {
      piece[0] = *p;
      piece[1] = '\0';
    }
    size_t len = strlen(add);
    if (n + len >= size)
      return false;
    memcpy(out + n, add, len);
    n += len;
  }
  out[n] = '\0';
  return true;
}

const char *esc__stmt_name(enum esc__stmt s) {
  return stmt_defs[s].name;
}

esc_status esc__prepare(esc_store *st, enum esc__stmt s, const char **name,
                        esc_error *err) {
  const struct stmt_def *def = &stmt_defs[s];
  *name = def->name;
  esc_status rc = esc__ensure_conn(st, err);
  if (rc || st->prepared[s])
    return rc;

  char sql[2048];
  if (!expand(sql, sizeof sql, def->sql, st->schema_ident, st->channel))
    return esc__fail(err, ESC_EINVAL, "prepare %s: statement too long",
                     def->name);
  esc__call_begin(&st->call, st->conn, st->timeout_ms);
  PGresult *res = NULL;
  if (PQsendPrepare(st->conn, def->name, sql, def->nparams, def->types))
    res = esc__call_finish(&st->call);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    /* esc__fail_pg hints at migrating when an object is missing, and
     * only then: a dropped connection is not a schema problem. */
    char what[96];
    snprintf(what, sizeof what, "prepare %s", def->name);
    rc = esc__fail_store(err, st, res, what);
  } else {
    st->prepared[s] = true;
  }
  PQclear(res);
  return rc;
}

/* ------------------------------------------------------- binary values -- */

void esc__put_be64(unsigned char out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    out[i] = (unsigned char)(v & 0xff);
}

void esc__put_be32(unsigned char out[4], uint32_t v) {
  for (int i = 3; i >= 0; i--, v >>= 8)
    out[i] = (unsigned char)(v & 0xff);
}

uint64_t esc__get_be64(const void *p) {
  const unsigned char *b = p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | b[i];
  return v;
}

uint32_t esc__get_be32(const void *p) {
  const unsigned char *b = p;
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

/*
 * Raw PostgreSQL baselines: the same rows esc stores, inserted with plain
 * prepared INSERTs into a table with the row shape and the main indexes of
 * esc.events, in a separate schema <schema>_raw. What the ratio then shows
 * is what esc adds on top: the streams row and its lock, the version check,
 * the idempotency probe, the category column and index, the waiter check.
 *
 * Keep BENCH_RAW_DDL in step with docs/benchmarks.md.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* @RAW@ stands for the quoted raw schema. */
#define BENCH_RAW_DDL                                                          \
  "CREATE SCHEMA @RAW@;\n"                                                     \
  "CREATE TABLE @RAW@.events (\n"                                              \
  "  global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"       \
  "  stream_id       text NOT NULL,\n"                                         \
  "  stream_version  bigint NOT NULL,\n"                                       \
  "  event_id        uuid NOT NULL,\n"                                         \
  "  event_type      text NOT NULL,\n"                                         \
  "  schema_version  integer NOT NULL,\n"                                      \
  "  data            bytea NOT NULL,\n"                                        \
  "  metadata        bytea,\n"                                                 \
  "  recorded_at     timestamptz NOT NULL DEFAULT now(),\n"                    \
  "  tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id(),\n"            \
  "  UNIQUE (event_id),\n"                                                     \
  "  UNIQUE (stream_id, stream_version)\n"                                     \
  ");\n"                                                                       \
  "CREATE INDEX ON @RAW@.events (tx_id, global_position);\n"

#define RAW_COLS 7

/* Parameter types, in column order. */
static const Oid raw_types[RAW_COLS] = {
    25,   /* stream_id text */
    20,   /* stream_version int8 */
    2950, /* event_id uuid */
    25,   /* event_type text */
    23,   /* schema_version int4 */
    17,   /* data bytea */
    17,   /* metadata bytea */
};

struct bench_raw_writer {
  PGconn *conn;
  size_t batch;
  char stmt[32];
  const char **values; /* RAW_COLS * batch */
  int *lengths;
  int *formats;
  unsigned char *ints; /* per row: int8 version + int4 schema version */
};

/* ------------------------------------------------------------------------
 * Schema
 * ------------------------------------------------------------------------ */

int bench_raw_ddl(const char *ident, char *out, size_t size) {
  static const char ddl[] = BENCH_RAW_DDL;
  const char *p = ddl;
  size_t len = 0, ilen = strlen(ident);
  const size_t mlen = sizeof("@RAW@") - 1;

  while (*p) {
    const char *m = strstr(p, "@RAW@");
    size_t n = m ? (size_t)(m - p) : strlen(p);
    if (len + n + (m ? ilen : 0) + 1 > size)
      return -1;
    memcpy(out + len, p, n);
    len += n;
    if (!m)
      break;
    memcpy(out + len, ident, ilen);
    len += ilen;
    p = m + mlen;
  }
  out[len] = '\0';
  return 0;
}

static char *raw_schema_ident(const bench_config *cfg, PGconn *conn, char *err,
                              size_t errlen) {
  char name[128];
  snprintf(name, sizeof(name), "%s_raw", cfg->schema);
  return bench_pg_ident(conn, name, err, errlen);
}

int bench_raw_reset(const bench_config *cfg, PGconn *admin, char *err,
                    size_t errlen) {
  char sql[2048];
  int rc = -1;
  char *ident = raw_schema_ident(cfg, admin, err, errlen);
  if (!ident)
    return -1;

  snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", ident);
  if (bench_pg_exec(admin, sql, err, errlen) != 0)
    goto out_free;
  if (bench_raw_ddl(ident, sql, sizeof(sql)) != 0) {
    bench_errf(err, errlen, "raw DDL too long");
    goto out_free;
  }
  if (bench_pg_exec(admin, sql, err, errlen) != 0)
    goto out_free;
  rc = 0;
out_free:
  free(ident);
  return rc;
}

int bench_raw_count(const bench_config *cfg, PGconn *admin, int64_t *out,
                    char *err, size_t errlen) {
  char sql[256];
  char *ident = raw_schema_ident(cfg, admin, err, errlen);
  int rc;
  if (!ident)
    return -1;
  snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s.events", ident);
  free(ident);
  rc = bench_pg_query_i64(admin, sql, out, err, errlen);
  return rc;
}

/* ------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------ */

/* INSERT ... VALUES ($1, ..., $7), ($8, ...), ... for `batch` rows. */
static char *insert_sql(const char *ident, size_t batch) {
  size_t cap = 256 + batch * (RAW_COLS * 8 + 8);
  char *sql = malloc(cap);
  size_t len;
  if (!sql)
    return NULL;
  len = (size_t)snprintf(sql, cap,
                         "INSERT INTO %s.events (stream_id, stream_version, "
                         "event_id, event_type, schema_version, data, "
                         "metadata) VALUES ",
                         ident);
  for (size_t r = 0; r < batch && len < cap; r++) {
    size_t p = r * RAW_COLS;
    len += (size_t)snprintf(
        sql + len, cap - len, "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu)",
        r ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);
  }
  return sql;
}

static int prepare_insert(bench_raw_writer *w, const bench_config *cfg,
                          char *err, size_t errlen) {
  Oid *types = malloc(w->batch * RAW_COLS * sizeof(*types));
  char *ident = raw_schema_ident(cfg, w->conn, err, errlen);
  char *sql = ident ? insert_sql(ident, w->batch) : NULL;
  PGresult *res = NULL;
  int rc = -1;

  if (!types || !ident || !sql) {
    if (ident)
      bench_errf(err, errlen, "out of memory");
    goto out_free;
  }
  for (size_t r = 0; r < w->batch; r++)
    memcpy(types + r * RAW_COLS, raw_types, sizeof(raw_types));
  snprintf(w->stmt, sizeof(w->stmt), "raw_insert_%zu", w->batch);
  res = PQprepare(w->conn, w->stmt, sql, (int)(w->batch * RAW_COLS), types);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    bench_errf(err, errlen, "prepare raw insert: %s",
               bench_pg_error(w->conn, res));
    goto out_free;
  }
  rc = 0;
out_free:
  PQclear(res);
  free(sql);
  free(ident);
  free(types);
  return rc;
}

bench_raw_writer *bench_raw_writer_new(const bench_config *cfg, size_t batch,
                                       char *err, size_t errlen) {
  bench_raw_writer *w = calloc(1, sizeof(*w));
  size_t nparams = batch * RAW_COLS;

  if (!w)
    goto out_nomem;
  w->batch = batch;
  w->values = calloc(nparams, sizeof(*w->values));
  w->lengths = calloc(nparams, sizeof(*w->lengths));
  w->formats = calloc(nparams, sizeof(*w->formats));
  w->ints = calloc(batch, 12);
  if (!w->values || !w->lengths || !w->formats || !w->ints)
    goto out_nomem;
  for (size_t i = 0; i < nparams; i++)
    w->formats[i] = 1; /* binary */

  w->conn = bench_pg_connect(cfg, err, errlen);
  if (!w->conn || prepare_insert(w, cfg, err, errlen) != 0)
    goto out_fail;
  return w;

out_nomem:
  bench_errf(err, errlen, "out of memory");
out_fail:
  bench_raw_writer_free(w);
  return NULL;
}

static void put_be(unsigned char *out, uint64_t v, unsigned width) {
  for (unsigned i = 0; i < width; i++)
    out[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
}

/* Points the parameters of row r at event ev. */
static void bind_row(bench_raw_writer *w, size_t r, const char *stream_id,
                     int64_t version, const esc_event_data *ev) {
  const char **v = w->values + r * RAW_COLS;
  int *l = w->lengths + r * RAW_COLS;
  unsigned char *ints = w->ints + r * 12;

  put_be(ints, (uint64_t)version, 8);
  put_be(ints + 8, (uint32_t)ev->schema_version, 4);
  v[0] = stream_id;
  l[0] = (int)strlen(stream_id);
  v[1] = (const char *)ints;
  l[1] = 8;
  v[2] = (const char *)ev->id.bytes;
  l[2] = 16;
  v[3] = ev->type;
  l[3] = (int)strlen(ev->type);
  v[4] = (const char *)(ints + 8);
  l[4] = 4;
  v[5] = ev->data;
  l[5] = (int)ev->data_len;
  v[6] = ev->metadata; /* NULL: SQL NULL */
  l[6] = (int)ev->metadata_len;
}

int bench_raw_insert(bench_raw_writer *w, const char *stream_id,
                     int64_t first_version, const esc_event_data *events,
                     char *err, size_t errlen) {
  PGresult *res;
  int rc = 0;

  for (size_t r = 0; r < w->batch; r++)
    bind_row(w, r, stream_id, first_version + (int64_t)r, &events[r]);
  res = PQexecPrepared(w->conn, w->stmt, (int)(w->batch * RAW_COLS), w->values,
                       w->lengths, w->formats, 1);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    bench_errf(err, errlen, "raw insert into %s: %s", stream_id,
               bench_pg_error(w->conn, res));
    rc = -1;
  }
  PQclear(res);
  return rc;
}

void bench_raw_writer_free(bench_raw_writer *w) {
  if (!w)
    return;
  PQfinish(w->conn);
  free(w->values);
  free(w->lengths);
  free(w->formats);
  free(w->ints);
  free(w);
}

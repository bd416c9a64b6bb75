/*
 * Administration of process managers (`esc processes`): summaries of
 * instances by state, pending deadlines, parked instances, and an
 * operator's retry or discard of a parked one. Each call connects for
 * itself, runs one statement of migration 17's tables or functions and
 * hangs up.
 */
#include <esc_internal/pg.h>
#include <esc_internal/process.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *esc_process_instance_state_name(esc_process_instance_state s) {
  switch (s) {
  case ESC_PROCESS_ACTIVE:
    return "active";
  case ESC_PROCESS_ENDED:
    return "ended";
  case ESC_PROCESS_RETRYING:
    return "retrying";
  case ESC_PROCESS_PARKED:
    return "parked";
  }
  return "unknown";
}

/* Runs fmt (one %s: the schema) with n text parameters on a connection of
 * its own; *res gets the tuples (PQclear them). */
static esc_status query(const char *pg_url, const char *schema,
                        const char *fmt, int n, const char *const *values,
                        const char *what, PGresult **res, esc_error *err) {
  PGconn *conn = esc__pg_connect(pg_url, "esc-admin", err);
  *res = NULL;
  if (!conn)
    return esc__pg_failed(err);
  *res = esc__pg_exec_in(conn, schema, fmt, n, values, PGRES_TUPLES_OK, what,
                         err);
  PQfinish(conn);
  if (!*res)
    return esc__pg_failed(err);
  esc__clear(err);
  return ESC_OK;
}

static esc_status check_process(const char *process, esc_error *err) {
  return process && !esc_process_name_valid(process, err) ? ESC_EINVAL
                                                          : ESC_OK;
}

/* calloc for rows of size bytes each (at least one, so NULL is failure). */
static void *rows_alloc(int rows, size_t size, esc_error *err) {
  void *p = calloc(rows > 0 ? (size_t)rows : 1, size);
  if (!p)
    esc_error_set(err, ESC_ENOMEM, "out of memory");
  return p;
}

static void copy(char *dst, size_t size, const PGresult *res, int row,
                 int col) {
  snprintf(dst, size, "%s", PQgetvalue(res, row, col));
}

/* ---------------------------------------------------------- deadlines -- */

static const char SQL_DEADLINES[] =
    "SELECT process, instance, name, deadline_id::text, due_us"
    " FROM %s.process_deadlines WHERE ($1::text IS NULL OR process = $1)"
    " ORDER BY due_us, process, instance LIMIT $2::int8";

esc_status esc_process_deadlines_list(const char *pg_url, const char *schema,
                                      const char *process, size_t max,
                                      esc_process_deadline_info **out,
                                      size_t *count, esc_error *err) {
  char lim[24];
  PGresult *res;
  *out = NULL;
  *count = 0;
  if (check_process(process, err))
    return ESC_EINVAL;
  snprintf(lim, sizeof lim, "%zu", max ? max : (size_t)INT64_MAX);
  const char *values[2] = {process, lim};
  esc_status rc = query(pg_url, schema, SQL_DEADLINES, 2, values,
                        "list deadlines", &res, err);
  if (rc)
    return rc;
  int rows = PQntuples(res);
  esc_process_deadline_info *d = rows_alloc(rows, sizeof *d, err);
  for (int i = 0; d && i < rows; i++) {
    copy(d[i].process, sizeof d[i].process, res, i, 0);
    copy(d[i].instance, sizeof d[i].instance, res, i, 1);
    copy(d[i].name, sizeof d[i].name, res, i, 2);
    esc_uuid_parse(PQgetvalue(res, i, 3), &d[i].id, NULL);
    d[i].due_us = strtoll(PQgetvalue(res, i, 4), NULL, 10);
  }
  PQclear(res);
  if (!d)
    return ESC_ENOMEM;
  *out = d;
  *count = (size_t)rows;
  return ESC_OK;
}

/* -------------------------------------------------------------- parked -- */

static const char SQL_PARKED[] =
    "SELECT k.process, k.instance, k.state, k.attempts, k.error,"
    " (extract(epoch FROM k.parked_at) * 1e6)::int8,"
    " (extract(epoch FROM k.retry_at) * 1e6)::int8,"
    " (SELECT count(*) FROM %1$s.process_parked_inputs i"
    "   WHERE i.process = k.process AND i.instance = k.instance)"
    " FROM %1$s.process_parked k WHERE ($1::text IS NULL OR k.process = $1)"
    " ORDER BY k.process, k.parked_at, k.instance";

esc_status esc_process_parked_list(const char *pg_url, const char *schema,
                                   const char *process,
                                   esc_process_parked_info **out,
                                   size_t *count, esc_error *err) {
  PGresult *res;
  *out = NULL;
  *count = 0;
  if (check_process(process, err))
    return ESC_EINVAL;
  const char *values[1] = {process};
  esc_status rc = query(pg_url, schema, SQL_PARKED, 1, values,
                        "list parked instances", &res, err);
  if (rc)
    return rc;
  int rows = PQntuples(res);
  esc_process_parked_info *k = rows_alloc(rows, sizeof *k, err);
  for (int i = 0; k && i < rows; i++) {
    copy(k[i].process, sizeof k[i].process, res, i, 0);
    copy(k[i].instance, sizeof k[i].instance, res, i, 1);
    k[i].state = strcmp(PQgetvalue(res, i, 2), "parked") == 0
                     ? ESC_PROCESS_PARKED
                     : ESC_PROCESS_RETRYING;
    k[i].attempts = atoi(PQgetvalue(res, i, 3));
    copy(k[i].error, sizeof k[i].error, res, i, 4);
    k[i].parked_us = strtoll(PQgetvalue(res, i, 5), NULL, 10);
    k[i].retry_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    k[i].inputs = strtoll(PQgetvalue(res, i, 7), NULL, 10);
  }
  PQclear(res);
  if (!k)
    return ESC_ENOMEM;
  *out = k;
  *count = (size_t)rows;
  return ESC_OK;
}

/* Retry or discard: one function of migration 17 answering whether the
 * instance was parked. */
static esc_status act(const char *pg_url, const char *schema,
                      const char *fmt, const char *what, const char *process,
                      const char *instance, esc_error *err) {
  PGresult *res;
  if (!process || check_process(process, err) ||
      !esc_process_instance_valid(instance, err))
    return process ? ESC_EINVAL
                   : esc_error_set(err, ESC_EINVAL, "%s: no process", what);
  const char *values[2] = {process, instance};
  esc_status rc = query(pg_url, schema, fmt, 2, values, what, &res, err);
  if (rc)
    return rc;
  bool found = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  return found ? ESC_OK
               : esc_error_set(err, ESC_ENOTFOUND,
                               "%s instance %s of process %s: it is not "
                               "parked",
                               what, instance, process);
}

esc_status esc_process_retry(const char *pg_url, const char *schema,
                             const char *process, const char *instance,
                             esc_error *err) {
  return act(pg_url, schema, "SELECT %s.process_parked_retry($1, $2)",
             "retry", process, instance, err);
}

esc_status esc_process_discard(const char *pg_url, const char *schema,
                               const char *process, const char *instance,
                               esc_error *err) {
  return act(pg_url, schema, "SELECT %s.process_parked_discard($1, $2)",
             "discard", process, instance, err);
}

/* ----------------------------------------------------------- summaries -- */

static const char SQL_SUMMARY[] =
    "WITH names AS ("
    "  SELECT process FROM %1$s.process_instances"
    "  UNION SELECT process FROM %1$s.process_parked)"
    " SELECT n.process,"
    "  (SELECT count(*) FROM %1$s.process_instances i WHERE i.process ="
    "    n.process AND NOT i.ended AND NOT EXISTS (SELECT 1 FROM"
    "    %1$s.process_parked k WHERE k.process = i.process AND"
    "    k.instance = i.instance)),"
    "  (SELECT count(*) FROM %1$s.process_instances i WHERE i.process ="
    "    n.process AND i.ended),"
    "  (SELECT count(*) FROM %1$s.process_parked k WHERE k.process ="
    "    n.process AND k.state = 'retrying'),"
    "  (SELECT count(*) FROM %1$s.process_parked k WHERE k.process ="
    "    n.process AND k.state = 'parked'),"
    "  (SELECT count(*) FROM %1$s.process_deadlines d WHERE d.process ="
    "    n.process)"
    " FROM names n WHERE ($1::text IS NULL OR n.process = $1)"
    " ORDER BY n.process";

esc_status esc_process_summaries(const char *pg_url, const char *schema,
                                 const char *process,
                                 esc_process_summary **out, size_t *count,
                                 esc_error *err) {
  PGresult *res;
  *out = NULL;
  *count = 0;
  if (check_process(process, err))
    return ESC_EINVAL;
  const char *values[1] = {process};
  esc_status rc = query(pg_url, schema, SQL_SUMMARY, 1, values,
                        "summarize processes", &res, err);
  if (rc)
    return rc;
  int rows = PQntuples(res);
  esc_process_summary *s = rows_alloc(rows, sizeof *s, err);
  for (int i = 0; s && i < rows; i++) {
    copy(s[i].process, sizeof s[i].process, res, i, 0);
    int64_t *f[5] = {&s[i].active, &s[i].ended, &s[i].retrying,
                     &s[i].parked, &s[i].deadlines};
    for (int k = 0; k < 5; k++)
      *f[k] = strtoll(PQgetvalue(res, i, k + 1), NULL, 10);
  }
  PQclear(res);
  if (!s)
    return ESC_ENOMEM;
  if (process && rows == 0) {
    free(s);
    return esc_error_set(err, ESC_ENOTFOUND, "process %s has no instances",
                         process);
  }
  *out = s;
  *count = (size_t)rows;
  return ESC_OK;
}

/* ------------------------------------------------------------- history -- */

_Static_assert((int)ESC_PROCESS_EVENT_RECEIVED == (int)ESC__REC_EVENT_RECEIVED &&
                   (int)ESC_PROCESS_DEADLINE_CANCELLED ==
                       (int)ESC__REC_DEADLINE_CANCELLED,
               "the public record kinds are the internal ones");

#define HISTORY_PAGE 500

/* The commands issued so far, so that an outcome can name its command
 * (the outcome record holds only the command's id). */
struct issued {
  esc_uuid id;
  char *type;
  char *stream;
};

typedef struct history {
  struct issued *issued;
  size_t count, cap;
} history;

static void history_release(history *h) {
  for (size_t i = 0; i < h->count; i++) {
    free(h->issued[i].type);
    free(h->issued[i].stream);
  }
  free(h->issued);
}

static esc_status history_note(history *h, const esc__process_record *r,
                               esc_error *err) {
  if (h->count == h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 16;
    struct issued *p = realloc(h->issued, cap * sizeof *p);
    if (!p)
      return esc_error_set(err, ESC_ENOMEM, "out of memory");
    h->issued = p;
    h->cap = cap;
  }
  struct issued *c = &h->issued[h->count];
  c->id = r->id;
  c->type = strdup(r->event_type);
  c->stream = strdup(r->stream);
  if (!c->type || !c->stream) {
    free(c->type);
    free(c->stream);
    return esc_error_set(err, ESC_ENOMEM, "out of memory");
  }
  h->count++;
  return ESC_OK;
}

static const struct issued *history_find(const history *h,
                                         const esc_uuid *id) {
  for (size_t i = h->count; i-- > 0;)
    if (memcmp(h->issued[i].id.bytes, id->bytes, sizeof id->bytes) == 0)
      return &h->issued[i];
  return NULL;
}

/* The public view of a decoded record. */
static void record_info(const esc__process_record *r,
                        const esc_recorded_event *e, const history *h,
                        esc_process_record_info *out) {
  bool input = r->kind <= ESC__REC_DEADLINE_FIRED;
  bool named_by_type = r->kind == ESC__REC_EVENT_RECEIVED ||
                       r->kind == ESC__REC_COMMAND_ISSUED;
  *out = (esc_process_record_info){
      .kind = (esc_process_record_kind)r->kind, .type = e->type,
      .version = e->stream_version, .recorded_us = e->recorded_at_us,
      .is_input = input, .input = r->input, .time_us = input ? r->time_us : 0,
      .id = r->id, .index = r->index, .stream = r->stream,
      .stream_version = r->version, .position = r->position,
      .name = named_by_type ? r->event_type : r->name, .data = r->data,
      .data_len = r->data_len, .accepted = r->accepted, .code = r->code,
      .message = r->message, .due_us = r->due_us, .replaces = r->replaces};
  if (r->kind == ESC__REC_COMMAND_OUTCOME) {
    const struct issued *c = history_find(h, &r->input);
    out->stream = c ? c->stream : NULL;
    out->name = c ? c->type : NULL;
  }
}

/* Decodes one stored record and hands it to fn. */
static esc_status history_record(history *h, const esc_recorded_event *e,
                                 esc_process_record_fn fn, void *userdata,
                                 esc_error *err) {
  msgpack_zone zone;
  esc__process_record r;
  esc_process_record_info info;
  if (!msgpack_zone_init(&zone, 1024))
    return esc_error_set(err, ESC_ENOMEM, "out of memory");
  esc_status rc =
      esc__process_record_decode(e->type, e->data, e->data_len, &zone, &r, err);
  if (rc != ESC_OK && err) {
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    esc_error_set(err, rc, "%s@%" PRId64 ": %s", e->stream_id,
                  e->stream_version, why);
  }
  if (rc == ESC_OK && r.kind == ESC__REC_COMMAND_ISSUED)
    rc = history_note(h, &r, err);
  if (rc == ESC_OK) {
    record_info(&r, e, h, &info);
    rc = fn(userdata, &info, err);
  }
  msgpack_zone_destroy(&zone);
  return rc;
}

static esc_status history_walk(esc_store *st, const char *process,
                               const char *instance, const char *stream,
                               esc_process_record_fn fn, void *userdata,
                               esc_error *err) {
  esc_events ev = ESC_EVENTS_INIT;
  history h = {NULL, 0, 0};
  esc_status rc = ESC_OK;
  int64_t from = 0;
  for (bool more = true; more && rc == ESC_OK;) {
    rc = esc_read_stream(st, stream, from, ESC_FORWARD, HISTORY_PAGE, &ev,
                         err);
    if (rc == ESC_ENOTFOUND && from == 0)
      esc_error_set(err, rc, "process %s has no instance %s (no stream %s)",
                    process, instance, stream);
    for (size_t i = 0; i < ev.count && rc == ESC_OK; i++) {
      rc = history_record(&h, &ev.items[i], fn, userdata, err);
      from = ev.items[i].stream_version + 1;
    }
    more = ev.count == HISTORY_PAGE;
  }
  esc_events_release(&ev);
  history_release(&h);
  return rc;
}

esc_status esc_process_history(const char *pg_url, const char *schema,
                               const char *process, const char *instance,
                               esc_process_record_fn fn, void *userdata,
                               esc_error *err) {
  char stream[ESC_STREAM_ID_MAX + 1];
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  esc_status rc =
      esc_process_stream_id(process, instance, stream, sizeof stream, err);
  if (rc)
    return rc;
  o.schema = schema;
  o.app_name = "esc-admin";
  esc_store *st = esc_store_open(pg_url, &o, err);
  if (!st)
    return esc__pg_failed(err);
  rc = history_walk(st, process, instance, stream, fn, userdata, err);
  esc_store_free(st);
  return rc;
}

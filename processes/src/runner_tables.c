/*
 * The process runtime's tables (eventstore/sql/017_processes.sql): the
 * deadlines mirrored from the instance streams and the parked instances
 * with their kept inputs. Every write is a call of a SECURITY DEFINER
 * function (decision 13), on a connection of the runner's own that is
 * opened on first use and again after it broke.
 */
#include "runner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void esc__runner_tables_close(esc__runner *r) {
  if (r->ident)
    PQfreemem(r->ident);
  if (r->pg)
    PQfinish(r->pg);
  r->ident = NULL;
  r->pg = NULL;
}

static esc_status connect_tables(esc__runner *r, esc_error *err) {
  if (r->pg && PQstatus(r->pg) == CONNECTION_OK)
    return ESC_OK;
  esc__runner_tables_close(r);
  r->pg = esc__pg_connect(r->pg_url, "esc process", err);
  if (!r->pg)
    return esc__pg_failed(err);
  r->ident = esc__pg_schema_ident(r->pg, r->schema, err);
  if (!r->ident) {
    esc__runner_tables_close(r);
    return esc__pg_failed(err);
  }
  return ESC_OK;
}

/* Runs fmt (one %s: the schema) with n text parameters; the result, or
 * NULL with err filled. */
static PGresult *call(esc__runner *r, const char *fmt, int n,
                      const char *const *values, const char *what,
                      esc_error *err) {
  char sql[512];
  if (connect_tables(r, err) != ESC_OK)
    return NULL;
  snprintf(sql, sizeof sql, fmt, r->ident);
  return esc__pg_exec(r->pg, sql, n, values, PGRES_TUPLES_OK, what, err);
}

/* Like call, for statements whose result is not needed. */
static esc_status call_done(esc__runner *r, const char *fmt, int n,
                            const char *const *values, const char *what,
                            esc_error *err) {
  PGresult *res = call(r, fmt, n, values, what, err);
  if (!res)
    return esc__pg_failed(err);
  PQclear(res);
  return ESC_OK;
}

/* ----------------------------------------------------------- deadlines -- */

static const char SQL_SYNC[] =
    "SELECT %s.process_instance_sync($1, $2, $3::int8, $4::boolean,"
    " $5::uuid[], $6::text[], $7::int8[])";

/* Appends text to an array literal being built in *buf. */
static bool append(char **buf, size_t *len, size_t *cap, const char *text) {
  size_t n = strlen(text);
  if (*len + n + 1 > *cap) {
    size_t c = (*cap ? *cap * 2 : 256) + n;
    char *b = realloc(*buf, c);
    if (!b)
      return false;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, text, n + 1);
  *len += n;
  return true;
}

struct arrays {
  char *v[3];
  size_t len[3], cap[3];
};

static bool arrays_build(struct arrays *a, const esc__process_instance *inst) {
  bool ok = true;
  for (int k = 0; k < 3; k++)
    ok = ok && append(&a->v[k], &a->len[k], &a->cap[k], "{");
  for (size_t i = 0; ok && i < inst->deadline_count; i++) {
    const struct esc__pending_deadline *d = &inst->deadlines[i];
    char id[37], due[24];
    const char *sep = i ? "," : "";
    esc_uuid_format(&d->id, id);
    snprintf(due, sizeof due, "%" PRId64, d->due_us);
    /* deadline names are [a-z0-9_]: nothing to escape */
    ok = append(&a->v[0], &a->len[0], &a->cap[0], sep) &&
         append(&a->v[0], &a->len[0], &a->cap[0], id) &&
         append(&a->v[1], &a->len[1], &a->cap[1], sep) &&
         append(&a->v[1], &a->len[1], &a->cap[1], d->name) &&
         append(&a->v[2], &a->len[2], &a->cap[2], sep) &&
         append(&a->v[2], &a->len[2], &a->cap[2], due);
  }
  for (int k = 0; ok && k < 3; k++)
    ok = append(&a->v[k], &a->len[k], &a->cap[k], "}");
  return ok;
}

esc_status esc__runner_sync_instance(esc__runner *r,
                                      const esc__process_instance *inst,
                                      esc_error *err) {
  struct arrays a;
  memset(&a, 0, sizeof a);
  esc_status rc = ESC_OK;
  if (!arrays_build(&a, inst))
    rc = esc_error_set(err, ESC_ENOMEM, "%s: out of memory", inst->stream_id);
  if (rc == ESC_OK) {
    char version[24];
    snprintf(version, sizeof version, "%" PRId64, inst->version);
    const char *values[7] = {r->p->name,   inst->instance,
                             version,      inst->terminal ? "t" : "f",
                             a.v[0],       a.v[1],
                             a.v[2]};
    rc = call_done(r, SQL_SYNC, 7, values, "mirror the instance", err);
  }
  for (int k = 0; k < 3; k++)
    free(a.v[k]);
  return rc;
}

/* Deadlines a claim holds for this long before another worker may fire
 * them (a worker that died holding them). */
#define CLAIM_MS "30000"

static const char SQL_CLAIM_DEADLINES[] =
    "SELECT instance, deadline_id::text FROM"
    " %s.process_deadlines_claim($1, $2::int8, $3::int, $4::int)";

esc_status esc__runner_claim_deadlines(esc__runner *r, int64_t now_us,
                                       struct esc__due *out, size_t max,
                                       size_t *n, esc_error *err) {
  char now[24], lim[16];
  snprintf(now, sizeof now, "%" PRId64, now_us);
  snprintf(lim, sizeof lim, "%zu", max);
  const char *values[4] = {r->p->name, now, lim, CLAIM_MS};
  *n = 0;
  PGresult *res =
      call(r, SQL_CLAIM_DEADLINES, 4, values, "claim due deadlines", err);
  if (!res)
    return esc__pg_failed(err);
  for (int i = 0; i < PQntuples(res) && *n < max; i++) {
    struct esc__due *d = &out[*n];
    snprintf(d->instance, sizeof d->instance, "%s", PQgetvalue(res, i, 0));
    if (esc_uuid_parse(PQgetvalue(res, i, 1), &d->id, NULL) == ESC_OK)
      (*n)++;
  }
  PQclear(res);
  return ESC_OK;
}

/* ------------------------------------------------------------- parking -- */

int esc__runner_backoff_ms(const esc__runner *r, int attempt) {
  int64_t ms = r->o.retry_base_ms;
  for (int i = 1; i < attempt && ms < r->o.retry_max_ms; i++)
    ms *= 2;
  return (int)(ms < r->o.retry_max_ms ? ms : r->o.retry_max_ms);
}

static const char SQL_PARK[] =
    "SELECT %s.process_park($1, $2, $3, $4::uuid, $5, $6::int)";

esc_status esc__runner_park(esc__runner *r, const char *instance,
                            const char *kind, const esc_uuid *ref,
                            const char *error, esc_error *err) {
  char id[37], retry[16];
  esc_uuid_format(ref, id);
  snprintf(retry, sizeof retry, "%d", esc__runner_backoff_ms(r, 1));
  const char *values[6] = {r->p->name, instance, kind, id, error, retry};
  return call_done(r, SQL_PARK, 6, values, "park an instance", err);
}

static const char SQL_PARK_INPUT[] =
    "SELECT %s.process_park_input($1, $2, $3, $4::uuid)";

esc_status esc__runner_park_input(esc__runner *r, const char *instance,
                                  const char *kind, const esc_uuid *ref,
                                  bool *kept, esc_error *err) {
  char id[37];
  esc_uuid_format(ref, id);
  const char *values[4] = {r->p->name, instance, kind, id};
  *kept = false;
  PGresult *res =
      call(r, SQL_PARK_INPUT, 4, values, "look for a parked instance", err);
  if (!res)
    return esc__pg_failed(err);
  *kept = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  return ESC_OK;
}

static const char SQL_CLAIM_PARKED[] =
    "SELECT instance, attempts FROM %s.process_parked_claim($1, $2::int,"
    " $3::int)";

esc_status esc__runner_claim_parked(esc__runner *r,
                                    char (*out)[ESC_PROCESS_INSTANCE_MAX + 1],
                                    int *attempts, size_t max, size_t *n,
                                    esc_error *err) {
  char lim[16];
  snprintf(lim, sizeof lim, "%zu", max);
  const char *values[3] = {r->p->name, lim, CLAIM_MS};
  *n = 0;
  PGresult *res = call(r, SQL_CLAIM_PARKED, 3, values,
                       "claim instances due for a retry", err);
  if (!res)
    return esc__pg_failed(err);
  for (int i = 0; i < PQntuples(res) && *n < max; i++, (*n)++) {
    snprintf(out[*n], sizeof out[*n], "%s", PQgetvalue(res, i, 0));
    attempts[*n] = atoi(PQgetvalue(res, i, 1));
  }
  PQclear(res);
  return ESC_OK;
}

static const char SQL_KEPT[] =
    "SELECT seq, kind, ref::text FROM %s.process_parked_inputs"
    " WHERE process = $1 AND instance = $2 AND seq > $3::int8"
    " ORDER BY seq LIMIT 1000";

esc_status esc__runner_kept_inputs(esc__runner *r, const char *instance,
                                   int64_t after, struct esc__kept **out,
                                   size_t *n, esc_error *err) {
  char from[24];
  snprintf(from, sizeof from, "%" PRId64, after);
  const char *values[3] = {r->p->name, instance, from};
  *out = NULL;
  *n = 0;
  PGresult *res = call(r, SQL_KEPT, 3, values, "read kept inputs", err);
  if (!res)
    return esc__pg_failed(err);
  int rows = PQntuples(res);
  if (rows > 0 && !(*out = calloc((size_t)rows, sizeof **out))) {
    PQclear(res);
    return esc_error_set(err, ESC_ENOMEM, "out of memory");
  }
  for (int i = 0; i < rows; i++) {
    struct esc__kept *k = &(*out)[*n];
    k->seq = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    k->deadline = strcmp(PQgetvalue(res, i, 1), "deadline") == 0;
    if (esc_uuid_parse(PQgetvalue(res, i, 2), &k->ref, NULL) == ESC_OK)
      (*n)++;
  }
  PQclear(res);
  return ESC_OK;
}

static const char SQL_UNPARK[] =
    "SELECT %s.process_unpark($1, $2, $3::int8)";

esc_status esc__runner_unpark(esc__runner *r, const char *instance,
                              int64_t upto, bool *flows, esc_error *err) {
  char to[24];
  snprintf(to, sizeof to, "%" PRId64, upto);
  const char *values[3] = {r->p->name, instance, to};
  *flows = false;
  PGresult *res = call(r, SQL_UNPARK, 3, values, "unpark an instance", err);
  if (!res)
    return esc__pg_failed(err);
  *flows = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
  PQclear(res);
  return ESC_OK;
}

static const char SQL_PARK_FAILED[] =
    "SELECT %s.process_park_failed($1, $2, $3, $4::int, $5::int)";

esc_status esc__runner_park_failed(esc__runner *r, const char *instance,
                                   int attempts, const char *error,
                                   esc_error *err) {
  char max[16], retry[16];
  snprintf(max, sizeof max, "%d", r->o.max_attempts);
  snprintf(retry, sizeof retry, "%d", esc__runner_backoff_ms(r, attempts + 1));
  const char *values[5] = {r->p->name, instance, error, max, retry};
  return call_done(r, SQL_PARK_FAILED, 5, values, "count a failed retry",
                   err);
}

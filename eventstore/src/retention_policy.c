/*
 * Retention policies: set, remove, list and describe them. They live in
 * <schema>.retention_policies (migration 14); applying them is
 * retention_run.c's.
 */
#include "retention_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *esc__retention_scope_name(esc_retention_scope scope) {
  return scope == ESC_RETENTION_CATEGORY ? "category" : "stream";
}

static int64_t col_i64(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col)
             ? 0
             : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

void esc__retention_policy_row(const PGresult *res, int row, int col,
                               esc_retention_policy *p) {
  p->scope = strcmp(PQgetvalue(res, row, col), "category") == 0
                 ? ESC_RETENTION_CATEGORY
                 : ESC_RETENTION_STREAM;
  snprintf(p->target, sizeof p->target, "%s", PQgetvalue(res, row, col + 1));
  p->max_age_s = col_i64(res, row, col + 2);
  p->max_count = col_i64(res, row, col + 3);
  snprintf(p->set_by, sizeof p->set_by, "%s", PQgetvalue(res, row, col + 4));
  p->set_at_us = col_i64(res, row, col + 5);
}

/* The target must be what its scope names: a stream id, or a category
 * (a stream id without '-'). */
static esc_status check_target(esc_retention_scope scope, const char *target,
                               const char *what, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (scope != ESC_RETENTION_STREAM && scope != ESC_RETENTION_CATEGORY)
    return esc__fail(err, ESC_EINVAL,
                     "%s: scope %d is neither stream nor "
                     "category",
                     what, (int)scope);
  if (!target)
    return esc__fail(err, ESC_EINVAL, "%s: target is NULL", what);
  bool ok = scope == ESC_RETENTION_STREAM ? esc_stream_id_valid(target, &inner)
                                          : esc_category_valid(target, &inner);
  if (!ok)
    return esc__fail(err, ESC_EINVAL, "%s: %s", what, inner.msg);
  return ESC_OK;
}

static esc_status check_limits(const esc_retention_policy *p, const char *what,
                               esc_error *err) {
  if (p->max_age_s < 0 || p->max_age_s > ESC_RETENTION_MAX_AGE_S)
    return esc__fail(err, ESC_EINVAL,
                     "%s: max age %" PRId64
                     " s is out of range (1 s to %" PRId64 " s, 100 years)",
                     what, p->max_age_s, ESC_RETENTION_MAX_AGE_S);
  if (p->max_count < 0)
    return esc__fail(err, ESC_EINVAL, "%s: max count %" PRId64 " must be >= 1",
                     what, p->max_count);
  if (p->max_age_s == 0 && p->max_count == 0)
    return esc__fail(err, ESC_EINVAL, "%s: give a max age, a max count or both",
                     what);
  return ESC_OK;
}

/* Runs one retention_policy_* function call whose result is void. */
static esc_status call_void(esc_store *st, const char *sql, int n,
                            const char *const *values, const char *what,
                            esc_error *err) {
  esc_status rc = esc__ensure_conn(st, err);
  if (rc)
    return rc;
  PGresult *res =
      esc__exec(st, &(struct esc__query){.sql = sql, .n = n, .values = values});
  if (PQresultStatus(res) != PGRES_TUPLES_OK)
    rc = esc__fail_store(err, st, res, what);
  PQclear(res);
  return rc;
}

esc_status esc_retention_policy_set(esc_store *store,
                                    const esc_retention_policy *p,
                                    esc_error *err) {
  char what[ESC_STREAM_ID_MAX + 48], sql[256], age[24], count[24];
  if (!p)
    return esc__fail(err, ESC_EINVAL, "retention set: policy is NULL");
  snprintf(what, sizeof what, "retention policy of %s %s",
           esc__retention_scope_name(p->scope), p->target);
  esc_status rc = check_target(p->scope, p->target, what, err);
  if (!rc)
    rc = check_limits(p, what, err);
  if (rc)
    return rc;
  snprintf(age, sizeof age, "%" PRId64, p->max_age_s);
  snprintf(count, sizeof count, "%" PRId64, p->max_count);
  snprintf(sql, sizeof sql,
           "SELECT %s.retention_policy_set($1, $2, nullif($3::int8, 0), "
           "nullif($4::int8, 0))",
           store->schema_ident);
  const char *values[] = {esc__retention_scope_name(p->scope), p->target, age,
                          count};
  return call_void(store, sql, 4, values, what, err);
}

esc_status esc_retention_policy_remove(esc_store *store,
                                       esc_retention_scope scope,
                                       const char *target, esc_error *err) {
  char what[ESC_STREAM_ID_MAX + 48], sql[160];
  snprintf(what, sizeof what, "retention policy of %s %s",
           esc__retention_scope_name(scope), target ? target : "(null)");
  esc_status rc = check_target(scope, target, what, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql, "SELECT %s.retention_policy_remove($1, $2)",
           store->schema_ident);
  const char *values[] = {esc__retention_scope_name(scope), target};
  return call_void(store, sql, 2, values, what, err);
}

esc_status esc_retention_policy_list(esc_store *store,
                                     const esc_retention_policy *after,
                                     esc_retention_policy *out, size_t max,
                                     size_t *count, esc_error *err) {
  char sql[384], limit[24];
  *count = 0;
  esc_status rc = esc__ensure_conn(store, err);
  if (rc)
    return rc;
  snprintf(sql, sizeof sql,
           "SELECT " ESC__RETENTION_POLICY_COLUMNS
           " FROM %s.retention_policies WHERE (target, kind) > ($1, $2) "
           "ORDER BY target, kind LIMIT $3",
           store->schema_ident);
  snprintf(limit, sizeof limit, "%zu", max);
  const char *values[] = {after ? after->target : "",
                          after ? esc__retention_scope_name(after->scope) : "",
                          limit};
  PGresult *res = esc__exec(
      store, &(struct esc__query){.sql = sql, .n = 3, .values = values});
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    rc = esc__fail_store(err, store, res, "list retention policies");
  } else {
    int n = PQntuples(res);
    for (int i = 0; i < n; i++)
      esc__retention_policy_row(res, i, 0, &out[i]);
    *count = (size_t)n;
  }
  PQclear(res);
  return rc;
}

/* 2592000 -> "30d": the largest unit that divides the seconds exactly. */
static void format_age(int64_t s, char *out, size_t size) {
  static const struct {
    int64_t secs;
    char unit;
  } units[] = {{604800, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  for (size_t i = 0; i < sizeof units / sizeof *units; i++)
    if (s % units[i].secs == 0) {
      snprintf(out, size, "%" PRId64 "%c", s / units[i].secs, units[i].unit);
      return;
    }
}

void esc_retention_policy_describe(const esc_retention_policy *p, char *out,
                                   size_t size) {
  char age[32] = "";
  if (size == 0)
    return;
  if (p->max_age_s > 0)
    format_age(p->max_age_s, age, sizeof age);
  if (p->max_age_s > 0 && p->max_count > 0)
    snprintf(out, size, "max-age %s, max-count %" PRId64, age, p->max_count);
  else if (p->max_age_s > 0)
    snprintf(out, size, "max-age %s", age);
  else
    snprintf(out, size, "max-count %" PRId64, p->max_count);
}

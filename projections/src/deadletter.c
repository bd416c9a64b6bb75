/*
 * Dead letters: events a projection's handler kept failing on, parked in
 * <schema>.dead_letters with the reason so the partition can move on
 * (guarantee 10), and the operator's side of them (`esc dead-letters`).
 *
 * A letter's life (003_projections.sql): parked -> retry (requested) ->
 * resolved (a worker applied it, guarded in Redis so at most once) or back
 * to parked with the new error; parked or retry -> discarded. Rows are
 * never deleted. At most one letter per projection and event is open
 * (parked or retry): parking an event again updates it.
 *
 * All of the dead-letter SQL is here, the admin entry points of
 * <esc/projection.h> included, so the row layout is written down once.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest error text stored: enough for any esc_error plus context. */
#define ERROR_TEXT_MAX 1024

/* Columns of a letter, in the order row_to_letter reads them. */
#define LETTER_COLUMNS                                                         \
  "id, projection, partition, tx_id::text, global_position, "                  \
  "event_id::text, stream_id, stream_version, event_type, error, attempts, "   \
  "(extract(epoch FROM parked_at) * 1e6)::int8, state, commands_applied"

/* ------------------------------------------------------------ helpers -- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if none starts
 * there. Follows RFC 3629: no overlongs, no surrogates, <= U+10FFFF. */
static size_t utf8_len(const unsigned char *s) {
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xbf;
  size_t n;
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef)
    n = 3;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 4;
  else
    return 0;
  if (c == 0xe0)
    lo = 0xa0;
  else if (c == 0xed)
    hi = 0x9f;
  else if (c == 0xf0)
    lo = 0x90;
  else if (c == 0xf4)
    hi = 0x8f;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return n;
}

/*
 * A handler's message as a text value: valid UTF-8 (other bytes become
 * '?', or the insert would fail and the event be lost), one line (control
 * characters become spaces), at most ERROR_TEXT_MAX bytes. out has room
 * for ERROR_TEXT_MAX + 1.
 */
static void clean_error(char *out, const char *in) {
  const unsigned char *s = (const unsigned char *)(in ? in : "");
  size_t o = 0;
  while (*s) {
    size_t n = utf8_len(s);
    if (o + (n ? n : 1) > ERROR_TEXT_MAX)
      break;
    if (n == 0) {
      out[o++] = '?';
      s++;
    } else if (n == 1) {
      out[o++] = *s < 0x20 || *s == 0x7f ? ' ' : (char)*s;
      s++;
    } else {
      memcpy(out + o, s, n);
      o += n;
      s += n;
    }
  }
  out[o] = '\0';
}

static void copy_text(char *dst, size_t size, const PGresult *res, int row,
                      int col) {
  snprintf(dst, size, "%s", PQgetvalue(res, row, col));
}

static int64_t to_i64(const PGresult *res, int row, int col) {
  return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static void row_to_letter(const PGresult *res, int row, esc_dead_letter *d) {
  memset(d, 0, sizeof *d);
  d->id = to_i64(res, row, 0);
  copy_text(d->projection, sizeof d->projection, res, row, 1);
  d->partition = (int)to_i64(res, row, 2);
  d->position.tx_id = strtoull(PQgetvalue(res, row, 3), NULL, 10);
  d->position.global = to_i64(res, row, 4);
  /* The database's uuid text is always well formed. */
  esc_uuid_parse(PQgetvalue(res, row, 5), &d->event_id, NULL);
  copy_text(d->stream_id, sizeof d->stream_id, res, row, 6);
  d->stream_version = to_i64(res, row, 7);
  copy_text(d->event_type, sizeof d->event_type, res, row, 8);
  copy_text(d->error, sizeof d->error, res, row, 9);
  d->attempts = (int)to_i64(res, row, 10);
  d->parked_at_us = to_i64(res, row, 11);
  copy_text(d->state, sizeof d->state, res, row, 12);
  d->commands_applied = (int)to_i64(res, row, 13);
}

/* Every row of res as a malloc'ed array (NULL when empty). */
static esc_status rows_to_letters(const PGresult *res, esc_dead_letter **out,
                                  size_t *count, const char *what,
                                  esc_error *err) {
  int n = PQntuples(res);
  *out = NULL;
  *count = 0;
  if (n == 0)
    return ESC_OK;
  esc_dead_letter *list = calloc((size_t)n, sizeof *list);
  if (!list)
    return esc__fail(err, ESC_ENOMEM, "%s: out of memory", what);
  for (int i = 0; i < n; i++)
    row_to_letter(res, i, &list[i]);
  *out = list;
  *count = (size_t)n;
  return ESC_OK;
}

/* ------------------------------------------------------ worker's side -- */

esc_status esc__dead_letter_park(PGconn *conn, const char *schema,
                                 const char *proj, int partition,
                                 const esc_recorded_event *ev,
                                 const char *error, int attempts,
                                 size_t commands_applied, esc_error *err) {
  char what[160], part[16], id[37], tries[16], applied[24],
      text[ERROR_TEXT_MAX + 1];
  snprintf(what, sizeof what, "park %s@%" PRId64 " of projection %s",
           ev->stream_id, ev->stream_version, proj);
  /* The function takes position, stream and type from the log itself. */
  static const char sql[] =
      "SELECT %s.dead_letter_park($1, $2::int, $3::uuid, $4, $5::int,"
      " $6::int)";
  snprintf(part, sizeof part, "%d", partition);
  esc_uuid_format(&ev->id, id);
  snprintf(tries, sizeof tries, "%d", attempts);
  snprintf(applied, sizeof applied, "%zu", commands_applied);
  clean_error(text, error);
  const char *values[] = {proj, part, id, text, tries, applied};
  PGresult *res =
      esc__pg_exec_in(conn, schema, sql, 6, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

esc_status esc__dead_letter_take_retries(PGconn *conn, const char *schema,
                                         const char *proj, int partition,
                                         esc_dead_letter **out, size_t *count,
                                         esc_error *err) {
  char what[128], part[16];
  *out = NULL;
  *count = 0;
  snprintf(what, sizeof what, "dead letters to retry of %s/%d", proj,
           partition);
  static const char sql[] = "SELECT " LETTER_COLUMNS " FROM %s.dead_letters"
                            " WHERE projection = $1 AND partition = $2::int"
                            " AND state = 'retry' ORDER BY id";
  snprintf(part, sizeof part, "%d", partition);
  const char *values[] = {proj, part};
  PGresult *res =
      esc__pg_exec_in(conn, schema, sql, 2, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  esc_status rc = rows_to_letters(res, out, count, what, err);
  PQclear(res);
  if (!rc)
    esc__clear(err);
  return rc;
}

/*
 * ok: resolved, from any state but resolved (the event's effects are in
 * Redis now, even if an operator discarded the letter meanwhile). Failed:
 * back to parked with the new error and one more attempt, but only from
 * retry (a letter discarded meanwhile stays discarded). A letter in
 * neither case is left as it is; that is not an error.
 */
esc_status esc__dead_letter_finish(PGconn *conn, const char *schema, int64_t id,
                                   bool ok, const char *error,
                                   int commands_applied, esc_error *err) {
  char what[96], idtext[24], applied[16], text[ERROR_TEXT_MAX + 1];
  snprintf(what, sizeof what, "finish dead letter %" PRId64, id);
  static const char sql[] =
      "SELECT %s.dead_letter_finish($1::int8, $2::bool, $3, $4::int)";
  snprintf(idtext, sizeof idtext, "%" PRId64, id);
  snprintf(applied, sizeof applied, "%d", commands_applied);
  clean_error(text, error);
  const char *values[] = {idtext, ok ? "t" : "f", text,
                          commands_applied < 0 ? NULL : applied};
  PGresult *res =
      esc__pg_exec_in(conn, schema, sql, 4, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  PQclear(res);
  esc__clear(err);
  return ESC_OK;
}

/* ------------------------------------------------------ operator's side -- */

esc_status esc_dead_letters_list(const char *pg_url, const char *schema,
                                 const char *projection, bool all,
                                 esc_dead_letter **out, size_t *count,
                                 esc_error *err) {
  char sql[640];
  const char *what = "list dead letters";
  *out = NULL;
  *count = 0;
  if (projection && !esc__projection_name_valid(projection, err))
    return ESC_EINVAL;
  PGconn *conn = esc__pg_connect(pg_url, "esc-admin", err);
  if (!conn)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident) {
    rc = esc__pg_failed(err);
    goto out;
  }
  snprintf(sql, sizeof sql,
           "SELECT " LETTER_COLUMNS " FROM %s.dead_letters"
           " WHERE ($1::text IS NULL OR projection = $1)"
           " AND ($2::bool OR state IN ('parked', 'retry'))"
           " ORDER BY id",
           ident);
  PQfreemem(ident);
  const char *values[] = {projection, all ? "t" : "f"};
  PGresult *res =
      esc__pg_exec(conn, sql, 2, values, PGRES_TUPLES_OK, what, err);
  if (!res) {
    rc = esc__pg_failed(err);
    goto out;
  }
  rc = rows_to_letters(res, out, count, what, err);
  PQclear(res);
out:
  PQfinish(conn);
  if (!rc)
    esc__clear(err);
  return rc;
}

/*
 * The operator's actions: the change, and the states it applies to (an
 * SQL list). The same for one letter and for many: esc_dead_letter_retry
 * and _discard are esc_dead_letters_act with one id.
 */
static const struct action_def {
  const char *verb;
  const char *set;
  const char *from;
} action_defs[] = {
    [ESC_DEAD_LETTER_RETRY] = {"retry", "state = 'retry'", "'parked'"},
    [ESC_DEAD_LETTER_DISCARD] = {"discard",
                                 "state = 'discarded', resolved_at = now()",
                                 "'parked', 'retry'"},
};

/*
 * Selects and changes in one statement; the rows are locked as they are
 * selected, and one a worker changed meanwhile is checked again in its
 * new state (READ COMMITTED's recheck), so a letter just resolved is not
 * discarded. The statement's main part sees the rows as they were, so
 * the changed ones come from RETURNING; with $5 (dry run) nothing
 * changes and the selected ones are returned as they are.
 */
#define ACT_SQL                                                                \
  "WITH picked AS (SELECT id AS pick FROM %s.dead_letters"                     \
  " WHERE state IN (%s)"                                                       \
  " AND ($1::text IS NULL OR projection = $1)"                                 \
  " AND ($2::int8 IS NULL OR parked_at >= 'epoch'::timestamptz"                \
  " + $2::int8 * interval '1 microsecond')"                                    \
  " AND ($3::text IS NULL OR error LIKE $3)"                                   \
  " AND ($4::int8[] IS NULL OR id = ANY ($4::int8[])) FOR UPDATE),"            \
  " changed AS (UPDATE %s.dead_letters SET %s FROM picked"                     \
  " WHERE id = pick AND NOT $5::bool RETURNING " LETTER_COLUMNS ")"            \
  " SELECT * FROM changed UNION ALL SELECT " LETTER_COLUMNS                    \
  " FROM %s.dead_letters WHERE $5::bool AND id IN (SELECT pick FROM picked)"   \
  " ORDER BY 1"

/* filter->ids as an int8[] literal, malloc'ed; NULL for none (and on
 * running out of memory, with *oom set). */
static char *ids_array(const esc_dead_letter_filter *f, bool *oom) {
  *oom = false;
  if (!f->nids)
    return NULL;
  char *s = malloc(f->nids * 21 + 3), *at = s;
  if (!s) {
    *oom = true;
    return NULL;
  }
  *at++ = '{';
  for (size_t i = 0; i < f->nids; i++)
    at += sprintf(at, "%s%" PRId64, i ? "," : "", f->ids[i]);
  strcpy(at, "}");
  return s;
}

/* Why letter id was not acted on: it does not exist, its state refuses
 * the action, or (in a state the action takes) another field of the
 * filter left it out. Always fails. */
static esc_status refuse(PGconn *conn, const char *ident,
                         esc_dead_letter_action action, int64_t id,
                         esc_error *err) {
  char sql[160], what[64], idtext[24], state[16];
  snprintf(what, sizeof what, "%s dead letter %" PRId64,
           action_defs[action].verb, id);
  snprintf(sql, sizeof sql, "SELECT state FROM %s.dead_letters WHERE id = $1",
           ident);
  snprintf(idtext, sizeof idtext, "%" PRId64, id);
  const char *values[] = {idtext};
  PGresult *res =
      esc__pg_exec(conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  bool found = PQntuples(res) == 1;
  snprintf(state, sizeof state, "%s", found ? PQgetvalue(res, 0, 0) : "");
  PQclear(res);
  if (!found)
    return esc__fail(err, ESC_ENOTFOUND, "%s: no dead letter %" PRId64, what,
                     id);
  bool open = strcmp(state, "parked") == 0 || strcmp(state, "retry") == 0;
  if (action == ESC_DEAD_LETTER_RETRY && strcmp(state, "retry") == 0)
    return esc__fail(err, ESC_EINVAL,
                     "%s: a retry is requested already; its worker has not "
                     "run it yet",
                     what);
  if (action == ESC_DEAD_LETTER_RETRY && !open)
    return esc__fail(err, ESC_EINVAL,
                     "%s: it is %s; only a parked letter can be retried", what,
                     state);
  if (!open)
    return esc__fail(err, ESC_EINVAL,
                     "%s: it is %s already; only a parked letter (or one "
                     "awaiting retry) can be discarded",
                     what, state);
  return esc__fail(err, ESC_EINVAL,
                   "%s: it is %s but does not match the filter", what, state);
}

/* The first id of filter->ids that is not among the n letters l, or 0. */
static int64_t first_missing(const esc_dead_letter_filter *f,
                             const esc_dead_letter *l, size_t n) {
  for (size_t i = 0; i < f->nids; i++) {
    size_t j = 0;
    while (j < n && l[j].id != f->ids[i])
      j++;
    if (j == n)
      return f->ids[i];
  }
  return 0;
}

/* Retry and discard are the owner's (the store's roles may only read
 * dead_letters; workers park and resolve through functions): a refusal
 * says so rather than leaving the operator with a bare 42501. */
static esc_status owner_only(esc_status rc, esc_error *err) {
  if (err && strcmp(err->sqlstate, "42501") == 0) {
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    snprintf(err->msg, sizeof err->msg,
             "%.160s; retry and discard need the schema owner's role", why);
  }
  return rc;
}

/* The statement of esc_dead_letters_act, in the transaction it opened. */
static esc_status act_in(PGconn *conn, const char *ident,
                         esc_dead_letter_action action,
                         const esc_dead_letter_filter *f, bool dry_run,
                         esc_dead_letter **out, size_t *count, esc_error *err) {
  char sql[2048], since[24], what[48];
  bool oom;
  const struct action_def *a = &action_defs[action];
  snprintf(what, sizeof what, "%s dead letters", a->verb);
  char *ids = ids_array(f, &oom);
  if (oom)
    return esc__fail(err, ESC_ENOMEM, "%s: out of memory", what);
  snprintf(sql, sizeof sql, ACT_SQL, ident, a->from, ident, a->set, ident);
  snprintf(since, sizeof since, "%" PRId64, f->parked_since);
  const char *values[] = {f->projection, f->parked_since ? since : NULL,
                          f->error_like, ids, dry_run ? "t" : "f"};
  PGresult *res =
      esc__pg_exec(conn, sql, 5, values, PGRES_TUPLES_OK, what, err);
  free(ids);
  if (!res)
    return owner_only(esc__pg_failed(err), err);
  esc_status rc = rows_to_letters(res, out, count, what, err);
  PQclear(res);
  int64_t missing = rc ? 0 : first_missing(f, *out, *count);
  if (missing) {
    rc = refuse(conn, ident, action, missing, err);
    free(*out);
    *out = NULL;
    *count = 0;
  }
  return rc;
}

static esc_status exec_command(PGconn *conn, const char *sql, const char *what,
                               esc_error *err) {
  PGresult *res = esc__pg_exec(conn, sql, 0, NULL, PGRES_COMMAND_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  PQclear(res);
  return ESC_OK;
}

esc_status esc_dead_letters_act(const char *pg_url, const char *schema,
                                esc_dead_letter_action action,
                                const esc_dead_letter_filter *filter,
                                bool dry_run, esc_dead_letter **out,
                                size_t *count, esc_error *err) {
  static const esc_dead_letter_filter every = ESC_DEAD_LETTER_FILTER_INIT;
  const esc_dead_letter_filter *f = filter ? filter : &every;
  *out = NULL;
  *count = 0;
  if (action != ESC_DEAD_LETTER_RETRY && action != ESC_DEAD_LETTER_DISCARD)
    return esc__fail(err, ESC_EINVAL, "dead letters: unknown action %d",
                     (int)action);
  if (f->projection && !esc__projection_name_valid(f->projection, err))
    return ESC_EINVAL;
  PGconn *conn = esc__pg_connect(pg_url, "esc-admin", err);
  if (!conn)
    return esc__pg_failed(err);
  esc_status rc;
  char *ident = esc__pg_schema_ident(conn, schema, err);
  if (!ident) {
    rc = esc__pg_failed(err);
    goto out;
  }
  /* A refused id rolls back what the statement changed; so does a dry
   * run: closing the connection without COMMIT ends the transaction. */
  rc = exec_command(conn, "BEGIN", "begin", err);
  if (!rc)
    rc = act_in(conn, ident, action, f, dry_run, out, count, err);
  if (!rc && !dry_run)
    rc = exec_command(conn, "COMMIT", "commit", err);
  PQfreemem(ident);
  if (rc) {
    free(*out);
    *out = NULL;
    *count = 0;
  }
out:
  PQfinish(conn);
  if (!rc)
    esc__clear(err);
  return rc;
}

/* One letter by id: the bulk path, which names the id in any refusal. */
static esc_status act_on_one(const char *pg_url, const char *schema,
                             esc_dead_letter_action action, int64_t id,
                             esc_error *err) {
  esc_dead_letter_filter f = ESC_DEAD_LETTER_FILTER_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  f.ids = &id;
  f.nids = 1;
  esc_status rc =
      esc_dead_letters_act(pg_url, schema, action, &f, false, &l, &n, err);
  free(l);
  return rc;
}

esc_status esc_dead_letter_retry(const char *pg_url, const char *schema,
                                 int64_t id, esc_error *err) {
  return act_on_one(pg_url, schema, ESC_DEAD_LETTER_RETRY, id, err);
}

esc_status esc_dead_letter_discard(const char *pg_url, const char *schema,
                                   int64_t id, esc_error *err) {
  return act_on_one(pg_url, schema, ESC_DEAD_LETTER_DISCARD, id, err);
}

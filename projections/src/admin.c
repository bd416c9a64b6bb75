/*
 * Administration of projections: the status `esc projections` prints and
 * the rebuild requests of `esc rebuild`. (The dead-letter commands live
 * with the rest of the dead-letter SQL, in deadletter.c.)
 *
 * Status reads three places, none of them atomically with the others, so
 * it is a picture of a moving system:
 *   <schema>.projections   which projections exist, their partitions
 *   Redis                  serving generation, each partition's checkpoint,
 *                          a rebuild's generation and checkpoints
 *   PostgreSQL             the lag (events after a checkpoint), the lease
 *                          holders (pg_locks), open dead letters
 *
 * Lag is counted per partition from that partition's checkpoint over the
 * events of the projection's categories that a subscriber can read and
 * that belong to the partition. The partition hash is computed in C, not
 * in SQL, so with several partitions the backlog comes back per stream.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

/* What one status call works with. */
struct status_ctx {
  PGconn *conn;
  esc_store *store;     /* the log's backlog (lag) */
  esc__redis *redis;    /* NULL: unreachable, see redis_down */
  char redis_down[200]; /* why Redis could not be read; "" when it could */
  const char *schema;   /* unquoted */
  char *ident;          /* quoted, for SQL text */
  char identity[ESC__IDENTITY_SIZE]; /* the store's, to compare with P:owner */
  const char *key_prefix;       /* configured (esc__key_prefix_configured) */
  char ns[ESC__NAMESPACE_SIZE]; /* the keys' namespace (esc__namespace) */
};

/* "NS:P", the base of projection proj's keys, into buf (ESC__KEY_MAX). */
static const char *base_of(const struct status_ctx *c, const char *proj,
                           char *buf) {
  esc__key_base(buf, ESC__KEY_MAX, c->ns, proj);
  return buf;
}

/* ------------------------------------------------------------- Redis --- */

/* GET key as an integer; 0 when absent. */
static esc_status redis_i64(struct status_ctx *c, const char *key, int64_t *out,
                            esc_error *err) {
  char buf[32];
  bool exists = false;
  *out = 0;
  esc_status rc = esc__redis_get(c->redis, key, buf, sizeof buf, &exists, err);
  if (!rc && exists)
    *out = strtoll(buf, NULL, 10);
  return rc;
}

/* A partition's checkpoint in a generation; START when it has none yet.
 * A checkpoint that records a failure ("failed <position>: why", written
 * by the apply script) is not an error of the status: *stopped is set,
 * why goes into reason and *out is the position it stopped at. */
static esc_status redis_checkpoint(struct status_ctx *c, const char *proj,
                                   int64_t generation, int partition,
                                   esc_position *out, bool *stopped,
                                   char *reason, size_t size, esc_error *err) {
  char key[ESC__KEY_MAX], base[ESC__KEY_MAX], value[512],
      token[ESC_POSITION_TOKEN_MAX];
  bool exists = false;
  esc_position start = ESC_POSITION_START;
  *out = start;
  *stopped = false;
  esc__key_checkpoint(key, sizeof key, base_of(c, proj, base), generation,
                      partition);
  esc_status rc =
      esc__redis_get(c->redis, key, value, sizeof value, &exists, err);
  if (rc == ESC_EINVAL) { /* longer than value: a failure text, cut */
    esc__clear(err);
    snprintf(value, sizeof value, "failed: (more than %zu bytes)",
             sizeof value - 1);
    exists = true;
    rc = ESC_OK;
  }
  if (rc || !exists || esc_position_parse(value, out, NULL) == ESC_OK)
    return rc;
  *stopped = true;
  if (strncmp(value, "failed", 6) != 0) {
    snprintf(reason, size, "checkpoint %.120s is \"%.100s\", not a position",
             key, value);
    return ESC_OK;
  }
  const char *why = value + 6;
  size_t tlen = *why == ' ' ? strcspn(why + 1, ":") : 0;
  if (tlen > 0 && tlen < sizeof token) { /* "failed <position>: ..." */
    memcpy(token, why + 1, tlen);
    token[tlen] = '\0';
    if (esc_position_parse(token, out, NULL) == ESC_OK)
      why += 1 + tlen;
  }
  while (*why == ':' || *why == ' ')
    why++;
  esc__copy_text(reason, size, *why ? why : "the checkpoint records a failure");
  return ESC_OK;
}

/* The generation a rebuild writes (0: none) and its partition count
 * (without the field: `layout`, see generation.c). A hash left behind by a
 * finished rebuild names a generation not above the serving one. */
static esc_status redis_rebuild(struct status_ctx *c, const char *proj,
                                int64_t serving, int layout, int64_t *out,
                                int *partitions, esc_error *err) {
  char key[ESC__KEY_MAX], base[ESC__KEY_MAX];
  redisReply *reply = NULL;
  *out = 0;
  *partitions = layout;
  esc__key_rebuild(key, sizeof key, base_of(c, proj, base));
  const char *argv[] = {"HMGET", key, "generation", "partitions"};
  esc_status rc = esc__redis_run(c->redis, 4, argv, NULL, &reply, err);
  if (!rc && reply && reply->type == REDIS_REPLY_ARRAY &&
      reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING) {
    *out = strtoll(reply->element[0]->str, NULL, 10);
    if (reply->element[1]->type == REDIS_REPLY_STRING)
      *partitions = (int)strtol(reply->element[1]->str, NULL, 10);
  }
  freeReplyObject(reply);
  if (*out <= serving)
    *out = 0;
  if (*partitions < 1)
    *partitions = layout;
  return rc;
}

/* -------------------------------------------------------- PostgreSQL --- */

/* A status reads the backlog on every metrics scrape, so it counts the
 * oldest LAG_EXACT_UPTO events at most: counting a backlog of a million
 * events took a quarter of a second, on each scrape of a catching-up
 * worker. Past the bound, the lag is estimated. */
#define LAG_EXACT_UPTO 10000

/* The events counted per position of the span counted (after pos up to
 * the last one counted), times the positions after pos up to the newest:
 * exact for one partition of a log without gaps in its positions, close
 * while the mix of streams and categories stays the same, never below
 * what was counted. */
static esc_status estimate(struct status_ctx *c, const esc_position *pos,
                           const esc_backlog *b, int64_t counted,
                           int64_t *events, esc_error *err) {
  int64_t newest = 0;
  esc_status rc = esc_store_newest(c->store, &newest, err);
  if (rc || b->last_global <= pos->global || newest <= b->last_global)
    return rc;
  double per_position =
      (double)counted / (double)(b->last_global - pos->global);
  int64_t guess =
      (int64_t)((double)(newest - pos->global) * per_position + 0.5);
  *events = guess > counted ? guess : counted;
  return ESC_OK;
}

/* Readable events of the categories (NULL: all) after pos that belong to
 * partition `part` of `parts`, and the age of the oldest of them. With
 * several partitions the store counts per stream and each stream is
 * placed by the workers' own hash. *estimated: past LAG_EXACT_UPTO. */
static esc_status lag(struct status_ctx *c, const char *const *categories,
                      const esc_position *pos, int part, int parts,
                      int64_t *events, double *seconds, bool *estimated,
                      esc_error *err) {
  esc_backlog b;
  bool split = parts > 1;
  *events = 0;
  *seconds = 0;
  *estimated = false;
  esc_status rc = esc_store_backlog_upto(c->store, categories, pos, split,
                                         LAG_EXACT_UPTO, &b, err);
  for (size_t i = 0; !rc && i < b.count; i++) {
    if (split && esc__partition_of(b.streams[i].stream_id, parts) != part)
      continue;
    *events += b.streams[i].events;
    if (b.streams[i].oldest_age_s > *seconds)
      *seconds = b.streams[i].oldest_age_s;
  }
  if (!rc && b.capped) {
    *estimated = true;
    rc = estimate(c, pos, &b, *events, events, err);
  }
  esc_backlog_release(&b);
  return rc;
}

/* How pg_locks shows a bigint advisory key (see lease.c, which takes
 * them): classid = high 32 bits, objid = low 32 bits, objsubid = 1. */
static const char SQL_LEASE_HOLDER[] =
    "SELECT l.pid, coalesce(a.application_name, '')"
    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.database = (SELECT oid FROM pg_database"
    "                    WHERE datname = current_database())"
    " AND l.classid = (($1::int8 >> 32) & 4294967295)::oid"
    " AND l.objid = ($1::int8 & 4294967295)::oid"
    " ORDER BY l.pid LIMIT 1";

static esc_status lease_holder(struct status_ctx *c, esc_partition_status *st,
                               esc_error *err) {
  char what[96], key[24];
  snprintf(what, sizeof what, "lease of %s/%d", st->projection, st->partition);
  /* A line of a rebuild's layout has its own leases (lease.c). */
  int layout = st->rebuild_only ? st->rebuild_partitions : st->partitions;
  snprintf(key, sizeof key, "%" PRId64,
           esc__lease_key(c->schema, st->projection, layout, st->partition));
  const char *values[] = {key};
  PGresult *res = esc__pg_exec(c->conn, SQL_LEASE_HOLDER, 1, values,
                               PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  if (PQntuples(res) == 1) {
    st->lease_pid = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(st->lease_holder, sizeof st->lease_holder, "%s",
             PQgetvalue(res, 0, 1));
  }
  PQclear(res);
  return ESC_OK;
}

/* Open (parked or retry) letters of each partition into sts[partition]. */
static esc_status open_letters(struct status_ctx *c, const char *proj,
                               esc_partition_status *sts, int partitions,
                               esc_error *err) {
  char sql[384], what[96];
  snprintf(what, sizeof what, "dead letters of %s", proj);
  snprintf(sql, sizeof sql,
           "SELECT partition, count(*) FROM %s.dead_letters"
           " WHERE projection = $1 AND state IN ('parked', 'retry')"
           " GROUP BY partition",
           c->ident);
  const char *values[] = {proj};
  PGresult *res =
      esc__pg_exec(c->conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  for (int i = 0; i < PQntuples(res); i++) {
    long p = strtol(PQgetvalue(res, i, 0), NULL, 10);
    /* Letters of partitions that no longer exist (the projection was
     * split differently since) are left out. */
    if (p >= 0 && p < partitions)
      sts[p].dead_letters = strtoll(PQgetvalue(res, i, 1), NULL, 10);
  }
  PQclear(res);
  return ESC_OK;
}

/* ------------------------------------------------------------ status --- */

/* A stop a worker recorded (P:g<G>:p<N>:stopped, "<token> <why>"), when
 * the checkpoint is still the one it stopped at. */
static esc_status recorded_stop(struct status_ctx *c,
                                const esc_partition_status *st, bool *stopped,
                                char *reason, size_t size, esc_error *err) {
  char key[ESC__KEY_MAX], base[ESC__KEY_MAX], value[512],
      cp[ESC_POSITION_TOKEN_MAX] = "start";
  bool exists = false;
  esc__key_stopped(key, sizeof key, base_of(c, st->projection, base),
                   st->generation, st->partition);
  esc_status rc =
      esc__redis_get(c->redis, key, value, sizeof value, &exists, err);
  if (rc == ESC_EINVAL) { /* longer than any a worker writes: not ours */
    esc__clear(err);
    return ESC_OK;
  }
  if (st->checkpoint.tx_id || st->checkpoint.global)
    esc_position_format(&st->checkpoint, cp);
  size_t n = strlen(cp);
  if (!rc && exists && strncmp(value, cp, n) == 0 && value[n] == ' ') {
    *stopped = true;
    snprintf(reason, size, "%s", value + n + 1);
  }
  return rc;
}

/* The state of a line once its lease and checkpoints are known. */
static void set_state(const struct status_ctx *c, esc_partition_status *st,
                      bool stopped) {
  if (c->redis_down[0]) {
    snprintf(st->state, sizeof st->state, "unknown");
    snprintf(st->reason, sizeof st->reason, "%s", c->redis_down);
  } else if (stopped)
    snprintf(st->state, sizeof st->state, "stopped");
  else
    snprintf(st->state, sizeof st->state, "%s",
             st->lease_pid ? "running" : "idle");
}

/* The rebuild track's checkpoint and lag; a stopped rebuild says so in
 * the reason, the state stays the serving generation's. */
static esc_status fill_rebuild(struct status_ctx *c,
                               const char *const *categories,
                               esc_partition_status *st, esc_error *err) {
  char why[200] = "";
  bool stopped = false;
  double ignored;
  bool estimated = false;
  esc_status rc =
      redis_checkpoint(c, st->projection, st->rebuild_generation, st->partition,
                       &st->rebuild_checkpoint, &stopped, why, sizeof why, err);
  if (!rc && stopped && !st->reason[0])
    snprintf(st->reason, sizeof st->reason, "rebuild: %s", why);
  if (!rc)
    rc = lag(c, categories, &st->rebuild_checkpoint, st->partition,
             st->rebuild_partitions, &st->rebuild_lag_events, &ignored,
             &estimated, err);
  return rc;
}

/* One partition's line, past what fill_projection set. Without Redis
 * only what PostgreSQL knows is filled in. */
static esc_status fill_partition(struct status_ctx *c,
                                 const char *const *categories,
                                 esc_partition_status *st, esc_error *err) {
  bool stopped = false, redis = c->redis != NULL;
  esc_status rc = ESC_OK;
  if (redis && st->generation && !st->rebuild_only)
    rc = redis_checkpoint(c, st->projection, st->generation, st->partition,
                          &st->checkpoint, &stopped, st->reason,
                          sizeof st->reason, err);
  if (!rc && redis && st->generation && !st->rebuild_only && !stopped)
    rc = recorded_stop(c, st, &stopped, st->reason, sizeof st->reason, err);
  if (!rc && redis && !st->rebuild_only)
    rc = lag(c, categories, &st->checkpoint, st->partition, st->partitions,
             &st->lag_events, &st->lag_seconds, &st->lag_estimated, err);
  if (!rc)
    rc = lease_holder(c, st, err);
  if (!rc && redis && st->rebuilding)
    rc = fill_rebuild(c, categories, st, err);
  set_state(c, st, stopped);
  return rc;
}

/* What one projection's lines share: its registry row and Redis keys. */
struct proj_picture {
  const char *name;
  int32_t version;
  int partitions;     /* the store's layout */
  int repartition_to; /* 0: none pending */
  char **categories;  /* NULL-terminated, one block; NULL: every category */
  int64_t generation;
  int64_t rebuild;
  int rebuild_partitions;
  bool foreign;
};

/* Element i of a JSON array of strings; "" for anything else. */
static const char *category_at(const json_t *arr, size_t i) {
  const char *c = json_string_value(json_array_get(arr, i));
  return c ? c : "";
}

/* The registry's categories (a JSON array of strings; NULL: all) as a
 * NULL-terminated list in one block (free it). */
static esc_status split_categories(const char *json, char ***out,
                                   esc_error *err) {
  *out = NULL;
  if (!json)
    return ESC_OK;
  json_t *arr = json_loads(json, 0, NULL);
  size_t n = json_is_array(arr) ? json_array_size(arr) : 0, len = 0;
  for (size_t i = 0; i < n; i++)
    len += strlen(category_at(arr, i)) + 1;
  char **list = malloc((n + 1) * sizeof *list + len + 1);
  if (!arr || !list) {
    json_decref(arr);
    free(list);
    return esc__fail(err, arr ? ESC_ENOMEM : ESC_EIO,
                     "status: %s the registry's categories",
                     arr ? "out of memory reading" : "cannot read");
  }
  char *text = (char *)(list + n + 1);
  for (size_t i = 0; i < n; i++) {
    const char *c = category_at(arr, i);
    size_t l = strlen(c) + 1;
    list[i] = memcpy(text, c, l);
    text += l;
  }
  list[n] = NULL;
  json_decref(arr);
  *out = list;
  return ESC_OK;
}

static esc_status read_picture(struct status_ctx *c, const PGresult *reg,
                               int row, struct proj_picture *pic,
                               esc_error *err) {
  char key[ESC__KEY_MAX], base[ESC__KEY_MAX];
  char owner[256]; /* a worker writes 36 bytes; more is foreign too */
  bool owned = false;
  pic->name = PQgetvalue(reg, row, 0);
  pic->version = (int32_t)strtol(PQgetvalue(reg, row, 1), NULL, 10);
  pic->partitions = (int)strtol(PQgetvalue(reg, row, 2), NULL, 10);
  esc_status rc = split_categories(
      PQgetisnull(reg, row, 3) ? NULL : PQgetvalue(reg, row, 3),
      &pic->categories, err);
  if (rc)
    return rc;
  pic->repartition_to = PQgetisnull(reg, row, 4)
                            ? 0
                            : (int)strtol(PQgetvalue(reg, row, 4), NULL, 10);
  pic->generation = pic->rebuild = 0;
  pic->rebuild_partitions = 0;
  pic->foreign = false;
  if (!c->redis)
    return ESC_OK; /* the lines say Redis is unknown */
  esc__key_generation(key, sizeof key, base_of(c, pic->name, base));
  rc = redis_i64(c, key, &pic->generation, err);
  if (!rc)
    rc = redis_rebuild(c, pic->name, pic->generation, pic->partitions,
                       &pic->rebuild, &pic->rebuild_partitions, err);
  esc__key_owner(key, sizeof key, base);
  if (!rc)
    rc = esc__redis_get(c->redis, key, owner, sizeof owner, &owned, err);
  pic->foreign = !rc && owned && strcmp(owner, c->identity) != 0;
  return rc;
}

/* Lines of a rebuild into another layout (a repartition) come after the
 * serving layout's; their partitions are the rebuild's. */
static size_t lines_of(const struct proj_picture *pic) {
  bool other = pic->rebuild && pic->rebuild_partitions != pic->partitions;
  return (size_t)pic->partitions +
         (other ? (size_t)pic->rebuild_partitions : 0);
}

static void set_line(const struct proj_picture *pic, size_t i,
                     esc_partition_status *st) {
  bool other = pic->rebuild_partitions != pic->partitions;
  snprintf(st->projection, sizeof st->projection, "%s", pic->name);
  st->rebuild_only = i >= (size_t)pic->partitions;
  st->partition = (int)(st->rebuild_only ? i - (size_t)pic->partitions : i);
  st->partitions = pic->partitions;
  st->version = pic->version;
  st->generation = pic->generation;
  st->rebuilding = pic->rebuild != 0 && (st->rebuild_only || !other);
  st->rebuild_generation = st->rebuilding ? pic->rebuild : 0;
  st->rebuild_partitions = st->rebuilding ? pic->rebuild_partitions : 0;
  st->repartition_to = pic->repartition_to;
  st->foreign = pic->foreign;
}

/* Room for n more lines in *list (*count lines, room for *cap); the n
 * lines come back zeroed in *lines. */
static esc_status more_lines(esc_partition_status **list, size_t count,
                             size_t *cap, size_t n, const char *name,
                             esc_partition_status **lines, esc_error *err) {
  if (count + n > *cap) {
    size_t want = 2 * (count + n);
    esc_partition_status *grown = realloc(*list, want * sizeof *grown);
    if (!grown)
      return esc__fail(err, ESC_ENOMEM, "status of %s: out of memory", name);
    *list = grown;
    *cap = want;
  }
  *lines = *list + count;
  memset(*lines, 0, n * sizeof **lines);
  return ESC_OK;
}

/* The lines of one projection's picture appended to *list. */
static esc_status fill_lines(struct status_ctx *c,
                             const struct proj_picture *pic,
                             esc_partition_status **list, size_t *count,
                             size_t *cap, esc_error *err) {
  esc_partition_status *sts = NULL;
  size_t n = lines_of(pic);
  esc_status rc = more_lines(list, *count, cap, n, pic->name, &sts, err);
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++)
    set_line(pic, i, &sts[i]);
  rc = open_letters(c, pic->name, sts, pic->partitions, err);
  const char *const *cats = (const char *const *)pic->categories;
  for (size_t i = 0; !rc && i < n; i++)
    rc = fill_partition(c, cats, &sts[i], err);
  if (!rc)
    *count += n;
  return rc;
}

/* The lines of one projection (row `row` of the registry) appended to
 * *list (*count lines, room for *cap). */
static esc_status fill_projection(struct status_ctx *c, const PGresult *reg,
                                  int row, esc_partition_status **list,
                                  size_t *count, size_t *cap, esc_error *err) {
  struct proj_picture pic;
  esc_status rc = read_picture(c, reg, row, &pic, err);
  if (!rc)
    rc = fill_lines(c, &pic, list, count, cap, err);
  free(pic.categories);
  return rc;
}

/* ----------------------------------------------------- subscriptions --- */

/* A subscription's checkpoints (its newest generation's, by partition),
 * whether each records a stop at where it is, and why. */
static const char SQL_SUB_CHECKPOINTS[] =
    "SELECT partition, generation, tx_id::text, global_position,"
    " coalesce((stopped_tx_id, stopped_global) = (tx_id, global_position),"
    " false), coalesce(stop_reason, '')"
    " FROM %s.subscription_checkpoints c WHERE subscription = $1"
    " AND generation = (SELECT max(generation) FROM"
    " %s.subscription_checkpoints WHERE subscription = $1)"
    " ORDER BY partition";

/* One subscription line from its checkpoint row; everything is
 * PostgreSQL's, so Redis being away changes nothing here. */
static esc_status fill_sub_line(struct status_ctx *c,
                                const char *const *categories,
                                const PGresult *res, int row,
                                esc_partition_status *st, esc_error *err) {
  st->generation = strtoll(PQgetvalue(res, row, 1), NULL, 10);
  st->checkpoint.tx_id = strtoull(PQgetvalue(res, row, 2), NULL, 10);
  st->checkpoint.global = strtoll(PQgetvalue(res, row, 3), NULL, 10);
  bool stopped = PQgetvalue(res, row, 4)[0] == 't';
  if (stopped)
    snprintf(st->reason, sizeof st->reason, "%s", PQgetvalue(res, row, 5));
  esc_status rc =
      lag(c, categories, &st->checkpoint, st->partition, st->partitions,
          &st->lag_events, &st->lag_seconds, &st->lag_estimated, err);
  if (!rc)
    rc = lease_holder(c, st, err);
  snprintf(st->state, sizeof st->state, "%s",
           stopped         ? "stopped"
           : st->lease_pid ? "running"
                           : "idle");
  return rc;
}

/* The lines of a subscription, one per partition, from its checkpoint
 * rows (res). */
static esc_status sub_lines(struct status_ctx *c, const char *name,
                            int partitions, const char *const *cats,
                            const PGresult *res, esc_partition_status **list,
                            size_t *count, size_t *cap, esc_error *err) {
  esc_partition_status *sts = NULL;
  size_t n = (size_t)PQntuples(res);
  esc_status rc = more_lines(list, *count, cap, n, name, &sts, err);
  for (size_t i = 0; !rc && i < n; i++) {
    snprintf(sts[i].projection, sizeof sts[i].projection, "%s", name);
    sts[i].kind = ESC_CONSUMER_SUBSCRIPTION;
    sts[i].partition = (int)strtol(PQgetvalue(res, (int)i, 0), NULL, 10);
    sts[i].partitions = partitions;
    sts[i].version = 1;
  }
  if (!rc)
    rc = open_letters(c, name, sts, partitions, err);
  for (size_t i = 0; !rc && i < n; i++)
    rc = fill_sub_line(c, cats, res, (int)i, &sts[i], err);
  if (!rc)
    *count += n;
  return rc;
}

/* The lines of subscription `row` of the registry. */
static esc_status fill_subscription(struct status_ctx *c, const PGresult *reg,
                                    int row, esc_partition_status **list,
                                    size_t *count, size_t *cap,
                                    esc_error *err) {
  char sql[512], what[96], **cats;
  const char *name = PQgetvalue(reg, row, 0);
  int partitions = (int)strtol(PQgetvalue(reg, row, 2), NULL, 10);
  esc_status rc = split_categories(
      PQgetisnull(reg, row, 3) ? NULL : PQgetvalue(reg, row, 3), &cats, err);
  if (rc)
    return rc;
  snprintf(what, sizeof what, "checkpoints of subscription %s", name);
  snprintf(sql, sizeof sql, SQL_SUB_CHECKPOINTS, c->ident, c->ident);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec(c->conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    rc = esc__pg_failed(err);
  else
    rc = sub_lines(c, name, partitions, (const char *const *)cats, res, list,
                   count, cap, err);
  PQclear(res);
  free(cats);
  return rc;
}

/* The store's identity (migration 4), which workers write into P:owner,
 * and the namespace of its keys. */
static esc_status read_identity(struct status_ctx *c, esc_error *err) {
  esc_status rc = esc__pg_read_identity(c->conn, c->schema, c->identity, err);
  if (rc)
    return rc;
  return esc__namespace(c->ns, sizeof c->ns, c->key_prefix, c->identity, err);
}

/* Every projection's lines, in name then partition order. */
static esc_status fill_all(struct status_ctx *c, esc_partition_status **out,
                           size_t *count, esc_error *err) {
  char sql[256];
  const char *what = "list projections";
  snprintf(sql, sizeof sql,
           "SELECT name, version, partitions,"
           " array_to_json(categories)::text,"
           " repartition_to, kind FROM %s.projections ORDER BY name",
           c->ident);
  PGresult *res =
      esc__pg_exec(c->conn, sql, 0, NULL, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  esc_partition_status *list = NULL;
  size_t n = 0, cap = 0;
  for (int i = 0; !rc && i < PQntuples(res); i++)
    rc = strcmp(PQgetvalue(res, i, 5), "subscription") == 0
             ? fill_subscription(c, res, i, &list, &n, &cap, err)
             : fill_projection(c, res, i, &list, &n, &cap, err);
  PQclear(res);
  if (rc) {
    free(list);
    return rc;
  }
  *out = list;
  *count = n;
  return ESC_OK;
}

/* Connects c's PostgreSQL sessions: c->conn and the store that reads the
 * backlog. */
static esc_status ctx_open(struct status_ctx *c, const char *pg_url,
                          esc_error *err) {
  c->conn = esc__pg_connect(pg_url, "esc-admin", err);
  if (!c->conn)
    return esc__pg_failed(err);
  c->ident = PQescapeIdentifier(c->conn, c->schema, strlen(c->schema));
  if (!c->ident)
    return esc__fail_pg(err, c->conn, NULL, "quote schema name");
  c->store = esc_store_open(
      pg_url, &(esc_store_options){.schema = c->schema, .app_name = "esc-admin"},
      err);
  if (!c->store)
    return esc__pg_failed(err);
  return ESC_OK;
}

/* Connects c's Redis session; Redis being away is not an error (every
 * line then says "unknown" and why). */
static void ctx_redis(struct status_ctx *c, const char *redis_url) {
  esc_error redis_err = ESC_ERROR_INIT;
  c->redis_down[0] = '\0';
  c->redis = esc__redis_connect(redis_url ? redis_url : esc_default_redis_url(),
                                &redis_err);
  if (!c->redis)
    snprintf(c->redis_down, sizeof c->redis_down, "Redis unreachable: %.170s",
             redis_err.msg);
}

static void ctx_close(struct status_ctx *c) {
  esc__redis_free(c->redis);
  esc_store_free(c->store);
  PQfreemem(c->ident);
  PQfinish(c->conn);
  c->redis = NULL;
  c->store = NULL;
  c->ident = NULL;
  c->conn = NULL;
}

static void ctx_init(struct status_ctx *c, const char *schema,
                     const char *key_prefix) {
  memset(c, 0, sizeof *c);
  c->schema = schema ? schema : "esc";
  c->key_prefix = esc__key_prefix_configured(key_prefix);
}

esc_status esc_projection_status(const char *pg_url, const char *redis_url,
                                 const char *schema, const char *key_prefix,
                                 esc_partition_status **out, size_t *count,
                                 esc_error *err) {
  struct status_ctx c;
  ctx_init(&c, schema, key_prefix);
  *out = NULL;
  *count = 0;
  /* A bad prefix is the caller's error, found before any connection. */
  if (c.key_prefix && !esc__key_prefix_valid(c.key_prefix, err))
    return ESC_EINVAL;
  esc_status rc = ctx_open(&c, pg_url, err);
  if (!rc) {
    ctx_redis(&c, redis_url);
    rc = read_identity(&c, err);
  }
  if (!rc)
    rc = fill_all(&c, out, count, err);
  ctx_close(&c);
  if (!rc)
    esc__clear(err);
  return rc;
}

/* ----------------------------------------------------------- monitor --- */

struct esc_projection_monitor {
  struct status_ctx c;
  bool open;
  char *pg_url, *redis_url, *schema, *key_prefix;
};

static char *copy(const char *s, bool *failed) {
  char *c = s ? strdup(s) : NULL;
  *failed |= s && !c;
  return c;
}

esc_projection_monitor *esc_projection_monitor_new(const char *pg_url,
                                                   const char *redis_url,
                                                   const char *schema,
                                                   const char *key_prefix,
                                                   esc_error *err) {
  if (key_prefix && !esc__key_prefix_valid(key_prefix, err))
    return NULL;
  esc_projection_monitor *m = calloc(1, sizeof *m);
  bool failed = !m;
  if (m) {
    m->pg_url = copy(pg_url, &failed);
    m->redis_url = copy(redis_url, &failed);
    m->schema = copy(schema, &failed);
    m->key_prefix = copy(key_prefix, &failed);
  }
  if (failed) {
    esc_projection_monitor_free(m);
    esc_error_set(err, ESC_ENOMEM, "projection monitor: out of memory");
    return NULL;
  }
  ctx_init(&m->c, m->schema, m->key_prefix);
  return m;
}

esc_status esc_projection_monitor_status(esc_projection_monitor *m,
                                         esc_partition_status **out,
                                         size_t *count, esc_error *err) {
  struct status_ctx *c = &m->c;
  esc_status rc = ESC_OK;
  *out = NULL;
  *count = 0;
  if (!m->open) {
    rc = ctx_open(c, m->pg_url, err);
    m->open = rc == ESC_OK;
  }
  if (!rc && !c->redis)
    ctx_redis(c, m->redis_url); /* again on every call while it is away */
  if (!rc)
    rc = read_identity(c, err);
  if (!rc)
    rc = fill_all(c, out, count, err);
  /* A line Redis could not answer drops the Redis session, a failure all
   * of them: the next call connects afresh. */
  for (size_t i = 0; !rc && c->redis && i < *count; i++)
    if (strcmp((*out)[i].state, "unknown") == 0) {
      esc__redis_free(c->redis);
      c->redis = NULL;
    }
  if (rc) {
    ctx_close(c);
    m->open = false;
  } else {
    esc__clear(err);
  }
  return rc;
}

void esc_projection_monitor_free(esc_projection_monitor *m) {
  if (!m)
    return;
  ctx_close(&m->c);
  free(m->pg_url);
  free(m->redis_url);
  free(m->schema);
  free(m->key_prefix);
  free(m);
}

/* ----------------------------------------------------------- rebuild --- */

/* An administration session and the schema as a quoted identifier
 * (PQfreemem), or NULL with err filled. */
static PGconn *admin_connect(const char *pg_url, const char *schema,
                             char **ident, esc_error *err) {
  PGconn *conn = esc__pg_connect(pg_url, "esc-admin", err);
  if (!conn)
    return NULL;
  *ident = PQescapeIdentifier(conn, schema, strlen(schema));
  if (!*ident) {
    esc__fail_pg(err, conn, NULL, "quote schema name");
    PQfinish(conn);
    return NULL;
  }
  return conn;
}

esc_status esc_projection_request_rebuild(const char *pg_url,
                                          const char *schema, const char *name,
                                          esc_error *err) {
  char sql[256], what[96], *ident = NULL;
  const char *s = schema ? schema : "esc";
  if (!esc__projection_name_valid(name, err))
    return ESC_EINVAL;
  snprintf(what, sizeof what, "request a rebuild of %s", name);
  PGconn *conn = admin_connect(pg_url, s, &ident, err);
  if (!conn)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  snprintf(sql, sizeof sql,
           "UPDATE %s.projections SET rebuild_requested_at = now()"
           " WHERE name = $1 AND kind = 'projection'",
           ident);
  PQfreemem(ident);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec(conn, sql, 1, values, PGRES_COMMAND_OK, what, err);
  if (!res) {
    rc = esc__pg_failed(err);
    goto out;
  }
  if (strcmp(PQcmdTuples(res), "0") == 0)
    rc = esc__fail(err, ESC_ENOTFOUND,
                   "%s: no projection %s in schema %s (a worker registers "
                   "it when it starts; a subscription has no read model to "
                   "rebuild)",
                   what, name, s);
  PQclear(res);
out:
  PQfinish(conn);
  if (!rc)
    esc__clear(err);
  return rc;
}

/* -------------------------------------------------------- repartition --- */

/* Sets the pending layout and requests the rebuild in one statement, only
 * when nothing else is pending and the count is a change: it returns the
 * row then. */
static const char SQL_REPARTITION[] =
    "UPDATE %s.projections SET repartition_to = $2::int,"
    " rebuild_requested_at = now(), updated_at = now()"
    " WHERE name = $1 AND partitions <> $2::int AND repartition_to IS NULL"
    " AND kind = 'projection' RETURNING partitions";

static const char SQL_LAYOUT[] =
    "SELECT partitions, coalesce(repartition_to, 0), kind FROM %s.projections"
    " WHERE name = $1";

/* Why SQL_REPARTITION changed nothing: no such projection, the layout is
 * N already, or another repartition is pending. */
static esc_status explain_unchanged(PGconn *conn, const char *ident,
                                    const char *schema, const char *name,
                                    int partitions, bool *started,
                                    esc_error *err) {
  char sql[160], what[96];
  snprintf(what, sizeof what, "repartition %s", name);
  snprintf(sql, sizeof sql, SQL_LAYOUT, ident);
  const char *values[] = {name};
  PGresult *res =
      esc__pg_exec(conn, sql, 1, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  if (PQntuples(res) != 1) {
    rc = esc__fail(err, ESC_ENOTFOUND,
                   "%s: no projection %s in schema %s (a worker registers "
                   "it when it starts)",
                   what, name, schema);
  } else {
    int now = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    int to = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
    if (strcmp(PQgetvalue(res, 0, 2), "subscription") == 0) {
      PQclear(res);
      return esc__fail(err, ESC_EINVAL,
                       "%s: %s is a subscription; the partition layout of a "
                       "subscription cannot be changed yet",
                       what, name);
    }
    /* The same request again is no error: it is under way. */
    *started = to == partitions;
    if (to && to != partitions)
      rc = esc__fail(err, ESC_ECONFLICT,
                     "%s: a repartition from %d to %d partitions is under "
                     "way; let it finish first (esc projections %s shows "
                     "it)",
                     what, now, to, name);
  }
  PQclear(res);
  return rc;
}

esc_status esc_projection_repartition(const char *pg_url, const char *schema,
                                      const char *name, int partitions,
                                      bool *started, esc_error *err) {
  char sql[320], what[96], n[16], *ident = NULL;
  const char *s = schema ? schema : "esc";
  bool ignored;
  started = started ? started : &ignored;
  *started = false;
  if (!esc__projection_name_valid(name, err))
    return ESC_EINVAL;
  if (partitions < 1)
    return esc__fail(err, ESC_EINVAL,
                     "repartition %s: %d partitions; at least 1", name,
                     partitions);
  snprintf(what, sizeof what, "repartition %s", name);
  snprintf(n, sizeof n, "%d", partitions);
  PGconn *conn = admin_connect(pg_url, s, &ident, err);
  if (!conn)
    return esc__pg_failed(err);
  esc_status rc = ESC_OK;
  snprintf(sql, sizeof sql, SQL_REPARTITION, ident);
  const char *values[] = {name, n};
  PGresult *res =
      esc__pg_exec(conn, sql, 2, values, PGRES_TUPLES_OK, what, err);
  if (!res)
    rc = esc__pg_failed(err);
  else if (PQntuples(res) == 1)
    *started = true;
  else
    rc = explain_unchanged(conn, ident, s, name, partitions, started, err);
  PQclear(res);
  PQfreemem(ident);
  PQfinish(conn);
  if (!rc)
    esc__clear(err);
  return rc;
}

/*
 * order-demo: resetting the read models the demo owns.
 *
 * Redis: a connection as esc opens it (esc_redis_connect), SCAN + UNLINK,
 * and the reset itself.
 */
#include "demo.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under the store's key namespace, where the hand-written saga kept its
 * state and checkpoint before the fulfillment process (whose state is in
 * PostgreSQL) replaced it: dead keys in the Redis of an older demo. */
#define SAGA_KEYS "fulfillment:*"

/* Runs a command given as NUL-terminated strings; the reply or NULL with
 * err filled (also for an error reply). */
static redisReply *redis_cmd(redisContext *c, esc_error *err, int argc,
                             const char **argv) {
  redisReply *r = redisCommandArgv(c, argc, argv, NULL);
  if (!r) {
    esc_error_set(err, ESC_ECONN, "redis: %s", c->errstr);
    return NULL;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    esc_error_set(err, ESC_EIO, "redis %s: %.200s", argv[0], r->str);
    freeReplyObject(r);
    return NULL;
  }
  return r;
}

/* Deletes every key matching pattern (SCAN + UNLINK, never KEYS). */
static esc_status redis_delete_matching(redisContext *c, const char *pattern,
                                        long long *deleted, esc_error *err) {
  char cursor[32] = "0";
  do {
    const char *scan[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"};
    redisReply *r = redis_cmd(c, err, 6, scan);
    if (!r)
      return err->code;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
      freeReplyObject(r);
      return esc_error_set(err, ESC_EIO, "redis SCAN: unexpected reply");
    }
    snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
    redisReply *keys = r->element[1];
    if (keys->elements > 0) {
      const char **argv = xrealloc(NULL, (keys->elements + 1) * sizeof *argv);
      argv[0] = "UNLINK";
      for (size_t i = 0; i < keys->elements; i++)
        argv[i + 1] = keys->element[i]->str;
      redisReply *u = redis_cmd(c, err, (int)keys->elements + 1, argv);
      free(argv);
      if (!u) {
        freeReplyObject(r);
        return err->code;
      }
      *deleted += u->type == REDIS_REPLY_INTEGER ? u->integer : 0;
      freeReplyObject(u);
    }
    freeReplyObject(r);
  } while (strcmp(cursor, "0") != 0);
  return ESC_OK;
}

/* The demo runs its projections with --partitions; the store may record
 * another layout (an order-worker ran with its default of 1). Since the
 * read models are rebuilt anyway, the demo changes the layout rather than
 * have its worker refuse: a worker of the old count still running stops
 * with the refusal once the demo's generation serves. A projection not
 * registered yet gets the demo's count when its worker registers it. */
static esc_status take_layout(const demo_opts *o,
                              const esc_projection *projections,
                              esc_error *err) {
  for (int i = 0; i < ORDER_PROJECTION_COUNT; i++) {
    esc_status rc = esc_projection_repartition(
        o->pg_url, o->schema, projections[i].name, o->partitions, NULL, err);
    if (rc && rc != ESC_ENOTFOUND)
      return rc;
  }
  return ESC_OK;
}

/*
 * Resets the demo's read models: every key of the six projections in the
 * store's namespace (another store's, in the same Redis, stay), so the
 * worker starts a fresh generation and rebuilds it from the whole log, with
 * the demo's partition count (take_layout). The fulfillment process keeps
 * its place: its checkpoint and instances are in PostgreSQL.
 */
esc_status reset_read_models(const demo_opts *o, esc_store *st,
                             const esc_projection *projections,
                             long long *deleted, esc_error *err) {
  char ns[ESC_KEY_PREFIX_MAX + 1], pattern[ESC_KEY_PREFIX_MAX + 64];
  esc_status rc = esc_key_namespace(st, NULL, ns, sizeof ns, err);
  if (rc)
    return rc;
  redisContext *c = esc_redis_connect(o->redis_url, err);
  if (!c)
    return err->code;
  rc = take_layout(o, projections, err);
  *deleted = 0;
  for (int i = 0; !rc && i < ORDER_PROJECTION_COUNT; i++) {
    snprintf(pattern, sizeof pattern, "%s:%s:*", ns, projections[i].name);
    rc = redis_delete_matching(c, pattern, deleted, err);
  }
  snprintf(pattern, sizeof pattern, "%s:%s", ns, SAGA_KEYS);
  if (!rc)
    rc = redis_delete_matching(c, pattern, deleted, err);
  redisFree(c);
  return rc;
}

/*
 * Keys of a release before key namespaces: a projection P's keys were
 * "P:generation", "P:g<G>:...", and are now "NS:P:...". A worker of this
 * release that finds a store's old keys refuses to build beside them (it
 * would serve an empty model and forget the real one), and
 * esc_projection_move_keys moves them into the namespace, so the model
 * keeps serving and every partition resumes from its checkpoint: nothing
 * empty, nothing applied twice. docs/decisions/0014-key-namespace-upgrade.md
 * says why it goes this way.
 */
#include "projection_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What Redis holds of projection proj from before namespaces. */
struct legacy {
  bool found;           /* "P:generation" exists */
  char generation[24];  /* its value */
  bool foreign;         /* "P:owner" names another store */
  char owner[64];
};

static esc_status legacy_read(esc__redis *r, const char *proj,
                              const char *identity, struct legacy *out,
                              esc_error *err) {
  char base[ESC__KEY_MAX], key[ESC__KEY_MAX];
  bool owned = false;
  *out = (struct legacy){.found = false};
  esc__key_legacy_base(base, sizeof base, proj);
  esc__key_generation(key, sizeof key, base);
  esc_status rc = esc__redis_get(r, key, out->generation,
                                 sizeof out->generation, &out->found, err);
  if (rc || !out->found)
    return rc == ESC_EINVAL ? ESC_OK : rc; /* not a generation of ours */
  esc__key_owner(key, sizeof key, base);
  rc = esc__redis_get(r, key, out->owner, sizeof out->owner, &owned, err);
  /* An owner too long to be an identity is not this store's either. */
  out->foreign = rc == ESC_EINVAL || (owned && strcmp(out->owner, identity));
  if (rc == ESC_EINVAL)
    snprintf(out->owner, sizeof out->owner, "(not an identity)");
  return rc == ESC_EINVAL ? ESC_OK : rc;
}

esc_status esc__legacy_refuse(esc__redis *r, const char *proj,
                              const char *identity, const char *schema,
                              esc_error *err) {
  struct legacy old;
  esc_status rc = legacy_read(r, proj, identity, &old, err);
  if (rc || !old.found || old.foreign)
    return rc;
  /* Short enough for esc_error's 256 bytes with long names: the command
   * is what the operator needs; docs/operations.md says the rest. */
  return esc_error_set(err, ESC_EBUSY,
                       "projection %s: its Redis keys (%s:*, generation %s) "
                       "are from a release before key namespaces; stop the "
                       "workers of schema %s and run `esc projections "
                       "move-keys %s --schema %s`",
                       proj, proj, old.generation, schema, proj, schema);
}

/* ------------------------------------------------------------- moving --- */

/*
 * KEYS: old keys; ARGV[1]: "NS:". Renames every one that still exists to
 * ARGV[1] .. key, in one step; if any of their new names is taken, moves
 * none and returns {0, that name}; else {1, how many moved}. A key gone
 * already was moved by an earlier, interrupted run.
 */
static const char MOVE_SCRIPT[] =
    "for _, k in ipairs(KEYS) do "
    "  if redis.call('EXISTS', k) == 1 and "
    "     redis.call('EXISTS', ARGV[1] .. k) == 1 then "
    "    return {0, ARGV[1] .. k} end "
    "end "
    "local n = 0 "
    "for _, k in ipairs(KEYS) do "
    "  if redis.call('EXISTS', k) == 1 then "
    "    redis.call('RENAME', k, ARGV[1] .. k) n = n + 1 end "
    "end "
    "return {1, n}";

#define MOVE_BATCH 200

static esc_status move_batch(esc__redis *r, const char *to, size_t n,
                             const char **keys, size_t *moved,
                             esc_error *err) {
  const char *argv[4 + MOVE_BATCH + 1];
  char count[24];
  redisReply *reply = NULL;
  if (!n)
    return ESC_OK;
  snprintf(count, sizeof count, "%zu", n);
  argv[0] = "EVAL";
  argv[1] = MOVE_SCRIPT;
  argv[2] = count;
  memcpy(argv + 3, keys, n * sizeof *keys);
  argv[3 + n] = to;
  esc_status rc = esc__redis_run(r, (int)(4 + n), argv, NULL, &reply, err);
  if (!rc && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
              reply->element[0]->type != REDIS_REPLY_INTEGER))
    rc = esc_error_set(err, ESC_EIO, "move keys: unexpected reply");
  else if (!rc && reply->element[0]->integer == 0)
    rc = esc_error_set(err, ESC_ECONFLICT,
                       "move keys: %.120s exists already; nothing of this "
                       "batch was moved, and no key is overwritten",
                       reply->element[1]->str ? reply->element[1]->str : "?");
  else if (!rc)
    *moved += (size_t)reply->element[1]->integer;
  freeReplyObject(reply);
  return rc;
}

/* Moves every generation's keys ("P:g<G>:..."), a SCAN page at a time.
 * Keys of another shape that happen to start with "P:" are left alone. */
static esc_status move_generations(esc__redis *r, const char *proj,
                                   const char *to, size_t *moved,
                                   esc_error *err) {
  char base[ESC__KEY_MAX], match[ESC__KEY_MAX + 4], cursor[32] = "0";
  esc__key_legacy_base(base, sizeof base, proj);
  snprintf(match, sizeof match, "%s:g*", base);
  esc_status rc = ESC_OK;
  do {
    redisReply *page = NULL;
    const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
    rc = esc__redis_run(r, 6, argv, NULL, &page, err);
    if (!rc && (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
                page->element[0]->type != REDIS_REPLY_STRING ||
                page->element[1]->type != REDIS_REPLY_ARRAY))
      rc = esc_error_set(err, ESC_EIO, "move keys: unexpected SCAN reply");
    if (!rc) {
      snprintf(cursor, sizeof cursor, "%s", page->element[0]->str);
      const redisReply *keys = page->element[1];
      const char *batch[MOVE_BATCH];
      size_t n = 0;
      for (size_t i = 0; i < keys->elements && !rc; i++) {
        const char *k = keys->element[i]->str;
        if (!k || !esc__key_in_a_generation(k, base))
          continue;
        batch[n++] = k;
        if (n == MOVE_BATCH) {
          rc = move_batch(r, to, n, batch, moved, err);
          n = 0;
        }
      }
      if (!rc)
        rc = move_batch(r, to, n, batch, moved, err);
    }
    freeReplyObject(page);
  } while (!rc && strcmp(cursor, "0") != 0);
  return rc;
}

/* The projection's own keys, in one step and last: "P:generation" goes
 * with them, so until it has moved the workers keep refusing and a new
 * run finishes the job. */
static esc_status move_fixed(esc__redis *r, const char *proj, const char *to,
                             size_t *moved, esc_error *err) {
  char base[ESC__KEY_MAX], k[6][ESC__KEY_MAX];
  esc__key_legacy_base(base, sizeof base, proj);
  esc__key_owner(k[0], sizeof k[0], base);
  esc__key_version(k[1], sizeof k[1], base);
  esc__key_partitions(k[2], sizeof k[2], base);
  esc__key_rebuild(k[3], sizeof k[3], base);
  esc__key_rebuild_ready(k[4], sizeof k[4], base);
  esc__key_generation(k[5], sizeof k[5], base);
  const char *keys[6] = {k[0], k[1], k[2], k[3], k[4], k[5]};
  return move_batch(r, to, 6, keys, moved, err);
}

/* ------------------------------------------------------------- leases --- */

/* Takes every lease of the projection's layout (and of a pending
 * repartition) on conn: no worker of this store, of either release, can
 * apply while the keys move. ESC_EBUSY when a worker holds one. */
static esc_status take_leases(PGconn *conn, const char *schema,
                              const char *proj, const struct esc__layout *l,
                              esc_error *err) {
  int counts[2] = {l->partitions, l->repartition_to};
  for (int c = 0; c < 2; c++) {
    for (int p = 0; p < counts[c]; p++) {
      bool got = false;
      esc_status rc = esc__lease_try(
          conn, esc__lease_key(schema, proj, counts[c], p), &got, err);
      if (rc)
        return rc;
      if (!got)
        return esc_error_set(err, ESC_EBUSY,
                             "move keys of %s: a worker holds partition %d "
                             "of %d; stop every worker of schema %s first",
                             proj, p, counts[c], schema);
    }
  }
  return ESC_OK;
}

/* ------------------------------------------------------------- public --- */

/* With the leases held: checks what is there, then moves it. */
static esc_status move_all(esc__redis *r, const char *proj,
                           const char *identity, const char *ns,
                           size_t *moved, esc_error *err) {
  struct legacy old;
  char to[ESC__NAMESPACE_SIZE + 1], base[ESC__KEY_MAX], key[ESC__KEY_MAX];
  bool exists = false;
  char value[24];
  esc_status rc = legacy_read(r, proj, identity, &old, err);
  if (rc || !old.found)
    return rc; /* nothing to move (or moved already) */
  if (old.foreign)
    return esc_error_set(err, ESC_ECONFLICT,
                         "move keys of %s: %s:owner is %s, another store "
                         "(this one is %s); its keys are not this store's "
                         "to take",
                         proj, proj, old.owner, identity);
  esc__key_base(base, sizeof base, ns, proj);
  esc__key_generation(key, sizeof key, base);
  rc = esc__redis_get(r, key, value, sizeof value, &exists, err);
  if (!rc && exists)
    return esc_error_set(err, ESC_ECONFLICT,
                         "move keys of %s: %s exists already (this store "
                         "has built it in its namespace); delete one of "
                         "the two: %s:* or %s:*",
                         proj, key, proj, base);
  /* This store's claim in the namespace, made by a worker of this release
   * before it refused, says what the old one says: it gives way. */
  char owner[64];
  esc__key_owner(key, sizeof key, base);
  if (!rc)
    rc = esc__redis_get(r, key, owner, sizeof owner, &exists, err);
  if (!rc && exists && strcmp(owner, identity) == 0) {
    const char *del[] = {"DEL", key};
    rc = esc__redis_run(r, 2, del, NULL, NULL, err);
  }
  snprintf(to, sizeof to, "%s:", ns);
  if (!rc)
    rc = move_generations(r, proj, to, moved, err);
  if (!rc)
    rc = move_fixed(r, proj, to, moved, err);
  return rc;
}

esc_status esc_projection_move_keys(const char *pg_url, const char *redis_url,
                                    const char *schema, const char *key_prefix,
                                    const char *projection, size_t *moved,
                                    esc_error *err) {
  const char *s = schema ? schema : "esc";
  const char *configured = esc__key_prefix_configured(key_prefix);
  char identity[ESC__IDENTITY_SIZE] = "", ns[ESC__NAMESPACE_SIZE];
  struct esc__layout layout;
  bool found = false;
  size_t count = 0;
  esc__redis *r = NULL;
  if (moved)
    *moved = 0;
  if (!esc__projection_name_valid(projection, err) ||
      (configured && !esc__key_prefix_valid(configured, err)))
    return ESC_EINVAL;
  /* The leases live as long as this session: ended, it frees them all. */
  PGconn *conn = esc__pg_connect(pg_url, "esc-move-keys", err);
  if (!conn)
    return esc__pg_failed(err);
  esc_status rc = esc__pg_read_identity(conn, s, identity, err);
  if (!rc && !identity[0])
    rc = esc_error_set(err, ESC_EINVAL, "schema %s has no identity; run "
                       "`esc migrate`", s);
  if (!rc)
    rc = esc__namespace(ns, sizeof ns, configured, identity, err);
  if (!rc)
    rc = esc__registry_read(conn, s, projection, &layout, &found, err);
  if (!rc && !found)
    rc = esc_error_set(err, ESC_ENOTFOUND, "no projection %s in schema %s",
                       projection, s);
  if (!rc)
    rc = take_leases(conn, s, projection, &layout, err);
  if (!rc && !(r = esc__redis_connect(redis_url ? redis_url
                                                : esc_default_redis_url(),
                                      err)))
    rc = err && err->code ? err->code : ESC_ECONN;
  if (!rc)
    rc = move_all(r, projection, identity, ns, &count, err);
  esc__redis_free(r);
  PQfinish(conn);
  if (moved)
    *moved = count;
  if (!rc)
    esc__clear(err);
  return rc;
}

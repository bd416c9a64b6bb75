/*
 * Generations: queries read P:generation; the live track of every
 * partition writes it. A rebuild writes generation+1 from the start of the
 * log beside it; when every partition's rebuild has caught up with its live
 * track, one script switches P:generation, and the old keys are deleted a
 * slice at a time between batches (SCAN + UNLINK, never KEYS).
 *
 * When Redis lost the generation key (FLUSHALL, a restart without
 * persistence) the projection starts a fresh generation and rebuilds from
 * the log on its own. Fresh generations are numbered by the clock (seconds x
 * 1000), so they cannot collide with keys a partial loss left behind.
 *
 * Every generation has one partition layout, fixed when it is created: the
 * serving one's in P:partitions, a rebuild's in its hash. A worker runs a
 * generation's tracks only when that count is its own, so during a
 * repartition the old count keeps the serving generation up to date while
 * the new count builds the next one (layout.c says which counts may run).
 */
#include "worker_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long an old generation's keys outlive a switch. 0: deleted at once.
 * A grace period would protect clients that cache the generation number
 * and read with plain GETs (<esc/query.h> reads atomically and needs none),
 * but the pending deletion lives in the switching worker's memory, and a
 * restart within the grace period would leave the old keys behind: a
 * grace period needs the retirement recorded in Redis first. */
#define DELETE_GRACE_MS 0

static esc_status get_i64(esc_worker *w, const char *key, int64_t *out,
                          bool *exists, esc_error *err) {
  char buf[32];
  esc_status rc = esc__redis_get(w->redis, key, buf, sizeof buf, exists, err);
  if (!rc && *exists)
    *out = strtoll(buf, NULL, 10);
  return rc;
}

/* SET key value NX; *won tells whether ours was set. */
static esc_status set_nx_text(esc_worker *w, const char *key, const char *value,
                              bool *won, esc_error *err) {
  redisReply *reply = NULL;
  const char *argv[] = {"SET", key, value, "NX"};
  esc_status rc = esc__redis_run(w->redis, 4, argv, NULL, &reply, err);
  *won = !rc && reply && reply->type == REDIS_REPLY_STATUS;
  freeReplyObject(reply);
  return rc;
}

/* A generation number for a fresh start: the clock, in seconds. */
static int64_t fresh_generation(void) {
  /* Spaced by 1000 so that rebuilds (g + 1) never reach the next one. */
  return (int64_t)time(NULL) * 1000;
}

static int def_partitions(const struct proj *pj) {
  return esc__def_partitions(pj->def);
}

/* Creates a generation's keys in one step, if the generation key is still
 * absent: the generation, version and partition count, and every
 * partition's checkpoint at the start of the log. */
static const char CREATE_SCRIPT[] =
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end "
    "redis.call('SET', KEYS[2], ARGV[2]) "
    "redis.call('SET', KEYS[3], ARGV[3]) "
    "for p = 0, tonumber(ARGV[3]) - 1 do "
    "  redis.call('SET', ARGV[4] .. ':g' .. ARGV[1] .. ':p' .. p .. "
    "    ':checkpoint', '0/0') "
    "end "
    "return 1";

/* Creates the serving generation when there is none: the first build, or
 * after Redis lost its data. */
static esc_status create_serving(esc_worker *w, struct proj *pj,
                                 esc_error *err) {
  char gen_key[ESC__KEY_MAX], ver_key[ESC__KEY_MAX], parts_key[ESC__KEY_MAX];
  char gen[24], ver[16], parts[16];
  redisReply *reply = NULL;
  bool exists = false;
  esc__key_generation(gen_key, sizeof gen_key, pj->base);
  esc__key_version(ver_key, sizeof ver_key, pj->base);
  esc__key_partitions(parts_key, sizeof parts_key, pj->base);
  snprintf(gen, sizeof gen, "%" PRId64, fresh_generation());
  snprintf(ver, sizeof ver, "%" PRId32, pj->def->version);
  snprintf(parts, sizeof parts, "%d", def_partitions(pj));
  const char *argv[] = {"EVAL",    CREATE_SCRIPT, "3", gen_key, ver_key,
                        parts_key, gen,           ver, parts,   pj->base};
  esc_status rc = esc__redis_run(w->redis, 10, argv, NULL, &reply, err);
  if (!rc && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer)
    esc__worker_log(w, "%s: building generation %s from the log", pj->def->name,
                    gen);
  freeReplyObject(reply);
  if (!rc)
    rc = get_i64(w, gen_key, &pj->serving, &exists, err);
  return rc;
}

/* Claims the projection's keys for this store, or finds them claimed:
 * the owner key is set when absent (a new projection, or one that Redis
 * lost), and returns who holds it. */
static const char OWNER_SCRIPT[] = "local v = redis.call('GET', KEYS[1]) "
                                   "if v then return v end "
                                   "redis.call('SET', KEYS[1], ARGV[1]) "
                                   "return ARGV[1]";

/* Keys that follow another store's log hold positions of that log: a
 * worker of this store would skip or repeat events against them. */
static esc_status check_owner(esc_worker *w, struct proj *pj, esc_error *err) {
  char key[ESC__KEY_MAX];
  redisReply *reply = NULL;
  esc__key_owner(key, sizeof key, pj->base);
  const char *argv[] = {"EVAL", OWNER_SCRIPT, "1", key, w->identity};
  esc_status rc = esc__redis_run(w->redis, 5, argv, NULL, &reply, err);
  if (!rc && (!reply || reply->type != REDIS_REPLY_STRING))
    rc = esc_error_set(err, ESC_EIO, "%s: unexpected reply claiming %s",
                       pj->def->name, key);
  else if (!rc && strcmp(reply->str, w->identity) != 0)
    /* Within esc_error's 256 bytes for the longest names: the key shows
     * the namespace; docs/projections.md says the rest. */
    rc = esc_error_set(err, ESC_EBUSY,
                       "projection %s: its Redis keys belong to another "
                       "event store (%s is %.36s, not schema %s's): give "
                       "each store its own key prefix, or delete %s:* to "
                       "build them from this store's log",
                       pj->def->name, key, reply->str, w->schema, pj->base);
  freeReplyObject(reply);
  return rc;
}

/* What P:rebuild says: the generation being built (0: none, or a stale
 * marker not above the serving one), whether it is of this worker's
 * version, and its partition count. */
struct rebuild_hash {
  int64_t generation;
  bool my_version;
  int partitions;
};

static esc_status read_rebuild(esc_worker *w, const struct proj *pj,
                               struct rebuild_hash *out, esc_error *err) {
  char rb_key[ESC__KEY_MAX], my_version[16];
  redisReply *reply = NULL;
  *out = (struct rebuild_hash){0, false, 0};
  esc__key_rebuild(rb_key, sizeof rb_key, pj->base);
  snprintf(my_version, sizeof my_version, "%" PRId32, pj->def->version);
  const char *argv[] = {"HMGET", rb_key, "generation", "version", "partitions"};
  esc_status rc = esc__redis_run(w->redis, 5, argv, NULL, &reply, err);
  if (!rc && reply && reply->type == REDIS_REPLY_ARRAY &&
      reply->elements == 3 && reply->element[0]->type == REDIS_REPLY_STRING) {
    redisReply **e = reply->element;
    out->generation = strtoll(e[0]->str, NULL, 10);
    out->my_version =
        e[1]->type != REDIS_REPLY_STRING || strcmp(e[1]->str, my_version) == 0;
    /* Without the field: a rebuild started before the layout was
     * recorded, by workers of the store's layout. */
    out->partitions = e[2]->type == REDIS_REPLY_STRING
                          ? (int)strtol(e[2]->str, NULL, 10)
                          : pj->layout.partitions;
  }
  freeReplyObject(reply);
  if (out->generation <= pj->serving)
    out->generation = 0; /* a stale marker of a finished rebuild */
  return rc;
}

/* A rebuild this worker runs: of its version (a rolling upgrade's other
 * version would write the wrong model) and of its partition count (the
 * generation has that layout; another count would apply some streams
 * twice and others never). */
static bool runs_rebuild(const struct proj *pj, const struct rebuild_hash *rb) {
  return rb->generation && rb->my_version &&
         rb->partitions == def_partitions(pj);
}

esc_status esc__generation_load(esc_worker *w, struct proj *pj,
                                esc_error *err) {
  char gen_key[ESC__KEY_MAX];
  bool exists = false;
  esc__key_generation(gen_key, sizeof gen_key, pj->base);
  esc_status rc = get_i64(w, gen_key, &pj->serving, &exists, err);
  /* Nothing in the namespace may still mean a model under the names of a
   * release before namespaces: then build nothing beside it. */
  if (!rc && !exists)
    rc = esc__legacy_refuse(w->redis, pj->def->name, w->identity, w->schema,
                            err);
  if (!rc)
    rc = check_owner(w, pj, err);
  if (!rc && !exists)
    rc = create_serving(w, pj, err);
  if (rc)
    return rc;
  char parts_key[ESC__KEY_MAX];
  int64_t parts = def_partitions(pj);
  esc__key_partitions(parts_key, sizeof parts_key, pj->base);
  rc = get_i64(w, parts_key, &parts, &exists, err);
  pj->serving_partitions = (int)parts;
  if (rc)
    return rc;
  struct rebuild_hash rb;
  rc = read_rebuild(w, pj, &rb, err);
  pj->rebuilding = rb.generation;
  pj->rebuild_partitions = rb.partitions;
  pj->building = runs_rebuild(pj, &rb) ? rb.generation : 0;
  return rc;
}

static esc_status start_rebuild(esc_worker *w, struct proj *pj, const char *why,
                                esc_error *err);

/* What a track's checkpoint key held. */
enum loaded { LOADED, MISSING, FAILED };

/* Reads a track's checkpoint from Redis. A rebuild track without one
 * starts at the beginning (its generation is being created); for the live
 * track a missing checkpoint means Redis lost it (see
 * esc__generation_vanished), and a "failed ..." one a stopped partition. */
static esc_status load_track(esc_worker *w, struct part *pt, struct track *t,
                             int64_t generation, bool live, enum loaded *state,
                             esc_error *err) {
  char key[ESC__KEY_MAX], cp[ESC_POSITION_TOKEN_MAX + 256];
  bool exists = false;
  esc__key_checkpoint(key, sizeof key, pt->proj->base, generation,
                      pt->index);
  esc_status rc = esc__redis_get(w->redis, key, cp, sizeof cp, &exists, err);
  if (rc)
    return rc;
  if (!exists && !live) {
    bool won = false;
    rc = set_nx_text(w, key, "0/0", &won, err);
    snprintf(cp, sizeof cp, "0/0");
    exists = !rc;
  }
  *state = !exists ? MISSING : strncmp(cp, "failed", 6) == 0 ? FAILED : LOADED;
  t->failure = (struct redis_failure){.pending = false};
  t->stop_reason[0] = '\0';
  if (rc || *state != LOADED) {
    if (*state == FAILED) {
      esc__worker_log(w, "%s/%d g%" PRId64 ": stopped: %s", pt->proj->def->name,
                      pt->index, generation, cp);
      snprintf(t->stop_reason, sizeof t->stop_reason, "%s/%d: %.140s",
               pt->proj->def->name, pt->index, cp);
    }
    return rc;
  }
  esc__ctx_release(&t->ctx);
  esc__ctx_init(&t->ctx, pt->proj->def, pt->proj->base, pt->index, generation);
  t->generation = generation;
  t->has_checkpoint = true;
  t->processed = 0;
  t->idle = false;
  t->busy_since_ms = 0;
  t->reported = false;
  return esc_position_parse(cp, &t->checkpoint, err);
}

esc_status esc__generation_setup(esc_worker *w, struct part *pt,
                                 esc_error *err) {
  struct proj *pj = pt->proj;
  enum loaded live = LOADED, rebuild = LOADED;
  esc_status rc = ESC_OK;
  /* A live track of another partition count is not run (see step). */
  if (pj->serving_partitions == def_partitions(pj))
    rc = load_track(w, pt, &pt->live, pj->serving, true, &live, err);
  if (!rc && live == MISSING && !pj->building)
    rc = start_rebuild(w, pj, "a checkpoint vanished from Redis", err);
  if (!rc && pj->building)
    rc = load_track(w, pt, &pt->rebuild, pj->building, false, &rebuild, err);
  if (!rc && !pj->building)
    pt->rebuild.generation = 0;
  /* Replaying a partition whose checkpoint is lost into the serving
   * generation would apply events twice: it waits for the rebuild. */
  pt->live.stopped = live == FAILED || live == MISSING;
  pt->rebuild.stopped = rebuild == FAILED;
  pt->ready = !rc;
  pt->rebuild_caught_up = false;
  return rc;
}

/* Records a rebuild into serving + 1, unless one is recorded already: a
 * marker naming a generation above ARGV[6] (the serving one). A stale one
 * (a finished rebuild's) is replaced, with its ready set. All fields at
 * once, so nobody reads a generation without its partition count. */
static const char START_SCRIPT[] =
    "local g = redis.call('HGET', KEYS[1], 'generation') "
    "if g and tonumber(g) > tonumber(ARGV[6]) then return 0 end "
    "redis.call('DEL', KEYS[1], KEYS[2]) "
    "redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'version', ARGV[2], "
    "  'partitions', ARGV[3], 'started', ARGV[4], 'reason', ARGV[5]) "
    "return 1";

/* Marks a rebuild into serving + 1 as running (once, whoever comes first),
 * with the partition count new generations get (esc__layout_target):
 * this worker may not be one of the workers that build it. */
static esc_status start_rebuild(esc_worker *w, struct proj *pj, const char *why,
                                esc_error *err) {
  char rb_key[ESC__KEY_MAX], ready_key[ESC__KEY_MAX], gen[24], ver[16],
      parts[16], started[24], serving[24];
  redisReply *reply = NULL;
  int target = esc__layout_target(&pj->layout);
  esc__key_rebuild(rb_key, sizeof rb_key, pj->base);
  esc__key_rebuild_ready(ready_key, sizeof ready_key, pj->base);
  snprintf(gen, sizeof gen, "%" PRId64, pj->serving + 1);
  snprintf(ver, sizeof ver, "%" PRId32, pj->def->version);
  snprintf(parts, sizeof parts, "%d", target);
  snprintf(started, sizeof started, "%" PRId64, esc_now_us());
  snprintf(serving, sizeof serving, "%" PRId64, pj->serving);
  const char *argv[] = {"EVAL", START_SCRIPT, "2",     rb_key, ready_key, gen,
                        ver,    parts,        started, why,    serving};
  esc_status rc = esc__redis_run(w->redis, 11, argv, NULL, &reply, err);
  bool ours =
      !rc && reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
  freeReplyObject(reply);
  if (ours)
    esc__worker_log(w,
                    "%s: rebuilding into generation %s with %d partition%s "
                    "(%s)%s",
                    pj->def->name, gen, target, target == 1 ? "" : "s", why,
                    target == def_partitions(pj)
                        ? ""
                        : "; workers with that many partitions build it");
  if (!rc)
    rc = esc__generation_load(w, pj, err);
  for (size_t i = 0; !rc && i < w->nparts; i++)
    if (w->parts[i].proj == pj)
      w->parts[i].ready = false; /* set up the rebuild tracks */
  return rc;
}

/* Starts the rebuild the picture calls for, if any: a new version, an
 * `esc rebuild` request (a repartition makes one), or a serving generation
 * whose layout is not the one the store wants (a repartition whose request
 * was lost, or Redis keys older than the recorded layout). */
static esc_status start_wanted_rebuild(esc_worker *w, struct proj *pj,
                                       bool requested, esc_error *err) {
  char ver_key[ESC__KEY_MAX], why[96];
  int64_t version = 0;
  bool exists = false;
  esc__key_version(ver_key, sizeof ver_key, pj->base);
  esc_status rc = get_i64(w, ver_key, &version, &exists, err);
  if (!rc && exists && version != pj->def->version)
    return start_rebuild(w, pj, "the projection's version changed", err);
  if (!rc && requested) {
    rc = start_rebuild(w, pj, "requested", err);
    if (!rc)
      rc = esc__registry_rebuild_taken(w->pg, w->schema, pj->def->name, err);
    return rc;
  }
  int target = esc__layout_target(&pj->layout);
  if (!rc && pj->serving_partitions != target) {
    snprintf(why, sizeof why,
             "the serving generation has %d partitions, the store's layout "
             "%d",
             pj->serving_partitions, target);
    return start_rebuild(w, pj, why, err);
  }
  return rc;
}

esc_status esc__generation_check_rebuild(esc_worker *w, struct proj *pj,
                                         esc_error *err) {
  bool exists = false, requested = false;
  /* Redis can lose everything while no batch is applied (FLUSHALL while
   * the worker is idle), and only an apply would notice: look for the
   * generation key on every bookkeeping round too. */
  char gen_key[ESC__KEY_MAX];
  int64_t current = 0;
  esc__key_generation(gen_key, sizeof gen_key, pj->base);
  esc_status rc = get_i64(w, gen_key, &current, &exists, err);
  if (!rc && !exists) {
    esc__worker_log(w,
                    "%s: Redis lost the projection; rebuilding it from "
                    "the log",
                    pj->def->name);
    return esc__generation_reload(w, pj, err);
  }
  /* The layout first: after a repartition's switch a worker of the old
   * count stops here, before its next batch. */
  if (!rc)
    rc = esc__layout_refresh(w, pj, &requested, err);
  if (rc || pj->building)
    return rc;
  /* A rebuild another worker started (it took an `esc rebuild` request)
   * needs this worker's partitions too: the switch waits for all of them.
   * One of another version or partition count is not this worker's to
   * run, nor to replace: it waits for the workers that run it. */
  struct rebuild_hash rb;
  rc = read_rebuild(w, pj, &rb, err);
  pj->rebuilding = rb.generation;
  pj->rebuild_partitions = rb.partitions;
  if (rc)
    return rc;
  if (rb.generation)
    return runs_rebuild(pj, &rb) ? esc__generation_reload(w, pj, err) : ESC_OK;
  return start_wanted_rebuild(w, pj, requested, err);
}

/* Deletes generation gen after the grace period. One deletion is pending
 * at a time: a second switch within the grace period finishes the first
 * deletion now rather than forget it. */
static esc_status schedule_delete(esc_worker *w, struct proj *pj, int64_t gen,
                                  esc_error *err) {
  esc_status rc = ESC_OK;
  while (!rc && pj->deleting && pj->deleting != gen) {
    pj->delete_after_ms = 0;
    rc = esc__generation_delete_step(w, pj, err);
  }
  if (!rc) {
    pj->deleting = gen;
    pj->delete_cursor = 0;
    pj->delete_after_ms = esc__now_ms() + DELETE_GRACE_MS;
  }
  return rc;
}

esc_status esc__generation_try_switch(esc_worker *w, struct part *pt,
                                      esc_error *err) {
  struct proj *pj = pt->proj;
  char ready_key[ESC__KEY_MAX], index[16];
  bool switched = false;
  bool caught_up =
      pt->rebuild.idle &&
      (!pt->live.has_checkpoint ||
       (pt->rebuild.has_checkpoint &&
        esc_position_cmp(&pt->rebuild.checkpoint, &pt->live.checkpoint) >= 0));
  if (!pj->building || !caught_up)
    return ESC_OK;
  pt->rebuild_caught_up = true;
  esc__key_rebuild_ready(ready_key, sizeof ready_key, pj->base);
  snprintf(index, sizeof index, "%d", pt->index);
  const char *argv[] = {"SADD", ready_key, index};
  esc_status rc = esc__redis_run(w->redis, 3, argv, NULL, NULL, err);
  if (!rc)
    rc =
        esc__redis_switch(w->redis, pj->base, pj->serving, pj->building,
                          pj->def->version, def_partitions(pj), &switched, err);
  if (rc || !switched)
    return rc;
  /* A repartition ends here: the new count becomes the store's layout,
   * and workers of the old one refuse from their next bookkeeping round
   * (they apply nothing meanwhile: the serving generation moved). */
  rc = esc__registry_layout_switched(w->pg, w->schema, pj->def->name,
                                     def_partitions(pj), err);
  if (rc)
    return rc;
  esc__worker_log(w,
                  "%s: switched to generation %" PRId64
                  "; deleting generation %" PRId64 " in the background",
                  pj->def->name, pj->building, pj->serving);
  rc = schedule_delete(w, pj, pj->serving, err);
  return rc ? rc : esc__generation_reload(w, pj, err);
}

esc_status esc__generation_reload(esc_worker *w, struct proj *pj,
                                  esc_error *err) {
  int64_t before = pj->serving;
  esc_status rc = esc__generation_load(w, pj, err);
  if (!rc && pj->serving != before && pj->deleting != before && before != 0 &&
      pj->serving == before + 1)
    rc = schedule_delete(w, pj, before, err); /* another worker switched */
  for (size_t i = 0; !rc && i < w->nparts; i++)
    if (w->parts[i].proj == pj)
      w->parts[i].ready = false;
  return rc;
}

esc_status esc__generation_vanished(esc_worker *w, struct part *pt,
                                    struct track *t, esc_error *err) {
  struct proj *pj = pt->proj;
  char gen_key[ESC__KEY_MAX], v[32];
  bool exists = false;
  esc__key_generation(gen_key, sizeof gen_key, pj->base);
  esc_status rc = esc__redis_get(w->redis, gen_key, v, sizeof v, &exists, err);
  if (rc)
    return rc;
  if (!exists) {
    esc__worker_log(w,
                    "%s: Redis lost the projection; rebuilding it from "
                    "the log",
                    pj->def->name);
    return esc__generation_reload(w, pj, err);
  }
  /* Only a checkpoint was lost: this track stops (replaying it would apply
   * events twice) and the serving generation is rebuilt beside it. */
  t->stopped = true;
  esc__worker_log(w, "%s/%d g%" PRId64 ": checkpoint vanished from Redis",
                  pj->def->name, pt->index, t->generation);
  if (pj->building)
    return ESC_OK;
  return start_rebuild(w, pj, "a checkpoint vanished from Redis", err);
}

esc_status esc__generation_delete_step(esc_worker *w, struct proj *pj,
                                       esc_error *err) {
  if (!pj->deleting || esc__now_ms() < pj->delete_after_ms)
    return ESC_OK;
  esc_status rc = esc__redis_delete_generation(
      w->redis, pj->base, pj->deleting, &pj->delete_cursor, 1000, err);
  if (!rc && pj->delete_cursor == 0) {
    esc__worker_log(w, "%s: generation %" PRId64 " deleted", pj->def->name,
                    pj->deleting);
    pj->deleting = 0;
  }
  return rc;
}

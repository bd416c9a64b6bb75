/*
 * <esc_internal/readmodel.h> - where read models live: Redis connections
 * and the key layout of projections, shared by the projections module and
 * the queries above it. Internal: not installed, never seen by users
 * (docs/architecture.md).
 *
 * Redis key layout of a projection named P (docs/projections.md). Every
 * key starts with the store's namespace NS (esc__namespace: a configured
 * key prefix, else "esc-<store identity>"); P below stands for "NS:P",
 * the key base (esc__key_base), which is what the esc__key_* functions
 * take:
 *   P:generation                 the generation queries read (decimal)
 *   P:version                    the projection version it was built with
 *   P:partitions                 and its partition count
 *   P:owner                      identity of the event store whose log
 *                                the keys follow (esc_store_identity)
 *   P:g<G>:p<N>:checkpoint       partition N's position token in generation G:
 *                                "0/0" when a generation is created, so a
 *                                missing one always means Redis lost it
 *                                (before issue 10, "failed <token>: <why>"
 *                                marked a failed command: still read as a
 *                                stopped partition)
 *   P:g<G>:p<N>:checkpoint:partial
 *                                "<token> <k>": the event at <token>, next
 *                                after the checkpoint, failed in Redis after
 *                                its first k commands took effect; a batch
 *                                that starts with it skips those. Gone once
 *                                the checkpoint moves (apply.lua)
 *   P:g<G>:p<N>:stopped          "<token> <why>": stopped (on_error STOP) at
 *                                the event after checkpoint <token>, so the
 *                                status can say why; stale once the
 *                                checkpoint is elsewhere
 *   P:g<G>:...                   the read model (esc_ctx_key)
 *   P:g<G>:dl:<event uuid>       a dead letter's retry was applied (guard);
 *                                "partial <k>" while only k of its commands
 *                                took effect (a retry that failed in Redis)
 *   P:rebuild                    hash {generation, version, partitions,
 *                                started, reason} while generation G+1 is
 *                                being built with that many partitions
 *                                (no "partitions": the store's layout, a
 *                                rebuild started before migration 6)
 *   P:rebuild:ready              set of partitions whose rebuild caught up
 *
 * PostgreSQL (eventstore/sql/003_projections.sql, 006_partition_layout.sql):
 * <schema>.projections (what workers run, the partition layout, rebuild
 * requests) and <schema>.dead_letters.
 *
 * A generation has exactly one partition layout, fixed when it is created
 * (P:partitions for the serving one, the rebuild hash's "partitions" for
 * the one being built), and a worker applies only into generations of its
 * own count. The store's layout in PostgreSQL decides which counts may run
 * at all (docs/decisions/0012-partition-layout.md).
 */
#ifndef ESC_INTERNAL_READMODEL_H
#define ESC_INTERNAL_READMODEL_H

#include <esc/projection.h>
#include <hiredis/hiredis.h>

#define ESC__PROJECTION_NAME_MAX 48
#define ESC__KEY_MAX 256

/* ------------------------------------------------------------ keys.c -- */

/* Validates a projection name: [a-z0-9_]+, 1..48 bytes. */
bool esc__projection_name_valid(const char *name, esc_error *err);
/* Validates a configured key prefix: [A-Za-z0-9_.-]+, 1..64 bytes. */
bool esc__key_prefix_valid(const char *prefix, esc_error *err);

/* Room for a namespace and its NUL. */
#define ESC__NAMESPACE_SIZE (ESC_KEY_PREFIX_MAX + 1)
/* The prefix a caller configured: key_prefix, else ESC_KEY_PREFIX when
 * set and not empty, else NULL (the namespace is derived). */
const char *esc__key_prefix_configured(const char *key_prefix);
/* The store's namespace into out (ESC__NAMESPACE_SIZE): configured (what
 * esc__key_prefix_configured returned) when not NULL, validated
 * (ESC_EINVAL saying what is wrong), else "esc-" and the store's identity
 * (esc_store_identity, formatted). */
esc_status esc__namespace(char *out, size_t size, const char *configured,
                          const char *identity, esc_error *err);
/* "NS:P": where every key of projection proj in namespace ns starts. */
void esc__key_base(char *out, size_t size, const char *ns, const char *proj);

/* The functions below take the key base ("NS:P"). */

void esc__key_generation(char *out, size_t size, const char *base);
void esc__key_version(char *out, size_t size, const char *base);
/* "P:partitions": the partition count the serving generation was built
 * with. */
void esc__key_partitions(char *out, size_t size, const char *base);
void esc__key_checkpoint(char *out, size_t size, const char *base,
                         int64_t generation, int partition);
/* "<checkpoint token> <why>": the partition stopped (on_error STOP) at the
 * event after that checkpoint; stale once the checkpoint moved on. */
void esc__key_stopped(char *out, size_t size, const char *base,
                      int64_t generation, int partition);
/* "P:g<G>:" */
void esc__key_prefix(char *out, size_t size, const char *base,
                     int64_t generation);
void esc__key_rebuild(char *out, size_t size, const char *base);
/* "P:owner": the identity of the store the projection's keys belong to. */
void esc__key_owner(char *out, size_t size, const char *base);
void esc__key_rebuild_ready(char *out, size_t size, const char *base);
void esc__key_dead_letter_guard(char *out, size_t size, const char *base,
                                int64_t generation, const esc_uuid *event);

/* "P": the base of projection proj's keys in a release before key
 * namespaces (legacy.c moves them into the namespace). */
void esc__key_legacy_base(char *out, size_t size, const char *proj);
/* Whether key is one of a generation's keys under base ("<base>:g<G>:..."):
 * a read-model key, checkpoint, stop record or dead-letter guard. */
bool esc__key_in_a_generation(const char *key, const char *base);

/* ------------------------------------------------------------ redis.c -- */

typedef struct esc__redis esc__redis;

/* Connects (redis://host:port[/db]); NULL and err on failure. */
esc__redis *esc__redis_connect(const char *url, esc_error *err);
void esc__redis_free(esc__redis *r);
/* Drops and re-opens the connection (scripts are loaded again lazily). */
esc_status esc__redis_reconnect(esc__redis *r, esc_error *err);
bool esc__redis_ok(const esc__redis *r);

/* Runs one command; *reply (may be NULL: discarded) is freed by the
 * caller with freeReplyObject. Error replies are ESC_EIO with their text. */
esc_status esc__redis_run(esc__redis *r, int argc, const char **argv,
                          const size_t *argvlen, redisReply **reply,
                          esc_error *err);

/* GET: *exists false when the key is absent. */
esc_status esc__redis_get(esc__redis *r, const char *key, char *out,
                          size_t size, bool *exists, esc_error *err);

#endif

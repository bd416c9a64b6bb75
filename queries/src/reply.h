/*
 * reply.h - what the query layer makes of Redis replies. A reply comes
 * from a server esc does not control (a broken one, a hostile one, a
 * proxy in between), so nothing in it is used before its type, element
 * count and size are checked: a reply of another shape is ESC_EIO naming
 * what was expected, never a read out of bounds. Kept apart from the
 * round trips (query.c) so fuzz/fuzz_query_reply.c can feed it arbitrary
 * RESP bytes.
 */
#ifndef ESC_QUERY_REPLY_H
#define ESC_QUERY_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include <esc/query.h>

/* The read script's {generation, reply}: *inner is the command's reply
 * (inside whole). {false} is ESC_ENOTFOUND: the projection has never been
 * built. */
esc_status esc__query_unwrap(const redisReply *whole, const char *projection,
                             const redisReply **inner, esc_error *err);

/* A GET's value into value[size] (*exists false for nil). */
esc_status esc__query_value(const redisReply *r, const char *projection,
                            char *value, size_t size, bool *exists,
                            esc_error *err);

/* A flat array into out: (name, value) pairs (stride 2), (name, score)
 * pairs (stride 2, scored) or names (stride 1). nil is an empty result. */
esc_status esc__query_items(const redisReply *r, const char *projection,
                            int stride, bool scored, esc_query_items *out,
                            esc_error *err);

/* The checkpoints script's {generation, partitions, cp0, cp1, ...}:
 * *yes when every partition's checkpoint is at or after token. hint > 0
 * is the caller's partition count, refused (ESC_EINVAL) when it is not
 * the serving generation's. {false}: not built, *yes false. */
esc_status esc__query_passed(const redisReply *r, const char *projection,
                             int hint, const esc_position *token, bool *yes,
                             esc_error *err);

#endif

/*
 * Internals of the command module shared between its files. Not
 * installed. What the test kit and processes share (deciding and
 * folding) is in <esc_internal/decide.h>.
 */
#ifndef ESC_COMMAND_INT_H
#define ESC_COMMAND_INT_H

#include <esc/command.h>
#include <esc_internal/decide.h>
#include <esc_internal/load.h>

/*
 * Loads a stream into state (fresh from esc__state_new): the newest usable
 * snapshot, then every event after it. A missing stream is version 0; a
 * tombstoned one is ESC_EDELETED; a truncated one that no usable snapshot
 * covers is ESC_ETRUNCATED (the shared loader of <esc_internal/load.h>).
 */
esc_status esc__load(esc_store *store, const esc_decider *decider,
                     const char *stream_id, void *state,
                     struct esc__folder *folder, struct esc__load_info *info,
                     esc_error *err);

/* ESC_EINVAL unless stream is a valid id of the decider's category; the
 * message starts with what ("execute"). */
esc_status esc__check_target(const esc_decider *d, const char *stream,
                             const char *what, esc_error *err);

/* Encodes state (folded up to version) with d->encode_state and stores it
 * as the stream's snapshot (truncate.c). */
esc_status esc__snapshot_store(esc_store *store, const esc_decider *d,
                               const char *stream, int64_t version,
                               const void *state, esc_error *err);

/* Event i of a command: UUIDv5(command id, decimal i). */
esc_uuid esc__command_event_id(const esc_uuid *command_id, size_t i);

/*
 * Looks for an earlier execution of command cmd (first_result.c). *found
 * says whether there was one; r then holds its result with duplicate set:
 * the events it stored (also when truncation removed them since), or the
 * outcome recorded for one that stored none (domain_code > 0: rejected).
 * A command id used on another stream is ESC_EDUPLICATE.
 */
esc_status esc__first_result(esc_store *store, const char *stream,
                             const esc_uuid *cmd, esc_command_result *r,
                             bool *found, esc_error *err);

#endif

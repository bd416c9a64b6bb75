/*
 * esc/status.h — every status code, defined once.
 *
 * ESC_STATUS_LIST(X) calls X(name, value, message, key, exit) per code:
 *   name     the enum constant (<esc/store.h> makes the enum from it)
 *   value    its number: append-only, never renumbered or reused
 *   message  what esc_strerror says
 *   key      the stable snake_case name the CLI prints in --json errors
 *   exit     the esc CLI's exit code for it (0 ok, 1 other error,
 *            3 conflict, 4 not found, 5 connection, 6 invalid input,
 *            7 timed out; 2 is usage, which no status maps to)
 *
 * What each code means is documented with the enum in <esc/store.h>.
 */
#ifndef ESC_STATUS_H
#define ESC_STATUS_H

#define ESC_STATUS_LIST(X)                                                     \
  X(ESC_OK, 0, "ok", "ok", 0)                                                  \
  X(ESC_EINVAL, 1, "invalid input", "invalid_input", 6)                        \
  X(ESC_ECONFLICT, 2, "concurrency conflict", "conflict", 3)                   \
  X(ESC_ENOTFOUND, 3, "not found", "not_found", 4)                             \
  X(ESC_EDUPLICATE, 4, "event id reused", "duplicate", 6)                      \
  X(ESC_EDELETED, 5, "stream deleted", "deleted", 4)                           \
  X(ESC_ECONN, 6, "connection failed", "connection", 5)                        \
  X(ESC_EIO, 7, "database error", "database", 1)                               \
  X(ESC_ENOMEM, 8, "out of memory", "out_of_memory", 1)                        \
  X(ESC_ETIMEDOUT, 9, "timed out", "timed_out", 7)                             \
  X(ESC_EBUSY, 10, "busy", "busy", 1)                                          \
  X(ESC_EREJECTED, 11, "rejected", "rejected", 1)                              \
  X(ESC_ECORRUPT, 12, "log breaks a guarantee", "corrupt", 1)                  \
  X(ESC_EUNKNOWN, 13, "outcome unknown", "outcome_unknown", 5)                 \
  X(ESC_ETRUNCATED, 14, "stream truncated, no snapshot covers it",             \
    "truncated", 1)

#endif /* ESC_STATUS_H */

/*
 * <esc/testkit.h> - given / when / then for deciders, on top of cmocka.
 *
 * Domain logic is tested without servers: given some past events, when a
 * command is decided, then exactly these events (or this domain error)
 * come out. Past events go through the real codec and upcasters, so a test
 * can also feed old schema versions.
 *
 *   esc_scenario *s = esc_scenario_new(&account_decider);
 *   esc_given(s, &account_opened, &(account_opened_t){.owner = "ann"});
 *   esc_when(s, &(account_cmd){.kind = DEPOSIT, .amount = 50});
 *   esc_then(s, &money_deposited, &(money_deposited_t){.amount = 50});
 *   esc_then_end(s);
 *   esc_scenario_free(s);
 *
 * Failures end the cmocka test at the caller's file and line with a
 * message that shows expected and actual events as JSON. esc_then compares
 * type, schema version and the exact msgpack bytes; esc_given may follow
 * esc_when to build multi-step scenarios. Link esc::testkit (it links
 * cmocka). The calls are macros over *_at functions that take the caller's
 * __FILE__ and __LINE__.
 *
 * The second half of this header is the same for process managers
 * (<esc/process.h>): esc_process_scenario.
 */
#ifndef ESC_TESTKIT_H
#define ESC_TESTKIT_H

#include <esc/command.h>
#include <esc/process.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esc_scenario esc_scenario;

/* A scenario on a fresh state (decider->init). The decider is borrowed.
 * An unusable decider fails the test. */
ESC_API esc_scenario *esc_scenario_new_at(const esc_decider *decider,
                                          const char *file, int line);
#define esc_scenario_new(decider)                                              \
  esc_scenario_new_at((decider), __FILE__, __LINE__)
ESC_API void esc_scenario_free(esc_scenario *s);

/* A past event: encoded with its type's codec, then folded (decode +
 * evolve), as if read from the log at the next stream version. */
ESC_API void esc_given_at(esc_scenario *s, const esc_event_type *type,
                          const void *event, const char *file, int line);
#define esc_given(s, type, ...)                                                \
  esc_given_at((s), (type), __VA_ARGS__, __FILE__, __LINE__)

/* A past event as stored bytes of any schema version: upcast if older. */
ESC_API void esc_given_stored_at(esc_scenario *s, const char *type_name,
                                 int32_t schema_version, const void *msgpack,
                                 size_t len, const char *file, int line);
#define esc_given_stored(s, type_name, schema_version, msgpack, len)           \
  esc_given_stored_at((s), (type_name), (schema_version), (msgpack), (len),    \
                      __FILE__, __LINE__)

/* Past events given as JSON (converted to msgpack), e.g. for old schema
 * versions: esc_given_json(s, "OrderPlaced", 1, "{\"total\": 5}"). */
ESC_API void esc_given_json_at(esc_scenario *s, const char *type_name,
                               int32_t schema_version, const char *json,
                               const char *file, int line);
#define esc_given_json(s, type_name, schema_version, json)                     \
  esc_given_json_at((s), (type_name), (schema_version), (json), __FILE__,      \
                    __LINE__)

/* Decides the command on the state built so far. */
ESC_API void esc_when_at(esc_scenario *s, const void *command, const char *file,
                         int line);
#define esc_when(s, ...) esc_when_at((s), __VA_ARGS__, __FILE__, __LINE__)

/* The next emitted event must be of this type and encode to the same bytes
 * as *expected. */
ESC_API void esc_then_at(esc_scenario *s, const esc_event_type *type,
                         const void *expected, const char *file, int line);
#define esc_then(s, type, ...)                                                 \
  esc_then_at((s), (type), __VA_ARGS__, __FILE__, __LINE__)

/* No further events were emitted (and the command was not rejected). */
ESC_API void esc_then_end_at(esc_scenario *s, const char *file, int line);
#define esc_then_end(s) esc_then_end_at((s), __FILE__, __LINE__)

/* The command was rejected with this code; when msg_part is not NULL the
 * message must contain it. Nothing may have been emitted. */
ESC_API void esc_then_rejected_at(esc_scenario *s, int code,
                                  const char *msg_part, const char *file,
                                  int line);
#define esc_then_rejected(s, code, msg_part)                                   \
  esc_then_rejected_at((s), (code), (msg_part), __FILE__, __LINE__)

/* The state after the given events (for asserting on evolve itself). */
ESC_API const void *esc_scenario_state(const esc_scenario *s);

/* How many events the last esc_when emitted. */
ESC_API size_t esc_scenario_emitted(const esc_scenario *s);

/* ------------------------------------------------------------------------
 * Process managers
 * ------------------------------------------------------------------------ */

/*
 * given / when / then for one instance of a process manager, without
 * servers, through the same core the runtime uses: every input is
 * recorded in an in-memory instance stream (encoded and folded back, so
 * the record codec is exercised too) and its decisions come out with the
 * ids the runtime would use.
 *
 *   esc_process_scenario *s = esc_process_scenario_new(&fulfillment);
 *   esc_process_given_event(s, "order-1", &ORDER_CONFIRMED, &confirmed);
 *   esc_process_when_rejected(s, "inventory-sku-2", INVENTORY_ESHORT, "");
 *   esc_process_then_issue(s, &RELEASE, "inventory-sku-1", &release);
 *   esc_process_then_end(s);
 *   esc_process_scenario_free(s);
 *
 * The instance is the one correlate names for the first event. Inputs
 * happen at the scenario's clock, which starts at ESC_PROCESS_KIT_EPOCH
 * and moves only when told to (or when a deadline fires: to its due time,
 * if that is later). A given input must be handled (not dropped, not
 * failed), or the test fails; a when input may be dropped (then
 * esc_process_then_nothing). Failures end the cmocka test at the caller's
 * line with a message naming the decision (from 1), what was expected and
 * what came instead.
 */
typedef struct esc_process_scenario esc_process_scenario;

/* 2024-01-01T00:00:00Z, in microseconds since the epoch. */
#define ESC_PROCESS_KIT_EPOCH INT64_C(1704067200000000)
#define ESC_SECONDS(n) ((int64_t)(n)*INT64_C(1000000))
#define ESC_MINUTES(n) ((int64_t)(n)*INT64_C(60000000))

/* The process is borrowed; an invalid one fails the test. */
ESC_API esc_process_scenario *
esc_process_scenario_new_at(const esc_process *p, const char *file, int line);
#define esc_process_scenario_new(p)                                            \
  esc_process_scenario_new_at((p), __FILE__, __LINE__)
ESC_API void esc_process_scenario_free(esc_process_scenario *s);

/* The clock: the time of the next input. */
ESC_API int64_t esc_process_clock(const esc_process_scenario *s);
ESC_API void esc_process_clock_set(esc_process_scenario *s, int64_t now_us);
ESC_API void esc_process_clock_advance(esc_process_scenario *s,
                                       int64_t delta_us);

/* Given: inputs handled before the one under test. */

/* An event stored in stream_id (encoded with its type: the real codec). */
ESC_API void esc_process_given_event_at(esc_process_scenario *s,
                                        const char *stream_id,
                                        const esc_event_type *type,
                                        const void *event, const char *file,
                                        int line);
#define esc_process_given_event(s, stream_id, type, ...)                       \
  esc_process_given_event_at((s), (stream_id), (type), __VA_ARGS__, __FILE__,  \
                             __LINE__)
/* The oldest pending command to stream_id was accepted. */
ESC_API void esc_process_given_accepted_at(esc_process_scenario *s,
                                           const char *stream_id,
                                           const char *file, int line);
#define esc_process_given_accepted(s, stream_id)                               \
  esc_process_given_accepted_at((s), (stream_id), __FILE__, __LINE__)
/* The oldest pending command to stream_id was rejected (code > 0). */
ESC_API void esc_process_given_rejected_at(esc_process_scenario *s,
                                           const char *stream_id, int code,
                                           const char *message,
                                           const char *file, int line);
#define esc_process_given_rejected(s, stream_id, code, message)                \
  esc_process_given_rejected_at((s), (stream_id), (code), (message), __FILE__, \
                                __LINE__)
/* The pending deadline `name` fired. */
ESC_API void esc_process_given_deadline_at(esc_process_scenario *s,
                                           const char *name, const char *file,
                                           int line);
#define esc_process_given_deadline(s, name)                                    \
  esc_process_given_deadline_at((s), (name), __FILE__, __LINE__)

/* When: the input under test (each replaces the previous one's result). */

ESC_API void esc_process_when_event_at(esc_process_scenario *s,
                                       const char *stream_id,
                                       const esc_event_type *type,
                                       const void *event, const char *file,
                                       int line);
#define esc_process_when_event(s, stream_id, type, ...)                        \
  esc_process_when_event_at((s), (stream_id), (type), __VA_ARGS__, __FILE__,   \
                            __LINE__)
ESC_API void esc_process_when_accepted_at(esc_process_scenario *s,
                                          const char *stream_id,
                                          const char *file, int line);
#define esc_process_when_accepted(s, stream_id)                                \
  esc_process_when_accepted_at((s), (stream_id), __FILE__, __LINE__)
ESC_API void esc_process_when_rejected_at(esc_process_scenario *s,
                                          const char *stream_id, int code,
                                          const char *message, const char *file,
                                          int line);
#define esc_process_when_rejected(s, stream_id, code, message)                 \
  esc_process_when_rejected_at((s), (stream_id), (code), (message), __FILE__,  \
                               __LINE__)
ESC_API void esc_process_when_deadline_at(esc_process_scenario *s,
                                          const char *name, const char *file,
                                          int line);
#define esc_process_when_deadline(s, name)                                     \
  esc_process_when_deadline_at((s), (name), __FILE__, __LINE__)
/* Input n (from 1, counting given and when inputs) delivered again, with
 * its id and content: what a runtime does after a crash. */
ESC_API void esc_process_when_redelivered_at(esc_process_scenario *s, size_t n,
                                             const char *file, int line);
#define esc_process_when_redelivered(s, n)                                     \
  esc_process_when_redelivered_at((s), (n), __FILE__, __LINE__)

/* Rebuilds the instance from its recorded stream, as a restarted runtime
 * would; what follows must behave the same. */
ESC_API void esc_process_restart_at(esc_process_scenario *s, const char *file,
                                    int line);
#define esc_process_restart(s) esc_process_restart_at((s), __FILE__, __LINE__)

/* Then: the decisions of the last when, in order. */

/* The next decision issues a command of type to stream_id that encodes to
 * the same bytes as *expected. */
ESC_API void esc_process_then_issue_at(esc_process_scenario *s,
                                       const esc_process_command_type *type,
                                       const char *stream_id,
                                       const void *expected, const char *file,
                                       int line);
#define esc_process_then_issue(s, type, stream_id, ...)                        \
  esc_process_then_issue_at((s), (type), (stream_id), __VA_ARGS__, __FILE__,   \
                            __LINE__)
/* ... whose payload renders as this JSON (compared after normalizing it:
 * key order matters, spaces do not). */
ESC_API void esc_process_then_issue_json_at(
    esc_process_scenario *s, const esc_process_command_type *type,
    const char *stream_id, const char *json, const char *file, int line);
#define esc_process_then_issue_json(s, type, stream_id, json)                  \
  esc_process_then_issue_json_at((s), (type), (stream_id), (json), __FILE__,   \
                                 __LINE__)
/* ... whose decoded command passes check (true: it does). */
typedef bool (*esc_process_command_check)(const void *command, void *userdata);
ESC_API void esc_process_then_issue_check_at(
    esc_process_scenario *s, const esc_process_command_type *type,
    const char *stream_id, esc_process_command_check check, void *userdata,
    const char *file, int line);
#define esc_process_then_issue_check(s, type, stream_id, check, userdata)      \
  esc_process_then_issue_check_at((s), (type), (stream_id), (check),           \
                                  (userdata), __FILE__, __LINE__)
/* The next decision schedules name at due_us / delay_us after the input. */
ESC_API void esc_process_then_schedule_at(esc_process_scenario *s,
                                          const char *name, int64_t due_us,
                                          const char *file, int line);
#define esc_process_then_schedule(s, name, due_us)                             \
  esc_process_then_schedule_at((s), (name), (due_us), __FILE__, __LINE__)
ESC_API void esc_process_then_schedule_in_at(esc_process_scenario *s,
                                             const char *name, int64_t delay_us,
                                             const char *file, int line);
#define esc_process_then_schedule_in(s, name, delay_us)                        \
  esc_process_then_schedule_in_at((s), (name), (delay_us), __FILE__, __LINE__)
/* The next decision cancels name. */
ESC_API void esc_process_then_cancel_at(esc_process_scenario *s,
                                        const char *name, const char *file,
                                        int line);
#define esc_process_then_cancel(s, name)                                       \
  esc_process_then_cancel_at((s), (name), __FILE__, __LINE__)
/* No further decisions (and the input was handled). */
ESC_API void esc_process_then_end_at(esc_process_scenario *s, const char *file,
                                     int line);
#define esc_process_then_end(s) esc_process_then_end_at((s), __FILE__, __LINE__)
/* The input was dropped (already handled, not pending, not started, the
 * instance ended) or decided nothing. */
ESC_API void esc_process_then_nothing_at(esc_process_scenario *s,
                                         const char *file, int line);
#define esc_process_then_nothing(s)                                            \
  esc_process_then_nothing_at((s), __FILE__, __LINE__)
/* decide failed (the runtime would park the instance); when msg_part is
 * not NULL the message must contain it. */
ESC_API void esc_process_then_failed_at(esc_process_scenario *s,
                                        const char *msg_part, const char *file,
                                        int line);
#define esc_process_then_failed(s, msg_part)                                   \
  esc_process_then_failed_at((s), (msg_part), __FILE__, __LINE__)
/* The instance has ended (is_terminal), or has not. */
ESC_API void esc_process_then_ended_at(esc_process_scenario *s, bool ended,
                                       const char *file, int line);
#define esc_process_then_ended(s, ended)                                       \
  esc_process_then_ended_at((s), (ended), __FILE__, __LINE__)

/* The instance's state, for asserting on evolve itself. */
ESC_API const void *esc_process_scenario_state(const esc_process_scenario *s);
/* The decisions of the last when (NULL before one). */
ESC_API const esc_process_decisions *
esc_process_scenario_decisions(const esc_process_scenario *s);
/* How many records the instance stream holds. */
ESC_API size_t esc_process_scenario_records(const esc_process_scenario *s);

#ifdef __cplusplus
}
#endif
#endif /* ESC_TESTKIT_H */

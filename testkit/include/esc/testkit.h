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
 */
#ifndef ESC_TESTKIT_H
#define ESC_TESTKIT_H

#include <esc/command.h>

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

#ifdef __cplusplus
}
#endif
#endif /* ESC_TESTKIT_H */

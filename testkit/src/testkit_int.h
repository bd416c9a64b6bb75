/*
 * Internals of the test kit: the scenario and the checks behind each
 * public call. A check returns NULL when its expectation holds, else a
 * malloc'ed message saying what differs, which the public function hands
 * to cmocka (and which the kit's own tests inspect). Not installed.
 */
#ifndef ESC_TESTKIT_INT_H
#define ESC_TESTKIT_INT_H

#include <esc/testkit.h>

#include <esc_internal/decide.h>

/* ------------------------------------------------------------------------
 * Messages (message.c): a growable string; out of memory aborts
 * ------------------------------------------------------------------------ */

typedef struct esc__kit_buf {
  char *p;
  size_t len;
  size_t cap;
} esc__kit_buf;

#define ESC__KIT_BUF_INIT                                                      \
  { NULL, 0, 0 }

void esc__kit_oom(void);
void esc__kit_addf(esc__kit_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A malloc'ed formatted string. */
char *esc__kit_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* "" for 1, else "s". */
const char *esc__kit_plural(size_t n);

struct esc_scenario {
  const esc_decider *decider;
  void *state;
  struct esc__folder folder;
  char stream_id[ESC_STREAM_ID_MAX + 16]; /* "<category>-test" */
  int64_t version;                        /* of the last given event */
  esc_decision decision;
  bool decided;       /* esc_when has run */
  esc_status outcome; /* of the last esc_when: ESC_OK or ESC_EREJECTED */
  size_t cursor;      /* next emitted event esc_then looks at */
};

/* A scenario, or NULL and a malloc'ed message in *msg. */
esc_scenario *esc__scenario_new(const esc_decider *decider, char **msg);

/* Folds stored bytes as the next stream version. */
char *esc__scenario_given_stored(esc_scenario *s, const char *type_name,
                                 int32_t schema_version, const void *data,
                                 size_t len);
/* Encodes *event with its type, then folds it. */
char *esc__scenario_given(esc_scenario *s, const esc_event_type *type,
                          const void *event);
/* Converts JSON to msgpack, then folds it. */
char *esc__scenario_given_json(esc_scenario *s, const char *type_name,
                               int32_t schema_version, const char *json);
/* Decides a command; fails only when decide could not encode an event. */
char *esc__scenario_when(esc_scenario *s, const void *command);
/* The next emitted event is *expected (compared encoded, byte for byte);
 * the cursor moves past it only on a match. */
char *esc__scenario_then(esc_scenario *s, const esc_event_type *type,
                         const void *expected);
char *esc__scenario_then_end(const esc_scenario *s);
char *esc__scenario_then_rejected(const esc_scenario *s, int code,
                                  const char *msg_part);

/* "Type {json}" for an encoded payload ("Type v1 {json}" when show_version);
 * payloads that do not render show as <...: reason>. Malloc'ed. */
char *esc__event_render(const char *type_name, int32_t schema_version,
                        bool show_version, const void *data, size_t len);

#endif

/*
 * The program of docs/tutorial-first-process.md: a door alarm process
 * manager, tested with the process test kit. No servers: built as
 * build/tutorial-first-process and run by ctest, so the tutorial cannot
 * drift from the code.
 *
 * When a door opens, the process waits five minutes; if the door is
 * closed meanwhile, nothing happens; else it raises the door's alarm.
 */
#include <esc/testkit.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* ---------------------------------------------------------------- 1 -- */
/* Events: doors open and close; alarms are raised. None has fields.      */

typedef struct no_fields {
  char unused_;
} no_fields;

static int empty_encode(const void *event, msgpack_packer *pk) {
  (void)event;
  return msgpack_pack_map(pk, 0);
}

static esc_status empty_decode(const msgpack_object *obj, void *event,
                               esc_error *err) {
  (void)event;
  if (obj->type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL, "expected a map");
  return ESC_OK;
}

static const esc_event_type DOOR_OPENED = {
    "DoorOpened", 1, sizeof(no_fields), empty_encode, empty_decode, NULL};
static const esc_event_type DOOR_CLOSED = {
    "DoorClosed", 1, sizeof(no_fields), empty_encode, empty_decode, NULL};
static const esc_event_type ALARM_RAISED = {
    "AlarmRaised", 1, sizeof(no_fields), empty_encode, empty_decode, NULL};

/* ---------------------------------------------------------------- 2 -- */
/* The decider the process commands: "alarm-<door>" raises once.          */

typedef struct alarm_cmd {
  int64_t level; /* how loud */
} alarm_cmd;

static void alarm_evolve(void *state, const esc_event *event) {
  *(bool *)state = event->type == &ALARM_RAISED;
}

static int alarm_decide(const void *state, const void *command,
                        esc_decision *d) {
  (void)command;
  if (*(const bool *)state)
    return esc_decision_reject(d, 1, "the alarm is raised already");
  esc_decision_emit(d, &ALARM_RAISED, &(no_fields){0});
  return 0;
}

static esc_decider alarm_decider = {.category = "alarm",
                                    .state_size = sizeof(bool),
                                    .evolve = alarm_evolve,
                                    .decide = alarm_decide};

/* The command travels as msgpack: recorded when decided, executed later. */
static int alarm_encode(const void *command, msgpack_packer *pk) {
  msgpack_pack_map(pk, 1);
  esc_pack_key(pk, "level");
  return msgpack_pack_int64(pk, ((const alarm_cmd *)command)->level);
}

static esc_status alarm_decode_cmd(const msgpack_object *obj, void *command,
                                   esc_error *err) {
  if (!esc_map_i64(obj, "level", &((alarm_cmd *)command)->level))
    return esc_error_set(err, ESC_EINVAL, "RaiseAlarm needs a level");
  return ESC_OK;
}

static const esc_process_command_type RAISE_ALARM = {
    "RaiseAlarm", &alarm_decider, sizeof(alarm_cmd), alarm_encode,
    alarm_decode_cmd};

/* ---------------------------------------------------------------- 3 -- */
/* The process: state, evolve, decide, the end.                           */

typedef struct door_watch {
  bool open, alarmed, closed;
} door_watch;

static void watch_evolve(void *state, const esc_process_input *in,
                         void *userdata) {
  door_watch *w = state;
  (void)userdata;
  if (in->event) {
    w->open = in->event->type == &DOOR_OPENED;
    w->closed = !w->open;
  } else if (in->outcome) {
    w->alarmed = true; /* raised, or it was up already */
  }
}

static esc_status watch_decide(const void *state, const esc_process_input *in,
                               esc_process_decisions *d, void *userdata) {
  const door_watch *w = state;
  (void)userdata;
  char alarm[ESC_STREAM_ID_MAX + 1];
  switch (in->kind) {
  case ESC_PROCESS_INPUT_EVENT:
    if (w->open)
      return esc_process_schedule_in(d, "open_too_long", 5 * 60 * 1000000LL);
    return esc_process_cancel(d, "open_too_long");
  case ESC_PROCESS_INPUT_DEADLINE:
    snprintf(alarm, sizeof alarm, "alarm-%s", in->instance);
    return esc_process_issue(d, &RAISE_ALARM, alarm, &(alarm_cmd){3});
  case ESC_PROCESS_INPUT_OUTCOME:
    return ESC_OK;
  }
  return ESC_OK;
}

static bool watch_ended(const void *state) {
  const door_watch *w = state;
  return w->closed || w->alarmed;
}

/* Every event of "door-<id>" belongs to instance <id>. */
static bool watch_correlate(const esc_event *event, char *instance, size_t size,
                            void *userdata) {
  (void)userdata;
  const char *dash = strchr(event->recorded->stream_id, '-');
  return dash && snprintf(instance, size, "%s", dash + 1) > 0;
}

static esc_process door_alarm = {
    .name = "door_alarm",
    .categories = (const char *const[]){"door", NULL},
    .starts = (const char *const[]){"DoorOpened", NULL},
    .continues = (const char *const[]){"DoorClosed", NULL},
    .commands = (const esc_process_command_type *const[]){&RAISE_ALARM, NULL},
    .correlate = watch_correlate,
    .state_size = sizeof(door_watch),
    .evolve = watch_evolve,
    .decide = watch_decide,
    .is_terminal = watch_ended};

/* ---------------------------------------------------------------- 4 -- */
/* Tests: given / when / then, with a clock the test moves.               */

static void test_closed_in_time(void **state) {
  (void)state;
  esc_process_scenario *s = esc_process_scenario_new(&door_alarm);
  esc_process_when_event(s, "door-front", &DOOR_OPENED, &(no_fields){0});
  esc_process_then_schedule_in(s, "open_too_long", ESC_MINUTES(5));
  esc_process_then_end(s);

  esc_process_clock_advance(s, ESC_MINUTES(2));
  esc_process_when_event(s, "door-front", &DOOR_CLOSED, &(no_fields){0});
  esc_process_then_cancel(s, "open_too_long");
  esc_process_then_end(s);
  esc_process_then_ended(s, true);
  esc_process_scenario_free(s);
}

static void test_left_open(void **state) {
  (void)state;
  esc_process_scenario *s = esc_process_scenario_new(&door_alarm);
  esc_process_given_event(s, "door-back", &DOOR_OPENED, &(no_fields){0});
  esc_process_when_deadline(s, "open_too_long"); /* the clock jumps 5 min */
  esc_process_then_issue(s, &RAISE_ALARM, "alarm-back", &(alarm_cmd){3});
  esc_process_then_end(s);

  esc_process_when_accepted(s, "alarm-back");
  esc_process_then_nothing(s);
  esc_process_then_ended(s, true);

  /* Delivered again after a crash, the firing does nothing. */
  esc_process_when_redelivered(s, 2);
  esc_process_then_nothing(s);
  esc_process_scenario_free(s);
}

int main(void) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *events = esc_event_registry_new(&err);
  if (!events || esc_event_registry_add(events, &DOOR_OPENED, &err) ||
      esc_event_registry_add(events, &DOOR_CLOSED, &err) ||
      esc_event_registry_add(events, &ALARM_RAISED, &err)) {
    fprintf(stderr, "registry: %s\n", err.msg);
    return 1;
  }
  alarm_decider.events = events;
  door_alarm.events = events;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_closed_in_time),
      cmocka_unit_test(test_left_open),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  esc_event_registry_free(events);
  return failed;
}

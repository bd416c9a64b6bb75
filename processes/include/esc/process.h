/*
 * <esc/process.h> - process managers: deciders over events, deadlines and
 * command outcomes whose decisions are commands and deadlines.
 *
 * A process manager reacts to what happened elsewhere ("an order was
 * confirmed") by asking deciders to do things ("reserve stock"), and
 * reacts to their answers and to time passing. Each instance (one order's
 * fulfillment) is an ordinary event-sourced stream of its own: every input
 * it handled and every decision it made is an event there, so an instance
 * can be inspected, replayed and rebuilt like any other stream.
 *
 * This header is the pure part: the definition a user fills, the inputs
 * decide sees and the decisions it makes. Nothing here talks to a server,
 * reads the clock or keeps global state. The runtime (a worker reading the
 * log, executing commands through esc_execute, storing deadlines in
 * PostgreSQL) and the test kit (<esc/testkit.h>) drive it.
 *
 * What is deterministic: given the same state and input, decide must make
 * the same decisions (no clock, no randomness, no I/O: the input carries
 * the time). Every decision's id is UUIDv5 of (process name, instance id,
 * triggering input id, the decision's index), see esc_process_decision_id,
 * and a command is executed with its decision id as command id. So an
 * input handled again after a crash issues the same commands with the same
 * ids, and esc_execute's idempotency returns their first results instead
 * of running them twice.
 *
 * What is at-least-once: delivery of inputs to an instance. The runtime
 * records each handled input's id in the instance stream and drops an
 * input already recorded, so decide runs on each input once per recorded
 * history; but between a crash and the record, it may run again (and
 * decide the same, as above). Side effects belong in commands, not in
 * decide.
 *
 * Threading: definitions are immutable once built and may be shared by
 * threads; callbacks may run on several threads at once for different
 * instances, never for one instance at once. A decisions object belongs to
 * the one decide call it was handed to.
 */
#ifndef ESC_PROCESS_H
#define ESC_PROCESS_H

#include <esc/command.h>
#include <esc/projection.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Names and limits
 * ------------------------------------------------------------------------ */

/* A process name: 1..ESC_PROCESS_NAME_MAX bytes of [a-z0-9_]. */
#define ESC_PROCESS_NAME_MAX 48
/* An instance id: 1..ESC_PROCESS_INSTANCE_MAX bytes that are valid in a
 * stream id ([A-Za-z0-9_.:@+=/-]; '-' allowed anywhere but first). */
#define ESC_PROCESS_INSTANCE_MAX 128
/* A deadline name: 1..ESC_PROCESS_DEADLINE_MAX bytes of [a-z0-9_]. */
#define ESC_PROCESS_DEADLINE_MAX 48
/* At most this many decisions per input: a decide that loops forever
 * fails instead of filling memory. */
#define ESC_PROCESS_DECISIONS_MAX 256
/* Outcome messages are kept up to this many bytes (esc_command_result's
 * domain_msg is 256). */
#define ESC_PROCESS_MESSAGE_MAX 255

/*
 * The instance stream of (process, instance) is
 *   "process:<name>-<instance>"   category "process:<name>"
 * The category is what stands before the first '-', so every instance of
 * a process shares one category of its own (the runtime and `esc
 * processes` list instances by it), and the "process:" prefix keeps it
 * apart from decider categories, which never contain ':' in esc's
 * samples; a decider must not use a category starting with "process:".
 */
#define ESC_PROCESS_CATEGORY_PREFIX "process:"

ESC_API bool esc_process_name_valid(const char *name, esc_error *err);
ESC_API bool esc_process_instance_valid(const char *instance, esc_error *err);

/* Writes the instance stream id into out (ESC_STREAM_ID_MAX + 1 bytes).
 * ESC_EINVAL naming the part when the name or instance id is invalid. */
ESC_API esc_status esc_process_stream_id(const char *process,
                                         const char *instance, char *out,
                                         size_t out_size, esc_error *err);

/* ------------------------------------------------------------------------
 * Commands a process can issue
 * ------------------------------------------------------------------------ */

/*
 * One kind of command: which decider executes it and how its C struct (the
 * `command` esc_execute hands to decide) travels as msgpack. Commands are
 * recorded in the instance stream when decided and executed from there,
 * possibly by another process after a crash, so they must survive encode
 * then decode. Filled by the user, usually as a static (const) value.
 */
typedef struct esc_process_command_type {
  const char *name;           /* recorded and shown, esc_type_name_valid() */
  const esc_decider *decider; /* executes it; borrowed */
  size_t size;                /* sizeof the command struct */
  /* Packs *command. Returns 0, or -1 on failure. */
  int (*encode)(const void *command, msgpack_packer *pk);
  /* Fills *command (size bytes, zeroed first) from obj. Strings may point
   * into obj's memory: the struct is used only while the caller keeps obj
   * (one esc_execute, or one evolve/decide call). */
  esc_status (*decode)(const msgpack_object *obj, void *command,
                       esc_error *err);
} esc_process_command_type;

/* ------------------------------------------------------------------------
 * Inputs
 * ------------------------------------------------------------------------ */

typedef enum esc_process_input_kind {
  ESC_PROCESS_INPUT_EVENT = 1,    /* an event of a subscribed type */
  ESC_PROCESS_INPUT_DEADLINE = 2, /* a deadline this instance scheduled */
  ESC_PROCESS_INPUT_OUTCOME = 3   /* what a command it issued came to */
} esc_process_input_kind;

/* A deadline firing. */
typedef struct esc_process_deadline {
  const char *name; /* as scheduled */
  int64_t due_us;   /* when it was due, microseconds since the epoch */
} esc_process_deadline;

/* What a command the instance issued came to. */
typedef struct esc_process_outcome {
  const esc_process_command_type *type;
  const char *stream_id; /* the target stream */
  const void *command;   /* the command as issued, decoded (type->size) */
  bool accepted;         /* false: the decider rejected it */
  int code;              /* rejected: the domain code (> 0); else 0 */
  const char *message;   /* rejected: the domain message; else "" */
  size_t index;          /* its index among the decisions of its input */
} esc_process_outcome;

/*
 * One input, as evolve and decide see it. Everything is borrowed for the
 * duration of the call.
 *
 * id is what makes handling idempotent: an event's event id, a deadline's
 * id (a decision id), a command's id for its outcome. time_us is the
 * input's time, injected by whoever drives the process (the runtime: an
 * event's recorded time, the moment a deadline fired, the moment an
 * outcome was known; the test kit: its clock); decide must use it rather
 * than the clock, so that deciding again decides the same.
 */
typedef struct esc_process_input {
  esc_process_input_kind kind;
  esc_uuid id;
  int64_t time_us;
  const char *instance;                 /* the instance id */
  const esc_event *event;               /* EVENT: decoded; else NULL */
  const esc_process_deadline *deadline; /* DEADLINE; else NULL */
  const esc_process_outcome *outcome;   /* OUTCOME; else NULL */
} esc_process_input;

/* ------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------ */

/* What decide writes its decisions into (opaque; see the accessors). */
typedef struct esc_process_decisions esc_process_decisions;

/*
 * Issues a command to the decider of type, on stream_id (which must be a
 * valid stream id of that decider's category). The command is encoded at
 * once (*command is not kept). ESC_EINVAL when the type is not one of the
 * process's commands, the stream id is invalid or of another category,
 * encoding fails, or there are too many decisions: decide may return the
 * status at once, and the input then fails whatever decide returns (the
 * runtime retries it, then parks the instance; nothing is recorded).
 */
ESC_API esc_status esc_process_issue(esc_process_decisions *d,
                                     const esc_process_command_type *type,
                                     const char *stream_id,
                                     const void *command);

/*
 * Schedules the deadline `name` of this instance at due_us (microseconds
 * since the epoch). A deadline of that name still pending is replaced (it
 * will not fire). When it comes due, the runtime delivers it as an input,
 * once; if the instance cancelled or replaced it, or ended, it never
 * arrives. A due time in the past fires as soon as the runtime can.
 */
ESC_API esc_status esc_process_schedule(esc_process_decisions *d,
                                        const char *name, int64_t due_us);
/* Schedules `name` delay_us (>= 0) after the input's time. */
ESC_API esc_status esc_process_schedule_in(esc_process_decisions *d,
                                           const char *name, int64_t delay_us);
/* Cancels the pending deadline `name`; no error when none is pending. */
ESC_API esc_status esc_process_cancel(esc_process_decisions *d,
                                      const char *name);

/*
 * Fails the input with a message for the operator ("order-42 has a line
 * with an unusable sku"): nothing is recorded, and the runtime retries the
 * input, then parks the instance; other instances go on. Returns
 * ESC_EINVAL, so decide can end with `return esc_process_fail(d, ...)`.
 */
ESC_API esc_status esc_process_fail(esc_process_decisions *d, const char *fmt,
                                    ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

typedef enum esc_process_decision_kind {
  ESC_PROCESS_ISSUE = 1,
  ESC_PROCESS_SCHEDULE = 2,
  ESC_PROCESS_CANCEL = 3
} esc_process_decision_kind;

/* One decision, as decide made it; borrowed from the decisions object. */
typedef struct esc_process_decision {
  esc_process_decision_kind kind;
  /* ISSUE: the command id; SCHEDULE: the deadline id; CANCEL: the id of
   * the deadline cancelled, nil when none was pending. */
  esc_uuid id;
  const esc_process_command_type *type; /* ISSUE */
  const char *stream_id;                /* ISSUE */
  const void *payload;                  /* ISSUE: the command, msgpack */
  size_t payload_len;
  const char *deadline; /* SCHEDULE, CANCEL: its name */
  int64_t due_us;       /* SCHEDULE */
} esc_process_decision;

/* How many decisions were made so far. */
ESC_API size_t esc_process_decisions_count(const esc_process_decisions *d);
/* Decision i (from 0) in the order made, or NULL past the end. */
ESC_API const esc_process_decision *
esc_process_decisions_at(const esc_process_decisions *d, size_t i);
/* NULL, or the message of the failure (esc_process_fail, a bad call). */
ESC_API const char *
esc_process_decisions_failure(const esc_process_decisions *d);

/*
 * The id of decision `index` made on input input_id of (process,
 * instance): UUIDv5 under a fixed esc namespace of the input id, the
 * process name, the instance id and the index. Stable across versions of
 * esc (changing it would execute commands again); distinct for any two
 * differing arguments.
 */
ESC_API esc_uuid esc_process_decision_id(const char *process,
                                         const char *instance,
                                         const esc_uuid *input_id,
                                         size_t index);

/* ------------------------------------------------------------------------
 * The definition
 * ------------------------------------------------------------------------ */

/*
 * A process manager. Filled by the user, usually once at start-up (a
 * static value, or built once with pthread_once since deciders are
 * usually built that way). Every list is NULL-terminated.
 *
 * Routing: the runtime reads `categories`; an event whose type is in
 * `starts` goes to the instance correlate names, starting it if it has no
 * stream yet; a type in `continues` goes only to an instance that exists
 * (else it is dropped: "not mine"); other types are dropped. A type may be
 * in both lists only once: put it in starts.
 *
 * The instance's state: state_size bytes, zeroed, then init; then every
 * recorded input is folded in with evolve, in order. On a new input:
 * evolve(state, input), then decide(state, input): decide sees the state
 * with this input in it. Once is_terminal says so, the instance has ended:
 * later events and deadline firings are dropped, pending deadlines are
 * cancelled, outcomes of commands still in flight are recorded and folded
 * (evolve) but not decided on.
 */
typedef struct esc_process {
  const char *name;                 /* esc_process_name_valid() */
  const esc_event_registry *events; /* decodes the types below; borrowed */
  const char *const *categories;    /* where the runtime reads events */
  const char *const *starts;        /* event types that start an instance */
  const char *const *continues;     /* event types that only continue one */
  /* Every command type decide may issue (an issue of another fails). */
  const esc_process_command_type *const *commands;
  /* The instance an event belongs to: writes its id (NUL-terminated, at
   * most size - 1 = ESC_PROCESS_INSTANCE_MAX bytes) into instance and
   * returns true, or returns false for "not mine". Pure, like decide. An
   * id that is not esc_process_instance_valid fails the event. */
  bool (*correlate)(const esc_event *event, char *instance, size_t size,
                    void *userdata);
  size_t state_size;
  void (*init)(void *state, void *userdata); /* may be NULL */
  /* Folds one input in. Must not fail: what is recorded happened. */
  void (*evolve)(void *state, const esc_process_input *input, void *userdata);
  /* Makes decisions with esc_process_issue / schedule / cancel and
   * returns ESC_OK, or a failure (esc_process_fail). Pure: no side
   * effects, no clock; it may run again on the same input. */
  esc_status (*decide)(const void *state, const esc_process_input *input,
                       esc_process_decisions *d, void *userdata);
  bool (*is_terminal)(const void *state); /* NULL: never ends */
  void (*release_state)(void *state);     /* optional: frees what it owns */
  void *userdata;                         /* handed to the callbacks */

  /* Snapshots (optional, as a decider's: snapshot_every 0 disables
   * them). After an append that crosses a multiple of snapshot_every
   * records of the instance stream, the runtime stores the instance as
   * it is then: state (encoded by encode_state, tagged with
   * state_version) together with the runtime's own bookkeeping (inputs
   * handled, commands pending, deadlines pending, ended or not). Loading
   * starts from that snapshot and folds only the records after it. A
   * snapshot of another state_version, or one decode_state fails on, is
   * ignored and the stream folded from the start; failing to store one
   * is logged and never fails an input. Bump state_version whenever the
   * encoding, or what evolve makes of the inputs, changes.
   *
   * encode_state packs *state as one msgpack object; returns 0, or -1 on
   * failure. decode_state fills *state (fresh from init) from obj, or
   * returns ESC_EINVAL with err saying what is wrong; strings must be
   * copied (obj lives for the one call). */
  int snapshot_every;
  int32_t state_version;
  int (*encode_state)(const void *state, msgpack_packer *pk, void *userdata);
  esc_status (*decode_state)(const msgpack_object *obj, void *state,
                             void *userdata, esc_error *err);
} esc_process;

/*
 * Checks a definition: a valid name, a registry, lists that hold only
 * registered types (starts and continues) and valid categories, commands
 * with a name, a decider and a codec, correlate, evolve, decide and a
 * state size; snapshot_every >= 0, and when > 0 both state codecs.
 * ESC_EINVAL-style false and err naming what is wrong.
 */
ESC_API bool esc_process_valid(const esc_process *p, esc_error *err);


/* ------------------------------------------------------------------------
 * The runtime: a process on a worker
 * ------------------------------------------------------------------------ */

/*
 * esc_worker_add_process runs a process on an esc_worker, through a
 * durable subscription named after the process (<esc/projection.h>: its
 * leases, partitions, wake-ups, retries and PostgreSQL checkpoints; it
 * shows in `esc projections` as a subscription and in the worker's
 * metrics with the label process="NAME").
 *
 * For each delivered event the runtime routes it (starts, continues,
 * correlate), loads the instance by folding its stream (from its
 * snapshot, when the process keeps them), handles the input and appends
 * its records with the folded version as expected
 * version (on a conflict it loads again and redoes), then executes the
 * commands decided, one at a time, through esc_execute with their
 * decision ids as command ids, and handles each outcome (accepted, or
 * the decider's rejection: compensation is ordinary decide logic) the
 * same way, until nothing is pending. A command recorded as issued but
 * without an outcome (a crash between the two) is executed again on the
 * next load with the same id: esc_execute's dedup returns its first
 * result, so no command runs twice.
 *
 * Tracing: a command the runtime executes carries, into every event it
 * appends, the correlation id of the input it was decided on and, as
 * causation id, that input's trigger:
 *   - an event: correlation = the event's correlation id (an event
 *     without one starts a correlation: its own event id); causation =
 *     the event's id;
 *   - the outcome of a command, or a deadline firing: correlation = the
 *     one that command was issued, or that deadline scheduled, with;
 *     causation = the instance stream's record of this input
 *     (CommandOutcome, DeadlineFired), an event of the log too.
 * The instance stream's records carry the same correlation id, so one
 * correlation id finds the customer's command, the process's records and
 * every command it issued for them (docs/operations.md, "Tracing an
 * order by correlation id").
 *
 * Deadlines: the instance stream says which are pending; the runtime
 * mirrors them into <schema>.process_deadlines after each input, and the
 * worker holding any of the process's partitions fires the due ones
 * (now_us below): each is recorded once as DeadlineFired (a deadline
 * cancelled, replaced or fired already is dropped by the instance stream,
 * whatever the table says), handled, and removed from the table.
 *
 * Failures are per instance. An input whose handling fails (decide fails,
 * a command cannot be executed for a reason other than a server being
 * away, a record does not decode) parks its instance in
 * <schema>.process_parked with the error; the subscription moves on, so
 * every other instance keeps flowing. Later inputs of a parked instance
 * are kept, in order, undecided. The runtime retries it after
 * retry_base_ms, doubling up to retry_max_ms, max_attempts times in all;
 * then it waits for an operator: esc_process_retry (`esc processes retry`)
 * replays its inputs, esc_process_discard drops them. An outage of
 * PostgreSQL is not a failure of an instance: the event is delivered
 * again once it is back.
 *
 * Threading: as the worker's. The runtime opens its own store connection
 * (pg_url, schema) for the instance streams, the commands and its tables.
 */
typedef struct esc_process_options {
  const char *pg_url; /* NULL: ESC_PG_URL, else the local server */
  const char *schema; /* event store schema; NULL: "esc" */
  int partitions;     /* of the process's subscription; 0: 1 */
  /* Attempts at a failing instance before it waits for an operator; 5.
   * The first failure parks it at once (it never holds others up). */
  int max_attempts;
  int retry_base_ms; /* first automatic retry; default 500 */
  int retry_max_ms;  /* cap of the doubling; default 60000 */
  /* The clock deadlines are due by (microseconds since the epoch); it
   * also stamps deadline firings and outcomes. NULL: esc_now_us. Tests
   * pass one they move. */
  int64_t (*now_us)(void *userdata);
  void *clock_userdata;
  /* Lines worth a log (parked instances, retries, conflicts). */
  void (*log)(void *userdata, const char *line);
  void *log_userdata;
  /* Where the subscription starts the first time it is registered. */
  esc_subscription_start start;
} esc_process_options;

#define ESC_PROCESS_OPTIONS_INIT                                               \
  { NULL, NULL, 0, 0, 0, 0, NULL, NULL, NULL, NULL,                            \
    ESC_SUBSCRIPTION_FROM_BEGINNING }

/*
 * Adds process p (borrowed: it must outlive the worker) to worker w, with
 * options o (copied; NULL: defaults). The runtime belongs to the worker
 * from then on and is freed by esc_worker_free. ESC_EINVAL for an invalid
 * definition or options, ESC_ECONN when the store cannot be opened.
 */
ESC_API esc_status esc_worker_add_process(esc_worker *w, const esc_process *p,
                                          const esc_process_options *o,
                                          esc_error *err);

/* ------------------------------------------------------------------------
 * Inspecting and operating instances (`esc processes`)
 * ------------------------------------------------------------------------ */

typedef enum esc_process_instance_state {
  ESC_PROCESS_ACTIVE = 1,   /* started, not ended */
  ESC_PROCESS_ENDED = 2,    /* is_terminal held after its last input */
  ESC_PROCESS_RETRYING = 3, /* failing: retried automatically */
  ESC_PROCESS_PARKED = 4    /* failed max_attempts times: an operator's */
} esc_process_instance_state;

/* "active", "ended", "retrying", "parked". Static storage. */
ESC_API const char *
esc_process_instance_state_name(esc_process_instance_state s);

/* A deadline pending in the store's table. */
typedef struct esc_process_deadline_info {
  char process[ESC_PROCESS_NAME_MAX + 1];
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  char name[ESC_PROCESS_DEADLINE_MAX + 1];
  esc_uuid id;
  int64_t due_us;
} esc_process_deadline_info;

/* A parked (or retrying) instance. */
typedef struct esc_process_parked_info {
  char process[ESC_PROCESS_NAME_MAX + 1];
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  esc_process_instance_state state; /* RETRYING or PARKED */
  int attempts;
  int64_t inputs; /* inputs kept, the failing one included */
  int64_t parked_us, retry_us;
  char error[1025];
} esc_process_parked_info;

/*
 * The admin calls below connect to pg_url (NULL: ESC_PG_URL, else the
 * local server) for the one call, in schema (NULL: "esc").
 *
 * The deadlines pending (process NULL: every process's), soonest first,
 * at most max (0: all) into *out (malloc'ed, free it; NULL when none),
 * *count of them.
 */
ESC_API esc_status esc_process_deadlines_list(
    const char *pg_url, const char *schema, const char *process, size_t max,
    esc_process_deadline_info **out, size_t *count, esc_error *err);

/* The instances parked or retrying (process NULL: every process's), as
 * esc_process_deadlines_list. */
ESC_API esc_status esc_process_parked_list(const char *pg_url,
                                           const char *schema,
                                           const char *process,
                                           esc_process_parked_info **out,
                                           size_t *count, esc_error *err);

/* Asks for a retry of a parked instance now (fresh attempts); the worker
 * running the process replays its kept inputs. ESC_ENOTFOUND when it is
 * not parked. */
ESC_API esc_status esc_process_retry(const char *pg_url, const char *schema,
                                     const char *process,
                                     const char *instance, esc_error *err);
/* Drops a parked instance's kept inputs undecided; it flows again.
 * ESC_ENOTFOUND when it is not parked. */
ESC_API esc_status esc_process_discard(const char *pg_url, const char *schema,
                                       const char *process,
                                       const char *instance, esc_error *err);

/* How many instances of a process are in each state, from the table the
 * runtime keeps beside the instance streams (<schema>.process_instances,
 * written after each input handled) and the parking table; and how many
 * deadlines are pending. */
typedef struct esc_process_summary {
  char process[ESC_PROCESS_NAME_MAX + 1];
  int64_t active, ended, retrying, parked, deadlines;
} esc_process_summary;

/* One summary per process (process NULL: every process with an instance,
 * by name; else just that one, ESC_ENOTFOUND when it has none), as
 * esc_process_deadlines_list. */
ESC_API esc_status esc_process_summaries(const char *pg_url,
                                         const char *schema,
                                         const char *process,
                                         esc_process_summary **out,
                                         size_t *count, esc_error *err);

/* What one record of an instance stream is: an input the instance
 * handled (the first three) or a decision it made on one. */
typedef enum esc_process_record_kind {
  ESC_PROCESS_EVENT_RECEIVED = 1, /* input: an event of the process */
  ESC_PROCESS_COMMAND_OUTCOME = 2, /* input: what an issued command came to */
  ESC_PROCESS_DEADLINE_FIRED = 3,  /* input: a deadline came due */
  ESC_PROCESS_COMMAND_ISSUED = 4,  /* decision: a command */
  ESC_PROCESS_DEADLINE_SCHEDULED = 5,
  ESC_PROCESS_DEADLINE_CANCELLED = 6
} esc_process_record_kind;

/*
 * One record of an instance's history, as esc_process_history hands it
 * to its callback. Strings and bytes are borrowed for the one call.
 * Fields a kind does not use are zero (nil ids, NULL strings).
 */
typedef struct esc_process_record_info {
  esc_process_record_kind kind;
  const char *type;     /* its event type: "EventReceived", ... */
  int64_t version;      /* its version in the instance stream */
  int64_t recorded_us;  /* when the store recorded it */
  bool is_input;        /* the first three kinds */
  esc_uuid input;       /* inputs: the input's id; decisions: the input
                           they were made on */
  int64_t time_us;      /* inputs: the input's time */
  esc_uuid id;          /* decisions: the decision id (CANCELLED: the
                           cancelled deadline's, nil when none was pending) */
  uint32_t index;       /* decisions: index among the input's decisions */
  /* EVENT_RECEIVED: the source stream; COMMAND_ISSUED, COMMAND_OUTCOME:
   * the command's target stream (an outcome's is found from the
   * CommandIssued before it; NULL when that is missing) */
  const char *stream;
  int64_t stream_version; /* EVENT_RECEIVED: the source event's version */
  esc_position position;  /* EVENT_RECEIVED: the source event's position */
  /* EVENT_RECEIVED: the event type; COMMAND_ISSUED, COMMAND_OUTCOME: the
   * command type; DEADLINE_*: the deadline's name */
  const char *name;
  /* EVENT_RECEIVED: the event's payload; COMMAND_ISSUED: the command;
   * one msgpack object (esc_msgpack_to_json renders it) */
  const void *data;
  size_t data_len;
  bool accepted;       /* COMMAND_OUTCOME */
  int32_t code;        /* COMMAND_OUTCOME rejected: the domain code */
  const char *message; /* COMMAND_OUTCOME rejected: the domain message */
  int64_t due_us;      /* DEADLINE_FIRED, DEADLINE_SCHEDULED */
  esc_uuid replaces;   /* DEADLINE_SCHEDULED: the pending one it replaced */
} esc_process_record_info;

/* Called once per record, in stream order; a status other than ESC_OK
 * stops the walk and is returned (err filled by the callback). */
typedef esc_status (*esc_process_record_fn)(
    void *userdata, const esc_process_record_info *record, esc_error *err);

/*
 * Walks the history of one instance of process: every record of its
 * stream (esc_process_stream_id), oldest first, decoded, handed to fn.
 * It needs no definition of the process: the records say what happened
 * in their own terms (types by name, payloads as msgpack). Reads in pages
 * (memory stays bounded whatever the stream's length).
 *
 * ESC_EINVAL for an invalid name or instance id, or a record that does
 * not decode (named by its version; the records before it were handed
 * out); ESC_ENOTFOUND when the instance has no stream; ESC_EDELETED when
 * it was tombstoned; else what reading failed with.
 */
ESC_API esc_status esc_process_history(const char *pg_url, const char *schema,
                                       const char *process,
                                       const char *instance,
                                       esc_process_record_fn fn,
                                       void *userdata, esc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* ESC_PROCESS_H */

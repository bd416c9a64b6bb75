/*
 * <esc_internal/process.h> - internals of the process module, shared by
 * the core (process.c, decisions.c, records.c, instance.c), the runtime
 * (runner*.c) and the test kit: the instance stream's events, their
 * codec, and an instance folded from its stream. Internal: not installed,
 * never seen by users (docs/architecture.md).
 *
 * The instance stream ("process:<name>-<instance>", esc_process_stream_id)
 * holds six event types, all schema version 1, all msgpack maps:
 *
 *   inputs (each carries the input id and the input's time):
 *   EventReceived     {input, time, stream, version, position, type,
 *                      schema, data (bin), recorded}
 *                     a copy of the source event, so the instance stream
 *                     folds without reading the source (which retention
 *                     may have removed) and shows what was handled
 *   CommandOutcome    {input = command id, time, accepted, code, message}
 *   DeadlineFired     {input = deadline id, time, name, due}
 *
 *   decisions (each carries its decision id, the input it came from and
 *   its index among that input's decisions):
 *   CommandIssued     {id, input, index, type, stream, command (bin)}
 *   DeadlineScheduled {id, input, index, name, due, replaces (nil or id)}
 *   DeadlineCancelled {id (the deadline's, nil when none was pending),
 *                      input, index, name}
 *
 * One handled input is one append: its input record, then its decision
 * records, with expected version = the version folded, so a record is
 * never half written and two runners of one instance cannot both win.
 * Record event ids are derived (esc__process_record_id) from the input id,
 * so appending the same input's records again is an idempotent retry.
 *
 * A terminal instance ends with one DeadlineCancelled per deadline still
 * pending (index past decide's decisions), so the runtime only ever
 * follows records.
 *
 * Tracing: every record of one input carries the same metadata,
 * {correlation_id, causation_id, actor "process:<name>", time = the
 * input's time}, and the commands decided on the input are executed with
 * that correlation id and the input's trigger as causation id:
 *
 *   event E:      correlation E's correlation id, else E's own id;
 *                 causation E's id; trigger E's id
 *   outcome of C: correlation the one C was issued with; causation C's
 *                 CommandIssued record; trigger this CommandOutcome record
 *   deadline D:   correlation the one D was scheduled with; causation
 *                 D's DeadlineScheduled record; trigger this DeadlineFired
 *                 record
 *
 * So a correlation id started by a customer's command runs through the
 * instance stream into every command the process issues for it, and
 * every causation id names an event in the log. The correlation is read
 * back from the metadata when an instance is folded (records without
 * metadata, or with metadata that does not decode, give none, and their
 * commands then correlate by their own command id, esc_execute's rule).
 */
#ifndef ESC_PROCESS_INT_H
#define ESC_PROCESS_INT_H

#include <esc/process.h>
#include <esc_internal/load.h>

#define ESC__PROCESS_EVENT_RECEIVED "EventReceived"
#define ESC__PROCESS_COMMAND_OUTCOME "CommandOutcome"
#define ESC__PROCESS_DEADLINE_FIRED "DeadlineFired"
#define ESC__PROCESS_COMMAND_ISSUED "CommandIssued"
#define ESC__PROCESS_DEADLINE_SCHEDULED "DeadlineScheduled"
#define ESC__PROCESS_DEADLINE_CANCELLED "DeadlineCancelled"

/* A deadline name: like a process name (process.c). */
bool esc__process_deadline_name_valid(const char *name, esc_error *err);
/* The process's command type called name, or NULL. */
const esc_process_command_type *esc__process_command_type(const esc_process *p,
                                                          const char *name);
/* Whether type is in the NULL-terminated list (which may be NULL). */
bool esc__process_lists(const char *const *list, const char *type);

/* Bounds on decoding a record (what a hostile stream can make us take). */
#define ESC__PROCESS_RECORD_MAX_BYTES ESC_DEFAULT_MAX_EVENT_SIZE

typedef enum esc__process_record_kind {
  ESC__REC_EVENT_RECEIVED = 1,
  ESC__REC_COMMAND_OUTCOME,
  ESC__REC_DEADLINE_FIRED,
  ESC__REC_COMMAND_ISSUED,
  ESC__REC_DEADLINE_SCHEDULED,
  ESC__REC_DEADLINE_CANCELLED
} esc__process_record_kind;

/* The event type name of a kind, or NULL. */
const char *esc__process_record_type(esc__process_record_kind kind);

/*
 * One record of an instance stream, decoded (or about to be encoded).
 * Strings and bytes are borrowed: from the zone they were decoded in, or
 * from whoever filled the struct for encoding. Fields a kind does not use
 * are zero.
 */
typedef struct esc__process_record {
  esc__process_record_kind kind;
  esc_uuid input;  /* the input id (inputs), the triggering one (decisions) */
  int64_t time_us; /* inputs: the input's time */
  esc_uuid id;     /* decisions: the decision id */
  uint32_t index;  /* decisions: index among the input's decisions */
  /* EVENT_RECEIVED: the source event */
  const char *stream;     /* also COMMAND_ISSUED: the target stream */
  int64_t version;        /* source stream version */
  esc_position position;  /* source position */
  const char *event_type; /* also COMMAND_ISSUED: the command type name */
  int32_t schema_version;
  const void *data; /* EVENT_RECEIVED: payload; COMMAND_ISSUED: command */
  size_t data_len;
  int64_t recorded_us;
  /* COMMAND_OUTCOME */
  bool accepted;
  int32_t code;
  const char *message;
  /* DEADLINE_*: the name; DEADLINE_FIRED/SCHEDULED: the due time */
  const char *name;
  int64_t due_us;
  esc_uuid replaces; /* DEADLINE_SCHEDULED: the pending one it replaced */
} esc__process_record;

/* Encodes r as msgpack; *out is malloc'ed, the caller frees it. */
esc_status esc__process_record_encode(const esc__process_record *r, void **out,
                                      size_t *out_len, esc_error *err);

/*
 * Decodes a stored record of event type `type`. The bytes are checked
 * against the bounds above before msgpack sees them; strings and bytes in
 * *r point into zone (the caller's, kept while *r is used). Unknown keys
 * are ignored; a missing or mistyped field, a type that is not one of the
 * six, or bytes that are not one msgpack map is ESC_EINVAL naming it.
 */
esc_status esc__process_record_decode(const char *type, const void *data,
                                      size_t len, msgpack_zone *zone,
                                      esc__process_record *r, esc_error *err);

/* The event id of the n-th record (0: the input's) of handling input_id:
 * UUIDv5, apart from decision ids. */
esc_uuid esc__process_record_id(const char *process, const char *instance,
                                const esc_uuid *input_id, size_t n);

/* ------------------------------------------------------------------------
 * Decisions (the struct behind esc_process_decisions)
 * ------------------------------------------------------------------------ */

struct esc__decision_item {
  esc_process_decision pub;
  char *stream_id; /* owned copies behind pub's pointers */
  char *deadline;
  void *payload;
};

struct esc_process_decisions {
  const esc_process *process;
  const char *instance; /* borrowed for the decide call */
  esc_uuid input_id;    /* decision ids derive from it */
  int64_t time_us;      /* schedule_in counts from it */
  struct esc__decision_item *items;
  size_t count;
  size_t cap;
  esc_error failure; /* code != ESC_OK: the input fails */
};

/* Binds a decisions object to one input of one instance (the strings are
 * borrowed until release). */
void esc__process_decisions_init(esc_process_decisions *d, const esc_process *p,
                                 const char *instance, const esc_uuid *input_id,
                                 int64_t time_us);
/* Frees what the decisions hold; accepts NULL and a released object. */
void esc__process_decisions_release(esc_process_decisions *d);

/* ------------------------------------------------------------------------
 * An instance folded from its stream
 * ------------------------------------------------------------------------ */

/* A command issued without a recorded outcome yet. */
struct esc__pending_command {
  esc_uuid id;
  esc_uuid input;
  uint32_t index;
  const esc_process_command_type *type;
  char stream_id[ESC_STREAM_ID_MAX + 1];
  void *payload; /* owned msgpack */
  size_t payload_len;
  esc_uuid correlation; /* of the input it was issued on; nil: none */
  esc_uuid causation;   /* that input's trigger (see the top) */
  esc_uuid record;      /* the CommandIssued record's event id */
};

/* A deadline scheduled and neither fired, cancelled nor replaced. */
struct esc__pending_deadline {
  esc_uuid id;
  char name[ESC_PROCESS_DEADLINE_MAX + 1];
  int64_t due_us;
  esc_uuid correlation; /* of the input it was scheduled on; nil: none */
  esc_uuid record;      /* the DeadlineScheduled record's event id */
};

typedef struct esc__process_instance {
  const esc_process *process;
  char instance[ESC_PROCESS_INSTANCE_MAX + 1];
  char stream_id[ESC_STREAM_ID_MAX + 1];
  void *state;       /* process->state_size bytes */
  int64_t version;   /* of the instance stream folded up to (0: none) */
  bool terminal;     /* is_terminal held after the last decided input */
  esc_uuid *handled; /* every input id recorded, in record order */
  size_t handled_count, handled_cap;
  struct esc__pending_command *commands;
  size_t command_count, command_cap;
  struct esc__pending_deadline *deadlines;
  size_t deadline_count, deadline_cap;
  msgpack_zone zone; /* scratch for decoding, reset per record */
  void *buf;         /* scratch for decoded events and commands */
  size_t buf_size;
  /* Of the input folded last: its correlation id (from its record's
   * metadata) and its trigger; its decisions take them. */
  esc_uuid step_correlation, step_trigger;
} esc__process_instance;

/* A fresh instance (version 0, state from init) of (p, instance).
 * ESC_EINVAL for an invalid definition or instance id, ESC_ENOMEM. On
 * failure inst holds nothing. */
esc_status esc__process_instance_init(esc__process_instance *inst,
                                      const esc_process *p,
                                      const char *instance, esc_error *err);
void esc__process_instance_release(esc__process_instance *inst);

/*
 * Folds one stored record of the instance stream (stream_version must be
 * version + 1): inputs are evolved into the state and their ids noted;
 * decisions update the pending commands and deadlines. ESC_EINVAL for a
 * record that does not decode or names a command type the process lacks;
 * ESC_ECORRUPT for a version out of sequence.
 */
esc_status esc__process_instance_apply(esc__process_instance *inst,
                                       const esc_recorded_event *rec,
                                       esc_error *err);

/*
 * Instance snapshots (snapshot.c): all a fold builds (the process's state
 * through its encode_state, and the runtime's bookkeeping: handled ids,
 * pending commands and deadlines, terminal flag, the step's ids), so that
 * restoring one then folding the records after it gives the instance a
 * full fold gives.
 *
 * encode packs inst as one msgpack object; 0, or -1 when encode_state
 * fails. restore fills inst (fresh from init) from obj, a snapshot taken
 * at stream version `version`; ESC_EINVAL naming the instance when obj
 * is not one (another format, a bad element, decode_state failed), after
 * which inst must be reset. reset brings inst back to what init made.
 */
int esc__process_snapshot_encode(const esc__process_instance *inst,
                                 msgpack_packer *pk);
esc_status esc__process_snapshot_restore(esc__process_instance *inst,
                                         const msgpack_object *obj,
                                         int64_t version, esc_error *err);
void esc__process_instance_reset(esc__process_instance *inst);

/*
 * Loads inst (fresh from init) from the store (instance_store.c): its
 * usable snapshot when the process keeps them, then the records after
 * it, page records per read (0: the loader's default); info says which
 * snapshot was used or set aside and how many records were folded. A
 * missing stream is a new instance (version 0); a truncated one that no
 * usable snapshot covers is ESC_ETRUNCATED; else as
 * esc__process_instance_apply and esc_read_stream fail. On failure inst
 * must be released.
 */
esc_status esc__process_instance_load(esc_store *store,
                                      esc__process_instance *inst, size_t page,
                                      struct esc__load_info *info,
                                      esc_error *err);
/* Whether an append that took inst from version `before` to its version
 * crossed a multiple of snapshot_every (false when it keeps none). */
bool esc__process_snapshot_due(const esc__process_instance *inst,
                               int64_t before);
/* Stores inst as its stream's snapshot at its version. ESC_EINVAL when
 * encode_state fails, else as esc_snapshot_write. */
esc_status esc__process_instance_snapshot(esc_store *store,
                                          const esc__process_instance *inst,
                                          esc_error *err);

/* Whether input id was recorded already. */
bool esc__process_instance_handled(const esc__process_instance *inst,
                                   const esc_uuid *input_id);
/* The pending command with this id, or NULL. */
const struct esc__pending_command *
esc__process_instance_command(const esc__process_instance *inst,
                              const esc_uuid *command_id);
/* The pending deadline of this name, or NULL. */
const struct esc__pending_deadline *
esc__process_instance_deadline(const esc__process_instance *inst,
                               const char *name);

/* ------------------------------------------------------------------------
 * Handling one input
 * ------------------------------------------------------------------------ */

/* An input as the runtime (or the test kit) delivers it. */
typedef struct esc__process_delivery {
  esc_process_input_kind kind;
  int64_t time_us;
  /* EVENT: the stored source event (decoded through process->events) */
  const esc_recorded_event *event;
  /* DEADLINE: which one fired */
  esc_uuid deadline_id;
  /* OUTCOME: the command's id and what it came to */
  esc_uuid command_id;
  bool accepted;
  int code;
  const char *message;
} esc__process_delivery;

/* What handling one input produced: the records to append, in order. */
typedef struct esc__process_step {
  bool handled;            /* false: dropped, nothing to append */
  const char *reason;      /* when dropped: why (static text) */
  esc_event_data *records; /* data malloc'ed, owned by the step */
  size_t count, cap;
  void *metadata; /* every record's (see the top), owned by the step */
  size_t metadata_len;
  esc_process_decisions decisions; /* what decide made */
} esc__process_step;

void esc__process_step_init(esc__process_step *s);
void esc__process_step_release(esc__process_step *s);

/*
 * Handles one input against an instance folded up to date: drops it (an
 * input already handled, an event of a `continues` type for an instance
 * not started, a deadline no longer pending, an outcome of a command not
 * pending, anything but an outcome once terminal), else records it,
 * evolves, decides, and records the decisions. The records (with derived
 * ids and the instance stream's next versions) are folded into inst as
 * they are made, exactly as a later load would fold them; append them
 * with expected version = inst's version before the call. If the append
 * fails, inst is ahead of the store: release it and load again.
 *
 * ESC_EINVAL when the event does not decode, decide fails (the step's
 * decisions say why) or a record cannot be encoded; inst is then
 * unusable (release and load again) and nothing must be appended.
 */
esc_status esc__process_handle(esc__process_instance *inst,
                               const esc__process_delivery *in,
                               esc__process_step *out, esc_error *err);

/*
 * The instance an event of the process goes to: decodes it, checks its
 * type against starts and continues, and calls correlate. *mine false:
 * not for this process (type not subscribed, or correlate said so);
 * *starts: the type may start an instance. ESC_EINVAL when the event does
 * not decode or correlate names an invalid instance id.
 */
esc_status esc__process_route(const esc_process *p,
                              const esc_recorded_event *rec,
                              char instance[ESC_PROCESS_INSTANCE_MAX + 1],
                              bool *mine, bool *starts, esc_error *err);

#endif

/*
 * <esc/event.h> - event types: what a stored event's bytes mean.
 *
 * An event type names a kind of event (the stored event_type), the schema
 * version it is written with, and the codec between its C struct and the
 * msgpack payload. A registry holds a domain's types by name; decoding a
 * stored event checks its bytes (bounded), upcasts an older schema version
 * and decodes it. Deciders fold decoded events into state and projections
 * hand them to their handlers, so this layer sits beneath both.
 *
 * Decoded structs may point into the zone they were unpacked in: they are
 * valid only during the evolve (or projection handler) call that receives
 * them.
 *
 * Threading: a registry is immutable once built and may be shared by
 * threads.
 */
#ifndef ESC_EVENT_H
#define ESC_EVENT_H

#include <esc/store.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Event types
 * ------------------------------------------------------------------------ */

/*
 * One kind of event: its name (the stored event_type), the schema version
 * it is written with, and the codec between its C struct and msgpack.
 * Filled by the user, usually as a static const.
 */
typedef struct esc_event_type {
  const char *name;       /* esc_type_name_valid() */
  int32_t schema_version; /* current version, >= 1 */
  size_t size;            /* sizeof the C struct */
  /* Packs *event (a struct of this type). Returns 0, or -1 on failure. */
  int (*encode)(const void *event, msgpack_packer *pk);
  /* Fills *event from a payload of the current schema version. msgpack
   * strings are not NUL-terminated and obj's memory is freed after the
   * event is handled: copy strings into the struct (esc_map_str), or keep
   * pointer and length only for the duration of the callback. */
  esc_status (*decode)(const msgpack_object *obj, void *event, esc_error *err);
  /* Optional: rewrites a payload of an older schema version (from_version
   * < schema_version) into the current shape, packing it into pk. Runs on
   * every read, so deciders and projections only see the current shape.
   * NULL: older versions are an error. */
  esc_status (*upcast)(int32_t from_version, const msgpack_object *in,
                       msgpack_packer *pk, esc_error *err);
} esc_event_type;

/*
 * Reading payloads in decode functions: look a key up in a msgpack map and
 * convert it. Each returns false (and leaves *out alone) when obj is not a
 * map, the key is absent, or the value has another type, so a decoder can
 * write `if (!esc_map_i64(obj, "amount", &e->amount)) return ...;`.
 */
ESC_API const msgpack_object *esc_map_get(const msgpack_object *map,
                                          const char *key);
ESC_API bool esc_map_i64(const msgpack_object *map, const char *key,
                         int64_t *out);
ESC_API bool esc_map_bool(const msgpack_object *map, const char *key,
                          bool *out);
/* Copies a string value into buf (NUL-terminated); false also when it does
 * not fit. */
ESC_API bool esc_map_str(const msgpack_object *map, const char *key, char *buf,
                         size_t size);
/* Packs a string key, then the caller packs its value. */
ESC_API void esc_pack_key(msgpack_packer *pk, const char *key);
/* Packs a NUL-terminated string value. */
ESC_API void esc_pack_str(msgpack_packer *pk, const char *s);

/* ------------------------------------------------------------------------
 * Declared events: an event's fields declared once
 * ------------------------------------------------------------------------ */

/*
 * Instead of writing encode and decode by hand, declare the struct's
 * fields in a table and let ESC_EVENT_TYPE make the type:
 *
 *   typedef struct line { char sku[32]; int64_t qty; } line;
 *   typedef struct placed {
 *     char customer[64];
 *     esc_uuid cart;
 *     line lines[16];
 *     int line_count;
 *   } placed;
 *
 *   static const esc_field line_fields[] = {
 *       ESC_FIELD_STR(line, sku, "sku", 31, ESC_REQUIRED),
 *       ESC_FIELD_I64(line, qty, "qty", ESC_REQUIRED), ESC_FIELD_END};
 *   static const esc_field placed_fields[] = {
 *       ESC_FIELD_STR(placed, customer, "customer", 63, ESC_REQUIRED),
 *       ESC_FIELD_UUID(placed, cart, "cart", ESC_OPTIONAL),
 *       ESC_FIELD_ARRAY(placed, lines, line_count, "lines", line_fields,
 *                       ESC_REQUIRED),
 *       ESC_FIELD_END};
 *   ESC_EVENT_TYPE(ORDER_PLACED, "OrderPlaced", 1, placed, placed_fields,
 *                  NULL);
 *
 * ORDER_PLACED is an ordinary esc_event_type (registered, emitted, folded
 * and upcast as any other) whose encode and decode come from the table.
 *
 * The payload is a msgpack map keyed by the field names, in table order.
 * The macros check member types at compile time (a wrong member type or a
 * maximum that does not fit the array does not compile).
 *
 * Field kinds, their members and their msgpack:
 *   STR    char name[N], at most max (< N) bytes, no NUL byte inside: str
 *   I64    int64_t: int
 *   BOOL   bool: true / false
 *   BYTES  const void * (or const unsigned char *) and a size_t length
 *          member, at most max bytes: bin
 *   UUID   esc_uuid: str, the 36-character form (as metadata ids)
 *   TIME   int64_t, microseconds since the Unix epoch: int
 *   ARRAY  T name[N] of a struct with its own table, and an int count
 *          member, at most N items: an array of maps
 *
 * Required fields are always written and must be present (and not nil)
 * when decoding. Optional fields are left out when they hold their zero
 * value ("" , 0, false, the nil UUID, no bytes, no items) and decode as
 * zero when absent or nil. Keys the table does not name are ignored, so
 * adding an optional field needs no new schema version.
 *
 * Decoding is bounded by the table: strings, bytes and arrays longer than
 * their maximum are refused before anything is copied, and nesting follows
 * the table, never the input. Decoded strings and arrays are copied into
 * the struct, so they outlive the payload; BYTES members point into the
 * payload (or the zone it was unpacked in) and are valid only while the
 * event is (during the evolve or handler call): copy them to keep them.
 *
 * Errors name the event type, the field and what is wrong:
 *   OrderPlaced: "lines"[1]."sku" must be a string of at most 31 bytes but
 *   has 40
 * ("... but is missing", "... but is a map", "... but has 17 items").
 * Encoding checks the struct first (strings terminated inside their
 * arrays and within their maximum, counts and lengths in range), and
 * esc_event_encode returns that message as ESC_EINVAL.
 */
typedef enum esc_field_kind {
  ESC_FIELD_KIND_STR = 1,
  ESC_FIELD_KIND_I64,
  ESC_FIELD_KIND_BOOL,
  ESC_FIELD_KIND_BYTES,
  ESC_FIELD_KIND_UUID,
  ESC_FIELD_KIND_TIME,
  ESC_FIELD_KIND_ARRAY
} esc_field_kind;

typedef enum esc_presence { ESC_OPTIONAL = 0, ESC_REQUIRED = 1 } esc_presence;

/* One field; built with the ESC_FIELD_* macros, not by hand. */
typedef struct esc_field {
  const char *name; /* the map key; NULL ends a table (ESC_FIELD_END) */
  esc_field_kind kind;
  esc_presence presence;
  size_t offset;       /* of the member in its struct */
  size_t size;         /* sizeof the member */
  size_t max;          /* STR, BYTES: bytes (no NUL); ARRAY: items */
  size_t count_offset; /* BYTES: the size_t length; ARRAY: the int count */
  const struct esc_field *item; /* ARRAY: the item struct's table */
  size_t item_size;             /* ARRAY: sizeof one item */
} esc_field;

/* A struct's table with what messages and decoding need around it. */
typedef struct esc_fields {
  const char *type; /* the event type's name, for messages */
  size_t size;      /* sizeof the struct */
  const esc_field *table;
} esc_fields;

/* Tables may nest arrays this deep (an event, its items, theirs...). */
#define ESC_FIELDS_MAX_DEPTH 8

/* Compile-time checks usable inside initializers: 0, or an error. */
#define ESC__MEMBER(T, m) (((T *)0)->m)
#define ESC__CHECK(cond) (0 * sizeof(char[(cond) ? 1 : -1]))
#define ESC__IS(T, m, type) _Generic(ESC__MEMBER(T, m), type : 1, default : 0)

#define ESC__FIELD(T, m, n, k, p, mx)                                          \
  .name = (n), .kind = (k), .presence = (p), .offset = offsetof(T, m),         \
  .size = sizeof ESC__MEMBER(T, m), .max = (mx)

/* char m[N] holding at most maxlen bytes (maxlen < N). */
#define ESC_FIELD_STR(T, m, n, maxlen, p)                                      \
  {                                                                            \
    ESC__FIELD(T, m, n, ESC_FIELD_KIND_STR, p,                                 \
               (size_t)(maxlen) +                                              \
                   ESC__CHECK(_Generic(&ESC__MEMBER(T, m),                     \
                                       char(*)[sizeof ESC__MEMBER(T, m)] : 1,  \
                                       default : 0) &&                         \
                              (size_t)(maxlen) < sizeof ESC__MEMBER(T, m)))    \
  }
/* A member of one C type (checked) and one kind. */
#define ESC__FIELD_OF(T, m, n, k, ctype, p)                                    \
  { ESC__FIELD(T, m, n, k, p, ESC__CHECK(ESC__IS(T, m, ctype))) }
/* int64_t m. */
#define ESC_FIELD_I64(T, m, n, p)                                              \
  ESC__FIELD_OF(T, m, n, ESC_FIELD_KIND_I64, int64_t, p)
/* bool m. */
#define ESC_FIELD_BOOL(T, m, n, p)                                             \
  ESC__FIELD_OF(T, m, n, ESC_FIELD_KIND_BOOL, bool, p)
/* esc_uuid m. */
#define ESC_FIELD_UUID(T, m, n, p)                                             \
  ESC__FIELD_OF(T, m, n, ESC_FIELD_KIND_UUID, esc_uuid, p)
/* int64_t m: microseconds since the Unix epoch. */
#define ESC_FIELD_TIME(T, m, n, p)                                             \
  ESC__FIELD_OF(T, m, n, ESC_FIELD_KIND_TIME, int64_t, p)
/* const void *m (or const unsigned char *m) and size_t len_m, at most max
 * bytes. */
#define ESC_FIELD_BYTES(T, m, len_m, n, maxbytes, p)                           \
  {                                                                            \
    ESC__FIELD(                                                                \
        T, m, n, ESC_FIELD_KIND_BYTES, p,                                      \
        (size_t)(maxbytes) +                                                   \
            ESC__CHECK(_Generic(ESC__MEMBER(T, m), const void * : 1,           \
                                const unsigned char * : 1, default : 0) &&     \
                       ESC__IS(T, len_m, size_t))),                            \
        .count_offset = offsetof(T, len_m)                                     \
  }
/* item_type m[N] with its table item_table, and int count_m (0..N). */
#define ESC_FIELD_ARRAY(T, m, count_m, n, item_table, p)                       \
  {                                                                            \
    ESC__FIELD(T, m, n, ESC_FIELD_KIND_ARRAY, p,                               \
               sizeof ESC__MEMBER(T, m) / sizeof ESC__MEMBER(T, m)[0] +        \
                   ESC__CHECK(ESC__IS(T, count_m, int))),                      \
        .count_offset = offsetof(T, count_m), .item = (item_table),            \
        .item_size = sizeof ESC__MEMBER(T, m)[0]                               \
  }
/* Ends every table (a table may hold nothing else: an event without
 * fields). */
#define ESC_FIELD_END                                                          \
  { .name = NULL }

/*
 * The codec a table gives (ESC_EVENT_TYPE wires them in; call them
 * directly for structs that are not events, e.g. a decider's snapshot).
 * esc_fields_pack checks the struct (esc_fields_validate), then packs it:
 * 0, or -1 when the struct is invalid or packing failed (through
 * esc_event_encode the reason becomes its error). esc_fields_unpack
 * zeroes *event, then fills it from obj; ESC_EINVAL naming the field.
 */
ESC_API int esc_fields_pack(const esc_fields *f, const void *event,
                            msgpack_packer *pk);
ESC_API esc_status esc_fields_unpack(const esc_fields *f,
                                     const msgpack_object *obj, void *event,
                                     esc_error *err);
/* Whether *event fits its table: ESC_EINVAL naming the field otherwise. */
ESC_API esc_status esc_fields_validate(const esc_fields *f, const void *event,
                                       esc_error *err);

/*
 * Defines the esc_event_type var (external linkage; ESC_STATIC_EVENT_TYPE
 * for a static one) for struct T declared by table, with an optional
 * upcaster (NULL: none) for older schema versions.
 */
#define ESC_EVENT_TYPE(var, type_name, version, T, table, upcaster)            \
  ESC__EVENT_TYPE(, var, type_name, version, T, table, upcaster)
#define ESC_STATIC_EVENT_TYPE(var, type_name, version, T, table, upcaster)     \
  ESC__EVENT_TYPE(static, var, type_name, version, T, table, upcaster)
#define ESC__EVENT_TYPE(storage, var, type_name, version, T, table, upcaster)  \
  ESC__EVENT_CODEC(storage, var, type_name, version, T, (table), upcaster)
/* The codec of a declared type whose table is table_expr. */
#define ESC__EVENT_CODEC(storage, var, type_name, version, T, table_expr,      \
                         upcaster)                                             \
  static int var##__esc_encode(const void *event, msgpack_packer *pk) {        \
    const esc_fields f = {(type_name), sizeof(T), table_expr};                 \
    return esc_fields_pack(&f, event, pk);                                     \
  }                                                                            \
  static esc_status var##__esc_decode(const msgpack_object *obj, void *event,  \
                                      esc_error *err) {                        \
    const esc_fields f = {(type_name), sizeof(T), table_expr};                 \
    return esc_fields_unpack(&f, obj, event, err);                             \
  }                                                                            \
  storage const esc_event_type var = {(type_name),       (version),            \
                                      sizeof(T),         var##__esc_encode,    \
                                      var##__esc_decode, (upcaster)}

/*
 * Shorter still: one list of fields gives both the struct (in a header)
 * and its table (in the .c file), as the kernel's TRACE_EVENT does. The
 * list is a macro of X with one X(KIND, member, ...) per field, and the
 * member's name is its key:
 *
 *   #define MONEY_DEPOSITED(X) X(I64, amount) X(STR, currency, 7)
 *   ESC_EVENT_DECLARE(money_deposited, money_deposited_t,    (a header)
 *                     MONEY_DEPOSITED);
 *   ESC_EVENT_DEFINE(money_deposited, "MoneyDeposited", 2,   (its .c)
 *                    money_deposited_t, MONEY_DEPOSITED, NULL);
 *
 * gives `typedef struct money_deposited_t { int64_t amount; char
 * currency[8]; } money_deposited_t;` (ESC_EVENT_STRUCT alone gives just
 * that) and the esc_event_type money_deposited, exactly as the table
 *   ESC_FIELD_I64(money_deposited_t, amount, "amount", ESC_REQUIRED),
 *   ESC_FIELD_STR(money_deposited_t, currency, "currency", 7, ESC_REQUIRED)
 * would: same payload, checks, messages and JSON.
 *
 * Kinds (required; OPT_STR, OPT_I64, OPT_BOOL, OPT_UUID and OPT_TIME are
 * the optional ones):
 *   X(STR, m, maxlen)  char m[maxlen + 1]
 *   X(I64, m)          int64_t m
 *   X(BOOL, m)         bool m
 *   X(UUID, m)         esc_uuid m
 *   X(TIME, m)         int64_t m, microseconds since the Unix epoch
 * BYTES and ARRAY need a second member: declare those structs and tables
 * by hand. ESC_NO_FIELDS is the list of an event without fields (its
 * struct holds one unused char, C having no empty structs).
 */
#define ESC_EVENT_STRUCT(T, FIELDS)                                            \
  typedef struct T {                                                           \
    FIELDS(ESC__X_MEMBER)                                                      \
  } T
/* The struct and `extern const esc_event_type var`, for a header. */
#define ESC_EVENT_DECLARE(var, T, FIELDS)                                      \
  ESC_EVENT_STRUCT(T, FIELDS);                                                 \
  extern const esc_event_type var
#define ESC_EVENT_DEFINE(var, type_name, version, T, FIELDS, upcaster)         \
  ESC__EVENT_DEFINE(, var, type_name, version, T, FIELDS, upcaster)
#define ESC_STATIC_EVENT_DEFINE(var, type_name, version, T, FIELDS, upcaster)  \
  ESC__EVENT_DEFINE(static, var, type_name, version, T, FIELDS, upcaster)
#define ESC_NO_FIELDS(X) X(NONE, esc_unused_)

/*
 * A domain's events as one list, each E(var, "Name", version, FIELDS,
 * upcaster) with the struct named var_t:
 *
 *   #define ACCOUNT_EVENTS(E)                                        \
 *     E(account_opened, "AccountOpened", 1, ACCOUNT_OPENED, NULL)    \
 *     E(money_deposited, "MoneyDeposited", 2, MONEY_DEPOSITED, v1)
 *   ESC_EVENTS_DECLARE(account_events, ACCOUNT_EVENTS)   (a header)
 *   ESC_EVENTS_DEFINE(account_events, ACCOUNT_EVENTS)    (its .c)
 *
 * DECLARE gives each struct (account_opened_t), each extern type and the
 * prototype of the registry function; DEFINE gives each type (as
 * ESC_EVENT_DEFINE) and the registry function (as ESC_EVENT_REGISTRY).
 * The upcasters are named only in the .c file's expansion, so they may
 * be static functions there.
 */
#define ESC_EVENTS_DECLARE(registry_fn, EVENTS)                                \
  EVENTS(ESC__E_DECLARE)                                                       \
  const esc_event_registry *registry_fn(void);
#define ESC_EVENTS_DEFINE(registry_fn, EVENTS)                                 \
  EVENTS(ESC__E_DEFINE)                                                        \
  ESC__EVENT_REGISTRY(registry_fn, EVENTS(ESC__E_ADDRESS) NULL)
#define ESC__E_DECLARE(var, type_name, version, FIELDS, upcaster)              \
  ESC_EVENT_DECLARE(var, var##_t, FIELDS);
#define ESC__E_DEFINE(var, type_name, version, FIELDS, upcaster)               \
  ESC_EVENT_DEFINE(var, type_name, version, var##_t, FIELDS, upcaster);
#define ESC__E_ADDRESS(var, type_name, version, FIELDS, upcaster) &var,

/* The table lives in a function so that its entries can name the struct
 * by a block-scope typedef: the list's X gets no other argument. */
#define ESC__EVENT_DEFINE(storage, var, type_name, version, T, FIELDS,         \
                          upcaster)                                            \
  static const esc_field *var##__esc_table(void) {                             \
    typedef T esc__T;                                                          \
    static const esc_field table[] = {FIELDS(ESC__X_FIELD) ESC_FIELD_END};     \
    (void)sizeof(esc__T); /* used even when FIELDS is ESC_NO_FIELDS */         \
    return table;                                                              \
  }                                                                            \
  ESC__EVENT_CODEC(storage, var, type_name, version, T, var##__esc_table(),    \
                   upcaster)

#define ESC__X_MEMBER(kind, ...) ESC__X_MEMBER_##kind(__VA_ARGS__)
#define ESC__X_MEMBER_STR(m, maxlen) char m[(maxlen) + 1];
#define ESC__X_MEMBER_I64(m) int64_t m;
#define ESC__X_MEMBER_BOOL(m) bool m;
#define ESC__X_MEMBER_UUID(m) esc_uuid m;
#define ESC__X_MEMBER_TIME(m) int64_t m;
#define ESC__X_MEMBER_OPT_STR ESC__X_MEMBER_STR
#define ESC__X_MEMBER_OPT_I64 ESC__X_MEMBER_I64
#define ESC__X_MEMBER_OPT_BOOL ESC__X_MEMBER_BOOL
#define ESC__X_MEMBER_OPT_UUID ESC__X_MEMBER_UUID
#define ESC__X_MEMBER_OPT_TIME ESC__X_MEMBER_TIME
#define ESC__X_MEMBER_NONE(m) char m;

#define ESC__X_FIELD(kind, ...) ESC__X_FIELD_##kind(__VA_ARGS__)
#define ESC__X_STR(m, maxlen, p) ESC_FIELD_STR(esc__T, m, #m, maxlen, p),
#define ESC__X_FIELD_STR(m, maxlen) ESC__X_STR(m, maxlen, ESC_REQUIRED)
#define ESC__X_FIELD_OPT_STR(m, maxlen) ESC__X_STR(m, maxlen, ESC_OPTIONAL)
#define ESC__X_FIELD_I64(m) ESC_FIELD_I64(esc__T, m, #m, ESC_REQUIRED),
#define ESC__X_FIELD_OPT_I64(m) ESC_FIELD_I64(esc__T, m, #m, ESC_OPTIONAL),
#define ESC__X_FIELD_BOOL(m) ESC_FIELD_BOOL(esc__T, m, #m, ESC_REQUIRED),
#define ESC__X_FIELD_OPT_BOOL(m) ESC_FIELD_BOOL(esc__T, m, #m, ESC_OPTIONAL),
#define ESC__X_FIELD_UUID(m) ESC_FIELD_UUID(esc__T, m, #m, ESC_REQUIRED),
#define ESC__X_FIELD_OPT_UUID(m) ESC_FIELD_UUID(esc__T, m, #m, ESC_OPTIONAL),
#define ESC__X_FIELD_TIME(m) ESC_FIELD_TIME(esc__T, m, #m, ESC_REQUIRED),
#define ESC__X_FIELD_OPT_TIME(m) ESC_FIELD_TIME(esc__T, m, #m, ESC_OPTIONAL),
#define ESC__X_FIELD_NONE(m)

/*
 * For upcasters: packs the map in with key: value added (a string), unless
 * in has that key already, e.g. a field a new schema version made
 * required, with the value old events meant. ESC_EINVAL when in is not a
 * map.
 */
ESC_API esc_status esc_upcast_add_str(const msgpack_object *in,
                                      msgpack_packer *pk, const char *key,
                                      const char *value, esc_error *err);

/*
 * Defines the static upcaster fn that adds key: value (a string) to
 * payloads of every older schema version, as esc_upcast_add_str does:
 * for a required string field a new version added.
 *   ESC_UPCAST_ADD_STR(deposited_v1, "currency", "EUR")
 */
#define ESC_UPCAST_ADD_STR(fn, key, value)                                     \
  static esc_status fn(int32_t from, const msgpack_object *in,                 \
                       msgpack_packer *pk, esc_error *err) {                   \
    (void)from;                                                                \
    return esc_upcast_add_str(in, pk, (key), (value), err);                    \
  }

/* The event types of a domain, by name. */
typedef struct esc_event_registry esc_event_registry;

/* Returns NULL and fills err on failure (out of memory). */
ESC_API esc_event_registry *esc_event_registry_new(esc_error *err);
ESC_API void esc_event_registry_free(esc_event_registry *reg);

/*
 * Registers a type; the type is borrowed and must outlive the registry.
 * ESC_EINVAL for an invalid name or version, a missing codec, or a name
 * registered already.
 */
ESC_API esc_status esc_event_registry_add(esc_event_registry *reg,
                                          const esc_event_type *type,
                                          esc_error *err);

/*
 * A registry of the NULL-terminated list types (borrowed, as with
 * esc_event_registry_add): what most domains build once. NULL and err on
 * failure, which then names the type at fault.
 */
ESC_API esc_event_registry *
esc_event_registry_of(const esc_event_type *const *types, esc_error *err);

/*
 * Defines `const esc_event_registry *fn(void)`, the registry of the listed
 * types built on its first call and kept for the life of the process:
 *
 *   ESC_EVENT_REGISTRY(account_events, &account_opened, &account_closed)
 *
 * Thread-safe: first calls that race each build one and all but one free
 * theirs. A decider's or projection's registry field takes fn as it is.
 * NULL when the types cannot be registered (an invalid name, two types
 * of one name: a bug), with the reason printed once per call on stderr,
 * since fn has no error to fill.
 */
#define ESC_EVENT_REGISTRY(fn, ...) ESC__EVENT_REGISTRY(fn, __VA_ARGS__, NULL)
#define ESC__EVENT_REGISTRY(fn, ...)                                           \
  const esc_event_registry *fn(void) {                                         \
    static const esc_event_type *const types[] = {__VA_ARGS__};                \
    static esc_event_registry *built;                                          \
    return esc_event_registry_once(&built, types);                             \
  }

/* What ESC_EVENT_REGISTRY's function calls: *slot once it holds a
 * registry, else esc_event_registry_of(types) stored into *slot (an
 * atomic compare-and-swap; the loser of a race frees its own). *slot
 * must start NULL and outlive every caller. */
ESC_API const esc_event_registry *
esc_event_registry_once(esc_event_registry **slot,
                        const esc_event_type *const *types);

/* The type registered under name, or NULL. */
ESC_API const esc_event_type *
esc_event_registry_find(const esc_event_registry *reg, const char *name);

/*
 * A decoded event: its type, its decoded struct, and where it was stored
 * (NULL for an event just decided and not yet stored).
 */
typedef struct esc_event {
  const esc_event_type *type;
  const void *data;                   /* a struct of type->size bytes */
  const esc_recorded_event *recorded; /* borrowed; may be NULL */
} esc_event;

/*
 * Decodes a stored event through the registry: checks the bytes (bounded,
 * see esc_msgpack_check), upcasts an older schema version, and decodes into
 * out_struct (at least type->size bytes, zeroed first). Strings may point
 * into zone, which the caller owns (msgpack_zone_init / destroy) and must
 * keep until it is done with the event. ESC_ENOTFOUND for an unknown type,
 * ESC_EINVAL for bad bytes or a failed upcast, each naming stream, version
 * and type. *type is NULL on failure; a failing upcaster's or decoder's own
 * status is returned (normally ESC_EINVAL).
 */
ESC_API esc_status esc_event_decode(const esc_event_registry *reg,
                                    const esc_recorded_event *rec,
                                    msgpack_zone *zone, void *out_struct,
                                    const esc_event_type **type,
                                    esc_error *err);

/* Encodes an event struct to msgpack; *out is malloc'ed, the caller frees. */
ESC_API esc_status esc_event_encode(const esc_event_type *type,
                                    const void *event, void **out,
                                    size_t *out_len, esc_error *err);

/*
 * JSON of an event struct as its type encodes it (esc_event_encode, then
 * esc_msgpack_to_json): for a declared type, its fields in table order.
 * *out is malloc'ed and the caller frees it; NULL on failure.
 */
ESC_API esc_status esc_event_to_json(const esc_event_type *type,
                                     const void *event, char **out,
                                     esc_error *err);

/*
 * JSON of a stored event's data as reg reads it: decoded (checked and
 * upcast to the current schema version), then rendered by
 * esc_event_to_json, so old versions show in the current shape and keys
 * no field declares are dropped. ESC_ENOTFOUND for a type reg does not
 * know (render the raw bytes with esc_msgpack_to_json then), else what
 * esc_event_decode returns. *out as above.
 */
ESC_API esc_status esc_event_render_json(const esc_event_registry *reg,
                                         const esc_recorded_event *rec,
                                         char **out, esc_error *err);

#ifdef __cplusplus
}
#endif

#endif /* ESC_EVENT_H */

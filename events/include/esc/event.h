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

#ifdef __cplusplus
}
#endif

#endif /* ESC_EVENT_H */

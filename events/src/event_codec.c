/*
 * Event payloads between C structs and msgpack, through an event type's
 * codec. Decoding treats the stored bytes as untrusted (guarantee 10):
 * they are bounded with esc_msgpack_check before msgpack-c sees them, and
 * msgpack-c's results are compared against MSGPACK_UNPACK_SUCCESS, never
 * tested for truth. Older schema versions go through the type's upcaster,
 * whose output is checked the same way before it is unpacked.
 */
#include "fields_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Names in messages are cut so the reason after them always fits. */
#define NAME_FMT "%.80s"

/* ------------------------------------------------------------------------
 * Errors naming the event
 * ------------------------------------------------------------------------ */

static esc_status fail_at(esc_error *err, esc_status code,
                          const esc_recorded_event *rec, const char *fmt, ...)
    PRINTF_LIKE(4, 5);

/* "event <stream>@<version>: <what>" */
static esc_status fail_at(esc_error *err, esc_status code,
                          const esc_recorded_event *rec, const char *fmt, ...) {
  char what[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return esc_error_set(err, code, "event " NAME_FMT "@%" PRId64 ": %s",
                       rec->stream_id ? rec->stream_id : "(no stream)",
                       rec->stream_version, what);
}

/* A callee's message, or a stand-in when it left none. */
static const char *reason(const esc_error *inner) {
  return inner->msg[0] ? inner->msg : "(no message)";
}

/* ------------------------------------------------------------------------
 * Bounded unpacking
 * ------------------------------------------------------------------------ */

/*
 * Checks and unpacks data into zone. Strings in *obj point into data, so
 * data must live as long as the zone's contents are used. The byte limit
 * is raised to len: the bytes are already in memory (and the store bounded
 * them when they were appended, possibly with a larger max_event_size);
 * what must stay bounded is what their declared lengths make msgpack-c
 * allocate, which depth and element limits do.
 */
static esc_status unpack(const void *data, size_t len, msgpack_zone *zone,
                         msgpack_object *obj, esc_error *err) {
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  if (len > limits.max_bytes)
    limits.max_bytes = len;
  esc_status st = esc_msgpack_check(data, len, &limits, err);
  if (st != ESC_OK)
    return st;
  size_t off = 0;
  msgpack_unpack_return r = msgpack_unpack(data, len, &off, zone, obj);
  if (r == MSGPACK_UNPACK_SUCCESS)
    return ESC_OK;
  if (r == MSGPACK_UNPACK_NOMEM_ERROR)
    return esc_error_set(err, ESC_ENOMEM, "msgpack: out of memory");
  return esc_error_set(err, ESC_EINVAL, "msgpack: unpack failed (%d)", (int)r);
}

/* ------------------------------------------------------------------------
 * Upcasting
 * ------------------------------------------------------------------------ */

/* Moves the packed bytes into the zone, where unpacked strings may point
 * for as long as the caller keeps the zone. */
static esc_status unpack_packed(const msgpack_sbuffer *sbuf, msgpack_zone *zone,
                                msgpack_object *obj, esc_error *err) {
  char *copy =
      sbuf->size ? msgpack_zone_malloc_no_align(zone, sbuf->size) : NULL;
  if (sbuf->size && !copy)
    return esc_error_set(err, ESC_ENOMEM, "msgpack: out of memory");
  if (copy)
    memcpy(copy, sbuf->data, sbuf->size);
  return unpack(copy ? copy : "", sbuf->size, zone, obj, err);
}

/* Rewrites *obj (of rec's older schema version) into type's current
 * shape, in place. The upcaster's own status is kept (normally EINVAL). */
static esc_status upcast(const esc_event_type *type,
                         const esc_recorded_event *rec, msgpack_zone *zone,
                         msgpack_object *obj, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sbuf);
  msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
  esc_status st = type->upcast(rec->schema_version, obj, &pk, &inner);
  if (st != ESC_OK) {
    fail_at(err, st, rec,
            "upcasting " NAME_FMT " from v%" PRId32 " to v%" PRId32 ": %s",
            type->name, rec->schema_version, type->schema_version,
            reason(&inner));
    goto out;
  }
  st = unpack_packed(&sbuf, zone, obj, &inner);
  if (st != ESC_OK)
    fail_at(err, st, rec,
            "upcaster of " NAME_FMT " from v%" PRId32
            " produced bad msgpack: %s",
            type->name, rec->schema_version, inner.msg);
out:
  msgpack_sbuffer_destroy(&sbuf);
  return st;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* Finds rec's type and checks its schema version can be read. */
static esc_status resolve(const esc_event_registry *reg,
                          const esc_recorded_event *rec,
                          const esc_event_type **out, esc_error *err) {
  const esc_event_type *type = esc_event_registry_find(reg, rec->type);
  if (!type)
    return fail_at(err, ESC_ENOTFOUND, rec,
                   "unknown event type \"" NAME_FMT "\"",
                   rec->type ? rec->type : "(null)");
  if (rec->schema_version < 1)
    return fail_at(err, ESC_EINVAL, rec,
                   NAME_FMT " has schema version %" PRId32
                            "; versions start at 1",
                   type->name, rec->schema_version);
  if (rec->schema_version > type->schema_version)
    return fail_at(err, ESC_EINVAL, rec,
                   NAME_FMT " v%" PRId32
                            " was written by a newer program; this "
                            "one reads up to v%" PRId32,
                   type->name, rec->schema_version, type->schema_version);
  if (rec->schema_version < type->schema_version && !type->upcast)
    return fail_at(err, ESC_EINVAL, rec,
                   "no upcaster from v%" PRId32 " to v%" PRId32
                   " for " NAME_FMT,
                   rec->schema_version, type->schema_version, type->name);
  *out = type;
  return ESC_OK;
}

esc_status esc_event_decode(const esc_event_registry *reg,
                            const esc_recorded_event *rec, msgpack_zone *zone,
                            void *out_struct, const esc_event_type **type,
                            esc_error *err) {
  const esc_event_type *t = NULL;
  esc_error inner = ESC_ERROR_INIT;
  msgpack_object obj;
  if (type)
    *type = NULL;
  if (!reg || !rec || !zone || !out_struct || (!rec->data && rec->data_len))
    return esc_error_set(err, ESC_EINVAL,
                         "event decode: registry, event, data, zone or "
                         "struct is NULL");
  esc_status st = resolve(reg, rec, &t, err);
  if (st != ESC_OK)
    return st;
  st = unpack(rec->data ? rec->data : "", rec->data_len, zone, &obj, &inner);
  if (st != ESC_OK)
    return fail_at(err, st, rec, NAME_FMT " v%" PRId32 ": %s", t->name,
                   rec->schema_version, inner.msg);
  if (rec->schema_version < t->schema_version &&
      (st = upcast(t, rec, zone, &obj, err)) != ESC_OK)
    return st;
  memset(out_struct, 0, t->size);
  st = t->decode(&obj, out_struct, &inner);
  if (st != ESC_OK)
    return fail_at(err, st, rec, "decoding " NAME_FMT " v%" PRId32 ": %s",
                   t->name, t->schema_version, reason(&inner));
  if (type)
    *type = t;
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

/* The encoder's output must be exactly one msgpack object, as the store
 * requires: caught here, where the type can be named. */
static esc_status check_encoded(const esc_event_type *type,
                                const msgpack_sbuffer *sbuf, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  esc_decode_limits limits = ESC_DECODE_LIMITS_INIT;
  if (sbuf->size > limits.max_bytes)
    limits.max_bytes = sbuf->size; /* the store enforces its own limit */
  if (esc_msgpack_check(sbuf->data ? sbuf->data : "", sbuf->size, &limits,
                        &inner) != ESC_OK)
    return esc_error_set(err, ESC_EINVAL,
                         "encoding event type " NAME_FMT
                         ": the encoder packed bad msgpack: %s",
                         type->name, inner.msg);
  return ESC_OK;
}

/* esc_event_encode's packer: an sbuffer, and where a declared encoder
 * says why it failed (esc__packer_error). */
typedef struct encoding {
  msgpack_sbuffer sbuf;
  esc_error *err;
} encoding;

static int encoding_write(void *data, const char *buf, size_t len) {
  return msgpack_sbuffer_write(&((encoding *)data)->sbuf, buf, len);
}

esc_error *esc__packer_error(const msgpack_packer *pk) {
  if (!pk || pk->callback != encoding_write)
    return NULL;
  return ((encoding *)pk->data)->err;
}

esc_status esc_event_encode(const esc_event_type *type, const void *event,
                            void **out, size_t *out_len, esc_error *err) {
  if (!out || !out_len)
    return esc_error_set(err, ESC_EINVAL, "event encode: out is NULL");
  *out = NULL;
  *out_len = 0;
  if (!type || !type->name || !type->encode || !event)
    return esc_error_set(err, ESC_EINVAL,
                         "event encode: type, its encoder or the event is "
                         "NULL");
  esc_error why = ESC_ERROR_INIT;
  encoding enc = {.err = &why};
  msgpack_packer pk;
  msgpack_sbuffer_init(&enc.sbuf);
  msgpack_packer_init(&pk, &enc, encoding_write);
  esc_status st = ESC_OK;
  if (type->encode(event, &pk) != 0)
    st = why.code != ESC_OK
             ? esc_error_set(err, why.code, "%s", why.msg)
             : esc_error_set(err, ESC_EINVAL,
                             "encoding event type " NAME_FMT " failed",
                             type->name);
  else
    st = check_encoded(type, &enc.sbuf, err);
  if (st != ESC_OK) {
    msgpack_sbuffer_destroy(&enc.sbuf);
    return st;
  }
  /* sbuffer grows in 8 KiB steps; a decision may hold many small events,
   * so give back what the event does not use. */
  *out_len = enc.sbuf.size;
  *out = msgpack_sbuffer_release(&enc.sbuf); /* malloc'ed: the caller frees */
  void *fitted = realloc(*out, *out_len ? *out_len : 1);
  if (fitted)
    *out = fitted;
  return ESC_OK;
}

/*
 * The instance stream's records: one msgpack map per record (<esc_internal/process.h>
 * lists the keys). Ids are UUID strings and the source event's payload and
 * the command are embedded as msgpack objects rather than opaque bytes, so
 * `esc read --json` of an instance stream shows what it handled and did.
 *
 * Decoding trusts nothing: the bytes are checked (esc_msgpack_check) before
 * msgpack-c sees them, every string is bounded and copied NUL-terminated
 * into the zone, and every field's type is checked.
 */
#include <esc_internal/process.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *const TYPE_NAMES[] = {
    NULL,
    ESC__PROCESS_EVENT_RECEIVED,
    ESC__PROCESS_COMMAND_OUTCOME,
    ESC__PROCESS_DEADLINE_FIRED,
    ESC__PROCESS_COMMAND_ISSUED,
    ESC__PROCESS_DEADLINE_SCHEDULED,
    ESC__PROCESS_DEADLINE_CANCELLED,
};

#define KIND_MAX ESC__REC_DEADLINE_CANCELLED

const char *esc__process_record_type(esc__process_record_kind kind) {
  return kind >= 1 && kind <= KIND_MAX ? TYPE_NAMES[kind] : NULL;
}

static esc__process_record_kind kind_of(const char *type) {
  for (int k = 1; k <= KIND_MAX; k++)
    if (type && strcmp(type, TYPE_NAMES[k]) == 0)
      return (esc__process_record_kind)k;
  return 0;
}

static bool is_input(esc__process_record_kind k) {
  return k == ESC__REC_EVENT_RECEIVED || k == ESC__REC_COMMAND_OUTCOME ||
         k == ESC__REC_DEADLINE_FIRED;
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static void pack_uuid(msgpack_packer *pk, const char *key, const esc_uuid *id) {
  char text[37];
  esc_pack_key(pk, key);
  if (esc_uuid_is_nil(id)) {
    msgpack_pack_nil(pk);
    return;
  }
  esc_uuid_format(id, text);
  esc_pack_str(pk, text);
}

static void pack_i64(msgpack_packer *pk, const char *key, int64_t v) {
  esc_pack_key(pk, key);
  msgpack_pack_int64(pk, v);
}

static void pack_str(msgpack_packer *pk, const char *key, const char *s) {
  esc_pack_key(pk, key);
  esc_pack_str(pk, s ? s : "");
}

/* Embeds one msgpack object as it is; it must be exactly one. */
static esc_status pack_embedded(msgpack_packer *pk, const char *key,
                                const void *data, size_t len, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  esc_decode_limits lim = ESC_DECODE_LIMITS_INIT;
  if (esc_msgpack_check(data, len, &lim, &inner) != ESC_OK)
    return esc_error_set(err, ESC_EINVAL, "process record: %s: %s", key,
                         inner.msg);
  esc_pack_key(pk, key);
  if (pk->callback(pk->data, data, len) != 0)
    return esc_error_set(err, ESC_ENOMEM, "process record: out of memory");
  return ESC_OK;
}

/* How many keys each kind writes (the map header comes first). */
static const uint32_t KEY_COUNT[] = {0, 9, 5, 4, 6, 6, 4};

static esc_status pack_body(const esc__process_record *r, msgpack_packer *pk,
                            esc_error *err) {
  char token[ESC_POSITION_TOKEN_MAX];
  msgpack_pack_map(pk, KEY_COUNT[r->kind]);
  if (!is_input(r->kind)) {
    pack_uuid(pk, "id", &r->id);
    pack_i64(pk, "index", r->index);
  } else {
    pack_i64(pk, "time", r->time_us);
  }
  pack_uuid(pk, "input", &r->input);
  switch (r->kind) {
  case ESC__REC_EVENT_RECEIVED:
    pack_str(pk, "stream", r->stream);
    pack_i64(pk, "version", r->version);
    esc_position_format(&r->position, token);
    pack_str(pk, "position", token);
    pack_str(pk, "type", r->event_type);
    pack_i64(pk, "schema", r->schema_version);
    pack_i64(pk, "recorded", r->recorded_us);
    return pack_embedded(pk, "data", r->data, r->data_len, err);
  case ESC__REC_COMMAND_OUTCOME:
    esc_pack_key(pk, "accepted");
    r->accepted ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_i64(pk, "code", r->code);
    pack_str(pk, "message", r->message);
    return ESC_OK;
  case ESC__REC_DEADLINE_FIRED:
    pack_str(pk, "name", r->name);
    pack_i64(pk, "due", r->due_us);
    return ESC_OK;
  case ESC__REC_COMMAND_ISSUED:
    pack_str(pk, "type", r->event_type);
    pack_str(pk, "stream", r->stream);
    return pack_embedded(pk, "command", r->data, r->data_len, err);
  case ESC__REC_DEADLINE_SCHEDULED:
    pack_str(pk, "name", r->name);
    pack_i64(pk, "due", r->due_us);
    pack_uuid(pk, "replaces", &r->replaces);
    return ESC_OK;
  case ESC__REC_DEADLINE_CANCELLED:
    pack_str(pk, "name", r->name);
    return ESC_OK;
  }
  return ESC_EINVAL;
}

esc_status esc__process_record_encode(const esc__process_record *r, void **out,
                                      size_t *out_len, esc_error *err) {
  *out = NULL;
  *out_len = 0;
  if (!esc__process_record_type(r->kind))
    return esc_error_set(err, ESC_EINVAL, "process record: unknown kind %d",
                         (int)r->kind);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  esc_status rc = pack_body(r, &pk, err);
  if (rc == ESC_OK && sb.size > ESC__PROCESS_RECORD_MAX_BYTES)
    rc = esc_error_set(err, ESC_EINVAL,
                       "process record %s is %zu bytes, more than %d",
                       esc__process_record_type(r->kind), sb.size,
                       ESC__PROCESS_RECORD_MAX_BYTES);
  if (rc == ESC_OK) {
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    if (!*out)
      rc = esc_error_set(err, ESC_ENOMEM, "process record: out of memory");
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* ------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------ */

/* What a field getter needs: the map, the zone, and the record's type for
 * messages. */
typedef struct reader {
  const msgpack_object *map;
  msgpack_zone *zone;
  const char *type;
  esc_error *err;
} reader;

static esc_status bad(const reader *rd, const char *key, const char *want) {
  return esc_error_set(rd->err, ESC_EINVAL, "process record %s: \"%s\" %s",
                       rd->type, key, want);
}

/* A string of at most max bytes without NUL, copied NUL-terminated into
 * the zone. */
static esc_status get_str(const reader *rd, const char *key, size_t max,
                          const char **out) {
  const msgpack_object *v = esc_map_get(rd->map, key);
  if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size > max ||
      (v->via.str.size && memchr(v->via.str.ptr, '\0', v->via.str.size)))
    return bad(rd, key, "must be a string of at most the allowed length");
  char *s = msgpack_zone_malloc(rd->zone, v->via.str.size + 1);
  if (!s)
    return esc_error_set(rd->err, ESC_ENOMEM, "process record: out of memory");
  memcpy(s, v->via.str.ptr, v->via.str.size);
  s[v->via.str.size] = '\0';
  *out = s;
  return ESC_OK;
}

static esc_status get_i64(const reader *rd, const char *key, int64_t min,
                          int64_t *out) {
  int64_t v;
  if (!esc_map_i64(rd->map, key, &v) || v < min)
    return bad(rd, key, "must be an integer in range");
  *out = v;
  return ESC_OK;
}

/* A UUID string; nil (msgpack nil) only when nil_ok. */
static esc_status get_uuid(const reader *rd, const char *key, bool nil_ok,
                           esc_uuid *out) {
  const msgpack_object *v = esc_map_get(rd->map, key);
  char text[37];
  memset(out, 0, sizeof *out);
  if (v && v->type == MSGPACK_OBJECT_NIL && nil_ok)
    return ESC_OK;
  if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size != 36)
    return bad(rd, key, "must be a UUID string");
  memcpy(text, v->via.str.ptr, 36);
  text[36] = '\0';
  if (esc_uuid_parse(text, out, NULL) != ESC_OK)
    return bad(rd, key, "must be a UUID string");
  return ESC_OK;
}

/* An embedded object, packed again into bytes in the zone (what the event
 * decoder and the command codecs take). */
static esc_status get_embedded(const reader *rd, const char *key,
                               const void **data, size_t *len) {
  const msgpack_object *v = esc_map_get(rd->map, key);
  if (!v)
    return bad(rd, key, "is missing");
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  esc_status rc = ESC_OK;
  void *copy = NULL;
  if (msgpack_pack_object(&pk, *v) != 0 || sb.size == 0 ||
      !(copy = msgpack_zone_malloc(rd->zone, sb.size)))
    rc = esc_error_set(rd->err, ESC_ENOMEM, "process record: out of memory");
  else {
    memcpy(copy, sb.data, sb.size);
    *data = copy;
    *len = sb.size;
  }
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static esc_status get_position(const reader *rd, const char *key,
                               esc_position *out) {
  const char *token = NULL;
  esc_status rc = get_str(rd, key, ESC_POSITION_TOKEN_MAX, &token);
  if (rc == ESC_OK && esc_position_parse(token, out, NULL) != ESC_OK)
    rc = bad(rd, key, "must be a position \"tx/global\"");
  return rc;
}

static esc_status get_event_received(const reader *rd, esc__process_record *r) {
  int64_t schema = 0;
  esc_status rc = get_str(rd, "stream", ESC_STREAM_ID_MAX, &r->stream);
  if (!rc)
    rc = get_i64(rd, "version", 1, &r->version);
  if (!rc)
    rc = get_position(rd, "position", &r->position);
  if (!rc)
    rc = get_str(rd, "type", ESC_TYPE_NAME_MAX, &r->event_type);
  if (!rc)
    rc = get_i64(rd, "schema", 1, &schema);
  if (!rc && schema > INT32_MAX)
    rc = bad(rd, "schema", "must be an integer in range");
  r->schema_version = (int32_t)schema;
  if (!rc)
    rc = get_i64(rd, "recorded", INT64_MIN, &r->recorded_us);
  if (!rc)
    rc = get_embedded(rd, "data", &r->data, &r->data_len);
  return rc;
}

static esc_status get_outcome(const reader *rd, esc__process_record *r) {
  int64_t code = 0;
  if (!esc_map_bool(rd->map, "accepted", &r->accepted))
    return bad(rd, "accepted", "must be a boolean");
  esc_status rc = get_i64(rd, "code", 0, &code);
  if (!rc && code > INT32_MAX)
    rc = bad(rd, "code", "must be an integer in range");
  r->code = (int32_t)code;
  if (!rc)
    rc = get_str(rd, "message", ESC_PROCESS_MESSAGE_MAX, &r->message);
  return rc;
}

/* The fields of kinds other than EVENT_RECEIVED and COMMAND_OUTCOME. */
static esc_status get_rest(const reader *rd, esc__process_record *r) {
  esc_status rc = ESC_OK;
  switch (r->kind) {
  case ESC__REC_DEADLINE_FIRED:
  case ESC__REC_DEADLINE_SCHEDULED:
    rc = get_str(rd, "name", ESC_PROCESS_DEADLINE_MAX, &r->name);
    if (!rc)
      rc = get_i64(rd, "due", 0, &r->due_us);
    if (!rc && r->kind == ESC__REC_DEADLINE_SCHEDULED)
      rc = get_uuid(rd, "replaces", true, &r->replaces);
    return rc;
  case ESC__REC_COMMAND_ISSUED:
    rc = get_str(rd, "type", ESC_TYPE_NAME_MAX, &r->event_type);
    if (!rc)
      rc = get_str(rd, "stream", ESC_STREAM_ID_MAX, &r->stream);
    if (!rc)
      rc = get_embedded(rd, "command", &r->data, &r->data_len);
    return rc;
  case ESC__REC_DEADLINE_CANCELLED:
    return get_str(rd, "name", ESC_PROCESS_DEADLINE_MAX, &r->name);
  default:
    return ESC_OK;
  }
}

static esc_status get_fields(const reader *rd, esc__process_record *r) {
  int64_t index = 0;
  esc_status rc = get_uuid(rd, "input", false, &r->input);
  if (rc)
    return rc;
  if (is_input(r->kind)) {
    rc = get_i64(rd, "time", INT64_MIN, &r->time_us);
  } else {
    rc = get_uuid(rd, "id", r->kind == ESC__REC_DEADLINE_CANCELLED, &r->id);
    if (!rc)
      rc = get_i64(rd, "index", 0, &index);
    if (!rc && index > INT32_MAX)
      rc = bad(rd, "index", "must be an integer in range");
    r->index = (uint32_t)index;
  }
  if (rc)
    return rc;
  if (r->kind == ESC__REC_EVENT_RECEIVED)
    return get_event_received(rd, r);
  if (r->kind == ESC__REC_COMMAND_OUTCOME)
    return get_outcome(rd, r);
  return get_rest(rd, r);
}

esc_status esc__process_record_decode(const char *type, const void *data,
                                      size_t len, msgpack_zone *zone,
                                      esc__process_record *r, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  esc_decode_limits lim = ESC_DECODE_LIMITS_INIT;
  msgpack_object obj;
  size_t off = 0;
  memset(r, 0, sizeof *r);
  r->kind = kind_of(type);
  if (!r->kind)
    return esc_error_set(err, ESC_EINVAL,
                         "process record: \"%s\" is not a process event type",
                         type ? type : "(NULL)");
  lim.max_bytes = ESC__PROCESS_RECORD_MAX_BYTES;
  if (esc_msgpack_check(data, len, &lim, &inner) != ESC_OK)
    return esc_error_set(err, ESC_EINVAL, "process record %s: %s", type,
                         inner.msg);
  if (msgpack_unpack(data, len, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS)
    return esc_error_set(err, ESC_EINVAL, "process record %s: bad msgpack",
                         type);
  if (obj.type != MSGPACK_OBJECT_MAP)
    return esc_error_set(err, ESC_EINVAL, "process record %s: not a map", type);
  reader rd = {&obj, zone, type, err};
  esc__process_record_kind kind = r->kind;
  esc_status rc = get_fields(&rd, r);
  if (rc != ESC_OK) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
  }
  return rc;
}

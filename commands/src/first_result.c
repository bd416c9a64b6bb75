/*
 * The first outcome of a command id. Event ids are UUIDv5(command id,
 * index), so what an earlier execution stored is found by its first
 * event's id and then by counting the stream's events with the next ids
 * from there, removed ones included (truncation keeps ids). One that
 * stored nothing — a rejection, no change — was recorded as such. Either
 * way a retry returns what the first execution did, never a new decision.
 */
#include "command_int.h"

#include <stdio.h>
#include <string.h>

enum { ID_PAGE = 256 };

esc_uuid esc__command_event_id(const esc_uuid *command_id, size_t i) {
  char name[24];
  int len = snprintf(name, sizeof name, "%zu", i);
  return esc_uuid_v5(command_id, name, (size_t)len);
}

/* Counts the stored events of this command from first_version on. */
static esc_status count_stored(esc_store *store, const char *stream,
                               const esc_uuid *cmd, int64_t first_version,
                               esc_command_result *r, esc_error *err) {
  esc_event_ref refs[ID_PAGE];
  esc_status rc = ESC_OK;
  size_t n = 0, got = 0;
  bool more = true;
  while (more && !rc) {
    rc = esc_read_event_ids(store, stream, first_version + (int64_t)n, refs,
                            ID_PAGE, &got, err);
    for (size_t i = 0; !rc && i < got; i++, n++) {
      esc_uuid want = esc__command_event_id(cmd, n);
      if (memcmp(refs[i].id.bytes, want.bytes, 16) != 0) {
        more = false;
        break;
      }
      r->version = refs[i].stream_version;
      r->position = refs[i].position;
    }
    more = more && !rc && got == ID_PAGE;
  }
  r->event_count = n;
  r->first_version = first_version;
  return rc;
}

esc_status esc__first_result(esc_store *store, const char *stream,
                             const esc_uuid *cmd, esc_command_result *r,
                             bool *found, esc_error *err) {
  esc_command_outcome o;
  esc_uuid first = esc__command_event_id(cmd, 0);
  esc_status rc = esc_command_outcome_read(store, cmd, &first, &o, err);
  *found = false;
  if (rc || !o.found)
    return rc;
  if (strcmp(o.stream_id, stream) != 0) {
    char id[37];
    esc_uuid_format(cmd, id);
    return esc_error_set(err, ESC_EDUPLICATE,
                         "command %s was executed on %s, not %s", id,
                         o.stream_id, stream);
  }
  r->duplicate = true;
  r->domain_code = o.domain_code;
  snprintf(r->domain_msg, sizeof r->domain_msg, "%s", o.domain_msg);
  if (o.appended) {
    rc = count_stored(store, stream, cmd, o.version, r, err);
  } else {
    r->event_count = 0;
    r->first_version = 0;
    r->version = o.version;
  }
  *found = !rc;
  return rc;
}

/*
 * Shared by the files of declared fields (fields.c, fields_unpack.c) and
 * the codec (event_codec.c): where a field is, for messages, and the error
 * slot of esc_event_encode's packer.
 */
#ifndef ESC_EVENTS_FIELDS_INT_H
#define ESC_EVENTS_FIELDS_INT_H

#include <esc/event.h>

/*
 * A walk through nested tables: the event type and the path of the struct
 * being read or written, e.g. "lines"[1]. (empty at the top), so a message
 * can name "lines"[1]."sku". Depth counts the arrays entered.
 */
typedef struct esc__walk {
  const char *type;
  char path[192];
  size_t len;
  size_t depth;
} esc__walk;

void esc__walk_init(esc__walk *w, const esc_fields *f);

/* Enters item i of array field fd (appends "name"[i].); ESC_EINVAL when
 * the tables nest deeper than ESC_FIELDS_MAX_DEPTH. Leave with the length
 * it returned in *saved. */
esc_status esc__walk_enter(esc__walk *w, const esc_field *fd, size_t i,
                           size_t *saved, esc_error *err);
void esc__walk_leave(esc__walk *w, size_t saved);

/* "<Type>: <path>"<name>" must be <what fd holds> but <actual...>" */
esc_status esc__field_error(esc_error *err, const esc__walk *w,
                            const esc_field *fd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* The error of a packer made by esc_event_encode, where a declared
 * encoder leaves why it failed; NULL for any other packer. */
esc_error *esc__packer_error(const msgpack_packer *pk);

#endif

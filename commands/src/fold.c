/*
 * Folding stored events into a decider's state. One zone and one struct
 * buffer serve every event of a stream: the zone is cleared (not freed)
 * between events and the buffer only grows, so a long stream allocates
 * nothing per event once both have reached the size its events need.
 */
#include "command_int.h"

#include <stdlib.h>
#include <string.h>

/* Small events (the usual case) fit the first chunk; see fit_zone. */
enum { ZONE_CHUNK = 2048, ZONE_CHUNK_MAX = 4 * 1024 * 1024, FIRST_BUF = 256 };

/* ------------------------------------------------------------------------
 * States
 * ------------------------------------------------------------------------ */

const esc_event_registry *esc_decider_events(const esc_decider *d) {
  if (!d)
    return NULL;
  return d->events ? d->events : d->registry ? d->registry() : NULL;
}

void *esc__state_new(const esc_decider *decider) {
  if (!decider)
    return NULL;
  /* calloc(0) may return NULL, which would read as out of memory. */
  void *state = calloc(1, decider->state_size ? decider->state_size : 1);
  if (state && decider->init)
    decider->init(state);
  return state;
}

void esc__state_free(const esc_decider *decider, void *state) {
  if (!state)
    return;
  if (decider && decider->release_state)
    decider->release_state(state);
  free(state);
}

/* ------------------------------------------------------------------------
 * The folder
 * ------------------------------------------------------------------------ */

esc_status esc__folder_init(struct esc__folder *f, const esc_decider *decider,
                            esc_error *err) {
  memset(f, 0, sizeof *f);
  if (!decider || !esc_decider_events(decider) || !decider->evolve)
    return esc_error_set(err, ESC_EINVAL,
                         "fold: decider, its events or evolve is NULL");
  /* A buffer from the start, so esc_event_decode always gets one and an
   * unknown type is reported as such. */
  f->buf = malloc(FIRST_BUF);
  if (!f->buf || !msgpack_zone_init(&f->zone, ZONE_CHUNK)) {
    free(f->buf);
    f->buf = NULL;
    return esc_error_set(err, ESC_ENOMEM, "fold: out of memory");
  }
  f->buf_size = FIRST_BUF;
  f->decider = decider; /* set last: release destroys the zone only then */
  return ESC_OK;
}

void esc__folder_release(struct esc__folder *f) {
  if (!f || !f->decider)
    return;
  msgpack_zone_destroy(&f->zone);
  free(f->buf);
  memset(f, 0, sizeof *f);
}

/* realloc, not malloc + free: the old contents do not matter, but the
 * allocator may grow in place. */
static esc_status fit_buf(struct esc__folder *f, size_t size, esc_error *err) {
  if (size <= f->buf_size)
    return ESC_OK;
  void *buf = realloc(f->buf, size);
  if (!buf)
    return esc_error_set(err, ESC_ENOMEM, "fold: out of memory");
  f->buf = buf;
  f->buf_size = size;
  return ESC_OK;
}

/*
 * msgpack_zone_clear keeps only the zone's first chunk, so an event that
 * needed more would malloc a chunk on every event. When that happened, the
 * zone is replaced by one with a first chunk twice as big; a failure to
 * allocate it just keeps the old zone.
 */
static void fit_zone(struct esc__folder *f, const void *first_chunk) {
  size_t size = f->zone.chunk_size * 2;
  msgpack_zone bigger;
  if (f->zone.chunk_list.head == first_chunk || size > ZONE_CHUNK_MAX)
    return;
  if (!msgpack_zone_init(&bigger, size))
    return;
  msgpack_zone_destroy(&f->zone);
  f->zone = bigger; /* a zone holds no pointers to itself */
}

esc_status esc__folder_apply(struct esc__folder *f, void *state,
                             const esc_recorded_event *rec, esc_error *err) {
  if (!f || !f->decider || !state || !rec)
    return esc_error_set(err, ESC_EINVAL,
                         "fold: folder, state or event is NULL");
  const esc_event_registry *reg = esc_decider_events(f->decider);
  const esc_event_type *type = esc_event_registry_find(reg, rec->type);
  esc_status st = type ? fit_buf(f, type->size, err) : ESC_OK;
  if (st != ESC_OK)
    return st;
  msgpack_zone_clear(&f->zone);
  const void *first_chunk = f->zone.chunk_list.head;
  st = esc_event_decode(reg, rec, &f->zone, f->buf, &type, err);
  if (st == ESC_OK) {
    esc_event ev = {type, f->buf, rec};
    f->decider->evolve(state, &ev);
  }
  fit_zone(f, first_chunk); /* after evolve: ev pointed into the zone */
  return st;
}

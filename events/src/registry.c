/*
 * The event registry: event types by name. Folding looks a type up once
 * per stored event, so lookups go through a small open-addressing hash
 * table (linear probing, at most half full) keyed by the FNV-1a hash of the
 * name; a slot keeps the hash so most mismatches cost no strcmp.
 * Registries hold tens of types and are built once, so growth is simple
 * doubling and rehashing.
 */
#include <esc/event.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { INITIAL_SLOTS = 16 }; /* a power of two */

struct slot {
  uint64_t hash;
  const esc_event_type *type; /* NULL: empty */
};

struct esc_event_registry {
  struct slot *slots;
  size_t cap; /* a power of two */
  size_t count;
};

static uint64_t hash_name(const char *name) {
  uint64_t h = 14695981039346656037u;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    h ^= *p;
    h *= 1099511628211u;
  }
  return h;
}

/* The slot holding name, or the empty slot where it would go. */
static struct slot *probe(struct slot *slots, size_t cap, uint64_t h,
                          const char *name) {
  size_t mask = cap - 1;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    struct slot *s = &slots[i];
    if (!s->type || (s->hash == h && strcmp(s->type->name, name) == 0))
      return s;
  }
}

esc_event_registry *esc_event_registry_new(esc_error *err) {
  esc_event_registry *reg = calloc(1, sizeof *reg);
  if (reg)
    reg->slots = calloc(INITIAL_SLOTS, sizeof *reg->slots);
  if (!reg || !reg->slots) {
    free(reg);
    esc_error_set(err, ESC_ENOMEM, "event registry: out of memory");
    return NULL;
  }
  reg->cap = INITIAL_SLOTS;
  return reg;
}

void esc_event_registry_free(esc_event_registry *reg) {
  if (!reg)
    return;
  free(reg->slots);
  free(reg);
}

static esc_status grow(esc_event_registry *reg, esc_error *err) {
  size_t cap = reg->cap * 2;
  struct slot *slots = calloc(cap, sizeof *slots);
  if (!slots)
    return esc_error_set(err, ESC_ENOMEM, "event registry: out of memory");
  for (size_t i = 0; i < reg->cap; i++)
    if (reg->slots[i].type)
      *probe(slots, cap, reg->slots[i].hash, reg->slots[i].type->name) =
          reg->slots[i];
  free(reg->slots);
  reg->slots = slots;
  reg->cap = cap;
  return ESC_OK;
}

/* Everything decoding will rely on, checked once here rather than per
 * event. Messages name the type as far as it has a usable name. */
static esc_status validate(const esc_event_type *type, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (!type)
    return esc_error_set(err, ESC_EINVAL, "event registry: type is NULL");
  if (!type->name || !esc_type_name_valid(type->name, &inner))
    return esc_error_set(err, ESC_EINVAL, "event registry: %s",
                         type->name ? inner.msg : "type name is NULL");
  if (type->schema_version < 1)
    return esc_error_set(err, ESC_EINVAL,
                         "event type %s: schema version %" PRId32
                         " must be >= 1",
                         type->name, type->schema_version);
  if (type->size == 0)
    return esc_error_set(err, ESC_EINVAL, "event type %s: size is 0",
                         type->name);
  if (!type->encode || !type->decode)
    return esc_error_set(err, ESC_EINVAL, "event type %s: %s is NULL",
                         type->name, type->encode ? "decode" : "encode");
  return ESC_OK;
}

esc_status esc_event_registry_add(esc_event_registry *reg,
                                  const esc_event_type *type, esc_error *err) {
  if (!reg)
    return esc_error_set(err, ESC_EINVAL, "event registry: registry is NULL");
  esc_status st = validate(type, err);
  if (st != ESC_OK)
    return st;
  uint64_t h = hash_name(type->name);
  if (probe(reg->slots, reg->cap, h, type->name)->type)
    return esc_error_set(err, ESC_EINVAL, "event type %s is registered already",
                         type->name);
  if ((reg->count + 1) * 2 > reg->cap && (st = grow(reg, err)) != ESC_OK)
    return st;
  struct slot *s = probe(reg->slots, reg->cap, h, type->name);
  s->hash = h;
  s->type = type;
  reg->count++;
  return ESC_OK;
}

const esc_event_type *esc_event_registry_find(const esc_event_registry *reg,
                                              const char *name) {
  if (!reg || !name)
    return NULL;
  return probe(reg->slots, reg->cap, hash_name(name), name)->type;
}

esc_event_registry *esc_event_registry_of(const esc_event_type *const *types,
                                          esc_error *err) {
  esc_event_registry *reg = esc_event_registry_new(err);
  for (size_t i = 0; reg && types && types[i]; i++)
    if (esc_event_registry_add(reg, types[i], err) != ESC_OK) {
      esc_event_registry_free(reg);
      reg = NULL;
    }
  if (reg && !types) {
    esc_event_registry_free(reg);
    reg = NULL;
    esc_error_set(err, ESC_EINVAL, "event registry: the type list is NULL");
  }
  return reg;
}

const esc_event_registry *
esc_event_registry_once(esc_event_registry **slot,
                        const esc_event_type *const *types) {
  esc_event_registry *reg = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (reg)
    return reg;
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *mine = esc_event_registry_of(types, &err);
  if (!mine) {
    fprintf(stderr, "esc: cannot build an event registry: %s\n", err.msg);
    return NULL;
  }
  if (__atomic_compare_exchange_n(slot, &reg, mine, false, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return mine;
  esc_event_registry_free(mine); /* another thread's won; reg holds it */
  return reg;
}

/*
 * esc_msgpack_check: a structural walk over raw msgpack bytes that trusts
 * no declared length. msgpack-c sizes its allocations from the lengths in
 * its input, so a 5-byte "array of 4G elements" makes it ask for about
 * 100 GB; it also handles no more than 32 nested containers. Every payload
 * passes here before it is unpacked or stored.
 *
 * The walk allocates nothing and does not recurse: a fixed stack holds, per
 * open container, how many objects it still expects. Each declared length
 * is compared with the bytes that remain (an array element needs at least
 * one byte, a map entry two) before it is counted, so no size is taken on
 * trust. Offsets in messages count from 0.
 */
#include "store_int.h"

#include <esc_internal/msgpack.h>

#include <inttypes.h>

/* The deepest nesting msgpack-c's unpacker accepts (its
 * MSGPACK_EMBED_STACK_SIZE); deeper input makes msgpack_unpack fail. */
#define CHECK_DEPTH_CAP 32

enum kind {
  K_SCALAR, /* a tag plus a fixed number of bytes */
  K_BLOB,   /* str / bin: a length, then that many bytes */
  K_EXT,    /* a length, a type byte, then that many bytes */
  K_ARRAY,  /* a count, then that many objects */
  K_MAP,    /* a count, then twice that many objects */
  K_UNUSED  /* 0xc1 */
};

struct format {
  const char *name;
  unsigned char kind;
  unsigned char len_bytes; /* size of the length or count field */
  unsigned char fixed;     /* K_SCALAR: bytes after the tag */
};

/* Tags 0xc0..0xdf; the fix* ranges are decoded in classify(). */
static const struct format formats[32] = {
    {"nil", K_SCALAR, 0, 0},       {"0xc1", K_UNUSED, 0, 0},
    {"false", K_SCALAR, 0, 0},     {"true", K_SCALAR, 0, 0},
    {"bin8", K_BLOB, 1, 0},        {"bin16", K_BLOB, 2, 0},
    {"bin32", K_BLOB, 4, 0},       {"ext8", K_EXT, 1, 0},
    {"ext16", K_EXT, 2, 0},        {"ext32", K_EXT, 4, 0},
    {"float32", K_SCALAR, 0, 4},   {"float64", K_SCALAR, 0, 8},
    {"uint8", K_SCALAR, 0, 1},     {"uint16", K_SCALAR, 0, 2},
    {"uint32", K_SCALAR, 0, 4},    {"uint64", K_SCALAR, 0, 8},
    {"int8", K_SCALAR, 0, 1},      {"int16", K_SCALAR, 0, 2},
    {"int32", K_SCALAR, 0, 4},     {"int64", K_SCALAR, 0, 8},
    {"fixext1", K_SCALAR, 0, 2},   {"fixext2", K_SCALAR, 0, 3},
    {"fixext4", K_SCALAR, 0, 5},   {"fixext8", K_SCALAR, 0, 9},
    {"fixext16", K_SCALAR, 0, 17}, {"str8", K_BLOB, 1, 0},
    {"str16", K_BLOB, 2, 0},       {"str32", K_BLOB, 4, 0},
    {"array16", K_ARRAY, 2, 0},    {"array32", K_ARRAY, 4, 0},
    {"map16", K_MAP, 2, 0},        {"map32", K_MAP, 4, 0},
};

static const struct format positive_fixint = {"positive fixint", K_SCALAR, 0,
                                              0};
static const struct format negative_fixint = {"negative fixint", K_SCALAR, 0,
                                              0};
static const struct format fixmap = {"fixmap", K_MAP, 0, 0};
static const struct format fixarray = {"fixarray", K_ARRAY, 0, 0};
static const struct format fixstr = {"fixstr", K_BLOB, 0, 0};

/* The format of tag c; for fix* formats *inline_len gets the length or
 * count carried in the tag itself. */
static const struct format *classify(unsigned char c, uint32_t *inline_len) {
  *inline_len = 0;
  if (c <= 0x7f)
    return &positive_fixint;
  if (c >= 0xe0)
    return &negative_fixint;
  if (c >= 0xc0)
    return &formats[c - 0xc0];
  if (c <= 0x8f) {
    *inline_len = c & 0x0fu;
    return &fixmap;
  }
  if (c <= 0x9f) {
    *inline_len = c & 0x0fu;
    return &fixarray;
  }
  *inline_len = c & 0x1fu;
  return &fixstr;
}

static uint32_t read_be(const unsigned char *p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = v << 8 | p[i];
  return v;
}

/* An open container: where it starts and how many objects it still
 * expects (keys and values count one each). */
struct open_container {
  size_t start;
  uint64_t left;
  const char *name;
};

struct walk {
  const unsigned char *p;
  size_t len;
  size_t pos;
  size_t depth;
  size_t max_depth;
  uint64_t elements;
  uint64_t max_elements;
  struct open_container stack[CHECK_DEPTH_CAP];
  esc_error *err;
};

/*
 * Opens the array or map whose header starts at byte `at` and declares
 * count elements or entries; w->pos is just past the header. Every object
 * takes at least one byte, so a count the remaining bytes cannot hold is
 * refused before it is believed.
 */
static esc_status open_container(struct walk *w, const struct format *f,
                                 size_t at, uint32_t count) {
  size_t remain = w->len - w->pos;
  bool is_map = f->kind == K_MAP;
  uint64_t objects = is_map ? 2 * (uint64_t)count : count;
  if (objects > remain)
    return esc__fail(
        w->err, ESC_EINVAL,
        "msgpack: %s at byte %zu declares %" PRIu32 " %s but %zu bytes remain",
        f->name, at, count, is_map ? "entries" : "elements", remain);
  w->elements += count;
  if (w->elements > w->max_elements)
    return esc__fail(w->err, ESC_EINVAL,
                     "msgpack: %s at byte %zu declares %" PRIu32
                     " %s, making %" PRIu64 " in all; the limit is %" PRIu64,
                     f->name, at, count, is_map ? "entries" : "elements",
                     w->elements, w->max_elements);
  if (w->depth + 1 > w->max_depth)
    return esc__fail(w->err, ESC_EINVAL,
                     "msgpack: %s at byte %zu nests %zu deep; the limit is "
                     "%zu",
                     f->name, at, w->depth + 1, w->max_depth);
  if (objects > 0)
    w->stack[w->depth++] = (struct open_container){at, objects, f->name};
  return ESC_OK;
}

/* Reads the object header at w->pos and skips its payload; containers are
 * opened, their contents come next. */
static esc_status step(struct walk *w) {
  size_t at = w->pos;
  unsigned char tag = w->p[at];
  uint32_t n;
  const struct format *f = classify(tag, &n);
  if (f->kind == K_UNUSED)
    return esc__fail(w->err, ESC_EINVAL,
                     "msgpack: byte %zu is 0xc1, a tag msgpack never uses", at);
  w->pos++;
  size_t remain = w->len - w->pos;
  size_t head = f->kind == K_SCALAR ? f->fixed : f->len_bytes;
  if (f->kind == K_EXT)
    head++; /* the type byte */
  if (head > remain)
    return esc__fail(w->err, ESC_EINVAL,
                     "msgpack: %s at byte %zu is cut off: it needs %zu more "
                     "bytes but %zu remain",
                     f->name, at, head, remain);
  if (f->len_bytes)
    n = read_be(w->p + w->pos, f->len_bytes);
  w->pos += head;
  remain -= head;
  switch (f->kind) {
  case K_BLOB:
  case K_EXT:
    if (n > remain)
      return esc__fail(w->err, ESC_EINVAL,
                       "msgpack: %s at byte %zu declares %" PRIu32
                       " bytes but %zu remain",
                       f->name, at, n, remain);
    w->pos += n;
    return ESC_OK;
  case K_ARRAY:
  case K_MAP:
    return open_container(w, f, at, n);
  default:
    return ESC_OK;
  }
}

/* Counts one finished object against the open containers; closes those it
 * completes. */
static void finish_object(struct walk *w) {
  while (w->depth > 0 && --w->stack[w->depth - 1].left == 0)
    w->depth--;
}

static uint64_t limit_or(size_t v, size_t dflt) {
  return v ? v : dflt;
}

esc_status esc_msgpack_check(const void *data, size_t len,
                             const esc_decode_limits *limits, esc_error *err) {
  static const esc_decode_limits defaults = ESC_DECODE_LIMITS_INIT;
  if (!limits)
    limits = &defaults;
  uint64_t max_bytes = limit_or(limits->max_bytes, defaults.max_bytes);
  if (len == 0)
    return esc__fail(err, ESC_EINVAL, "msgpack: empty input");
  if (!data)
    return esc__fail(err, ESC_EINVAL, "msgpack: data is NULL");
  if (len > max_bytes)
    return esc__fail(err, ESC_EINVAL,
                     "msgpack: input is %zu bytes; the limit is %" PRIu64, len,
                     max_bytes);

  struct walk w;
  w.p = data;
  w.len = len;
  w.pos = 0;
  w.depth = 0;
  w.max_depth = (size_t)limit_or(limits->max_depth, defaults.max_depth);
  if (w.max_depth > CHECK_DEPTH_CAP)
    w.max_depth = CHECK_DEPTH_CAP;
  w.elements = 0;
  w.max_elements = limit_or(limits->max_elements, defaults.max_elements);
  w.err = err;

  do {
    if (w.pos == w.len) {
      const struct open_container *c = &w.stack[w.depth - 1];
      return esc__fail(err, ESC_EINVAL,
                       "msgpack: input ends at byte %zu inside the %s at "
                       "byte %zu, which expects %" PRIu64 " more objects",
                       w.pos, c->name, c->start, c->left);
    }
    size_t depth_before = w.depth;
    esc_status st = step(&w);
    if (st != ESC_OK)
      return st;
    if (w.depth == depth_before) /* not an open container */
      finish_object(&w);
  } while (w.depth > 0);

  if (w.pos != w.len)
    return esc__fail(err, ESC_EINVAL,
                     "msgpack: the object ends at byte %zu but %zu more "
                     "bytes follow",
                     w.pos, w.len - w.pos);
  esc__clear(err);
  return ESC_OK;
}

/* Shared with codec_metadata.c and the events module's declared fields. */
const char *esc__msgpack_type_name(msgpack_object_type t) {
  switch (t) {
  case MSGPACK_OBJECT_NIL:
    return "nil";
  case MSGPACK_OBJECT_BOOLEAN:
    return "a boolean";
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return "an integer";
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    return "a float";
  case MSGPACK_OBJECT_STR:
    return "a string";
  case MSGPACK_OBJECT_ARRAY:
    return "an array";
  case MSGPACK_OBJECT_MAP:
    return "a map";
  case MSGPACK_OBJECT_BIN:
    return "binary";
  case MSGPACK_OBJECT_EXT:
    return "an extension";
  }
  return "an unknown type";
}

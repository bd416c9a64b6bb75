/*
 * Tags and queries of tagged events: the rule for a tag, the checks of an
 * append's tags and of a query, and their array parameters for
 * <schema>.append_tagged() and query_matches() (migration 21). The SQL
 * checks the same rules again: the client's checks give the better
 * message, the server's hold whoever calls.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

enum { OID_INT4 = 23, OID_TEXT = 25, ARRAY_HEADER = 20, ELEM_HEADER = 4 };

static bool key_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Where the value of a tag stops being valid (NULL: it is valid). */
static const char *bad_value_byte(const char *p) {
  while (*p) {
    unsigned char c = (unsigned char)*p;
    size_t n = c < 0x80 ? 1 : esc_utf8_char_len(p);
    if (c < 0x20 || c == 0x7f || n == 0)
      return p;
    p += n;
  }
  return NULL;
}

bool esc_tag_valid(const char *tag, esc_error *err) {
  char q[ESC__QUOTE_SIZE];
  if (!tag)
    return !esc__fail(err, ESC_EINVAL, "tag is NULL");
  esc__quote(q, sizeof q, tag);
  size_t len = strlen(tag), key = strcspn(tag, ":");
  if (len == 0 || len > ESC_TAG_MAX)
    return !esc__fail(err, ESC_EINVAL, "tag \"%s\" is %zu bytes (1..%d)", q,
                      len, ESC_TAG_MAX);
  if (key == len || key == 0 || key == len - 1)
    return !esc__fail(err, ESC_EINVAL,
                      "tag \"%s\": a tag is key:value, both non-empty", q);
  if (key > ESC_TAG_KEY_MAX)
    return !esc__fail(err, ESC_EINVAL,
                      "tag \"%s\": the key is %zu bytes (%d "
                      "at most)",
                      q, key, ESC_TAG_KEY_MAX);
  for (size_t i = 0; i < key; i++)
    if (!key_byte((unsigned char)tag[i]))
      return !esc__fail(err, ESC_EINVAL,
                        "tag \"%s\": byte %zu is not allowed in the key; use "
                        "[A-Za-z0-9_.-]",
                        q, i + 1);
  const char *bad = bad_value_byte(tag + key + 1);
  if (bad)
    return !esc__fail(err, ESC_EINVAL,
                      "tag \"%s\": byte %zu is a control character or not "
                      "UTF-8",
                      q, (size_t)(bad - tag) + 1);
  return true;
}

/* One event's tags: each valid, at most ESC_TAGS_MAX, none twice. */
static esc_status check_event_tags(const char *stream, size_t k,
                                   const esc_tags *t, esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (t->count > 0 && !t->items)
    return esc__fail(err, ESC_EINVAL, "append to %s: event %zu: tags is NULL",
                     stream, k);
  if (t->count > ESC_TAGS_MAX)
    return esc__fail(err, ESC_EINVAL,
                     "append to %s: event %zu has %zu tags (%d at most)",
                     stream, k, t->count, ESC_TAGS_MAX);
  for (size_t i = 0; i < t->count; i++) {
    if (!esc_tag_valid(t->items[i], &inner))
      return esc__fail(err, ESC_EINVAL, "append to %s: event %zu: %s", stream,
                       k, inner.msg);
    for (size_t j = 0; j < i; j++)
      if (strcmp(t->items[i], t->items[j]) == 0)
        return esc__fail(err, ESC_EINVAL,
                         "append to %s: event %zu has tag %s twice", stream, k,
                         t->items[i]);
  }
  return ESC_OK;
}

esc_status esc__tags_validate(const esc_append_request *reqs,
                              const esc_tags *const *tags, size_t n,
                              esc_error *err) {
  for (size_t i = 0; tags && i < n; i++)
    for (size_t k = 0; tags[i] && k < reqs[i].n; k++) {
      esc_status rc = check_event_tags(reqs[i].stream_id, k, &tags[i][k], err);
      if (rc)
        return rc;
    }
  return ESC_OK;
}

static esc_status check_item(const esc_tag_query_item *it, size_t i,
                             esc_error *err) {
  esc_error inner = ESC_ERROR_INIT;
  if (it->tag_count == 0 || it->tag_count > ESC_TAGS_MAX || !it->tags)
    return esc__fail(err, ESC_EINVAL,
                     "query item %zu has %zu tags; an item needs 1..%d "
                     "(the tags are what the condition locks)",
                     i, it->tag_count, ESC_TAGS_MAX);
  if (it->type_count > ESC_TAGS_MAX || (it->type_count && !it->types))
    return esc__fail(err, ESC_EINVAL,
                     "query item %zu has %zu types (0..%d allowed)", i,
                     it->type_count, ESC_TAGS_MAX);
  for (size_t k = 0; k < it->tag_count; k++)
    if (!esc_tag_valid(it->tags[k], &inner))
      return esc__fail(err, ESC_EINVAL, "query item %zu: %s", i, inner.msg);
  for (size_t k = 0; k < it->type_count; k++)
    if (!esc_type_name_valid(it->types[k], &inner))
      return esc__fail(err, ESC_EINVAL, "query item %zu: %s", i, inner.msg);
  return ESC_OK;
}

esc_status esc__query_validate(const esc_tag_query *q, esc_error *err) {
  if (!q || q->count == 0 || q->count > ESC_TAG_QUERY_ITEMS_MAX || !q->items)
    return esc__fail(err, ESC_EINVAL, "query: %zu items (1..%d allowed)",
                     q ? q->count : 0, ESC_TAG_QUERY_ITEMS_MAX);
  for (size_t i = 0; i < q->count; i++) {
    esc_status rc = check_item(&q->items[i], i, err);
    if (rc)
      return rc;
  }
  return ESC_OK;
}

void esc__query_describe(const esc_tag_query *q, char *out, size_t size) {
  size_t len = 0;
  out[0] = '\0';
  for (size_t i = 0; i < q->count && len + 1 < size; i++) {
    const esc_tag_query_item *it = &q->items[i];
    len += (size_t)snprintf(out + len, size - len, "%s", i ? " or " : "");
    for (size_t k = 0; k < it->tag_count && len + 1 < size; k++)
      len += (size_t)snprintf(out + len, size - len, "%s%s", k ? "+" : "",
                              it->tags[k]);
    for (size_t k = 0; k < it->type_count && len + 1 < size; k++)
      len += (size_t)snprintf(out + len, size - len, "%s%s",
                              k ? "|" : " of type ", it->types[k]);
  }
}

/* ------------------------------------------------------ array params -- */

static void put_int4(struct esc__buf *b, size_t v) {
  unsigned char be[4];
  esc__put_be32(be, (uint32_t)v);
  esc__put_array_elem(b, be, 4);
}

/* Two arrays into b: the 1-based event index of each tag, and the tags. */
bool esc__tag_arrays(struct esc__buf *b, const esc_append_request *reqs,
                     const esc_tags *const *tags, size_t n, const char **values,
                     int *lengths) {
  size_t count = 0, bytes = 2 * ARRAY_HEADER, ev, offs[3];
  for (size_t i = 0; tags && i < n; i++)
    for (size_t k = 0; tags[i] && k < reqs[i].n; k++)
      for (size_t t = 0; t < tags[i][k].count; t++, count++)
        bytes += 2 * ELEM_HEADER + 4 + strlen(tags[i][k].items[t]);
  b->len = 0;
  if (!esc__buf_reserve(b, bytes))
    return false;
  for (int pass = 0; pass < 2; pass++) {
    offs[pass] = b->len;
    esc__put_array_header(b, pass ? OID_TEXT : OID_INT4, count, false);
    ev = 0;
    for (size_t i = 0; i < n; i++)
      for (size_t k = 0; k < reqs[i].n; k++, ev++)
        for (size_t t = 0; tags && tags[i] && t < tags[i][k].count; t++) {
          const char *tag = tags[i][k].items[t];
          if (pass)
            esc__put_array_elem(b, tag, strlen(tag));
          else
            put_int4(b, ev + 1);
        }
  }
  offs[2] = b->len;
  for (int pass = 0; pass < 2; pass++) {
    values[pass] = (const char *)b->data + offs[pass];
    lengths[pass] = (int)(offs[pass + 1] - offs[pass]);
  }
  return true;
}

/* Four arrays into b: the tags of the items, the item of each (1-based),
 * the types, the item of each. */
bool esc__query_arrays(struct esc__buf *b, const esc_tag_query *q,
                       const char **values, int *lengths) {
  size_t tags = 0, types = 0, bytes = 4 * ARRAY_HEADER, offs[5];
  for (size_t i = 0; i < q->count; i++) {
    tags += q->items[i].tag_count;
    types += q->items[i].type_count;
    for (size_t k = 0; k < q->items[i].tag_count; k++)
      bytes += 2 * ELEM_HEADER + 4 + strlen(q->items[i].tags[k]);
    for (size_t k = 0; k < q->items[i].type_count; k++)
      bytes += 2 * ELEM_HEADER + 4 + strlen(q->items[i].types[k]);
  }
  b->len = 0;
  if (!esc__buf_reserve(b, bytes))
    return false;
  for (int a = 0; a < 4; a++) {
    bool of_tags = a < 2, item_ids = a % 2 == 1;
    offs[a] = b->len;
    esc__put_array_header(b, item_ids ? OID_INT4 : OID_TEXT,
                          of_tags ? tags : types, false);
    for (size_t i = 0; i < q->count; i++) {
      const esc_tag_query_item *it = &q->items[i];
      size_t m = of_tags ? it->tag_count : it->type_count;
      for (size_t k = 0; k < m; k++) {
        const char *s = of_tags ? it->tags[k] : it->types[k];
        if (item_ids)
          put_int4(b, i + 1);
        else
          esc__put_array_elem(b, s, strlen(s));
      }
    }
  }
  offs[4] = b->len;
  for (int a = 0; a < 4; a++) {
    values[a] = (const char *)b->data + offs[a];
    lengths[a] = (int)(offs[a + 1] - offs[a]);
  }
  return true;
}

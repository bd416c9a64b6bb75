/*
 * GET /api/stream?id=S&from=V&limit=N: one page of a stream's events, each
 * the object `esc read --json` prints (cli_write_event_json), so the
 * console and the CLI decode alike. Keyset paging on the stream version:
 * "next" is the version the next page starts at, or null at the end.
 */
#include "console_routes.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 50
#define PAGE_MAX 100

/* A decimal query argument in [min, max], or dflt when absent. */
static bool arg_i64(struct MHD_Connection *c, const char *name, int64_t min,
                    int64_t max, int64_t dflt, int64_t *out) {
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
  if (!v) {
    *out = dflt;
    return true;
  }
  char *end = NULL;
  long long n = strtoll(v, &end, 10);
  if (!*v || *end || n < min || n > max)
    return false;
  *out = n;
  return true;
}

/* {"stream":S,"events":[...],"next":V|null} from the events read (one
 * more than the page, to tell whether another page follows). */
static char *page_body(const char *stream, const esc_events *ev, size_t page) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  if (!out)
    return NULL;
  json_t *name = json_string(stream);
  char *quoted = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
  json_decref(name);
  bool ok = quoted && fprintf(out, "{\"stream\":%s,\"events\":[", quoted) > 0;
  size_t shown = ev->count < page ? ev->count : page;
  for (size_t i = 0; ok && i < shown; i++)
    ok = (i == 0 || fputc(',', out) != EOF) &&
         cli_write_event_json(out, &ev->items[i], NULL);
  if (ok && ev->count > page)
    ok = fprintf(out, "],\"next\":%" PRId64 "}",
                 ev->items[page].stream_version) > 0;
  else if (ok)
    ok = fputs("],\"next\":null}", out) >= 0;
  free(quoted);
  if (fclose(out) != 0 || !ok) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* The body is spliced text, not re-parsed, so that integers jansson
 * cannot hold pass through as `esc read --json` prints them. */
static enum MHD_Result reply_page(struct MHD_Connection *c, const char *stream,
                                  const esc_events *ev, size_t page) {
  char *body = page_body(stream, ev, page);
  if (!body)
    return cli_console_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   "nomem", "cannot build the page");
  return cli_console_reply(c, MHD_HTTP_OK, "application/json", body,
                           strlen(body), MHD_RESPMEM_MUST_FREE);
}

enum MHD_Result cli_console_api_stream(const cli_ctx *ctx,
                                       struct MHD_Connection *c) {
  const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
  int64_t from, limit;
  if (!id || !*id)
    return cli_console_reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid",
                                   "id: the stream id is missing");
  if (!arg_i64(c, "from", 0, INT64_MAX, 0, &from) ||
      !arg_i64(c, "limit", 1, PAGE_MAX, PAGE_DEFAULT, &limit))
    return cli_console_reply_error(c, MHD_HTTP_BAD_REQUEST, "invalid",
                                   "from: a version >= 0; limit: 1 to 100");
  esc_error err = ESC_ERROR_INIT;
  esc_store *store = cli_open_store(ctx, &err);
  if (!store)
    return cli_console_reply_failure(c, &err);
  esc_events ev;
  esc_events_init(&ev);
  enum MHD_Result r =
      esc_read_stream(store, id, from, ESC_FORWARD, (size_t)limit + 1, &ev,
                      &err) == ESC_OK
          ? reply_page(c, id, &ev, (size_t)limit)
          : cli_console_reply_failure(c, &err);
  esc_events_release(&ev);
  esc_store_free(store);
  return r;
}

/* Gathering a soak run's evidence (collect.h). */
#include "collect.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <esc/command.h>
#include <esc/store.h>

#include "tally.h"

/* One recorded event as the checker sees it, its Counted data decoded. */
static void delivery_of(const esc_recorded_event *e, soak_delivery *d) {
  memset(d, 0, sizeof *d);
  snprintf(d->stream, sizeof d->stream, "%s", e->stream_id);
  d->version = e->stream_version;
  esc_uuid_format(&e->id, d->id);
  d->position = e->position;
  tally_counted c;
  const esc_event_type *type = NULL;
  msgpack_zone zone;
  msgpack_zone_init(&zone, 256);
  esc_error err = ESC_ERROR_INIT;
  if (esc_event_decode(tally_events(), e, &zone, &c, &type, &err) == ESC_OK &&
      type) {
    d->has_data = true;
    d->n = c.n;
    snprintf(d->item, sizeof d->item, "%.*s", (int)sizeof d->item - 1, c.item);
  }
  msgpack_zone_destroy(&zone);
}

static bool read_log(esc_store *st, const char *category, soak_deliveries *out) {
  esc_events ev = ESC_EVENTS_INIT;
  esc_position after = ESC_POSITION_START;
  esc_error err = ESC_ERROR_INIT;
  bool ok = true;
  for (;;) {
    if (esc_read_all(st, category, after, 1000, &ev, &err)) {
      soak_say("cannot read %s: %s", category ? category : "$all", err.msg);
      ok = false;
      break;
    }
    if (ev.count == 0)
      break;
    for (size_t i = 0; ok && i < ev.count; i++) {
      soak_delivery d;
      delivery_of(&ev.items[i], &d);
      ok = soak_deliveries_push(out, &d);
    }
    after = ev.next;
  }
  esc_events_release(&ev);
  return ok;
}

static bool read_streams(const char *url, soak_evidence *ev) {
  PGconn *c = PQconnectdb(url);
  PGresult *r = PQstatus(c) == CONNECTION_OK
                    ? PQexec(c, "SELECT stream_id, version FROM " SOAK_SCHEMA
                                ".streams ORDER BY stream_id")
                    : NULL;
  bool ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
  int n = ok ? PQntuples(r) : 0;
  ev->streams = calloc((size_t)n + 1, sizeof *ev->streams);
  ok = ok && ev->streams;
  for (int i = 0; ok && i < n; i++) {
    snprintf(ev->streams[i].stream, sizeof ev->streams[i].stream, "%s",
             PQgetvalue(r, i, 0));
    ev->streams[i].version = strtoll(PQgetvalue(r, i, 1), NULL, 10);
  }
  ev->n_streams = ok ? (size_t)n : 0;
  if (!ok)
    soak_say("cannot read the streams table: %s", PQerrorMessage(c));
  PQclear(r);
  PQfinish(c);
  return ok;
}

bool soak_collect_log(soak_world *w, soak_evidence *ev) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SOAK_SCHEMA;
  o.app_name = "soak-collect";
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_store_open(w->direct_pg_url, &o, &err);
  if (!st) {
    soak_say("cannot open the store to read the log: %s", err.msg);
    return false;
  }
  soak_deliveries_release(&ev->log_all);
  soak_deliveries_release(&ev->log_category);
  bool ok = read_log(st, NULL, &ev->log_all) &&
            read_log(st, SOAK_CATEGORY, &ev->log_category);
  esc_store_free(st);
  free(ev->streams);
  ev->streams = NULL;
  return ok && read_streams(w->direct_pg_url, ev);
}

/* --------------------------------------------------------------- files */

static bool add_history_file(soak_history *h, const char *path) {
  char why[256];
  char *text = soak_read_file(path, NULL);
  if (!text) {
    soak_say("cannot read %s", path);
    return false;
  }
  /* A client killed in the middle of a line leaves half of it: the
   * attempt is then pending, which is what it is. */
  char *end = strrchr(text, '\n');
  if (end)
    end[1] = '\0';
  else
    text[0] = '\0';
  bool ok = soak_history_add_text(h, text, why, sizeof why);
  if (!ok)
    soak_say("%s: %s", path, why);
  free(text);
  return ok;
}

/* Drops the {"error": ...} lines a follower prints when it exits with an
 * error (the supervisor reported that exit already): what is left is what
 * it delivered. */
static void drop_error_lines(char *text) {
  char *out = text;
  for (char *line = text; *line;) {
    char *nl = strchr(line, '\n');
    size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
    if (strncmp(line, "{\"error\":", 9) != 0) {
      memmove(out, line, len);
      out += len;
    }
    line += len;
  }
  *out = '\0';
}

static bool add_follower_file(soak_deliveries *d, const char *path) {
  char why[256];
  char *text = soak_read_file(path, NULL);
  if (!text)
    return true; /* it never printed anything */
  drop_error_lines(text);
  bool ok = soak_deliveries_add_text(d, text, why, sizeof why);
  if (!ok)
    soak_say("%s: %s", path, why);
  free(text);
  return ok;
}

bool soak_collect_files(soak_world *w, soak_evidence *ev) {
  char dir[600], path[900];
  soak_world_path(w, "history", dir, sizeof dir);
  DIR *d = opendir(dir);
  bool ok = d != NULL;
  for (struct dirent *e; ok && (e = readdir(d));) {
    if (!strstr(e->d_name, ".jsonl"))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ok = add_history_file(&ev->history, path);
  }
  if (d)
    closedir(d);
  soak_world_path(w, "follow-all.jsonl", path, sizeof path);
  ok = ok && add_follower_file(&ev->follow_all, path);
  soak_world_path(w, "follow-category.jsonl", path, sizeof path);
  return ok && add_follower_file(&ev->follow_category, path);
}

/* --------------------------------------------------------------- model */

static redisReply *cmd(redisContext *c, const char *fmt, const char *a,
                       int64_t g) {
  return redisCommand(c, fmt, a, g);
}

/* "NS:soaktally": where the projection's keys start, NS being the soak
 * store's namespace (its identity: the workers are given no prefix). */
static bool key_base(const soak_world *w, char *out, size_t size) {
  char ns[ESC_KEY_PREFIX_MAX + 1];
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = SOAK_SCHEMA;
  esc_store *st = esc_store_open(w->direct_pg_url, &o, NULL);
  bool ok = st && esc_key_namespace(st, NULL, ns, sizeof ns, NULL) == ESC_OK;
  esc_store_free(st);
  if (ok)
    snprintf(out, size, "%s:%s", ns, SOAK_PROJECTION);
  return ok;
}

static bool read_seqs(redisContext *c, const char *base, int64_t g,
                      soak_model *m) {
  char pattern[256];
  snprintf(pattern, sizeof pattern, "%s:g%" PRId64 ":seq:*", base, g);
  size_t plen = strlen(pattern) - 1;
  redisReply *keys = redisCommand(c, "KEYS %s", pattern);
  bool ok = keys && keys->type == REDIS_REPLY_ARRAY;
  m->seqs = ok ? calloc(keys->elements + 1, sizeof *m->seqs) : NULL;
  ok = ok && m->seqs;
  for (size_t i = 0; ok && i < keys->elements; i++) {
    redisReply *l = redisCommand(c, "LRANGE %s 0 -1", keys->element[i]->str);
    soak_seq *s = &m->seqs[m->n_seqs++];
    snprintf(s->stream, sizeof s->stream, "%s", keys->element[i]->str + plen);
    ok = l && l->type == REDIS_REPLY_ARRAY;
    s->versions = ok ? calloc(l->elements + 1, sizeof *s->versions) : NULL;
    ok = ok && s->versions;
    for (size_t k = 0; ok && k < l->elements; k++)
      s->versions[s->count++] = strtoll(l->element[k]->str, NULL, 10);
    freeReplyObject(l);
  }
  freeReplyObject(keys);
  return ok;
}

static bool read_items(redisContext *c, const char *base, int64_t g,
                       soak_model *m) {
  redisReply *r =
      cmd(c, "ZRANGE %s:g%" PRId64 ":items 0 -1 WITHSCORES", base, g);
  bool ok = r && r->type == REDIS_REPLY_ARRAY;
  m->items = ok ? calloc(r->elements / 2 + 1, sizeof *m->items) : NULL;
  ok = ok && m->items;
  for (size_t i = 0; ok && i + 1 < r->elements; i += 2) {
    soak_item_score *s = &m->items[m->n_items++];
    snprintf(s->item, sizeof s->item, "%s", r->element[i]->str);
    s->score = strtoll(r->element[i + 1]->str, NULL, 10);
  }
  freeReplyObject(r);
  return ok;
}

bool soak_collect_model(soak_world *w, soak_evidence *ev) {
  char base[ESC_KEY_PREFIX_MAX + 64];
  soak_model_release(&ev->model);
  if (!key_base(w, base, sizeof base))
    return false;
  redisContext *c = redisConnect("127.0.0.1", w->redis_port);
  if (!c || c->err) {
    redisFree(c);
    return false;
  }
  redisReply *r = redisCommand(c, "GET %s:generation", base);
  bool ok = r && r->type == REDIS_REPLY_STRING;
  soak_model *m = &ev->model;
  if (ok) {
    m->present = true;
    m->generation = strtoll(r->str, NULL, 10);
  }
  freeReplyObject(r);
  if (ok) {
    r = cmd(c, "GET %s:g%" PRId64 ":total", base, m->generation);
    m->total = r && r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    ok = read_items(c, base, m->generation, m) &&
         read_seqs(c, base, m->generation, m);
  }
  redisFree(c);
  return ok;
}

void soak_evidence_release(soak_evidence *ev) {
  soak_history_release(&ev->history);
  soak_deliveries_release(&ev->log_all);
  soak_deliveries_release(&ev->log_category);
  soak_deliveries_release(&ev->follow_all);
  soak_deliveries_release(&ev->follow_category);
  soak_model_release(&ev->model);
  free(ev->streams);
  memset(ev, 0, sizeof *ev);
}

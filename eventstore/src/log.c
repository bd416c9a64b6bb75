/*
 * The one logging module (<esc/store.h>, "Logging"): human lines or JSON
 * lines carrying the consumer, partition, event and its correlation and
 * causation ids. Settings come from the environment on first use and can
 * be set by the program; a line is formatted whole, then written once.
 */
#include "store_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static esc_log_format format;
static esc_log_level threshold = ESC_LOG_INFO;
static void (*sink)(void *, const char *);
static void *sink_data;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void from_environment(void) {
  const char *f = getenv("ESC_LOG_FORMAT");
  if (f && strcmp(f, "json") == 0)
    format = ESC_LOG_JSON;
  const char *l = getenv("ESC_LOG_LEVEL");
  for (int i = 0; l && i < 4; i++)
    if (strcmp(l, level_names[i]) == 0)
      threshold = (esc_log_level)i;
}

void esc_log_set_format(esc_log_format f) {
  pthread_once(&once, from_environment);
  pthread_mutex_lock(&lock);
  format = f;
  pthread_mutex_unlock(&lock);
}

void esc_log_set_sink(void (*fn)(void *, const char *), void *userdata) {
  pthread_once(&once, from_environment);
  pthread_mutex_lock(&lock);
  sink = fn;
  sink_data = userdata;
  pthread_mutex_unlock(&lock);
}

/* "2026-12-07T12:00:00.123Z" */
static void stamp(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* The event's correlation and causation ids, when its metadata has them. */
static void event_ids(const esc_recorded_event *e, char corr[37],
                      char cause[37]) {
  esc_metadata m;
  corr[0] = cause[0] = '\0';
  if (!e->metadata ||
      esc_metadata_decode(e->metadata, e->metadata_len, &m, NULL, 0, NULL))
    return;
  if (!esc_uuid_is_nil(&m.correlation_id))
    esc_uuid_format(&m.correlation_id, corr);
  if (!esc_uuid_is_nil(&m.causation_id))
    esc_uuid_format(&m.causation_id, cause);
}

static void set_str(json_t *o, const char *key, const char *v) {
  if (v && *v)
    json_object_set_new(o, key, json_string(v));
}

static char *json_line(const char *when, esc_log_level level,
                       const esc_log_context *c, const char *msg) {
  char id[37], pos[64], corr[37], cause[37];
  json_t *o = json_object();
  json_object_set_new(o, "time", json_string(when));
  json_object_set_new(o, "level", json_string(level_names[level]));
  set_str(o, "component", c->component);
  json_object_set_new(o, "pid", json_integer(getpid()));
  set_str(o, c->consumer_kind ? c->consumer_kind : "consumer", c->consumer);
  if (c->partition >= 0)
    json_object_set_new(o, "partition", json_integer(c->partition));
  if (c->event) {
    esc_uuid_format(&c->event->id, id);
    esc_position_format(&c->event->position, pos);
    event_ids(c->event, corr, cause);
    set_str(o, "event_id", id);
    set_str(o, "stream", c->event->stream_id);
    json_object_set_new(o, "version", json_integer(c->event->stream_version));
    set_str(o, "position", pos);
    set_str(o, "correlation_id", corr);
    set_str(o, "causation_id", cause);
  }
  /* Messages quote user data: never let a bad byte lose the line. */
  json_t *m = json_string(msg);
  json_object_set_new(o, "msg", m ? m : json_string("(not UTF-8)"));
  char *line = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return line;
}

static char *human_line(const char *when, esc_log_level level,
                        const esc_log_context *c, const char *msg) {
  /* The consumer and partition are the JSON record's; human messages
   * name them in their text already. */
  char ev[320] = "", id[37], pos[64], corr[37], cause[37];
  if (c->event) {
    esc_uuid_format(&c->event->id, id);
    esc_position_format(&c->event->position, pos);
    event_ids(c->event, corr, cause);
    snprintf(ev, sizeof ev, " [event %s %s@%" PRId64 " at %s%s%s%s%s]", id,
             c->event->stream_id, c->event->stream_version, pos,
             corr[0] ? " correlation " : "", corr,
             cause[0] ? " causation " : "", cause);
  }
  char *line = NULL;
  size_t n = strlen(msg) + strlen(ev) + 128;
  if ((line = malloc(n)))
    snprintf(line, n, "%s %s %s[%d]: %s%s", when, level_names[level],
             c->component ? c->component : "esc", (int)getpid(), msg, ev);
  return line;
}

void esc_log(esc_log_level level, const esc_log_context *ctx,
             const char *fmt, ...) {
  static const esc_log_context none = ESC_LOG_CONTEXT_INIT;
  pthread_once(&once, from_environment);
  if (level < threshold || level > ESC_LOG_ERROR)
    return;
  char msg[1024], when[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  stamp(when);
  pthread_mutex_lock(&lock);
  const esc_log_context *c = ctx ? ctx : &none;
  char *line = format == ESC_LOG_JSON ? json_line(when, level, c, msg)
                                      : human_line(when, level, c, msg);
  if (line && sink)
    sink(sink_data, line);
  else if (line)
    fprintf(stderr, "%s\n", line);
  pthread_mutex_unlock(&lock);
  free(line);
}

/*
 * The fulfillment saga (order.h): OrderConfirmed -> reserve every line's
 * stock -> mark the order ready, or, when a reservation is refused, cancel
 * the order and release what was reserved. OrderCancelled of an order that
 * was marked ready (a customer cancelling) releases its stock too.
 *
 * It is a process manager driven by the log: it reads category "order"
 * with esc_read_all from its checkpoint (the Redis key
 * "<namespace>:fulfillment:checkpoint", a position token, in the store's
 * key namespace so that stores sharing a Redis keep apart), and turns each
 * OrderConfirmed into commands. Every command id is UUIDv5 of the
 * OrderConfirmed event's id and a step name, so handling an event again
 * (a crash before the checkpoint moved) issues nothing twice: esc_execute
 * returns the first result of a command it has seen.
 *
 * A refusal is a first result too: the store records it, so a replay is
 * refused the same way even when the state has changed since (say the
 * missing stock came in), and never decides a step anew. What a replay
 * can still meet is a step the first run never reached (it crashed
 * before). The compensation is ordered so that this is harmless: on a
 * refusal the order is cancelled first and the reservations released
 * after, and whenever marking ready is refused because the order is
 * cancelled, every reservation made for it is released. Say the first
 * run reserved A and crashed; a customer cancelled meanwhile; the replay
 * finds A reserved (the first result), reserves B, is refused "ready"
 * (cancelled) and releases A and B. Each release has its own derived id,
 * so none happens twice.
 *
 * One saga should run per event store: two would both act on every event
 * (safely, thanks to the ids, but twice the work). order-worker sees to
 * that with a lease (esc_lease "fulfillment").
 */
#include "order.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECKPOINT_NAME "fulfillment:checkpoint"
#define ACTOR "fulfillment"
#define DEFAULT_STEP_MAX 100

struct order_saga {
  esc_store *store;    /* borrowed */
  redisContext *redis; /* NULL after an I/O error: reconnected in a step */
  char *redis_url;
  bool loaded; /* checkpoint read from Redis on this connection */
  esc_position checkpoint;
  char checkpoint_key[ESC_KEY_PREFIX_MAX + sizeof CHECKPOINT_NAME + 1];
};

/* One line of a log on stderr: "2024-05-01T12:00:00Z fulfillment: ...". */
static void saga_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void saga_log(const char *fmt, ...) {
  char stamp[32] = "";
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm))
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s fulfillment: %s\n", stamp, line);
}

/* ------------------------------------------------------------------------
 * Redis: the checkpoint
 * ------------------------------------------------------------------------ */

static void disconnect(order_saga *s) {
  if (s->redis)
    redisFree(s->redis);
  s->redis = NULL;
  s->loaded = false;
}

/* Runs one command; a reply of the wrong kind is ESC_EIO, no reply at all
 * (the connection is gone) ESC_ECONN and a reconnect on the next call. */
static esc_status command(order_saga *s, redisReply **out, esc_error *err,
                          int argc, const char **argv) {
  redisReply *r = redisCommandArgv(s->redis, argc, argv, NULL);
  if (!r) {
    esc_status rc = esc_error_set(err, ESC_ECONN, "fulfillment: redis %s: %s",
                                  argv[0], s->redis->errstr);
    disconnect(s);
    return rc;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    esc_status rc = esc_error_set(err, ESC_EIO, "fulfillment: redis %s: %s",
                                  argv[0], r->str);
    freeReplyObject(r);
    return rc;
  }
  if (out)
    *out = r;
  else
    freeReplyObject(r);
  return ESC_OK;
}

static esc_status load_checkpoint(order_saga *s, esc_error *err) {
  const char *argv[] = {"GET", s->checkpoint_key};
  redisReply *r = NULL;
  esc_status rc = command(s, &r, err, 2, argv);
  if (rc)
    return rc;
  s->checkpoint = (esc_position)ESC_POSITION_START;
  if (r->type == REDIS_REPLY_STRING) {
    esc_error inner = ESC_ERROR_INIT;
    if (esc_position_parse(r->str, &s->checkpoint, &inner))
      rc = esc_error_set(err, ESC_EINVAL, "fulfillment: %s: %s",
                         s->checkpoint_key, inner.msg);
  } else if (r->type != REDIS_REPLY_NIL) {
    rc = esc_error_set(err, ESC_EIO, "fulfillment: %s is not a string",
                       s->checkpoint_key);
  }
  freeReplyObject(r);
  s->loaded = !rc;
  return rc;
}

/* Connects (after a failure: again) and reads the checkpoint. */
static esc_status ensure_connected(order_saga *s, esc_error *err) {
  if (s->redis && !s->redis->err && s->loaded)
    return ESC_OK;
  disconnect(s);
  s->redis = esc_redis_connect(s->redis_url, err);
  if (!s->redis)
    return err ? err->code : ESC_ECONN;
  esc_status rc = load_checkpoint(s, err);
  if (rc)
    disconnect(s);
  return rc;
}

static esc_status save_checkpoint(order_saga *s, const esc_position *p,
                                  esc_error *err) {
  char token[ESC_POSITION_TOKEN_MAX];
  esc_position_format(p, token);
  const char *argv[] = {"SET", s->checkpoint_key, token};
  esc_status rc = command(s, NULL, err, 3, argv);
  if (!rc)
    s->checkpoint = *p;
  return rc;
}

/* ------------------------------------------------------------------------
 * Commands of one OrderConfirmed
 * ------------------------------------------------------------------------ */

/* What the commands of one triggering event share. */
typedef struct trigger {
  const esc_recorded_event *rec;
  const char *order_id;    /* the stream id after "order-" */
  esc_uuid correlation_id; /* the event's own, else its id */
} trigger;

/* Executes one step: command id UUIDv5(event id, step). ESC_EREJECTED
 * leaves the domain code and message in *res. */
static esc_status execute(order_saga *s, const trigger *t,
                          const esc_decider *decider, const char *stream,
                          const void *cmd, const char *step,
                          esc_command_result *res, esc_error *err) {
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  o.command_id = esc_uuid_v5(&t->rec->id, step, strlen(step));
  o.correlation_id = t->correlation_id;
  o.actor = ACTOR;
  memset(res, 0, sizeof *res);
  return esc_execute(s->store, decider, stream, cmd, &o, res, err);
}

static esc_status inventory(order_saga *s, const trigger *t,
                            inventory_cmd_kind kind, const order_line *line,
                            esc_command_result *res, esc_error *err) {
  char stream[ORDER_SKU_MAX + 16], step[ORDER_SKU_MAX + 16];
  snprintf(stream, sizeof stream, "inventory-%s", line->sku);
  snprintf(step, sizeof step, "%s:%s",
           kind == INVENTORY_RESERVE ? "reserve" : "release", line->sku);
  inventory_cmd cmd = {kind, line->qty, t->order_id};
  return execute(s, t, inventory_decider(), stream, &cmd, step, res, err);
}

static esc_status order_step(order_saga *s, const trigger *t,
                             const order_cmd *cmd, const char *step,
                             esc_command_result *res, esc_error *err) {
  return execute(s, t, order_decider(), t->rec->stream_id, cmd, step, res, err);
}

/* Releases lines[0..count): each has its own id, so a replay of a release
 * done before returns that first result. A refused release (nothing
 * reserved to release) is logged. */
static esc_status release_lines(order_saga *s, const trigger *t,
                                const order_line *lines, int count,
                                esc_error *err) {
  for (int i = 0; i < count; i++) {
    esc_command_result res;
    esc_status rc = inventory(s, t, INVENTORY_RELEASE, &lines[i], &res, err);
    if (rc == ESC_EREJECTED)
      saga_log("%s: releasing %" PRId64 " of %s refused: %s", t->rec->stream_id,
               lines[i].qty, lines[i].sku, res.domain_msg);
    else if (rc)
      return rc;
  }
  return ESC_OK;
}

/* A reservation was refused: cancel the order, then release lines[0..n). */
static esc_status compensate(order_saga *s, const trigger *t,
                             const order_line *lines, int reserved,
                             const order_line *refused,
                             const esc_command_result *why, esc_error *err) {
  char reason[ORDER_TEXT_MAX];
  if (why->domain_code == INVENTORY_ESHORT)
    snprintf(reason, sizeof reason, "insufficient stock for %s", refused->sku);
  else
    snprintf(reason, sizeof reason, "cannot reserve %s: %.40s", refused->sku,
             why->domain_msg);
  saga_log("%s: %s (%s); cancelling it", t->rec->stream_id, reason,
           why->domain_msg);
  order_cmd cancel = {.kind = ORDER_CANCEL, .reason = reason};
  esc_command_result res;
  esc_status rc = order_step(s, t, &cancel, "cancel", &res, err);
  if (rc == ESC_EREJECTED) /* shipped or cancelled meanwhile: fine */
    saga_log("%s: cancel refused: %s", t->rec->stream_id, res.domain_msg);
  else if (rc)
    return rc;
  return release_lines(s, t, lines, reserved, err);
}

static esc_status handle_confirmed(order_saga *s, const trigger *t,
                                   const order_confirmed *e, esc_error *err) {
  esc_command_result res;
  esc_status rc = ESC_OK;
  int reserved = 0;
  for (; reserved < e->line_count; reserved++) {
    rc = inventory(s, t, INVENTORY_RESERVE, &e->lines[reserved], &res, err);
    if (rc == ESC_EREJECTED)
      return compensate(s, t, e->lines, reserved, &e->lines[reserved], &res,
                        err);
    if (rc)
      return rc;
  }
  order_cmd ready = {.kind = ORDER_MARK_READY};
  rc = order_step(s, t, &ready, "ready", &res, err);
  if (rc != ESC_EREJECTED)
    return rc;
  /* Cancelled while we reserved (or before): give the stock back. */
  saga_log("%s: mark ready refused: %s%s", t->rec->stream_id, res.domain_msg,
           res.domain_code == ORDER_ECANCELLED ? "; releasing its stock" : "");
  if (res.domain_code == ORDER_ECANCELLED)
    return release_lines(s, t, e->lines, reserved, err);
  return ESC_OK;
}

/* The trigger of an event: the order id and the correlation id to carry. */
static trigger trigger_of(const esc_recorded_event *rec) {
  const char *dash = strchr(rec->stream_id, '-');
  trigger t = {rec, dash ? dash + 1 : rec->stream_id, rec->id};
  esc_metadata meta = ESC_METADATA_INIT;
  if (!esc_metadata_decode(rec->metadata, rec->metadata_len, &meta, NULL, 0,
                           NULL) &&
      !esc_uuid_is_nil(&meta.correlation_id))
    t.correlation_id = meta.correlation_id;
  return t;
}

/* A cancelled order whose stock was reserved (marked ready) gives it back.
 * Orders cancelled before that were released by handle_confirmed. The
 * release ids derive from the cancel event, so a replay releases nothing
 * twice. */
static esc_status handle_cancelled(order_saga *s, const esc_recorded_event *rec,
                                   esc_error *err) {
  order_state state;
  esc_status rc = esc_load_state(s->store, order_decider(), rec->stream_id,
                                 &state, NULL, err);
  if (rc || !state.reserved)
    return rc;
  trigger t = trigger_of(rec);
  saga_log("%s: cancelled after its stock was reserved; releasing it",
           rec->stream_id);
  return release_lines(s, &t, state.lines, state.line_count, err);
}

/* Decodes an OrderConfirmed and handles it. An event that cannot be
 * decoded is logged and skipped: it can never be handled, and stopping
 * here would stop fulfillment for every later order. */
static esc_status handle_event(order_saga *s, const esc_recorded_event *rec,
                               esc_error *err) {
  if (strcmp(rec->type, ORDER_CANCELLED.name) == 0)
    return handle_cancelled(s, rec, err);
  if (strcmp(rec->type, ORDER_CONFIRMED.name) != 0)
    return ESC_OK;
  msgpack_zone zone;
  if (!msgpack_zone_init(&zone, 2048))
    return esc_error_set(err, ESC_ENOMEM, "fulfillment: out of memory");
  order_confirmed *e = malloc(sizeof *e);
  esc_status rc = ESC_OK;
  const esc_event_type *type = NULL;
  esc_error inner = ESC_ERROR_INIT;
  if (!e) {
    rc = esc_error_set(err, ESC_ENOMEM, "fulfillment: out of memory");
    goto out_zone;
  }
  if (esc_event_decode(order_events(), rec, &zone, e, &type, &inner)) {
    saga_log("%s@%" PRId64 ": skipped, cannot decode: %s", rec->stream_id,
             rec->stream_version, inner.msg);
    goto out_free;
  }
  trigger t = trigger_of(rec);
  rc = handle_confirmed(s, &t, e, err);
out_free:
  free(e);
out_zone:
  msgpack_zone_destroy(&zone);
  return rc;
}

/* ------------------------------------------------------------------------
 * The saga
 * ------------------------------------------------------------------------ */

order_saga *order_saga_new(esc_store *store, const char *redis_url,
                           esc_error *err) {
  if (!store) {
    esc_error_set(err, ESC_EINVAL, "fulfillment: no store");
    return NULL;
  }
  order_saga *s = calloc(1, sizeof *s);
  if (!s) {
    esc_error_set(err, ESC_ENOMEM, "fulfillment: out of memory");
    return NULL;
  }
  s->store = store;
  char ns[ESC_KEY_PREFIX_MAX + 1];
  if (esc_key_namespace(store, NULL, ns, sizeof ns, err)) {
    order_saga_free(s);
    return NULL;
  }
  snprintf(s->checkpoint_key, sizeof s->checkpoint_key, "%s:%s", ns,
           CHECKPOINT_NAME);
  s->redis_url = strdup(redis_url ? redis_url : esc_default_redis_url());
  if (!s->redis_url) {
    esc_error_set(err, ESC_ENOMEM, "fulfillment: out of memory");
    order_saga_free(s);
    return NULL;
  }
  if (ensure_connected(s, err)) {
    order_saga_free(s);
    return NULL;
  }
  return s;
}

void order_saga_free(order_saga *s) {
  if (!s)
    return;
  disconnect(s);
  free(s->redis_url);
  free(s);
}

/*
 * Reads up to max (0: 100) events of category "order" after the
 * checkpoint and handles them in order. The checkpoint moves after each
 * handled OrderConfirmed and at the end; on an error it stays after the
 * last event fully handled, and the next step starts there.
 */
esc_status order_saga_step(order_saga *s, size_t max, size_t *handled,
                           esc_error *err) {
  if (handled)
    *handled = 0;
  if (!s)
    return esc_error_set(err, ESC_EINVAL, "fulfillment: no saga");
  esc_status rc = ensure_connected(s, err);
  if (rc)
    return rc;
  esc_events ev = ESC_EVENTS_INIT;
  rc = esc_read_all(s->store, "order", s->checkpoint,
                    max ? max : DEFAULT_STEP_MAX, &ev, err);
  esc_position done = s->checkpoint;
  size_t n = 0;
  for (size_t i = 0; !rc && i < ev.count; i++) {
    const esc_recorded_event *rec = &ev.items[i];
    rc = handle_event(s, rec, err);
    if (rc)
      break;
    done = rec->position;
    n++;
    if (strcmp(rec->type, ORDER_CONFIRMED.name) == 0 ||
        strcmp(rec->type, ORDER_CANCELLED.name) == 0)
      rc = save_checkpoint(s, &done, err);
  }
  /* Keep the first error's story; a failing save after one is secondary. */
  if (esc_position_cmp(&done, &s->checkpoint) != 0 && s->redis) {
    esc_status saved = save_checkpoint(s, &done, rc ? NULL : err);
    if (!rc)
      rc = saved;
  }
  esc_events_release(&ev);
  if (handled)
    *handled = n;
  return rc;
}

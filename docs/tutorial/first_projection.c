/*
 * The program of docs/tutorial-first-projection.md: a projection that turns
 * cart events into two read models in Redis, run by a worker against a real
 * event store. Built as build/tutorial-first-projection and run by ctest,
 * so the tutorial cannot drift from the code.
 */
#include <esc/projection.h>
#include <hiredis/hiredis.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- 1 -- */
/* The event, as in the command tutorial: a C struct and its codec.       */

typedef struct item_added {
  char sku[32];
  int64_t qty;
} item_added;

static int item_added_encode(const void *event, msgpack_packer *pk) {
  const item_added *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "sku");
  esc_pack_str(pk, e->sku);
  esc_pack_key(pk, "qty");
  msgpack_pack_int64(pk, e->qty);
  return 0;
}

static esc_status item_added_decode(const msgpack_object *obj, void *event,
                                    esc_error *err) {
  item_added *e = event;
  if (!esc_map_str(obj, "sku", e->sku, sizeof e->sku) ||
      !esc_map_i64(obj, "qty", &e->qty))
    return esc_error_set(err, ESC_EINVAL, "ItemAdded needs sku and qty");
  return ESC_OK;
}

static const esc_event_type ITEM_ADDED = {"ItemAdded",        1,
                                          sizeof(item_added), item_added_encode,
                                          item_added_decode,  NULL};

/* ---------------------------------------------------------------- 2 -- */
/* The handler: one event in, Redis commands queued into the batch.       */

static esc_status cart_items_handle(esc_projection_ctx *ctx,
                                    const esc_event *event, void *userdata,
                                    esc_error *err) {
  (void)userdata;
  if (event->type != &ITEM_ADDED)
    return ESC_OK;
  const item_added *e = event->data;
  const char *qty = esc_ctx_i64(ctx, e->qty);
  if (esc_ctx_cmd(ctx, "ZINCRBY", esc_ctx_key(ctx, "popular"), qty, e->sku,
                  NULL) ||
      esc_ctx_cmd(ctx, "HINCRBY",
                  esc_ctx_key(ctx, "cart:%s", event->recorded->stream_id),
                  e->sku, qty, NULL))
    return esc_error_set(err, ESC_ENOMEM, "cart_items: out of memory");
  return ESC_OK;
}

/* ---------------------------------------------------------------- 3 -- */
/* Appending: in an application the command side does this.              */

static esc_status add_item(esc_store *store, const char *stream,
                           const char *sku, int64_t qty, esc_error *err) {
  item_added e = {.qty = qty};
  snprintf(e.sku, sizeof e.sku, "%s", sku);
  void *data;
  size_t len;
  esc_status rc = esc_event_encode(&ITEM_ADDED, &e, &data, &len, err);
  if (rc)
    return rc;
  esc_event_data ev = {esc_uuid_v4(), "ItemAdded", 1, data, len, NULL, 0};
  esc_append_result r;
  rc = esc_append(store, stream, ESC_EXPECT_ANY, &ev, 1, &r, err);
  free(data);
  if (!rc)
    printf("appended %s@%lld: ItemAdded %s x%lld\n", stream,
           (long long)r.last_version, sku, (long long)qty);
  return rc;
}

/* ---------------------------------------------------------------- 4 -- */
/* Reading the model: resolve the generation, then read its keys.         */

static redisContext *redis;

/* Runs a command whose reply is a number (or nil: 0). */
static long long redis_int(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(redis, fmt, ap);
  va_end(ap);
  long long n = !r                               ? -1
                : r->type == REDIS_REPLY_STRING  ? atoll(r->str)
                : r->type == REDIS_REPLY_INTEGER ? r->integer
                                                 : 0;
  freeReplyObject(r);
  return n;
}

static long long popularity(const char *sku) {
  long long g = redis_int("GET tutorial:cart_items:generation");
  return redis_int("ZSCORE tutorial:cart_items:g%lld:popular %s", g, sku);
}

/* Runs a read command, printing it and its reply (pairs, one per line). */
static void show(const char *fmt, ...) {
  char command[256];
  va_list ap, again;
  va_start(ap, fmt);
  va_copy(again, ap);
  vsnprintf(command, sizeof command, fmt, ap);
  redisReply *r = redisvCommand(redis, fmt, again);
  va_end(again);
  va_end(ap);
  printf("%s\n", command);
  for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
       i += 2)
    printf("  %-8s %s\n", r->element[i]->str, r->element[i + 1]->str);
  freeReplyObject(r);
}

static void log_line(void *userdata, const char *line) {
  (void)userdata;
  printf("  worker: %s\n", line);
}

static int fail(const char *what, const esc_error *err) {
  fprintf(stderr, "tutorial: %s: %s\n", what, err ? err->msg : "");
  return 1;
}

/* ---------------------------------------------------------------- 5 -- */
/* Wiring it up: store, projection, worker, then check what it built.     */

int main(void) {
  esc_error err = ESC_ERROR_INIT;
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = "tutorial_proj";
  esc_store *store = esc_store_open(NULL, &so, &err); /* ESC_PG_URL */
  if (!store || esc_store_migrate(store, NULL, &err))
    return fail("store", &err);
  esc_event_registry *events = esc_event_registry_new(&err);
  if (!events || esc_event_registry_add(events, &ITEM_ADDED, &err))
    return fail("registry", &err);

  static const char *const categories[] = {"cart", NULL};
  static const char *const types[] = {"ItemAdded", NULL};
  const esc_projection cart_items = {.name = "cart_items",
                                     .version = 1,
                                     .categories = categories,
                                     .event_types = types,
                                     .events = events,
                                     .handle = cart_items_handle,
                                     .on_error = ESC_ON_ERROR_PARK};

  esc_worker_options wo = ESC_WORKER_OPTIONS_INIT;
  wo.schema = "tutorial_proj";
  wo.key_prefix = "tutorial"; /* every key starts "tutorial:" */
  wo.log = log_line;
  esc_worker *worker = esc_worker_new(&wo, &err); /* ESC_REDIS_URL */
  if (!worker || esc_worker_add(worker, &cart_items, &err))
    return fail("worker", &err);
  /* Whatever earlier runs appended is applied first (and only once). */
  if (esc_worker_run_until_caught_up(worker, 30000, &err))
    return fail("catch up", &err);

  /* Queries talk to Redis directly, connected the way the worker is
   * (ESC_REDIS_URL, its password and database included). */
  redis = esc_redis_connect(NULL, &err);
  if (!redis)
    return fail("redis", &err);
  long long book = popularity("book-42"), pen = popularity("pen-7");

  char carts[2][64], id[37];
  for (int i = 0; i < 2; i++) {
    esc_uuid cart_id = esc_uuid_v4();
    esc_uuid_format(&cart_id, id);
    snprintf(carts[i], sizeof carts[i], "cart-%s", id);
  }
  if (add_item(store, carts[0], "book-42", 2, &err) ||
      add_item(store, carts[0], "pen-7", 1, &err) ||
      add_item(store, carts[1], "book-42", 3, &err))
    return fail("append", &err);

  if (esc_worker_run_until_caught_up(worker, 30000, &err))
    return fail("catch up", &err);
  long long g = redis_int("GET tutorial:cart_items:generation");
  printf("caught up; queries read generation %lld\n", g);
  show("ZRANGE tutorial:cart_items:g%lld:popular 0 -1 REV WITHSCORES", g);
  for (int i = 0; i < 2; i++)
    show("HGETALL tutorial:cart_items:g%lld:cart:%s", g, carts[i]);

  /* The carts are new on every run; the popularity adds up over runs. */
  bool ok =
      redis_int("HGET tutorial:cart_items:g%lld:cart:%s book-42", g, carts[0]) == 2 &&
      redis_int("HGET tutorial:cart_items:g%lld:cart:%s pen-7", g, carts[0]) == 1 &&
      redis_int("HGET tutorial:cart_items:g%lld:cart:%s book-42", g, carts[1]) == 3 &&
      popularity("book-42") == book + 5 && popularity("pen-7") == pen + 1;
  if (!ok)
    fprintf(stderr, "tutorial: the read model does not match the events\n");

  redisFree(redis);
  esc_worker_free(worker);
  esc_event_registry_free(events);
  esc_store_free(store);
  return ok ? 0 : 1;
}

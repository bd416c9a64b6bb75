/* The tally projection of tally.h. */
#include "tally.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile int tally_poison_cured;

static int counted_encode(const void *event, msgpack_packer *pk) {
  const tally_counted *e = event;
  msgpack_pack_map(pk, 2);
  esc_pack_key(pk, "n");
  msgpack_pack_int64(pk, e->n);
  esc_pack_key(pk, "item");
  esc_pack_str(pk, e->item);
  return 0;
}

static esc_status counted_decode(const msgpack_object *obj, void *event,
                                 esc_error *err) {
  tally_counted *e = event;
  if (!esc_map_i64(obj, "n", &e->n) ||
      !esc_map_str(obj, "item", e->item, sizeof e->item))
    return esc_error_set(err, ESC_EINVAL, "Counted needs n and item");
  return ESC_OK;
}

const esc_event_type tally_counted_type = {
    "Counted", 1, sizeof(tally_counted), counted_encode, counted_decode, NULL};

static esc_event_registry *registry;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void build_registry(void) {
  registry = esc_event_registry_new(NULL);
  if (!registry || esc_event_registry_add(registry, &tally_counted_type, NULL))
    abort();
}

const esc_event_registry *tally_events(void) {
  pthread_once(&registry_once, build_registry);
  return registry;
}

static esc_status handle(esc_projection_ctx *ctx, const esc_event *event,
                         void *userdata, esc_error *err) {
  (void)userdata;
  const tally_counted *e = event->data;
  if (!e)
    return ESC_OK; /* not a Counted event */
  if (strcmp(e->item, "poison") == 0 && !tally_poison_cured)
    return esc_error_set(err, ESC_EINVAL, "poison in %s@%lld",
                         event->recorded->stream_id,
                         (long long)event->recorded->stream_version);
  const char *n = esc_ctx_i64(ctx, e->n);
  esc_status rc =
      esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "total"), n, NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "ZINCRBY", esc_ctx_key(ctx, "items"), n, e->item,
                     NULL);
  if (!rc)
    rc = esc_ctx_cmd(ctx, "RPUSH",
                     esc_ctx_key(ctx, "seq:%s", event->recorded->stream_id),
                     esc_ctx_i64(ctx, event->recorded->stream_version), NULL);
  return rc;
}

static const char *const categories[] = {"tally", NULL};

void tally_projection(esc_projection *p, const char *name, int32_t version,
                      int partitions) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->version = version;
  p->categories = categories;
  p->partitions = partitions;
  p->events = tally_events();
  p->handle = handle;
  p->on_error = ESC_ON_ERROR_PARK;
  p->max_attempts = 2;
}

static void die(const char *why) {
  fprintf(stderr, "tally_append: %s\n", why);
  abort();
}

int64_t tally_append(esc_store *st, const char *prefix, int streams,
                     int count) {
  int64_t sum = 0;
  enum { BATCH = 256 };
  esc_append_request reqs[BATCH];
  esc_event_data ev[BATCH];
  void *data[BATCH];
  char names[BATCH][64];
  for (int done = 0; done < count;) {
    int k = count - done < BATCH ? count - done : BATCH;
    for (int j = 0; j < k; j++) {
      int i = done + j;
      tally_counted e = {1 + i % 7, ""};
      size_t len = 0;
      snprintf(e.item, sizeof e.item, "item%d", i % 5);
      snprintf(names[j], sizeof names[j], "tally-%s%d", prefix, i % streams);
      if (esc_event_encode(&tally_counted_type, &e, &data[j], &len, NULL))
        abort();
      ev[j] =
          (esc_event_data){esc_uuid_v4(), "Counted", 1, data[j], len, NULL, 0};
      reqs[j] = (esc_append_request){
          names[j], ESC_EXPECT_ANY, &ev[j], 1, ESC_OK, {0}, ESC_ERROR_INIT};
      sum += e.n;
    }
    esc_error err = ESC_ERROR_INIT;
    if (esc_append_many(st, reqs, (size_t)k, &err))
      die(err.msg);
    for (int j = 0; j < k; j++) {
      if (reqs[j].status)
        die(reqs[j].error.msg);
      free(data[j]);
    }
    done += k;
  }
  return sum;
}

void tally_append_one(esc_store *st, const char *stream, int64_t n,
                      const char *item) {
  tally_counted e = {n, ""};
  void *data = NULL;
  size_t len = 0;
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  snprintf(e.item, sizeof e.item, "%s", item);
  if (esc_event_encode(&tally_counted_type, &e, &data, &len, &err))
    die(err.msg);
  esc_event_data ev = {esc_uuid_v4(), "Counted", 1, data, len, NULL, 0};
  if (esc_append(st, stream, ESC_EXPECT_ANY, &ev, 1, &res, &err))
    die(err.msg);
  free(data);
}

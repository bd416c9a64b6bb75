/* The clients' op mix (workload.h). */
#include "workload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <esc/store.h>

int64_t soak_seen_get(const soak_seen *s, const char *stream) {
  for (size_t i = 0; i < s->count; i++)
    if (strcmp(s->stream[i], stream) == 0)
      return s->version[i];
  return -1;
}

void soak_seen_set(soak_seen *s, const char *stream, int64_t version) {
  for (size_t i = 0; i < s->count; i++)
    if (strcmp(s->stream[i], stream) == 0) {
      if (version > s->version[i])
        s->version[i] = version;
      return;
    }
  size_t slot = s->count < SOAK_SEEN_MAX ? s->count++ : s->next++ % SOAK_SEEN_MAX;
  snprintf(s->stream[slot], sizeof s->stream[slot], "%s", stream);
  s->version[slot] = version;
}

/* The stream of the next op; *fresh when it is new (no-stream fits). */
static void pick_stream(soak_rng *r, const char *client, long seq, char *out,
                        size_t size, bool *fresh) {
  int roll = soak_rng_below(r, 100);
  *fresh = false;
  if (roll < 30)
    snprintf(out, size, SOAK_CATEGORY "-hot");
  else if (roll < 70)
    snprintf(out, size, SOAK_CATEGORY "-w%d", soak_rng_below(r, 6));
  else if (roll < 85)
    snprintf(out, size, "other-w%d", soak_rng_below(r, 3));
  else {
    snprintf(out, size, SOAK_CATEGORY "-n-%s-%ld", client, seq);
    *fresh = true;
  }
}

static int64_t pick_expected(soak_rng *r, const soak_seen *seen,
                             const char *stream, bool fresh) {
  int roll = soak_rng_below(r, 100);
  if (fresh)
    return roll < 80 ? ESC_EXPECT_NO_STREAM : ESC_EXPECT_ANY;
  int64_t v = soak_seen_get(seen, stream);
  if (roll < 30)
    return ESC_EXPECT_ANY;
  if (roll < 75)
    return v >= 0 ? v : 0; /* 0: "no events yet", a guess */
  if (roll < 92)
    return ESC_EXPECT_EXISTS;
  return ESC_EXPECT_NO_STREAM; /* a conflict, unless the stream is new */
}

void soak_workload_next(soak_rng *r, const soak_seen *seen, const char *client,
                        long seq, size_t max_events, soak_attempt *a) {
  bool fresh;
  memset(a, 0, sizeof *a);
  snprintf(a->op, sizeof a->op, "%s-%ld", client, seq);
  snprintf(a->client, sizeof a->client, "%s", client);
  a->attempt = 1;
  pick_stream(r, client, seq, a->stream, sizeof a->stream, &fresh);
  a->expected = pick_expected(r, seen, a->stream, fresh);
  if (max_events > SOAK_MAX_BATCH)
    max_events = SOAK_MAX_BATCH;
  a->n = (size_t)soak_rng_range(r, 1, (int)max_events);
  for (size_t i = 0; i < a->n; i++) {
    esc_uuid id = esc_uuid_v4();
    esc_uuid_format(&id, a->events[i].id);
    a->events[i].n = soak_rng_range(r, 1, 9);
    snprintf(a->events[i].item, sizeof a->events[i].item, "i%d",
             soak_rng_below(r, 5));
  }
  a->first_version = a->last_version = a->first_global = -1;
}

void soak_workload_learn(soak_seen *seen, const soak_attempt *a) {
  if (a->outcome == SOAK_OK) {
    soak_seen_set(seen, a->stream, a->last_version);
    return;
  }
  /* "... expected version 5, stream is at 7": the actual version. */
  const char *at = a->outcome == SOAK_CONFLICT ? strstr(a->detail, "is at ")
                                               : NULL;
  if (at)
    soak_seen_set(seen, a->stream, strtoll(at + 6, NULL, 10));
}

int soak_retry_pause_ms(soak_rng *r, int attempt) {
  int cap = 20 << (attempt < 6 ? attempt : 6);
  if (cap > 1000)
    cap = 1000;
  return cap / 2 + soak_rng_below(r, cap / 2 + 1);
}

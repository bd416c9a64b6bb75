/*
 * Durable subscriptions (<esc/projection.h>, esc_subscription): handlers
 * with side effects outside Redis, run by the projection worker on its
 * leases, partitions, wake-ups, retries and dead letters, with their
 * checkpoints in PostgreSQL (eventstore/sql/016_subscriptions.sql). See
 * docs/decisions/0017-durable-subscriptions.md.
 */
#include "worker_int.h"

#include <string.h>

esc_uuid esc_subscription_key(const char *subscription,
                              const esc_uuid *event_id) {
  const char *name = subscription ? subscription : "";
  return esc_uuid_v5(event_id, name, strlen(name));
}

const char *esc_consumer_kind_name(esc_consumer_kind kind) {
  return kind == ESC_CONSUMER_SUBSCRIPTION ? "subscription" : "projection";
}

esc_status esc_worker_add_subscription(esc_worker *w,
                                       const esc_subscription *s,
                                       esc_error *err) {
  (void)w;
  (void)s;
  return esc_error_set(err, ESC_EINVAL,
                       "subscriptions: not implemented yet in this build");
}

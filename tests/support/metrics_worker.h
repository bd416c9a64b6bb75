/*
 * A worker with its metrics endpoint, for the tests of the endpoint.
 */
#ifndef ESC_TEST_METRICS_WORKER_H
#define ESC_TEST_METRICS_WORKER_H

#include <esc/metrics.h>

/* A worker of projection p (borrowed) on pg_url (NULL: the default) and
 * schema, polling leases every 100 ms, and in *srv its endpoint on a free
 * loopback port (esc_metrics_server_port). Fails the test if either
 * cannot be made. Free the server first, then the worker. */
esc_worker *esc_test_metrics_worker(const esc_projection *p,
                                    const char *pg_url, const char *schema,
                                    esc_metrics_server **srv);

#endif

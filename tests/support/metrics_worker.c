/* A worker with its metrics endpoint (metrics_worker.h). */
#include "metrics_worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

esc_worker *esc_test_metrics_worker(const esc_projection *p,
                                    const char *pg_url, const char *schema,
                                    esc_metrics_server **srv) {
  esc_error err = ESC_ERROR_INIT;
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.pg_url = pg_url;
  o.schema = schema;
  o.batch_size = 97; /* batches that line up with nothing */
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  if (!w || esc_worker_add(w, p, &err))
    fail_msg("worker: %s", err.msg);
  esc_metrics_server_options mo = ESC_METRICS_SERVER_OPTIONS_INIT;
  mo.listen = "127.0.0.1:0";
  mo.worker = w;
  mo.pg_url = pg_url;
  mo.schema = schema;
  if (!(*srv = esc_metrics_server_start(&mo, &err)))
    fail_msg("metrics server: %s", err.msg);
  return w;
}

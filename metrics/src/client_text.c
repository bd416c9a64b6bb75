/*
 * The client half of the metrics: what this process's appends and
 * commands took (esc_append_metrics_read, esc_command_metrics_read), for
 * a user's own endpoint or the server's /metrics.
 */
#include "metrics_int.h"

#include <stdlib.h>

static void counter(struct esc__text *t, const char *name, const char *help,
                    uint64_t value) {
  esc__text_header(t, name, "counter", help);
  esc__text_printf(t, "%s %llu\n", name, (unsigned long long)value);
}

void esc__metrics_client(struct esc__text *t) {
  esc_append_metrics a;
  esc_command_metrics c;
  esc_append_metrics_read(&a);
  esc_command_metrics_read(&c);
  esc__text_header(t, "esc_append_duration_seconds", "histogram",
                   "esc_append and esc_append_many calls of this process, "
                   "from the call to its answer.");
  esc__text_histogram(t, "esc_append_duration_seconds", "{", &a.duration);
  counter(t, "esc_append_conflicts_total",
          "Appends refused because another writer moved the stream.",
          a.conflicts);
  counter(t, "esc_append_duplicates_total",
          "Appends whose events were stored already (idempotent replays).",
          a.duplicates);
  counter(t, "esc_append_failures_total",
          "Append calls that failed otherwise.", a.failures);
  esc__text_header(t, "esc_command_duration_seconds", "histogram",
                   "esc_execute calls of this process, end to end: load, "
                   "decide, append, retries.");
  esc__text_histogram(t, "esc_command_duration_seconds", "{", &c.duration);
  counter(t, "esc_command_conflicts_total",
          "Command attempts that lost a race to a concurrent writer.",
          c.conflicts);
  counter(t, "esc_command_retries_total",
          "Command attempts after the first.", c.retries);
  counter(t, "esc_command_duplicates_total",
          "Commands answered with the result of their first execution.",
          c.duplicates);
  counter(t, "esc_command_rejected_total",
          "Commands the decider rejected.", c.rejected);
  counter(t, "esc_command_failures_total",
          "Commands that failed otherwise.", c.failures);
}

esc_status esc_metrics_client_text(char **out, esc_error *err) {
  struct esc__text t = {0};
  esc__metrics_client(&t);
  if (t.failed || !t.data) {
    esc__text_release(&t);
    *out = NULL;
    return esc_error_set(err, ESC_ENOMEM, "client metrics: out of memory");
  }
  *out = t.data;
  return ESC_OK;
}

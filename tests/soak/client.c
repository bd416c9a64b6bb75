/* A soak client process (client.h). */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <esc/command.h>
#include <esc/store.h>

#include "tally.h"
#include "workload.h"

static volatile sig_atomic_t stopping;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

/* Sends one attempt and fills its outcome and result. */
typedef void send_fn(void *ctx, soak_attempt *a);

/* --------------------------------------------------------------- library */

static const char *status_code(esc_status rc) {
  switch (rc) {
  case ESC_OK:
    return "ok";
  case ESC_ECONFLICT:
    return "conflict";
  case ESC_ECONN:
    return "connection";
  case ESC_ETIMEDOUT:
    return "timed_out";
  case ESC_EUNKNOWN:
    return "outcome_unknown";
  case ESC_EIO:
    return "database";
  case ESC_EDUPLICATE:
    return "duplicate";
  case ESC_EINVAL:
    return "invalid_input";
  default:
    return "other";
  }
}

/* What a status says about an append's effect (store.h, esc_append):
 * conflict, not sent and cancelled ones wrote nothing; only an unknown
 * one may have. */
static soak_outcome outcome_of(esc_status rc) {
  if (rc == ESC_OK)
    return SOAK_OK;
  if (rc == ESC_ECONFLICT)
    return SOAK_CONFLICT;
  return rc == ESC_EUNKNOWN ? SOAK_UNKNOWN : SOAK_ERROR;
}

static void lib_send(void *ctx, soak_attempt *a) {
  esc_event_data ev[SOAK_MAX_BATCH];
  void *data[SOAK_MAX_BATCH] = {0};
  esc_error err = ESC_ERROR_INIT;
  esc_status rc = ESC_OK;
  for (size_t i = 0; i < a->n && !rc; i++) {
    tally_counted c = {a->events[i].n, ""};
    size_t len = 0;
    snprintf(c.item, sizeof c.item, "%s", a->events[i].item);
    ev[i] = (esc_event_data){{{0}}, "Counted", 1, NULL, 0, NULL, 0};
    rc = esc_uuid_parse(a->events[i].id, &ev[i].id, &err);
    if (!rc)
      rc = esc_event_encode(&tally_counted_type, &c, &data[i], &len, &err);
    ev[i].data = data[i];
    ev[i].data_len = len;
  }
  esc_append_result res = {0};
  if (!rc)
    rc = esc_append(ctx, a->stream, a->expected, ev, a->n, &res, &err);
  for (size_t i = 0; i < a->n; i++)
    free(data[i]);
  a->outcome = outcome_of(rc);
  snprintf(a->code, sizeof a->code, "%s", status_code(rc));
  if (rc) {
    snprintf(a->detail, sizeof a->detail, "%.*s", (int)sizeof a->detail - 1,
             err.msg);
    return;
  }
  a->first_version = res.first_version;
  a->last_version = res.last_version;
  a->first_global = res.first_global;
  a->position = res.position;
  a->duplicate = res.duplicate;
}

/* ------------------------------------------------------------------- CLI */

struct cli {
  const soak_client_opts *o;
};

/* Runs argv with its stdout into out[size]; the wait status, -1 when it
 * could not be started. */
static int run_captured(const char *const argv[], char *out, size_t size) {
  int fds[2];
  if (pipe(fds) != 0)
    return -1;
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    /* Killed with its client: a SIGKILL of the client is a client that
     * died in the middle of a call. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(fds[1], 1);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fds[0], out + len, size - 1 - len);
    if (k > 0 && len + (size_t)k < size - 1) {
      len += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    len += (size_t)k; /* full: the rest is not ours to judge */
    break;
  }
  out[len] = '\0';
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}

/* The result of `esc append --json` into a; false when out is not one. */
static bool parse_cli(const char *out, soak_attempt *a) {
  json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
  const char *code = NULL, *msg = "", *pos = NULL;
  json_int_t fv = 0, lv = 0;
  int dup = 0;
  bool ok = false;
  if (o && json_unpack(o, "{s:{s:s, s?s}}", "error", "code", &code, "message",
                       &msg) == 0) {
    /* The CLI's codes are the library's statuses by name. */
    a->outcome = strcmp(code, "conflict") == 0          ? SOAK_CONFLICT
                 : strcmp(code, "outcome_unknown") == 0 ? SOAK_UNKNOWN
                                                        : SOAK_ERROR;
    snprintf(a->code, sizeof a->code, "%s", code);
    snprintf(a->detail, sizeof a->detail, "%s", msg);
    ok = true;
  } else if (o && json_unpack(o, "{s:I, s:I, s:s, s:b}", "first_version", &fv,
                              "last_version", &lv, "position", &pos,
                              "duplicate", &dup) == 0) {
    esc_error err = ESC_ERROR_INIT;
    ok = esc_position_parse(pos, &a->position, &err) == ESC_OK;
    a->outcome = SOAK_OK;
    a->first_version = fv;
    a->last_version = lv;
    a->duplicate = dup;
    snprintf(a->code, sizeof a->code, "ok");
  }
  json_decref(o);
  return ok;
}

static void cli_send(void *ctx, soak_attempt *a) {
  const soak_client_opts *o = ((struct cli *)ctx)->o;
  char data[64], expected[24], out[4096];
  snprintf(data, sizeof data, "{\"n\":%lld,\"item\":\"%s\"}",
           (long long)a->events[0].n, a->events[0].item);
  soak_expected_format(a->expected, expected);
  const char *argv[] = {o->esc_path, "--pg",     o->pg_url,   "--schema",
                        o->schema,   "--pg-timeout", "3",    "--json",
                        "append",    a->stream,  "Counted",    data,
                        "--expected", expected,  "--id",       a->events[0].id,
                        NULL};
  int status = run_captured(argv, out, sizeof out);
  a->first_version = a->last_version = a->first_global = -1;
  if (status != -1 && WIFEXITED(status) && parse_cli(out, a))
    return;
  /* Killed, or no answer we can read: it may have appended. */
  a->outcome = SOAK_UNKNOWN;
  if (status != -1 && WIFSIGNALED(status))
    snprintf(a->code, sizeof a->code, "killed");
  else
    snprintf(a->code, sizeof a->code, "no_reply");
  snprintf(a->detail, sizeof a->detail, "esc append: wait status %d", status);
}

/* ------------------------------------------------------------------ loop */

static bool record(int fd, char *line) {
  bool ok = line && soak_write_all(fd, line, strlen(line));
  free(line);
  return ok;
}

/* All attempts of one op, until one settles it or the client stops. */
static bool run_op(int fd, soak_rng *r, send_fn *send, void *ctx,
                   soak_seen *seen, soak_attempt *a) {
  for (;;) {
    a->invoke_us = soak_now_us();
    if (!record(fd, soak_invoke_line(a)))
      return false;
    send(ctx, a);
    a->complete_us = soak_now_us();
    if (!record(fd, soak_complete_line(a)))
      return false;
    soak_workload_learn(seen, a);
    bool settled = a->outcome == SOAK_OK || a->outcome == SOAK_CONFLICT ||
                   (a->outcome == SOAK_ERROR &&
                    strcmp(a->code, "connection") != 0 &&
                    strcmp(a->code, "timed_out") != 0);
    if (settled || stopping || a->attempt >= SOAK_MAX_ATTEMPTS)
      return true;
    soak_sleep_ms(soak_retry_pause_ms(r, a->attempt));
    a->attempt++;
    a->detail[0] = a->code[0] = '\0';
    a->duplicate = false;
    a->first_version = a->last_version = a->first_global = -1;
  }
}

static esc_store *open_store(const soak_client_opts *o) {
  esc_store_options so = ESC_STORE_OPTIONS_INIT;
  so.schema = o->schema;
  so.app_name = o->name;
  so.connect_timeout_s = 2;
  so.timeout_ms = 3000;
  while (!stopping) {
    esc_error err = ESC_ERROR_INIT;
    esc_store *st = esc_store_open(o->pg_url, &so, &err);
    if (st)
      return st;
    soak_sleep_ms(200); /* the nemesis has the server down */
  }
  return NULL;
}

int soak_client_main(const soak_client_opts *o) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int fd = soak_open_lines(o->history);
  if (fd < 0) {
    fprintf(stderr, "soak client %s: cannot open %s: %s\n", o->name,
            o->history, strerror(errno));
    return 2;
  }
  soak_rng r;
  soak_rng_seed(&r, o->seed, o->name);
  struct cli cli = {o};
  esc_store *st = o->esc_path ? NULL : open_store(o);
  send_fn *send = o->esc_path ? cli_send : lib_send;
  void *ctx = o->esc_path ? (void *)&cli : (void *)st;
  soak_seen seen = {0};
  int rc = 0;
  for (long seq = 1; !stopping && (o->esc_path || st); seq++) {
    soak_attempt a;
    soak_workload_next(&r, &seen, o->name, seq, o->esc_path ? 1 : SOAK_MAX_BATCH,
                       &a);
    if (!run_op(fd, &r, send, ctx, &seen, &a)) {
      fprintf(stderr, "soak client %s: cannot write %s\n", o->name,
              o->history);
      rc = 2;
      break;
    }
    if (o->pause_ms > 0)
      soak_sleep_ms(soak_rng_below(&r, o->pause_ms + 1));
  }
  esc_store_free(st);
  close(fd);
  return rc;
}

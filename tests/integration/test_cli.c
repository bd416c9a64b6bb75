/*
 * The admin CLI (build/esc, docs/cli.md) as scripts use it: the real
 * program runs as a child process against the test servers, and each case
 * checks its exit code (the contract of design.md: 0 ok, 1 other error,
 * 2 usage, 3 conflict, 4 not found, 5 connection, 6 invalid input) and
 * what it printed on stdout and stderr.
 *
 * The cases run in order on one schema of this process, t_cli_<pid>,
 * which `esc migrate` creates: later cases read what earlier ones wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tally.h"
#include "testenv.h"
#include "worker_thread.h"

#define RUN_TIMEOUT_MS 15000
#define MAX_ARGS 32
#define MAX_LINES 64
/* Nothing listens on port 1: connecting fails at once. */
#define UNREACHABLE_PG "postgresql://esc@127.0.0.1:1/esc"

static char schema[40]; /* per process: parallel runs must not collide */

/* ------------------------------------------------------------------------
 * Running esc
 * ------------------------------------------------------------------------ */

/* What one run of esc did. out and err are NUL-terminated and owned by
 * the result (cli_result_release). status is the exit code, or -1 when
 * the child died of a signal or was killed after RUN_TIMEOUT_MS. */
typedef struct cli_result {
  int status;
  char *out;
  char *err;
  char cmdline[512]; /* for failure messages */
} cli_result;

typedef struct buf {
  char *data;
  size_t len, cap;
} buf;

static void buf_read_from(buf *b, int *fd) {
  if (b->cap - b->len < 4097) {
    b->cap = b->cap ? b->cap * 2 : 8192;
    b->data = realloc(b->data, b->cap);
    assert_non_null(b->data);
  }
  ssize_t n = read(*fd, b->data + b->len, b->cap - b->len - 1);
  if (n > 0) {
    b->len += (size_t)n;
  } else if (n == 0 || errno != EINTR) {
    close(*fd);
    *fd = -1;
  }
  b->data[b->len] = '\0';
}

/* Reads the child's stdout and stderr until both close or deadline. */
static void collect(int out_fd, int err_fd, buf *out, buf *err,
                    long long deadline) {
  int fds[2] = {out_fd, err_fd};
  buf *bufs[2] = {out, err};
  while (fds[0] >= 0 || fds[1] >= 0) {
    long long left = deadline - esc_test_now_ms();
    if (left <= 0)
      break;
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (poll(p, 2, (int)left) < 0 && errno != EINTR)
      fail_msg("poll: %s", strerror(errno));
    for (int i = 0; i < 2; i++)
      if (fds[i] >= 0 && p[i].revents)
        buf_read_from(bufs[i], &fds[i]);
  }
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0)
      close(fds[i]);
}

static int wait_exit(pid_t pid, long long deadline) {
  int wstatus = 0;
  for (;;) {
    pid_t r = waitpid(pid, &wstatus, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      fail_msg("waitpid: %s", strerror(errno));
    if (esc_test_now_ms() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &wstatus, 0);
      return -1;
    }
    esc_test_sleep_ms(5);
  }
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
}

/* Starts ESC_CLI_PATH with argv (argv[0] first, NULL-terminated), stdin
 * from /dev/null, stdout and stderr to the pipes *out_fd and *err_fd
 * (the caller closes them); r->cmdline gets the command line. */
static pid_t spawn_esc(cli_result *r, char *const *argv, int *out_fd,
                       int *err_fd) {
  int out_pipe[2], err_pipe[2];
  memset(r, 0, sizeof *r);
  for (size_t i = 1, at = 0; argv[i] && at < sizeof r->cmdline - 1; i++)
    at += (size_t)snprintf(r->cmdline + at, sizeof r->cmdline - at, "%s%s",
                           i > 1 ? " " : "", argv[i]);
  if (pipe(out_pipe) || pipe(err_pipe))
    fail_msg("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_pipe[1], 1) < 0 ||
        dup2(err_pipe[1], 2) < 0)
      _exit(127);
    close(null_fd);
    close(out_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[0]);
    close(err_pipe[1]);
    execv(ESC_CLI_PATH, argv);
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  *out_fd = out_pipe[0];
  *err_fd = err_pipe[0];
  return pid;
}

/* Runs esc with argv to its end and captures its output. */
static void run_argv(cli_result *r, char *const *argv) {
  int out_fd, err_fd;
  pid_t pid = spawn_esc(r, argv, &out_fd, &err_fd);
  long long deadline = esc_test_now_ms() + RUN_TIMEOUT_MS;
  buf out = {NULL, 0, 0}, err = {NULL, 0, 0};
  collect(out_fd, err_fd, &out, &err, deadline);
  r->status = wait_exit(pid, deadline);
  r->out = out.data ? out.data : strdup("");
  r->err = err.data ? err.data : strdup("");
  assert_true(r->out && r->err);
}

static void cli_result_release(cli_result *r) {
  free(r->out);
  free(r->err);
  r->out = r->err = NULL;
}

/* esc with the NULL-terminated arguments that follow; with in_schema the
 * global option --schema <ours> comes before them. */
static void run_va(cli_result *r, bool in_schema, const char *first,
                   va_list ap) {
  const char *argv[MAX_ARGS];
  size_t n = 0;
  argv[n++] = "esc";
  if (in_schema) {
    argv[n++] = "--schema";
    argv[n++] = schema;
  }
  for (const char *a = first; a; a = va_arg(ap, const char *)) {
    assert_true(n < MAX_ARGS - 1);
    argv[n++] = a;
  }
  argv[n] = NULL;
  run_argv(r, (char *const *)argv);
}

#if defined(__GNUC__)
#define SENTINEL __attribute__((sentinel))
#else
#define SENTINEL
#endif

/* esc ARGS... (no schema: help, usage errors) */
static void run_cli(cli_result *r, const char *first, ...) SENTINEL;
static void run_cli(cli_result *r, const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  run_va(r, false, first, ap);
  va_end(ap);
}

/* esc --schema <ours> ARGS... */
static void run_in_schema(cli_result *r, const char *first, ...) SENTINEL;
static void run_in_schema(cli_result *r, const char *first, ...) {
  va_list ap;
  va_start(ap, first);
  run_va(r, true, first, ap);
  va_end(ap);
}

/* ------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------ */

/* The exit code is `code`, and the run did not trip a sanitizer. */
static void expect_exit(const cli_result *r, int code) {
  bool sanitizer = strstr(r->err, "runtime error:") ||
                   strstr(r->err, "AddressSanitizer") ||
                   strstr(r->err, "LeakSanitizer");
  if (r->status != code || sanitizer)
    fail_msg("esc %s: exit %d, expected %d%s\n--- stdout:\n%s--- stderr:\n%s",
             r->cmdline, r->status, code,
             sanitizer ? " (sanitizer report)" : "", r->out, r->err);
}

static void expect_in(const cli_result *r, const char *which, const char *text,
                      const char *needle) {
  if (!strstr(text, needle))
    fail_msg("esc %s: %s lacks \"%s\"\n--- stdout:\n%s--- stderr:\n%s",
             r->cmdline, which, needle, r->out, r->err);
}

static void expect_out(const cli_result *r, const char *needle) {
  expect_in(r, "stdout", r->out, needle);
}

static void expect_err(const cli_result *r, const char *needle) {
  expect_in(r, "stderr", r->err, needle);
}

/* esc --schema <ours> ARGS... exits with code and says needle on stderr. */
static void expect_error(int code, const char *needle, const char *first,
                         ...) SENTINEL;
static void expect_error(int code, const char *needle, const char *first, ...) {
  cli_result r;
  va_list ap;
  va_start(ap, first);
  run_va(&r, true, first, ap);
  va_end(ap);
  expect_exit(&r, code);
  expect_err(&r, needle);
  cli_result_release(&r);
}

/* How many times needle is in text. */
static size_t count_of(const char *text, const char *needle) {
  size_t n = 0;
  for (const char *s = strstr(text, needle); s; s = strstr(s + 1, needle))
    n++;
  return n;
}

static void expect_empty_out(const cli_result *r) {
  if (r->out[0])
    fail_msg("esc %s: expected no output, got:\n%s", r->cmdline, r->out);
}

/* Splits text into lines in place (the newline of each is replaced);
 * returns how many, at most max. */
static size_t split_lines(char *text, char **lines, size_t max) {
  size_t n = 0;
  for (char *s = text; *s && n < max;) {
    char *nl = strchr(s, '\n');
    lines[n++] = s;
    if (!nl)
      break;
    *nl = '\0';
    s = nl + 1;
  }
  return n;
}

/* Parses every line of r's stdout as a JSON object into objs (the caller
 * json_decref's each); returns how many. More than max lines fail. */
static size_t parse_json_lines(const cli_result *r, json_t **objs, size_t max) {
  char *copy = strdup(r->out);
  char *lines[MAX_LINES];
  assert_non_null(copy);
  size_t n = split_lines(copy, lines, MAX_LINES);
  if (n > max)
    fail_msg("esc %s: %zu lines, expected at most %zu:\n%s", r->cmdline, n, max,
             r->out);
  for (size_t i = 0; i < n; i++) {
    json_error_t jerr;
    objs[i] = json_loads(lines[i], 0, &jerr);
    if (!json_is_object(objs[i]))
      fail_msg("esc %s: line %zu is not a JSON object (%s): %s", r->cmdline,
               i + 1, jerr.text, lines[i]);
  }
  free(copy);
  return n;
}

static void free_json(json_t **objs, size_t n) {
  for (size_t i = 0; i < n; i++)
    json_decref(objs[i]);
}

static const char *json_str(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s)
    fail_msg("JSON key \"%s\" is not a string", key);
  return s;
}

static long long json_ll(const json_t *o, const char *key) {
  const json_t *v = json_object_get(o, key);
  if (!json_is_integer(v))
    fail_msg("JSON key \"%s\" is not an integer", key);
  return (long long)json_integer_value(v);
}

/* The events of stream `id` as `esc read --json --limit 0` lists them;
 * the caller frees them. */
static size_t read_json(const char *id, json_t **objs, size_t max) {
  cli_result r;
  run_in_schema(&r, "read", id, "--json", "--limit", "0", NULL);
  expect_exit(&r, 0);
  size_t n = parse_json_lines(&r, objs, max);
  cli_result_release(&r);
  return n;
}

/* ------------------------------------------------------------------------
 * Help and usage: no server needed
 * ------------------------------------------------------------------------ */

/* Every command `esc --help` lists has its own help. */
static void help_lists_commands_and_each_has_help(void **state) {
  (void)state;
  static const char *const contract[] = {
      "migrate", "append",      "read",    "tail",         "streams",
      "stats",   "projections", "rebuild", "dead-letters", "retention"};
  cli_result r;
  run_cli(&r, "--help", NULL);
  expect_exit(&r, 0);
  assert_int_equal(strncmp(r.out, "Usage", 5), 0);

  const char *list = strstr(r.out, "\nCommands:\n");
  assert_non_null(list);
  char *cmds = strdup(list + strlen("\nCommands:\n")); /* split in place */
  char *lines[MAX_LINES];
  assert_non_null(cmds);
  size_t n = split_lines(cmds, lines, MAX_LINES);
  size_t listed = 0;
  for (size_t i = 0; i < n && lines[i][0] == ' '; i++) {
    char name[32];
    if (sscanf(lines[i], " %31s", name) != 1)
      continue;
    listed++;
    cli_result h;
    run_cli(&h, name, "--help", NULL);
    expect_exit(&h, 0);
    if (strncmp(h.out, "Usage", 5) != 0)
      fail_msg("esc %s --help starts with: %.60s", name, h.out);
    cli_result_release(&h);
  }
  /* design.md names these; the listing must keep them. */
  for (size_t i = 0; i < sizeof contract / sizeof contract[0]; i++) {
    char line[48];
    snprintf(line, sizeof line, "\n  %s ", contract[i]);
    expect_out(&r, line);
  }
  assert_true(listed >= sizeof contract / sizeof contract[0]);
  free(cmds);
  cli_result_release(&r);
}

static void unknown_command_and_options_are_usage_errors(void **state) {
  (void)state;
  cli_result r;
  run_cli(&r, "frobnicate", NULL);
  expect_exit(&r, 2);
  expect_err(&r, "unknown command 'frobnicate'");
  expect_err(&r, "Commands:"); /* the list goes to stderr */
  expect_empty_out(&r);
  cli_result_release(&r);

  expect_error(2, "unknown option '--frobnicate'", "--frobnicate", "stats",
               NULL);
  expect_error(2, "Try 'esc read --help'.", "read", "cart-1", "--frobnicate",
               NULL);
  expect_error(2, "--limit", "read", "cart-1", "--limit", "ten", NULL);
}

/* ------------------------------------------------------------------------
 * The store, in order: migrate, append, read, list
 * ------------------------------------------------------------------------ */

static void migrate_applies_then_is_up_to_date(void **state) {
  (void)state;
  char prefix[64];
  cli_result r;
  snprintf(prefix, sizeof prefix, "schema %s: ", schema);

  run_in_schema(&r, "migrate", NULL);
  expect_exit(&r, 0);
  if (strncmp(r.out, prefix, strlen(prefix)) != 0 ||
      atoi(r.out + strlen(prefix)) < 1)
    fail_msg("esc migrate: expected \"%sN migration(s) applied\", got: %s",
             prefix, r.out);
  expect_out(&r, " applied");
  cli_result_release(&r);

  run_in_schema(&r, "migrate", NULL);
  expect_exit(&r, 0);
  expect_out(&r, prefix);
  expect_out(&r, "up to date");
  cli_result_release(&r);

  json_t *o[1];
  run_in_schema(&r, "migrate", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 1), 1);
  assert_string_equal(json_str(o[0], "schema"), schema);
  assert_int_equal(json_ll(o[0], "applied"), 0);
  free_json(o, 1);
  cli_result_release(&r);
}

static void append_checks_the_expected_version(void **state) {
  (void)state;
  cli_result r;
  run_in_schema(&r, "append", "cart-1", "Placed", "{\"sku\":\"A-1\"}",
                "--expected", "no-stream", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "cart-1 version 1");
  cli_result_release(&r);

  run_in_schema(&r, "append", "cart-1", "Placed", "{\"sku\":\"A-1\"}",
                "--expected", "no-stream", NULL);
  expect_exit(&r, 3);
  expect_err(&r, "cart-1");
  expect_err(&r, "stream is at 1");
  expect_err(&r, "(concurrency conflict)");
  cli_result_release(&r);

  run_in_schema(&r, "append", "cart-1", "Placed", "{}", "--expected", "5",
                NULL);
  expect_exit(&r, 3);
  expect_err(&r, "append to cart-1: expected version 5, stream is at 1");
  cli_result_release(&r);

  /* With --json stdout carries the error too. */
  json_t *o[1];
  run_in_schema(&r, "append", "cart-1", "Placed", "{}", "--expected", "0",
                "--json", NULL);
  expect_exit(&r, 3);
  assert_int_equal(parse_json_lines(&r, o, 1), 1);
  json_t *e = json_object_get(o[0], "error");
  assert_non_null(e);
  assert_string_equal(json_str(e, "code"), "conflict");
  assert_int_equal(json_ll(e, "exit"), 3);
  assert_non_null(strstr(json_str(e, "message"), "stream is at 1"));
  free_json(o, 1);
  cli_result_release(&r);

  /* Options may follow the operands, and a match succeeds. */
  run_in_schema(&r, "append", "cart-1", "ItemAdded", "{\"qty\":2}",
                "--expected", "1", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "cart-1 version 2");
  cli_result_release(&r);
}

static void read_prints_the_stream(void **state) {
  (void)state;
  cli_result r;
  char *lines[MAX_LINES];
  run_in_schema(&r, "read", "cart-1", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 2);
  /* VERSION  TYPE  vSCHEMA_VERSION  RECORDED_AT  DATA */
  assert_int_equal(strncmp(lines[0], "1  Placed  v1  ", 15), 0);
  assert_non_null(strstr(lines[0], "Z  {\"sku\":\"A-1\"}"));
  assert_int_equal(strncmp(lines[1], "2  ItemAdded  v1  ", 18), 0);
  assert_non_null(strstr(lines[1], "{\"qty\":2}"));
  cli_result_release(&r);

  json_t *o[4];
  size_t n = read_json("cart-1", o, 4);
  assert_int_equal(n, 2);
  static const char *const types[] = {"Placed", "ItemAdded"};
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(json_str(o[i], "stream"), "cart-1");
    assert_int_equal(json_ll(o[i], "version"), (long long)i + 1);
    assert_string_equal(json_str(o[i], "type"), types[i]);
    assert_int_equal(json_ll(o[i], "schema_version"), 1);
    assert_non_null(strchr(json_str(o[i], "position"), '/'));
    assert_true(json_is_object(json_object_get(o[i], "data")));
  }
  assert_string_equal(json_str(json_object_get(o[0], "data"), "sku"), "A-1");
  free_json(o, n);
}

/* Output cut at --limit says so on stderr, with how to go on; stdout
 * keeps only the items. Exactly at the end there is nothing to say. */
/* n events of an empty map appended to stream in one call. */
static void append_empty(esc_store *st, const char *stream, size_t n) {
  static const unsigned char empty_map = 0x80;
  esc_event_data ev[128];
  esc_error err = ESC_ERROR_INIT;
  esc_append_result res;
  assert_true(n <= 128);
  for (size_t i = 0; i < n; i++)
    ev[i] = (esc_event_data){esc_uuid_v4(), "Placed", 1, &empty_map, 1,
                             NULL, 0};
  if (esc_append(st, stream, ESC_EXPECT_ANY, ev, n, &res, &err))
    fail_msg("append to %s: %s", stream, err.msg);
}

/* The lines r printed on stdout (it exited 0), and whether stderr has
 * needle; releases r. */
static size_t lines_noting(cli_result *r, const char *needle, bool *noted) {
  expect_exit(r, 0);
  *noted = strstr(r->err, needle) != NULL;
  size_t n = count_of(r->out, "\n");
  cli_result_release(r);
  return n;
}

/* Without --limit, read, tail and streams stop at 100 and say so (they
 * used to stop there silently); --all and --limit 0 show everything. */
static void the_default_limit_of_100_says_so(void **state) {
  (void)state;
  char stream[32];
  bool noted = false;
  cli_result r;
  esc_store *st = esc_test_open_store(schema);
  append_empty(st, "hundred-1", 101);
  for (int i = 2; i <= 101; i++) {
    snprintf(stream, sizeof stream, "hundred-%d", i);
    append_empty(st, stream, 1);
  }
  esc_store_free(st);
  const char *events = "stopped at the limit of 100 events; more follow";
  run_in_schema(&r, "read", "hundred-1", "--json", NULL);
  assert_int_equal(lines_noting(&r, events, &noted), 100);
  assert_true(noted);
  run_in_schema(&r, "read", "hundred-1", "--all", "--json", NULL);
  assert_int_equal(lines_noting(&r, events, &noted), 101);
  assert_false(noted);
  run_in_schema(&r, "tail", "--category", "hundred", "--json", NULL);
  assert_int_equal(lines_noting(&r, events, &noted), 100);
  assert_true(noted);
  run_in_schema(&r, "tail", "--category", "hundred", "--limit", "0", "--json",
                NULL);
  assert_int_equal(lines_noting(&r, events, &noted), 201);
  assert_false(noted);
  const char *streams = "stopped at the limit of 100 streams; more follow";
  run_in_schema(&r, "streams", "--category", "hundred", "--json", NULL);
  assert_int_equal(lines_noting(&r, streams, &noted), 100);
  assert_true(noted);
  run_in_schema(&r, "streams", "--category", "hundred", "--all", "--json",
                NULL);
  assert_int_equal(lines_noting(&r, streams, &noted), 101);
  assert_false(noted);
}

static void a_limit_that_cuts_says_so(void **state) {
  (void)state;
  cli_result r;
  char *lines[MAX_LINES];
  const char *const appends[] = {"limit-1", "limit-1", "limit-2"};
  for (int i = 0; i < 3; i++) {
    run_in_schema(&r, "append", appends[i], "Placed", "{}", NULL);
    expect_exit(&r, 0);
    cli_result_release(&r);
  }
  run_in_schema(&r, "read", "limit-1", "--limit", "1", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 1);
  assert_non_null(strstr(r.err, "esc read: stopped at the limit of 1 events;"
                                " more follow (--from 2, or --all)"));
  cli_result_release(&r);
  run_in_schema(&r, "read", "limit-1", "--backward", "--limit", "1", NULL);
  assert_non_null(strstr(r.err, "(--from 1, or --all)"));
  cli_result_release(&r);
  run_in_schema(&r, "read", "limit-1", "--limit", "2", NULL);
  expect_exit(&r, 0);
  assert_null(strstr(r.err, "stopped"));
  cli_result_release(&r);
  run_in_schema(&r, "read", "limit-1", "--all", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 2);
  assert_null(strstr(r.err, "stopped"));
  cli_result_release(&r);

  run_in_schema(&r, "streams", "--category", "limit", "--limit", "1", NULL);
  expect_exit(&r, 0);
  assert_non_null(strstr(r.err, "esc streams: stopped at the limit of 1 "
                                "streams; more follow (the next is limit-2, or --all)"));
  cli_result_release(&r);
  run_in_schema(&r, "tail", "--limit", "1", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 1);
  assert_non_null(strstr(r.err, "esc tail: stopped at the limit of 1 events;"
                                " more follow (--from "));
  cli_result_release(&r);
  run_in_schema(&r, "tail", "--all", NULL);
  expect_exit(&r, 0);
  assert_null(strstr(r.err, "stopped"));
  cli_result_release(&r);
}

static void read_errors_have_their_codes(void **state) {
  (void)state;
  cli_result r;
  run_in_schema(&r, "read", "cart-404", NULL);
  expect_exit(&r, 4);
  expect_err(&r, "stream cart-404 does not exist");
  expect_err(&r, "(not found)");
  expect_empty_out(&r);
  cli_result_release(&r);

  expect_error(6, "stream id \"cart 1\"", "read", "cart 1", NULL);
  /* Names are checked before connecting: no server needed for a typo. */
  expect_error(6, "(invalid input)", "--pg", UNREACHABLE_PG, "read", "cart 1",
               NULL);
}

static void invalid_data_is_refused_and_nothing_stored(void **state) {
  (void)state;
  expect_error(6, "JSON", "append", "cart-1", "ItemAdded", "{\"qty\":", NULL);
  expect_error(6, "(invalid input)", "append", "cart-1", "Item Added", "{}",
               NULL);

  json_t *o[4];
  size_t n = read_json("cart-1", o, 4);
  assert_int_equal(n, 2);
  assert_int_equal(json_ll(o[1], "version"), 2);
  free_json(o, n);
}

/* JSON on stdin is refused past its bound before it is parsed (#11 item
 * 7): 60 MB of "[1,1,...]" once took 2.9 GB of memory (a JSON tree of
 * small values costs ~50 times its text) before the event size limit
 * refused it. Now the read stops at the bound and the process stays
 * small; nothing is stored. */
static void oversized_stdin_is_refused_while_read(void **state) {
  (void)state;
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "{ printf '['; yes '1,' | head -c 60000000; printf '1]'; } | "
           "'%s' --schema %s append big-1 Big - >/dev/null 2>/dev/null",
           ESC_CLI_PATH, schema);
  int status = system(cmd);
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 6); /* invalid input */
  fprintf(stderr, "largest child so far: %ld MB\n", ru.ru_maxrss / 1024);
  assert_true(ru.ru_maxrss < 400L * 1024); /* KB: far below 2.9 GB */
  cli_result r;
  run_in_schema(&r, "read", "big-1", NULL);
  assert_int_equal(r.status, 4); /* the stream was never created */
  cli_result_release(&r);
}

static void streams_and_stats_describe_the_store(void **state) {
  (void)state;
  cli_result r;
  char *lines[MAX_LINES];
  run_in_schema(&r, "streams", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 2);
  assert_int_equal(strncmp(lines[0], "STREAM ", 7), 0);
  assert_int_equal(strncmp(lines[1], "cart-1 ", 7), 0);
  assert_int_equal(atoi(lines[1] + 7), 2);
  cli_result_release(&r);

  json_t *o[4];
  run_in_schema(&r, "streams", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 4), 1);
  assert_string_equal(json_str(o[0], "stream"), "cart-1");
  assert_int_equal(json_ll(o[0], "version"), 2);
  free_json(o, 1);
  cli_result_release(&r);

  run_in_schema(&r, "stats", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "identity:");
  expect_out(&r, "\nevents:              2\n");
  expect_out(&r, "\nstreams:             1\n");
  cli_result_release(&r);

  run_in_schema(&r, "stats", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 4), 1);
  assert_string_equal(json_str(o[0], "schema"), schema);
  assert_int_equal(json_ll(o[0], "events"), 2);
  assert_int_equal(json_ll(o[0], "streams"), 1);
  assert_non_null(strchr(json_str(o[0], "head"), '/'));
  assert_int_equal(strlen(json_str(o[0], "identity")), 36); /* a UUID */
  free_json(o, 1);
  cli_result_release(&r);
}

static void tail_lists_the_appended_events(void **state) {
  (void)state;
  cli_result r;
  char *lines[MAX_LINES];
  run_in_schema(&r, "tail", NULL);
  expect_exit(&r, 0);
  assert_int_equal(split_lines(r.out, lines, MAX_LINES), 2);
  /* POSITION  STREAM@VERSION  TYPE  DATA */
  assert_non_null(strstr(lines[0], "  cart-1@1  Placed  {\"sku\":\"A-1\"}"));
  assert_non_null(strstr(lines[1], "  cart-1@2  ItemAdded  {\"qty\":2}"));
  cli_result_release(&r);

  /* --from continues after a printed position. */
  json_t *o[4];
  char first[64];
  run_in_schema(&r, "tail", "--category", "cart", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 4), 2);
  snprintf(first, sizeof first, "%s", json_str(o[0], "position"));
  assert_int_equal(json_ll(o[1], "version"), 2);
  free_json(o, 2);
  cli_result_release(&r);

  run_in_schema(&r, "tail", "--from", first, "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 4), 1);
  assert_string_equal(json_str(o[0], "type"), "ItemAdded");
  free_json(o, 1);
  cli_result_release(&r);
}

/* ------------------------------------------------------------------------
 * Projections, and a server that is not there
 * ------------------------------------------------------------------------ */

static void unknown_projections_are_not_found(void **state) {
  (void)state;
  cli_result r;
  expect_error(4, "no projection no_such_projection", "projections",
               "no_such_projection", NULL);
  expect_error(4, "no projection no_such_projection", "rebuild",
               "no_such_projection", NULL);
  /* A key prefix that could not be told apart from others is refused. */
  expect_error(6, "key prefix \"a:b\": byte 2 (':') is not allowed",
               "projections", "--key-prefix", "a:b", NULL);
  expect_error(6, "key prefix is empty", "metrics", "--key-prefix", "", NULL);

  run_in_schema(&r, "dead-letters", "list", "--json", NULL);
  expect_exit(&r, 0);
  expect_empty_out(&r);
  cli_result_release(&r);
}

static void an_unreachable_server_exits_5(void **state) {
  (void)state;
  cli_result r;
  expect_error(5, "esc: stats: connect", "--pg", UNREACHABLE_PG, "stats", NULL);

  json_t *o[1];
  run_in_schema(&r, "read", "cart-1", "--pg", UNREACHABLE_PG, "--json", NULL);
  expect_exit(&r, 5);
  assert_int_equal(parse_json_lines(&r, o, 1), 1);
  json_t *e = json_object_get(o[0], "error");
  assert_non_null(e);
  assert_string_equal(json_str(e, "code"), "connection");
  assert_int_equal(json_ll(e, "exit"), 5);
  free_json(o, 1);
  cli_result_release(&r);
}

/* Checks that out is Prometheus text: every sample line belongs to a
 * family declared by # HELP and # TYPE gauge lines just before it, and has
 * a numeric value. */
static void expect_prometheus_text(const cli_result *r) {
  char *copy = strdup(r->out), *lines[1024], family[96] = "";
  assert_non_null(copy);
  size_t n = split_lines(copy, lines, 1024);
  assert_true(n > 0 && n < 1024);
  for (size_t i = 0; i < n; i++) {
    char name[96], type[16];
    if (sscanf(lines[i], "# HELP %95s", name) == 1) {
      assert_true(i + 1 < n);
      assert_int_equal(sscanf(lines[i + 1], "# TYPE %95s %15s", family, type),
                       2);
      assert_string_equal(family, name);
      assert_string_equal(type, "gauge");
      i++;
      continue;
    }
    size_t len = strcspn(lines[i], "{");
    const char *close = strstr(lines[i], "} ");
    if (len != strlen(family) || strncmp(lines[i], family, len) != 0 || !close)
      fail_msg("line %zu is not a sample of %s: %s", i, family, lines[i]);
    char *end;
    strtod(close + 2, &end);
    if (end == close + 2 || *end != '\0')
      fail_msg("line %zu has no numeric value: %s", i, lines[i]);
  }
  free(copy);
}

/* Last: it adds a projection (and its events) to the schema. */
static void metrics_are_prometheus_gauges(void **state) {
  (void)state;
  char line[160], name[32];
  cli_result r;
  run_in_schema(&r, "metrics", NULL);
  expect_exit(&r, 0);
  expect_prometheus_text(&r);
  snprintf(line, sizeof line, "esc_store_head_position{schema=\"%s\"} 2\n",
           schema);
  expect_out(&r, line);
  assert_null(strstr(r.out, "esc_projection_")); /* none registered yet */
  cli_result_release(&r);

  /* A projection a worker has built shows up, one sample per gauge. */
  snprintf(name, sizeof name, "tcli%d", (int)getpid());
  esc_store *st = esc_test_open_store(schema);
  int64_t sum = tally_append(st, "m", 2, 10);
  esc_store_free(st);
  assert_true(sum > 0);
  esc_projection p;
  tally_projection(&p, name, 1, 1);
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  assert_int_equal(esc_worker_add(w, &p, &err), ESC_OK);
  if (esc_worker_run_until_caught_up(w, 30000, &err) != ESC_OK)
    fail_msg("worker: %s", err.msg);
  esc_worker_free(w);

  run_in_schema(&r, "metrics", NULL);
  expect_exit(&r, 0);
  expect_prometheus_text(&r);
  snprintf(line, sizeof line,
           "esc_projection_lag_events{schema=\"%s\",projection=\"%s\","
           "partition=\"0\"} 0\n",
           schema, name);
  expect_out(&r, line);
  snprintf(line, sizeof line,
           "esc_projection_lease_held{schema=\"%s\",projection=\"%s\","
           "partition=\"0\"} 0\n",
           schema, name);
  expect_out(&r, line); /* the worker is gone */
  snprintf(line, sizeof line,
           "esc_projection_foreign{schema=\"%s\",projection=\"%s\","
           "partition=\"0\"} 0\n",
           schema, name);
  expect_out(&r, line); /* its keys are this store's */
  snprintf(line, sizeof line, "esc_store_head_position{schema=\"%s\"} 12\n",
           schema);
  expect_out(&r, line);
  cli_result_release(&r);

  expect_error(2, "Prometheus", "metrics", "--json", NULL);
  /* Without Redis the metrics still come (monitoring never goes blind):
   * Redis said to be unreachable, the Redis-derived gauges left out
   * rather than printed as 0, what PostgreSQL knows kept. */
  run_in_schema(&r, "metrics", "--redis", "redis://127.0.0.1:1", NULL);
  assert_int_equal(r.status, 0);
  snprintf(line, sizeof line, "esc_redis_reachable{schema=\"%s\"} 0\n", schema);
  expect_out(&r, line);
  snprintf(line, sizeof line,
           "esc_projection_lag_events{schema=\"%s\",projection=\"%s\"", schema,
           name);
  assert_null(strstr(r.out, line));
  snprintf(line, sizeof line,
           "esc_projection_lease_held{schema=\"%s\",projection=\"%s\","
           "partition=\"0\"} 0\n",
           schema, name);
  expect_out(&r, line);
  cli_result_release(&r);

  /* The projection's keys go with the test. */
  char prefix[ESC_TEST_KEY_BASE_SIZE + 2], base[ESC_TEST_KEY_BASE_SIZE];
  snprintf(prefix, sizeof prefix, "%s:",
           esc_test_key_base(schema, name, base, sizeof base));
  redisContext *c = esc_test_redis(NULL);
  esc_test_redis_delete_prefix(c, prefix);
  redisFree(c);
}

/* A worker in our schema of the n projections p (borrowed: they must
 * outlive it), taking a free lease within 100 ms. */
static esc_worker *new_worker(const esc_projection *p, size_t n) {
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  esc_error err = ESC_ERROR_INIT;
  o.schema = schema;
  o.lease_poll_ms = 100;
  esc_worker *w = esc_worker_new(&o, &err);
  assert_non_null(w);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(esc_worker_add(w, &p[i], &err), ESC_OK);
  return w;
}

/* esc rebuild --wait follows a rebuild a worker does until it serves. */
static void rebuild_waits_for_the_switch(void **state) {
  (void)state;
  char name[32], prefix[ESC_TEST_KEY_BASE_SIZE + 2], want[96];
  char base[ESC_TEST_KEY_BASE_SIZE];
  snprintf(name, sizeof name, "tcliw%d", (int)getpid());
  esc_test_key_base(schema, name, base, sizeof base);
  esc_projection p;
  tally_projection(&p, name, 1, 2);
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = new_worker(&p, 1);
  assert_int_equal(esc_worker_run_until_caught_up(w, 30000, &err), ESC_OK);
  redisContext *c = esc_test_redis(NULL);
  long long before = esc_test_redis_ll(c, 0, "GET %s:generation", base);
  esc_test_worker_thread r;
  esc_test_worker_thread_start(&r, w);

  cli_result res;
  run_in_schema(&res, "rebuild", name, "--wait", "--timeout", "60", NULL);
  esc_status worked = esc_test_worker_thread_stop(&r);
  esc_worker_free(w);
  expect_exit(&res, 0);
  long long after = esc_test_redis_ll(c, 0, "GET %s:generation", base);
  assert_true(after > before);
  snprintf(want, sizeof want, "rebuild of %s done: generation %lld serves\n",
           name, after);
  expect_out(&res, want);
  cli_result_release(&res);
  assert_int_equal(worked, ESC_OK);

  expect_error(2, "--timeout", "rebuild", name, "--wait", "--timeout", "0",
               NULL);
  snprintf(prefix, sizeof prefix, "%s:", base);
  esc_test_redis_delete_prefix(c, prefix);
  redisFree(c);
}

/* ------------------------------------------------------------------------
 * Dead letters in bulk, and esc projections --watch (#14 item 5)
 * ------------------------------------------------------------------------ */

static char dl_a[32], dl_b[32]; /* two tally projections that park poison */

static int compare_words(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs esc --schema <ours> ARGS... (exit 0, ARGS with --json) and puts
 * the letters it printed into out, sorted: "a:y:parked b:z:retry" for a
 * letter of dl_a on stream tally-dly that is parked, and so on. */
static void letters_json(char *out, size_t size, const char *first, ...)
    SENTINEL;
static void letters_json(char *out, size_t size, const char *first, ...) {
  cli_result r;
  va_list ap;
  va_start(ap, first);
  run_va(&r, true, first, ap);
  va_end(ap);
  expect_exit(&r, 0);
  json_t *o[MAX_LINES];
  char words[MAX_LINES][48], *sorted[MAX_LINES];
  size_t n = parse_json_lines(&r, o, MAX_LINES);
  for (size_t i = 0; i < n; i++) {
    const char *proj = json_str(o[i], "projection");
    const char *stream = json_str(o[i], "stream");
    snprintf(words[i], sizeof words[i], "%s:%c:%s",
             strcmp(proj, dl_a) == 0   ? "a"
             : strcmp(proj, dl_b) == 0 ? "b"
                                       : proj,
             stream[strlen(stream) - 1], json_str(o[i], "state"));
    sorted[i] = words[i];
  }
  free_json(o, n);
  cli_result_release(&r);
  qsort(sorted, n, sizeof *sorted, compare_words);
  out[0] = '\0';
  for (size_t i = 0, at = 0; i < n && at < size; i++)
    at += (size_t)snprintf(out + at, size - at, "%s%s", i ? " " : "",
                           sorted[i]);
}

#define EXPECT_LETTERS(want, ...)                                              \
  do {                                                                         \
    char got_[512];                                                            \
    letters_json(got_, sizeof got_, __VA_ARGS__, "--json", NULL);              \
    assert_string_equal(got_, want);                                           \
  } while (0)

/* A worker of both projections (it borrows them: they are static). */
static esc_worker *dl_worker(void) {
  static esc_projection p[2];
  tally_projection(&p[0], dl_a, 1, 1);
  tally_projection(&p[1], dl_b, 1, 1);
  return new_worker(p, 2);
}

/* Poison events on tally-dlx, -dly and -dlz parked by both projections:
 * six letters, the ones of tally-dlx parked three hours ago. */
static void park_six_letters(void) {
  char sql[256];
  esc_store *st = esc_test_open_store(schema);
  tally_append_one(st, "tally-dlx", 1, "poison");
  tally_append_one(st, "tally-dly", 1, "poison");
  tally_append_one(st, "tally-dlz", 1, "poison");
  esc_test_await_readable(st, "tally");
  esc_store_free(st);
  esc_error err = ESC_ERROR_INIT;
  esc_worker *w = dl_worker();
  if (esc_worker_run_until_caught_up(w, 30000, &err) != ESC_OK)
    fail_msg("worker: %s", err.msg);
  esc_worker_free(w);
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql,
           "UPDATE %s.dead_letters SET parked_at = now() - interval '3 hours'"
           " WHERE stream_id = 'tally-dlx'",
           schema);
  esc_test_exec(c, sql);
  PQfinish(c);
}

static void bulk_selectors_select_exactly(void) {
  cli_result r;
  expect_error(2, "which letters?", "dead-letters", "retry", NULL);
  expect_error(2, "which letters?", "dead-letters", "discard", "--dry-run",
               NULL);
  expect_error(2, "not both", "dead-letters", "retry", "1", "--all", NULL);
  expect_error(2, "--since: 'soon' is not a duration", "dead-letters", "retry",
               "--since", "soon", NULL);
  /* A dry run lists exactly what matches and changes nothing. */
  EXPECT_LETTERS("a:y:parked", "dead-letters", "retry", "--projection", dl_a,
                 "--error-like", "%dly%", "--dry-run");
  EXPECT_LETTERS("a:x:parked a:y:parked a:z:parked b:x:parked b:y:parked "
                 "b:z:parked",
                 "dead-letters", "list");
  run_in_schema(&r, "dead-letters", "retry", "--since", "1h", "--dry-run",
                NULL);
  expect_exit(&r, 0);
  expect_out(&r, "would retry 4 dead letters (dry run)\n");
  assert_null(strstr(r.out, "tally-dlx"));
  cli_result_release(&r);
  run_in_schema(&r, "dead-letters", "retry", "--since",
                "2099-01-01T00:00:00Z", NULL);
  expect_exit(&r, 0);
  expect_empty_out(&r);
  expect_err(&r, "no open dead letter matches");
  cli_result_release(&r);

  EXPECT_LETTERS("b:y:retry b:z:retry", "dead-letters", "retry", "--since",
                 "1h", "--projection", dl_b);
  run_in_schema(&r, "dead-letters", "discard", "--error-like", "%dlx%", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "2 dead letters: discarded\n");
  cli_result_release(&r);
  /* Retry takes parked letters, discard those awaiting retry too. */
  EXPECT_LETTERS("a:y:parked a:z:parked", "dead-letters", "retry", "--all",
                 "--dry-run");
  EXPECT_LETTERS("a:y:parked a:z:parked b:y:retry b:z:retry", "dead-letters",
                 "discard", "--all", "--dry-run");
  EXPECT_LETTERS("a:y:retry a:z:retry", "dead-letters", "retry", "--all");
  run_in_schema(&r, "dead-letters", "retry", "--all", "--json", NULL);
  expect_exit(&r, 0);
  expect_empty_out(&r);
  expect_err(&r, "no open dead letter matches");
  cli_result_release(&r);
}

/* A single ID takes the same path and keeps its refusals. */
static void one_id_keeps_its_refusals(void) {
  char sql[160], id[24];
  PGconn *c = esc_test_pg();
  snprintf(sql, sizeof sql,
           "SELECT min(id) FROM %s.dead_letters WHERE state = 'discarded'",
           schema);
  snprintf(id, sizeof id, "%lld", esc_test_query_ll(c, sql));
  PQfinish(c);
  expect_error(6, "it is discarded; only a parked letter can be retried",
               "dead-letters", "retry", id, NULL);
  expect_error(6, "it is discarded already", "dead-letters", "discard", id,
               "--dry-run", NULL);
  expect_error(4, "no dead letter 987654321", "dead-letters", "discard",
               "987654321", NULL);
}

/* Retry and discard are the owner's: the store's writer and reader
 * roles are refused, saying so, and nothing changes; they may list. */
static void bulk_actions_are_the_owners(void) {
  char sql[160], url[1024];
  PGconn *c = esc_test_pg();
  const char *base = esc_test_pg_url();
  for (int reader = 0; reader < 2; reader++) {
    snprintf(sql, sizeof sql, "SELECT %s FROM %s.store_roles",
             reader ? "reader" : "writer", schema);
    char *role = esc_test_query_text(c, sql);
    snprintf(url, sizeof url, "%s%soptions=-crole%%3D%s", base,
             strchr(base, '?') ? "&" : "?", role);
    free(role);
    expect_error(1, "retry and discard need the schema owner's role", "--pg",
                 url, "dead-letters", "discard", "--all", NULL);
    expect_error(1, "retry and discard need the schema owner's role", "--pg",
                 url, "dead-letters", "retry", "--projection", dl_a,
                 "--dry-run", NULL);
    EXPECT_LETTERS("a:y:retry a:z:retry b:y:retry b:z:retry", "--pg", url,
                   "dead-letters", "list");
  }
  PQfinish(c);
}

static void dead_letters_in_bulk(void **state) {
  (void)state;
  char got[512];
  snprintf(dl_a, sizeof dl_a, "tdla%d", (int)getpid());
  snprintf(dl_b, sizeof dl_b, "tdlb%d", (int)getpid());
  park_six_letters();
  bulk_selectors_select_exactly();
  one_id_keeps_its_refusals();
  bulk_actions_are_the_owners();

  /* With the handler fixed, a worker resolves the ones awaiting retry. */
  tally_poison_cured = 1;
  esc_worker *w = dl_worker();
  esc_test_worker_thread t;
  esc_test_worker_thread_start(&t, w);
  const char *want = "a:x:discarded a:y:resolved a:z:resolved b:x:discarded "
                     "b:y:resolved b:z:resolved";
  long long deadline = esc_test_now_ms() + 30000;
  do {
    esc_test_sleep_ms(200);
    letters_json(got, sizeof got, "dead-letters", "list", "--all", "--json",
                 NULL);
  } while (strcmp(got, want) != 0 && esc_test_now_ms() < deadline);
  assert_int_equal(esc_test_worker_thread_stop(&t), ESC_OK);
  esc_worker_free(w);
  tally_poison_cured = 0;
  assert_string_equal(got, want);
}

/* Runs esc --schema <ours> ARGS... until its stdout holds `times` copies
 * of needle, then stops it with SIGTERM and collects the rest. */
static void run_until_seen(cli_result *r, const char *needle, size_t times,
                           const char *first, ...) SENTINEL;
static void run_until_seen(cli_result *r, const char *needle, size_t times,
                           const char *first, ...) {
  const char *argv[MAX_ARGS] = {"esc", "--schema", schema};
  size_t n = 3;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && n < MAX_ARGS - 1; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  int fds[2];
  pid_t pid = spawn_esc(r, (char *const *)argv, &fds[0], &fds[1]);
  buf out = {NULL, 0, 0}, err = {NULL, 0, 0};
  buf *bufs[2] = {&out, &err};
  long long deadline = esc_test_now_ms() + RUN_TIMEOUT_MS;
  while (fds[0] >= 0 && esc_test_now_ms() < deadline &&
         (!out.data || count_of(out.data, needle) < times)) {
    struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (poll(p, 2, 100) < 0 && errno != EINTR)
      fail_msg("poll: %s", strerror(errno));
    for (int i = 0; i < 2; i++)
      if (fds[i] >= 0 && p[i].revents)
        buf_read_from(bufs[i], &fds[i]);
  }
  kill(pid, SIGTERM);
  collect(fds[0], fds[1], &out, &err, deadline);
  r->status = wait_exit(pid, deadline);
  r->out = out.data ? out.data : strdup("");
  r->err = err.data ? err.data : strdup("");
  if (count_of(r->out, needle) < times)
    fail_msg("esc %s: \"%s\" not %zu times:\n%s", r->cmdline, needle, times,
             r->out);
}

/* Each of the first `complete` refreshes of out (after its header)
 * contains needle. */
static void each_refresh_has(const cli_result *r, size_t complete,
                             const char *needle) {
  const char *header = "esc projections at ";
  const char *at = strstr(r->out, header);
  for (size_t i = 0; i < complete; i++) {
    assert_non_null(at);
    const char *next = strstr(at + 1, header);
    const char *found = strstr(at, needle);
    if (!found || (next && found > next))
      fail_msg("esc %s: refresh %zu lacks \"%s\":\n%s", r->cmdline, i + 1,
               needle, r->out);
    at = next;
  }
}

/* After dead_letters_in_bulk: its projections are registered. */
static void projections_watch_refreshes_until_stopped(void **state) {
  (void)state;
  cli_result r;
  run_until_seen(&r, "esc projections at ", 3, "projections", "--watch",
                 "--interval", "0.2", NULL);
  expect_exit(&r, 0);
  each_refresh_has(&r, 2, "PROJECTION  PART  STATE");
  each_refresh_has(&r, 2, dl_a);
  assert_null(strstr(r.out, "\033[")); /* not a terminal: no clearing */
  assert_non_null(strstr(r.out, "\n\nesc projections at "));
  cli_result_release(&r);

  /* Monitoring never goes blind: Redis down is shown, every time. */
  run_until_seen(&r, "esc projections at ", 3, "projections", "--watch",
                 "--interval", "0.2", "--redis", "redis://127.0.0.1:1", NULL);
  expect_exit(&r, 0);
  each_refresh_has(&r, 2, "Redis unreachable");
  cli_result_release(&r);
  run_until_seen(&r, "esc projections at ", 3, "projections", "--watch",
                 "--interval", "0.2", "--pg", UNREACHABLE_PG, NULL);
  expect_exit(&r, 0);
  each_refresh_has(&r, 2, "error: connect");
  cli_result_release(&r);

  /* --count N: N refreshes, then exit 0 by itself; every second by
   * default (the header says so). */
  run_in_schema(&r, "projections", "--watch", "--count", "2", NULL);
  expect_exit(&r, 0);
  assert_int_equal(count_of(r.out, "esc projections at "), 2);
  assert_int_equal(count_of(r.out, "(every 1.0 s)"), 2);
  each_refresh_has(&r, 2, dl_a);
  cli_result_release(&r);
  run_in_schema(&r, "--json", "projections", dl_a, "--watch", "--interval",
                "0.2", "--count", "3", NULL);
  expect_exit(&r, 0);
  assert_int_equal(count_of(r.out, "\"projection\":"), 3);
  assert_null(strstr(r.out, "esc projections at "));
  cli_result_release(&r);
  expect_error(2, "--count: expected an integer", "projections", "--watch",
               "--count", "0", NULL);
  expect_error(2, "--count goes with --watch", "projections", "--count", "2",
               NULL);

  expect_error(2, "--interval: expected seconds from 0.2 to 60", "projections",
               "--watch", "--interval", "0.1", NULL);
  expect_error(2, "--interval goes with --watch", "projections", "--interval",
               "1", NULL);

  char prefix[ESC_TEST_KEY_BASE_SIZE + 2], base[ESC_TEST_KEY_BASE_SIZE];
  redisContext *c = esc_test_redis(NULL);
  const char *names[] = {dl_a, dl_b};
  for (int i = 0; i < 2; i++) {
    snprintf(prefix, sizeof prefix, "%s:",
             esc_test_key_base(schema, names[i], base, sizeof base));
    esc_test_redis_delete_prefix(c, prefix);
  }
  redisFree(c);
}

/* ------------------------------------------------------------------------
 * Retention policies (#11 item 3)
 * ------------------------------------------------------------------------ */

static size_t ret_events(json_t **objs, size_t max) {
  return read_json("ret-1", objs, max);
}

/* esc retention run --archive path fails with code, and removes nothing. */
static void expect_archive_fails(const char *path, int code,
                                 const char *needle) {
  json_t *o[8];
  expect_error(code, needle, "retention", "run", "--archive", path, NULL);
  assert_int_equal(ret_events(o, 8), 4);
  free_json(o, 4);
  assert_int_equal(access(path, F_OK), -1); /* no half archive left */
}

/* A file size limit makes the archive's writes fail (EFBIG: SIGXFSZ is
 * ignored, and exec keeps it so) while everything else works. */
static void expect_archive_write_fails(const char *path) {
  struct rlimit old, small = {300, 300};
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small.rlim_max = old.rlim_max;
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  cli_result r;
  run_in_schema(&r, "retention", "run", "--archive", path, NULL);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, was);
  expect_exit(&r, 1);
  expect_err(&r, "cannot write");
  cli_result_release(&r);
  json_t *o[8];
  assert_int_equal(ret_events(o, 8), 4);
  free_json(o, 4);
  assert_int_equal(access(path, F_OK), -1);
}

static void retention_bad_input_is_refused(void) {
  expect_error(2, "--max-age: '5x' is not a duration", "retention", "set",
               "ret", "--max-age", "5x", NULL);
  expect_error(2, "--max-age: '0d' is out of range", "retention", "set", "ret",
               "--max-age", "0d", NULL);
  expect_error(2, "--max-count: expected an integer >= 1, got '-1'",
               "retention", "set", "ret", "--max-count", "-1", NULL);
  expect_error(2, "give --max-age D, --max-count N or both", "retention", "set",
               "ret", NULL);
  expect_error(4, "stream nope-1 does not exist", "retention", "set", "nope-1",
               "--max-count", "1", NULL);
  expect_error(4, "category nocat has no streams", "retention", "set", "nocat",
               "--max-count", "1", NULL);
  expect_error(4, "no retention policy for category ret", "retention", "remove",
               "ret", NULL);
  expect_error(2, "a dry run removes nothing", "retention", "run", "--dry-run",
               "--archive", "x", NULL);
}

static void retention_set_show_and_dry_run(void) {
  cli_result r;
  json_t *o[8];
  run_in_schema(&r, "retention", "set", "ret", "--max-count", "1", "--json",
                NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 8), 1);
  assert_string_equal(json_str(o[0], "scope"), "category");
  assert_int_equal(json_ll(o[0], "max_count"), 1);
  free_json(o, 1);
  cli_result_release(&r);
  run_in_schema(&r, "retention", "show", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "category  ret ");
  expect_out(&r, "max-count 1");
  cli_result_release(&r);
  run_in_schema(&r, "retention", "run", "--dry-run", "--json", NULL);
  expect_exit(&r, 0);
  assert_int_equal(parse_json_lines(&r, o, 8), 2);
  assert_string_equal(json_str(o[0], "stream"), "ret-1");
  assert_int_equal(json_ll(o[0], "events"), 3);
  assert_true(json_is_true(json_object_get(o[0], "dry_run")));
  assert_int_equal(json_ll(o[1], "events"), 3);
  free_json(o, 2);
  cli_result_release(&r);
  assert_int_equal(ret_events(o, 8), 4);
  free_json(o, 4);
}

/* The archive holds exactly the removed events, as esc read printed them. */
static void expect_archive_holds(const char *path, json_t **before) {
  FILE *f = fopen(path, "r");
  char line[2048];
  int n = 0;
  assert_non_null(f);
  while (fgets(line, sizeof line, f)) {
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    assert_true(n < 3 && json_is_object(o));
    assert_true(json_equal(o, before[n]));
    json_decref(o);
    n++;
  }
  fclose(f);
  assert_int_equal(n, 3);
}

/* A snapshot of stream at version, as a decider would store it: without
 * one a truncation is refused (migration 15). */
static void snapshot_at(const char *stream, int64_t version) {
  static const unsigned char state[] = {0x80}; /* {} */
  esc_error err = ESC_ERROR_INIT;
  esc_store *st = esc_test_open_store(schema);
  if (esc_snapshot_write(st, stream, version, 1, state, sizeof state, &err))
    fail_msg("snapshot %s: %s", stream, err.msg);
  esc_store_free(st);
}

static void append_ticks(const char *stream, int n) {
  cli_result r;
  for (int i = 0; i < n; i++) {
    run_in_schema(&r, "append", stream, "Tick", "{\"n\":1}", NULL);
    expect_exit(&r, 0);
    cli_result_release(&r);
  }
}

static void retention_run_archives_then_removes(void **state) {
  (void)state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/esc_cli_archive_%d.jsonl", (int)getpid());
  unlink(path);
  cli_result r;
  append_ticks("ret-1", 4);
  snapshot_at("ret-1", 4);
  retention_bad_input_is_refused();
  retention_set_show_and_dry_run();
  expect_archive_fails("/nonexistent-dir/a.jsonl", 6, "cannot create it");
  expect_archive_write_fails(path);

  json_t *before[8];
  assert_int_equal(ret_events(before, 8), 4);
  run_in_schema(&r, "retention", "run", "--archive", path, NULL);
  expect_exit(&r, 0);
  expect_out(&r, "ret-1");
  expect_out(&r, "removed 3 events below version 4");
  expect_out(&r, "archived 3 events to");
  cli_result_release(&r);
  expect_archive_holds(path, before);
  free_json(before, 4);
  json_t *after[8];
  assert_int_equal(ret_events(after, 8), 1);
  assert_int_equal(json_ll(after[0], "version"), 4);
  free_json(after, 1);
  /* An archive is never overwritten. */
  expect_error(6, "exists already", "retention", "run", "--archive", path,
               NULL);
  unlink(path);
  run_in_schema(&r, "retention", "remove", "ret", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "removed the retention policy of category ret");
  cli_result_release(&r);
}

/* esc truncate and esc retention run refuse to remove what no snapshot
 * covers, and remove nothing, unless --force; the log says [forced]. On
 * the old main both removed the events and exited 0. */
static void truncation_needs_a_snapshot_or_force(void **state) {
  (void)state;
  cli_result r;
  json_t *o[8];
  append_ticks("trn-1", 3);
  expect_error(1, "no snapshot covers version 2", "truncate", "trn-1",
               "--before", "3", NULL);
  run_in_schema(&r, "truncate", "trn-1", "--before", "3", "--json", NULL);
  expect_exit(&r, 1);
  expect_err(&r, "add --force");
  expect_out(&r, "\"code\":\"truncated\"");
  cli_result_release(&r);
  assert_int_equal(read_json("trn-1", o, 8), 3);
  free_json(o, 3);
  run_in_schema(&r, "truncate", "trn-1", "--before", "3", "--force", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "truncated trn-1 before version 3: 2 events removed");
  cli_result_release(&r);
  assert_int_equal(read_json("trn-1", o, 8), 1);
  free_json(o, 1);

  /* A policy run: refused, the rest done, exit 1; --force removes. */
  append_ticks("trn-1", 2);
  run_in_schema(&r, "retention", "set", "trn", "--max-count", "1", NULL);
  expect_exit(&r, 0);
  cli_result_release(&r);
  run_in_schema(&r, "retention", "run", NULL);
  expect_exit(&r, 1);
  expect_out(&r, "trn-1");
  expect_out(&r, "refused: no snapshot covers versions below 5");
  expect_out(&r, "refused 1 stream no snapshot covers");
  expect_err(&r, "1 stream refused, trn-1 the first");
  expect_err(&r, "add --force");
  cli_result_release(&r);
  assert_int_equal(read_json("trn-1", o, 8), 3);
  free_json(o, 3);
  run_in_schema(&r, "retention", "run", "--force", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "removed 2 events below version 5");
  cli_result_release(&r);
  assert_int_equal(read_json("trn-1", o, 8), 1);
  free_json(o, 1);
  run_in_schema(&r, "retention", "remove", "trn", NULL);
  expect_exit(&r, 0);
  cli_result_release(&r);
}

/* ------------------------------------------------------------------------ */

/* esc append --batch FILE --atomic (issue #21 item 1): one request per
 * stream, all or nothing; a conflict names every stale stream; the same
 * ids again are duplicates; bad lines are refused with their number. */
static void write_lines(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void append_batch_is_atomic(void **state) {
  (void)state;
  char path[64];
  cli_result r;
  snprintf(path, sizeof path, "/tmp/esc_cli_batch_%d.jsonl", (int)getpid());
  write_lines(path, "{\"stream\":\"batch-1\",\"type\":\"Debited\",\"data\":{},"
                    "\"expected\":\"no-stream\","
                    "\"id\":\"6f1c7a0e-3b2d-4c1a-9e8f-0a1b2c3d4e5f\"}\n"
                    "{\"stream\":\"batch-2\",\"type\":\"Credited\",\"data\":{},"
                    "\"id\":\"6f1c7a0e-3b2d-4c1a-9e8f-0a1b2c3d4e60\"}\n");
  for (int i = 0; i < 2; i++) { /* the second run is a duplicate */
    run_in_schema(&r, "append", "--batch", path, "--atomic", NULL);
    expect_exit(&r, 0);
    expect_out(&r, "appended batch-1 versions 1..1");
    expect_out(&r, "appended batch-2 versions 1..1");
    if (i == 1)
      expect_out(&r, "duplicate");
    cli_result_release(&r);
  }
  write_lines(path, "{\"stream\":\"batch-1\",\"type\":\"X\",\"data\":{},"
                    "\"expected\":5}\n"
                    "{\"stream\":\"batch-3\",\"type\":\"X\",\"data\":{}}\n"
                    "{\"stream\":\"batch-2\",\"type\":\"X\",\"data\":{},"
                    "\"expected\":\"no-stream\"}\n");
  run_in_schema(&r, "append", "--batch", path, "--atomic", NULL);
  expect_exit(&r, 3);
  expect_err(&r, "batch-1 (expected version 5, actual 1)");
  expect_err(&r, "batch-2 (expected no stream, actual 1)");
  cli_result_release(&r);
  run_in_schema(&r, "read", "batch-3", NULL);
  expect_exit(&r, 4); /* nothing of the refused batch was stored */
  cli_result_release(&r);

  write_lines(path, "{\"stream\":\"batch-4\",\"type\":\"X\",\"data\":{}}\n"
                    "{\"stream\":\"batch-4\",\"type\":\"Bad Type\","
                    "\"data\":{}}\n");
  expect_error(6, "line 2", "append", "--batch", path, "--atomic", NULL);
  expect_error(2, "--atomic", "append", "--atomic", "batch-4", "X", "{}", NULL);
  unlink(path);
}

/* esc append --tag, esc read --tag [--type] --json and its token, esc
 * append --condition-tag --after (issue #21 items 2-3): a condition
 * holds once, then fails with exit 3 naming the event; batch lines carry
 * "tags"; bad tags are refused on the command line and in a line. */
static void token_of(const cli_result *r, char *out, size_t size) {
  const char *p = strstr(r->out, "{\"token\":\"");
  assert_non_null(p);
  p += strlen("{\"token\":\"");
  size_t n = strcspn(p, "\"");
  assert_true(n > 0 && n < size);
  memcpy(out, p, n);
  out[n] = '\0';
}

static void append_tagged_and_conditional(void **state) {
  (void)state;
  char token[ESC_TAG_QUERY_TOKEN_MAX], path[64];
  cli_result r;
  run_in_schema(&r, "append", "cpn-1", "Redeemed", "{}", "--tag", "coupon:C1",
                "--tag", "order:1", NULL);
  expect_exit(&r, 0);
  cli_result_release(&r);
  run_in_schema(&r, "read", "--tag", "coupon:C1", "--type", "Redeemed",
                "--json", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "\"stream\":\"cpn-1\"");
  token_of(&r, token, sizeof token);
  cli_result_release(&r);
  for (int i = 0; i < 2; i++) { /* the second finds the first's event */
    char stream[16];
    snprintf(stream, sizeof stream, "cpn-%d", i + 2);
    run_in_schema(&r, "append", stream, "Redeemed", "{}", "--tag", "coupon:C1",
                  "--condition-tag", "coupon:C1", "--condition-type",
                  "Redeemed", "--after", token, NULL);
    expect_exit(&r, i == 0 ? 0 : 3);
    if (i == 1)
      expect_err(&r, "coupon:C1 of type Redeemed\" failed: event");
    if (i == 1)
      expect_err(&r, "cpn-2 version 1");
    cli_result_release(&r);
  }
  snprintf(path, sizeof path, "/tmp/esc_cli_tags_%d.jsonl", (int)getpid());
  write_lines(path, "{\"stream\":\"cpn-4\",\"type\":\"T\",\"data\":{},"
                    "\"tags\":[\"batch:1\"]}\n");
  run_in_schema(&r, "append", "--batch", path, NULL);
  expect_exit(&r, 0);
  cli_result_release(&r);
  run_in_schema(&r, "read", "--tag", "batch:1", NULL);
  expect_exit(&r, 0);
  expect_out(&r, "cpn-4@1  T");
  expect_out(&r, "token: ");
  cli_result_release(&r);
  write_lines(path, "{\"stream\":\"cpn-5\",\"type\":\"T\",\"data\":{},"
                    "\"tags\":[\"no key\"]}\n");
  expect_error(6, "line 1: tag \"no key\"", "append", "--batch", path, NULL);
  unlink(path);
  expect_error(2, "--tag: tag \"k y:v\"", "append", "cpn-6", "T", "{}", "--tag",
               "k y:v", NULL);
  expect_error(2, "--after", "append", "cpn-6", "T", "{}", "--condition-tag",
               "coupon:C1", NULL);
}

static int setup(void **state) {
  (void)state;
  snprintf(schema, sizeof schema, "t_cli_%d", (int)getpid());
  esc_test_drop_schema(schema); /* a leftover of a crashed run */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_drop_schema(schema);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(help_lists_commands_and_each_has_help),
      cmocka_unit_test(unknown_command_and_options_are_usage_errors),
      cmocka_unit_test(migrate_applies_then_is_up_to_date),
      cmocka_unit_test(append_checks_the_expected_version),
      cmocka_unit_test(read_prints_the_stream),
      cmocka_unit_test(read_errors_have_their_codes),
      cmocka_unit_test(invalid_data_is_refused_and_nothing_stored),
      cmocka_unit_test(oversized_stdin_is_refused_while_read),
      cmocka_unit_test(streams_and_stats_describe_the_store),
      cmocka_unit_test(tail_lists_the_appended_events),
      cmocka_unit_test(unknown_projections_are_not_found),
      cmocka_unit_test(an_unreachable_server_exits_5),
      cmocka_unit_test(metrics_are_prometheus_gauges),
      cmocka_unit_test(rebuild_waits_for_the_switch),
      cmocka_unit_test(dead_letters_in_bulk),
      cmocka_unit_test(projections_watch_refreshes_until_stopped),
      cmocka_unit_test(retention_run_archives_then_removes),
      cmocka_unit_test(truncation_needs_a_snapshot_or_force),
      cmocka_unit_test(append_batch_is_atomic),
      cmocka_unit_test(append_tagged_and_conditional),
      /* last: it adds streams the tests above count */
      cmocka_unit_test(a_limit_that_cuts_says_so),
      cmocka_unit_test(the_default_limit_of_100_says_so),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * Integration: the console's dead-letter actions against a real `esc
 * console` process (ESC_CLI_PATH), PostgreSQL and a worker on Redis.
 * Read-only by default: a POST is 403 whatever its headers. With
 * --allow-actions, an action without the bearer token is 401 and with a
 * wrong one 403, and neither changes the letter; with the token a parked
 * letter is retried, and its worker then applies it.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <esc/projection.h>

#include "httpget.h"
#include "testenv.h"
#include "worker_thread.h"

#define SCHEMA "t_console_actions"
#define PROJ "console_dl"
#define TOKEN "s3cret-token-for-the-console-test"

static bool poison_fails = true; /* the handler's flag the test flips */
static char prefix[64];          /* the worker's Redis key prefix */
static int64_t letter;           /* the parked letter's id */

/* Counts every event in Redis; fails on "Poison" while poison_fails. */
static esc_status handle(esc_projection_ctx *ctx, const esc_event *ev,
                         void *userdata, esc_error *err) {
  (void)userdata;
  if (poison_fails && strcmp(ev->recorded->type, "Poison") == 0)
    return esc_error_set(err, ESC_EINVAL, "poison refused");
  return esc_ctx_cmd(ctx, "INCRBY", esc_ctx_key(ctx, "applied"), "1", NULL);
}

static void run_worker(void) {
  static const char *const cats[] = {"consoledl", NULL};
  esc_projection p = {
      PROJ, 1, cats, NULL, 1, NULL, handle, NULL, ESC_ON_ERROR_PARK, 1, NULL};
  esc_worker_options o = ESC_WORKER_OPTIONS_INIT;
  o.schema = SCHEMA;
  o.lease_poll_ms = 100;
  o.key_prefix = prefix;
  esc_test_catch_up(&o, &p);
}

static void append(esc_store *st, const char *type) {
  static const unsigned char data[] = {0x80};
  esc_event_data e = {esc_uuid_v4(), type, 1, data, sizeof data, NULL, 0};
  esc_append_result res;
  esc_error err = ESC_ERROR_INIT;
  assert_int_equal(
      esc_append(st, "consoledl-1", ESC_EXPECT_ANY, &e, 1, &res, &err), ESC_OK);
}

/* The one letter of PROJ (open ones, or all); fails unless there is one. */
static esc_dead_letter the_letter(bool all) {
  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  if (esc_dead_letters_list(NULL, SCHEMA, PROJ, all, &l, &n, &err))
    fail_msg("list dead letters: %s", err.msg);
  if (n != 1)
    fail_msg("%zu letters of %s, want 1", n, PROJ);
  esc_dead_letter d = l[0];
  free(l);
  return d;
}

/* A store with one event applied and one parked (letter). */
static int setup(void **state) {
  (void)state;
  snprintf(prefix, sizeof prefix, "%s-%d", SCHEMA, (int)getpid());
  esc_store *st = esc_test_fresh_store(SCHEMA);
  append(st, "Fine");
  append(st, "Poison");
  esc_test_await_readable(st, "consoledl");
  esc_store_free(st);
  run_worker();
  letter = the_letter(false).id;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  esc_test_kill_children();
  redisContext *r = esc_test_redis(NULL);
  esc_test_redis_delete_prefix(r, prefix);
  redisFree(r);
  esc_test_drop_schema(SCHEMA);
  return 0;
}

/* ------------------------------------------------------------ console -- */

typedef struct console {
  pid_t pid;
  int port;
  char token[80]; /* the one it printed, if any */
  char log[96];
} console;

/* The value after marker in the console's stdout, or false. */
static bool printed(const console *c, const char *marker, char *out,
                    size_t size) {
  FILE *f = fopen(c->log, "r");
  char line[512];
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) {
    const char *at = strstr(line, marker);
    if (at) {
      snprintf(out, size, "%.*s", (int)strcspn(at + strlen(marker), "\n"),
               at + strlen(marker));
      found = true;
    }
  }
  if (f)
    fclose(f);
  return found;
}

/* Starts `esc --schema SCHEMA console --listen 127.0.0.1:0 extra...` and
 * waits for its port. */
static console start_console(const char *const *extra) {
  console c = {0, 0, "", ""};
  static int started;
  snprintf(c.log, sizeof c.log, "/tmp/%s-%d-%d.log", SCHEMA, (int)getpid(),
           started++);
  const char *argv[12] = {ESC_CLI_PATH, "--schema", SCHEMA,
                          "console",    "--listen", "127.0.0.1:0"};
  for (size_t i = 0; extra[i]; i++)
    argv[6 + i] = extra[i];
  c.pid = esc_test_spawn(ESC_CLI_PATH, argv, NULL, c.log);
  char port[16];
  long long deadline = esc_test_now_ms() + 10000;
  while (!printed(&c, "listening on port ", port, sizeof port)) {
    if (esc_test_now_ms() > deadline) {
      esc_test_print_tail(c.log, 20);
      fail_msg("the console did not start");
    }
    esc_test_sleep_ms(50);
  }
  c.port = atoi(port);
  printed(&c, "bearer token: ", c.token, sizeof c.token);
  return c;
}

static void stop_console(console *c) {
  esc_test_kill_child(c->pid);
  esc_test_remove_log(c->log);
}

/* POSTs body to the console's action path with the headers; the status,
 * and the error code of the answer in code (size 32) when it has one. */
static int post(const console *c, const char *path, const char *headers,
                const char *body, char *code) {
  char *answer = NULL;
  int status = esc_test_http_request(c->port, "POST", path, headers, body,
                                     10000, &answer);
  json_t *o = answer ? json_loads(answer, 0, NULL) : NULL;
  const char *name =
      json_string_value(json_object_get(json_object_get(o, "error"), "code"));
  snprintf(code, 32, "%s", name ? name : "");
  json_decref(o);
  free(answer);
  return status;
}

static void assert_parked(void) {
  esc_dead_letter d = the_letter(false);
  assert_int_equal(d.id, letter);
  assert_string_equal(d.state, "parked");
}

/* ---------------------------------------------------------------- tests -- */

static void read_only_console_refuses_every_action(void **state) {
  (void)state;
  const char *const none[] = {NULL};
  console c = start_console(none);
  char code[32], body[64];
  snprintf(body, sizeof body, "{\"ids\":[%lld]}", (long long)letter);
  assert_int_equal(post(&c, "/api/dead-letters/retry",
                        "Authorization: Bearer " TOKEN "\r\n", body, code),
                   403);
  assert_string_equal(code, "forbidden");
  assert_int_equal(post(&c, "/api/dead-letters/discard", NULL, body, code),
                   403);
  assert_parked();

  /* It says so, and still lists the letter as `esc dead-letters` does. */
  char *answer = NULL;
  assert_int_equal(esc_test_http_get(c.port, "/api/console", 5000, &answer),
                   200);
  assert_string_equal(answer, "{\"actions\":false}");
  free(answer);
  assert_int_equal(esc_test_http_get(c.port,
                                     "/api/dead-letters?projection=" PROJ, 5000,
                                     &answer),
                   200);
  json_t *o = json_loads(answer, 0, NULL);
  json_t *l = json_array_get(json_object_get(o, "dead_letters"), 0);
  assert_int_equal(json_array_size(json_object_get(o, "dead_letters")), 1);
  assert_int_equal(json_integer_value(json_object_get(l, "id")), letter);
  assert_string_equal(json_string_value(json_object_get(l, "type")), "Poison");
  assert_string_equal(json_string_value(json_object_get(l, "state")), "parked");
  assert_string_equal(json_string_value(json_object_get(l, "error")),
                      "poison refused");
  json_decref(o);
  free(answer);
  stop_console(&c);
}

static void actions_without_the_token_change_nothing(void **state) {
  (void)state;
  char file[96], code[32], body[64];
  snprintf(file, sizeof file, "/tmp/%s-%d.token", SCHEMA, (int)getpid());
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fputs(TOKEN "\n", f);
  fclose(f);
  const char *const extra[] = {"--allow-actions", "--token-file", file, NULL};
  console c = start_console(extra);
  assert_string_equal(c.token, ""); /* a file's token is never printed */
  snprintf(body, sizeof body, "{\"ids\":[%lld]}", (long long)letter);
  const char *path = "/api/dead-letters/retry";
  assert_int_equal(post(&c, path, NULL, body, code), 401);
  assert_string_equal(code, "unauthorized");
  assert_int_equal(
      post(&c, path, "Authorization: Basic " TOKEN "\r\n", body, code), 401);
  assert_int_equal(
      post(&c, path, "Authorization: Bearer wrong\r\n", body, code), 403);
  assert_string_equal(code, "forbidden");
  /* The token less its last character, and with one more. */
  assert_int_equal(post(&c, path,
                        "Authorization: Bearer s3cret-token-for-the-console-"
                        "tes\r\n",
                        body, code),
                   403);
  assert_int_equal(post(&c, "/api/dead-letters/discard",
                        "Authorization: Bearer " TOKEN "x\r\n", body, code),
                   403);
  assert_parked();

  /* With the token: a body over 64 KiB is 413, a bad one 400. */
  char *big = malloc(70000);
  assert_non_null(big);
  memset(big, ' ', 69999);
  big[69999] = '\0';
  assert_int_equal(
      post(&c, path, "Authorization: Bearer " TOKEN "\r\n", big, code), 413);
  assert_string_equal(code, "too_large");
  free(big);
  assert_int_equal(post(&c, path, "Authorization: Bearer " TOKEN "\r\n",
                        "{\"ids\":[]}", code),
                   400);
  assert_parked();
  stop_console(&c);
  unlink(file);
}

static void retry_with_the_token_is_applied_by_the_worker(void **state) {
  (void)state;
  const char *const extra[] = {"--allow-actions", NULL};
  console c = start_console(extra);
  assert_int_equal(strlen(c.token), 64); /* 32 random bytes in hex */
  char *answer = NULL;
  assert_int_equal(esc_test_http_get(c.port, "/api/console", 5000, &answer),
                   200);
  assert_string_equal(answer, "{\"actions\":true}");
  free(answer);

  char headers[128], body[64], code[32];
  snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", c.token);
  snprintf(body, sizeof body, "{\"ids\":[%lld]}", (long long)letter);
  assert_int_equal(post(&c, "/api/dead-letters/retry", headers, body, code),
                   200);
  assert_string_equal(the_letter(false).state, "retry");

  poison_fails = false;
  run_worker();
  esc_dead_letter d = the_letter(true);
  assert_int_equal(d.id, letter);
  assert_string_equal(d.state, "resolved");
  /* Both events counted: the retried one applied once. */
  redisContext *r = esc_test_redis(NULL);
  long long gen =
      esc_test_redis_ll(r, -1, "GET %s:%s:generation", prefix, PROJ);
  assert_int_equal(
      esc_test_redis_ll(r, -1, "GET %s:%s:g%lld:applied", prefix, PROJ, gen),
      2);
  redisFree(r);

  /* A resolved letter is no longer open: retrying it again is refused,
   * naming it. */
  assert_int_equal(post(&c, "/api/dead-letters/retry", headers, body, code),
                   400);
  assert_string_equal(code, "invalid");
  stop_console(&c);
}

/* {"all":true,"projection":P} selects only P's open letters; a body that
 * names ids and all is refused. */
static void discard_all_of_one_projection(void **state) {
  (void)state;
  esc_store *st = esc_test_open_store(SCHEMA);
  append(st, "Poison");
  esc_store_free(st);
  poison_fails = true;
  run_worker();
  int64_t second = the_letter(false).id;
  assert_int_not_equal(second, letter);

  const char *const extra[] = {"--allow-actions", NULL};
  console c = start_console(extra);
  char headers[128], code[32];
  snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\n", c.token);
  const char *path = "/api/dead-letters/discard";
  assert_int_equal(post(&c, path, headers, "{\"ids\":[1],\"all\":true}", code),
                   400);
  assert_int_equal(post(&c, path, headers,
                        "{\"all\":true,\"projection\":\"console_other\"}",
                        code),
                   200);
  assert_string_equal(the_letter(false).state, "parked");
  assert_int_equal(post(&c, path, headers,
                        "{\"all\":true,\"projection\":\"" PROJ "\"}", code),
                   200);
  esc_error err = ESC_ERROR_INIT;
  esc_dead_letter *l = NULL;
  size_t n = 0;
  assert_int_equal(
      esc_dead_letters_list(NULL, SCHEMA, PROJ, false, &l, &n, &err), ESC_OK);
  assert_int_equal(n, 0);
  free(l);
  stop_console(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(read_only_console_refuses_every_action),
      cmocka_unit_test(actions_without_the_token_change_nothing),
      cmocka_unit_test(retry_with_the_token_is_applied_by_the_worker),
      cmocka_unit_test(discard_all_of_one_projection),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * The projections' Redis connection: URL parsing, commands, and the two
 * Lua scripts (apply.lua, switch.lua) run by EVALSHA.
 *
 * Scripts are loaded with SCRIPT LOAD on first use and their SHA1s kept on
 * the handle; a NOSCRIPT reply (SCRIPT FLUSH, a restarted or failed-over
 * server) loads the script again and retries once. User data only ever
 * travels as argv elements with explicit lengths, never formatted into
 * command text.
 *
 * After an I/O error (a broken connection, a 30 s command timeout) hiredis
 * leaves the context unusable with ctx->err set: esc__redis_ok turns false
 * and every call fails with ESC_ECONN until esc__redis_reconnect.
 */
#include "projection_int.h"
#include <esc_internal/embedded.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* The Lua scripts of projections/src: apply, switch (generated). */
extern const struct esc__embedded esc__lua_scripts[];

#define DEFAULT_REDIS_URL "redis://127.0.0.1:63799"
#define CONNECT_TIMEOUT_S 5
#define COMMAND_TIMEOUT_S 30
#define SCAN_COUNT "500"

enum script { SCRIPT_APPLY, SCRIPT_SWITCH, SCRIPT_COUNT };
static const char *const script_files[SCRIPT_COUNT] = {"apply.lua",
                                                       "switch.lua"};

struct esc__redis {
  redisContext *ctx;
  char host[256];
  int port;
  long db;
  char *user;                 /* NULL: AUTH with the password alone */
  char *password;             /* NULL: no AUTH */
  char where[300];            /* "host:port", for messages */
  char sha[SCRIPT_COUNT][41]; /* "" until loaded on this connection */
  bool apply_in_flight;       /* an apply sent, its reply not read yet */
};

const char *esc_default_redis_url(void) {
  const char *env = getenv("ESC_REDIS_URL");
  return env && *env ? env : DEFAULT_REDIS_URL;
}

/* ------------------------------------------------------------------------
 * URL: redis://[[user]:password@][host][:port][/db]
 * ------------------------------------------------------------------------ */

/* A percent-decoded, malloc'ed copy of s[0..len); *bad is set (and NULL
 * returned) for a malformed escape or %00. NULL without *bad: no memory. */
static char *decode_part(const char *s, size_t len, bool *bad) {
  char *out = malloc(len + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] != '%') {
      out[o++] = s[i];
      continue;
    }
    int h = i + 2 < len ? esc__hex_value(s[i + 1]) : -1;
    int l = i + 2 < len ? esc__hex_value(s[i + 2]) : -1;
    if (h < 0 || l < 0 || (h == 0 && l == 0)) {
      free(out);
      *bad = true;
      return NULL;
    }
    out[o++] = (char)(h * 16 + l);
    i += 2;
  }
  out[o] = '\0';
  return out;
}

/* Decimal digits s[0..len) as a number in [min, max]; false otherwise. */
static bool parse_decimal(const char *s, size_t len, long min, long max,
                          long *out) {
  if (len == 0 || len > 9)
    return false;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  if (v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* The URL as a message may show it: the password in the userinfo
 * replaced by three stars (user:PASS@host and PASS@host alike). */
static void redact_url(const char *url, char *out, size_t size) {
  const char *auth = strstr(url, "://");
  auth = auth ? auth + 3 : url;
  const char *end = auth + strcspn(auth, "/");
  const char *at = NULL;
  for (const char *p = auth; p < end; p++)
    if (*p == '@')
      at = p; /* the last one: a password may hold '@' */
  if (!at) {
    snprintf(out, size, "%s", url);
    return;
  }
  const char *colon = memchr(auth, ':', (size_t)(at - auth));
  int keep = (int)((colon ? colon + 1 : auth) - url);
  snprintf(out, size, "%.*s***%s", keep, url, at);
}

static esc_status bad_url(esc_error *err, const char *url, const char *why) {
  char shown[160];
  redact_url(url, shown, sizeof shown);
  return esc_error_set(err, ESC_EINVAL,
                       "redis URL \"%.120s\": %s; expected "
                       "redis://[[user]:password@][host][:port][/db]",
                       shown, why);
}

static esc_status parse_userinfo(esc__redis *r, const char *url, const char *s,
                                 size_t len, esc_error *err) {
  const char *colon = memchr(s, ':', len);
  bool bad = false;
  if (!colon) /* "redis://secret@host": a password alone */
    r->password = decode_part(s, len, &bad);
  else {
    size_t ulen = (size_t)(colon - s);
    if (ulen > 0 && !(r->user = decode_part(s, ulen, &bad)))
      goto out_fail;
    r->password = decode_part(colon + 1, len - ulen - 1, &bad);
  }
  if (r->password)
    return ESC_OK;
out_fail:
  if (bad)
    return bad_url(err, url, "bad %-escape in the user or password");
  return esc_error_set(err, ESC_ENOMEM, "redis URL: out of memory");
}

static esc_status parse_url(esc__redis *r, const char *url, esc_error *err) {
  static const char scheme[] = "redis://";
  if (strncmp(url, scheme, sizeof scheme - 1) != 0)
    return bad_url(err, url, "must start with redis://");
  const char *s = url + sizeof scheme - 1;
  const char *slash = strchr(s, '/');
  const char *end = slash ? slash : s + strlen(s);

  const char *at = NULL; /* the last '@' before the path */
  for (const char *p = s; p < end; p++)
    if (*p == '@')
      at = p;
  if (at) {
    esc_status rc = parse_userinfo(r, url, s, (size_t)(at - s), err);
    if (rc)
      return rc;
    s = at + 1;
  }

  const char *host = s, *host_end, *port = NULL;
  if (*s == '[') { /* [::1]:6379 */
    host = s + 1;
    host_end = memchr(host, ']', (size_t)(end - host));
    if (!host_end)
      return bad_url(err, url, "'[' without ']'");
    s = host_end + 1;
    if (s < end && *s != ':')
      return bad_url(err, url, "junk after ']'");
  } else {
    host_end = memchr(s, ':', (size_t)(end - s));
    if (!host_end)
      host_end = end;
    s = host_end;
  }
  if (s < end && *s == ':')
    port = s + 1;

  size_t hlen = (size_t)(host_end - host);
  if (hlen >= sizeof r->host)
    return bad_url(err, url, "host name too long");
  if (hlen == 0)
    strcpy(r->host, "127.0.0.1");
  else {
    memcpy(r->host, host, hlen);
    r->host[hlen] = '\0';
  }

  long v = 6379;
  if (port && !parse_decimal(port, (size_t)(end - port), 1, 65535, &v))
    return bad_url(err, url, "port is not a number in 1..65535");
  r->port = (int)v;

  r->db = 0;
  if (slash && slash[1] &&
      !parse_decimal(slash + 1, strlen(slash + 1), 0, INT_MAX, &r->db))
    return bad_url(err, url, "database is not a number");
  snprintf(r->where, sizeof r->where, "%s%s%s:%d",
           strchr(r->host, ':') ? "[" : "", r->host,
           strchr(r->host, ':') ? "]" : "", r->port);
  return ESC_OK;
}

/* ------------------------------------------------------------------------
 * Connection and plain commands
 * ------------------------------------------------------------------------ */

static esc_status conn_error(esc__redis *r, const char *what, esc_error *err) {
  const char *why =
      r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "not connected";
  return esc_error_set(err, ESC_ECONN, "redis %s: %s: %s", r->where, what, why);
}

/* The command name of argv for messages ("EVALSHA", "GET"). */
static void command_name(char out[33], const char **argv,
                         const size_t *argvlen) {
  size_t n = argvlen ? argvlen[0] : strlen(argv[0]);
  if (n > 32)
    n = 32;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)argv[0][i];
    out[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
  }
  out[n] = '\0';
}

/* Reads and drops the reply of an apply nobody received, so the next
 * reply read is the next command's. */
static void drop_apply_in_flight(esc__redis *r) {
  void *rep = NULL;
  if (!r->apply_in_flight)
    return;
  r->apply_in_flight = false;
  if (r->ctx && !r->ctx->err && redisGetReply(r->ctx, &rep) == REDIS_OK)
    freeReplyObject(rep);
}

/* Sends one command; *out is the reply, error replies included. Fails only
 * on I/O (ESC_ECONN: the context is then dead). */
static esc_status raw_command(esc__redis *r, int argc, const char **argv,
                              const size_t *argvlen, redisReply **out,
                              esc_error *err) {
  *out = NULL;
  char name[33];
  command_name(name, argv, argvlen);
  drop_apply_in_flight(r);
  if (!r->ctx || r->ctx->err)
    return conn_error(r, name, err);
  redisReply *rep = redisCommandArgv(r->ctx, argc, argv, argvlen);
  if (!rep)
    return conn_error(r, name, err);
  *out = rep;
  return ESC_OK;
}

esc_status esc__redis_run(esc__redis *r, int argc, const char **argv,
                          const size_t *argvlen, redisReply **reply,
                          esc_error *err) {
  if (reply)
    *reply = NULL;
  if (!r || argc < 1 || !argv || !argv[0])
    return esc_error_set(err, ESC_EINVAL, "redis: no command to run");
  redisReply *rep;
  esc_status rc = raw_command(r, argc, argv, argvlen, &rep, err);
  if (rc)
    return rc;
  if (rep->type == REDIS_REPLY_ERROR) {
    char name[33];
    command_name(name, argv, argvlen);
    rc = esc_error_set(err, ESC_EIO, "redis %s: %s: %s", r->where, name,
                       rep->str);
    freeReplyObject(rep);
    return rc;
  }
  if (reply)
    *reply = rep;
  else
    freeReplyObject(rep);
  return ESC_OK;
}

static esc_status open_conn(esc__redis *r, esc_error *err) {
  struct timeval connect_tv = {CONNECT_TIMEOUT_S, 0};
  struct timeval command_tv = {COMMAND_TIMEOUT_S, 0};
  esc_status rc = ESC_OK;
  memset(r->sha, 0, sizeof r->sha);
  r->ctx = redisConnectWithTimeout(r->host, r->port, connect_tv);
  if (!r->ctx)
    return esc_error_set(err, ESC_ENOMEM, "redis %s: out of memory", r->where);
  if (r->ctx->err)
    goto out_fail;
  if (redisSetTimeout(r->ctx, command_tv) != REDIS_OK)
    goto out_fail;

  if (r->password) {
    const char *argv[3] = {"AUTH", r->user ? r->user : r->password,
                           r->password};
    rc = esc__redis_run(r, r->user ? 3 : 2, argv, NULL, NULL, err);
  }
  if (!rc && r->db != 0) {
    char db[16];
    snprintf(db, sizeof db, "%ld", r->db);
    const char *argv[2] = {"SELECT", db};
    rc = esc__redis_run(r, 2, argv, NULL, NULL, err);
  }
  if (rc) {
    redisFree(r->ctx);
    r->ctx = NULL;
    /* a refused AUTH or SELECT is a connection failure to the caller */
    if (err)
      err->code = ESC_ECONN;
    return ESC_ECONN;
  }
  return ESC_OK;

out_fail:
  rc = esc_error_set(err, ESC_ECONN, "redis %s: cannot connect: %s", r->where,
                     r->ctx->errstr);
  redisFree(r->ctx);
  r->ctx = NULL;
  return rc;
}

esc__redis *esc__redis_connect(const char *url, esc_error *err) {
  if (!url)
    url = esc_default_redis_url();
  esc__redis *r = calloc(1, sizeof *r);
  if (!r) {
    esc_error_set(err, ESC_ENOMEM, "redis: out of memory");
    return NULL;
  }
  if (parse_url(r, url, err) || open_conn(r, err)) {
    esc__redis_free(r);
    return NULL;
  }
  return r;
}

redisContext *esc_redis_connect(const char *url, esc_error *err) {
  esc__redis *r = esc__redis_connect(url, err);
  if (!r)
    return NULL;
  redisContext *c = r->ctx; /* the caller's now */
  r->ctx = NULL;
  esc__redis_free(r);
  return c;
}

void esc__redis_free(esc__redis *r) {
  if (!r)
    return;
  if (r->ctx)
    redisFree(r->ctx);
  free(r->user);
  free(r->password);
  free(r);
}

esc_status esc__redis_reconnect(esc__redis *r, esc_error *err) {
  r->apply_in_flight = false;
  if (r->ctx) {
    redisFree(r->ctx);
    r->ctx = NULL;
  }
  return open_conn(r, err);
}

bool esc__redis_ok(const esc__redis *r) {
  return r && r->ctx && !r->ctx->err;
}

esc_status esc__redis_get(esc__redis *r, const char *key, char *out,
                          size_t size, bool *exists, esc_error *err) {
  if (size)
    out[0] = '\0';
  *exists = false;
  const char *argv[2] = {"GET", key};
  redisReply *rep;
  esc_status rc = esc__redis_run(r, 2, argv, NULL, &rep, err);
  if (rc)
    return rc;
  if (rep->type == REDIS_REPLY_STRING) {
    if (rep->len >= size)
      rc = esc_error_set(err, ESC_EINVAL,
                         "redis GET %.100s: the value is %zu bytes, more than "
                         "the %zu expected",
                         key, rep->len, size ? size - 1 : 0);
    else {
      memcpy(out, rep->str, rep->len);
      out[rep->len] = '\0';
      *exists = true;
    }
  } else if (rep->type != REDIS_REPLY_NIL) {
    rc = esc_error_set(err, ESC_EIO,
                       "redis GET %.100s: unexpected reply type %d", key,
                       rep->type);
  }
  freeReplyObject(rep);
  return rc;
}

/* ------------------------------------------------------------------------
 * Scripts
 * ------------------------------------------------------------------------ */

static esc_status load_script(esc__redis *r, enum script s, esc_error *err) {
  const struct esc__embedded *f = esc__lua_scripts;
  while (f->name && strcmp(f->name, script_files[s]) != 0)
    f++;
  if (!f->name)
    return esc_error_set(err, ESC_EIO, "redis: script %s is not embedded",
                         script_files[s]);
  const char *argv[3] = {"SCRIPT", "LOAD", f->data};
  size_t lens[3] = {6, 4, f->len};
  redisReply *rep;
  esc_status rc = esc__redis_run(r, 3, argv, lens, &rep, err);
  if (rc)
    return rc;
  if (rep->type != REDIS_REPLY_STRING || rep->len != 40)
    rc = esc_error_set(err, ESC_EIO,
                       "redis %s: SCRIPT LOAD %s: unexpected reply", r->where,
                       script_files[s]);
  else
    memcpy(r->sha[s], rep->str, 41);
  freeReplyObject(rep);
  return rc;
}

/*
 * EVALSHA of script s; argv[0] and argv[1] are filled here ("EVALSHA" and
 * the SHA1). *out is a non-error reply, owned by the caller. Error replies
 * are ESC_EIO, after one reload for NOSCRIPT.
 */
static esc_status eval_script(esc__redis *r, enum script s, int argc,
                              const char **argv, size_t *argvlen,
                              redisReply **out, esc_error *err) {
  *out = NULL;
  for (int attempt = 0;; attempt++) {
    esc_status rc = ESC_OK;
    if (!r->sha[s][0] && (rc = load_script(r, s, err)))
      return rc;
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = r->sha[s];
    argvlen[1] = 40;
    redisReply *rep;
    if ((rc = raw_command(r, argc, argv, argvlen, &rep, err)))
      return rc;
    if (rep->type != REDIS_REPLY_ERROR) {
      *out = rep;
      return ESC_OK;
    }
    if (attempt == 0 && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
      freeReplyObject(rep);
      r->sha[s][0] = '\0';
      continue;
    }
    rc = esc_error_set(err, ESC_EIO, "redis %s: EVALSHA %s: %s", r->where,
                       script_files[s], rep->str);
    freeReplyObject(rep);
    return rc;
  }
}

/* The string of a reply's element i, or NULL. */
static const char *element_str(const redisReply *rep, size_t i) {
  if (rep->type != REDIS_REPLY_ARRAY || i >= rep->elements)
    return NULL;
  const redisReply *e = rep->element[i];
  if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
    return NULL;
  return e->str;
}

/* Appends the apply to the output buffer and writes it out now, so Redis
 * works while the caller does. */
static esc_status write_out(esc__redis *r, int argc, const char **argv,
                            const size_t *lens, esc_error *err) {
  esc_status rc = ESC_OK;
  int done = 0;
  if (!r->ctx || r->ctx->err ||
      redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
    rc = conn_error(r, "EVALSHA", err);
  while (!rc && !done)
    if (redisBufferWrite(r->ctx, &done) != REDIS_OK)
      rc = conn_error(r, "EVALSHA", err);
  r->apply_in_flight = !rc;
  return rc;
}

bool esc__redis_error_transient(const char *error) {
  static const char *const passing[] = {
      "OOM",      "LOADING",     "BUSY",       "READONLY",  "MASTERDOWN",
      "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "NOTREADY", NULL};
  for (const char *const *p = passing; *p; p++) {
    size_t n = strlen(*p);
    if (strncmp(error, *p, n) == 0 && (error[n] == ' ' || error[n] == '\0'))
      return true;
  }
  return false;
}

static bool element_int(const redisReply *rep, size_t i, size_t *out) {
  if (rep->type != REDIS_REPLY_ARRAY || i >= rep->elements ||
      rep->element[i]->type != REDIS_REPLY_INTEGER ||
      rep->element[i]->integer < 0)
    return false;
  *out = (size_t)rep->element[i]->integer;
  return true;
}

/* {"failed", i, err, e, k, before, at}, or the shorter "bad batch" form
 * (a bug of ours: nothing was written, and sending it again fails the
 * same way). */
static esc_status parse_failed(esc__redis *r, const redisReply *rep,
                               struct esc__apply_result *out, esc_error *err) {
  const char *why = element_str(rep, 2);
  if (!element_int(rep, 1, &out->failed_command) || !why)
    return esc_error_set(err, ESC_EIO,
                         "redis %s: EVALSHA apply.lua: unexpected reply",
                         r->where);
  if (rep->elements < 7)
    return esc_error_set(err, ESC_EINVAL, "redis %s: apply.lua: %s", r->where,
                         why);
  snprintf(out->error, sizeof out->error, "%s", why);
  const char *before = element_str(rep, 5), *at = element_str(rep, 6);
  if (!element_int(rep, 3, &out->failed_event) ||
      !element_int(rep, 4, &out->commands_done) || !before || !at ||
      esc_position_parse(before, &out->failed_before, NULL) ||
      esc_position_parse(at, &out->failed_at, NULL))
    return esc_error_set(err, ESC_EIO,
                         "redis %s: EVALSHA apply.lua: unexpected reply",
                         r->where);
  out->outcome = ESC__COMMAND_FAILED;
  return ESC_OK;
}

static esc_status parse_apply_reply(esc__redis *r, const redisReply *rep,
                                    struct esc__apply_result *out,
                                    esc_error *err) {
  const char *what = element_str(rep, 0);
  const char *arg = element_str(rep, 1);
  if (!what)
    goto out_bad;
  if (strcmp(what, "applied") == 0) {
    out->outcome = ESC__APPLIED;
    /* A guard that was set already: the retry it guards was applied
     * before, so nothing ran and the checkpoint did not move. */
    if (arg && strcmp(arg, "guarded") == 0)
      snprintf(out->error, sizeof out->error,
               "guard already set: applied before, nothing done");
  } else if (strcmp(what, "stale") == 0 && arg) {
    out->outcome = ESC__STALE;
    snprintf(out->checkpoint, sizeof out->checkpoint, "%s", arg);
  } else if (strcmp(what, "vanished") == 0) {
    out->outcome = ESC__VANISHED;
  } else if (strcmp(what, "moved") == 0 && arg) {
    out->outcome = ESC__MOVED;
    char *end;
    long long g = strtoll(arg, &end, 10);
    out->generation = (*arg && !*end) ? (int64_t)g : -1;
    if (out->generation < 0)
      snprintf(out->error, sizeof out->error,
               "the generation key holds \"%.100s\"", arg);
  } else if (strcmp(what, "transient") == 0 &&
             element_int(rep, 1, &out->failed_command) && element_str(rep, 2)) {
    out->outcome = ESC__REFUSED;
    snprintf(out->error, sizeof out->error, "%s", element_str(rep, 2));
  } else if (strcmp(what, "failed") == 0) {
    return parse_failed(r, rep, out, err);
  } else {
    goto out_bad;
  }
  return ESC_OK;
out_bad:
  return esc_error_set(
      err, ESC_EIO, "redis %s: EVALSHA apply.lua: unexpected reply", r->where);
}

/* The event triples of a batch (see apply.lua) as text in one malloc'ed
 * block: *tokens holds 3 strings per event, commands after the last
 * recorded event counted as one more event ending at the new checkpoint.
 * NULL when out of memory. */
struct event_args {
  char (*text)[ESC_POSITION_TOKEN_MAX];
  size_t count; /* events */
};

static bool format_events(const struct esc__apply_request *req,
                          const esc_projection_ctx *batch,
                          struct event_args *out) {
  size_t nev = batch ? batch->nevents : 0, covered = 0;
  for (size_t i = 0; i < nev; i++)
    covered += batch->events[i].ncommands;
  size_t rest = batch && batch->ncommands > covered ? batch->ncommands - covered
                                                    : 0;
  out->count = nev + (rest > 0);
  out->text = calloc(3 * out->count + 1, sizeof *out->text);
  if (!out->text)
    return false;
  for (size_t i = 0; i < nev; i++) {
    const struct esc__ctx_event *e = &batch->events[i];
    esc_position_format(&e->before, out->text[3 * i]);
    esc_position_format(&e->at, out->text[3 * i + 1]);
    snprintf(out->text[3 * i + 2], ESC_POSITION_TOKEN_MAX, "%zu",
             e->ncommands);
  }
  if (rest > 0) {
    char(*t)[ESC_POSITION_TOKEN_MAX] = out->text + 3 * nev;
    if (nev > 0)
      esc_position_format(&batch->events[nev - 1].at, t[0]);
    else
      snprintf(t[0], ESC_POSITION_TOKEN_MAX, "%s",
               req->expected[0] ? req->expected : "0/0");
    snprintf(t[1], ESC_POSITION_TOKEN_MAX, "%s", req->new_checkpoint);
    snprintf(t[2], ESC_POSITION_TOKEN_MAX, "%zu", rest);
  }
  return true;
}

esc_status esc__redis_apply_send(esc__redis *r,
                                 const struct esc__apply_request *req,
                                 const esc_projection_ctx *batch,
                                 esc_error *err) {
  /* EVALSHA sha 4 k1 k2 k3 k4 a1 a2 a3 a4 a5 a6 */
  enum { FIXED = 13 };
  size_t nbatch = batch ? batch->nargs : 0;
  struct event_args ev = {NULL, 0};
  const char **argv = NULL;
  size_t *lens = NULL;
  esc_status rc = ESC_OK;
  drop_apply_in_flight(r);
  if (!r->sha[SCRIPT_APPLY][0] && (rc = load_script(r, SCRIPT_APPLY, err)))
    return rc;
  if (!format_events(req, batch, &ev)) {
    rc = esc_error_set(err, ESC_ENOMEM, "redis apply: out of memory");
    goto out_free;
  }
  if (nbatch > (size_t)INT_MAX - FIXED - 3 * ev.count) {
    rc = esc_error_set(err, ESC_EINVAL,
                       "redis apply: a batch of %zu arguments is too big",
                       nbatch);
    goto out_free;
  }
  size_t argc = FIXED + 3 * ev.count + nbatch;
  argv = malloc(argc * sizeof *argv);
  lens = malloc(argc * sizeof *lens);
  if (!argv || !lens) {
    rc = esc_error_set(err, ESC_ENOMEM, "redis apply: out of memory");
    goto out_free;
  }
  char gen[24], skip[24], nev[24], partial[ESC__KEY_MAX + 16];
  snprintf(gen, sizeof gen, "%" PRId64, req->serving_generation);
  snprintf(skip, sizeof skip, "%zu", req->guard_key ? req->skip : 0);
  snprintf(nev, sizeof nev, "%zu", ev.count);
  snprintf(partial, sizeof partial, "%s:partial", req->checkpoint_key);
  const char *fixed[FIXED] = {
      "EVALSHA", r->sha[SCRIPT_APPLY], "4", req->generation_key,
      req->checkpoint_key,
      /* unused when there is no guard */
      req->guard_key ? req->guard_key : req->checkpoint_key, partial, gen,
      req->expected, req->new_checkpoint, req->guard_key ? "1" : "0", skip,
      nev};
  for (size_t i = 0; i < FIXED; i++) {
    argv[i] = fixed[i];
    lens[i] = strlen(argv[i]);
  }
  for (size_t i = 0; i < 3 * ev.count; i++) {
    argv[FIXED + i] = ev.text[i];
    lens[FIXED + i] = strlen(ev.text[i]);
  }
  for (size_t i = 0, o = FIXED + 3 * ev.count; i < nbatch; i++) {
    argv[o + i] = batch->args[i];
    lens[o + i] = batch->arglens[i];
  }
  rc = write_out(r, (int)argc, argv, lens, err);
out_free:
  free(ev.text);
  free(argv);
  free(lens);
  return rc;
}

esc_status esc__redis_apply_receive(esc__redis *r,
                                    struct esc__apply_result *out,
                                    esc_error *err) {
  void *v = NULL;
  memset(out, 0, sizeof *out);
  if (!r->apply_in_flight)
    return esc_error_set(err, ESC_EINVAL, "redis apply: nothing was sent");
  r->apply_in_flight = false;
  if (!r->ctx || r->ctx->err || redisGetReply(r->ctx, &v) != REDIS_OK || !v)
    return conn_error(r, "EVALSHA", err);
  redisReply *rep = v;
  esc_status rc = ESC_OK;
  if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
    r->sha[SCRIPT_APPLY][0] = '\0'; /* loaded again by the next send */
    out->outcome = ESC__NOT_RUN;
  } else if (rep->type == REDIS_REPLY_ERROR) {
    rc = esc_error_set(err, ESC_EIO, "redis %s: EVALSHA apply.lua: %s",
                       r->where, rep->str);
  } else {
    rc = parse_apply_reply(r, rep, out, err);
  }
  freeReplyObject(rep);
  return rc;
}

esc_status esc__redis_apply(esc__redis *r, const struct esc__apply_request *req,
                            const esc_projection_ctx *batch,
                            struct esc__apply_result *out, esc_error *err) {
  for (int attempt = 0;; attempt++) {
    esc_status rc = esc__redis_apply_send(r, req, batch, err);
    if (!rc)
      rc = esc__redis_apply_receive(r, out, err);
    if (rc || out->outcome != ESC__NOT_RUN || attempt > 0)
      return rc;
  }
}

esc_status esc__redis_switch(esc__redis *r, const char *base, int64_t from,
                             int64_t to, int32_t version, int partitions,
                             bool *switched, esc_error *err) {
  char kgen[ESC__KEY_MAX], kver[ESC__KEY_MAX], kreb[ESC__KEY_MAX],
      kready[ESC__KEY_MAX], kparts[ESC__KEY_MAX];
  char sfrom[24], sto[24], sver[16], sparts[16];
  *switched = false;
  esc__key_partitions(kparts, sizeof kparts, base);
  esc__key_generation(kgen, sizeof kgen, base);
  esc__key_version(kver, sizeof kver, base);
  esc__key_rebuild(kreb, sizeof kreb, base);
  esc__key_rebuild_ready(kready, sizeof kready, base);
  snprintf(sfrom, sizeof sfrom, "%" PRId64, from);
  snprintf(sto, sizeof sto, "%" PRId64, to);
  snprintf(sver, sizeof sver, "%" PRId32, version);
  snprintf(sparts, sizeof sparts, "%d", partitions < 1 ? 1 : partitions);

  const char *argv[12] = {NULL,   NULL,   "5",   kgen, kver, kreb,
                          kready, kparts, sfrom, sto,  sver, sparts};
  size_t lens[12];
  for (size_t i = 2; i < 12; i++)
    lens[i] = strlen(argv[i]);
  redisReply *rep;
  esc_status rc = eval_script(r, SCRIPT_SWITCH, 12, argv, lens, &rep, err);
  if (rc)
    return rc;
  if (rep->type == REDIS_REPLY_INTEGER)
    *switched = rep->integer == 1;
  else
    rc = esc_error_set(err, ESC_EIO,
                       "redis %s: EVALSHA switch.lua: unexpected reply",
                       r->where);
  freeReplyObject(rep);
  return rc;
}

/* ------------------------------------------------------------------------
 * Deleting an old generation
 * ------------------------------------------------------------------------ */

/* UNLINKs the keys listed in a SCAN reply's key array. */
static esc_status unlink_keys(esc__redis *r, const redisReply *keys,
                              esc_error *err) {
  if (keys->elements == 0)
    return ESC_OK;
  if (keys->elements > (size_t)INT_MAX - 1)
    return esc_error_set(err, ESC_EIO, "redis SCAN: too many keys");
  size_t n = keys->elements + 1;
  const char **argv = malloc(n * sizeof *argv);
  size_t *lens = malloc(n * sizeof *lens);
  esc_status rc = ESC_OK;
  if (!argv || !lens) {
    rc = esc_error_set(err, ESC_ENOMEM, "redis UNLINK: out of memory");
    goto out_free;
  }
  argv[0] = "UNLINK";
  lens[0] = 6;
  for (size_t i = 0; i < keys->elements; i++) {
    const redisReply *k = keys->element[i];
    if (k->type != REDIS_REPLY_STRING) {
      rc = esc_error_set(err, ESC_EIO, "redis SCAN: a key is not a string");
      goto out_free;
    }
    argv[i + 1] = k->str;
    lens[i + 1] = k->len;
  }
  rc = esc__redis_run(r, (int)n, argv, lens, NULL, err);
out_free:
  free(argv);
  free(lens);
  return rc;
}

esc_status esc__redis_delete_generation(esc__redis *r, const char *base,
                                        int64_t generation, uint64_t *cursor,
                                        size_t budget, esc_error *err) {
  /* Names and prefixes hold no glob characters and no ':', and ':'
   * follows the number, so "NS:P:g1:*" matches neither NS:P:g10:... nor
   * another projection or namespace. */
  char pattern[ESC__KEY_MAX + 2];
  esc__key_prefix(pattern, sizeof pattern - 1, base, generation);
  strcat(pattern, "*");
  size_t deleted = 0;
  do {
    char cur[24];
    snprintf(cur, sizeof cur, "%" PRIu64, *cursor);
    const char *argv[6] = {"SCAN", cur, "MATCH", pattern, "COUNT", SCAN_COUNT};
    redisReply *rep;
    esc_status rc = esc__redis_run(r, 6, argv, NULL, &rep, err);
    if (rc)
      return rc;
    const char *next = element_str(rep, 0);
    if (!next || rep->elements != 2 ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
      freeReplyObject(rep);
      return esc_error_set(err, ESC_EIO, "redis %s: SCAN: unexpected reply",
                           r->where);
    }
    char *end;
    uint64_t c = (uint64_t)strtoull(next, &end, 10);
    rc = unlink_keys(r, rep->element[1], err);
    deleted += rep->element[1]->elements;
    bool bad = !*next || *end;
    freeReplyObject(rep);
    if (rc)
      return rc;
    if (bad)
      return esc_error_set(err, ESC_EIO, "redis %s: SCAN: bad cursor",
                           r->where);
    *cursor = c;
  } while (*cursor != 0 && deleted < budget);
  return ESC_OK;
}

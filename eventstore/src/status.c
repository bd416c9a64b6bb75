/* Status codes and the filling of esc_error. */
#include "store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *esc_version(void) {
  return ESC_VERSION_STRING;
}

const char *esc_strerror(esc_status code) {
  switch (code) {
  case ESC_OK:
    return "ok";
  case ESC_EINVAL:
    return "invalid input";
  case ESC_ECONFLICT:
    return "concurrency conflict";
  case ESC_ENOTFOUND:
    return "not found";
  case ESC_EDUPLICATE:
    return "event id reused";
  case ESC_EDELETED:
    return "stream deleted";
  case ESC_ECONN:
    return "connection failed";
  case ESC_EIO:
    return "database error";
  case ESC_ENOMEM:
    return "out of memory";
  case ESC_ETIMEDOUT:
    return "timed out";
  case ESC_EBUSY:
    return "busy";
  case ESC_EREJECTED:
    return "rejected";
  case ESC_ECORRUPT:
    return "log breaks a guarantee";
  }
  return "unknown error";
}

void esc__clear(esc_error *err) {
  if (!err)
    return;
  err->code = ESC_OK;
  err->sqlstate[0] = '\0';
  err->msg[0] = '\0';
}

static esc_status set_error(esc_error *err, esc_status code, const char *fmt,
                            va_list ap) {
  if (err) {
    err->code = code;
    err->sqlstate[0] = '\0';
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  }
  return code;
}

esc_status esc_error_set(esc_error *err, esc_status code, const char *fmt,
                         ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(err, code, fmt, ap);
  va_end(ap);
  return code;
}

esc_status esc__fail(esc_error *err, esc_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_error(err, code, fmt, ap);
  va_end(ap);
  return code;
}

/* Our own SQLSTATEs (class ES) are raised by the SQL in eventstore/sql. */
static esc_status code_of_sqlstate(const char *st) {
  if (!st)
    return ESC_EIO;
  if (strcmp(st, "ES001") == 0) /* events are immutable */
    return ESC_EINVAL;
  if (strcmp(st, "ES002") == 0 || strcmp(st, "23505") == 0)
    return ESC_EDUPLICATE;
  if (strcmp(st, "ES004") == 0)
    return ESC_ENOTFOUND;
  if (strncmp(st, "08", 2) == 0) /* connection exception */
    return ESC_ECONN;
  if (strncmp(st, "22", 2) == 0) /* data exception */
    return ESC_EINVAL;
  if (strcmp(st, "57014") == 0) /* query canceled (statement timeout) */
    return ESC_ETIMEDOUT;
  return ESC_EIO;
}

/* A missing schema, table or function almost always means "not migrated". */
static const char *migration_hint(const char *st) {
  if (st && (strcmp(st, "3F000") == 0 || strcmp(st, "42P01") == 0 ||
             strcmp(st, "42883") == 0))
    return " (is the schema migrated? run esc migrate)";
  return "";
}

/* libpq's messages span lines ("...\n\tIs the server running..."); ours are
 * one line, so a CLI or a log shows them whole. */
static void flatten(char *msg) {
  char *out = msg;
  bool space = false;
  for (const char *p = msg; *p; p++) {
    bool blank = *p == '\n' || *p == '\t' || *p == '\r' || *p == ' ';
    if (blank && !space && out != msg)
      *out++ = ' ';
    else if (!blank)
      *out++ = *p;
    space = blank;
  }
  while (out > msg && out[-1] == ' ')
    out--;
  *out = '\0';
}

esc_status esc__fail_pg(esc_error *err, PGconn *conn, const PGresult *res,
                        const char *what) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg =
      res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  esc_status code = code_of_sqlstate(st);
  if (!msg || !*msg)
    msg = conn ? PQerrorMessage(conn) : "no result";
  if (conn && PQstatus(conn) == CONNECTION_BAD)
    code = ESC_ECONN;
  if (!err)
    return code;
  esc__fail(err, code, "%s: %s%s", what, msg, migration_hint(st));
  flatten(err->msg);
  if (st)
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st);
  return code;
}

/* Longest piece of caller text quoted in an error message. */
#define QUOTE_MAX 48

/*
 * Writes text into out (out_size >= 4) as it may appear between double
 * quotes in a message: printable ASCII as is, '"' and '\' escaped, any other
 * byte as \xNN; cut with "..." when it does not fit or is longer than
 * QUOTE_MAX bytes.
 */
void esc__quote(char *out, size_t out_size, const char *text) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, i;
  for (i = 0; i < QUOTE_MAX && text[i]; i++) {
    unsigned char c = (unsigned char)text[i];
    char piece[5];
    size_t n = 0;
    if (c == '"' || c == '\\') {
      piece[n++] = '\\';
      piece[n++] = (char)c;
    } else if (c >= 0x20 && c < 0x7f) {
      piece[n++] = (char)c;
    } else {
      piece[n++] = '\\';
      piece[n++] = 'x';
      piece[n++] = hex[c >> 4];
      piece[n++] = hex[c & 0xf];
    }
    if (o + n + 4 > out_size)
      break;
    memcpy(out + o, piece, n);
    o += n;
  }
  if (text[i] && o + 4 <= out_size) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
}

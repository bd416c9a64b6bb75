/* Status codes and the filling of esc_error. */
#include "store_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *esc_version(void) {
  return ESC_VERSION_STRING;
}

const char *esc_strerror(esc_status code) {
#define ESC__STATUS_MESSAGE(name, value, message, key, exit)                   \
  case name:                                                                   \
    return message;
  switch (code) { ESC_STATUS_LIST(ESC__STATUS_MESSAGE) }
#undef ESC__STATUS_MESSAGE
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
  if (strcmp(st, "ES010") == 0) /* an atomic append's expectations */
    return ESC_ECONFLICT;
  if (strcmp(st, "ES011") == 0) /* an append's condition on a query */
    return ESC_ECONFLICT;
  if (strcmp(st, "ES004") == 0)
    return ESC_ENOTFOUND;
  if (strcmp(st, "ES009") == 0) /* a truncation no snapshot covers */
    return ESC_ETRUNCATED;
  /* Connection exceptions, and the server ending the session: a shutdown
   * or pg_terminate_backend (57P01), a crash restart (57P02), a server
   * not accepting connections yet or any more (57P03). */
  if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
      strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0)
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
void esc__flatten(char *msg) {
  if (!msg)
    return;
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

/* A statement the server cancelled: its statement_timeout (which esc sets
 * for its sessions) or someone's pg_cancel_backend. */
static esc_status fail_cancelled(esc_error *err, const char *what) {
  return esc__fail(err, ESC_ETIMEDOUT,
                   "%s: the server cancelled the statement (57014: "
                   "statement_timeout, or a cancel request)",
                   what);
}

/* The last step of a server error: one line, with its SQLSTATE. */
static esc_status flatten_with_state(esc_error *err, esc_status code,
                                     const char *sqlstate) {
  if (!err)
    return code;
  esc__flatten(err->msg);
  if (sqlstate)
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", sqlstate);
  return code;
}

esc_status esc__fail_pg_ended(esc_error *err, PGconn *conn, const PGresult *res,
                              const char *what, const char *ended) {
  const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  const char *msg =
      res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  char why[160];
  bool broken = conn && PQstatus(conn) == CONNECTION_BAD;
  /* A session the server ended while idle said why in a notice. */
  if (!st && broken && ended && *ended)
    st = ended;
  esc_status code = broken ? ESC_ECONN : code_of_sqlstate(st);
  /* Two appends that took the same stream version: a concurrency
   * conflict, not an event id reused (only events_event_id_key is). */
  const char *constraint =
      res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
  if (code == ESC_EDUPLICATE && constraint &&
      strcmp(constraint, "events_stream_version_key") == 0) {
    esc__fail(err, ESC_ECONFLICT,
              "%s: another append took the same stream version (%s)", what,
              constraint);
    if (err)
      snprintf(err->sqlstate, sizeof err->sqlstate, "%s", st);
    return ESC_ECONFLICT;
  }
  if (code == ESC_ECONN) {
    esc__why_lost(st, conn, why, sizeof why);
    esc__fail(err, code, "%s: lost the connection to PostgreSQL: %s", what,
              why);
  } else if (st && strcmp(st, "57014") == 0) {
    fail_cancelled(err, what);
  } else {
    if (!msg || !*msg)
      msg = conn ? PQerrorMessage(conn) : "no result";
    esc__fail(err, code, "%s: %s%s", what, msg, migration_hint(st));
  }
  return flatten_with_state(err, code, st);
}

esc_status esc__fail_sqlstate(esc_error *err, const char *sqlstate,
                              const char *msg, const char *what) {
  esc_status code = code_of_sqlstate(sqlstate);
  esc__fail(err, code, "%s: %s", what, msg && *msg ? msg : "failed");
  return flatten_with_state(err, code, sqlstate);
}

esc_status esc__fail_pg(esc_error *err, PGconn *conn, const PGresult *res,
                        const char *what) {
  return esc__fail_pg_ended(err, conn, res, what, NULL);
}

esc_status esc__prefix(esc_error *err, esc_status code, const char *what) {
  char msg[2 * sizeof err->msg];
  if (!err)
    return code;
  snprintf(msg, sizeof msg, "%s: %s", what, err->msg);
  size_t n = strlen(msg);
  if (n >= sizeof err->msg)
    n = sizeof err->msg - 1; /* cut: the message's start says the most */
  memcpy(err->msg, msg, n);
  err->msg[n] = '\0';
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
void esc__hex_encode(const void *data, size_t len, char *out) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = hex[p[i] >> 4];
    out[2 * i + 1] = hex[p[i] & 0xf];
  }
  out[2 * len] = '\0';
}

int esc__hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

void esc__copy_text(char *out, size_t size, const char *text) {
  size_t n = strnlen(text, size - 1);
  memcpy(out, text, n);
  out[n] = '\0';
}

void esc__quote(char *out, size_t out_size, const char *text) {
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
      esc__hex_encode(&c, 1, piece + n);
      n += 2;
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

/*
 * order-cli - the sample order domain from the command line.
 *
 * Commands go through esc_execute with the order and inventory deciders
 * (streams "order-<ORDER>" and "inventory-<SKU>"); queries read the
 * projections in Redis that order-worker (or order-demo) maintains. With
 * --wait MS a command waits until the projection it touches has passed the
 * command's position (read-your-writes) and prints the new state.
 *
 * Exit codes: 0 ok, 1 other error (a --wait timeout too), 2 usage,
 * 3 conflict, 4 not found, 5 connection, 6 invalid input, 7 rejected by
 * the domain. --json prints exactly one JSON object on stdout, also for
 * errors ({"error":{...}}).
 */
#include "order.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  EXIT_OK_ = 0,
  EXIT_ERROR_ = 1,
  EXIT_USAGE_ = 2,
  EXIT_CONFLICT_ = 3,
  EXIT_NOTFOUND_ = 4,
  EXIT_CONN_ = 5,
  EXIT_INVALID_ = 6,
  EXIT_REJECTED_ = 7
};

/* Global options and what the command needs to report. */
typedef struct cli {
  const char *pg_url;    /* --pg; NULL: ESC_PG_URL, else the local server */
  const char *redis_url; /* --redis; NULL: ESC_REDIS_URL, else local */
  const char *schema;    /* --schema; default "esc" */
  bool json;
  int wait_ms;    /* --wait; 0: do not wait */
  int partitions; /* --partitions; 0: ask the projection registry */
  bool have_command_id;
  esc_uuid command_id;
  esc_uuid correlation_id; /* --correlation-id; nil: the command id */
  const char *command;     /* for messages */
} cli;

typedef struct command_def {
  const char *name;
  const char *operands; /* for usage lines */
  const char *summary;
  int min_args, max_args; /* operand counts; max -1: unbounded */
  int (*run)(cli *c, int argc, char **argv);
  const char *help;
} command_def;

/* ------------------------------------------------------------------------
 * Output helpers: JSON strings, money, errors
 * ------------------------------------------------------------------------ */

static void json_str(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", stdout);
      break;
    case '\\':
      fputs("\\\\", stdout);
      break;
    case '\n':
      fputs("\\n", stdout);
      break;
    case '\t':
      fputs("\\t", stdout);
      break;
    case '\r':
      fputs("\\r", stdout);
      break;
    default:
      if (*p < 0x20)
        printf("\\u%04x", *p);
      else
        putchar(*p);
    }
  }
  putchar('"');
}

/* Cents as "12.50" (or "-3.05") into out[32]. */
static const char *money(int64_t cents, char out[32]) {
  uint64_t abs = cents < 0 ? (uint64_t)(-(cents + 1)) + 1 : (uint64_t)cents;
  snprintf(out, 32, "%s%" PRIu64 ".%02" PRIu64, cents < 0 ? "-" : "", abs / 100,
           abs % 100);
  return out;
}

static int exit_code_for(esc_status code) {
  switch (code) {
  case ESC_OK:
    return EXIT_OK_;
  case ESC_ECONFLICT:
    return EXIT_CONFLICT_;
  case ESC_ENOTFOUND:
  case ESC_EDELETED:
    return EXIT_NOTFOUND_;
  case ESC_ECONN:
    return EXIT_CONN_;
  case ESC_EINVAL:
  case ESC_EDUPLICATE:
    return EXIT_INVALID_;
  case ESC_EREJECTED:
    return EXIT_REJECTED_;
  default:
    return EXIT_ERROR_;
  }
}

static const char *status_name(esc_status code) {
  switch (code) {
  case ESC_ECONFLICT:
    return "conflict";
  case ESC_ENOTFOUND:
    return "not_found";
  case ESC_EDELETED:
    return "deleted";
  case ESC_ECONN:
    return "connection";
  case ESC_EINVAL:
    return "invalid_input";
  case ESC_EDUPLICATE:
    return "duplicate";
  case ESC_ETIMEDOUT:
    return "timed_out";
  case ESC_EREJECTED:
    return "rejected";
  default:
    return "error";
  }
}

/* "order-cli: pay: <msg>" on stderr and, with --json, {"error":{...}} on
 * stdout. domain_code > 0 adds it to the JSON. Returns exit_code. */
static int report(const cli *c, int exit_code, const char *code_name,
                  int domain_code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static int report(const cli *c, int exit_code, const char *code_name,
                  int domain_code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->command)
    fprintf(stderr, "order-cli: %s: %s\n", c->command, msg);
  else
    fprintf(stderr, "order-cli: %s\n", msg);
  if (exit_code == EXIT_USAGE_)
    fprintf(stderr, "Try 'order-cli %s%s--help'.\n",
            c->command ? c->command : "", c->command ? " " : "");
  if (c->json) {
    printf("{\"error\":{\"code\":");
    json_str(code_name);
    printf(",\"exit\":%d,\"message\":", exit_code);
    json_str(msg);
    if (domain_code > 0)
      printf(",\"domain_code\":%d", domain_code);
    printf("}}\n");
  }
  return exit_code;
}

static int fail(const cli *c, const esc_error *err) {
  esc_status code = err->code == ESC_OK ? ESC_EIO : err->code;
  int exit_code = exit_code_for(code);
  /* "(not found)" after "order 7: not found" says nothing new. */
  if (err->msg[0] && strstr(err->msg, esc_strerror(code)))
    return report(c, exit_code, status_name(code), 0, "%s", err->msg);
  if (err->msg[0])
    return report(c, exit_code, status_name(code), 0, "%s (%s)", err->msg,
                  esc_strerror(code));
  return report(c, exit_code, status_name(code), 0, "%s", esc_strerror(code));
}

static int usage(const cli *c, const char *fmt, const char *arg) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, arg);
  return report(c, EXIT_USAGE_, "usage", 0, "%s", msg);
}

static int invalid(const cli *c, const char *fmt, const char *arg) {
  /* room for an esc_error's whole text after a short prefix */
  char msg[sizeof((esc_error *)NULL)->msg + 64];
  snprintf(msg, sizeof msg, fmt, arg);
  return report(c, EXIT_INVALID_, "invalid_input", 0, "%s", msg);
}

/* ------------------------------------------------------------------------
 * Parsing operands
 * ------------------------------------------------------------------------ */

/* A whole decimal integer in [min, max]. */
static bool parse_i64(const char *text, int64_t min, int64_t max,
                      int64_t *out) {
  char *end = NULL;
  errno = 0;
  if (text[0] == '\0' || text[0] == ' ' || text[0] == '+')
    return false;
  long long v = strtoll(text, &end, 10);
  if (errno || !end || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

/* Copies text into buf when it fits and is not empty. */
static bool copy_text(char *buf, size_t size, const char *text) {
  size_t n = strlen(text);
  if (n == 0 || n >= size)
    return false;
  memcpy(buf, text, n + 1);
  return true;
}

/* A sku, customer or order id, checked as the deciders check it (exit 6
 * before anything is sent). */
static int check_name(const cli *c, const char *what, const char *value,
                      size_t size) {
  esc_error err = ESC_ERROR_INIT;
  if (!order_name_valid(what, value, size, &err))
    return invalid(c, "%s", err.msg);
  return EXIT_OK_;
}

/* "SKU:QTY:PRICE" (price in cents). The last two ':' split it, so a sku
 * may hold ':' itself. Quantities and prices the domain rules out (qty 0,
 * a negative price) are left to the decider, which says why. */
static int parse_line(const cli *c, const char *text, order_line *line) {
  const char *p2 = strrchr(text, ':');
  const char *p1 = NULL;
  for (const char *p = text; p2 && p < p2; p++)
    if (*p == ':')
      p1 = p;
  if (!p1 || p1 == text)
    return invalid(c, "line '%s': expected SKU:QTY:PRICE (price in cents)",
                   text);
  size_t sku_len = (size_t)(p1 - text);
  if (sku_len >= sizeof line->sku)
    return invalid(c, "line '%s': the sku is longer than 31 bytes", text);
  char qty[32], price[32];
  size_t qlen = (size_t)(p2 - p1 - 1), plen = strlen(p2 + 1);
  if (qlen == 0 || qlen >= sizeof qty || plen == 0 || plen >= sizeof price)
    return invalid(c, "line '%s': expected SKU:QTY:PRICE (price in cents)",
                   text);
  memcpy(qty, p1 + 1, qlen);
  qty[qlen] = '\0';
  memcpy(price, p2 + 1, plen + 1);
  memset(line, 0, sizeof *line);
  memcpy(line->sku, text, sku_len);
  line->sku[sku_len] = '\0';
  if (!parse_i64(qty, INT32_MIN, INT32_MAX, &line->qty))
    return invalid(c, "line '%s': the quantity is not a whole number", text);
  if (!parse_i64(price, INT64_MIN / 2, INT64_MAX / 2, &line->price))
    return invalid(c, "line '%s': the price is not a whole number of cents",
                   text);
  return check_name(c, "sku", line->sku, ORDER_SKU_MAX);
}

/* "order-<id>" into stream (ESC_STREAM_ID_MAX + 1), checked. */
static int order_stream(const cli *c, const char *id, char *stream) {
  int rc = check_name(c, "order id", id, ORDER_ID_MAX);
  if (!rc)
    snprintf(stream, ESC_STREAM_ID_MAX + 1, "order-%s", id);
  return rc;
}

static int inventory_stream(const cli *c, const char *sku, char *stream) {
  int rc = check_name(c, "sku", sku, ORDER_SKU_MAX);
  if (!rc)
    snprintf(stream, ESC_STREAM_ID_MAX + 1, "inventory-%s", sku);
  return rc;
}

/* "YYYY-MM-DD", or "today" (UTC) rewritten into day[11]. */
static bool parse_day(const char *text, char day[11]) {
  if (strcmp(text, "today") == 0) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, 11, "%Y-%m-%d", &tm);
    return true;
  }
  if (strlen(text) != 10 || text[4] != '-' || text[7] != '-')
    return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && (text[i] < '0' || text[i] > '9'))
      return false;
  int month = (text[5] - '0') * 10 + (text[6] - '0');
  int mday = (text[8] - '0') * 10 + (text[9] - '0');
  if (month < 1 || month > 12 || mday < 1 || mday > 31)
    return false;
  memcpy(day, text, 11);
  return true;
}

/* ------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------ */

static esc_store *open_store(const cli *c, esc_error *err) {
  esc_store_options o = ESC_STORE_OPTIONS_INIT;
  o.schema = c->schema;
  o.app_name = "order-cli";
  return esc_store_open(c->pg_url, &o, err);
}

/* A query of this store's read models (its key namespace: ESC_KEY_PREFIX,
 * else the store's identity). */
static esc_query *open_query(const cli *c, esc_error *err) {
  esc_query_options o = ESC_QUERY_OPTIONS_INIT;
  o.redis_url = c->redis_url;
  o.pg_url = c->pg_url;
  o.schema = c->schema;
  return esc_query_new(&o, err);
}

/* The number of partitions a projection runs with: --partitions, else
 * what the workers registered (esc_projection_status), else 1. Waiting on
 * fewer partitions than run would miss some; on more, never end. */
static int partitions_of(const cli *c, const char *projection) {
  if (c->partitions > 0)
    return c->partitions;
  esc_partition_status *st = NULL;
  size_t n = 0;
  int parts = 1;
  if (esc_projection_status(c->pg_url, c->redis_url, c->schema, NULL, &st, &n,
                            NULL) == ESC_OK) {
    for (size_t i = 0; i < n; i++)
      if (strcmp(st[i].projection, projection) == 0 && st[i].partitions > 0)
        parts = st[i].partitions;
  }
  free(st);
  return parts;
}

/* ------------------------------------------------------------------------
 * Printing read models
 * ------------------------------------------------------------------------ */

static void print_view_text(const order_view *v) {
  char t[32], p[32];
  printf("order     %s\n", v->id);
  printf("customer  %s\n", v->customer);
  printf("status    %s\n", v->status);
  printf("lines     %d\n", v->lines);
  printf("total     %s %s\n", money(v->total, t), v->currency);
  printf("paid      %s %s\n", money(v->paid, p), v->currency);
}

static void print_view_json(const order_view *v) {
  printf("{\"order\":");
  json_str(v->id);
  printf(",\"customer\":");
  json_str(v->customer);
  printf(",\"status\":");
  json_str(v->status);
  printf(",\"lines\":%d,\"total\":%" PRId64 ",\"paid\":%" PRId64
         ",\"currency\":",
         v->lines, v->total, v->paid);
  json_str(v->currency);
  putchar('}');
}

/* ------------------------------------------------------------------------
 * Executing commands
 * ------------------------------------------------------------------------ */

/* What a command acts on, for execution, waiting and printing. */
typedef struct target {
  const esc_decider *decider;
  const void *command;
  char stream[ESC_STREAM_ID_MAX + 1];
  const char *order; /* the order id, or NULL for stock-in */
  const char *sku;   /* stock-in */
} target;

/* After a command with --wait: waits for the projection to pass the
 * command's position and reads the new state into *v (orders) or
 * *available (stock). */
static esc_status read_back(const cli *c, const target *t,
                            const esc_command_result *r, order_view *v,
                            int64_t *available, esc_error *err) {
  const char *projection = t->order ? "order_details" : "stock";
  int parts = partitions_of(c, projection);
  esc_query *q = open_query(c, err);
  if (!q)
    return err->code;
  esc_status rc =
      esc_query_wait(q, projection, parts, &r->position, c->wait_ms, err);
  if (rc == ESC_ETIMEDOUT) {
    char why[sizeof err->msg];
    memcpy(why, err->msg, sizeof why);
    esc_error_set(err, ESC_ETIMEDOUT, "%.200s; is order-worker running?", why);
  }
  if (!rc && t->order)
    rc = order_query_show(q, t->order, v, err);
  else if (!rc)
    rc = order_query_stock(q, t->sku, available, err);
  esc_query_free(q);
  return rc;
}

static void print_result_text(const cli *c, const target *t,
                              const esc_command_result *r) {
  char pos[ESC_POSITION_TOKEN_MAX], id[37];
  esc_position_format(&r->position, pos);
  esc_uuid_format(&r->command_id, id);
  if (r->duplicate)
    printf("%s %s: done before (command %s): %zu event(s), version %" PRId64
           ", position %s\n",
           c->command, t->stream, id, r->event_count, r->version, pos);
  else if (r->event_count == 0)
    printf("%s %s: nothing to change, version %" PRId64 "\n", c->command,
           t->stream, r->version);
  else
    printf("%s %s: %zu event(s), version %" PRId64 ", position %s\n",
           c->command, t->stream, r->event_count, r->version, pos);
}

static void print_result_json(const cli *c, const target *t,
                              const esc_command_result *r, const order_view *v,
                              const int64_t *available) {
  char pos[ESC_POSITION_TOKEN_MAX], id[37];
  esc_position_format(&r->position, pos);
  esc_uuid_format(&r->command_id, id);
  printf("{\"command\":");
  json_str(c->command);
  printf(",\"stream\":");
  json_str(t->stream);
  printf(",\"events\":%zu,\"version\":%" PRId64 ",\"position\":",
         r->event_count, r->version);
  json_str(pos);
  printf(",\"command_id\":");
  json_str(id);
  printf(",\"duplicate\":%s", r->duplicate ? "true" : "false");
  if (v) {
    printf(",\"state\":");
    print_view_json(v);
  } else if (available) {
    printf(",\"state\":{\"sku\":");
    json_str(t->sku);
    printf(",\"available\":%" PRId64 "}", *available);
  }
  printf("}\n");
}

/* Runs the command against its stream, then (with --wait) reads back. */
static int execute(cli *c, const target *t) {
  esc_error err = ESC_ERROR_INIT;
  esc_command_result r;
  esc_command_options o = ESC_COMMAND_OPTIONS_INIT;
  if (c->have_command_id)
    o.command_id = c->command_id;
  o.correlation_id = c->correlation_id;
  o.actor = "order-cli";
  esc_store *st = open_store(c, &err);
  if (!st)
    return fail(c, &err);
  memset(&r, 0, sizeof r);
  esc_status rc =
      esc_execute(st, t->decider, t->stream, t->command, &o, &r, &err);
  esc_store_free(st);
  if (rc == ESC_EREJECTED) {
    /* A command on an order never placed is "not found" to scripts. */
    bool missing = t->order && r.domain_code == ORDER_ENOTFOUND;
    return report(c, missing ? EXIT_NOTFOUND_ : EXIT_REJECTED_,
                  missing ? "not_found" : "rejected", r.domain_code, "%s",
                  r.domain_msg);
  }
  if (rc)
    return fail(c, &err);

  order_view v;
  int64_t available = 0;
  bool waited = c->wait_ms > 0;
  if (waited && read_back(c, t, &r, &v, &available, &err)) {
    /* The command is stored; say so before the error about reading. */
    if (!c->json) {
      print_result_text(c, t, &r);
      fflush(stdout);
    }
    return fail(c, &err);
  }
  if (c->json) {
    print_result_json(c, t, &r, waited && t->order ? &v : NULL,
                      waited && !t->order ? &available : NULL);
    return EXIT_OK_;
  }
  print_result_text(c, t, &r);
  if (waited && t->order)
    print_view_text(&v);
  else if (waited)
    printf("stock     %s: %" PRId64 " available\n", t->sku, available);
  return EXIT_OK_;
}

static int order_target(cli *c, const char *id, const order_cmd *cmd,
                        target *t) {
  memset(t, 0, sizeof *t);
  t->decider = order_decider();
  t->command = cmd;
  t->order = id;
  return order_stream(c, id, t->stream);
}

static int cmd_place(cli *c, int argc, char **argv) {
  order_line lines[ORDER_MAX_LINES];
  int n = argc - 2, rc;
  if (n > ORDER_MAX_LINES)
    return invalid(c, "%s: an order has at most 16 lines", argv[0]);
  for (int i = 0; i < n; i++)
    if ((rc = parse_line(c, argv[2 + i], &lines[i])))
      return rc;
  if ((rc = check_name(c, "customer", argv[1], ORDER_CUSTOMER_MAX)))
    return rc;
  order_cmd cmd = {.kind = ORDER_PLACE,
                   .customer = argv[1],
                   .lines = lines,
                   .line_count = n};
  target t;
  if ((rc = order_target(c, argv[0], &cmd, &t)))
    return rc;
  return execute(c, &t);
}

static int cmd_add(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_ADD_ITEM};
  target t;
  int rc = parse_line(c, argv[1], &cmd.line);
  if (!rc)
    rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_remove(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_REMOVE_ITEM};
  target t;
  int rc = check_name(c, "sku", argv[1], ORDER_SKU_MAX);
  if (rc)
    return rc;
  copy_text(cmd.line.sku, sizeof cmd.line.sku, argv[1]);
  rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_confirm(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_CONFIRM};
  target t;
  int rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_pay(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_PAY};
  target t;
  if (!parse_i64(argv[1], INT64_MIN / 2, INT64_MAX / 2, &cmd.amount))
    return invalid(c, "amount '%s': a whole number of cents", argv[1]);
  int rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_ship(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_SHIP, .carrier = argv[1]};
  target t;
  if (argv[1][0] == '\0' || strlen(argv[1]) >= ORDER_SKU_MAX)
    return invalid(c, "carrier '%s': 1 to 31 bytes", argv[1]);
  int rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_cancel(cli *c, int argc, char **argv) {
  (void)argc;
  order_cmd cmd = {.kind = ORDER_CANCEL, .reason = argv[1]};
  target t;
  if (argv[1][0] == '\0' || strlen(argv[1]) >= ORDER_TEXT_MAX)
    return invalid(c, "reason '%s': 1 to 95 bytes", argv[1]);
  int rc = order_target(c, argv[0], &cmd, &t);
  return rc ? rc : execute(c, &t);
}

static int cmd_stock_in(cli *c, int argc, char **argv) {
  (void)argc;
  inventory_cmd cmd = {.kind = INVENTORY_STOCK_IN};
  target t;
  memset(&t, 0, sizeof t);
  if (!parse_i64(argv[1], INT32_MIN, INT32_MAX, &cmd.qty))
    return invalid(c, "quantity '%s': a whole number", argv[1]);
  int rc = inventory_stream(c, argv[0], t.stream);
  if (rc)
    return rc;
  t.decider = inventory_decider();
  t.command = &cmd;
  t.sku = argv[0];
  return execute(c, &t);
}

/* ------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------ */

static int cmd_show(cli *c, int argc, char **argv) {
  (void)argc;
  esc_error err = ESC_ERROR_INIT;
  char stream[ESC_STREAM_ID_MAX + 1];
  order_view v;
  int rc = order_stream(c, argv[0], stream);
  if (rc)
    return rc;
  esc_query *q = open_query(c, &err);
  if (!q)
    return fail(c, &err);
  esc_status st = order_query_show(q, argv[0], &v, &err);
  esc_query_free(q);
  if (st)
    return fail(c, &err);
  if (c->json) {
    print_view_json(&v);
    putchar('\n');
  } else {
    print_view_text(&v);
  }
  return EXIT_OK_;
}

static int cmd_orders_of(cli *c, int argc, char **argv) {
  (void)argc;
  esc_error err = ESC_ERROR_INIT;
  char **ids = NULL;
  size_t n = 0;
  int rc = check_name(c, "customer", argv[0], ORDER_CUSTOMER_MAX);
  if (rc)
    return rc;
  esc_query *q = open_query(c, &err);
  if (!q)
    return fail(c, &err);
  esc_status st = order_query_of_customer(q, argv[0], &ids, &n, &err);
  if (st) {
    esc_query_free(q);
    return fail(c, &err);
  }
  if (c->json) {
    printf("{\"customer\":");
    json_str(argv[0]);
    printf(",\"orders\":[");
  } else if (n == 0) {
    printf("customer %s has no orders\n", argv[0]);
  } else {
    printf("%-24s %-10s %12s %s\n", "ORDER", "STATUS", "TOTAL", "LINES");
  }
  /* Newest first; each with its details (an order whose details are not
   * projected yet shows as "?"). */
  for (size_t i = 0; i < n; i++) {
    order_view v;
    esc_error verr = ESC_ERROR_INIT;
    bool have = order_query_show(q, ids[i], &v, &verr) == ESC_OK;
    if (c->json) {
      if (i > 0)
        putchar(',');
      if (have) {
        print_view_json(&v);
      } else {
        printf("{\"order\":");
        json_str(ids[i]);
        putchar('}');
      }
    } else if (have) {
      char t[32];
      printf("%-24s %-10s %12s %d\n", ids[i], v.status, money(v.total, t),
             v.lines);
    } else {
      printf("%-24s %-10s %12s %s\n", ids[i], "?", "?", "?");
    }
  }
  if (c->json)
    printf("]}\n");
  order_query_free_ids(ids, n);
  esc_query_free(q);
  return EXIT_OK_;
}

static int cmd_top_products(cli *c, int argc, char **argv) {
  esc_error err = ESC_ERROR_INIT;
  esc_query_items items = ESC_QUERY_ITEMS_INIT;
  int64_t n = 5;
  if (argc == 1 && !parse_i64(argv[0], 1, 10000, &n))
    return invalid(c, "N '%s': a number from 1 to 10000", argv[0]);
  esc_query *q = open_query(c, &err);
  if (!q)
    return fail(c, &err);
  esc_status st = order_query_top_products(q, (size_t)n, &items, &err);
  esc_query_free(q);
  if (st)
    return fail(c, &err);
  if (c->json) {
    printf("{\"top_products\":[");
    for (size_t i = 0; i < items.count; i++) {
      printf("%s{\"sku\":", i ? "," : "");
      json_str(items.items[i].name);
      printf(",\"shipped\":%.0f}", items.items[i].score);
    }
    printf("]}\n");
  } else if (items.count == 0) {
    printf("nothing shipped yet\n");
  } else {
    printf("%-4s %-32s %s\n", "RANK", "SKU", "SHIPPED");
    for (size_t i = 0; i < items.count; i++)
      printf("%-4zu %-32s %.0f\n", i + 1, items.items[i].name,
             items.items[i].score);
  }
  esc_query_items_release(&items);
  return EXIT_OK_;
}

static int cmd_revenue(cli *c, int argc, char **argv) {
  (void)argc;
  esc_error err = ESC_ERROR_INIT;
  char day[11], m[32];
  int64_t cents = 0;
  if (!parse_day(argv[0], day))
    return invalid(c, "day '%s': YYYY-MM-DD (UTC) or 'today'", argv[0]);
  esc_query *q = open_query(c, &err);
  if (!q)
    return fail(c, &err);
  esc_status st = order_query_revenue(q, day, &cents, &err);
  esc_query_free(q);
  if (st)
    return fail(c, &err);
  if (c->json)
    printf("{\"day\":\"%s\",\"revenue\":%" PRId64 "}\n", day, cents);
  else
    printf("revenue %s: %s (payments minus refunds)\n", day, money(cents, m));
  return EXIT_OK_;
}

/* ------------------------------------------------------------------------
 * The command table and help
 * ------------------------------------------------------------------------ */

static const char OPTIONS_HELP[] =
    "Options (anywhere on the line):\n"
    "  --pg URL          PostgreSQL (default: ESC_PG_URL, else the local "
    "server)\n"
    "  --redis URL       Redis (default: ESC_REDIS_URL, else the local "
    "server)\n"
    "  --schema S        event store schema (default: esc)\n"
    "  --json            print one JSON object\n"
    "  --wait MS         after a command, wait up to MS ms until the read\n"
    "                    model has it (read-your-writes), then print it\n"
    "  --partitions N    partitions the projections run with (default: as\n"
    "                    the workers registered them)\n"
    "  --command-id UUID identify the command: retrying it with the same id\n"
    "                    appends nothing twice\n"
    "  --correlation-id UUID\n"
    "                    the correlation id its events carry, and the\n"
    "                    fulfillment's commands after them (default: the\n"
    "                    command id); trace it with esc tail --json\n"
    "  --help            this help\n";

static const command_def COMMANDS[] = {
    {"place", "ORDER CUSTOMER SKU:QTY:PRICE...", "place an order", 3, -1,
     cmd_place,
     "Places order ORDER (stream order-ORDER) for CUSTOMER with 1 to 16\n"
     "lines; PRICE is per unit, in cents. Currency EUR.\n"
     "  order-cli place o-1 alice book-42:2:1250 pen-7:1:150\n"},
    {"add", "ORDER SKU:QTY:PRICE", "add a line to a placed order", 2, 2,
     cmd_add, "Adds a line while the order is placed (not yet confirmed).\n"},
    {"remove", "ORDER SKU", "remove a line from a placed order", 2, 2,
     cmd_remove, "Removes the line of SKU while the order is placed.\n"},
    {"confirm", "ORDER", "confirm an order (the saga reserves its stock)", 1, 1,
     cmd_confirm,
     "Confirms a placed order. The fulfillment saga (order-worker) then\n"
     "reserves every line's stock and marks the order ready, or cancels it\n"
     "when stock is short.\n"},
    {"pay", "ORDER AMOUNT", "record the payment (cents, = total)", 2, 2,
     cmd_pay,
     "Records a payment of AMOUNT cents, which must equal the total.\n"},
    {"ship", "ORDER CARRIER", "ship a paid, ready order", 2, 2, cmd_ship,
     "Ships an order that is paid and whose stock is reserved.\n"},
    {"cancel", "ORDER REASON", "cancel an order (refunds what was paid)", 2, 2,
     cmd_cancel,
     "Cancels an order that is not shipped; what was paid is refunded.\n"},
    {"stock-in", "SKU QTY", "add stock of a product", 2, 2, cmd_stock_in,
     "Adds QTY units of SKU to the inventory (stream inventory-SKU).\n"
     "With --wait, prints the projected stock level.\n"},
    {"show", "ORDER", "an order's details (read model)", 1, 1, cmd_show,
     "Shows an order as the order_details projection has it.\n"},
    {"orders-of", "CUSTOMER", "a customer's orders, newest first", 1, 1,
     cmd_orders_of,
     "Lists a customer's orders (orders_by_customer), newest first.\n"},
    {"top-products", "[N]", "best-selling products by shipped quantity", 0, 1,
     cmd_top_products, "The N (default 5) products shipped most.\n"},
    {"revenue", "DAY", "payments minus refunds of a day (UTC)", 1, 1,
     cmd_revenue,
     "Revenue of DAY (YYYY-MM-DD, UTC, or 'today'): payments received\n"
     "that day minus refunds made that day, in cents.\n"},
};

#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_main_help(FILE *out) {
  fputs("Usage: order-cli [options] COMMAND ARGS...\n"
        "The sample order domain: commands through esc_execute, queries on\n"
        "the read models order-worker keeps in Redis.\n\nCommands:\n",
        out);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(out, "  %-13s%-32s %s\n", COMMANDS[i].name, COMMANDS[i].operands,
            COMMANDS[i].summary);
  fputs("\n", out);
  fputs(OPTIONS_HELP, out);
  fputs("\nExit codes: 0 ok, 1 error, 2 usage, 3 conflict, 4 not found,\n"
        "5 connection, 6 invalid input, 7 rejected by the domain.\n",
        out);
}

static void print_command_help(const command_def *d) {
  printf("Usage: order-cli [options] %s %s\n\n%s\n%s", d->name, d->operands,
         d->help, OPTIONS_HELP);
}

static const command_def *find_command(const char *name) {
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(COMMANDS[i].name, name) == 0)
      return &COMMANDS[i];
  return NULL;
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

enum {
  OPT_PG = 1000,
  OPT_REDIS,
  OPT_SCHEMA,
  OPT_JSON,
  OPT_WAIT,
  OPT_PARTS,
  OPT_CMDID,
  OPT_CORRID,
  OPT_HELP
};

static const struct option LONGOPTS[] = {
    {"pg", required_argument, NULL, OPT_PG},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"schema", required_argument, NULL, OPT_SCHEMA},
    {"json", no_argument, NULL, OPT_JSON},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"partitions", required_argument, NULL, OPT_PARTS},
    {"command-id", required_argument, NULL, OPT_CMDID},
    {"correlation-id", required_argument, NULL, OPT_CORRID},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

/* Parses every option anywhere on the line (operands are permuted to the
 * end; "--" ends the options). Returns -1 to go on, else an exit code. */
static int parse_options(cli *c, int argc, char **argv, bool *help) {
  int64_t v;
  esc_error err = ESC_ERROR_INIT;
  optind = 0; /* glibc: full re-initialization */
  opterr = 0;
  for (;;) {
    int o = getopt_long(argc, argv, ":h", LONGOPTS, NULL);
    if (o == -1)
      return -1;
    switch (o) {
    case OPT_PG:
      c->pg_url = optarg;
      break;
    case OPT_REDIS:
      c->redis_url = optarg;
      break;
    case OPT_SCHEMA:
      c->schema = optarg;
      break;
    case OPT_JSON:
      c->json = true;
      break;
    case OPT_WAIT:
      if (!parse_i64(optarg, 0, 3600000, &v))
        return usage(c, "--wait '%s': milliseconds, 0 to 3600000", optarg);
      c->wait_ms = (int)v;
      break;
    case OPT_PARTS:
      if (!parse_i64(optarg, 1, 1024, &v))
        return usage(c, "--partitions '%s': 1 to 1024", optarg);
      c->partitions = (int)v;
      break;
    case OPT_CMDID:
      if (esc_uuid_parse(optarg, &c->command_id, &err))
        return usage(c, "--command-id: %s", err.msg);
      c->have_command_id = true;
      break;
    case OPT_CORRID:
      if (esc_uuid_parse(optarg, &c->correlation_id, &err))
        return usage(c, "--correlation-id: %s", err.msg);
      break;
    case 'h':
    case OPT_HELP:
      *help = true;
      break;
    case ':':
      return usage(c, "option '%s' needs a value", argv[optind - 1]);
    default:
      return usage(c, "unknown option '%s'",
                   optind > 0 && optind <= argc ? argv[optind - 1] : "?");
    }
  }
}

int main(int argc, char **argv) {
  cli c = {NULL, NULL, "esc", false, 0, 0, false, {{0}}, {{0}}, NULL};
  bool help = false;
  /* The command name decides what --help prints, so find it first. */
  const command_def *d = NULL;
  for (int i = 1; i < argc && !d; i++) {
    if (strcmp(argv[i], "--") == 0)
      break;
    if (argv[i][0] != '-')
      d = find_command(argv[i]);
  }
  if (d)
    c.command = d->name;
  int rc = parse_options(&c, argc, argv, &help);
  if (rc >= 0)
    return rc;
  int nops = argc - optind;
  char **ops = argv + optind;
  if (help) {
    if (d)
      print_command_help(d);
    else
      print_main_help(stdout);
    return EXIT_OK_;
  }
  if (nops == 0) {
    print_main_help(stderr);
    return EXIT_USAGE_;
  }
  /* The pre-scan may have taken an option's value for the command. */
  d = find_command(ops[0]);
  c.command = d ? d->name : NULL;
  if (!d)
    return usage(&c, "unknown command '%s'", ops[0]);
  int n = nops - 1;
  if (n < d->min_args || (d->max_args >= 0 && n > d->max_args)) {
    char msg[160];
    snprintf(msg, sizeof msg, "expected %s", d->operands);
    return usage(&c, "%s", msg);
  }
  return d->run(&c, n, ops + 1);
}

/*
 * Order fulfillment as a process manager (<esc/process.h>); one instance
 * per order, its id the order id.
 *
 *   OrderConfirmed    reserve each line's stock (one command per line)
 *   all reserved      mark the order ready, schedule "payment"
 *   a line refused    cancel the order, release what was reserved
 *   PaymentReceived   cancel "payment"
 *   "payment" fires   cancel the unpaid order, release its stock
 *   OrderCancelled    release the stock (unless already given back),
 *                     refund what was paid
 *   ends              when shipped or cancelled, once no reservation is
 *                     unanswered and any refund is answered
 *
 * A reservation answered after the stock was given back is released when
 * its answer comes. Command ids come from the runtime (see process.h), so
 * nothing here needs step names or checkpoints: that is what the 403-line
 * saga.c did by hand.
 */
#include "order.h"

#include <esc/process.h>

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum line_status { LINE_PENDING, LINE_RESERVED, LINE_REFUSED };

typedef struct fulfillment_state {
  bool started, releasing, ready, paid, awaiting_payment, cancelled, shipped;
  bool refund_answered;
  /* What the input being handled changed, for decide: */
  bool was_awaiting_payment, was_releasing;
  order_line lines[ORDER_MAX_LINES];
  int line_status[ORDER_MAX_LINES];
  int line_count;
  int64_t refund; /* of the OrderCancelled */
} fulfillment_state;

/* ------------------------------------------------------------------------
 * The two command types: decoded into a struct that holds the strings the
 * command points to, the command first (what esc_execute hands decide)
 * ------------------------------------------------------------------------ */

typedef struct inventory_command {
  inventory_cmd cmd;
  char order[ORDER_ID_MAX];
} inventory_command;

typedef struct order_command {
  order_cmd cmd;
  char reason[ORDER_TEXT_MAX];
} order_command;

static int encode_inventory(const void *command, msgpack_packer *pk) {
  const inventory_cmd *c = command;
  msgpack_pack_map(pk, 3);
  esc_pack_key(pk, "kind");
  msgpack_pack_int(pk, (int)c->kind);
  esc_pack_key(pk, "qty");
  msgpack_pack_int64(pk, c->qty);
  esc_pack_key(pk, "order");
  esc_pack_str(pk, c->order ? c->order : "");
  return 0;
}

static esc_status decode_inventory(const msgpack_object *obj, void *command,
                                   esc_error *err) {
  inventory_command *c = command;
  int64_t kind;
  if (!esc_map_i64(obj, "kind", &kind) || kind < INVENTORY_STOCK_IN ||
      kind > INVENTORY_RELEASE || !esc_map_i64(obj, "qty", &c->cmd.qty) ||
      !esc_map_str(obj, "order", c->order, sizeof c->order))
    return esc_error_set(err, ESC_EINVAL,
                         "InventoryCommand: needs kind, qty and order");
  c->cmd.kind = (inventory_cmd_kind)kind;
  c->cmd.order = c->order;
  return ESC_OK;
}

/* Only the kinds the process issues: mark ready, cancel, refund. */
static int encode_order(const void *command, msgpack_packer *pk) {
  const order_cmd *c = command;
  msgpack_pack_map(pk, 3);
  esc_pack_key(pk, "kind");
  msgpack_pack_int(pk, (int)c->kind);
  esc_pack_key(pk, "amount");
  msgpack_pack_int64(pk, c->amount);
  esc_pack_key(pk, "reason");
  esc_pack_str(pk, c->reason ? c->reason : "");
  return c->kind == ORDER_MARK_READY || c->kind == ORDER_CANCEL ||
                 c->kind == ORDER_REFUND
             ? 0
             : -1;
}

static esc_status decode_order(const msgpack_object *obj, void *command,
                               esc_error *err) {
  order_command *c = command;
  int64_t kind;
  if (!esc_map_i64(obj, "kind", &kind) ||
      (kind != ORDER_MARK_READY && kind != ORDER_CANCEL &&
       kind != ORDER_REFUND) ||
      !esc_map_i64(obj, "amount", &c->cmd.amount) ||
      !esc_map_str(obj, "reason", c->reason, sizeof c->reason))
    return esc_error_set(err, ESC_EINVAL,
                         "OrderCommand: needs kind (ready, cancel or refund), "
                         "amount and reason");
  c->cmd.kind = (order_cmd_kind)kind;
  c->cmd.reason = c->reason;
  return ESC_OK;
}

static esc_process_command_type inventory_type = {
    "InventoryCommand", NULL, sizeof(inventory_command), encode_inventory,
    decode_inventory};
static esc_process_command_type order_type = {
    "OrderCommand", NULL, sizeof(order_command), encode_order, decode_order};

/* ------------------------------------------------------------------------
 * Evolve: what the order and its stock are known to be
 * ------------------------------------------------------------------------ */

static int line_of(const fulfillment_state *s, const char *stream_id) {
  const char *sku = strchr(stream_id, '-');
  for (int i = 0; sku && i < s->line_count; i++)
    if (strcmp(s->lines[i].sku, sku + 1) == 0)
      return i;
  return -1;
}

static void evolve_event(fulfillment_state *s, const esc_event *e) {
  if (e->type == &ORDER_CONFIRMED && !s->started) {
    const order_confirmed *c = e->data;
    s->started = true;
    s->line_count = c->line_count;
    memcpy(s->lines, c->lines, sizeof s->lines);
  } else if (e->type == &ORDER_PAID) {
    s->paid = true;
    s->awaiting_payment = false;
  } else if (e->type == &ORDER_CANCELLED) {
    s->cancelled = true;
    s->awaiting_payment = false;
    s->refund = ((const order_cancelled *)e->data)->refund;
  } else if (e->type == &ORDER_SHIPPED) {
    s->shipped = true;
  }
}

static void evolve_outcome(fulfillment_state *s, const esc_process_outcome *o) {
  if (o->type == &order_type) {
    const order_cmd *c = o->command;
    if (c->kind == ORDER_MARK_READY && o->accepted) {
      s->ready = true;
      s->awaiting_payment = !s->paid;
    }
    s->refund_answered |= c->kind == ORDER_REFUND;
    return;
  }
  const inventory_cmd *c = o->command;
  int i = line_of(s, o->stream_id);
  if (c->kind == INVENTORY_RESERVE && i >= 0)
    s->line_status[i] = o->accepted ? LINE_RESERVED : LINE_REFUSED;
}

/* Stock goes back once: after a refusal, the deadline or a cancellation. */
static void evolve(void *state, const esc_process_input *in, void *userdata) {
  fulfillment_state *s = state;
  (void)userdata;
  s->was_awaiting_payment = s->awaiting_payment;
  s->was_releasing = s->releasing;
  if (in->event)
    evolve_event(s, in->event);
  else if (in->outcome)
    evolve_outcome(s, in->outcome);
  else
    s->awaiting_payment = false; /* the payment deadline fired */
  for (int i = 0; i < s->line_count; i++)
    s->releasing |= s->line_status[i] == LINE_REFUSED;
  s->releasing |= s->cancelled || in->deadline;
}

/* ------------------------------------------------------------------------
 * Decide
 * ------------------------------------------------------------------------ */

static esc_status to_inventory(esc_process_decisions *d, const char *order,
                               inventory_cmd_kind kind, const order_line *l) {
  char stream[ESC_STREAM_ID_MAX + 1];
  snprintf(stream, sizeof stream, "inventory-%s", l->sku);
  inventory_cmd c = {kind, l->qty, order};
  return esc_process_issue(d, &inventory_type, stream, &c);
}

static esc_status to_order(esc_process_decisions *d, const char *order,
                           const order_cmd *c) {
  char stream[ESC_STREAM_ID_MAX + 1];
  snprintf(stream, sizeof stream, "order-%s", order);
  return esc_process_issue(d, &order_type, stream, c);
}

/* Releases every line reserved (line -1), or just that line. */
static esc_status release(const fulfillment_state *s, esc_process_decisions *d,
                          const char *order, int line) {
  esc_status rc = ESC_OK;
  for (int i = 0; i < s->line_count && rc == ESC_OK; i++)
    if ((line < 0 || i == line) && s->line_status[i] == LINE_RESERVED)
      rc = to_inventory(d, order, INVENTORY_RELEASE, &s->lines[i]);
  return rc;
}

static bool all_reserved(const fulfillment_state *s) {
  for (int i = 0; i < s->line_count; i++)
    if (s->line_status[i] != LINE_RESERVED)
      return false;
  return true;
}

static esc_status decide_outcome(const fulfillment_state *s,
                                 const esc_process_input *in,
                                 esc_process_decisions *d, int64_t timeout) {
  const esc_process_outcome *o = in->outcome;
  const order_cmd *oc = o->command;
  if (o->type == &order_type)
    return oc->kind == ORDER_MARK_READY && s->awaiting_payment
               ? esc_process_schedule_in(d, "payment", timeout)
               : ESC_OK;
  if (((const inventory_cmd *)o->command)->kind != INVENTORY_RESERVE)
    return ESC_OK; /* a release: nothing follows */
  if (!o->accepted && !s->was_releasing) {
    /* The first refusal starts the compensation; later ones find the
     * order cancelled, or about to be. */
    char reason[ORDER_TEXT_MAX];
    snprintf(reason, sizeof reason, "cannot reserve %.31s: %.47s",
             o->stream_id + strlen("inventory-"), o->message);
    order_cmd cancel = {.kind = ORDER_CANCEL, .reason = reason};
    esc_status rc = to_order(d, in->instance, &cancel);
    return rc ? rc : release(s, d, in->instance, -1);
  }
  if (s->releasing)
    return o->accepted ? release(s, d, in->instance, line_of(s, o->stream_id))
                       : ESC_OK;
  order_cmd ready = {.kind = ORDER_MARK_READY};
  return all_reserved(s) ? to_order(d, in->instance, &ready) : ESC_OK;
}

static esc_status decide_event(const fulfillment_state *s,
                               const esc_process_input *in,
                               esc_process_decisions *d) {
  const esc_event_type *t = in->event->type;
  esc_status rc = ESC_OK;
  if (t == &ORDER_CONFIRMED) {
    for (int i = 0; i < s->line_count && rc == ESC_OK; i++)
      rc = to_inventory(d, in->instance, INVENTORY_RESERVE, &s->lines[i]);
    return rc;
  }
  if ((t == &ORDER_PAID || t == &ORDER_CANCELLED) && s->was_awaiting_payment)
    rc = esc_process_cancel(d, "payment");
  if (rc == ESC_OK && t == &ORDER_CANCELLED && !s->was_releasing)
    rc = release(s, d, in->instance, -1);
  if (rc == ESC_OK && t == &ORDER_CANCELLED && s->refund > 0) {
    order_cmd refund = {.kind = ORDER_REFUND, .amount = s->refund};
    rc = to_order(d, in->instance, &refund);
  }
  return rc;
}

static esc_status decide(const void *state, const esc_process_input *in,
                         esc_process_decisions *d, void *userdata) {
  const fulfillment_state *s = state;
  const order_fulfillment_options *o = userdata;
  if (in->event)
    return decide_event(s, in, d);
  if (in->outcome)
    return decide_outcome(s, in, d, o->payment_timeout_us);
  char reason[ORDER_TEXT_MAX];
  snprintf(reason, sizeof reason, "not paid within %lld s",
           (long long)(o->payment_timeout_us / 1000000));
  order_cmd cancel = {.kind = ORDER_CANCEL, .reason = reason};
  esc_status rc = to_order(d, in->instance, &cancel);
  return rc ? rc : release(s, d, in->instance, -1);
}

static bool is_terminal(const void *state) {
  const fulfillment_state *s = state;
  for (int i = 0; i < s->line_count; i++)
    if (s->line_status[i] == LINE_PENDING)
      return false; /* its answer may still need a release */
  return (s->shipped || s->cancelled) && (s->refund <= 0 || s->refund_answered);
}

/* ------------------------------------------------------------------------
 * Snapshots: the state as one map
 *   {flags, lines: [{sku, qty, price}], status: [line status], refund}
 * flags holds the booleans, bit i for FLAGS[i]. Bump FULFILLMENT_STATE_
 * VERSION when this shape, or what evolve makes of an input, changes:
 * older snapshots are then ignored and instance streams folded again.
 * ------------------------------------------------------------------------ */

#define FULFILLMENT_STATE_VERSION 1
/* An order's instance stream is a few records per line (reserve, its
 * answer, maybe a release and its answer) plus a handful; 50 keeps even
 * the largest orders to one snapshot, taken late in their life. */
#define FULFILLMENT_SNAPSHOT_EVERY 50

static const size_t FLAGS[] = {
    offsetof(fulfillment_state, started),
    offsetof(fulfillment_state, releasing),
    offsetof(fulfillment_state, ready),
    offsetof(fulfillment_state, paid),
    offsetof(fulfillment_state, awaiting_payment),
    offsetof(fulfillment_state, cancelled),
    offsetof(fulfillment_state, shipped),
    offsetof(fulfillment_state, refund_answered),
    offsetof(fulfillment_state, was_awaiting_payment),
    offsetof(fulfillment_state, was_releasing),
};
#define FLAG_COUNT (sizeof FLAGS / sizeof FLAGS[0])

static bool *flag(fulfillment_state *s, size_t i) {
  return (bool *)((char *)s + FLAGS[i]);
}

static bool flag_of(const fulfillment_state *s, size_t i) {
  return *(const bool *)((const char *)s + FLAGS[i]);
}

static int encode_state(const void *state, msgpack_packer *pk, void *userdata) {
  const fulfillment_state *s = state;
  uint64_t flags = 0;
  (void)userdata;
  for (size_t i = 0; i < FLAG_COUNT; i++)
    flags |= (uint64_t)flag_of(s, i) << i;
  msgpack_pack_map(pk, 4);
  esc_pack_key(pk, "flags");
  msgpack_pack_uint64(pk, flags);
  esc_pack_key(pk, "lines");
  if (order_lines_pack(pk, s->lines, s->line_count))
    return -1;
  esc_pack_key(pk, "status");
  msgpack_pack_array(pk, (size_t)s->line_count);
  for (int i = 0; i < s->line_count; i++)
    msgpack_pack_int(pk, s->line_status[i]);
  esc_pack_key(pk, "refund");
  return msgpack_pack_int64(pk, s->refund);
}

static esc_status decode_status(const msgpack_object *obj, fulfillment_state *s,
                                esc_error *err) {
  const msgpack_object *v = esc_map_get(obj, "status");
  if (!v || v->type != MSGPACK_OBJECT_ARRAY ||
      v->via.array.size != (uint32_t)s->line_count)
    return esc_error_set(err, ESC_EINVAL,
                         "fulfillment snapshot: \"status\" must be an array "
                         "of one status per line");
  for (int i = 0; i < s->line_count; i++) {
    const msgpack_object *o = &v->via.array.ptr[i];
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > LINE_REFUSED)
      return esc_error_set(err, ESC_EINVAL,
                           "fulfillment snapshot: \"status\"[%d] must be "
                           "0, 1 or 2",
                           i);
    s->line_status[i] = (int)o->via.u64;
  }
  return ESC_OK;
}

/* Decodes into a copy, so state is untouched on failure. */
static esc_status decode_state(const msgpack_object *obj, void *state,
                               void *userdata, esc_error *err) {
  fulfillment_state s;
  int64_t flags = 0;
  (void)userdata;
  memset(&s, 0, sizeof s);
  if (!esc_map_i64(obj, "flags", &flags) || flags < 0 ||
      flags >= (INT64_C(1) << FLAG_COUNT))
    return esc_error_set(err, ESC_EINVAL,
                         "fulfillment snapshot: \"flags\" must be an integer "
                         "of %zu bits",
                         FLAG_COUNT);
  for (size_t i = 0; i < FLAG_COUNT; i++)
    *flag(&s, i) = (flags >> i) & 1;
  esc_status rc = order_lines_unpack(obj, "fulfillment snapshot", s.lines,
                                     &s.line_count, err);
  if (rc == ESC_OK)
    rc = decode_status(obj, &s, err);
  if (rc == ESC_OK && !esc_map_i64(obj, "refund", &s.refund))
    rc = esc_error_set(err, ESC_EINVAL,
                       "fulfillment snapshot: \"refund\" must be an integer");
  if (rc == ESC_OK)
    memcpy(state, &s, sizeof s);
  return rc;
}

/* The order id: the stream id after "order-". */
static bool correlate(const esc_event *e, char *instance, size_t size,
                      void *userdata) {
  (void)userdata;
  const char *dash = strchr(e->recorded->stream_id, '-');
  return dash && snprintf(instance, size, "%s", dash + 1) > 0;
}

/* ------------------------------------------------------------------------
 * The definition
 * ------------------------------------------------------------------------ */

static const char *const categories[] = {"order", NULL};
static const char *const starts[] = {"OrderConfirmed", NULL};
static const char *const continues[] = {"PaymentReceived", "OrderCancelled",
                                        "OrderShipped", NULL};
static const esc_process_command_type *const commands[] = {&inventory_type,
                                                           &order_type, NULL};
static pthread_once_t types_once = PTHREAD_ONCE_INIT;

static void build_types(void) {
  inventory_type.decider = inventory_decider();
  order_type.decider = order_decider();
}

const esc_process_command_type *order_inventory_command(void) {
  pthread_once(&types_once, build_types);
  return &inventory_type;
}

const esc_process_command_type *order_order_command(void) {
  pthread_once(&types_once, build_types);
  return &order_type;
}

void order_fulfillment_init(esc_process *p,
                            const order_fulfillment_options *o) {
  pthread_once(&types_once, build_types);
  memset(p, 0, sizeof *p);
  p->name = "fulfillment";
  p->events = order_events();
  p->categories = categories;
  p->starts = starts;
  p->continues = continues;
  p->commands = commands;
  p->correlate = correlate;
  p->state_size = sizeof(fulfillment_state);
  p->evolve = evolve;
  p->decide = decide;
  p->is_terminal = is_terminal;
  p->userdata = (void *)o;
  p->snapshot_every = FULFILLMENT_SNAPSHOT_EVERY;
  p->state_version = FULFILLMENT_STATE_VERSION;
  p->encode_state = encode_state;
  p->decode_state = decode_state;
}

/*
 * The program of docs/tutorial-first-command.md: a shopping cart decider
 * executed against a real event store. Built as build/tutorial-first-command
 * and run by ctest, so the tutorial cannot drift from the code.
 */
#include <esc/command.h>

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- 1 -- */
/* Events: what happened, as C structs whose fields are declared once.  */

typedef struct item_added {
  char sku[32];
  int64_t qty;
} item_added;

typedef struct cart_checked_out {
  int64_t items;
} cart_checked_out;

static const esc_field item_added_fields[] = {
    ESC_FIELD_STR(item_added, sku, "sku", 31, ESC_REQUIRED),
    ESC_FIELD_I64(item_added, qty, "qty", ESC_REQUIRED), ESC_FIELD_END};

static const esc_field checked_out_fields[] = {
    ESC_FIELD_I64(cart_checked_out, items, "items", ESC_REQUIRED),
    ESC_FIELD_END};

ESC_STATIC_EVENT_TYPE(ITEM_ADDED, "ItemAdded", 1, item_added,
                      item_added_fields, NULL);
ESC_STATIC_EVENT_TYPE(CART_CHECKED_OUT, "CartCheckedOut", 1, cart_checked_out,
                      checked_out_fields, NULL);

/* ---------------------------------------------------------------- 2 -- */
/* State: what decide needs to know, folded from the events.             */

typedef struct cart {
  int64_t items;
  bool checked_out;
} cart;

static void cart_init(void *state) {
  (void)state; /* the runtime zeroes it: an empty, open cart */
}

static void cart_evolve(void *state, const esc_event *event) {
  cart *c = state;
  if (event->type == &ITEM_ADDED)
    c->items += ((const item_added *)event->data)->qty;
  else if (event->type == &CART_CHECKED_OUT)
    c->checked_out = true;
}

/* ---------------------------------------------------------------- 3 -- */
/* Commands and decide: the rules.                                        */

enum cart_error { CART_CLOSED = 1, CART_EMPTY = 2, CART_BAD_QTY = 3 };

typedef struct cart_command {
  enum { ADD_ITEM, CHECK_OUT } kind;
  const char *sku;
  int64_t qty;
} cart_command;

static int cart_decide(const void *state, const void *command,
                       esc_decision *d) {
  const cart *c = state;
  const cart_command *cmd = command;
  if (c->checked_out)
    return esc_decision_reject(d, CART_CLOSED, "the cart is checked out");
  if (cmd->kind == ADD_ITEM) {
    if (cmd->qty <= 0)
      return esc_decision_reject(d, CART_BAD_QTY,
                                 "quantity must be positive, got %lld",
                                 (long long)cmd->qty);
    item_added e = {.qty = cmd->qty};
    snprintf(e.sku, sizeof e.sku, "%s", cmd->sku);
    esc_decision_emit(d, &ITEM_ADDED, &e);
    return 0;
  }
  if (c->items == 0)
    return esc_decision_reject(d, CART_EMPTY, "an empty cart cannot check out");
  esc_decision_emit(d, &CART_CHECKED_OUT, &(cart_checked_out){c->items});
  return 0;
}

/* ---------------------------------------------------------------- 4 -- */
/* Wiring it up and running commands.                                     */

static int failures;

static void show(const char *what, esc_status rc, const esc_command_result *r,
                 const esc_error *err) {
  if (rc == ESC_OK)
    printf("%-28s ok: %zu event(s), cart at version %lld%s\n", what,
           r->event_count, (long long)r->version,
           r->duplicate ? " (a repeat: first result)" : "");
  else
    printf("%-28s %s: %s\n", what, esc_strerror(rc), err->msg);
}

static void expect(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "tutorial: unexpected outcome: %s\n", what);
    failures++;
  }
}

int main(void) {
  esc_error err = ESC_ERROR_INIT;
  esc_event_registry *events = esc_event_registry_new(&err);
  if (!events || esc_event_registry_add(events, &ITEM_ADDED, &err) ||
      esc_event_registry_add(events, &CART_CHECKED_OUT, &err)) {
    fprintf(stderr, "registry: %s\n", err.msg);
    return 1;
  }
  const esc_decider cart_decider = {.category = "cart",
                                    .events = events,
                                    .state_size = sizeof(cart),
                                    .init = cart_init,
                                    .evolve = cart_evolve,
                                    .decide = cart_decide};

  esc_store_options opts = ESC_STORE_OPTIONS_INIT;
  opts.schema = "tutorial";
  esc_store *store = esc_store_open(NULL, &opts, &err); /* ESC_PG_URL */
  if (!store || esc_store_migrate(store, NULL, &err)) {
    fprintf(stderr, "store: %s\n", err.msg);
    esc_store_free(store);
    esc_event_registry_free(events);
    return 1;
  }

  char stream[64], id[37];
  esc_uuid cart_id = esc_uuid_v4();
  esc_uuid_format(&cart_id, id);
  snprintf(stream, sizeof stream, "cart-%s", id);
  printf("cart stream: %s\n", stream);

  esc_command_result r;
  esc_status rc;
  rc = esc_execute(store, &cart_decider, stream,
                   &(cart_command){ADD_ITEM, "book-42", 2}, NULL, &r, &err);
  show("add 2 x book-42", rc, &r, &err);
  expect(rc == ESC_OK && r.version == 1, "first add");

  rc = esc_execute(store, &cart_decider, stream,
                   &(cart_command){ADD_ITEM, "pen-7", 0}, NULL, &r, &err);
  show("add 0 x pen-7", rc, &r, &err);
  expect(rc == ESC_EREJECTED && r.domain_code == CART_BAD_QTY, "bad qty");

  /* A command id makes a command safe to retry. */
  esc_command_options checkout = ESC_COMMAND_OPTIONS_INIT;
  checkout.command_id = esc_uuid_v4();
  checkout.actor = "tutorial";
  rc = esc_execute(store, &cart_decider, stream,
                   &(cart_command){.kind = CHECK_OUT}, &checkout, &r, &err);
  show("check out", rc, &r, &err);
  expect(rc == ESC_OK && r.version == 2 && !r.duplicate, "checkout");

  rc = esc_execute(store, &cart_decider, stream,
                   &(cart_command){.kind = CHECK_OUT}, &checkout, &r, &err);
  show("check out again, same id", rc, &r, &err);
  expect(rc == ESC_OK && r.duplicate && r.version == 2, "retried checkout");

  rc = esc_execute(store, &cart_decider, stream,
                   &(cart_command){.kind = CHECK_OUT}, NULL, &r, &err);
  show("check out, a new command", rc, &r, &err);
  expect(rc == ESC_EREJECTED && r.domain_code == CART_CLOSED, "closed");

  cart state;
  int64_t version = 0;
  rc = esc_load_state(store, &cart_decider, stream, &state, &version, &err);
  printf("state at version %lld: %lld item(s), %s\n", (long long)version,
         (long long)state.items, state.checked_out ? "checked out" : "open");
  expect(rc == ESC_OK && state.items == 2 && state.checked_out, "state");

  esc_store_free(store);
  esc_event_registry_free(events);
  return failures ? 1 : 0;
}

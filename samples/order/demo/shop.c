/*
 * order-demo: the shop - products, prices (cents), how popular, how much
 * stock - and stocking it before the customers come.
 */
#include "demo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

const product CATALOG[] = {
    {"book-42", 1250, 10, false}, {"pen-7", 150, 10, false},
    {"mug-3", 899, 8, false},     {"notebook-4", 350, 8, false},
    {"cable-9", 499, 7, false},   {"lamp-5", 3499, 5, false},
    {"poster-6", 1200, 5, false}, {"headphones-8", 5999, 4, true},
    {"chair-2", 8900, 3, true},   {"desk-1", 24900, 2, true},
};

_Static_assert(sizeof CATALOG / sizeof CATALOG[0] == CATALOG_SIZE,
               "CATALOG_SIZE is the number of products");

/* ------------------------------------------------------------------------
 * Stock
 * ------------------------------------------------------------------------ */

/* Plenty of every product, except the scarce ones: about a third of what
 * the orders will ask for, so the saga cancels some orders. */
static int64_t stock_for(const demo_opts *o, const product *p) {
  return p->scarce ? (o->orders + 7) / 8 : (int64_t)o->orders * 2;
}

esc_status stock_products(demo *d, esc_store *st, esc_error *err) {
  char scarce[160] = "";
  for (int i = 0; i < CATALOG_SIZE; i++) {
    char stream[ESC_STREAM_ID_MAX + 1];
    inventory_cmd cmd = {INVENTORY_STOCK_IN, stock_for(&d->o, &CATALOG[i]),
                         NULL};
    esc_command_options co = ESC_COMMAND_OPTIONS_INIT;
    esc_command_result r;
    co.actor = "order-demo";
    snprintf(stream, sizeof stream, "inventory-%s", CATALOG[i].sku);
    esc_status rc =
        esc_execute(st, inventory_decider(), stream, &cmd, &co, &r, err);
    if (rc == ESC_EREJECTED)
      return esc_error_set(err, ESC_EREJECTED, "stock in %s: %s",
                           CATALOG[i].sku, r.domain_msg);
    if (rc)
      return rc;
    if (CATALOG[i].scarce) {
      size_t len = strlen(scarce);
      snprintf(scarce + len, sizeof scarce - len, "%s%s", len ? ", " : "",
               CATALOG[i].sku);
    }
  }
  printf("- stocked %d products: %" PRId64 " units each, but only %" PRId64
         " of the scarce %s\n",
         CATALOG_SIZE, stock_for(&d->o, &CATALOG[0]),
         stock_for(&d->o, &CATALOG[CATALOG_SIZE - 1]), scarce);
  return ESC_OK;
}

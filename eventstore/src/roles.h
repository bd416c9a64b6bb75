/* The writer and reader roles of a store (roles.c). */
#ifndef ESC_ROLES_H
#define ESC_ROLES_H

#include "store_int.h"

#define ESC__ROLE_MAX ESC_ROLE_NAME_MAX

/* The roles migrations of this store grant to (writer and reader have
 * ESC__ROLE_MAX bytes): those recorded, those of a store made before
 * migration 10, or for a new store the ones o names or the defaults,
 * refused when they hold rights elsewhere and o does not share them. */
esc_status esc__roles_resolve(esc_store *st, const esc_migrate_options *o,
                              char *writer, char *reader, esc_error *err);

#endif

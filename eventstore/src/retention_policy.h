/* Retention policies, shared by retention_policy.c and retention_run.c. */
#ifndef ESC_RETENTION_POLICY_H
#define ESC_RETENTION_POLICY_H

#include "store_int.h"

/* "stream" or "category", as the retention_policies table spells it. */
const char *esc__retention_scope_name(esc_retention_scope scope);

/*
 * Fills p from columns col.. of a text result: kind, target, max_age_s,
 * max_count, set_by, set_at (as epoch microseconds). NULL limits are 0.
 */
void esc__retention_policy_row(const PGresult *res, int row, int col,
                               esc_retention_policy *p);

/* The policy columns in that order, for SQL text. */
#define ESC__RETENTION_POLICY_COLUMNS                                          \
  "kind, target, max_age_s, max_count, set_by, "                               \
  "(extract(epoch FROM set_at) * 1e6)::int8"

#endif

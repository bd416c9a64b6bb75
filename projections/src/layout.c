/*
 * The partition layout, worker side. The store's layout (PostgreSQL,
 * registry.c) says which partition counts may run a projection: the
 * layout's, and during a repartition also the new one. A worker of any
 * other count refuses the projection rather than start a rebuild of its
 * own: two workers that disagree would otherwise take turns rebuilding,
 * and both apply into the same generation (issue 10; docs/decisions/
 * 0012-partition-layout.md).
 *
 * Which generation a worker applies into is decided in generation.c: only
 * ones whose partition count is the worker's own.
 */
#include "worker_int.h"

#include <stdio.h>

int esc__def_partitions(const esc_projection *p) {
  return p->partitions > 0 ? p->partitions : 1;
}

int esc__layout_target(const struct esc__layout *l) {
  return l->repartition_to ? l->repartition_to : l->partitions;
}

static const char *plural(int n) {
  return n == 1 ? "" : "s";
}

esc_status esc__layout_admit(esc_worker *w, const struct proj *pj,
                             esc_error *err) {
  const struct esc__layout *l = &pj->layout;
  const char *name = pj->def->name;
  int mine = esc__def_partitions(pj->def);
  if (mine == l->partitions || mine == l->repartition_to)
    return ESC_OK;
  if (l->repartition_to)
    esc_error_set(err, ESC_ECONFLICT,
                  "projection \"%s\": this worker runs %d partition%s but "
                  "the store's layout has %d, being changed to %d by a "
                  "repartition; run the worker with --partitions %d or %d",
                  name, mine, plural(mine), l->partitions, l->repartition_to,
                  l->partitions, l->repartition_to);
  else
    esc_error_set(err, ESC_ECONFLICT,
                  "projection \"%s\": this worker runs %d partition%s but "
                  "the store's layout has %d; run the worker with "
                  "--partitions %d, or change the layout with \"esc "
                  "projections repartition %s %d\"",
                  name, mine, plural(mine), l->partitions, l->partitions, name,
                  mine);
  if (err)
    esc__worker_log(w, "%s", err->msg);
  return ESC_ECONFLICT;
}

esc_status esc__layout_register(esc_worker *w, struct proj *pj,
                                esc_error *err) {
  esc_status rc =
      pj->sub ? esc__subscription_register(w, pj, err)
              : esc__registry_upsert(w->pg, w->schema, pj->def, &pj->layout,
                                     err);
  if (!rc)
    rc = esc__layout_admit(w, pj, err);
  pj->registered = !rc;
  return rc;
}

esc_status esc__layout_refresh(esc_worker *w, struct proj *pj, bool *requested,
                               esc_error *err) {
  bool found = false;
  const char *name = pj->def->name;
  esc_status rc =
      esc__registry_read(w->pg, w->schema, name, &pj->layout, &found, err);
  *requested = !rc && pj->layout.rebuild_requested;
  if (!rc && !found)
    return esc__layout_register(w, pj, err); /* someone deleted the row */
  /* The switching worker updates PostgreSQL right after Redis; one that
   * died in between leaves the new layout serving and the change pending.
   * Whoever sees that finishes it. So does a worker that found the new
   * layout serving already (Redis lost the keys and a worker of the new
   * count built them again): then the repartition's rebuild request is
   * moot and taken with it (an `esc rebuild` made meanwhile goes too). */
  int to = pj->layout.repartition_to;
  if (!rc && to && pj->serving_partitions == to) {
    rc = esc__registry_layout_switched(w->pg, w->schema, name, to, err);
    if (!rc && *requested)
      rc = esc__registry_rebuild_taken(w->pg, w->schema, name, err);
    *requested = false;
    if (!rc) {
      esc__worker_log(w, "%s: the layout is now %d partition%s", name, to,
                      plural(to));
      pj->layout.partitions = to;
      pj->layout.repartition_to = 0;
    }
  }
  return rc ? rc : esc__layout_admit(w, pj, err);
}

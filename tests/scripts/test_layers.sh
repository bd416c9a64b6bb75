#!/usr/bin/env bash
# scripts/check-layers passes on the tree, and fails on a copy of it with a
# deliberate breach of each rule, naming the file, the line and the rule.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
fail=0
"$root/scripts/check-layers" "$root" || { echo "the tree breaks its layering" >&2; fail=1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The copy: the layer table and the modules' sources, nothing built.
mkdir -p "$work/docs"
cp "$root/docs/architecture.md" "$work/docs/"
for d in eventstore events commands projections metrics queries testkit cli bench samples; do
  [ -d "$root/$d" ] && cp -r "$root/$d" "$work/$d"
done

expect_breach() { # FILE LINE-TO-ADD EXPECTED-MESSAGE-PART
  local file=$1 line=$2 want=$3 out rc=0
  cp "$work/$file" "$work/$file.orig"
  echo "$line" >>"$work/$file"
  out=$("$root/scripts/check-layers" "$work" 2>&1) || rc=$?
  mv "$work/$file.orig" "$work/$file"
  if [[ $rc -ne 1 || "$out" != *"$file:"*"$want"* ]]; then
    echo "adding '$line' to $file: exit $rc, output: $out (want exit 1 and '$want')" >&2
    fail=1
  fi
}
expect_breach eventstore/src/ids.c '#include <esc/projection.h>' \
  'eventstore (layer 1) includes <esc/projection.h> of projections (layer 4)'
expect_breach events/src/registry.c '#include <esc/command.h>' \
  'events (layer 2) includes <esc/command.h> of commands (layer 3)'
expect_breach commands/src/load.c '#include <esc_internal/readmodel.h>' \
  'commands (layer 3) includes <esc_internal/readmodel.h> of projections'
expect_breach queries/src/reply.c '#include "projection_int.h"' \
  "includes \"projection_int.h\", which is not a header of its own folder"
expect_breach cli/json.c '#include <esc_internal/pg.h>' \
  "only esc's modules may use an internal interface"
expect_breach projections/src/admin.c '  "SELECT count(*) FROM %s.events", ident);' \
  "queries the log's tables itself"
expect_breach projections/src/keys.c '#include <esc/nowhere.h>' \
  'which no module of the table provides'

# Without its table the check cannot run: exit 2, not a silent pass.
rm "$work/docs/architecture.md"
rc=0
"$root/scripts/check-layers" "$work" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || { echo "no layer table: exit $rc, want 2" >&2; fail=1; }
exit $fail

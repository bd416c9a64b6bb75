#!/usr/bin/env bash
# tests/console/run.sh ESC SHOTS_DIR - the console's browser tests: makes a
# schema of its own with sample data, starts two consoles (one on it, one
# whose PostgreSQL is unreachable), runs console.test.js in headless
# Chromium and cleans up. Needs ESC_PG_URL (scripts/test sets it),
# /usr/bin/chromium and tests/console/node_modules (scripts/setup).
set -euo pipefail

esc=$1
shots=$2
here=$(cd "$(dirname "$0")" && pwd)
schema="console_test_$$"
mkdir -p "$shots"
[ -x /usr/bin/chromium ] || { echo "run.sh: /usr/bin/chromium missing: run scripts/setup" >&2; exit 1; }
[ -d "$here/node_modules/playwright-core" ] || { echo "run.sh: playwright-core missing: run scripts/setup" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "${ESC_PG_URL:-}" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$esc" --schema "$schema" migrate >/dev/null
"$esc" --schema "$schema" append order-1 OrderPlaced \
  '{"sku":"<img src=x onerror=window.__pwned=1>","qty":3}' >/dev/null
"$esc" --schema "$schema" append order-1 OrderPaid '{"amount":42}' \
  --metadata '{"correlation_id":"6f1c2d3e-0000-4000-8000-000000000001"}' >/dev/null
"$esc" --schema "$schema" append order-1 OrderShipped '{}' >/dev/null
# A projection no worker runs, with one parked event: the overview must
# highlight it. (Rows a worker and its handler would write.)
psql "${ESC_PG_URL:-}" -qv ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO $schema.projections (name, version, partitions)
  VALUES ('orders_view', 1, 1);
INSERT INTO $schema.dead_letters (projection, partition, tx_id,
    global_position, event_id, stream_id, stream_version, event_type,
    error, attempts)
  SELECT 'orders_view', 0, tx_id, global_position, event_id, stream_id,
         stream_version, event_type, 'handler failed', 3
  FROM $schema.events ORDER BY global_position LIMIT 1;
SQL

# Starts a console on a free port; prints its URL.
start() {
  local out
  out=$(mktemp)
  "$esc" "$@" console --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do
    grep -q "listening on port" "$out" && break
    sleep 0.1
  done
  echo "http://127.0.0.1:$(sed -n 's/.*listening on port //p' "$out")"
  rm -f "$out"
}

url=$(start --schema "$schema")
down=$(start --schema "$schema" --pg "postgresql://esc@127.0.0.1:1/none?connect_timeout=2")
node "$here/console.test.js" "$url" "$down" "$shots"

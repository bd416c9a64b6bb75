#!/usr/bin/env bash
# tests/console/run.sh ESC SHOTS_DIR PROJECTOR - the console's browser
# tests: makes a schema of its own with sample data, starts two consoles
# (one on it, one whose PostgreSQL is unreachable), and a second schema
# where a worker (PROJECTOR, the fault tests' tally worker) has parked an
# event, served by a third console with --allow-actions; runs
# console.test.js in headless Chromium and cleans up. Needs ESC_PG_URL and
# ESC_REDIS_URL (scripts/test sets them), /usr/bin/chromium and
# tests/console/node_modules (scripts/setup).
set -euo pipefail

esc=$1
shots=$2
projector=$3
here=$(cd "$(dirname "$0")" && pwd)
schema="console_test_$$"
acts="console_acts_$$"
cure=$(mktemp -u)
mkdir -p "$shots"
[ -x /usr/bin/chromium ] || { echo "run.sh: /usr/bin/chromium missing: run scripts/setup" >&2; exit 1; }
[ -d "$here/node_modules/playwright-core" ] || { echo "run.sh: playwright-core missing: run scripts/setup" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${namespace:-}" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "${ESC_REDIS_URL:-redis://127.0.0.1:6379}" --scan \
      --pattern "$namespace:*" 2>/dev/null |
      xargs -r redis-cli -u "${ESC_REDIS_URL:-redis://127.0.0.1:6379}" del \
      >/dev/null 2>&1 || true
  fi
  for s in "$schema" "$acts"; do
    psql "${ESC_PG_URL:-}" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true
  done
  rm -f "$cure"
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

# Starts `esc ARGS... console --listen 127.0.0.1:0 OPTIONS...` on a free
# port: sets started (its URL) and token (the token it printed, if any).
# Not run in $(...): the console's pid must reach pids of this shell, or
# cleanup would leave it running.
start() {
  local out
  out=$(mktemp)
  local global=() opts=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do global+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  opts=("$@")
  "$esc" "${global[@]}" console --listen 127.0.0.1:0 "${opts[@]}" >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 50); do
    grep -q "listening on port" "$out" && break
    sleep 0.1
  done
  started="http://127.0.0.1:$(sed -n 's/.*listening on port //p' "$out")"
  token=$(sed -n 's/.*bearer token: //p' "$out")
  rm -f "$out"
}

# A worker whose handler fails on the "poison" item until $cure exists:
# it parks the event, and applies it once retried after the cure.
"$esc" --schema "$acts" migrate >/dev/null
namespace="esc-$("$esc" --schema "$acts" --json stats | sed -n 's/.*"identity":"\([^"]*\)".*/\1/p')"
TALLY_CURE_FILE="$cure" "$projector" --schema "$acts" --name tally_view \
  --lease-poll 100 --poll 100 --quiet 2>/dev/null &
pids+=($!)
"$esc" --schema "$acts" append tally-1 Counted '{"n":5,"item":"poison"}' >/dev/null
for _ in $(seq 100); do
  "$esc" --schema "$acts" --json dead-letters list | grep -q '"state":"parked"' && break
  sleep 0.2
done
"$esc" --schema "$acts" --json dead-letters list | grep -q '"state":"parked"' ||
  { echo "run.sh: the worker parked nothing" >&2; exit 1; }

start --schema "$schema"
url=$started
start --schema "$schema" --pg "postgresql://esc@127.0.0.1:1/none?connect_timeout=2"
down=$started
start --schema "$acts" -- --allow-actions
acting=$started
node "$here/console.test.js" "$url" "$down" "$shots" "$acting" "$token" "$cure"

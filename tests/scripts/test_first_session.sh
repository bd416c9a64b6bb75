#!/usr/bin/env bash
# The README's "A first session" works as written (#13 item 8): every line
# of its ```sh block, run in order in one shell from the repository root,
# exits 0, and a line whose comment says "# N: ..." prints "exit N". Then
# the README's C program ("And from C") runs against the same servers.
#
#   tests/scripts/test_first_session.sh [BUILD_DIR]
#
# The servers are the session's own: scripts/servers on free ports with a
# temporary ESC_SERVERS_DIR, stopped at the end (the shared ones on
# 54329/63799 are not touched).
#
# One substitution: building build/ from scratch takes minutes, so with
# BUILD_DIR (ctest passes its own build directory) the lines use that
# directory where they say build/ — "build/esc" becomes "BUILD_DIR/esc" and
# "-B build" / "--build build" name BUILD_DIR, whose cache is reused (its
# build is then a no-op). Without BUILD_DIR the lines run exactly as
# written and build build/ in the checkout.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=${1:-}
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
# shellcheck source=tests/scripts/ports.sh
. "$REPO/tests/scripts/ports.sh"

# The ```sh block under "## A first session", one line per command.
session=$(awk '
  /^## / { in_section = ($0 == "## A first session") }
  in_section && /^```sh[[:space:]]*$/ { inside = 1; next }
  inside && /^```/ { exit }
  inside { print }
' "$REPO/README.md")
if [[ -z "$session" ]]; then
  echo "FAIL: README.md has no \`\`\`sh block under \"## A first session\"" >&2
  exit 1
fi

TMP=$(mktemp -d /tmp/esc-first-session.XXXXXX)
export ESC_SERVERS_DIR="$TMP/servers" ESC_PG_PORT ESC_REDIS_PORT
ESC_PG_PORT=$(pick_port 22000)
ESC_REDIS_PORT=$(pick_port 22000)
while [[ "$ESC_REDIS_PORT" == "$ESC_PG_PORT" ]]; do ESC_REDIS_PORT=$(pick_port 22000); done
# A newcomer's shell: no servers configured yet.
unset ESC_PG_URL ESC_REDIS_URL PGPASSFILE PGPASSWORD ESC_BUILD_DIR ESC_KEY_PREFIX
cleanup() {
  "$REPO/scripts/servers" stop >/dev/null 2>&1 || true
  rm -rf "$TMP" "/tmp/esc-pg-$(printf '%s' "$ESC_SERVERS_DIR" | cksum | cut -d' ' -f1)"
}
trap cleanup EXIT
cd "$REPO" || exit 1

# The line as run: build/ replaced by BUILD (see the header).
as_run() {
  local l=$1
  [[ -n "$BUILD" ]] || { printf '%s' "$l"; return; }
  l=${l//-B build /-B $BUILD }
  l=${l//--build build /--build $BUILD }
  l=${l//build\//$BUILD/}
  printf '%s' "$l"
}

n=0
while IFS= read -r line; do
  [[ "$line" =~ [^[:space:]] ]] || continue
  n=$((n + 1))
  want=""
  # "...; echo "exit $?"   # 3: conflict": the line prints the status.
  if [[ "$line" =~ \#\ ([0-9]+):\  ]]; then
    want=${BASH_REMATCH[1]}
  fi
  run=$(as_run "$line")
  printf '\n$ %s\n' "$run"
  rc=0
  eval "$run" >"$TMP/out" 2>&1 </dev/null || rc=$?
  cat "$TMP/out"
  if ((rc != 0)); then
    bad "line $n exited $rc: $line"
  elif [[ -n "$want" ]] && ! grep -qx "exit $want" "$TMP/out"; then
    bad "line $n should print 'exit $want': $line"
  fi
done <<<"$session"

# The README's C program (docs/snippets.sh builds it as doc-snippet-readme-1)
# against the session's servers: it appends note-2, once.
prog=${BUILD:-$REPO/build}/docs/doc-snippet-readme-1
if [[ -x "$prog" ]]; then
  printf '\n$ %s\n' "$prog"
  out=$("$prog" 2>&1) || bad "the README's C program failed: $out"
  echo "$out"
  [[ "$out" == "note-2 is at version 1" ]] || bad "the README's C program printed '$out'"
  out=$("$prog" 2>&1) && bad "the README's C program succeeded twice (no-stream)"
  [[ "$out" == append:* ]] || bad "a second run should report the conflict: $out"
else
  echo "(no $prog: the README's C program is not checked here)"
fi

((fail == 0)) && echo "first session: $n lines as in README.md: ok"
exit "$fail"

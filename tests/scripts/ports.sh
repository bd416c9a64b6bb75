# shellcheck shell=bash
# Free loopback ports for the script tests that run servers of their own.
# Sourced (tests/scripts/test_*.sh); not a test itself.

# True when no socket uses port $1 (ss sees listeners and connections
# alike) and nothing accepts TCP connections on 127.0.0.1:$1.
port_free() {
  if command -v ss >/dev/null 2>&1 &&
    [[ -n "$(ss -Htan "sport = :$1" 2>/dev/null)" ]]; then
    return 1
  fi
  ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Prints a free port in [$1, $1 + 1000); exits when 50 tries find none.
# Bases stay below 32768, out of Linux's ephemeral range (32768-60999),
# where any client connection of another test may take a port as its own.
pick_port() {
  local base=$1 p
  for _ in $(seq 50); do
    p=$((base + RANDOM % 1000))
    port_free "$p" && { echo "$p"; return; }
  done
  echo "no free port" >&2
  exit 1
}

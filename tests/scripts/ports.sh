# shellcheck shell=bash
# Free loopback ports for the script tests that run servers of their own.
# Sourced (tests/scripts/test_*.sh); not a test itself.

# True when nothing accepts TCP connections on 127.0.0.1:$1.
port_free() { ! timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Prints a free port in [$1, $1 + 1000); exits when 50 tries find none.
pick_port() {
  local base=$1 p
  for _ in $(seq 50); do
    p=$((base + RANDOM % 1000))
    port_free "$p" && { echo "$p"; return; }
  done
  echo "no free port" >&2
  exit 1
}

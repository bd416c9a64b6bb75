#!/usr/bin/env bash
# The servers of scripts/servers are safe by default (#11 item 8): every
# TCP login to PostgreSQL needs the generated password (scram-sha-256),
# Redis refuses commands without AUTH, the secrets are 0600, TLS with
# sslmode=verify-full works with the generated CA and fails with another,
# nothing printed shows a secret, and servers left open by an older
# scripts/servers (trust on TCP, Redis without requirepass) are closed by
# the next start. Runs its own servers in a temporary build directory.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
SERVERS="$REPO/scripts/servers"
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
# shellcheck source=tests/scripts/ports.sh
. "$REPO/tests/scripts/ports.sh"

TMP=$(mktemp -d /tmp/esc-test-servers.XXXXXX)
export ESC_SERVERS_DIR="$TMP/servers"
unset ESC_BUILD_DIR
export ESC_PG_PORT ESC_REDIS_PORT
ESC_PG_PORT=$(pick_port 21000)
ESC_REDIS_PORT=$(pick_port 21000)
unset ESC_PG_URL ESC_REDIS_URL PGPASSFILE PGPASSWORD REDISCLI_AUTH
cleanup() {
  "$SERVERS" stop >/dev/null 2>&1 || true
  rm -rf "$TMP" "/tmp/esc-pg-$(printf '%s' "$ESC_SERVERS_DIR" | cksum | cut -d' ' -f1)"
}
trap cleanup EXIT

S="$ESC_SERVERS_DIR"
PG="postgresql://esc@127.0.0.1:$ESC_PG_PORT/esc"
CA="$S/tls/ca.crt"

# psql that never prompts; the password only from PGPASSFILE, if given.
pq() { psql -X -w -At "$@" 2>&1; }

# A TCP login without a password must be refused.
check_refused() {
  local out
  if out=$(PGPASSFILE=/nonexistent pq "$PG" -c 'select 1'); then
    bad "$1: a TCP login without a password was let in"
  elif [[ "$out" != *"no password supplied"* && "$out" != *"password authentication failed"* ]]; then
    bad "$1: a login without a password failed, but not for want of one: $out"
  fi
}

# Redis must answer NOAUTH without the password, PONG with it.
check_redis() {
  local out
  out=$(redis-cli -h 127.0.0.1 -p "$ESC_REDIS_PORT" ping 2>&1 || true)
  [[ "$out" == *NOAUTH* ]] || bad "$1: Redis without AUTH answered '$out', not NOAUTH"
  out=$(REDISCLI_AUTH=$(<"$S/secrets/redis.password") \
    redis-cli -h 127.0.0.1 -p "$ESC_REDIS_PORT" ping 2>&1 || true)
  [[ "$out" == PONG ]] || bad "$1: Redis with the password answered '$out'"
}

# --- first start ------------------------------------------------------------
out=$("$SERVERS" start 2>&1) || { echo "$out" >&2; exit 1; }
pgpw=$(<"$S/secrets/pg.password")
redispw=$(<"$S/secrets/redis.password")
[[ ${#pgpw} -ge 32 && ${#redispw} -ge 32 ]] || bad "secrets are shorter than 32 characters"
[[ "$pgpw" != "$redispw" ]] || bad "PostgreSQL and Redis share one secret"
[[ "$out" != *"$pgpw"* && "$out" != *"$redispw"* ]] || bad "start printed a secret"
# start shows what `env` exports (the Redis password hidden), and how.
# shellcheck disable=SC2016 # the eval line, literally
[[ "$out" == *"export ESC_PG_URL=postgresql://esc@127.0.0.1:$ESC_PG_PORT/esc"* &&
  "$out" == *"export PGPASSFILE=$S/secrets/pgpass"* &&
  "$out" == *"export ESC_REDIS_URL=redis://default:***@127.0.0.1:$ESC_REDIS_PORT"* &&
  "$out" == *'eval "$(scripts/servers env)"'* ]] ||
  bad "start does not print the export lines of env: $out"

# The secrets: readable by this user only.
[[ $(stat -c %a "$S/secrets") == 700 ]] || bad "secrets/ is mode $(stat -c %a "$S/secrets"), not 700"
for f in pg.password redis.password pgpass; do
  [[ $(stat -c %a "$S/secrets/$f") == 600 ]] || bad "secrets/$f is not mode 600"
done
[[ $(stat -c %a "$S/redis/redis.conf") == 600 ]] || bad "redis.conf (it holds requirepass) is not mode 600"

# PostgreSQL: refused without the password, in with the env's.
check_refused "fresh"
out=$(PGPASSFILE=/nonexistent PGPASSWORD=wrong pq "$PG" -c 'select 1') &&
  bad "a wrong password was let in"
eval "$("$SERVERS" env)"
[[ "$ESC_PG_URL" == "$PG" ]] || bad "env gives ESC_PG_URL=$ESC_PG_URL"
[[ "$ESC_REDIS_URL" == "redis://default:$redispw@127.0.0.1:$ESC_REDIS_PORT" ]] ||
  bad "env gives another ESC_REDIS_URL"
out=$(pq "$ESC_PG_URL" -c 'select current_user')
[[ "$out" == esc ]] || bad "login with PGPASSFILE from env failed: $out"
out=$(pq "$ESC_PG_URL" -c "select auth_method from pg_hba_file_rules where type = 'host'" | sort -u)
[[ "$out" == scram-sha-256 ]] || bad "pg_hba.conf host lines use '$out', not scram-sha-256 only"
check_redis "fresh"

# TLS: verify-full with the generated CA, to both names in the certificate.
for host in localhost 127.0.0.1; do
  out=$(pq "postgresql://esc@$host:$ESC_PG_PORT/esc?sslmode=verify-full&sslrootcert=$CA" \
    -c 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')
  [[ "$out" == t ]] || bad "sslmode=verify-full to $host with the CA: $out"
done
# ... and refused with a CA that did not sign the server's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -days 1 -subj "/CN=another CA" -keyout "$TMP/other.key" \
  -out "$TMP/other.crt" >/dev/null 2>&1
if out=$(pq "postgresql://esc@localhost:$ESC_PG_PORT/esc?sslmode=verify-full&sslrootcert=$TMP/other.crt" -c 'select 1'); then
  bad "sslmode=verify-full with a wrong CA connected"
elif [[ "$out" != *"certificate verify failed"* ]]; then
  bad "sslmode=verify-full with a wrong CA failed, but not on the certificate: $out"
fi
[[ ! -e "$S/tls/ca.key" ]] || bad "the CA's private key was left behind"
# esc itself (libpq under it) with verify-full, when ctest gives its path.
if [[ -n "${1:-}" ]]; then
  tls="postgresql://esc@localhost:$ESC_PG_PORT/esc?sslmode=verify-full"
  out=$("$1" --pg "$tls&sslrootcert=$CA" migrate 2>&1) ||
    bad "esc migrate with sslmode=verify-full failed: $out"
  out=$("$1" --pg "$tls&sslrootcert=$TMP/other.crt" migrate 2>&1) &&
    bad "esc connected with sslmode=verify-full and a wrong CA"
  [[ "$out" == *certificate* ]] || bad "esc with a wrong CA did not say why: $out"
fi

# --- a running server left open by an older scripts/servers -----------------
data=$(<"$S/pg.datadir")
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
psql -X -q -h "$data" -p "$ESC_PG_PORT" -U esc -d postgres -c 'select pg_reload_conf()' >/dev/null
REDISCLI_AUTH=$redispw redis-cli -h 127.0.0.1 -p "$ESC_REDIS_PORT" config set requirepass "" >/dev/null
PGPASSFILE=/nonexistent pq "$PG" -c 'select 1' >/dev/null ||
  bad "precondition: the trust pg_hba.conf did not open PostgreSQL"
[[ $(redis-cli -h 127.0.0.1 -p "$ESC_REDIS_PORT" ping) == PONG ]] ||
  bad "precondition: Redis is not open"
"$SERVERS" start >/dev/null 2>&1 || bad "start on open running servers failed"
check_refused "running, was trust"
check_redis "running, was without requirepass"

# --- a stopped data directory of an older scripts/servers, no secrets -------
"$SERVERS" stop pg >/dev/null 2>&1
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$data/pg_hba.conf"
rm -f "$S/secrets/pg.password"
"$SERVERS" start pg >/dev/null 2>&1 || bad "start of an old data directory failed"
check_refused "old data directory"
newpw=$(<"$S/secrets/pg.password")
[[ "$newpw" != "$pgpw" ]] || bad "no new password was made"
out=$(pq "$PG" -c 'select 1')
[[ "$out" == 1 ]] || bad "the new password does not log in: $out"

# --- a hot standby beside the primary (--replica) ---------------------------
export ESC_PG_REPLICA_PORT
ESC_PG_REPLICA_PORT=$(pick_port 21000)
out=$("$SERVERS" start --replica 2>&1) || { echo "$out" >&2; bad "start --replica failed"; }
REPLICA="postgresql://esc@127.0.0.1:$ESC_PG_REPLICA_PORT/esc"
env_out=$("$SERVERS" env --replica)
[[ "$env_out" == *"export ESC_PG_READ_URL=$REPLICA"* ]] ||
  bad "env --replica does not export ESC_PG_READ_URL=$REPLICA: $env_out"
[[ "$("$SERVERS" env)" != *ESC_PG_READ_URL* ]] ||
  bad "env without --replica exports ESC_PG_READ_URL"
PGPASSFILE=/nonexistent pq "$REPLICA" -c 'select 1' >/dev/null &&
  bad "the standby let in a TCP login without a password"
PGPASSFILE=$S/secrets/pgpass pq "$PG" -c 'create table if not exists rep_t(x int); insert into rep_t values (7)' >/dev/null ||
  bad "a write on the primary failed"
seen=""
for _ in $(seq 50); do
  seen=$(PGPASSFILE=$S/secrets/pgpass pq "$REPLICA" -c 'select sum(x) from rep_t' || true)
  [[ "$seen" == 7 ]] && break
  sleep 0.1
done
[[ "$seen" == 7 ]] || bad "the standby did not replay the primary's write: $seen"
out=$(PGPASSFILE=$S/secrets/pgpass pq "$REPLICA" -c 'insert into rep_t values (1)' || true)
[[ "$out" == *"read-only transaction"* ]] || bad "the standby took a write: $out"
"$SERVERS" status | grep -q '^replica: *running' || bad "status does not show the standby running"
"$SERVERS" stop >/dev/null 2>&1
st=$("$SERVERS" status || true)
[[ "$st" == *"replica:    down"* ]] || bad "stop left the standby running: $st"

exit $fail

#!/usr/bin/env bash
# scripts/redact.sh hides every password form esc accepts, and leaves
# URLs without one alone (scripts/test and scripts/demo print URLs).
set -euo pipefail
. "$(dirname "$0")/../../scripts/redact.sh"
fail=0
check() {
  local got
  got=$(redact "$1")
  if [[ "$got" != "$2" ]]; then
    echo "redact '$1': got '$got', want '$2'" >&2
    fail=1
  fi
  if [[ "$got" == *s3cr3t* ]]; then
    echo "redact '$1' shows the secret" >&2
    fail=1
  fi
}
check 'postgresql://esc:s3cr3t@h:5/db' 'postgresql://esc:***@h:5/db'
check 'postgres://:s3cr3t@h/db' 'postgres://:***@h/db'
check 'redis://u:s3cr3t@h:1' 'redis://u:***@h:1'
check 'redis://:s3cr3t@h:1/2' 'redis://:***@h:1/2'
check 'redis://s3cr3t@h:1/0' 'redis://***@h:1/0'
check 'postgresql://esc@h/db?sslmode=require&password=s3cr3t&a=b' \
      'postgresql://esc@h/db?sslmode=require&password=***&a=b'
check 'host=h password=s3cr3t user=u' 'host=h password=*** user=u'
check "host=h password='s3cr3t x' user=u" 'host=h password=*** user=u'
check 'redis://127.0.0.1:63799' 'redis://127.0.0.1:63799'
check 'postgresql://esc@127.0.0.1:54329/esc' 'postgresql://esc@127.0.0.1:54329/esc'
exit $fail

#!/usr/bin/env bash
# docs/snippets.sh on a small tree of its own: excerpts that match pass,
# drifted ones fail naming the line, and extract wraps each kind of block
# as the header of docs/snippets.sh says.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
SNIPPETS="$REPO/docs/snippets.sh"
fail=0
bad() { echo "FAIL: $*" >&2; fail=1; }
T=$(mktemp -d /tmp/esc-test-snippets.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/src/docs" "$T/src/lib"

cat >"$T/src/lib/code.c" <<'EOF'
/* A file the docs quote. */
static int add(int a, int b) {
  int sum = a + b; /* the sum */

  return sum;
}

static const char *greeting(void) {
  return "hello, world";
}
EOF

# $1: the block after the marker line $2 (none when empty).
doc() {
  { echo "# Doc"; echo; [[ -z $2 ]] || echo "$2"; echo '```c'; printf '%s\n' "$1"; echo '```'; } \
    >"$T/src/docs/a.md"
}
echo "# Readme" >"$T/src/README.md"
excerpts() { bash "$SNIPPETS" excerpts "$T/src" 2>"$T/err"; }

# Matches: whitespace, comments and blank lines aside; ... for code left out.
doc 'static int add(int a, int b) {
    int sum = a + b;   /* the doc'"'"'s own comment */
  return sum;
}
...
  return "hello, ...";' '<!-- excerpt: lib/code.c -->'
excerpts || bad "a matching excerpt failed: $(cat "$T/err")"

# Drift: a changed line is named with the code it should be.
doc 'static int add(int a, int b) {
  int sum = b + a;' '<!-- excerpt: lib/code.c -->'
if excerpts; then
  bad "a drifted excerpt passed"
elif ! grep -q 'docs/a.md:6: excerpt line differs from lib/code.c:3' "$T/err"; then
  bad "a drifted excerpt failed without naming its line: $(cat "$T/err")"
fi

# Lines left out without ... are an error: an excerpt is consecutive code.
doc 'static int add(int a, int b) {
  return sum;' '<!-- excerpt: lib/code.c -->'
excerpts && bad "an excerpt that skips a line without ... passed"

# Order matters, and the file must exist.
doc '  return "hello, world";
...
static int add(int a, int b) {' '<!-- excerpt: lib/code.c -->'
excerpts && bad "an excerpt out of order passed"
doc 'int x;' '<!-- excerpt: lib/nothing.c -->'
excerpts && bad "an excerpt of a missing file passed"

# extract: statements go in a function with err; definitions stay at file
# scope; run blocks are copied as they are; excerpts are not extracted.
{
  echo '```c'
  echo 'esc_store *st = esc_store_open(NULL, NULL, &err);'
  echo '```'
  echo
  echo '```c'
  echo 'static int one(void) { return 1; }'
  echo '```'
  echo
  echo '<!-- snippet: run -->'
  echo '```c'
  echo 'int main(void) { return 0; }'
  echo '```'
  echo
  echo '<!-- excerpt: lib/code.c -->'
  echo '```c'
  echo '  return sum;'
  echo '```'
} >"$T/src/docs/a.md"
if ! bash "$SNIPPETS" extract "$T/src" "$T/out" 2>"$T/err"; then
  bad "extract failed: $(cat "$T/err")"
else
  ls "$T/out"/*.c >/dev/null 2>&1 || bad "extract wrote no files"
  [[ $(find "$T/out" -maxdepth 1 -name '*.c' | wc -l) == 2 ]] ||
    bad "extract should write 2 compiled snippets: $(ls "$T/out")"
  grep -q 'esc_error err = ESC_ERROR_INIT' "$T/out/a_1.c" ||
    bad "a statement snippet is not wrapped with err: $(cat "$T/out/a_1.c")"
  grep -q '^int snippet_' "$T/out/a_5.c" &&
    bad "a block of definitions was wrapped in a function"
  grep -qs '^int main(void) { return 0; }' "$T/out/run/a-1.c" ||
    bad "the run snippet is not out/run/a-1.c as written"
  # Unchanged snippets keep their files (and mtimes) on a second extract.
  before=$(stat -c %Y "$T/out/a_1.c")
  sleep 1
  bash "$SNIPPETS" extract "$T/src" "$T/out" 2>/dev/null
  [[ $(stat -c %Y "$T/out/a_1.c") == "$before" ]] ||
    bad "a second extract rewrote an unchanged snippet"
fi

# A marker it does not know is an error, not a silently compiled block.
doc 'int x;' '<!-- snippet: runn -->'
bash "$SNIPPETS" extract "$T/src" "$T/out" 2>/dev/null &&
  bad "an unknown marker was accepted"

((fail == 0)) && echo "snippets: ok"
exit "$fail"

#!/usr/bin/env bash
# docs/snippets.sh — the C snippets of README.md and docs/ stay true.
#
#   docs/snippets.sh extract SRC OUT   write each compiled snippet to OUT/*.c
#                                      and each runnable one to OUT/run/*.c
#   docs/snippets.sh excerpts SRC      check every excerpt against its file
#   docs/snippets.sh pg-down PROGRAM   run PROGRAM with PostgreSQL unreachable:
#                                      it must fail with a message, cleanly
#
# Every ```c block is one of three kinds, chosen by the line before it:
#
#   <!-- excerpt: PATH -->   a piece of a real source file (PATH, from the
#                            repository root). Its lines are lines of PATH,
#                            in the same order and one after the other
#                            (blank lines, whitespace and comments aside:
#                            the doc may comment in its own words); a line
#                            that is only "..." or "…" (or /* ... */) stands
#                            for code left out, and "..." inside a line for
#                            part of that line.
#   <!-- snippet: run -->    a whole program (it has main): built as an
#                            executable, and ctest runs it (docs/CMakeLists.txt).
#   <!-- snippet: with PATH -->  compiled as below, after #include "PATH": a
#                            header declaring what the doc defined earlier.
#   anything else            compiled with the library (docs/CMakeLists.txt):
#                            a block with top-level definitions as a file, a
#                            block of statements inside an int function that
#                            has `esc_error err` declared (unless the block
#                            declares it). #include lines go to the top.
#
# So a snippet either compiles or is, line for line, code that does.
# Plain bash and awk, so it runs on a fresh machine.
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }

# Prints "FILE<TAB>LINE<TAB>KIND<TAB>ARG" for each c block, then its lines
# each prefixed with "|", then "." on a line of its own. KIND is excerpt
# (ARG: the path), run or compile.
blocks() {
  local f
  for f in "$@"; do
    awk -v file="$f" '
      /^```c[[:space:]]*$/ {
        kind = "compile"; arg = ""
        if (prev ~ /^<!-- excerpt: [^ ]+ -->$/) {
          kind = "excerpt"; arg = prev
          sub(/^<!-- excerpt: /, "", arg); sub(/ -->$/, "", arg)
        } else if (prev ~ /^<!-- snippet: run -->$/) {
          kind = "run"
        } else if (prev ~ /^<!-- snippet: with [^ ]+ -->$/) {
          arg = prev
          sub(/^<!-- snippet: with /, "", arg); sub(/ -->$/, "", arg)
        } else if (prev ~ /^<!-- (excerpt|snippet)/) {
          printf "%s:%d: unknown marker %s\n", file, NR - 1, prev > "/dev/stderr"
          bad = 1
        }
        printf "%s\t%d\t%s\t%s\n", file, NR, kind, arg
        inside = 1; next
      }
      inside && /^```/ { print "."; inside = 0; next }
      inside { print "|" $0; next }
      /[^[:space:]]/ { prev = $0 }
      END {
        if (inside) {
          printf "%s: a ```c block is not closed\n", file > "/dev/stderr"
          bad = 1
        }
        exit bad
      }
    ' "$f"
  done
}

# Reads the lines of the current block from stdin into body (a pipe: sed
# or head would read past the block's end).
read_body() {
  local l
  body=""
  while IFS= read -r l && [[ $l != . ]]; do
    body+="${l#|}"$'\n'
  done
}

doc_files() {
  local src=$1
  printf '%s\n' "$src/README.md"
  find "$src/docs" -name '*.md' | LC_ALL=C sort
}

# Every block of every doc, as blocks() prints them; fails when a doc is
# malformed (the process substitution would hide that).
all_blocks() {
  local src=$1 files
  mapfile -t files < <(doc_files "$src")
  blocks "${files[@]}" >"$tmp/blocks" || return 1
}

# A block defines things at file scope when a line at column 0 starts a
# function, a type, a static/extern object or one of esc's macros that
# define them (ESC_EVENT_DEFINE, ESC_DECIDER...; statements are plain
# calls and declarations).
is_toplevel() {
  grep -Eq '^(int main|static |typedef |struct [a-z_]+ \{|enum [a-z_]+ \{|extern |(const )?[a-z_]+ \**[a-z_]+\([^;]*\)? *\{?$|ESC_(STATIC_)?(EVENTS?|UPCAST|DECIDER|PROJECTION)_?[A-Z_]*\()'
}

# The top of every extracted file: what any snippet may use without saying,
# and silence about what a piece of a program leaves unused.
prologue() {
  printf '/* %s:%s, extracted by docs/snippets.sh */\n' "$1" "$2"
  printf '#include <esc/command.h>\n#include <esc/projection.h>\n'
  printf '#include <esc/query.h>\n#include <esc/store.h>\n'
  printf '#include <esc/testkit.h>\n'
  printf '#include <inttypes.h>\n#include <stdio.h>\n#include <stdlib.h>\n'
  printf '#include <string.h>\n'
  printf '#pragma GCC diagnostic ignored "-Wunused-function"\n'
  printf '#pragma GCC diagnostic ignored "-Wunused-variable"\n'
  printf '#pragma GCC diagnostic ignored "-Wunused-but-set-variable"\n'
  printf '#pragma GCC diagnostic ignored "-Wunused-const-variable"\n'
}

# The body with its #include lines blank (they went to the top), so the
# #line before it stays true.
without_includes() {
  awk '{ print (/^#include/ ? "" : $0) }' <<<"$body"
}

# Writes one snippet ($body, from doc $1 line $2, kind $3, number $4,
# context $5) as a C file.
snippet_file() {
  local doc=$1 line=$2 kind=$3 n=$4 with=$5
  if [[ $kind == run ]]; then
    # A program as the reader copies it: no prologue, nothing added.
    printf '#line %d "%s"\n' $((line + 1)) "$doc"
    printf '%s' "$body"
    return
  fi
  prologue "$doc" "$line"
  [[ -z $with ]] || printf '#include "%s"\n' "$with"
  grep '^#include' <<<"$body" || true
  if is_toplevel <<<"$body"; then
    printf '#line %d "%s"\n' $((line + 1)) "$doc"
    without_includes
    return
  fi
  printf 'int snippet_%d(void);\nint snippet_%d(void) {\n' "$n" "$n"
  if ! grep -Eq '^esc_error err( |;)' <<<"$body"; then
    printf '  esc_error err = ESC_ERROR_INIT;\n  (void)err;\n'
  fi
  printf '  {\n'
  printf '#line %d "%s"\n' $((line + 1)) "$doc"
  without_includes
  printf '  }\n  return 0;\n}\n'
}

# Replaces OUT's files with the new set in $tmp/out, touching only files
# whose text changed, so a reconfigure recompiles only edited snippets.
sync_dir() {
  local new=$1 out=$2 f rel
  mkdir -p "$out/run"
  while IFS= read -r f; do
    rel=${f#"$new"/}
    if ! cmp -s "$f" "$out/$rel"; then
      cp "$f" "$out/$rel"
    fi
  done < <(find "$new" -name '*.c')
  while IFS= read -r f; do
    rel=${f#"$out"/}
    [[ -f "$new/$rel" ]] || rm -f "$f"
  done < <(find "$out" -name '*.c')
}

extract() {
  local src out=$2 header file line kind arg body name doc n=0 runs=0
  local -A run_count=()
  src=$(cd "$1" && pwd -P) # #include "$src/..." must work from OUT
  mkdir -p "$tmp/out/run"
  all_blocks "$src"
  while IFS= read -r header; do
    IFS=$'\t' read -r file line kind arg <<<"$header"
    read_body
    [[ $kind != excerpt ]] || continue
    n=$((n + 1))
    doc=${file#"$src"/}
    name=$(basename "$file" .md | tr -c 'A-Za-z0-9\n' '_')
    if [[ $kind == run ]]; then
      if ! grep -q '^int main' <<<"$body"; then
        echo "$doc:$line: a <!-- snippet: run --> block must be a whole program (int main)" >&2
        return 1
      fi
      runs=$((runs + 1))
      # Named by the doc and its count there, not the line: the name is a
      # target and a test, and should not move when the text above does.
      run_count[$name]=$((${run_count[$name]:-0} + 1))
      snippet_file "$doc" "$line" run "$n" "" \
        >"$tmp/out/run/${name,,}-${run_count[$name]}.c"
    else
      if [[ -n $arg && ! -f "$src/$arg" ]]; then
        echo "$doc:$line: snippet with $arg, which does not exist" >&2
        return 1
      fi
      snippet_file "$doc" "$line" compile "$n" "${arg:+$src/$arg}" >"$tmp/out/${name}_$line.c"
    fi
  done <"$tmp/blocks"
  sync_dir "$tmp/out" "$out"
  echo "snippets: $n snippets ($runs to run) in $out" >&2
}

# The excerpt (stdin's second file) must be in the source (the first): see
# the header for the rules. Reports the first line that differs.
check_excerpt() {
  local src=$1 file=$2 line=$3 path=$4 body=$5
  if [[ ! -f "$src/$path" ]]; then
    echo "$file:$line: excerpt of $path, which does not exist" >&2
    return 1
  fi
  awk -v doc="$file" -v first="$line" -v path="$path" '
    function squeeze(s) {
      gsub(/[[:space:]]+/, " ", s); sub(/^ /, "", s); sub(/ $/, "", s)
      gsub(/…/, "...", s)
      return s
    }
    # The line without comments (a /* */ comment may span lines, hence the
    # global incomment), squeezed. Strings do not span lines.
    function norm(s,    out, i, m, c, quote) {
      out = ""; m = length(s); quote = ""
      for (i = 1; i <= m; i++) {
        c = substr(s, i, 1)
        if (incomment) {
          if (c == "*" && substr(s, i + 1, 1) == "/") { incomment = 0; i++ }
          continue
        }
        if (quote != "") {
          out = out c
          if (c == "\\") { out = out substr(s, i + 1, 1); i++ }
          else if (c == quote) quote = ""
          continue
        }
        if (c == "/" && substr(s, i + 1, 1) == "*") {
          incomment = 1; i++; out = out " "; continue
        }
        if (c == "/" && substr(s, i + 1, 1) == "/") break
        if (c == "\"" || c == "\047") quote = c
        out = out c
      }
      return squeeze(out)
    }
    function is_gap(s) {
      s = squeeze(s)
      return s == "..." || s == "/* ... */" || s == "// ..."
    }
    # want matches have when the pieces between its "..." are in have in
    # order, the first at the start and the last at the end.
    function matches(want, have,    parts, m, i, p, pos, rest, last) {
      if (index(want, "...") == 0) return want == have
      m = split(want, parts, /\.\.\./)
      if (substr(have, 1, length(parts[1])) != parts[1]) return 0
      pos = length(parts[1]) + 1
      for (i = 2; i < m; i++) {
        p = index(substr(have, pos), parts[i])
        if (!p) return 0
        pos += p - 1 + length(parts[i])
      }
      rest = substr(have, pos); last = parts[m]
      return length(rest) >= length(last) &&
             substr(rest, length(rest) - length(last) + 1) == last
    }
    NR == FNR {
      s = norm($0)
      if (s != "") { src[++n] = s; srcline[n] = FNR }
      next
    }
    FNR == 1 { incomment = 0 }
    {
      w = norm($0)
      # "...", alone or with a comment in the doc: code left out.
      if (w == "..." || is_gap($0)) { gap = 1; next }
      if (w == "") next
      want[++k] = w; wantline[k] = FNR; starts[k] = (k == 1 || gap); gap = 0
    }
    END {
      at = 0
      for (i = 1; i <= k; i = j + 1) {
        # want[i..j] is a run without gaps: it must be consecutive lines.
        for (j = i; j < k && !starts[j + 1]; j++) ;
        best = -1
        for (s = at + 1; s + (j - i) <= n; s++) {
          for (t = 0; t <= j - i && matches(want[i + t], src[s + t]); t++) ;
          if (t > j - i) break
          if (t > best) { best = t; bests = s }
        }
        if (s + (j - i) <= n) { at = s + (j - i); continue }
        if (best <= 0) {
          printf "%s:%d: excerpt line is not in %s%s: %s\n", doc,
                 first + wantline[i], path,
                 at ? " after line " srcline[at] : "", want[i] > "/dev/stderr"
        } else {
          printf "%s:%d: excerpt line differs from %s:%d\n  doc:  %s\n  code: %s\n",
                 doc, first + wantline[i + best], path, srcline[bests + best],
                 want[i + best], src[bests + best] > "/dev/stderr"
          printf "  (a line of just ... in the doc marks code left out)\n" > "/dev/stderr"
        }
        exit 1
      }
    }
  ' "$src/$path" <(printf '%s' "$body")
}

excerpts() {
  local src=$1 header file line kind arg body n=0 bad=0
  all_blocks "$src"
  while IFS= read -r header; do
    IFS=$'\t' read -r file line kind arg <<<"$header"
    read_body
    [[ $kind == excerpt ]] || continue
    n=$((n + 1))
    check_excerpt "$src" "${file#"$src"/}" "$line" "$arg" "$body" || bad=1
  done <"$tmp/blocks"
  echo "snippets: $n excerpts checked$( ((bad)) && echo ", some differ")" >&2
  return "$bad"
}

# A program that needs PostgreSQL, run with PostgreSQL unreachable (a port
# nothing listens on), must say so and exit non-zero — not crash, not
# report a sanitizer error, not succeed.
pg_down() {
  local prog=$1 rc=0
  ESC_PG_URL=postgresql://esc@127.0.0.1:1/esc PGCONNECT_TIMEOUT=5 \
    "$prog" >"$tmp/stdout" 2>"$tmp/stderr" </dev/null || rc=$?
  cat "$tmp/stdout" "$tmp/stderr"
  if ((rc == 0)); then
    echo "pg-down: $prog exited 0 with PostgreSQL unreachable" >&2
    return 1
  fi
  if ((rc >= 126)); then
    echo "pg-down: $prog exited $rc (a signal or abort: it crashed)" >&2
    return 1
  fi
  if grep -Eq 'Sanitizer|runtime error:' "$tmp/stderr"; then
    echo "pg-down: $prog reported a sanitizer error (above)" >&2
    return 1
  fi
  if [[ ! -s "$tmp/stderr" ]]; then
    echo "pg-down: $prog exited $rc without a message on stderr" >&2
    return 1
  fi
  echo "pg-down: $prog exited $rc with a message: ok"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/esc-snippets.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

case "${1:-}" in
  extract) [[ $# -eq 3 ]] || { usage >&2; exit 2; }; extract "$2" "$3" ;;
  excerpts) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; excerpts "$2" ;;
  pg-down) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; pg_down "$2" ;;
  -h|--help) usage ;;
  *) usage >&2; exit 2 ;;
esac

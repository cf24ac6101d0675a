#!/bin/bash
# Broken inputs to the rlfr CLI: every tests/broken/*.lua script (one per class
# of graph or script error, expected message fragment in its first line as
# "-- expect: ..."), bad --set overrides and bad command lines. Each must fail
# with a non-zero status below 128 (no crash) and exactly one line on stderr,
# "error: ...", naming the script file and line where there is a script.
# usage: bash test_cli_errors.sh RLFR_BINARY SOURCE_DIR
set -u
# Absolute paths: the test runs in a scratch directory.
. "$(dirname "$0")/lib.sh" "$@"
count=0

# expect_error NAME WANT_RC(any|N) FRAGMENT LOCATION_REGEX(or "") -- command...
expect_error() {
    local name=$1 want_rc=$2 fragment=$3 loc=$4
    shift 5
    count=$((count + 1))
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$work/err")
    local first
    first=$(head -n 1 "$work/err")
    if [ "$rc" -eq 0 ]; then fail "$name: exit status 0"; return; fi
    if [ "$rc" -ge 128 ]; then fail "$name: crashed (exit status $rc)"; cat "$work/err"; return; fi
    local before=$failures
    if [ "$want_rc" != any ] && [ "$rc" -ne "$want_rc" ]; then fail "$name: exit status $rc, expected $want_rc"; fi
    if [ "$lines" -ne 1 ]; then fail "$name: $lines lines on stderr, expected 1:"; cat "$work/err"; return; fi
    case "$first" in
        "error: "*) ;;
        *) fail "$name: stderr does not start with 'error: ': $first" ;;
    esac
    if ! grep -qF -- "$fragment" "$work/err"; then fail "$name: message lacks '$fragment': $first"; fi
    if [ -n "$loc" ] && ! grep -qE -- "$loc" "$work/err"; then fail "$name: message lacks location /$loc/: $first"; fi
    [ "$failures" -eq "$before" ] && echo "ok: $name: $first"
}

# 1. Broken scripts.
n_broken=0
for f in "$SRC"/tests/broken/*.lua; do
    n_broken=$((n_broken + 1))
    base=$(basename "$f")
    expect=$(head -n 1 "$f" | sed -n 's/^-- expect: //p')
    if [ -z "$expect" ]; then fail "$base: first line has no '-- expect: ' comment"; continue; fi
    expect_error "$base" 1 "$expect" "$base:[0-9]+:" -- "$RLFR" run "$f"
done
[ "$n_broken" -ge 10 ] || fail "only $n_broken broken scripts found in $SRC/tests/broken"

# The NaN run stops, and the line it wrote for that step holds null, not NaN.
"$RLFR" run "$SRC/tests/broken/nan_metric.lua" --out "$work/nan" >/dev/null 2>&1
if [ "$(wc -l <"$work/nan/metrics.jsonl")" -ne 1 ] || ! grep -q '"loss.loss":null' "$work/nan/metrics.jsonl"; then
    fail "nan_metric: metrics.jsonl should hold one line with \"loss.loss\":null:"; cat "$work/nan/metrics.jsonl"
fi

# 2. --set overrides checked against rlfr.config (the example graph declares them).
EX="$SRC/graphs/examples/regression.lua"
LOC="regression.lua:[0-9]+:"
expect_error "--set unknown key" 1 "unknown option 'lrr' (did you mean 'lr'?)" "$LOC" -- "$RLFR" run "$EX" --set lrr=0.1
expect_error "--set unknown nested key" 1 "unknown option 'lr.x'" "$LOC" -- "$RLFR" run "$EX" --set lr.x=1
expect_error "--set integer" 1 "'steps' expects an integer, got 'abc'" "$LOC" -- "$RLFR" run "$EX" --set steps=abc
expect_error "--set integer, fraction" 1 "'steps' expects an integer, got '2.5'" "$LOC" -- "$RLFR" run "$EX" --set steps=2.5
expect_error "--set number" 1 "'lr' expects a number, got 'fast'" "$LOC" -- "$RLFR" run "$EX" --set lr=fast
expect_error "--set in plan mode" 1 "unknown option 'stepz' (did you mean 'steps'?)" "$LOC" -- "$RLFR" plan "$EX" --set stepz=3
cat >"$work/noconfig.lua" <<'LUA'
local rlfr = require "rlfr"
LUA
expect_error "--set without rlfr.config" 1 "declares no options" "noconfig.lua" -- "$RLFR" run "$work/noconfig.lua" --set a=1
cat >"$work/types.lua" <<'LUA'
local rlfr = require "rlfr"
local cfg = rlfr.config { flag = false, name = "x", xs = { 1, 2 }, group = { a = 1 } }
LUA
expect_error "--set boolean" 1 "'flag' expects a boolean" "types.lua:2:" -- "$RLFR" run "$work/types.lua" --set flag=maybe
expect_error "--set list" 1 "'xs' expects a list of numbers" "types.lua:2:" -- "$RLFR" run "$work/types.lua" --set xs=1,b
expect_error "--set group" 1 "'group' is a group of options" "types.lua:2:" -- "$RLFR" run "$work/types.lua" --set group=3

# 3. Bad command lines: usage errors exit 2.
expect_error "unknown command" 2 "unknown command 'frobnicate'" "" -- "$RLFR" frobnicate
expect_error "unknown flag" 2 "unknown flag '--bogus'" "" -- "$RLFR" run "$EX" --bogus
expect_error "no script" 2 "no script given" "" -- "$RLFR" run
expect_error "two scripts" 2 "more than one script" "" -- "$RLFR" run "$EX" "$EX"
expect_error "bad seed" 2 "--seed abc" "" -- "$RLFR" run "$EX" --seed abc
expect_error "bad threads" 2 "--threads -1" "" -- "$RLFR" run "$EX" --threads -1
expect_error "flag without value" 2 "--out needs a value" "" -- "$RLFR" run "$EX" --out
expect_error "--set without =" 2 "expected key=value" "" -- "$RLFR" run "$EX" --set steps
expect_error "missing script" 1 "cannot open" "" -- "$RLFR" run "$work/does-not-exist.lua"
expect_error "help unknown node" 1 "unknown node type 'lineer' (did you mean 'linear'?)" "" -- "$RLFR" help lineer

# --verbose adds a traceback after the one error line.
"$RLFR" run "$SRC/tests/broken/runtime_error.lua" --verbose >/dev/null 2>"$work/verr"
if ! head -n 1 "$work/verr" | grep -q '^error: .*runtime_error.lua:[0-9]*:' || ! grep -q 'stack traceback' "$work/verr"; then
    fail "--verbose: expected the error line then a traceback:"; cat "$work/verr"
fi

echo "$count checks, $failures failures"
[ "$failures" -eq 0 ]

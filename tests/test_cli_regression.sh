#!/bin/bash
# The example graph end to end through the CLI: it trains, its loss falls at
# least 100x, metrics.jsonl holds one valid JSON object per step, a seed gives
# the same losses twice, and `rlfr plan` shows buffer reuse. Also the
# informational commands (--help, --version, nodes, help NODE).
# usage: bash test_cli_regression.sh RLFR_BINARY SOURCE_DIR
set -u
# Absolute paths: the test runs in a scratch directory.
. "$(dirname "$0")/lib.sh" "$@"
EX="$SRC/graphs/examples/regression.lua"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# 1. Training.
if ! "$RLFR" run "$EX" --out "$work/run" --threads 1 >"$work/out" 2>"$work/err"; then
    fail "regression.lua failed:"; cat "$work/out" "$work/err"
fi
cat "$work/out"
[ -s "$work/err" ] && { fail "stderr not empty:"; cat "$work/err"; }
ratio=$(sed -n 's/.*ratio=\([0-9.]*\).*/\1/p' "$work/out" | tail -n 1)
steps=$(sed -n 's/.*(\([0-9]*\) steps.*/\1/p' "$work/out" | tail -n 1)
if [ -z "$ratio" ] || ! awk -v r="$ratio" 'BEGIN { exit !(r >= 100) }'; then fail "loss ratio '$ratio' < 100"; fi
[ -n "$steps" ] && [ "$steps" -gt 0 ] || fail "no step count in the output"
[ -d "$work/runs" ] && fail "--out did not override the run directory (runs/ was created)"

# 2. metrics.jsonl: one valid JSON object per step, steps 1..N, finite losses.
"$PY" - "$work/run/metrics.jsonl" "$steps" <<'PYEOF' || fail "metrics.jsonl check failed"
import json, math, sys
path, steps = sys.argv[1], int(sys.argv[2])
lines = open(path).read().splitlines()
assert len(lines) == steps, f"{len(lines)} lines for {steps} steps"
for i, line in enumerate(lines, 1):
    rec = json.loads(line)
    assert isinstance(rec, dict), line
    assert rec["step"] == i, (rec["step"], i)
    assert isinstance(rec["wall"], float) and rec["wall"] >= 0
    assert math.isfinite(rec["mse.loss"]), rec
first, last = json.loads(lines[0])["mse.loss"], json.loads(lines[-1])["mse.loss"]
assert first / last >= 100, (first, last)
print(f"metrics.jsonl: {len(lines)} lines ok, loss {first:.4g} -> {last:.4g}")
PYEOF

# 3. Same seed, same losses (wall times aside); --set steps applies.
for r in a b; do
    "$RLFR" run "$EX" --seed 7 --threads 1 --set steps=20 --set min_ratio=0 --out "$work/seed-$r" >/dev/null 2>&1 ||
        fail "seeded run $r failed"
    sed 's/"wall":[^,]*,//' "$work/seed-$r/metrics.jsonl" >"$work/seed-$r.txt"
done
[ "$(wc -l <"$work/seed-a.txt")" -eq 20 ] || fail "--set steps=20 did not give 20 steps"
cmp -s "$work/seed-a.txt" "$work/seed-b.txt" || fail "two runs with --seed 7 differ"
"$RLFR" run "$EX" --seed 8 --threads 1 --set steps=20 --set min_ratio=0 --out "$work/seed-c" >/dev/null 2>&1
sed 's/"wall":[^,]*,//' "$work/seed-c/metrics.jsonl" >"$work/seed-c.txt"
cmp -s "$work/seed-a.txt" "$work/seed-c.txt" && fail "--seed 7 and --seed 8 gave the same losses"

# 4. rlfr plan: the machine-readable first line, reuse, and no training.
mkdir -p "$work/plan" && cd "$work/plan" || exit 1
if ! "$RLFR" plan "$EX" >"$work/plan.txt" 2>"$work/plan.err"; then fail "rlfr plan failed:"; cat "$work/plan.err"; fi
cd "$work" || exit 1
head -n 3 "$work/plan.txt"
line=$(head -n 1 "$work/plan.txt")
if [[ "$line" =~ ^arena_bytes=([0-9]+)\ naive_bytes=([0-9]+)\ lower_bound_bytes=([0-9]+)$ ]]; then
    A=${BASH_REMATCH[1]} N=${BASH_REMATCH[2]} L=${BASH_REMATCH[3]}
    [ "$A" -lt "$N" ] || fail "plan: arena $A not below naive $N"
    [ "$A" -ge "$L" ] || fail "plan: arena $A below the lower bound $L"
    [ $((A * 100)) -le $((L * 110)) ] || fail "plan: arena $A above 1.10 x lower bound $L"
else
    fail "plan: bad first line '$line'"
fi
[ "$(wc -l <"$work/plan.txt")" -gt 1 ] || fail "plan: no table after the first line"
[ -e "$work/plan/runs" ] && fail "plan mode trained (wrote runs/)"
grep -q "loss first" "$work/plan.txt" && fail "plan mode ran the rest of the script"

# A script that prints before training: in plan mode its prints go to stderr,
# so the plan's line stays first on stdout.
cat >"$work/chatty.lua" <<'LUA'
local rlfr = require "rlfr"
print("hello from the script")
local g = rlfr.graph "chatty"
local d = g:regression_data { batch = 2, inputs = 3, outputs = 1 }
g:mse_loss {} (d.y, d.y)
rlfr.train(g, { steps = 1 })
print("not reached in plan mode")
LUA
"$RLFR" plan "$work/chatty.lua" >"$work/chatty.out" 2>"$work/chatty.err" || fail "plan chatty.lua failed"
head -n 1 "$work/chatty.out" | grep -Eq '^arena_bytes=[0-9]+ naive_bytes=[0-9]+ lower_bound_bytes=[0-9]+$' ||
    fail "plan: a script's print came before the plan line"
grep -q "hello from the script" "$work/chatty.err" || fail "plan: the script's print was lost"
grep -q "not reached" "$work/chatty.out" "$work/chatty.err" && fail "plan: the script went on after rlfr.train"

# 5. Informational commands.
"$RLFR" --help >"$work/help.txt" 2>&1 || fail "--help exit status"
for w in run plan nodes help --set --seed --threads --out; do
    grep -qe "$w" "$work/help.txt" || fail "--help does not mention $w"
done
"$RLFR" --version | grep -Eq '^rlfr [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
"$RLFR" nodes >"$work/nodes.txt" || fail "nodes exit status"
for t in linear silu mse_loss regression_data optimizer; do
    grep -Eq "^$t +[^ ]" "$work/nodes.txt" || fail "nodes: $t missing or undocumented"
done
"$RLFR" help linear >"$work/linear.txt" || fail "help linear exit status"
for w in "inputs:" "outputs:" "options:" "params" "object(params)" "required" "bias" "= true"; do
    grep -qF -- "$w" "$work/linear.txt" || fail "help linear lacks '$w'"
done
"$RLFR" help run | grep -q "usage: rlfr run SCRIPT.lua" || fail "help run"

if [ "$failures" -eq 0 ]; then echo "all ok"; fi
[ "$failures" -eq 0 ]

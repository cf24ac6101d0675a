#!/bin/bash
# graphs/eval.lua on a micro model (made by graphs/sft_text.lua's micro
# configuration; its accuracy is ~0, which is fine here): it prints the
# accuracy lines, writes results.md / results.json with consistent numbers,
# gives the same results for any chunk size (the sampler's streams are keyed
# by problem index and sample), clamps n to a JSONL file's size, and fails
# with one line on a missing model. The pass@k estimator is checked on values
# worked out by hand.
# usage: bash test_eval_graph.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
EV="$SRC/graphs/eval.lua"

"$RLFR" run "$SRC/graphs/sft_text.lua" --threads 1 --set micro=true --set steps=2 --out M >M.out 2>M.err ||
    { fail "could not make the micro model"; cat M.err; }
ev() { "$RLFR" run "$EV" --threads 1 --seed 2 --set model=M/model --set max_new=16 "$@"; }

ev --set n=12 --set k=2 --set samples=3 --set chunk=4 --out A >A.out 2>A.err || { fail "eval failed"; cat A.out A.err; }
cat A.out
grep -q '^accuracy=[0-9.]* greedy (' A.out || fail "no greedy accuracy line"
grep -q '^accuracy=[0-9.]* sampled (temperature 1, 3 per problem)' A.out || fail "no sampled accuracy line"
grep -q '^pass@2=[0-9.]*$' A.out || fail "no pass@k line"
[ -s A/results.md ] && grep -q '| greedy pass@1 |' A/results.md || fail "results.md missing or without the table"
"$PY" - A/results.json <<'PY' || fail "results.json check"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n"] == 12 and r["data"] == "arith" and r["split"] == "test", r
g, s = r["greedy"], r["sampled"]
assert 0 <= g["accuracy"] <= 1 and g["correct"] == round(g["accuracy"] * 12), g
assert s["samples"] == 3 and s["k"] == 2 and s["estimator"].startswith("unbiased"), s
assert 0 <= s["accuracy"] <= s["pass_at_k"] + 1e-9 <= 1 + 1e-9, s
assert 0 < s["response_tokens"] <= 16 and 0 < g["response_tokens"] <= 16, (g, s)
PY

# Another chunk size, same problems and samples: identical results.
ev --set n=12 --set k=2 --set samples=3 --set chunk=6 --out B >B.out 2>B.err || { fail "eval chunk=6 failed"; cat B.err; }
cmp -s A/results.json B/results.json || { fail "results depend on the chunk size"; diff A/results.json B/results.json; }

# A JSONL source: n is clamped to its 3 problems.
cat >p.jsonl <<'J'
{"problem": "What is 2 + 3?", "answer": "5"}
{"problem": "Compute 7 * 6.", "answer": 42}
{"problem": "What is 10 - 4?", "answer": ["6", "6.0"]}
J
ev --set data=p.jsonl --set k=1 --set greedy=false --out J >J.out 2>J.err || { fail "eval on JSONL failed"; cat J.err; }
"$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["n"]==3 and "greedy" not in r and r["sampled"]["estimator"]=="plain", r' \
    J/results.json || fail "JSONL results wrong"

# A missing model is one clear error line.
if ev --set model=nope --out X >X.out 2>X.err; then fail "missing model accepted"; fi
[ "$(wc -l <X.err)" -eq 1 ] && grep -q "nope" X.err || { fail "missing-model error unclear"; cat X.err; }

# pass@k against hand-worked values: 1 - C(n-c, k)/C(n, k).
cat >pk.lua <<LUA
local ev = dofile("$SRC/graphs/lib/eval_text.lua")
local function near(a, b) return math.abs(a - b) < 1e-12 end
assert(near(ev.pass_at_k(5, 0, 2), 0.0))
assert(near(ev.pass_at_k(5, 5, 2), 1.0))
assert(near(ev.pass_at_k(4, 1, 2), 0.5))          -- 1 - C(3,2)/C(4,2) = 1 - 3/6
assert(near(ev.pass_at_k(10, 3, 1), 0.3))         -- pass@1 = c/n
assert(near(ev.pass_at_k(10, 2, 5), 1 - 56 / 252)) -- 1 - C(8,5)/C(10,5)
assert(near(ev.pass_at_k(3, 2, 2), 1.0))          -- n-c < k
print("pass_at_k ok")
LUA
"$RLFR" run pk.lua >pk.out 2>pk.err && grep -q "pass_at_k ok" pk.out || { fail "pass@k estimator"; cat pk.err; }

test_finish test_eval_graph

#!/bin/bash
# graphs/sft_text.lua end to end on its micro configuration (seconds): it
# trains a tokenizer and a policy, the cross-entropy falls, the eval metric is
# logged, and the bundle it saves is complete (config.json, model.safetensors,
# tokenizer.json, rlfr.json with the recipe and accuracies) and loads. Then
# the SFT graph's checkpoint/resume is bit-exact: a run killed after step 4
# and resumed saves the same weights and logs the same metrics as a straight run.
# usage: bash test_sft_graph.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
sft() { "$RLFR" run "$SRC/graphs/sft_text.lua" --threads 1 --seed 5 --set micro=true "$@"; }

sft --out A >A.out 2>A.err || { fail "micro SFT failed"; cat A.out A.err; }
cat A.out
for f in config.json model.safetensors tokenizer.json rlfr.json; do
    [ -s "A/model/$f" ] || fail "bundle lacks $f"
done
grep -q '^accuracy_greedy=' A.out && grep -q '^accuracy_sampled=' A.out || fail "no accuracy lines"
"$PY" - A <<'PY' || fail "metrics / rlfr.json check"
import json, sys
d = sys.argv[1]
recs = [json.loads(l) for l in open(d + "/metrics.jsonl")]
assert [r["step"] for r in recs] == list(range(1, 7)), [r["step"] for r in recs]
assert recs[-1]["ce.loss"] < recs[0]["ce.loss"], (recs[0]["ce.loss"], recs[-1]["ce.loss"])
assert all(r["ce.tokens"] > 0 for r in recs)
ev = [r for r in recs if "eval.greedy" in r]
assert [r["step"] for r in ev] == [3, 6], ev
assert all(0.0 <= r["eval.greedy"] <= 1.0 for r in ev)
meta = json.load(open(d + "/model/rlfr.json"))
rec = meta["recipe"]
assert rec["seed"] == 5 and rec["steps"] == 6 and rec["data"]["task"] == "arith", rec
assert "--set micro=true" in rec["command"], rec["command"]
m = meta["metrics"]
assert 0.0 <= m["accuracy_greedy"] <= 1.0 and 0.0 <= m["accuracy_sampled"] <= 1.0, m
cfg = json.load(open(d + "/model/config.json"))
assert cfg["hidden_size"] == 32 and cfg["num_hidden_layers"] == 2, cfg
PY

# The saved bundle loads and its policy matches the trainer's final weights.
cat >load.lua <<'LUA'
local rlfr = require "rlfr"
local m = rlfr.load(rlfr.args.out)
assert(m.policy and m.tokenizer, "bundle without policy or tokenizer")
print("loaded vocab=" .. m.tokenizer:vocab_size())
LUA
"$RLFR" run load.lua --out A/model >L.out 2>L.err || { fail "bundle does not load"; cat L.err; }

# Resume: kill after step 4 (checkpoints every 3), resume, compare.
RLFR_TEST_KILL_AFTER_STEP=4 sft --out B >B1.out 2>B1.err
[ $? -eq 137 ] || fail "B: expected SIGKILL"
sft --out B >B2.out 2>B2.err || { fail "B: resume failed"; cat B2.err; }
grep -q "resuming 'sft-text' from .*ckpt-00000003" B2.err || { fail "B: did not resume from step 3"; cat B2.err; }
cmp -s A/model/model.safetensors B/model/model.safetensors || fail "resumed SFT weights differ"
strip() { sed 's/"wall":[^,}]*[,]*//' "$1"; }
cmp -s <(strip A/metrics.jsonl) <(strip B/metrics.jsonl) || { fail "resumed SFT metrics differ";
    diff <(strip A/metrics.jsonl) <(strip B/metrics.jsonl) | head -n 4; }
[ "$(grep accuracy A.out)" = "$(grep accuracy B2.out)" ] || fail "resumed SFT accuracies differ"

test_finish test_sft_graph

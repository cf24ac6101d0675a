#!/bin/bash
# Bad input for the packaged RL graphs (graphs/{rlfr,rlvr,entropy}_text.lua):
#  - a shaper wired to a score of another shape: a one-line compile error naming the node;
#  - a bundle without a flow under method=rlfr: a one-line error naming the bundle
#    (and the same bundle trains under method=rlvr, which needs no flow);
#  - a NaN in a loss (flow learning rate 1e30): the run stops with the node
#    and the step named, and the last checkpoint stays intact and loadable;
#  - an unknown method.
#   bash tests/test_rl_graphs_errors.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
# one_error NAME FILE: exactly one stderr line, starting with "error: "
one_error() {
    local n
    n=$(wc -l < "$2")
    [ "$n" -eq 1 ] || fail "$1: expected one error line, got $n: $(cat "$2")"
    grep -q '^error: ' "$2" || fail "$1: no 'error:' line: $(cat "$2")"
}
micro=(--set batch=2 --set group=4 --set max_new=8 --set eval.n=4 --set eval.max_new=8 --set micro.sft_steps=0
       --set micro.texts=64 --threads 2)

# 1. shaper wired to a non-matching score
cat > "$work/shape.lua" <<'EOF'
local rlfr = require "rlfr"
local g = rlfr.graph "bad-shaper"
local a = g:regression_data { batch = 8, inputs = 6, outputs = 4 }
local b = g:regression_data { name = "other", batch = 8, inputs = 5, outputs = 4 }
local loss = g:mse_loss {} (a.y, a.y)
g:shaper { group = 4 } { reward = g:mse_loss { name = "r" } (a.x, a.x), mask = a.x, score = b.x }
g:compile()
EOF
"$RLFR" run "$work/shape.lua" > /dev/null 2> "$work/err"
rc=$?
[ $rc -eq 1 ] || fail "shape mismatch: exit status $rc, expected 1"
one_error "shape mismatch" "$work/err"
grep -q "shape.lua:6: node 'shaper' (shaper)" "$work/err" || fail "shape mismatch: node not named: $(cat "$work/err")"

# 2. a bundle without a flow
cat > "$work/noflow.lua" <<'EOF'
local rlfr = require "rlfr"
local out = rlfr.args.out
assert(require("rlfr.core").mkdir_p(out))
local tok = rlfr.train_tokenizer { texts = { "Tom has 3 apples. 3+4=7. \\boxed{7}", "What is 12 - 5? 12-5=7." },
  vocab_size = 300, min_frequency = 1, special = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" },
  out = out .. "/tokenizer.json" }
local p = rlfr.new_policy { vocab_size = tok:vocab_size(), hidden_size = 16, num_hidden_layers = 4,
  num_attention_heads = 2, num_key_value_heads = 1, intermediate_size = 32, max_position_embeddings = 1024, seed = 3 }
rlfr.save_bundle { dir = out .. "/bundle", policy = p, tokenizer = tok }
EOF
"$RLFR" run "$work/noflow.lua" --out "$work/nf" > /dev/null 2> "$work/err" || fail "making the flow-less bundle: $(cat "$work/err")"
"$RLFR" run "$SRC/graphs/rlfr_text.lua" --set model="$work/nf/bundle" "${micro[@]}" --out "$work/nf-rlfr" > /dev/null 2> "$work/err"
rc=$?
[ $rc -eq 1 ] || fail "missing flow: exit status $rc, expected 1"
one_error "missing flow" "$work/err"
grep -q "$work/nf/bundle: the bundle has no flow" "$work/err" || fail "missing flow: unclear message: $(cat "$work/err")"
"$RLFR" run "$SRC/graphs/rlfr_text.lua" --set method=rlvr --set model="$work/nf/bundle" --set steps=1 "${micro[@]}" \
    --out "$work/nf-rlvr" > "$work/out" 2> "$work/err" || fail "rlvr from a flow-less bundle: $(cat "$work/err")"
tail -1 "$work/out" | grep -Eq '^accuracy_before=[0-9.]+ accuracy_after=[0-9.]+$' || fail "rlvr: no accuracy line: $(tail -1 "$work/out")"

# 3. a NaN in a loss: a flow learning rate of 1e30 blows the flow up after its
#    first update (soft flow 1: it trains on every rollout), and its loss turns
#    non-finite at the next step
"$RLFR" run "$SRC/graphs/rlfr_text.lua" --set model=random --set steps=4 --set flow.lr=1e30 --set flow.soft=1.0 \
    --set checkpoint_every=1 \
    "${micro[@]}" --out "$work/nan" > /dev/null 2> "$work/err"
rc=$?
[ $rc -eq 1 ] || fail "NaN: exit status $rc, expected 1"
one_error "NaN" "$work/err"
grep -Eq "node '[a-z_]+' \([a-z_]+\).*(NaN|inf|not finite).* step [0-9]+" "$work/err" || fail "NaN: node and step not named: $(cat "$work/err")"
if [ -f "$work/nan/latest" ]; then
    ck=$(cat "$work/nan/latest")
    [ -f "$work/nan/$ck/trainer.json" ] || fail "NaN: the last checkpoint '$ck' is not intact: $(ls "$work/nan/$ck" 2>&1)"
    # the checkpoint's step is one the metrics file holds, and it resumes
    ckstep=$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' "$work/nan/$ck/trainer.json" | head -1)
    lines=$(wc -l < "$work/nan/metrics.jsonl")
    [ -n "$ckstep" ] && [ "$lines" -ge "$ckstep" ] || fail "NaN: checkpoint step '$ckstep' vs $lines metrics lines"
else
    fail "NaN: no checkpoint was written before the failure"
fi

# 4. an unknown method
"$RLFR" run "$SRC/graphs/rlvr_text.lua" --set method=ppo --out "$work/m" > /dev/null 2> "$work/err"
[ $? -eq 1 ] || fail "unknown method: exit status"
one_error "unknown method" "$work/err"
grep -q "rlvr_text.lua:[0-9]*: --set method=ppo: unknown method" "$work/err" || fail "unknown method: $(cat "$work/err")"

test_finish test_rl_graphs_errors

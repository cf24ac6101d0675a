#!/bin/bash
# graphs/flow_offline.lua end to end on a micro random policy (model=random:
# a tokenizer trained on the task's texts, a random Qwen2 policy): the flow
# loss is finite and falls, the loss curve is printed, the bundle is written
# and loads with the flow, the unchanged policy and tokenizer and the recipe
# in rlfr.json; a second run continues from that bundle (init=bundle) and
# keeps the policy bit for bit; `rlfr plan` prints the plan.
# usage: bash test_flow_offline_graph.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
G="$SRC/graphs/flow_offline.lua"

# 1. Train a flow on a random micro policy. lr is raised from the reference
#    1e-4 so that a dozen steps show the fall.
if ! "$RLFR" run "$G" --threads 1 --out run --set model=random --set steps=12 --set batch=4 --set lr=3e-3 \
    --set warmup=0 --set micro.texts=64 >out 2>err; then
    fail "flow_offline.lua failed:"; cat err
fi
cat out
line=$(grep '^flow loss: first' out)
first=$(echo "$line" | sed -n 's/.*first [0-9]* steps \([-0-9.e+naif]*\),.*/\1/p')
last=$(echo "$line" | sed -n 's/.*last [0-9]* steps \([-0-9.e+naif]*\) .*/\1/p')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a == a + 0 && b == b + 0 && a > 0 && b > 0 && b < 0.95 * a) }' ||
    fail "flow loss did not fall (first '$first', last '$last')"
[ "$(grep -c '^  step ' out)" -ge 5 ] || fail "loss curve not printed"
for f in config.json model.safetensors tokenizer.json flow.safetensors flow_config.json rlfr.json; do
    [ -s "run/bundle/$f" ] || fail "run/bundle/$f missing"
done
[ "$(wc -l <run/metrics.jsonl)" = 12 ] || fail "metrics.jsonl has $(wc -l <run/metrics.jsonl) lines, want 12"

# 2. Continue from the bundle for 3 steps into another bundle.
if ! "$RLFR" run "$G" --threads 1 --out run2 --set model=run/bundle --set init=bundle --set bundle_out=bundle2 \
    --set steps=3 --set batch=4 --set lr=3e-3 --set warmup=0 >out2 2>err2; then
    fail "flow_offline.lua on the bundle failed:"; cat err2
fi

cat >check.lua <<'EOF'
local rlfr = require "rlfr"
local a, b = rlfr.load("run/bundle"), rlfr.load("bundle2")
local bad = 0
local function check(ok, what) if not ok then bad = bad + 1; print("FAIL: " .. what) end end
check(a.flow ~= nil and b.flow ~= nil, "bundles have a flow")
check(a.flow:config().hidden == a.policy:config().hidden_size, "flow fits the policy")
check(a.flow:config().depth == 4 and a.flow:config().width == a.policy:config().hidden_size, "flow size")
check(a.policy:digest() == b.policy:digest(), "policy unchanged by flow training")
check(a.flow:digest() ~= b.flow:digest(), "second run trained the flow further")
check(a.tokenizer and b.tokenizer and a.tokenizer:vocab_size() == b.tokenizer:vocab_size(), "tokenizer carried")
local r = a.meta.flow and a.meta.flow.recipe
check(r and r.steps == 12 and r.lr == 3e-3 and r.context[1] == "token_pre" and #r.layers == 3 and r.init == "new",
      "recipe in rlfr.json")
check(a.meta.flow.loss_last < a.meta.flow.loss_first, "losses in rlfr.json")
check(b.meta.flow.recipe.init == "bundle" and b.meta.flow.recipe.steps == 3, "second recipe")
check(b.meta.recipe and b.meta.recipe.policy == a.meta.recipe.policy, "earlier metadata kept")
print(bad == 0 and "bundle checks passed" or "bundle checks failed")
EOF
"$RLFR" run check.lua >out3 2>&1 || fail "check.lua failed"
cat out3
grep -q "bundle checks passed" out3 || fail "bundle checks"

# 3. Plan mode.
"$RLFR" plan "$G" --out run3 --set model=random --set micro.texts=32 >plan 2>/dev/null || fail "plan failed"
head -n 1 plan | grep -q '^arena_bytes=[0-9]* naive_bytes=[0-9]* lower_bound_bytes=[0-9]*$' ||
    fail "plan: first line: $(head -n 1 plan)"

test_finish test_flow_offline_graph

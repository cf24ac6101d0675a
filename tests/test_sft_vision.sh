#!/bin/bash
# graphs/sft_vision.lua and graphs/eval_vision.lua on micro configurations:
# - model = "new" (micro sizes, 6 steps): exits 0, the loss is finite and
#   falls, the bundle loads with rlfr.load and holds a tokenizer with the
#   image placeholders, a policy and a vision encoder whose weights moved away
#   from their initialisation, and an rlfr.json with the recipe and metrics;
# - freeze_vision = true: the encoder in the bundle is exactly its
#   initialisation while the policy still learns;
# - model = <that bundle>: fine-tuning continues from it;
# - eval_vision.lua on the micro bundle: the three result lines, results.json
#   agreeing with them, results independent of the chunk size, a missing
#   model and a bundle without an encoder give one clear error.
# usage: bash test_sft_vision.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"

# 1. A micro SFT run from scratch.
if ! "$RLFR" run "$SRC/graphs/sft_vision.lua" --threads 1 --set micro=true --out sft >sft.out 2>sft.err; then
    fail "sft_vision micro run failed: $(tail -3 sft.err)"
fi
first=$(sed -n 's/^loss first=\([^ ]*\) last=.*/\1/p' sft.out)
last=$(sed -n 's/^loss first=[^ ]* last=\(.*\)/\1/p' sft.out)
awk -v f="$first" -v l="$last" 'BEGIN { exit !(f + 0 == f && l + 0 == l && f > 0 && l > 0 && l < f) }' ||
    fail "loss not finite and falling: first=$first last=$last"
grep -q "^accuracy_greedy=" sft.out || fail "no greedy accuracy line"
grep -q "^pass@2=" sft.out || fail "no pass@k line"

# 2. The same recipe with a frozen encoder, then fine-tuning from a bundle.
"$RLFR" run "$SRC/graphs/sft_vision.lua" --threads 1 --set micro=true --set freeze_vision=true --out frozen \
    >frozen.out 2>frozen.err || fail "freeze_vision run failed: $(tail -3 frozen.err)"
"$RLFR" run "$SRC/graphs/sft_vision.lua" --threads 1 --set micro=true --set model=sft/model --out again \
    >again.out 2>again.err || fail "fine-tuning from a bundle failed: $(tail -3 again.err)"

cat >check.lua <<'EOF'
local rlfr = require "rlfr"
local failures = 0
local function check(ok, what)
  if not ok then failures = failures + 1; print("FAIL: " .. what) end
end
local m = rlfr.load("sft/model")
check(m.policy and m.tokenizer and m.vision, "bundle has policy, tokenizer and vision encoder")
for _, s in ipairs { "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>" } do
  check(m.tokenizer:token_id(s) ~= nil, "tokenizer has " .. s)
end
local vc, pc = m.vision:config(), m.policy:config()
check(vc.out_hidden == pc.hidden_size, "encoder output = policy hidden size")
check(vc.patch == 14 and vc.merge == 2, "encoder patch / merge are the data's")
-- What the script built before training (seed 0: encoder seed 3, policy seed 0).
local init_vit = rlfr.new_vit { patch = vc.patch, merge = vc.merge, width = vc.width, depth = vc.depth,
                                heads = vc.heads, mlp = vc.mlp, out_hidden = vc.out_hidden, seed = 3 }
local init_pol = rlfr.new_policy { vocab_size = pc.vocab_size, hidden_size = pc.hidden_size,
  num_hidden_layers = pc.num_hidden_layers, num_attention_heads = pc.num_attention_heads,
  num_key_value_heads = pc.num_key_value_heads, intermediate_size = pc.intermediate_size,
  max_position_embeddings = pc.max_position_embeddings, tie_word_embeddings = true, seed = 0 }
check(m.vision:digest() ~= init_vit:digest(), "the encoder was trained")
check(m.policy:digest() ~= init_pol:digest(), "the policy was trained")
local fz = rlfr.load("frozen/model")
check(fz.vision:digest() == init_vit:digest(), "freeze_vision keeps the encoder's initial weights")
check(fz.policy:digest() ~= init_pol:digest(), "freeze_vision still trains the policy")
local ag = rlfr.load("again/model")
check(ag.vision:digest() ~= m.vision:digest() and ag.policy:digest() ~= m.policy:digest(),
      "fine-tuning from the bundle changes both")
check(ag.tokenizer:vocab_size() == m.tokenizer:vocab_size(), "fine-tuning keeps the tokenizer")
local r = m.meta.recipe
check(r and r.script == "graphs/sft_vision.lua" and r.data.task == "shapes" and r.data.width == 56, "recipe")
check(m.meta.metrics and m.meta.metrics.accuracy_greedy ~= nil and m.meta.metrics.pass_at_2 ~= nil, "metrics")
check(fz.meta.recipe.freeze_vision == true, "freeze_vision recorded")
print(failures == 0 and "sft_vision: all checks passed" or ("sft_vision: " .. failures .. " failures"))
if failures > 0 then os.exit(1) end
EOF
"$RLFR" run check.lua >check.out 2>&1 || fail "bundle checks: $(cat check.out)"
grep -q "all checks passed" check.out || fail "bundle checks did not pass: $(cat check.out)"

# 3. eval_vision on the micro model; the task settings come from its recipe.
ev() {
    "$RLFR" run "$SRC/graphs/eval_vision.lua" --threads 1 --set model=sft/model --set n=4 --set k=2 \
        --set max_new=12 "$@"
}
ev --set chunk=4 --out ev4 >ev4.out 2>ev4.err || fail "eval_vision failed: $(tail -3 ev4.err)"
ev --set chunk=2 --out ev2 >ev2.out 2>ev2.err || fail "eval_vision chunk=2 failed: $(tail -3 ev2.err)"
for pat in '^accuracy=[0-9.]* greedy ([0-9]*/4)$' '^accuracy=[0-9.]* sampled (temperature 1, 2 per problem)$' \
           '^pass@2=[0-9.]*$'; do
    grep -q "$pat" ev4.out || fail "eval_vision output lacks '$pat': $(cat ev4.out)"
done
cmp -s <(grep -v '^results:' ev4.out) <(grep -v '^results:' ev2.out) || fail "results depend on the chunk size"
cat >json.lua <<'EOF'
local rlfr = require "rlfr"
local f = assert(io.open("ev4/results.json"))
local j = rlfr.json_decode(f:read("a"))
f:close()
local ok = j.n == 4 and j.data == "shapes" and j.task.width == 56 and j.task.kinds == 3
  and j.greedy.correct == math.floor(j.greedy.accuracy * 4 + 0.5) and j.sampled.k == 2 and j.sampled.samples == 2
  and j.sampled.pass_at_k >= j.sampled.accuracy - 1e-9 and j.greedy.response_tokens > 0
print(ok and "json ok" or "json bad")
EOF
"$RLFR" run json.lua >json.out 2>&1
grep -q "json ok" json.out || fail "results.json inconsistent: $(cat json.out; cat ev4/results.json)"
[ -s ev4/results.md ] || fail "no results.md"

# Errors: a missing model, a bundle without an encoder.
ev --set model=nope --out e1 >e.out 2>e.err
[ $? = 1 ] && [ "$(wc -l <e.err)" = 1 ] && grep -q "nope" e.err || fail "missing model: $(cat e.err)"
cat >plain.lua <<'EOF'
local rlfr = require "rlfr"
local m = rlfr.load("sft/model")
rlfr.save_bundle { dir = "plain", policy = m.policy, tokenizer = m.tokenizer }
EOF
"$RLFR" run plain.lua >/dev/null 2>&1 || fail "plain bundle not written"
ev --set model=plain --out e2 >e.out 2>e.err
[ $? = 1 ] && [ "$(wc -l <e.err)" = 1 ] && grep -q "no vision encoder" e.err || fail "plain bundle: $(cat e.err)"

test_finish test_sft_vision

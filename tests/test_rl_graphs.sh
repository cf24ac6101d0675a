#!/bin/bash
# End to end: 3 RL steps of each packaged graph (graphs/rlfr_text.lua,
# rlvr_text.lua, entropy_text.lua) on a micro configuration: a random 4-layer
# policy of width 32 with a BPE tokenizer trained on the task's texts and 100
# SFT steps (so rewards vary within groups), 4 prompts x 4 samples, 24 new
# tokens. Checks: every metric of every step is finite (none is null), the
# logged metrics of the issue are present, the policy weights changed, the
# flow changed under rlfr (and only there), and the final accuracy line.
# RLFR_TEST_LABELS: slow
#   bash tests/test_rl_graphs.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=24 --set eval.n=8 --set eval.max_new=24 --threads 2)

# The starting point: micro policy + tokenizer + flow after the warm-up SFT
# (0 RL steps), saved as the bundle base/init.
"$RLFR" run "$SRC/graphs/rlvr_text.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
[ -f "$work/base/init/model.safetensors" ] && [ -f "$work/base/init/flow.safetensors" ] \
    || { echo "FAIL: no init bundle: $(ls "$work/base")"; exit 1; }

for m in rlfr rlvr entropy; do
    out=$work/$m
    # soft flow 0.5: the micro model is rarely correct, and the flow must still learn
    "$RLFR" run "$SRC/graphs/${m}_text.lua" --set model="$work/base/init" --set steps=3 --set flow.soft=0.5 \
        "${small[@]}" --out "$out" > "$work/$m.out" 2> "$work/err" || { fail "$m: $(cat "$work/err")"; continue; }
    n=$(wc -l < "$out/metrics.jsonl")
    [ "$n" -eq 3 ] || fail "$m: $n metrics lines, expected 3"
    grep -q null "$out/metrics.jsonl" && fail "$m: a metric is not finite: $(grep null "$out/metrics.jsonl" | head -1)"
    keys="verify.accuracy verify.reward_mean sampler.response_len pg.entropy pg.approx_kl pg.clip_frac pg.loss time_rollout time_score time_update"
    [ $m = rlfr ] && keys="$keys flow_loss.flow_loss shaper.flow_tokens shaper.flow_reward_mean"
    [ $m = entropy ] && keys="$keys entropy_shaper.entropy_bonus"
    for k in $keys; do
        [ "$(grep -c "\"$k\":" "$out/metrics.jsonl")" -eq 3 ] || fail "$m: metric $k missing"
    done
    grep -q '"test_accuracy":' "$out/metrics.jsonl" || fail "$m: no test accuracy logged"
    tail -1 "$work/$m.out" | grep -Eq '^accuracy_before=[0-9.]+ accuracy_after=[0-9.]+$' \
        || fail "$m: last line is not the accuracy line: $(tail -1 "$work/$m.out")"
    cmp -s "$work/base/init/model.safetensors" "$out/final/model.safetensors" && fail "$m: the policy did not change"
    if [ $m = rlfr ]; then
        cmp -s "$work/base/init/flow.safetensors" "$out/final/flow.safetensors" && fail "rlfr: the flow did not change"
    else
        cmp -s "$work/base/init/flow.safetensors" "$out/final/flow.safetensors" || fail "$m: the flow changed"
    fi
    # outcome rewards varied in some group, so the outcome term had a gradient too
    grep -Eq '"shaper.frac_zero_std":0\.[0-9]' "$out/metrics.jsonl" || fail "$m: every group had equal rewards"
done

# The token analysis (graphs/flow_tokens.lua) on the trained micro bundle:
# every response token counted once in its category, penalised <= counted,
# and some token penalised (threshold 0.6 of a min-max range always passes
# the maximum of every response with a score range).
if "$RLFR" run "$SRC/graphs/flow_tokens.lua" --set model="$work/rlfr/final" --set batches=1 "${small[@]}" \
        --out "$work/ft" > "$work/ft.out" 2> "$work/err"; then
    j=$work/ft/flow_tokens.json
    total=$(grep -o '^{"model":[^,]*,"batches":1,"tokens":[0-9]*' "$j" | grep -o '[0-9]*$')
    pen=$(grep -o '"tokens":[0-9]*,"penalised":[0-9]*,"correct"' "$j" | sed 's/.*"penalised":\([0-9]*\).*/\1/')
    cats=$(grep -o '"categories":{.*},"top"' "$j" | grep -o '"tokens":[0-9]*' | cut -d: -f2 | awk '{ s += $1 } END { print s }')
    [ -n "$total" ] && [ "$total" -gt 0 ] || fail "flow_tokens: no response tokens counted: $(head -c 300 "$j")"
    [ "$cats" = "$total" ] || fail "flow_tokens: categories count $cats tokens, responses $total"
    [ -n "$pen" ] && [ "$pen" -gt 0 ] && [ "$pen" -le "$total" ] || fail "flow_tokens: penalised $pen of $total"
    grep -q '^number ' "$work/ft.out" || fail "flow_tokens: no category table: $(head -3 "$work/ft.out")"
else
    fail "flow_tokens: $(cat "$work/err")"
fi

test_finish test_rl_graphs

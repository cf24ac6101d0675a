#!/bin/bash
# End to end, multimodal: 3 RL steps of graphs/rlfr_vision.lua,
# rlvr_vision.lua (also with train_vision=true) and entropy_vision.lua on a
# micro configuration (model=random: a BPE tokenizer with the image
# placeholders, a random 4-layer policy of width 32, a random micro ViT, 100
# SFT steps so rewards vary; 56x56 images of 1-2 shapes, 4 prompts x 4
# samples, 64 new tokens). Checks: every metric of every
# step is finite, the listed metrics are present, the policy changed, the flow
# changed under rlfr (and only there), the vision encoder stayed frozen (and
# changed with train_vision=true), the accuracy line; a resumed run ends
# where an uninterrupted one does; then
# graphs/flow_vision.lua (micro mode, and on the SFT'd bundle: the flow loss
# falls, the bundle holds policy, encoder and flow, RL starts from it).
# RLFR_TEST_LABELS: slow
#   bash tests/test_vision_graphs.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=64 --set task.max_shapes=2 --set eval.n=8 --set eval.max_new=64
       --threads 2)

# The starting point: micro policy + ViT + tokenizer + flow after the warm-up
# SFT (0 RL steps), saved as the bundle base/init.
"$RLFR" run "$SRC/graphs/rlvr_vision.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
init=$work/base/init
for f in model.safetensors flow.safetensors vision.safetensors tokenizer.json; do
    [ -f "$init/$f" ] || { echo "FAIL: no $f in the init bundle: $(ls "$init")"; exit 1; }
done

# The bundles record their task (56x56 images): runs from them use it.
for m in rlfr rlvr entropy vision; do
    out=$work/$m
    method=$m
    extra=()
    # train_vision: the encoder joins the update (rlvr, its own optimizer)
    [ $m = vision ] && { method=rlvr; extra=(--set train_vision=true --set vision_lr=1e-3); }
    # soft flow 0.5: the micro model is rarely right, and the flow must still learn
    "$RLFR" run "$SRC/graphs/${method}_vision.lua" --set model="$init" --set steps=3 --set flow.soft=0.5 \
        "${small[@]}" "${extra[@]}" --out "$out" \
        > "$work/$m.out" 2> "$work/err" || { fail "$m: $(cat "$work/err")"; continue; }
    n=$(wc -l < "$out/metrics.jsonl")
    [ "$n" -eq 3 ] || fail "$m: $n metrics lines, expected 3"
    grep -q null "$out/metrics.jsonl" && fail "$m: a metric is not finite: $(grep null "$out/metrics.jsonl" | head -1)"
    keys="verify.accuracy verify.reward_mean verify.format sampler.response_len pg.entropy pg.approx_kl pg.clip_frac"
    keys="$keys pg.loss time_rollout time_score time_update"
    [ $m = rlfr ] && keys="$keys flow_loss.flow_loss shaper.flow_tokens shaper.flow_reward_mean"
    [ $m = entropy ] && keys="$keys entropy_shaper.entropy_bonus"
    [ $m = vision ] && keys="$keys vision_opt.grad_norm"
    for k in $keys; do
        [ "$(grep -c "\"$k\":" "$out/metrics.jsonl")" -eq 3 ] || fail "$m: metric $k missing"
    done
    grep -q '"test_accuracy":' "$out/metrics.jsonl" || fail "$m: no test accuracy logged"
    tr -d ' \n' < "$out/final/rlfr.json" | grep -q '"width":56' || fail "$m: the bundle's task is not recorded"
    tail -1 "$work/$m.out" | grep -Eq '^accuracy_before=[0-9.]+ accuracy_after=[0-9.]+$' \
        || fail "$m: last line is not the accuracy line: $(tail -1 "$work/$m.out")"
    cmp -s "$init/model.safetensors" "$out/final/model.safetensors" && fail "$m: the policy did not change"
    if [ $m = rlfr ]; then
        cmp -s "$init/flow.safetensors" "$out/final/flow.safetensors" && fail "rlfr: the flow did not change"
    else
        cmp -s "$init/flow.safetensors" "$out/final/flow.safetensors" || fail "$m: the flow changed"
    fi
    if [ $m = vision ]; then
        cmp -s "$init/vision.safetensors" "$out/final/vision.safetensors" && fail "train_vision: the encoder did not change"
    else
        cmp -s "$init/vision.safetensors" "$out/final/vision.safetensors" || fail "$m: the frozen encoder changed"
    fi
    # Rewards varied in some group (accuracy and format bonus), so the outcome
    # term had a gradient; the format bonus was earned by some response.
    grep -Eq '"shaper.frac_zero_std":0\.[0-9]' "$out/metrics.jsonl" || fail "$m: every group had equal rewards"
    grep -Eq '"verify.format":(0\.[0-9]*[1-9]|1)' "$out/metrics.jsonl" || fail "$m: no response had the format"
done

# Resume: 2 steps checkpointed, then the same command with steps=3 continues
# from the checkpoint and ends bit for bit where an uninterrupted run ends.
res=(--set model="$init" --set checkpoint_every=1 "${small[@]}")
"$RLFR" run "$SRC/graphs/rlfr_vision.lua" "${res[@]}" --set steps=2 --out "$work/res" > /dev/null 2> "$work/err" &&
"$RLFR" run "$SRC/graphs/rlfr_vision.lua" "${res[@]}" --set steps=3 --out "$work/res" > "$work/res.out" 2>&1 &&
"$RLFR" run "$SRC/graphs/rlfr_vision.lua" "${res[@]}" --set steps=3 --out "$work/full" > /dev/null 2> "$work/err" ||
    fail "resume runs: $(cat "$work/err" "$work/res.out" 2>/dev/null | grep -v '^step' | tail -3)"
grep -q "resuming 'rl-rlfr' from .*ckpt-00000002 (step 2 of 3)" "$work/res.out" || fail "resume: did not resume at step 2"
for f in model.safetensors flow.safetensors; do
    cmp -s "$work/res/final/$f" "$work/full/final/$f" || fail "resume: final $f differs from the uninterrupted run's"
done

# Offline flow: the micro mode (a random policy and ViT, no SFT), then on the
# SFT'd init bundle into another bundle: the loss falls, the bundle holds
# every part and its recipe, and an RL run starts from it.
"$RLFR" run "$SRC/graphs/flow_vision.lua" --set model=random --set steps=3 --set batch=2 --set micro.texts=32 \
    --threads 2 --out "$work/flow-micro" > "$work/fvm.out" 2> "$work/err" || fail "flow_vision micro: $(cat "$work/err")"
[ -s "$work/flow-micro/bundle/flow.safetensors" ] || fail "flow_vision micro: no flow saved"
fv=$work/flow
if "$RLFR" run "$SRC/graphs/flow_vision.lua" --set model="$init" --set bundle_out="$fv/bundle" --set steps=8 \
        --set batch=4 --set lr=3e-3 --set warmup=0 --threads 2 --out "$fv" \
        > "$work/fv.out" 2> "$work/err"; then
    line=$(grep '^flow loss: first' "$work/fv.out")
    first=$(echo "$line" | sed -n 's/.*first [0-9]* steps \([-0-9.e+naif]*\),.*/\1/p')
    last=$(echo "$line" | sed -n 's/.*last [0-9]* steps \([-0-9.e+naif]*\) .*/\1/p')
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(a == a + 0 && b == b + 0 && a > 0 && b > 0 && b < 0.95 * a) }' ||
        fail "flow_vision: loss did not fall (first '$first', last '$last')"
    for f in model.safetensors vision.safetensors vision_config.json flow.safetensors tokenizer.json rlfr.json; do
        [ -s "$fv/bundle/$f" ] || fail "flow_vision: bundle/$f missing"
    done
    grep -q '"graphs/flow_vision.lua"' "$fv/bundle/rlfr.json" || fail "flow_vision: no recipe in rlfr.json"
    cmp -s "$init/model.safetensors" "$fv/bundle/model.safetensors" || fail "flow_vision: the policy changed"
    cmp -s "$init/vision.safetensors" "$fv/bundle/vision.safetensors" || fail "flow_vision: the encoder changed"
    "$RLFR" run "$SRC/graphs/rlfr_vision.lua" --set model="$fv/bundle" --set steps=1 --set save=false \
        --set checkpoint_every=0 "${small[@]}" --out "$work/fv-rl" \
        > "$work/fv-rl.out" 2> "$work/err" || fail "rlfr_vision from the flow_vision bundle: $(cat "$work/err")"
else
    fail "flow_vision: $(cat "$work/err")"
fi

test_finish test_vision_graphs

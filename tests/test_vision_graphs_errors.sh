#!/bin/bash
# The vision RL graphs given the wrong model fail with one clear line and a
# non-zero exit: a text-only bundle (no <|image_pad|> in its tokenizer, no
# vision encoder), a bundle whose tokenizer has the placeholders but whose
# vision encoder is missing, an unknown method. Plus a one-step smoke run of
# rlfr_vision.lua and `rlfr plan`, small enough for the sanitizer build (the
# full end-to-end checks are test_vision_graphs, labelled slow).
#   bash tests/test_vision_graphs_errors.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
tiny=(--set batch=2 --set group=2 --set max_new=16 --set eval.n=2 --set eval.max_new=8 --set micro.texts=32
      --set task.max_shapes=1 --threads 2)

# expect_error NAME PATTERN COMMAND...: non-zero exit, one line on stderr
# that matches PATTERN, no crash (exit status below 128).
expect_error() {
    local name=$1 pattern=$2
    shift 2
    "$@" > "$work/out" 2> "$work/err"
    local rc=$?
    if [ $rc -eq 0 ]; then fail "$name: exit status 0"; return; fi
    [ $rc -lt 128 ] || fail "$name: crashed (exit status $rc)"
    [ "$(wc -l < "$work/err")" -eq 1 ] || fail "$name: expected one line on stderr, got: $(cat "$work/err")"
    grep -Eq "$pattern" "$work/err" || fail "$name: message does not match '$pattern': $(cat "$work/err")"
}

# A text-only micro bundle (rl_text's model=random, no SFT).
"$RLFR" run "$SRC/graphs/rlvr_text.lua" --set model=random --set steps=0 --set micro.sft_steps=0 --set batch=2 \
    --set group=2 --set eval.n=2 --set eval.max_new=4 --set micro.texts=32 --threads 2 --out "$work/text" \
    > /dev/null 2> "$work/err" || { echo "FAIL: text bundle: $(cat "$work/err")"; exit 1; }
for m in rlfr rlvr; do
    expect_error "$m on a text model" "text/init: the tokenizer has no <\|vision_start\|> / <\|image_pad\|> / <\|vision_end\|> token: not a multimodal model" \
        "$RLFR" run "$SRC/graphs/${m}_vision.lua" --set model="$work/text/init" "${tiny[@]}" --out "$work/r-$m"
done
expect_error "flow_vision on a text model" "not a multimodal model" \
    "$RLFR" run "$SRC/graphs/flow_vision.lua" --set model="$work/text/init" --set steps=1 --out "$work/f-text"

# Smoke: one RLFR step of the micro vision model (30 SFT steps), whose init
# bundle then loses its vision encoder.
if "$RLFR" run "$SRC/graphs/rlfr_vision.lua" --set model=random --set steps=1 --set micro.sft_steps=30 "${tiny[@]}" \
        --out "$work/vis" > "$work/vis.out" 2> "$work/err"; then
    tail -1 "$work/vis.out" | grep -Eq '^accuracy_before=[0-9.]+ accuracy_after=[0-9.]+$' \
        || fail "smoke: last line is not the accuracy line: $(tail -1 "$work/vis.out")"
    grep -q null "$work/vis/metrics.jsonl" && fail "smoke: a metric is not finite"
    cp -r "$work/vis/init" "$work/novision"
    rm -f "$work/novision/vision.safetensors" "$work/novision/vision_config.json"
    expect_error "bundle without vision encoder" "novision: the bundle has no vision encoder \(vision.safetensors\)" \
        "$RLFR" run "$SRC/graphs/rlvr_vision.lua" --set model="$work/novision" "${tiny[@]}" --out "$work/r-nv"
    expect_error "unknown method" "method=foo: unknown method" \
        "$RLFR" run "$SRC/graphs/rlfr_vision.lua" --set model="$work/vis/init" --set method=foo "${tiny[@]}" \
        --out "$work/r-m"
else
    fail "smoke: $(cat "$work/err")"
fi

"$RLFR" plan "$SRC/graphs/rlfr_vision.lua" --set model=random --set micro.texts=32 > "$work/plan" 2> "$work/err" ||
    fail "plan: $(cat "$work/err")"
head -n 1 "$work/plan" | grep -q '^arena_bytes=[0-9]* naive_bytes=[0-9]* lower_bound_bytes=[0-9]*$' ||
    fail "plan: first line: $(head -n 1 "$work/plan")"

test_finish test_vision_graphs_errors

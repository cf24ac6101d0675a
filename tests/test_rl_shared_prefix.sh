#!/bin/bash
# The RL graph with shared prompts (the default) against the same run with
# --set shared_prefix=false: a micro policy (random weights + SFT), 3 RLFR
# steps of 4 prompts x 4 samples from the same start and seed. Sharing only
# changes float summation order, so every logged metric (losses, KL, clip
# fraction, entropy, flow loss, rewards) and the final weights must agree
# closely, though not bit for bit. Timings are not compared.
# RLFR_TEST_LABELS: slow
#   bash tests/test_rl_shared_prefix.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=24 --set eval.n=4 --set eval.max_new=16
       --threads 2)

"$RLFR" run "$SRC/graphs/rlvr_text.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
for sp in true false; do
    "$RLFR" run "$SRC/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.soft=0.5 \
        --set shared_prefix=$sp "${small[@]}" --out "$work/$sp" > "$work/$sp.out" 2> "$work/err" \
        || { echo "FAIL: shared_prefix=$sp: $(cat "$work/err")"; exit 1; }
done

/usr/bin/python3 "$SRC/tests/compare_runs.py" "$work/true" "$work/false" --metric-tol 1e-4 --weight-tol 1e-5
rc=$?
# The weights moved at all (else agreement would mean nothing).
cmp -s "$work/base/init/model.safetensors" "$work/true/final/model.safetensors" \
    && { echo "FAIL: the policy did not change"; rc=1; }
[ $rc -eq 0 ] && echo "test_rl_shared_prefix: passed"
exit $rc

#!/bin/bash
# The online flow update skipping rejected rollouts (flow.skip_rejected, the
# default) against the same run computing every rollout's rows: a micro
# policy, 3 RLFR steps of 4 prompts x 4 samples from the same start and seed.
# flow.correct = 0.5 makes "boxed but wrong" count as correct, so that the
# micro model has both accepted and rejected rollouts. Skipping must leave
# the flow loss, every other metric and the final policy and flow weights
# unchanged (up to float summation order in the flow's weight gradients),
# while the flow computes fewer rows. With soft_flow > 0 no weight is 0, so
# nothing may be skipped. Timings are not compared.
# RLFR_TEST_LABELS: slow
#   bash tests/test_rl_flow_skip.sh RLFR_BINARY SOURCE_DIR
set -u
. "$(dirname "$0")/lib.sh" "$@"
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=24 --set eval.n=4 --set eval.max_new=16 --threads 2)

"$RLFR" run "$SRC/graphs/rlvr_text.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
for sk in true false; do
    "$RLFR" run "$SRC/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.correct=0.5 \
        --set flow.skip_rejected=$sk "${small[@]}" --out "$work/$sk" > "$work/$sk.out" 2> "$work/err" \
        || { echo "FAIL: skip_rejected=$sk: $(cat "$work/err")"; exit 1; }
done
"$RLFR" run "$SRC/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.correct=0.5 \
    --set flow.soft=0.5 "${small[@]}" --out "$work/soft" > "$work/soft.out" 2> "$work/err" \
    || { echo "FAIL: soft_flow 0.5: $(cat "$work/err")"; exit 1; }

# The flow's zero-initialised adaLN and final layers are still ~lr in size
# after 3 Adam steps: below 1e-3 a difference is taken absolute. flow_train's
# own loss averages over the rows it computed, so it differs by design;
# flow_rows exists only where skipping is on.
/usr/bin/python3 "$SRC/tests/compare_runs.py" "$work/true" "$work/false" --metric-tol 1e-5 --weight-tol 1e-5 \
    --files model.safetensors,flow.safetensors --min-scale 1e-3 \
    --ignore flow_train.flow_score_loss,flow_train.flow_rows
rc=$?
/usr/bin/python3 - "$work" <<'PY' || rc=1
import json, sys
work = sys.argv[1]
fails = 0
def fail(msg):
    global fails
    fails += 1
    print("FAIL:", msg)

def metrics(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]

a, b, soft = metrics("true"), metrics("false"), metrics("soft")
rejected = sum(s.get("flow_weights.flow_rejected", 0) for s in a)
accepted = sum(s.get("flow_loss.flow_accepted", 0) for s in a)
for sa in a:
    if "flow_train.flow_rows" not in sa:
        fail(f"step {sa.get('step')}: no flow_train.flow_rows with skipping on")
for sb in b:
    if "flow_train.flow_rows" in sb:
        fail(f"step {sb.get('step')}: flow_train.flow_rows logged with skipping off")
if rejected == 0 or accepted == 0:
    fail(f"the runs need both rejected ({rejected}) and accepted ({accepted}) rollouts to mean anything")
if len(soft) != 3:
    fail(f"soft_flow 0.5: {len(soft)} metric lines")
for s in soft:
    if s.get("flow_weights.flow_rejected") != 0:
        fail(f"soft_flow 0.5: {s.get('flow_weights.flow_rejected')} rollouts got weight 0")
print(f"{rejected:.0f} rejected / {accepted:.0f} accepted rollouts")
sys.exit(1 if fails else 0)
PY
# The flow moved at all (else agreement would mean nothing).
cmp -s "$work/base/init/flow.safetensors" "$work/true/final/flow.safetensors" \
    && { echo "FAIL: the flow did not change"; rc=1; }
[ $rc -eq 0 ] && echo "test_rl_flow_skip: passed"
exit $rc

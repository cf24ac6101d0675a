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
rlfr=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=24 --set eval.n=4 --set eval.max_new=16 --threads 2)

"$rlfr" run "$src/graphs/rlvr_text.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
for sk in true false; do
    "$rlfr" run "$src/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.correct=0.5 \
        --set flow.skip_rejected=$sk "${small[@]}" --out "$work/$sk" > "$work/$sk.out" 2> "$work/err" \
        || { echo "FAIL: skip_rejected=$sk: $(cat "$work/err")"; exit 1; }
done
"$rlfr" run "$src/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.correct=0.5 \
    --set flow.soft=0.5 "${small[@]}" --out "$work/soft" > "$work/soft.out" 2> "$work/err" \
    || { echo "FAIL: soft_flow 0.5: $(cat "$work/err")"; exit 1; }

/usr/bin/python3 - "$work" <<'PY'
import json, struct, sys
work = sys.argv[1]
fails = 0
def fail(msg):
    global fails
    fails += 1
    print("FAIL:", msg)

def metrics(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]

a, b, soft = metrics("true"), metrics("false"), metrics("soft")
if len(a) != 3 or len(b) != 3 or len(soft) != 3:
    fail(f"expected 3 metric lines, got {len(a)}, {len(b)} and {len(soft)}")
# flow_train's own loss averages over the rows it computed, so it differs by
# design; flow_rows exists only where skipping is on.
own = ("flow_train.flow_score_loss", "flow_train.flow_rows")
checked, rejected, accepted = 0, 0, 0
for sa, sb in zip(a, b):
    for k, va in sa.items():
        if k.startswith("time") or k == "wall" or k in own or not isinstance(va, (int, float)):
            continue
        vb = sb.get(k)
        if vb is None:
            fail(f"step {sa.get('step')}: metric {k} missing from the run without skipping")
            continue
        checked += 1
        if abs(va - vb) > 1e-5 * max(1.0, abs(vb)):
            fail(f"step {sa.get('step')}: {k} = {va} skipping, {vb} not skipping")
    rejected += sa.get("flow_weights.flow_rejected", 0)
    accepted += sa.get("flow_loss.flow_accepted", 0)
    if "flow_train.flow_rows" not in sa:
        fail(f"step {sa.get('step')}: no flow_train.flow_rows with skipping on")
    if "flow_train.flow_rows" in sb:
        fail(f"step {sb.get('step')}: flow_train.flow_rows logged with skipping off")
if rejected == 0 or accepted == 0:
    fail(f"the runs need both rejected ({rejected}) and accepted ({accepted}) rollouts to mean anything")
if checked < 30:
    fail(f"only {checked} metric values compared")
for s in soft:
    if s.get("flow_weights.flow_rejected") != 0:
        fail(f"soft_flow 0.5: {s.get('flow_weights.flow_rejected')} rollouts got weight 0")

def tensors(name, file):
    raw = open(f"{work}/{name}/final/{file}", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for key, t in head.items():
        if key == "__metadata__":
            continue
        if t["dtype"] != "F32":
            fail(f"{file} {key}: dtype {t['dtype']}")
            continue
        lo, hi = t["data_offsets"]
        out[key] = struct.unpack(f"<{(hi - lo) // 4}f", data[lo:hi])
    return out

worst = 0.0
for file in ("model.safetensors", "flow.safetensors"):
    ta, tb = tensors("true", file), tensors("false", file)
    if len(ta) != len(tb) or not tb:
        fail(f"{file}: {len(ta)} vs {len(tb)} tensors")
    for key, xb in tb.items():
        xa = ta.get(key)
        if xa is None:
            fail(f"{file} {key} missing")
            continue
        # The flow's zero-initialised adaLN and final layers are still ~lr in
        # size after 3 Adam steps: below 1e-3 the difference is taken absolute.
        scale = max(max(abs(v) for v in xb), 1e-3)
        worst = max(worst, max(abs(p - q) for p, q in zip(xa, xb)) / scale)
if worst > 1e-5:
    fail(f"final weights differ by {worst} (relative to each tensor's scale)")
print(f"compared {checked} metric values over {rejected:.0f} rejected / {accepted:.0f} accepted rollouts; "
      f"final weights differ by at most {worst:.2g} of their scale")
sys.exit(1 if fails else 0)
PY
rc=$?
# The flow moved at all (else agreement would mean nothing).
cmp -s "$work/base/init/flow.safetensors" "$work/true/final/flow.safetensors" \
    && { echo "FAIL: the flow did not change"; rc=1; }
[ $rc -eq 0 ] && echo "test_rl_flow_skip: passed"
exit $rc

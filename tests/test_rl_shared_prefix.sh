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
rlfr=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=passive
small=(--set batch=4 --set group=4 --set max_new=24 --set eval.n=4 --set eval.max_new=16
       --threads 2)

"$rlfr" run "$src/graphs/rlvr_text.lua" --set model=random --set steps=0 "${small[@]}" --out "$work/base" \
    > "$work/base.out" 2> "$work/err" || { echo "FAIL: base model: $(cat "$work/err")"; exit 1; }
for sp in true false; do
    "$rlfr" run "$src/graphs/rlfr_text.lua" --set model="$work/base/init" --set steps=3 --set flow.soft=0.5 \
        --set shared_prefix=$sp "${small[@]}" --out "$work/$sp" > "$work/$sp.out" 2> "$work/err" \
        || { echo "FAIL: shared_prefix=$sp: $(cat "$work/err")"; exit 1; }
done

/usr/bin/python3 - "$work" <<'EOF'
import json, struct, sys
work = sys.argv[1]
fails = 0
def fail(msg):
    global fails
    fails += 1
    print("FAIL:", msg)

def metrics(name):
    return [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]

a, b = metrics("true"), metrics("false")
if len(a) != 3 or len(b) != 3:
    fail(f"expected 3 metric lines, got {len(a)} and {len(b)}")
checked = 0
for sa, sb in zip(a, b):
    for k, va in sa.items():
        if k.startswith("time") or k == "wall" or not isinstance(va, (int, float)):
            continue
        vb = sb.get(k)
        if vb is None:
            fail(f"step {sa.get('step')}: metric {k} missing from the unshared run")
            continue
        checked += 1
        if abs(va - vb) > 1e-4 * max(1.0, abs(vb)):
            fail(f"step {sa.get('step')}: {k} = {va} shared, {vb} unshared")
if checked < 30:
    fail(f"only {checked} metric values compared")

def tensors(name):
    raw = open(f"{work}/{name}/final/model.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for key, t in head.items():
        if key == "__metadata__":
            continue
        if t["dtype"] != "F32":
            fail(f"{key}: dtype {t['dtype']}")
            continue
        lo, hi = t["data_offsets"]
        out[key] = struct.unpack(f"<{(hi - lo) // 4}f", data[lo:hi])
    return out

ta, tb = tensors("true"), tensors("false")
worst = 0.0
for key, xb in tb.items():
    xa = ta.get(key)
    if xa is None:
        fail(f"{key} missing")
        continue
    scale = max(max(abs(v) for v in xb), 1e-6)
    worst = max(worst, max(abs(p - q) for p, q in zip(xa, xb)) / scale)
if worst > 1e-5:
    fail(f"final weights differ by {worst} (relative to each tensor's scale)")
print(f"compared {checked} metric values; final weights differ by at most {worst:.2g} of their scale")
sys.exit(1 if fails else 0)
EOF
rc=$?
# The weights moved at all (else agreement would mean nothing).
cmp -s "$work/base/init/model.safetensors" "$work/true/final/model.safetensors" \
    && { echo "FAIL: the policy did not change"; rc=1; }
[ $rc -eq 0 ] && echo "test_rl_shared_prefix: passed"
exit $rc

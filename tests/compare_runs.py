#!/usr/bin/env python3
"""Compares two rlfr run directories that must agree up to float summation
order: every numeric metric of every step of metrics.jsonl (wall-clock keys
`wall` and `time*` aside) within a relative tolerance, and every f32 tensor
of the final bundle's safetensors files within a tolerance relative to each
tensor's largest magnitude. Used by the shell tests that check an
optimisation changes nothing (shared prompts, skipped rejected rollouts).

  compare_runs.py RUN_A RUN_B [--steps N] [--metric-tol T] [--weight-tol T]
      [--files model.safetensors,flow.safetensors] [--ignore k1,k2]
      [--min-scale S] [--min-checked N]

Prints FAIL lines and a summary; exits 1 on any failure.
"""
import argparse
import json
import struct
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--metric-tol", type=float, default=1e-4)
    ap.add_argument("--weight-tol", type=float, default=1e-5)
    ap.add_argument("--files", default="model.safetensors")
    ap.add_argument("--ignore", default="", help="metrics allowed to differ or be missing")
    ap.add_argument("--min-scale", type=float, default=1e-6,
                    help="tensors smaller than this are compared in absolute terms")
    ap.add_argument("--min-checked", type=int, default=30)
    o = ap.parse_args()
    ignore = set(k for k in o.ignore.split(",") if k)
    fails = []

    def metrics(run):
        return [json.loads(line) for line in open(f"{run}/metrics.jsonl")]

    ma, mb = metrics(o.a), metrics(o.b)
    if len(ma) != o.steps or len(mb) != o.steps:
        fails.append(f"expected {o.steps} metric lines, got {len(ma)} and {len(mb)}")
    checked = 0
    for sa, sb in zip(ma, mb):
        for k, va in sa.items():
            if k.startswith("time") or k == "wall" or k in ignore or not isinstance(va, (int, float)):
                continue
            vb = sb.get(k)
            if vb is None:
                fails.append(f"step {sa.get('step')}: metric {k} missing from {o.b}")
                continue
            checked += 1
            if abs(va - vb) > o.metric_tol * max(1.0, abs(vb)):
                fails.append(f"step {sa.get('step')}: {k} = {va} in {o.a}, {vb} in {o.b}")
    if checked < o.min_checked:
        fails.append(f"only {checked} metric values compared")

    def tensors(run, file):
        raw = open(f"{run}/final/{file}", "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        head = json.loads(raw[8:8 + n])
        data = raw[8 + n:]
        out = {}
        for key, t in head.items():
            if key == "__metadata__":
                continue
            if t["dtype"] != "F32":
                fails.append(f"{file} {key}: dtype {t['dtype']}")
                continue
            lo, hi = t["data_offsets"]
            out[key] = struct.unpack(f"<{(hi - lo) // 4}f", data[lo:hi])
        return out

    worst = 0.0
    for file in o.files.split(","):
        ta, tb = tensors(o.a, file), tensors(o.b, file)
        if len(ta) != len(tb) or not tb:
            fails.append(f"{file}: {len(ta)} vs {len(tb)} tensors")
        for key, xb in tb.items():
            xa = ta.get(key)
            if xa is None:
                fails.append(f"{file} {key} missing from {o.a}")
                continue
            scale = max(max(abs(v) for v in xb), o.min_scale)
            worst = max(worst, max(abs(p - q) for p, q in zip(xa, xb)) / scale)
    if worst > o.weight_tol:
        fails.append(f"final weights differ by {worst} (relative to each tensor's scale)")
    for f in fails:
        print("FAIL:", f)
    print(f"compared {checked} metric values; final weights differ by at most {worst:.2g} of their scale")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Collects a bench/ablation.sh sweep into one Markdown report (stdout).

Usage: ablation_report.py OUT STEPS EVAL_N PASSK EXTRA [JOBS_FILE]

Reads OUT/jobs.txt, or JOBS_FILE (NAME METHOD SEED [key=value...] per run:
several sweeps into one OUT are reported together by listing all their runs
there), and, per run,
OUT/NAME-sSEED.log (last line accuracy_before=X accuracy_after=Y),
OUT/NAME-sSEED/metrics.jsonl (one JSON object per step; test_accuracy on
evaluation steps) and OUT/NAME-sSEED.pass.log (pass@K=X of the final bundle).
Standard library only: it runs wherever the sweep ran.
"""
import json
import math
import os
import re
import sys


def mean_std(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, 1
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def fmt_ms(xs, digits=4):
    m, s, n = mean_std(xs)
    if n == 0:
        return "–"
    if s is None:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def last_match(path, pattern):
    """The groups of the last line of PATH matching PATTERN, or None."""
    if not os.path.exists(path):
        return None
    found = None
    with open(path, errors="replace") as f:
        for line in f:
            m = re.search(pattern, line)
            if m:
                found = m.groups()
    return found


def read_metrics(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def window_mean(rows, key, lo, hi):
    xs = [r[key] for r in rows if lo <= r["step"] <= hi and isinstance(r.get(key), (int, float))]
    return sum(xs) / len(xs) if xs else None


def main():
    out, steps, eval_n, passk, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
    configs, runs = [], []
    jobs = sys.argv[6] if len(sys.argv) > 6 else os.path.join(out, "jobs.txt")
    with open(jobs) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            name, method, seed = parts[0], parts[1], int(parts[2])
            if name not in configs:
                configs.append(name)
            base = os.path.join(out, f"{name}-s{seed}")
            acc = last_match(base + ".log", r"accuracy_before=([0-9.]+) accuracy_after=([0-9.]+)")
            if acc is None:
                print(f"ablation_report: no result for {name} seed {seed}", file=sys.stderr)
                continue
            pk = last_match(base + ".pass.log", r"^pass@\d+=([0-9.]+)")
            sampled = last_match(base + ".pass.log", r"^accuracy=([0-9.]+) sampled")
            rows = read_metrics(os.path.join(base, "metrics.jsonl"))
            runs.append({
                "name": name, "method": method, "seed": seed, "before": float(acc[0]), "after": float(acc[1]),
                "pass": float(pk[0]) if pk else None, "sampled": float(sampled[0]) if sampled else None,
                "rows": rows,
            })
    by = {c: [r for r in runs if r["name"] == c] for c in configs}
    start_pass = last_match(os.path.join(out, "start.pass.log"), r"^pass@\d+=([0-9.]+)")
    start_sampled = last_match(os.path.join(out, "start.pass.log"), r"^accuracy=([0-9.]+) sampled")

    p = print
    p("# Ablation results\n")
    p(f"steps={steps}, eval.n={eval_n}, extra=\"{extra}\". Accuracy: greedy pass@1 on the first eval.n test")
    if passk > 0:
        p(f"problems; pass@{passk} and sampled accuracy: temperature 1, {passk} samples per problem, of the")
        p("final bundle; train: training-batch `verify.accuracy` (sampled, G per prompt) over the last 10 steps.")
    else:
        p("problems; train: training-batch `verify.accuracy` (sampled, G per prompt) over the last 10 steps.")
    p("Mean ± sample std over seeds.\n")
    if start_pass:
        p(f"Start bundle: pass@{passk} = {float(start_pass[0]):.4f}, sampled accuracy = "
          f"{float(start_sampled[0]):.4f}.\n" if start_sampled else f"Start bundle: pass@{passk} = {float(start_pass[0]):.4f}.\n")
    p(f"| config | runs | before | after | after − before | pass@{passk} | sampled | train (last 10) |")
    p("|---|---|---|---|---|---|---|---|")
    for c in configs:
        rs = by[c]
        if not rs:
            continue
        p(f"| {c} | {len(rs)} | {fmt_ms([r['before'] for r in rs])} | {fmt_ms([r['after'] for r in rs])} | "
          f"{fmt_ms([r['after'] - r['before'] for r in rs])} | {fmt_ms([r['pass'] for r in rs])} | "
          f"{fmt_ms([r['sampled'] for r in rs])} | "
          f"{fmt_ms([window_mean(r['rows'], 'verify.accuracy', steps - 9, steps) for r in rs])} |")

    # Test accuracy at every evaluation step (greedy, eval.n problems).
    eval_steps = sorted({r0["step"] for r in runs for r0 in r["rows"] if "test_accuracy" in r0})
    if eval_steps:
        p("\nTest accuracy (greedy pass@1) during training, mean ± std over seeds:\n")
        p("| config | 0 |" + "".join(f" {s} |" for s in eval_steps))
        p("|---|---|" + "---|" * len(eval_steps))
        for c in configs:
            rs = by[c]
            if not rs:
                continue
            cells = [fmt_ms([r["before"] for r in rs], 3)]
            for s in eval_steps:
                cells.append(fmt_ms([next((x["test_accuracy"] for x in r["rows"] if x["step"] == s
                                           and "test_accuracy" in x), None) for r in rs], 3))
            p(f"| {c} | " + " | ".join(cells) + " |")

    # Training-batch accuracy in windows of 10 steps.
    wins = [(lo, min(lo + 9, steps)) for lo in range(1, steps + 1, 10)]
    p("\nTraining-batch `verify.accuracy` (sampled rollouts), mean over seeds of each 10-step window:\n")
    p("| config |" + "".join(f" {lo}–{hi} |" for lo, hi in wins))
    p("|---|" + "---|" * len(wins))
    for c in configs:
        rs = by[c]
        if not rs:
            continue
        cells = []
        for lo, hi in wins:
            m, _, n = mean_std([window_mean(r["rows"], "verify.accuracy", lo, hi) for r in rs])
            cells.append("–" if n == 0 else f"{m:.3f}")
        p(f"| {c} | " + " | ".join(cells) + " |")

    # Flow-score separation (RLFR runs): P(correct response has the lower mean
    # flow score) over (correct, wrong) pairs within groups; 0.5 = none.
    flow_cfgs = [c for c in configs if any("shaper.flow_sep" in x for r in by[c] for x in r["rows"])]
    if flow_cfgs:
        p("\nFlow-score separation of correct from wrong rollouts (`shaper.flow_sep`: fraction of")
        p("(correct, wrong) pairs in a group where the correct response has the lower mean flow score;")
        p("0.5 = no separation), mean flow score of correct / wrong responses, and flow-rewarded tokens:\n")
        p("| config | flow_sep steps 1–10 | flow_sep last 10 | flow_sep all | steps with sep > 0.5 | "
          "score correct | score wrong | flow tokens / step | mean flow reward |")
        p("|---|---|---|---|---|---|---|---|---|")
        for c in flow_cfgs:
            rs = by[c]
            above = [sum(1 for x in r["rows"] if x.get("shaper.flow_sep", 0.5) > 0.5) for r in rs]
            counted = [sum(1 for x in r["rows"] if "shaper.flow_sep" in x) for r in rs]
            p(f"| {c} | {fmt_ms([window_mean(r['rows'], 'shaper.flow_sep', 1, 10) for r in rs], 3)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_sep', steps - 9, steps) for r in rs], 3)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_sep', 1, steps) for r in rs], 3)} | "
              f"{sum(above)} / {sum(counted)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_score_correct', 1, steps) for r in rs], 3)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_score_wrong', 1, steps) for r in rs], 3)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_tokens', 1, steps) for r in rs], 1)} | "
              f"{fmt_ms([window_mean(r['rows'], 'shaper.flow_reward_mean', 1, steps) for r in rs], 5)} |")

    p(f"\n| run | seed | before | after | pass@{passk} | train (last 10) |")
    p("|---|---|---|---|---|---|")
    for r in runs:
        tr = window_mean(r["rows"], "verify.accuracy", steps - 9, steps)
        pk = "–" if r["pass"] is None else f"{r['pass']:.4f}"
        trs = "–" if tr is None else f"{tr:.4f}"
        p(f"| {r['name']} | {r['seed']} | {r['before']:.4f} | {r['after']:.4f} | {pk} | {trs} |")


if __name__ == "__main__":
    main()

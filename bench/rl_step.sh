#!/bin/bash
# One full RLFR step, rlfr against plain PyTorch, in one run: rollout of 16
# prompts x 8 samples (64 new tokens at most, temperature 1, KV cache),
# verification, scoring (frozen forward with latent taps, flow score,
# shaping), one policy update (PPO) and one online flow update, on the tiny
# configuration (vocab 512, hidden 128, 4 layers, 4 heads, 2 KV heads,
# intermediate 384; flow width 128, depth 4), random weights, the same prompts.
# rlfr: graphs/lib/rl_text.lua's RLFR graph (bench/bench_rl_step.lua), 2
# OpenMP threads shared with OpenBLAS, OMP_WAIT_POLICY=passive (see
# bench/policy.sh for why on this shared machine). PyTorch:
# bench/rl_step_torch.py with torch.set_num_threads(1), its best setting here.
# Times are means over STEPS steps after one warm-up step, best of ROUNDS
# rounds (default 2 steps, 2 rounds); the rollouts
# of a random policy rarely stop early, so both sides generate ~max_new tokens
# per sample (the generated token counts are printed).
# The policy forwards share each prompt among its G samples (shared-prefix
# packing, docs/policy.md); RL_STEP_UNSHARED=1 also runs rlfr without it in
# every round (same rounds, same load) and prints both.
#   bash bench/rl_step.sh [BUILD_DIR] [STEPS] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
steps=${2:-2}
rounds=${3:-2}
bin=$build/rlfr
[ -x "$bin" ] || { echo "rl_step.sh: $bin not built (cmake --build $build --target rlfr)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
field() { echo "$1" | sed -n "s|.* $2=\([0-9.]*\).*|\1|p"; }

# Rounds alternate rlfr and PyTorch, and each side keeps its best round:
# on a shared machine the load drifts, and alternating exposes both to it.
best() { # best FILE...: the "rl_step mean" line with the smallest total
    local b="" bt=""
    for f in "$@"; do
        local l t
        l=$(grep ' rl_step mean' "$f") || continue
        t=$(field "$l" total)
        if [ -z "$bt" ] || awk -v a="$t" -v b="$bt" 'BEGIN{exit !(a < b)}'; then b=$l; bt=$t; fi
    done
    echo "$b"
}
for round in $(seq 1 "$rounds"); do
    echo "== round $round of $rounds"
    OMP_WAIT_POLICY=passive "$bin" run "$here/bench_rl_step.lua" --threads 2 --out "$work" --set steps="$steps" \
        > "$work/rlfr$round.txt"
    grep -v '^micro' "$work/rlfr$round.txt"
    if [ "${RL_STEP_UNSHARED:-0}" = 1 ]; then
        OMP_WAIT_POLICY=passive "$bin" run "$here/bench_rl_step.lua" --threads 2 --out "$work" --set steps="$steps" \
            --set shared_prefix=false > "$work/unshared$round.txt"
        grep -v '^micro' "$work/unshared$round.txt"
    fi
    /usr/bin/python3 "$here/rl_step_torch.py" "$work/prompts.json" "$work/tokenizer.json" "$steps" 1 \
        | tee "$work/torch$round.txt"
done

r=$(best "$work"/rlfr*.txt)
t=$(best "$work"/torch*.txt)
echo "best rounds:"; echo "$r"; echo "$t"
x=$(field "$r" total); y=$(field "$t" total)
ratio=$(awk -v a="$y" -v b="$x" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "nan" }')
for p in rollout score update; do
    a=$(field "$r" "$p"); b=$(field "$t" "$p")
    awk -v p="$p" -v a="$a" -v b="$b" -v x="$x" -v y="$y" 'BEGIN{ printf "rl_step %-8s rlfr=%.3fs (%4.1f%%)  torch=%.3fs (%4.1f%%)  ratio=%.2f\n", p, a, 100*a/x, b, 100*b/y, (a > 0 ? b/a : 0) }'
done
echo "rl_step generated tokens per step: rlfr=$(field "$r" gen_tokens) torch=$(field "$t" gen_tokens)"
if [ "${RL_STEP_UNSHARED:-0}" = 1 ]; then
    u=$(best "$work"/unshared*.txt)
    echo "$u"
    for p in score update total; do
        a=$(field "$r" "$p"); b=$(field "$u" "$p")
        awk -v p="$p" -v a="$a" -v b="$b" 'BEGIN{ printf "rl_step %-8s shared=%.3fs unshared=%.3fs speedup=%.2f\n", p, a, b, (a > 0 ? b/a : 0) }'
    done
fi
echo "bench rl_step rlfr=$x reference=$y unit=s ratio=$ratio"

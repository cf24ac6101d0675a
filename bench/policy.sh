#!/bin/bash
# Policy benchmark: rlfr (bench_policy) against plain PyTorch (policy_torch.py)
# on the same Qwen2 configurations, in one run.
#   training step (forward, NLL, backward, AdamW): tiny, small  (unit tokens/s)
#   generation with a KV cache, 8 prompts x 16 tokens, 64 new:  tiny-gen, small-gen
# PyTorch runs with torch.set_num_threads(1) (OpenBLAS keeps its 2 threads),
# with 2 threads spinning and with 2 threads passive; the ratio is taken
# against the best of the three in that round (which one wins changes with
# the machine's load). rlfr runs with 2 OpenMP threads
# (OpenBLAS's OpenMP build shares that pool); its figures with
# OMP_WAIT_POLICY=passive and with 1 thread are printed too: on a shared
# 2-core machine a thread spinning at a barrier while its partner is
# descheduled can cost 2-6x, for rlfr and PyTorch alike, so compare runs
# made at the same time only.
# With a third argument "big" it also runs the Qwen2.5-0.5B shape (random
# weights saved and loaded as bf16 safetensors; f32 forward of 1 x 64 tokens,
# 32 generated tokens with bf16 weights; ~3 minutes, ~5 GiB).
#   bash bench/policy.sh [BUILD_DIR] [STEPS] [big]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
steps=${2:-5}
bin=$build/bench/bench_policy
[ -x "$bin" ] || { echo "policy.sh: $bin not built (cmake --build $build --target bench_policy)" >&2; exit 1; }
field() { echo "$1" | sed -n "s|.* $2=\([0-9.]*\).*|\1|p"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "nan" }'; }
lines=()
for w in tiny small tiny-gen small-gen; do
    key=tokens/s
    case $w in *-gen) key=gen_tokens/s ;; esac
    r2=$(OMP_NUM_THREADS=2 "$bin" "$w" "$steps" | tail -1); echo "$r2"
    r2p=$(OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2 "$bin" "$w" "$steps" | tail -1); echo "$r2p (passive)"
    r1=$(OMP_NUM_THREADS=1 "$bin" "$w" "$steps" | tail -1); echo "$r1"
    t1=$(/usr/bin/python3 "$here/policy_torch.py" "$w" "$steps" 1); echo "$t1"
    t2=$(/usr/bin/python3 "$here/policy_torch.py" "$w" "$steps" 2); echo "$t2 (spinning)"
    t2p=$(OMP_WAIT_POLICY=passive /usr/bin/python3 "$here/policy_torch.py" "$w" "$steps" 2); echo "$t2p (passive)"
    x=$(field "$r2" "$key"); x2p=$(field "$r2p" "$key"); x1=$(field "$r1" "$key")
    y=$(field "$t1" "$key"); y2=$(field "$t2" "$key"); y2p=$(field "$t2p" "$key")
    best=$y; best_name="1 thread"
    if awk -v a="$y2" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=$y2; best_name="2 threads"; fi
    if awk -v a="$y2p" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=$y2p; best_name="2 threads, passive"; fi
    echo "policy $w: best PyTorch setting: $best_name; rlfr(2 threads)/best torch = $(ratio "$x" "$best")"
    echo "policy $w: rlfr(2 threads)/torch(1 thread) = $(ratio "$x" "$y"), rlfr(2, passive)/torch(1) = $(ratio "$x2p" "$y")," \
         "rlfr(1)/torch(1) = $(ratio "$x1" "$y"), torch(2)/torch(1) = $(ratio "$y2" "$y"), torch(2, passive)/torch(1) = $(ratio "$y2p" "$y")"
    case $w in small) echo "policy small: fraction of the sgemm ceiling = $(field "$r2" fraction) (2 threads)," \
                           "$(field "$r1" fraction) (1 thread); the ceiling is measured in the same run";; esac
    unit=tokens/s
    [ "$key" = gen_tokens/s ] && unit=generated_tokens/s
    name=policy_train_$w
    case $w in *-gen) name=policy_gen_${w%-gen} ;; esac
    lines+=("bench $name rlfr=$x reference=$best unit=$unit ratio=$(ratio "$x" "$best")")
done
if [ "${3:-}" = big ]; then
    r=$(OMP_NUM_THREADS=2 "$bin" qwen05b 1); echo "$r"
    t=$(/usr/bin/python3 "$here/policy_torch.py" qwen05b 1 1); echo "$t"
    xf=$(field "$(echo "$r" | grep forward_)" forward_tokens/s); yf=$(field "$(echo "$t" | grep forward_)" forward_tokens/s)
    xg=$(field "$(echo "$r" | grep gen_)" gen_tokens/s); yg=$(field "$(echo "$t" | grep gen_)" gen_tokens/s)
    lines+=("bench policy_forward_qwen05b rlfr=$xf reference=$yf unit=tokens/s ratio=$(ratio "$xf" "$yf")")
    lines+=("bench policy_gen_qwen05b rlfr=$xg reference=$yg unit=generated_tokens/s ratio=$(ratio "$xg" "$yg")")
fi
for l in "${lines[@]}"; do echo "$l"; done

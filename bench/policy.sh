#!/bin/bash
# Policy benchmark: rlfr (bench_policy) against plain PyTorch (policy_torch.py)
# on the same Qwen2 configurations, in one run.
#   training step (forward, NLL, backward, AdamW): tiny, small  (unit tokens/s)
#   generation with a KV cache, 8 prompts x 16 tokens, 64 new:  tiny-gen, small-gen
# PyTorch is compared in its best setting here, torch.set_num_threads(1)
# (its 2-thread figure is printed too). rlfr runs with 2 OpenMP threads
# (OpenBLAS's OpenMP build shares that pool); its 1-thread figure is printed too.
#   bash bench/policy.sh [BUILD_DIR] [STEPS]
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
    r1=$(OMP_NUM_THREADS=1 "$bin" "$w" "$steps" | tail -1); echo "$r1"
    t1=$(/usr/bin/python3 "$here/policy_torch.py" "$w" "$steps" 1); echo "$t1"
    t2=$(/usr/bin/python3 "$here/policy_torch.py" "$w" "$steps" 2); echo "$t2"
    x=$(field "$r2" "$key"); x1=$(field "$r1" "$key"); y=$(field "$t1" "$key"); y2=$(field "$t2" "$key")
    echo "policy $w: rlfr(2 threads)/torch(1 thread) = $(ratio "$x" "$y"), rlfr(1)/torch(1) = $(ratio "$x1" "$y")," \
         "torch(2)/torch(1) = $(ratio "$y2" "$y")"
    case $w in small) echo "policy small: fraction of the sgemm ceiling = $(field "$r2" fraction) (2 threads)," \
                           "$(field "$r1" fraction) (1 thread)";; esac
    unit=tokens/s
    [ "$key" = gen_tokens/s ] && unit=generated_tokens/s
    name=policy_train_$w
    case $w in *-gen) name=policy_gen_${w%-gen} ;; esac
    lines+=("bench $name rlfr=$x reference=$y unit=$unit ratio=$(ratio "$x" "$y")")
done
for l in "${lines[@]}"; do echo "$l"; done

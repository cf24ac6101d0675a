#!/usr/bin/env bash
# Flow network throughput, rlfr against plain PyTorch 1.13 on the same
# network (bench/flow_torch.py), width 128 and 256, depth 4, 4096 vectors:
#   train: flow-matching forward + backward into every parameter
#   score: forward at t = 0.8 + per-row loss
# rlfr uses both cores (OpenBLAS on the OpenMP pool, 2 threads); PyTorch its
# best setting here, torch.set_num_threads(1) (its 2-thread figure is printed
# too). Rounds alternate rlfr / PyTorch so machine noise hits both; each side
# keeps its best round. Also printed: single-thread CPU-time throughput of
# both (robust on a loaded machine).
#   bash bench/flow.sh [build-dir] [rounds=3]
# Ends with: bench WORKLOAD rlfr=X reference=Y unit=vectors/s ratio=R (R > 1: rlfr faster).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
rounds=${2:-3}
bin=$build/bench/bench_flow
if [ ! -x "$bin" ]; then
  echo "flow.sh: $bin not found (build the bench_flow target)" >&2
  exit 1
fi
py=/usr/bin/python3
n=4096 depth=4 reps=5
best() { # best "key=value" over lines on stdin
  sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | sort -g | tail -1
}
summary=()
for w in 128 256; do
  rl="" t1="" t2=""
  for r in $(seq "$rounds"); do
    rl+=$(OMP_NUM_THREADS=2 "$bin" "$w" "$depth" "$n" "$reps" 2)$'\n'
    t1+=$(OMP_NUM_THREADS=1 "$py" "$src/bench/flow_torch.py" "$w" "$depth" "$n" "$reps" 1)$'\n'
  done
  t2=$(OMP_NUM_THREADS=2 "$py" "$src/bench/flow_torch.py" "$w" "$depth" "$n" "$reps" 2)
  c1=$(OMP_NUM_THREADS=1 "$bin" "$w" "$depth" "$n" "$reps" 1 cpu)
  ct=$(OMP_NUM_THREADS=1 "$py" "$src/bench/flow_torch.py" "$w" "$depth" "$n" "$reps" 1 cpu)
  printf '%s' "$rl" | sed 's/^/  /'
  printf '%s' "$t1" | sed 's/^/  /'
  echo "  $t2"
  echo "  single-thread CPU time: rlfr train=$(echo "$c1" | best train) score=$(echo "$c1" | best score)," \
       "torch train=$(echo "$ct" | best train) score=$(echo "$ct" | best score) vectors/s"
  for wl in train score; do
    a=$(printf '%s' "$rl" | best "$wl")
    b=$(printf '%s' "$t1" | best "$wl")
    summary+=("$(awk -v w="$w" -v k="$wl" -v a="$a" -v b="$b" \
      'BEGIN { printf "bench flow_%s_w%s rlfr=%.0f reference=%.0f unit=vectors/s ratio=%.2f", k, w, a, b, a / b }')")
  done
done
printf '%s\n' "${summary[@]}"

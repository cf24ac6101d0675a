#!/usr/bin/env bash
# Planner figures for the packaged graphs: arena bytes (rlfr's plan) against
# the naive allocation (every buffer on its own) and the lower bound (most
# bytes live at one schedule step). Usage: bench/plan.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
rlfr=$build/rlfr
graphs=("graphs/examples/regression.lua")
for g in graphs/flow_offline.lua graphs/sft_text.lua graphs/rlvr_text.lua graphs/rlfr_text.lua graphs/entropy_text.lua \
         graphs/flow_vision.lua graphs/sft_vision.lua graphs/rlvr_vision.lua graphs/rlfr_vision.lua; do
  [ -f "$here/$g" ] && graphs+=("$g")
done
for g in "${graphs[@]}"; do
  # Graphs that start from the shipped model plan on a random one when it is absent.
  line=$(cd "$here" && "$rlfr" plan "$g" 2>/dev/null | head -n 1) || true
  case "$line" in arena_bytes=*) ;; *)
    line=$(cd "$here" && "$rlfr" plan "$g" --set model=random 2>/dev/null | head -n 1) || true ;;
  esac
  case "$line" in arena_bytes=*) ;; *) echo "skip $g (plan failed)"; continue ;; esac
  a=$(sed -E 's/.*arena_bytes=([0-9]+).*/\1/' <<<"$line")
  n=$(sed -E 's/.*naive_bytes=([0-9]+).*/\1/' <<<"$line")
  l=$(sed -E 's/.*lower_bound_bytes=([0-9]+).*/\1/' <<<"$line")
  name=$(basename "$g" .lua)
  awk -v a="$a" -v n="$n" -v l="$l" -v w="$name" 'BEGIN {
    printf "%s: arena %.0f B, naive %.0f B, lower bound %.0f B, arena/lower bound %.3f\n", w, a, n, l, (l ? a / l : 1)
    printf "bench plan_%s rlfr=%.0f reference=%.0f unit=bytes ratio=%.3f\n", w, a, n, (a ? n / a : 1)
  }'
done

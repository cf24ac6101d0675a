#!/usr/bin/env bash
# The full RLVR vs RLFR vs entropy experiment (issue 7, and issue 8's RLVR vs
# RLFR on the shapes task with TASK=vision) and its beta / norm ablation, as
# one resumable script:
#   rlvr, entropy, and rlfr for every beta in BETAS and norm in NORMS,
#   each for every seed in SEEDS, STEPS RL steps, greedy pass@1 on EVAL_N
#   test problems before, every EVAL_EVERY steps and after, then sampled
#   pass@PASSK of the trained bundle (and of the start bundle, once).
# Writes OUT/RUN.log and OUT/RUN/ (metrics.jsonl, checkpoints, final bundle)
# per run and OUT/results.md (bench/ablation_report.py): per-config mean ± std
# (sample std), test-accuracy and training-accuracy curves, flow-score
# separation, and a per-run table.
# A run whose log already ends with its accuracy line is not run again, so an
# interrupted sweep continues where it stopped; COLLECT=1 only collects.
#
#   bash bench/ablation.sh [RLFR_BIN=build/rlfr] [OUT=runs/ablation]
# Environment (defaults = the full experiment):
#   STEPS=100 SEEDS="1 2 3 4 5" EVAL_N=512 EVAL_EVERY=25 PASSK=8 (0: none)
#   BETAS="0.01 0.05 0.1" NORMS="minmax minmax_bilateral"
#   METHODS="rlvr entropy rlfr" TASK=text (or vision) JOBS=2
#   EXTRA="..."  more --set key=value pairs for every run (e.g. model=DIR)
# Runs go seed-major (every config at seed 1, then seed 2, ...), so a sweep
# cut short still compares the configs on the same seeds.
# Tiny check (random micro model, seconds per run):
#   STEPS=2 SEEDS="1 2" EVAL_N=8 BETAS=0.05 NORMS=minmax PASSK=0 \
#     EXTRA="model=random" bash bench/ablation.sh build/rlfr /tmp/abl
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$src/build/rlfr}
out=${2:-$src/runs/ablation}
STEPS=${STEPS:-100}
SEEDS=${SEEDS:-"1 2 3 4 5"}
EVAL_N=${EVAL_N:-512}
EVAL_EVERY=${EVAL_EVERY:-25}
PASSK=${PASSK:-8}
TASK=${TASK:-text}
BETAS=${BETAS:-"0.01 0.05 0.1"}
NORMS=${NORMS:-"minmax minmax_bilateral"}
METHODS=${METHODS:-"rlvr entropy rlfr"}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
COLLECT=${COLLECT:-0}
case "$TASK" in
  text) eval_graph=eval.lua ;;
  vision) eval_graph=eval_vision.lua ;;
  *) echo "ablation.sh: TASK must be text or vision, not '$TASK'" >&2; exit 1 ;;
esac
if [ ! -x "$bin" ]; then
  echo "ablation.sh: $bin is not an executable rlfr binary (build the rlfr target)" >&2
  exit 1
fi
mkdir -p "$out"
# Both cores are shared: one thread per run, and idle OpenMP workers sleep.
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1

# One line per run: NAME METHOD SEED SET-ARGS...
configs=()
for m in $METHODS; do
  if [ "$m" = rlfr ]; then
    for b in $BETAS; do
      for nm in $NORMS; do configs+=("rlfr-b$b-$nm rlfr flow.coef=$b flow.norm=$nm"); done
    done
  else
    configs+=("$m $m")
  fi
done
jobs_file=$out/jobs.txt
: >"$jobs_file"
for c in "${configs[@]}"; do
  read -r name method sets <<<"$c"
  # No trailing blank: xargs -L would join the next line onto this one.
  for s in $SEEDS; do echo "$name $method $s${sets:+ $sets}" >>"$jobs_file"; done
done
sort -s -k3,3n -o "$jobs_file" "$jobs_file"

# pass@K of a bundle on the first EVAL_N test problems of the same test set
# the RL graphs evaluate on (the text graphs' task settings, not eval.lua's).
pass_k() { # BUNDLE LOG OUTDIR
  [ "$PASSK" -gt 0 ] || return 0
  if [ -f "$2" ] && grep -q '^pass@' "$2"; then return 0; fi
  local task_sets=()
  [ "$TASK" = text ] && task_sets=(--set task.min_steps=0)
  "$bin" run "$src/graphs/$eval_graph" --seed 1 --threads 1 --out "$3" --set model="$1" --set n="$EVAL_N" \
    --set k="$PASSK" --set greedy=false "${task_sets[@]}" >"$2" 2>&1 ||
    echo "ablation.sh: pass@$PASSK of $1 failed, see $2" >&2
}

run_one() { # NAME METHOD SEED [key=value ...]
  local name=$1 method=$2 seed=$3
  shift 3
  local dir=$out/$name-s$seed log=$out/$name-s$seed.log args=()
  if ! { [ -f "$log" ] && grep -q '^accuracy_before=' "$log"; }; then
    for kv in "steps=$STEPS" "eval.n=$EVAL_N" "eval.every=$EVAL_EVERY" "$@" $EXTRA; do args+=(--set "$kv"); done
    # A half-finished run resumes from its last checkpoint in $dir.
    if ! "$bin" run "$src/graphs/${method}_$TASK.lua" --seed "$seed" --threads 1 --out "$dir" "${args[@]}" \
        >"$log" 2>&1; then
      echo "ablation.sh: run $name seed $seed failed, see $log" >&2
      return 0
    fi
  fi
  [ -d "$dir/final" ] && pass_k "$dir/final" "$out/$name-s$seed.pass.log" "$dir/eval"
  return 0
}
export -f run_one pass_k
export bin src out STEPS EVAL_N EVAL_EVERY PASSK TASK EXTRA eval_graph

if [ "$COLLECT" != 1 ]; then
  echo "ablation.sh: $(wc -l <"$jobs_file") runs, $JOBS at a time, logs in $out"
  # The start bundle's pass@K, once (every run starts from it).
  start_model=$(sed -n 's/.*model=\([^ ]*\).*/\1/p' <<<"$EXTRA")
  [ -n "$start_model" ] || start_model=$src/models/$([ "$TASK" = text ] && echo arith-tiny || echo shapes-tiny)
  [ "$start_model" = random ] || pass_k "$start_model" "$out/start.pass.log" "$out/start-eval"
  # xargs keeps JOBS runs going; a failed run does not stop the others.
  xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _ <"$jobs_file" || true
fi

# ---- collect ----
python3 "$src/bench/ablation_report.py" "$out" "$STEPS" "$EVAL_N" "$PASSK" "$EXTRA" >"$out/results.md"
cat "$out/results.md"

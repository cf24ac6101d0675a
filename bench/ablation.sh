#!/usr/bin/env bash
# The full RLVR vs RLFR vs entropy experiment (issue 7) and its beta / norm
# ablation, as one resumable script:
#   rlvr, entropy, and rlfr for every beta in BETAS and norm in NORMS,
#   each for every seed in SEEDS, STEPS RL steps, greedy pass@1 on EVAL_N
#   test problems before and after.
# Writes OUT/RUN.log and OUT/RUN/ (metrics.jsonl, checkpoints) per run and
# OUT/results.md: a per-run table and mean ± std (sample std) per config.
# A run whose log already ends with its accuracy line is not run again, so an
# interrupted sweep continues where it stopped; COLLECT=1 only collects.
#
#   bash bench/ablation.sh [RLFR_BIN=build/rlfr] [OUT=runs/ablation]
# Environment (defaults = the full experiment):
#   STEPS=100 SEEDS="1 2 3 4 5" EVAL_N=512 BETAS="0.01 0.05 0.1"
#   NORMS="minmax minmax_bilateral" METHODS="rlvr entropy rlfr" JOBS=2
#   EXTRA="..."  more --set key=value pairs for every run (e.g. model=DIR)
# The full grid is 5 seeds x (2 + 3x2) configs = 40 runs; at ~4 min per 30
# steps on 2 loaded cores that is roughly 40 x 13 min / JOBS.
# Tiny check (random micro model, seconds per run):
#   STEPS=2 SEEDS="1 2" EVAL_N=8 BETAS=0.05 NORMS=minmax \
#     EXTRA="model=random" bash bench/ablation.sh build/rlfr /tmp/abl
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$src/build/rlfr}
out=${2:-$src/runs/ablation}
STEPS=${STEPS:-100}
SEEDS=${SEEDS:-"1 2 3 4 5"}
EVAL_N=${EVAL_N:-512}
BETAS=${BETAS:-"0.01 0.05 0.1"}
NORMS=${NORMS:-"minmax minmax_bilateral"}
METHODS=${METHODS:-"rlvr entropy rlfr"}
JOBS=${JOBS:-2}
EXTRA=${EXTRA:-}
COLLECT=${COLLECT:-0}
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

run_one() { # NAME METHOD SEED [key=value ...]
  local name=$1 method=$2 seed=$3
  shift 3
  local dir=$out/$name-s$seed log=$out/$name-s$seed.log args=()
  if [ -f "$log" ] && grep -q '^accuracy_before=' "$log"; then return 0; fi
  for kv in "steps=$STEPS" "eval.n=$EVAL_N" "$@" $EXTRA; do args+=(--set "$kv"); done
  # A half-finished run resumes from its last checkpoint in $dir.
  if ! "$bin" run "$src/graphs/${method}_text.lua" --seed "$seed" --threads 1 --out "$dir" "${args[@]}" \
      >"$log" 2>&1; then
    echo "ablation.sh: run $name seed $seed failed, see $log" >&2
  fi
}
export -f run_one
export bin src out STEPS EVAL_N EXTRA

if [ "$COLLECT" != 1 ]; then
  echo "ablation.sh: $(wc -l <"$jobs_file") runs, $JOBS at a time, logs in $out"
  # xargs keeps JOBS runs going; a failed run does not stop the others.
  xargs -P "$JOBS" -L 1 bash -c 'run_one "$@"' _ <"$jobs_file" || true
fi

# ---- collect ----
# Per run: accuracy before/after from the log's last line, and the training
# batch accuracy (verify.accuracy) averaged over the last 5 logged steps.
rows=$out/rows.tsv
: >"$rows"
while read -r name method seed _; do
  log=$out/$name-s$seed.log met=$out/$name-s$seed/metrics.jsonl
  acc=$(grep '^accuracy_before=' "$log" 2>/dev/null | tail -1 || true)
  [ -n "$acc" ] || { echo "ablation.sh: no result for $name seed $seed" >&2; continue; }
  before=$(sed 's/.*accuracy_before=\([0-9.]*\).*/\1/' <<<"$acc")
  after=$(sed 's/.*accuracy_after=\([0-9.]*\).*/\1/' <<<"$acc")
  train=nan
  if [ -f "$met" ]; then
    train=$(grep -o '"verify.accuracy":[-0-9.e]*' "$met" | tail -5 | cut -d: -f2 |
            awk '{ s += $1; n++ } END { if (n) printf "%.4f", s / n; else print "nan" }')
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$seed" "$before" "$after" "$train" >>"$rows"
done <"$jobs_file"

{
  echo "# Ablation results"
  echo
  echo "steps=$STEPS seeds=\"$SEEDS\" eval.n=$EVAL_N extra=\"$EXTRA\"; greedy pass@1 on the first"
  echo "eval.n test problems; train = verify.accuracy (sampled, G per prompt) over the last 5 steps."
  echo
  echo "| config | runs | before | after | after − before | train (last 5 steps) |"
  echo "|---|---|---|---|---|---|"
  awk -F'\t' '
    function ms(k, i,   m, v, j) { # "mean ± std" of column i over runs of config k
      m = 0; for (j = 1; j <= n[k]; j++) m += x[k, j, i]; m /= n[k]
      v = 0; for (j = 1; j <= n[k]; j++) v += (x[k, j, i] - m) ^ 2
      return n[k] > 1 ? sprintf("%.4f ± %.4f", m, sqrt(v / (n[k] - 1))) : sprintf("%.4f", m)
    }
    { k = $1; if (!(k in n)) order[++nk] = k; j = ++n[k]
      x[k, j, 1] = $3; x[k, j, 2] = $4; x[k, j, 3] = $4 - $3; x[k, j, 4] = $5 }
    END { for (i = 1; i <= nk; i++) { k = order[i]
            printf "| %s | %d | %s | %s | %s | %s |\n", k, n[k], ms(k, 1), ms(k, 2), ms(k, 3), ms(k, 4) } }
  ' "$rows"
  echo
  # Learning curves: training-batch verify.accuracy, mean over seeds, every
  # CURVE_EVERY steps (the run's metrics.jsonl has one line per step).
  every=${CURVE_EVERY:-10}
  [ "$every" -le "$STEPS" ] || every=$STEPS
  echo "Training-batch verify.accuracy (mean over seeds) every $every steps:"
  echo
  cols=$(seq "$every" "$every" "$STEPS" | tr '\n' ' ')
  echo "| config |$(for k in $cols; do printf ' %s |' "$k"; done)"
  echo "|---|$(for k in $cols; do printf -- '---|'; done)"
  while read -r name _; do
    printf '| %s |' "$name"
    for k in $cols; do
      for s in $SEEDS; do
        grep -o "\"step\":$k,.*" "$out/$name-s$s/metrics.jsonl" 2>/dev/null | head -1 |
          grep -o '"verify.accuracy":[-0-9.e]*' | cut -d: -f2 || true
      done | awk '{ s += $1; n++ } END { if (n) printf " %.3f |", s / n; else printf " – |" }'
    done
    echo
  done < <(printf '%s\n' "${configs[@]}")
  echo
  echo "| run | seed | before | after | train (last 5) |"
  echo "|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$rows"
} >"$out/results.md"
cat "$out/results.md"

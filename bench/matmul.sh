#!/usr/bin/env bash
# GEMM throughput of rlfr's kernel layer (linear forward/backward) against the
# raw cblas_sgemm ceiling on the same shapes, 2 threads.
#   bash bench/matmul.sh [BUILD_DIR] [REPS]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
"$build/bench/bench_matmul" "${2:-15}" 2

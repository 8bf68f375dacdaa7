#!/usr/bin/env bash
# quantfarm bench next to LiteRT on the same .tflite files, in one run.
# usage: scripts/bench-vs-litert.sh [--threads T] [--runs N] MODEL...
set -euo pipefail
cd "$(dirname "$0")/.."
threads=1 runs=50
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    *) break ;;
  esac
done
python="$(scripts/setup-python.sh)"
qf="${CARGO_TARGET_DIR:-target}/release/quantfarm"
[ -x "$qf" ] || cargo build --release --quiet
for m in "$@"; do
  "$qf" bench "$m" --threads "$threads" --runs "$runs" --json
  "$python" tests/interop/litert_bench.py "$m" --threads "$threads" --runs "$runs"
done

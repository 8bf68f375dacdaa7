#!/usr/bin/env bash
# 1- vs 2-thread latency of quantfarm and of LiteRT (XNNPACK) on one float .tflite, in
# interleaved rounds, each with the pool's hand-off cost (examples/pool_handoff.rs):
# on a VM the two vCPUs' placement on the host changes over time, and with it how well
# any 2-thread engine scales; the hand-off cost shows which placement a round ran in.
# usage: scripts/thread-scaling.sh MODEL [ROUNDS=10] [RUNS=300]
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1" rounds="${2:-10}" runs="${3:-300}"
python="$(scripts/setup-python.sh)"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin quantfarm
cargo build --release --quiet -p quantfarm-engine --example pool_handoff
qf="$target/release/quantfarm" probe="$target/release/examples/pool_handoff"
med() { "$python" -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])'; }
echo "round handoff_ns quantfarm_1t quantfarm_2t speedup litert_1t litert_2t speedup"
for i in $(seq 1 "$rounds"); do
  h=$("$probe" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["handoff_ns"])')
  a=$("$qf" bench "$model" --runs "$runs" --json | med)
  b=$("$qf" bench "$model" --runs "$runs" --threads 2 --json | med)
  c=$("$python" tests/interop/litert_bench.py "$model" --runs "$runs" --threads 1 2>/dev/null | med)
  d=$("$python" tests/interop/litert_bench.py "$model" --runs "$runs" --threads 2 2>/dev/null | med)
  echo "$i $h $a $b $c $d" | awk '{printf "%s %s %.3f %.3f %.2fx %.3f %.3f %.2fx\n", $1, $2, $3, $4, $3/$4, $5, $6, $5/$6}'
done

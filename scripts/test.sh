#!/usr/bin/env bash
# The project's test command (the README's and CI's): every Rust test in the release
# profile, then the interop checks against the official LiteRT interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export QUANTFARM_DATA="${QUANTFARM_DATA:-$(cd .. && pwd)/shared}"
if [ ! -f "$QUANTFARM_DATA/DESIGN.md" ]; then
  echo "error: shared data not found at $QUANTFARM_DATA (set QUANTFARM_DATA)" >&2
  exit 2
fi
cargo test --release --workspace --locked
python="$(scripts/setup-python.sh)"
PYTHON="$python" QUANTFARM="${CARGO_TARGET_DIR:-target}/release/quantfarm" tests/interop/run_all.sh

#!/usr/bin/env bash
# Round-trip every Coral model that has golden outputs through quantfarm's TFLite
# reader/writer (`quantfarm convert --to same`) and check with the official LiteRT
# interpreter that the rewritten file computes byte-identical outputs
# (tests/interop/roundtrip_check.py).
#
# Env: PYTHON (default python3; needs `ai-edge-litert` and numpy),
#      QUANTFARM_DATA (default ../shared relative to the repository root),
#      QUANTFARM (the quantfarm binary; default: the release build).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
data="${QUANTFARM_DATA:-../shared}"
golden_root="$data/reference/golden"
models="$data/models/coral"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

bin="${QUANTFARM:-${CARGO_TARGET_DIR:-$root/target}/release/quantfarm}"

fail=0
n=0
for golden in "$golden_root"/*/; do
  name="$(basename "$golden")"
  model="$models/$name.tflite"
  if [[ ! -f "$model" ]]; then
    echo "skip $name: no $model"
    continue
  fi
  n=$((n + 1))
  "$bin" convert "$model" --to same -o "$out/$name.tflite" >/dev/null
  if ! "$python" tests/interop/roundtrip_check.py "$model" "$out/$name.tflite" "$golden"; then
    fail=$((fail + 1))
  fi
done
if ((n == 0)); then
  echo "no models with golden outputs found under $golden_root" >&2
  exit 1
fi
if ((fail > 0)); then
  echo "$fail of $n models FAILED the round trip" >&2
  exit 1
fi
echo "all $n models round-trip with identical LiteRT outputs"

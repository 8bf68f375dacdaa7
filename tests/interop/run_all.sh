#!/usr/bin/env bash
# Interop checks against the official LiteRT interpreter. Needs $PYTHON (a venv with
# ai-edge-litert, see scripts/setup-python.sh) and $QUANTFARM (the release binary).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${QUANTFARM_DATA:-$here/../../../shared}"
: "${PYTHON:?set PYTHON to a python with ai-edge-litert}"
: "${QUANTFARM:?set QUANTFARM to the quantfarm binary}"
passed=0
failed=0
check() {
  echo "== interop: $*"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $*"; fi
}
check env PYTHON="$PYTHON" QUANTFARM="$QUANTFARM" QUANTFARM_DATA="$data" "$here/run_roundtrip.sh"
for m in mobilenet_v1_0.25_128_quant mobilenet_v1_0.5_160_quant mobilenet_v1_0.75_192_quant mobilenet_v2_1.0_224_quant; do
  check "$PYTHON" "$here/float_baseline.py" --quantfarm "$QUANTFARM" --model "$data/models/coral/$m.tflite"
done
# Our own quantized models (int8, uint8, int16x8): identical bytes to LiteRT's
# reference kernels on 20 inputs; int16 LOGISTIC/TANH/SOFTMAX on every int16 value.
check "$PYTHON" "$here/quantized_vs_litert.py" --quantfarm "$QUANTFARM" --model "$data/models/coral/mobilenet_v1_0.25_128_quant.tflite" --modes int8,uint8,int16x8 --io float
check "$PYTHON" "$here/quantized_vs_litert.py" --quantfarm "$QUANTFARM" --model "$data/models/coral/mobilenet_v2_1.0_224_quant.tflite" --io uint8
check "$PYTHON" "$here/quantized_vs_litert.py" --quantfarm "$QUANTFARM" --int16-ops
# The gated CIFAR-10 model trained here: MUL of activations, ADD, and a FULLY_CONNECTED
# whose small output shift makes LiteRT's f64 FC requantization differ from the
# multiplier's double rounding.
check "$PYTHON" "$here/quantized_vs_litert.py" --quantfarm "$QUANTFARM" --float-model "$here/../../models/cifar10/int16_effect.float32.tflite" --modes int8,uint8,int16x8 --calibration cifar10-train
# Models trained by `quantfarm train` (short runs): same top-1 in LiteRT on the same inputs.
for arch in mnv2-cifar mnv1-cifar; do
  check env QUANTFARM_DATA="$data" "$PYTHON" "$here/cifar_float_check.py" --quantfarm "$QUANTFARM" --arch "$arch" --train-limit 512
  # QAT (`optimize --technique qat --io int8`): no float tensor, bytes identical to LiteRT's reference kernels.
  check env QUANTFARM_DATA="$data" "$PYTHON" "$here/cifar_qat_check.py" --quantfarm "$QUANTFARM" --arch "$arch" --train-limit 512
done
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

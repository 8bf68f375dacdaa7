#!/usr/bin/env python3
"""Compare quantfarm's hybrid (dynamic-range) kernels with LiteRT's.

Usage: hybrid_check.py CASES_DIR

CASES_DIR holds one sub-folder per case (written by the engine's ignored test
`exec::quant_ops::hybrid::tests::litert_interop`), each with:
  model.tflite   one hybrid op: float32 input, int8 weights, float32 output
  input.bin      the float32 input (little-endian, the model's input shape)
  ref.bin        quantfarm's output with the reference kernels
  fast.bin       quantfarm's output with the fast kernels

Each model runs under three LiteRT resolvers: BUILTIN_REF (reference kernels),
BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized builtin kernels) and AUTO (default,
with XNNPACK). Prints one JSON object: per case and resolver the max absolute
difference, the max difference relative to max|output|, and how many outputs are
bit-identical. Exits non-zero only if LiteRT cannot run a case.
"""

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

RESOLVERS = {
    "builtin_ref": OpResolverType.BUILTIN_REF,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "auto": OpResolverType.AUTO,
}


def run(model, x, resolver):
    interp = Interpreter(
        model_path=str(model), num_threads=1, experimental_op_resolver_type=resolver
    )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x.reshape(inp["shape"]))
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(-1)


def compare(a, b):
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return {
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / scale),
        "identical": int(np.sum(a.view(np.uint32) == b.view(np.uint32))),
        "n": int(a.size),
    }


def main():
    root = Path(sys.argv[1])
    report = {}
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        x = np.fromfile(case / "input.bin", dtype="<f4")
        ours_ref = np.fromfile(case / "ref.bin", dtype="<f4")
        ours_fast = np.fromfile(case / "fast.bin", dtype="<f4")
        entry = {"fast_vs_ref_identical": bool(np.array_equal(ours_ref.view(np.uint32), ours_fast.view(np.uint32)))}
        for name, resolver in RESOLVERS.items():
            try:
                theirs = run(case / "model.tflite", x, resolver)
            except Exception as e:  # noqa: BLE001 - report and fail below
                print(f"{case.name}: LiteRT ({name}) failed: {e}", file=sys.stderr)
                return 1
            entry[name] = compare(ours_ref, theirs)
        report[case.name] = entry
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check that a rewritten .tflite computes exactly what the original does.

Usage: roundtrip_check.py ORIGINAL REWRITTEN GOLDEN_DIR

Loads both files with the official LiteRT interpreter (reference kernels,
OpResolverType.BUILTIN_REF, one thread), feeds every case stored in
GOLDEN_DIR/manifest.json (raw `case_NNN.inK.bin` inputs, dtype from the manifest)
and requires the outputs of the two models to be byte-identical to each other and
to the stored golden outputs. Exits non-zero with a message naming the first
mismatch otherwise.
"""

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def load(path):
    interp = Interpreter(
        model_path=str(path),
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    interp.allocate_tensors()
    return interp


def run(interp, inputs):
    for detail, data in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], data)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def read_bin(path, spec):
    data = np.fromfile(path, dtype=np.dtype(spec["dtype"]).newbyteorder("<"))
    want = int(np.prod(spec["shape"]))
    if data.size != want:
        raise ValueError(f"{path}: {data.size} elements, manifest shape {spec['shape']} needs {want}")
    return data.reshape(spec["shape"])


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    original, rewritten, golden = Path(argv[1]), Path(argv[2]), Path(argv[3])
    manifest = json.loads((golden / "manifest.json").read_text())
    a, b = load(original), load(rewritten)

    for interp, name in ((a, original), (b, rewritten)):
        n_in, n_out = len(interp.get_input_details()), len(interp.get_output_details())
        if (n_in, n_out) != (len(manifest["inputs"]), len(manifest["outputs"])):
            print(f"FAIL {name}: {n_in} inputs / {n_out} outputs, manifest has "
                  f"{len(manifest['inputs'])} / {len(manifest['outputs'])}", file=sys.stderr)
            return 1

    cases = manifest["cases"]
    for case in cases:
        inputs = [read_bin(golden / f, spec) for f, spec in zip(case["inputs"], manifest["inputs"])]
        out_a, out_b = run(a, inputs), run(b, inputs)
        for k, (x, y, f, spec) in enumerate(zip(out_a, out_b, case["outputs"], manifest["outputs"])):
            gold = read_bin(golden / f, spec)
            if x.tobytes() != y.tobytes():
                diff = int(np.count_nonzero(x != y))
                print(f"FAIL case {case['id']} output {k}: rewritten model differs from the "
                      f"original in {diff} of {x.size} elements", file=sys.stderr)
                return 1
            if x.dtype != gold.dtype or x.shape != gold.shape or x.tobytes() != gold.tobytes():
                diff = int(np.count_nonzero(x != gold)) if x.shape == gold.shape else "all"
                print(f"FAIL case {case['id']} output {k}: differs from golden {f} "
                      f"({diff} of {gold.size} elements)", file=sys.stderr)
                return 1
    print(f"OK {original.name}: {len(cases)} cases, rewritten == original == golden")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Check that quantized models written by `quantfarm quantize` load and run in LiteRT
and agree with the float model they came from.

Usage: quantize_check.py --float FLOAT.tflite --inputs DIR [--labels TSV] [--ref] [--limit N]
                         QUANT.tflite...

DIR holds preprocessed float32 inputs (`quantfarm eval --dump-inputs DIR`), one
`NNNNN.bin` per image. Each QUANT file is loaded with the official LiteRT interpreter
(default kernels; `--ref` = reference kernels) and run on every input; inputs of
integer-I/O models are quantized with the model's own input parameters, integer
outputs dequantized. Prints one JSON object per model: whether it loaded and ran, the
op versions, top-1 agreement with the float model and the mean absolute difference
of the output scores; with `--labels` (the `--predictions` TSV of the same `eval` run)
also the top-1 accuracy of the float and quantized models. Exits non-zero if any model fails to load or run.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def load(path, ref):
    kw = {"model_path": str(path), "num_threads": 2}
    if ref:
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    interp = Interpreter(**kw)
    interp.allocate_tensors()
    return interp


def run(interp, x):
    d = interp.get_input_details()[0]
    if d["dtype"] != np.float32:
        scale, zp = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(d["dtype"])
    interp.set_tensor(d["index"], x.reshape(d["shape"]))
    interp.invoke()
    o = interp.get_output_details()[0]
    y = interp.get_tensor(o["index"]).astype(np.float64)
    if o["dtype"] != np.float32:
        scale, zp = o["quantization"]
        y = (y - zp) * scale
    return y.reshape(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--float", dest="float_model", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--ref", action="store_true")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--labels", help="eval --predictions TSV (index, label, ...)")
    ap.add_argument("quant", nargs="+")
    a = ap.parse_args()

    files = sorted(Path(a.inputs).glob("*.bin"))[: a.limit]
    if not files:
        print(f"no .bin inputs in {a.inputs}", file=sys.stderr)
        return 2
    fm = load(a.float_model, a.ref)
    shape = fm.get_input_details()[0]["shape"]
    xs = [np.fromfile(f, dtype="<f4").reshape(shape) for f in files]
    ref = [run(fm, x) for x in xs]
    labels = None
    if a.labels:
        table = {}
        for line in Path(a.labels).read_text().splitlines()[1:]:
            cols = line.split("\t")
            table[int(cols[0])] = int(cols[1])
        labels = [table[int(f.stem)] for f in files]
        # TF-slim models have a background class in slot 0.
        offset = 1 if ref[0].size == 1001 else 0
        labels = [l + offset for l in labels]

    def top1(outs):
        return sum(int(np.argmax(o) == l) for o, l in zip(outs, labels)) / len(outs)

    if labels:
        print(json.dumps({"model": a.float_model, "n": len(xs), "top1": top1(ref)}), flush=True)

    failed = 0
    for q in a.quant:
        res = {"model": q}
        try:
            m = load(q, a.ref)
            outs = [run(m, x) for x in xs]
            agree = sum(int(np.argmax(o) == np.argmax(r)) for o, r in zip(outs, ref))
            res.update(
                loaded=True,
                ran=True,
                input_dtype=np.dtype(m.get_input_details()[0]["dtype"]).name,
                n=len(xs),
                top1_agreement=agree / len(xs),
                mean_abs_diff=float(np.mean([np.mean(np.abs(o - r)) for o, r in zip(outs, ref)])),
                size_bytes=Path(q).stat().st_size,
            )
            if labels:
                res["top1"] = top1(outs)
        except Exception as e:  # report and continue with the next model
            res.update(loaded=False, error=str(e).splitlines()[0] if str(e) else repr(e))
            failed += 1
        print(json.dumps(res), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How close quantized models' logits (the SOFTMAX input) and probabilities are to the
float model's, run by LiteRT's reference kernels (which our engine matches bit for bit).

Separates what the network's quantization does from what the final SOFTMAX does:
TFLite's int16 softmax maps x - max(x) onto its exp table over [-10, 0] and clamps below,
so every class more than 10 logits under the top one counts as exp(-10): on ImageNet
MobileNets that alone moves probabilities by ~7e-5 on average, so an int16x8 model can
have much closer logits yet farther probabilities than int8.

usage: logit_closeness.py --float F.tflite --inputs DIR [--limit N] Q1.tflite [Q2 ...]
DIR holds float32 input tensors (`quantfarm eval F --dump-inputs DIR`). Prints one JSON
line per quantized model.
"""
import argparse
import glob
import json

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def softmax_io(path, inputs):
    """(logits, probabilities) in float for each input, through BUILTIN_REF."""
    it = Interpreter(
        model_path=path,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    softmax = [o for o in it._get_ops_details() if o["op_name"] == "SOFTMAX"][-1]
    x_index = it.get_input_details()[0]["index"]

    def real(i):
        v = it.get_tensor(i).astype(np.float64).ravel()
        scale, zero = details[i]["quantization"]
        return (v - zero) * scale if scale else v

    out = []
    for x in inputs:
        it.set_tensor(x_index, x)
        it.invoke()
        out.append((real(softmax["inputs"][0]), real(softmax["outputs"][0])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--float", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("quantized", nargs="+")
    a = ap.parse_args()
    shape = Interpreter(model_path=a.float).get_input_details()[0]["shape"]
    files = sorted(glob.glob(f"{a.inputs}/*.bin"))[: a.limit]
    inputs = [np.fromfile(f, dtype=np.float32).reshape(shape) for f in files]
    base = softmax_io(a.float, inputs)
    for q in a.quantized:
        got = softmax_io(q, inputs)
        print(json.dumps({
            "model": q,
            "inputs": len(inputs),
            "logits_mean_abs_diff": float(np.mean([np.mean(np.abs(g[0] - b[0])) for g, b in zip(got, base)])),
            "probs_mean_abs_diff": float(np.mean([np.mean(np.abs(g[1] - b[1])) for g, b in zip(got, base)])),
        }))


if __name__ == "__main__":
    main()

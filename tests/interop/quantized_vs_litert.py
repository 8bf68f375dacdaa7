#!/usr/bin/env python3
"""Our own quantized models against LiteRT's reference kernels, byte for byte.

Quantizes a float32 model with `quantfarm quantize` (calibrated on ImageNet-sample
images 0..N; modes int8, uint8 and int16x8 — the last always with float I/O, the only
I/O int16x8 models have), then runs 20+ inputs through `quantfarm infer` (reference and fast kernels)
and through LiteRT with BUILTIN_REF, and requires identical output bytes.
Prints one JSON line per mode; exits 1 on any difference.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantfarm", required=True)
    ap.add_argument("--model", required=True, help="a quantized Coral model (dequantized first)")
    ap.add_argument("--modes", default="int8,uint8")
    ap.add_argument("--io", default="float")
    ap.add_argument("--cases", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qf-qvl-")
    ok = True
    try:
        flt = os.path.join(tmp, "float.tflite")
        run([a.quantfarm, "convert", a.model, "--to", "float32", "-o", flt])
        for mode in a.modes.split(","):
            q = os.path.join(tmp, f"{mode}.tflite")
            io = "float" if mode == "int16x8" else a.io
            run([a.quantfarm, "quantize", flt, "--mode", mode, "--calibration", "imagenet-sample",
                 "--calibration-size", "16", "--io", io, "-o", q])
            ref = Interpreter(model_path=q, num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            ref.allocate_tensors()
            din = ref.get_input_details()[0]
            douts = ref.get_output_details()
            rng = np.random.default_rng(7)
            diffs = {"reference": 0, "fast": 0}
            worst = {"reference": 0.0, "fast": 0.0}
            for case in range(a.cases):
                if din["dtype"] == np.float32:
                    x = rng.uniform(-1, 1, din["shape"]).astype(np.float32)
                else:
                    info = np.iinfo(din["dtype"])
                    x = rng.integers(info.min, info.max, din["shape"], endpoint=True).astype(din["dtype"])
                xin = os.path.join(tmp, "in.bin")
                x.tofile(xin)
                ref.set_tensor(din["index"], x)
                ref.invoke()
                want = [ref.get_tensor(d["index"]).tobytes() for d in douts]
                for kernels in diffs:
                    prefix = os.path.join(tmp, f"out_{kernels}")
                    run([a.quantfarm, "infer", q, "--input-raw", xin, "--output-raw", prefix,
                         "--kernels", kernels])
                    for k, w in enumerate(want):
                        got = open(f"{prefix}.out{k}.bin", "rb").read()
                        if got != w:
                            diffs[kernels] += 1
                            dt = np.dtype(douts[k]["dtype"])
                            if len(got) == len(w):
                                d = np.abs(np.frombuffer(got, dt).astype(np.float64)
                                           - np.frombuffer(w, dt).astype(np.float64))
                                worst[kernels] = max(worst[kernels], float(d.max()))
            res = {"model": os.path.basename(a.model), "mode": mode, "io": io, "cases": a.cases,
                   "differing_cases": diffs}
            if any(diffs.values()):
                res["max_abs_diff"] = worst
            print(json.dumps(res))
            if any(diffs.values()):
                ok = False
                print(f"FAIL {mode}: outputs differ from LiteRT reference kernels")
        print("ok quantized vs LiteRT" if ok else "FAILED quantized vs LiteRT")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""QAT files from `quantfarm optimize --technique qat` run bit-exactly in LiteRT.

  1. `quantfarm train` a short run, `quantfarm optimize --technique qat --io int8` it;
  2. the int8 file has no float tensor;
  3. on 20 CIFAR-10 test images (inputs as `quantfarm eval --dump-inputs` encodes
     them), `quantfarm infer` (fast and reference kernels) and LiteRT's reference
     kernels give identical output bytes.
Prints one JSON line; exits 1 if a check fails.
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
    ap.add_argument("--arch", default="mnv2-cifar")
    ap.add_argument("--train-limit", type=int, default=512)
    ap.add_argument("--images", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qf-qat-")
    try:
        flt = os.path.join(tmp, "float.tflite")
        qat = os.path.join(tmp, "qat.tflite")
        run([a.quantfarm, "train", "--arch", a.arch, "--epochs", "1", "--train-limit",
             str(a.train_limit), "--test-limit", "100", "-o", flt, "--json"])
        run([a.quantfarm, "optimize", flt, "--technique", "qat", "--epochs", "1",
             "--train-limit", str(a.train_limit), "--io", "int8", "-o", qat, "--json"])
        inputs = os.path.join(tmp, "inputs")
        run([a.quantfarm, "eval", qat, "--dataset", "cifar10-test", "--offset", "4990",
             "--limit", str(a.images), "--dump-inputs", inputs, "--json"])
        it = Interpreter(model_path=qat, num_threads=1,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        float_tensors = [d["name"] for d in it.get_tensor_details() if d["dtype"] == np.float32]
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        mismatches = 0
        files = sorted(os.listdir(inputs))
        for f in files:
            path = os.path.join(inputs, f)
            x = np.fromfile(path, dtype=np.int8).reshape(inp["shape"])
            it.set_tensor(inp["index"], x)
            it.invoke()
            lite = it.get_tensor(out["index"]).tobytes()
            for kernels in ("fast", "reference"):
                prefix = os.path.join(tmp, f"out_{kernels}_{f}")
                run([a.quantfarm, "infer", qat, "--input-raw", path, "--output-raw", prefix,
                     "--kernels", kernels])
                ours = open(prefix + ".out0.bin", "rb").read()
                mismatches += ours != lite
        result = {"arch": a.arch, "images": len(files), "float_tensors": float_tensors,
                  "byte_mismatches": mismatches}
        print(json.dumps(result))
        ok = not float_tensors and mismatches == 0 and len(files) == a.images
        print(f"{'ok' if ok else 'FAILED'} cifar qat {a.arch}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A model trained by `quantfarm train` runs the same in LiteRT as in our engine.

  1. `quantfarm train` a short mnv2-cifar run (a slice of CIFAR-10, 1 epoch);
  2. `quantfarm eval` on cifar10-test, dumping every input tensor ([0, 1] floats) and
     our top-5;
  3. LiteRT (default kernels) runs the same file on the same inputs: top-1 must
     agree on >= 99% of images, the ops must be the expected float set.
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
from ai_edge_litert.interpreter import Interpreter


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantfarm", required=True)
    ap.add_argument("--arch", default="mnv2-cifar")
    ap.add_argument("--train-limit", type=int, default=1024)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--min-agreement", type=float, default=0.99)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qf-cifar-")
    try:
        model = os.path.join(tmp, f"{a.arch}.tflite")
        run([a.quantfarm, "train", "--arch", a.arch, "--epochs", "1", "--train-limit",
             str(a.train_limit), "--test-limit", "100", "-o", model, "--json"])
        preds = os.path.join(tmp, "pred.tsv")
        inputs = os.path.join(tmp, "inputs")
        # Offset through the classes: the test members are sorted by class.
        ours = json.loads(run([a.quantfarm, "eval", model, "--dataset", "cifar10-test",
                               "--limit", str(a.limit), "--offset", "4850",
                               "--predictions", preds, "--dump-inputs", inputs, "--json"]))
        rows = [l.rstrip("\n").split("\t") for l in open(preds).readlines()[1:]]
        it = Interpreter(model_path=model, num_threads=1)
        it.allocate_tensors()
        ops = sorted({d["op_name"] for d in it._get_ops_details()})
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        agree = correct = 0
        for idx, label, top5 in rows:
            x = np.fromfile(os.path.join(inputs, f"{int(idx):05d}.bin"), dtype=np.float32)
            assert x.min() >= 0.0 and x.max() <= 1.0, "inputs must be in [0, 1]"
            it.set_tensor(inp["index"], x.reshape(inp["shape"]))
            it.invoke()
            top1 = int(np.argmax(it.get_tensor(out["index"])[0]))
            agree += top1 == int(top5.split(",")[0])
            correct += top1 == int(label)
        n = len(rows)
        result = {"arch": a.arch, "n": n, "ours_top1": ours["top1"], "litert_top1": correct / n,
                  "top1_agreement": agree / n, "ops": ops}
        print(json.dumps(result))
        want = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"}
        ok = agree / n >= a.min_agreement and want <= set(ops)
        print(f"{'ok' if ok else 'FAILED'} cifar float {a.arch}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

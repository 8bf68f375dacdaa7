#!/usr/bin/env python3
"""Float32 baseline check against the official LiteRT interpreter.

For one Coral quantized ImageNet MobileNet:
  1. `quantfarm convert --to float32` writes the dequantized model;
  2. `quantfarm eval` measures our top-1 on the ImageNet sample, dumping every
     preprocessed input and our top-5 predictions;
  3. LiteRT (default kernels, XNNPACK) runs our written float file on the same inputs:
     its top-1 must agree with ours on >= 99% of images;
  4. LiteRT (reference kernels) runs the original quantized file on the same inputs
     (quantized with the model's input parameters): our float top-1 must be within
     1.5 points of that.
Prints one result line per check; exits 1 if a check fails.
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
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantfarm", required=True)
    ap.add_argument("--model", required=True, help="path of the quantized .tflite")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--max-drop", type=float, default=0.015)
    ap.add_argument("--min-agreement", type=float, default=0.99)
    a = ap.parse_args()

    name = os.path.basename(a.model).removesuffix(".tflite")
    tmp = tempfile.mkdtemp(prefix=f"qf-{name}-")
    try:
        float_path = os.path.join(tmp, f"{name}_float32.tflite")
        run([a.quantfarm, "convert", a.model, "--to", "float32", "-o", float_path])
        preds = os.path.join(tmp, "pred.tsv")
        inputs = os.path.join(tmp, "inputs")
        ours = json.loads(run([a.quantfarm, "eval", float_path, "--dataset", "imagenet-sample",
                               "--limit", str(a.limit), "--predictions", preds,
                               "--dump-inputs", inputs, "--json"]))
        rows = [l.rstrip("\n").split("\t") for l in open(preds).readlines()[1:]]

        flt = Interpreter(model_path=float_path, num_threads=1)
        flt.allocate_tensors()
        fin, fout = flt.get_input_details()[0], flt.get_output_details()[0]
        q = Interpreter(model_path=a.model, num_threads=1,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        q.allocate_tensors()
        qin, qout = q.get_input_details()[0], q.get_output_details()[0]
        qscale, qzp = qin["quantization"]

        agree = 0
        q_correct = 0
        lite_correct = 0
        for idx, label, top5 in rows:
            x = np.fromfile(os.path.join(inputs, f"{int(idx):05d}.bin"), dtype=np.float32)
            x = x.reshape(fin["shape"])
            flt.set_tensor(fin["index"], x)
            flt.invoke()
            lite_top1 = int(np.argmax(flt.get_tensor(fout["index"])[0])) - 1
            our_top1 = int(top5.split(",")[0])
            agree += lite_top1 == our_top1
            lite_correct += lite_top1 == int(label)
            xq = np.clip(np.round(x / qscale) + qzp, 0, 255).astype(np.uint8)
            q.set_tensor(qin["index"], xq)
            q.invoke()
            q_correct += int(np.argmax(q.get_tensor(qout["index"])[0])) - 1 == int(label)
        n = len(rows)
        agreement = agree / n
        q_top1 = q_correct / n
        result = {
            "model": name, "n": n, "ours_float_top1": ours["top1"], "ours_float_top5": ours["top5"],
            "litert_float_top1": lite_correct / n, "litert_ref_quant_top1": q_top1,
            "top1_agreement_with_litert": agreement,
        }
        print(json.dumps(result))
        ok = True
        if agreement < a.min_agreement:
            print(f"FAIL {name}: top-1 agreement with LiteRT {agreement:.4f} < {a.min_agreement}")
            ok = False
        if abs(ours["top1"] - q_top1) > a.max_drop:
            print(f"FAIL {name}: float top-1 {ours['top1']:.4f} vs quantized {q_top1:.4f} "
                  f"differs by more than {a.max_drop}")
            ok = False
        print(f"{'ok' if ok else 'FAILED'} float baseline {name}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

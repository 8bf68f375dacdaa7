#!/usr/bin/env python3
"""Top-1 of a CIFAR-10 .tflite on the test split, by the official LiteRT interpreter.

Independent of quantfarm's own data path: the JPEGs are read from
`$QUANTFARM_DATA/data/cifar10/test.tar` with Python's tarfile, decoded by Pillow
(libjpeg), labelled by their directory through classes.txt, scaled to [0, 1]
(the CIFAR models' input convention) and, for int8/uint8 inputs, quantized with the
input tensor's scale and zero point. Prints one JSON line.

  python scripts/litert_cifar_accuracy.py MODEL [--limit N] [--kernels default|reference]
"""
import argparse
import io
import json
import os
import sys
import tarfile
import time

import numpy as np
from PIL import Image
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=0, help="first N test images (0: all)")
    ap.add_argument("--kernels", choices=["default", "reference"], default="default")
    a = ap.parse_args()
    root = os.environ.get("QUANTFARM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    cifar = os.path.join(root, "data", "cifar10")
    classes = [l.strip() for l in open(os.path.join(cifar, "classes.txt")) if l.strip()]
    index = {c: i for i, c in enumerate(classes)}
    resolver = (OpResolverType.BUILTIN_REF if a.kernels == "reference"
                else OpResolverType.AUTO)
    it = Interpreter(model_path=a.model, num_threads=1, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = inp["quantization"]
    t0 = time.time()
    n = correct = 0
    with tarfile.open(os.path.join(cifar, "test.tar")) as tar:
        for m in tar:
            if not m.isfile() or not m.name.endswith(".jpg"):
                continue
            label = index[m.name.split("/")[0]]
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            x = np.asarray(img, dtype=np.float32)[None] / 255.0
            if inp["dtype"] != np.float32:
                info = np.iinfo(inp["dtype"])
                x = np.clip(np.round(x / scale) + zp, info.min, info.max)
            it.set_tensor(inp["index"], x.astype(inp["dtype"]))
            it.invoke()
            correct += int(np.argmax(it.get_tensor(out["index"])[0])) == label
            n += 1
            if a.limit and n >= a.limit:
                break
    print(json.dumps({"model": a.model, "kernels": a.kernels, "images": n,
                      "top1": correct / max(n, 1), "seconds": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

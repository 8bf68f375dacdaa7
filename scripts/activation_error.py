#!/usr/bin/env python3
"""Which activations a quantized CIFAR-10 model loses, tensor by tensor, by LiteRT.

Runs the float model and its quantized version (int8 or int16x8, same graph, tensors
named alike) on the same test images with the official LiteRT interpreter (reference
kernels by default) and every intermediate tensor kept. For each quantized activation
it prints:
  own_snr_db   signal-to-noise of quantizing the *float* tensor with this tensor's
               scale and zero point alone (rounding + clipping of that tensor only:
               what its range and bit width cost by themselves);
  snr_db       signal-to-noise of the quantized model's dequantized tensor against the
               float tensor (the error accumulated up to this point);
  range/rms    calibrated range width over the float tensor's RMS (how much of the
               range the typical value uses), and max|x| / RMS of the float tensor.
Prints one JSON object per tensor, worst own_snr first, then a summary line.

  python scripts/activation_error.py FLOAT.tflite QUANT.tflite [--limit N] [--kernels reference|default]
"""
import argparse
import io
import json
import os
import tarfile

import numpy as np
from PIL import Image
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def images(limit):
    root = os.environ.get("QUANTFARM_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    cifar = os.path.join(root, "data", "cifar10")
    members = []
    with tarfile.open(os.path.join(cifar, "test.tar")) as tar:
        all_jpg = [m for m in tar if m.isfile() and m.name.endswith(".jpg")]
        # The archive is ordered by class: take an even spread.
        step = max(1, len(all_jpg) // limit)
        for m in all_jpg[::step][:limit]:
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            members.append(np.asarray(img, dtype=np.float32)[None] / 255.0)
    return members


def interpreter(path, kernels):
    resolver = OpResolverType.BUILTIN_REF if kernels == "reference" else OpResolverType.AUTO
    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=resolver,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def set_input(it, x):
    d = it.get_input_details()[0]
    if d["dtype"] != np.float32:
        s, z = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / s) + z, info.min, info.max)
    it.set_tensor(d["index"], x.astype(d["dtype"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("float_model")
    ap.add_argument("quant_model")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--kernels", choices=["default", "reference"], default="reference")
    a = ap.parse_args()
    fl, qm = interpreter(a.float_model, a.kernels), interpreter(a.quant_model, a.kernels)
    fnames = {t["name"]: t["index"] for t in fl.get_tensor_details()}
    pairs = []
    for t in qm.get_tensor_details():
        s, z = t["quantization"]
        if t["dtype"] not in (np.int8, np.int16, np.uint8) or not s or t["name"] not in fnames:
            continue
        if len(t["shape"]) == 0 or t["index"] in {d["index"] for d in qm.get_input_details()}:
            continue
        ft = next(x for x in fl.get_tensor_details() if x["index"] == fnames[t["name"]])
        if ft["dtype"] != np.float32 or list(ft["shape"]) != list(t["shape"]):
            continue
        # Constant tensors (weights, biases) have data before invoke; skip them.
        if "weights" in t["name"] or "bias" in t["name"]:
            continue
        pairs.append((t, ft))
    acc = {t["name"]: dict(sig=0.0, own=0.0, err=0.0, mx=0.0, n=0) for t, _ in pairs}
    for x in images(a.limit):
        set_input(fl, x)
        fl.invoke()
        set_input(qm, x)
        qm.invoke()
        for t, ft in pairs:
            f = fl.get_tensor(ft["index"]).astype(np.float64)
            q = qm.get_tensor(t["index"]).astype(np.float64)
            s, z = t["quantization"]
            info = np.iinfo(t["dtype"])
            own = (np.clip(np.round(f / s) + z, info.min, info.max) - z) * s
            r = acc[t["name"]]
            r["sig"] += float(np.sum(f * f))
            r["own"] += float(np.sum((own - f) ** 2))
            r["err"] += float(np.sum(((q - z) * s - f) ** 2))
            r["mx"] = max(r["mx"], float(np.max(np.abs(f))))
            r["n"] += f.size
    db = lambda sig, noise: round(10 * np.log10(sig / noise), 1) if noise > 0 else None
    rows = []
    for t, _ in pairs:
        r = acc[t["name"]]
        s, z = t["quantization"]
        info = np.iinfo(t["dtype"])
        rms = (r["sig"] / r["n"]) ** 0.5
        rows.append({"tensor": t["name"], "dtype": np.dtype(t["dtype"]).name,
                     "own_snr_db": db(r["sig"], r["own"]), "snr_db": db(r["sig"], r["err"]),
                     "range_over_rms": round((info.max - info.min) * s / rms, 1) if rms else None,
                     "max_over_rms": round(r["mx"] / rms, 1) if rms else None})
    rows.sort(key=lambda r: r["own_snr_db"] if r["own_snr_db"] is not None else 1e9)
    for r in rows:
        print(json.dumps(r))
    print(json.dumps({"float": a.float_model, "quant": a.quant_model, "images": a.limit,
                      "kernels": a.kernels, "tensors": len(rows)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Sparsity and distinct values per output channel of a .tflite's conv, depthwise and
dense weights, read by the official LiteRT interpreter (independent of quantfarm's
reader), plus the file's size and gzip size (level 6, zlib's default). One JSON line.

  python scripts/weight_structure.py MODEL
"""
import gzip
import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter

OPS = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "DEPTHWISE_CONV_2D": 3}


def main():
    path = sys.argv[1]
    raw = open(path, "rb").read()
    it = Interpreter(model_path=path)
    details = {d["index"]: d for d in it.get_tensor_details()}
    zeros = total = 0
    most = 0
    layers = []
    for op in it._get_ops_details():
        axis = OPS.get(op["op_name"])
        if axis is None:
            continue
        t = details[op["inputs"][1]]
        w = it.get_tensor(t["index"])
        zp = t["quantization_parameters"]["zero_points"]
        if w.dtype == np.float32:
            z = int(np.count_nonzero(w == 0.0))
        else:
            ax = t["quantization_parameters"]["quantized_dimension"]
            zps = np.zeros(w.shape[ax], dtype=np.int64) + (zp if len(zp) else 0)
            shape = [1] * w.ndim
            shape[ax] = w.shape[ax]
            z = int(np.count_nonzero(w.astype(np.int64) == zps.reshape(shape)))
        per = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        d = max(len(np.unique(row)) for row in per)
        most = max(most, d)
        zeros += z
        total += w.size
        layers.append({"name": t["name"], "zeros": z, "size": int(w.size), "max_distinct": int(d)})
    print(json.dumps({
        "model": path, "size_bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 6)),
        "sparsity": zeros / max(total, 1), "weights": total,
        "max_distinct_per_channel": most,
        "max_distinct_conv_dense": max((l["max_distinct"] for l in layers), default=0),
        "layers": len(layers),
    }))


if __name__ == "__main__":
    main()

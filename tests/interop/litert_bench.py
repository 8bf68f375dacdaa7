#!/usr/bin/env python3
"""Latency of the official LiteRT interpreter on a .tflite file (the speed anchor).

Prints one JSON object: median/p90/mean in ms, like `quantfarm bench --json`.
--kernels default uses LiteRT's default delegate (XNNPACK for float and int8);
--kernels reference uses the reference kernels (BUILTIN_REF).
"""
import argparse
import json
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--kernels", choices=["default", "reference"], default="default")
    a = ap.parse_args()
    kw = {}
    if a.kernels == "reference":
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    it = Interpreter(model_path=a.model, num_threads=a.threads, **kw)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        if d["dtype"] == np.float32:
            x = rng.uniform(-1, 1, d["shape"]).astype(np.float32)
        else:
            info = np.iinfo(d["dtype"])
            x = rng.integers(info.min, info.max, d["shape"], endpoint=True).astype(d["dtype"])
        it.set_tensor(d["index"], x)
    for _ in range(a.warmup):
        it.invoke()
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
    p90 = times[max(1, int(np.ceil(0.9 * n))) - 1]
    print(json.dumps({"model": a.model, "engine": f"litert-{a.kernels}", "median_ms": median,
                      "p90_ms": p90, "mean_ms": sum(times) / n, "runs": n, "threads": a.threads}))


if __name__ == "__main__":
    main()

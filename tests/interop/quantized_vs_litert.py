#!/usr/bin/env python3
"""Our own quantized models against LiteRT's reference kernels, byte for byte.

Quantizes a float32 model (a dequantized Coral model, or with --float-model a float
file as it is, e.g. the gated int16-effect CIFAR-10 model with its int8 and int16 MUL)
with `quantfarm quantize` (calibrated on 16 ImageNet-sample or --calibration images; modes int8, uint8 and int16x8 — the last always with float I/O, the only
I/O int16x8 models have), then runs 20+ inputs through `quantfarm infer` (reference and fast kernels)
and through LiteRT with BUILTIN_REF, and requires identical output bytes.
Prints one JSON line per mode; exits 1 on any difference.

With --int16-ops (instead of --model) it checks the int16 activation kernels the
MobileNets do not exercise fully: one-op int16 LOGISTIC / TANH models over all 65536
input values and int16 SOFTMAX over 256 rows of different spread, at power-of-two and
calibrated input scales (the two rescaling paths of TFLite's Prepare).
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


def fb_vector(b, items, kind):
    """A flatbuffer vector of int32 ('i'), float32 ('f'), int64 ('l') or offsets ('o')."""
    size, align = {"i": (4, 4), "f": (4, 4), "o": (4, 4), "l": (8, 8)}[kind]
    b.StartVector(size, len(items), align)
    prepend = {"i": b.PrependInt32, "f": b.PrependFloat32, "l": b.PrependInt64,
               "o": b.PrependUOffsetTRelative}[kind]
    for x in reversed(items):
        prepend(x)
    return b.EndVector()


def one_op_int16_model(builtin_code, version, shape, in_q, out_q, softmax_beta=None):
    """A .tflite with one int16 op `x -> y` (field slots from TFLite's schema.fbs)."""
    import flatbuffers
    b = flatbuffers.Builder(1024)

    def tensor(name, q):
        nm = b.CreateString(name)
        sh = fb_vector(b, shape, "i")
        sc = fb_vector(b, [q[0]], "f")
        zp = fb_vector(b, [q[1]], "l")
        b.StartObject(7)  # QuantizationParameters: scale 2, zero_point 3
        b.PrependUOffsetTRelativeSlot(2, sc, 0)
        b.PrependUOffsetTRelativeSlot(3, zp, 0)
        qp = b.EndObject()
        b.StartObject(5)  # Tensor: shape 0, type 1 (INT16 = 7), buffer 2, name 3, quant 4
        b.PrependUOffsetTRelativeSlot(0, sh, 0)
        b.PrependInt8Slot(1, 7, 0)
        b.PrependUint32Slot(2, 0, 0)
        b.PrependUOffsetTRelativeSlot(3, nm, 0)
        b.PrependUOffsetTRelativeSlot(4, qp, 0)
        return b.EndObject()

    x, y = tensor("x", in_q), tensor("y", out_q)
    opts = None
    if softmax_beta is not None:
        b.StartObject(1)  # SoftmaxOptions: beta 0
        b.PrependFloat32Slot(0, softmax_beta, 0.0)
        opts = b.EndObject()
    ins, outs = fb_vector(b, [0], "i"), fb_vector(b, [1], "i")
    b.StartObject(5)  # Operator: opcode_index 0, inputs 1, outputs 2, options type 3, options 4
    b.PrependUint32Slot(0, 0, 0)
    b.PrependUOffsetTRelativeSlot(1, ins, 0)
    b.PrependUOffsetTRelativeSlot(2, outs, 0)
    if opts is not None:
        b.PrependUint8Slot(3, 9, 0)  # BuiltinOptions.SoftmaxOptions
        b.PrependUOffsetTRelativeSlot(4, opts, 0)
    op = b.EndObject()
    tensors, ops = fb_vector(b, [x, y], "o"), fb_vector(b, [op], "o")
    gi, go = fb_vector(b, [0], "i"), fb_vector(b, [1], "i")
    b.StartObject(5)  # SubGraph: tensors 0, inputs 1, outputs 2, operators 3
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.PrependUOffsetTRelativeSlot(1, gi, 0)
    b.PrependUOffsetTRelativeSlot(2, go, 0)
    b.PrependUOffsetTRelativeSlot(3, ops, 0)
    sg = b.EndObject()
    b.StartObject(4)  # OperatorCode: deprecated code 0, version 2, builtin_code 3
    b.PrependInt8Slot(0, builtin_code, 0)
    b.PrependInt32Slot(2, version, 1)
    b.PrependInt32Slot(3, builtin_code, 0)
    oc = b.EndObject()
    b.StartObject(3)  # the empty buffer 0
    buf0 = b.EndObject()
    ocs, sgs, bufs = fb_vector(b, [oc], "o"), fb_vector(b, [sg], "o"), fb_vector(b, [buf0], "o")
    b.StartObject(5)  # Model: version 0, operator_codes 1, subgraphs 2, buffers 4
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, ocs, 0)
    b.PrependUOffsetTRelativeSlot(2, sgs, 0)
    b.PrependUOffsetTRelativeSlot(4, bufs, 0)
    model = b.EndObject()
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def check_int16_ops(quantfarm, tmp):
    all16 = np.arange(-32768, 32768, dtype=np.int16)
    rng = np.random.default_rng(3)
    rows = np.stack([(rng.integers(-32768, 32768, 256) * (r / 256)).astype(np.int16)
                     for r in range(256)])
    out_q = (1 / 32768, 0)
    cases = []
    # 2^-12 is TFLite's power-of-two path for both, 2^-11 for TANH only.
    for s in [2**-12, 2**-11, 2**-13, 3.05e-4, 1e-3, 8 / 32767, 2.5e-5]:
        cases.append(("LOGISTIC", 14, 3, [65536], (s, 0), None, all16))
        cases.append(("TANH", 28, 3, [65536], (s, 0), None, all16))
    for s, beta in [(1e-3, 1.0), (4e-4, 0.5), (2**-10, 1.0), (3e-5, 1.0), (5e-2, 1.0)]:
        cases.append(("SOFTMAX", 25, 3, [256, 256], (s, 0), beta, rows))
    ok = True
    for name, code, version, shape, in_q, beta, x in cases:
        path = os.path.join(tmp, f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(one_op_int16_model(code, version, shape, in_q, out_q, beta))
        ref = Interpreter(model_path=path, num_threads=1,
                          experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        ref.allocate_tensors()
        ref.set_tensor(ref.get_input_details()[0]["index"], x.reshape(shape))
        ref.invoke()
        want = ref.get_tensor(ref.get_output_details()[0]["index"]).reshape(-1)
        xin = os.path.join(tmp, "in.bin")
        x.tofile(xin)
        differing = {}
        for kernels in ["reference", "fast"]:
            prefix = os.path.join(tmp, f"out_{kernels}")
            run([quantfarm, "infer", path, "--input-raw", xin, "--output-raw", prefix,
                 "--kernels", kernels])
            got = np.fromfile(f"{prefix}.out0.bin", np.int16)
            differing[kernels] = int((got != want).sum()) if got.size == want.size else want.size
        print(json.dumps({"op": name, "input_scale": in_q[0], "beta": beta,
                          "values": int(x.size), "differing_values": differing}))
        if any(differing.values()):
            ok = False
    print("ok int16 ops vs LiteRT" if ok else "FAILED int16 ops vs LiteRT")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantfarm", required=True)
    ap.add_argument("--model", help="a quantized Coral model (dequantized first)")
    ap.add_argument("--float-model", help="a float32 model, quantized as it is")
    ap.add_argument("--calibration", default="imagenet-sample",
                    help="calibration dataset (cifar10-train for the CIFAR-10 models)")
    ap.add_argument("--int16-ops", action="store_true",
                    help="check one-op int16 LOGISTIC/TANH/SOFTMAX models instead")
    ap.add_argument("--modes", default="int8,uint8")
    ap.add_argument("--io", default="float")
    ap.add_argument("--cases", type=int, default=20)
    a = ap.parse_args()
    if not a.int16_ops and not a.model and not a.float_model:
        ap.error("give --model, --float-model or --int16-ops")
    tmp = tempfile.mkdtemp(prefix="qf-qvl-")
    ok = True
    try:
        if a.int16_ops:
            return check_int16_ops(a.quantfarm, tmp)
        if a.float_model:
            flt = a.float_model
        else:
            flt = os.path.join(tmp, "float.tflite")
            run([a.quantfarm, "convert", a.model, "--to", "float32", "-o", flt])
        for mode in a.modes.split(","):
            q = os.path.join(tmp, f"{mode}.tflite")
            io = "float" if mode == "int16x8" else a.io
            # cifar10-train is ordered by class: a stride spreads the 16 images.
            stride = ["--calibration-stride", "3000"] if a.calibration == "cifar10-train" else []
            run([a.quantfarm, "quantize", flt, "--mode", mode, "--calibration", a.calibration,
                 "--calibration-size", "16", *stride, "--io", io, "-o", q])
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
            res = {"model": os.path.basename(a.model or a.float_model), "mode": mode, "io": io, "cases": a.cases,
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

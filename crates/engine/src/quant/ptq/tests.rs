//! Quantizer tests on a small hand-built float graph:
//! input → CONV_2D(relu6) → SQRT → MAX_POOL_2D → RESHAPE → FULLY_CONNECTED → SOFTMAX.

use super::*;
use crate::ir::{
    Activation, Conv2DOptions, FullyConnectedOptions, Op, OpKind, Padding, Pool2DOptions,
    Quantization, Tensor,
};
use crate::quant::calibrate::{Calibrator, Grid, RangeMethod};

fn values(n: usize, seed: u32) -> Vec<f32> {
    // Small deterministic pseudo-random values in [-1, 1].
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// The test graph; `with_sqrt = false` leaves out the op that has no integer kernel.
fn model(with_sqrt: bool) -> Model {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 4, 4, 3], DType::F32));
    let w = g.add_tensor(Tensor::constant_f32("w", vec![8, 3, 3, 3], &values(216, 1)));
    let b = g.add_tensor(Tensor::constant_f32("b", vec![8], &values(8, 2)));
    let c = g.add_tensor(Tensor::activation("conv", vec![1, 4, 4, 8], DType::F32));
    g.add_op(Op::new(
        OpKind::Conv2D(Conv2DOptions {
            padding: Padding::Same,
            activation: Activation::Relu6,
            ..Default::default()
        }),
        vec![x, w, b],
        vec![c],
    ));
    let mut pool_in = c;
    if with_sqrt {
        let s = g.add_tensor(Tensor::activation("sqrt", vec![1, 4, 4, 8], DType::F32));
        g.add_op(Op::new(OpKind::Sqrt, vec![c], vec![s]));
        pool_in = s;
    }
    let p = g.add_tensor(Tensor::activation("pool", vec![1, 2, 2, 8], DType::F32));
    g.add_op(Op::new(
        OpKind::MaxPool2D(Pool2DOptions {
            padding: Padding::Valid,
            stride_h: 2,
            stride_w: 2,
            filter_h: 2,
            filter_w: 2,
            activation: Activation::None,
        }),
        vec![pool_in],
        vec![p],
    ));
    let shape = g.add_tensor(Tensor::constant_i32("shape", vec![2], &[1, 32]));
    let r = g.add_tensor(Tensor::activation("flat", vec![1, 32], DType::F32));
    g.add_op(Op::new(
        OpKind::Reshape {
            new_shape: Some(vec![1, 32]),
        },
        vec![p, shape],
        vec![r],
    ));
    let fw = g.add_tensor(Tensor::constant_f32("fc_w", vec![10, 32], &values(320, 3)));
    let fb = g.add_tensor(Tensor::constant_f32("fc_b", vec![10], &values(10, 4)));
    let f = g.add_tensor(Tensor::activation("logits", vec![1, 10], DType::F32));
    g.add_op(Op::new(
        OpKind::FullyConnected(FullyConnectedOptions::default()),
        vec![r, fw, fb],
        vec![f],
    ));
    let y = g.add_tensor(Tensor::activation("prob", vec![1, 10], DType::F32));
    g.add_op(Op::new(OpKind::Softmax { beta: 1.0 }, vec![f], vec![y]));
    g.inputs = vec![x];
    g.outputs = vec![y];
    Model::from_graph(g, "ptq test")
}

fn calibrate(m: &Model, method: RangeMethod, grid: Grid) -> TensorRanges {
    let mut cal = Calibrator::new(m, 1).unwrap();
    for i in 0..8 {
        cal.observe(&[values(48, 100 + i)]).unwrap();
    }
    cal.ranges(method, grid)
}

fn find<'a>(g: &'a Graph, name: &str) -> &'a Tensor {
    g.tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

fn op_of<'a>(g: &'a Graph, code: &str) -> &'a Op {
    g.ops.iter().find(|o| o.kind.name() == code).unwrap()
}

#[test]
fn int8_full_integer() {
    let m = model(false);
    let ranges = calibrate(&m, RangeMethod::MinMax, Grid::Asymmetric8);
    let (q, s) = quantize_model(&m, &PtqOptions::new(QuantMode::Int8), Some(&ranges)).unwrap();
    let g = q.main();
    // Float I/O: QUANTIZE first, DEQUANTIZE last.
    assert_eq!(g.ops.first().unwrap().kind, OpKind::Quantize);
    assert_eq!(g.ops.last().unwrap().kind, OpKind::Dequantize);
    assert_eq!((s.inserted_quantize, s.inserted_dequantize), (1, 1));
    assert_eq!(g.tensors[g.outputs[0]].name, "prob");
    assert_eq!(g.tensors[g.outputs[0]].dtype, DType::F32);

    let x = find(g, "x_quantized").quant.clone().unwrap();
    let r = ranges.get(0).unwrap();
    assert_eq!(
        x.params(0),
        weights::asymmetric_params(r.min, r.max, -128, 127)
    );
    let w = find(g, "w");
    assert_eq!(w.dtype, DType::I8);
    let wq = w.quant.as_ref().unwrap();
    assert_eq!((wq.scale.len(), wq.axis), (8, 0));
    assert!(wq.zero_point.iter().all(|&z| z == 0));
    // Bias: int32, scale = in_s * w_s[c].
    let b = find(g, "b");
    assert_eq!(b.dtype, DType::I32);
    let bq = b.quant.as_ref().unwrap();
    for c in 0..8 {
        assert_eq!(bq.scale[c], x.scale[0] * wq.scale[c]);
    }
    // Same-params ops share the conv output's parameters; softmax output is fixed.
    let conv = find(g, "conv").quant.clone().unwrap();
    assert_eq!(find(g, "pool").quant.as_ref().unwrap(), &conv);
    assert_eq!(find(g, "flat").quant.as_ref().unwrap(), &conv);
    assert_eq!(
        find(g, "prob_internal").quant.as_ref().unwrap().params(0),
        (1.0 / 256.0, -128)
    );
    // FC per-tensor weights; versions as TFLite assigns them.
    assert_eq!(find(g, "fc_w").quant.as_ref().unwrap().scale.len(), 1);
    assert_eq!(op_of(g, "CONV_2D").version, 3);
    assert_eq!(op_of(g, "FULLY_CONNECTED").version, 4);
    assert_eq!(op_of(g, "MAX_POOL_2D").version, 2);
    assert_eq!(op_of(g, "SOFTMAX").version, 2);
    assert_eq!(op_of(g, "QUANTIZE").version, 1);
    assert_eq!(op_of(g, "DEQUANTIZE").version, 2);
    // No float weights left behind; the file round-trips.
    assert!(
        !g.tensors
            .iter()
            .any(|t| t.is_constant() && t.dtype == DType::F32)
    );
    let bytes = crate::tflite::write_model(&q).unwrap();
    assert_eq!(
        crate::tflite::read_model(&bytes).unwrap().main().ops.len(),
        g.ops.len()
    );
}

#[test]
fn int8_io_types() {
    let m = model(false);
    let ranges = calibrate(&m, RangeMethod::MinMax, Grid::Asymmetric8);
    let opts = PtqOptions {
        io: IoType::Int8,
        ..PtqOptions::new(QuantMode::Int8)
    };
    let (q, s) = quantize_model(&m, &opts, Some(&ranges)).unwrap();
    let g = q.main();
    assert_eq!((s.inserted_quantize, s.inserted_dequantize), (0, 0));
    assert_eq!(g.tensors[g.inputs[0]].dtype, DType::I8);
    assert_eq!(g.tensors[g.outputs[0]].dtype, DType::I8);

    let opts = PtqOptions {
        io: IoType::Uint8,
        ..PtqOptions::new(QuantMode::Int8)
    };
    let (q, _) = quantize_model(&m, &opts, Some(&ranges)).unwrap();
    let g = q.main();
    let input = &g.tensors[g.inputs[0]];
    let output = &g.tensors[g.outputs[0]];
    assert_eq!((input.dtype, output.dtype), (DType::U8, DType::U8));
    // uint8 edge = int8 parameters with the zero point moved by 128.
    assert_eq!(output.quant.as_ref().unwrap().params(0), (1.0 / 256.0, 0));
    assert_eq!(
        g.ops.iter().filter(|o| o.kind == OpKind::Quantize).count(),
        2
    );
    // int16x8 has no 8-bit I/O here.
    let opts = PtqOptions {
        io: IoType::Int8,
        ..PtqOptions::new(QuantMode::Int16x8)
    };
    assert!(quantize_model(&m, &opts, Some(&ranges)).is_err());
}

#[test]
fn unsupported_ops_error_or_fall_back() {
    let m = model(true);
    let ranges = calibrate(&m, RangeMethod::MinMax, Grid::Asymmetric8);
    let err = quantize_model(&m, &PtqOptions::new(QuantMode::Int8), Some(&ranges))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SQRT (op 1)"), "{err}");
    assert!(err.contains("--allow-float-fallback"), "{err}");

    let opts = PtqOptions {
        allow_float_fallback: true,
        ..PtqOptions::new(QuantMode::Int8)
    };
    let (q, s) = quantize_model(&m, &opts, Some(&ranges)).unwrap();
    assert_eq!(s.float_ops, vec![(1, "SQRT".to_string())]);
    let g = q.main();
    let names: Vec<String> = g.ops.iter().map(|o| o.kind.name()).collect();
    assert_eq!(
        names,
        [
            "QUANTIZE",
            "CONV_2D",
            "DEQUANTIZE",
            "SQRT",
            "QUANTIZE",
            "MAX_POOL_2D",
            "RESHAPE",
            "FULLY_CONNECTED",
            "SOFTMAX",
            "DEQUANTIZE"
        ]
    );
    let sqrt = op_of(g, "SQRT");
    assert_eq!(g.tensors[sqrt.input(0).unwrap()].dtype, DType::F32);
    assert_eq!(g.tensors[sqrt.outputs[0]].dtype, DType::F32);
}

#[test]
fn int16x8_and_uint8_schemes() {
    let m = model(false);
    let ranges = calibrate(&m, RangeMethod::Mse, Grid::Symmetric16);
    let (q, _) = quantize_model(&m, &PtqOptions::new(QuantMode::Int16x8), Some(&ranges)).unwrap();
    let g = q.main();
    let conv = find(g, "conv");
    assert_eq!(conv.dtype, DType::I16);
    assert_eq!(conv.quant.as_ref().unwrap().zero_point, vec![0]);
    assert_eq!(find(g, "b").dtype, DType::I64);
    assert_eq!(find(g, "w").dtype, DType::I8);
    assert_eq!(
        find(g, "prob_internal").quant.as_ref().unwrap().params(0),
        (1.0 / 32768.0, 0)
    );
    assert_eq!(op_of(g, "SOFTMAX").version, 3);
    assert_eq!(op_of(g, "QUANTIZE").version, 2);
    assert_eq!(op_of(g, "DEQUANTIZE").version, 3);

    let ranges = calibrate(&m, RangeMethod::Percentile(99.0), Grid::Asymmetric8);
    let opts = PtqOptions {
        io: IoType::Uint8,
        ..PtqOptions::new(QuantMode::Uint8)
    };
    let (q, s) = quantize_model(&m, &opts, Some(&ranges)).unwrap();
    assert_eq!((s.inserted_quantize, s.inserted_dequantize), (0, 0));
    let g = q.main();
    let w = find(g, "w");
    assert_eq!(w.dtype, DType::U8);
    assert_eq!(w.quant.as_ref().unwrap().scale.len(), 1);
    assert_eq!(find(g, "b").dtype, DType::I32);
    assert_eq!(
        g.tensors[g.outputs[0]].quant.as_ref().unwrap().params(0),
        (1.0 / 256.0, 0)
    );
    assert!(g.ops.iter().all(|o| o.version == 1));
}

#[test]
fn float16_and_dynamic() {
    let m = model(false);
    let (q, s) = quantize_model(&m, &PtqOptions::new(QuantMode::Float16), None).unwrap();
    assert_eq!(s.quantized_constants, 4);
    let g = q.main();
    let dq: Vec<&Op> = g
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Dequantize)
        .collect();
    assert_eq!(dq.len(), 4);
    assert!(dq.iter().all(|o| o.version == 3));
    assert_eq!(find(g, "w_fp16").dtype, DType::F16);
    assert_eq!(find(g, "w").dtype, DType::F32);
    // The int32 shape operand is not a float constant: untouched.
    assert_eq!(find(g, "shape").dtype, DType::I32);

    // Dynamic range: only weights with >= min_elements elements.
    let opts = PtqOptions {
        dynamic_min_elements: 300,
        ..PtqOptions::new(QuantMode::Dynamic)
    };
    let (q, s) = quantize_model(&m, &opts, None).unwrap();
    assert_eq!(s.quantized_ops, 1);
    let g = q.main();
    assert_eq!(find(g, "w").dtype, DType::F32);
    let fw = find(g, "fc_w");
    assert_eq!(fw.dtype, DType::I8);
    let fc = op_of(g, "FULLY_CONNECTED");
    assert!(matches!(fc.kind, OpKind::FullyConnected(o) if o.asymmetric_quantize_inputs));
    assert_eq!(fc.version, 9);
    let opts = PtqOptions {
        dynamic_min_elements: 100,
        ..PtqOptions::new(QuantMode::Dynamic)
    };
    let (q, _) = quantize_model(&m, &opts, None).unwrap();
    let g = q.main();
    assert_eq!(find(g, "w").quant.as_ref().unwrap().scale.len(), 8);
    assert_eq!(op_of(g, "CONV_2D").version, 5);
    assert_eq!(find(g, "b").dtype, DType::F32);
}

#[test]
fn float16_values_round_to_nearest_even() {
    let m = model(false);
    let (q, _) = quantize_model(&m, &PtqOptions::new(QuantMode::Float16), None).unwrap();
    let orig = find(m.main(), "w").data_f32().unwrap();
    let half = find(q.main(), "w_fp16").data.clone().unwrap();
    for (i, c) in half.chunks_exact(2).enumerate() {
        let h = half::f16::from_le_bytes([c[0], c[1]]);
        assert_eq!(h, half::f16::from_f32(orig[i]));
        assert!((h.to_f32() - orig[i]).abs() <= orig[i].abs() * 1e-3 + 1e-7);
    }
    // The DEQUANTIZE output feeds the unchanged float op.
    let g = q.main();
    let w = op_of(g, "CONV_2D").input(1).unwrap();
    assert!(
        g.ops
            .iter()
            .any(|o| o.kind == OpKind::Dequantize && o.outputs[0] == w)
    );
}

#[test]
fn refuses_quantized_input_models_and_missing_ranges() {
    let mut m = model(false);
    m.main_mut().tensors[3].quant = Some(Quantization::per_tensor(0.1, 0));
    let err = quantize_model(&m, &PtqOptions::new(QuantMode::Float16), None).unwrap_err();
    assert!(err.to_string().contains("not a float32 model"), "{err}");

    let m = model(false);
    assert!(quantize_model(&m, &PtqOptions::new(QuantMode::Int8), None).is_err());
    let empty = TensorRanges::default();
    let err = quantize_model(&m, &PtqOptions::new(QuantMode::Int8), Some(&empty)).unwrap_err();
    assert!(
        err.to_string().contains("no calibration statistics"),
        "{err}"
    );
}

/// The int16x8 model of the test graph runs (both kernel families, same bytes) and its
/// softmax stays within 0.03 of the float model's, with the same argmax.
#[test]
fn int16x8_model_runs_close_to_float() {
    use crate::exec::{Interpreter, InterpreterOptions, KernelChoice};
    let m = model(false);
    let ranges = calibrate(&m, RangeMethod::MinMax, Grid::Symmetric16);
    let (q, _) = quantize_model(&m, &PtqOptions::new(QuantMode::Int16x8), Some(&ranges)).unwrap();
    let run = |model: &Model, kernels: KernelChoice, x: &[f32]| -> Vec<f32> {
        let opts = InterpreterOptions {
            kernels,
            ..Default::default()
        };
        let mut it = Interpreter::new(model, opts).expect("prepare");
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        it.set_input_bytes(0, &bytes).unwrap();
        it.invoke();
        it.output_bytes(0)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    for seed in 0..4 {
        let x = values(48, 100 + seed);
        let want = run(&m, KernelChoice::Reference, &x);
        let got = run(&q, KernelChoice::Reference, &x);
        assert_eq!(got, run(&q, KernelChoice::Fast, &x));
        // int8 weights dominate the error (logit errors of a few hundredths).
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 0.03, "{got:?} vs {want:?}");
        }
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]));
        assert_eq!(argmax(&got), argmax(&want));
    }
}

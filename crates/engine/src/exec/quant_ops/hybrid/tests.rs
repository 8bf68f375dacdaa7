//! Hybrid ops through the interpreter: fast equals reference bit for bit, both stay
//! close to the float model, and weights the hybrid kernels cannot run are rejected.

use crate::exec::kernels::test_util::{Rng, bits};
use crate::exec::{Interpreter, InterpreterOptions, KernelChoice};
use crate::ir::*;

/// Symmetric int8 quantization of `w` along `axis` of `shape` (one scale if not
/// per-channel), as the converter does: scale = max|w| / 127.
fn quantize_weights(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    per_channel: bool,
) -> (Vec<i8>, Quantization, Vec<f32>) {
    let channels = if per_channel { shape[axis] } else { 1 };
    let inner: usize = shape[axis + 1..].iter().product();
    let chan = |i: usize| {
        if per_channel {
            (i / inner) % shape[axis]
        } else {
            0
        }
    };
    let mut maxabs = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        maxabs[chan(i)] = maxabs[chan(i)].max(v.abs());
    }
    let scales: Vec<f32> = maxabs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let q: Vec<i8> = w
        .iter()
        .enumerate()
        .map(|(i, &v)| (v / scales[chan(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let deq = q
        .iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scales[chan(i)])
        .collect();
    let quant = if per_channel {
        Quantization::per_axis(scales, vec![0; channels], axis)
    } else {
        Quantization::per_tensor(scales[0], 0)
    };
    (q, quant, deq)
}

struct Case {
    name: String,
    hybrid: Model,
    float: Model,
    input: Vec<f32>,
}

/// One-op model: float input, weights (int8 + quantization, or their dequantized
/// float32 values), float bias, float output.
#[allow(clippy::too_many_arguments)]
fn one_op(
    name: &str,
    kind: OpKind,
    version: i32,
    in_shape: Vec<usize>,
    w_shape: Vec<usize>,
    axis: usize,
    per_channel: bool,
    out_shape: Vec<usize>,
    rng: &mut Rng,
) -> Case {
    let wn: usize = w_shape.iter().product();
    let w = rng.floats(wn, -0.5, 0.5);
    let (q, quant, deq) = quantize_weights(&w, &w_shape, axis, per_channel);
    let units = w_shape[axis];
    let bias = rng.floats(units, -0.3, 0.3);
    let input = rng.floats(in_shape.iter().product(), -1.0, 2.5);
    let build = |hybrid: bool| {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", in_shape.clone(), DType::F32));
        let wt = if hybrid {
            Tensor::constant(
                "w",
                w_shape.clone(),
                DType::I8,
                q.iter().map(|&v| v as u8).collect(),
            )
            .with_quant(quant.clone())
        } else {
            Tensor::constant_f32("w", w_shape.clone(), &deq)
        };
        let wi = g.add_tensor(wt);
        let b = g.add_tensor(Tensor::constant_f32("b", vec![units], &bias));
        let y = g.add_tensor(Tensor::activation("y", out_shape.clone(), DType::F32));
        let mut op = Op::new(kind.clone(), vec![x, wi, b], vec![y]);
        op.version = if hybrid { version } else { 1 };
        g.add_op(op);
        g.inputs = vec![x];
        g.outputs = vec![y];
        Model::from_graph(g, "hybrid test")
    };
    Case {
        name: name.to_string(),
        hybrid: build(true),
        float: build(false),
        input: input.clone(),
    }
}

fn cases() -> Vec<Case> {
    let mut rng = Rng::new(99);
    let mut v = Vec::new();
    for (i, (per_channel, asym, act)) in [
        (false, false, Activation::None),
        (true, false, Activation::Relu),
        (false, true, Activation::None),
        (true, true, Activation::Relu6),
    ]
    .into_iter()
    .enumerate()
    {
        let opts = FullyConnectedOptions {
            activation: act,
            asymmetric_quantize_inputs: asym,
            ..Default::default()
        };
        let (rows, depth, units) = (1 + 2 * i, 64 + 37 * i, 10 + 3 * i);
        v.push(one_op(
            &format!(
                "fc_{}_{}",
                if per_channel { "pc" } else { "pt" },
                if asym { "asym" } else { "sym" }
            ),
            OpKind::FullyConnected(opts),
            if asym { 9 } else { 3 },
            vec![rows, depth],
            vec![units, depth],
            0,
            per_channel,
            vec![rows, units],
            &mut rng,
        ));
    }
    for (i, (per_channel, stride, padding, act)) in [
        (false, 1, Padding::Same, Activation::None),
        (true, 2, Padding::Same, Activation::Relu6),
        (true, 1, Padding::Valid, Activation::Relu),
        (false, 2, Padding::Valid, Activation::None),
    ]
    .into_iter()
    .enumerate()
    {
        let (n, h, w, c, oc, k) = (1 + i % 2, 9, 7, 3 + 2 * i, 8 + i, 3);
        let o = Conv2DOptions {
            padding,
            stride_h: stride,
            stride_w: stride,
            activation: act,
            ..Default::default()
        };
        let (oh, _) =
            crate::exec::kernels::geometry::out_and_pad(padding, h, k, stride, 1).unwrap();
        let (ow, _) =
            crate::exec::kernels::geometry::out_and_pad(padding, w, k, stride, 1).unwrap();
        v.push(one_op(
            &format!(
                "conv_{}_s{stride}_{padding:?}",
                if per_channel { "pc" } else { "pt" }
            ),
            OpKind::Conv2D(o),
            if per_channel { 5 } else { 2 },
            vec![n, h, w, c],
            vec![oc, k, k, c],
            0,
            per_channel,
            vec![n, oh, ow, oc],
            &mut rng,
        ));
    }
    for (i, (dm, stride, padding, act)) in [
        (1, 1, Padding::Same, Activation::Relu6),
        (2, 2, Padding::Same, Activation::None),
        (1, 2, Padding::Valid, Activation::Relu),
    ]
    .into_iter()
    .enumerate()
    {
        let (n, h, w, c, k) = (1 + i % 2, 10, 8, 5 + 4 * i, 3);
        let o = DepthwiseConv2DOptions {
            padding,
            stride_h: stride,
            stride_w: stride,
            depth_multiplier: dm,
            activation: act,
            ..Default::default()
        };
        let (oh, _) =
            crate::exec::kernels::geometry::out_and_pad(padding, h, k, stride, 1).unwrap();
        let (ow, _) =
            crate::exec::kernels::geometry::out_and_pad(padding, w, k, stride, 1).unwrap();
        v.push(one_op(
            &format!("dw_m{dm}_s{stride}_{padding:?}"),
            OpKind::DepthwiseConv2D(o),
            6,
            vec![n, h, w, c],
            vec![1, k, k, c * dm],
            3,
            true,
            vec![n, oh, ow, c * dm],
            &mut rng,
        ));
    }
    v
}

fn run(model: &Model, input: &[f32], kernels: KernelChoice, threads: usize) -> Vec<f32> {
    let opts = InterpreterOptions {
        threads,
        kernels,
        ..Default::default()
    };
    let mut it = Interpreter::new(model, opts).expect("model prepares");
    it.set_input_f32(0, input).unwrap();
    it.invoke();
    it.output_f32(0).unwrap()
}

#[test]
fn interpreter_runs_hybrid_ops_fast_equal_reference_close_to_float() {
    for c in cases() {
        let r = run(&c.hybrid, &c.input, KernelChoice::Reference, 1);
        for threads in [1, 2] {
            let f = run(&c.hybrid, &c.input, KernelChoice::Fast, threads);
            assert_eq!(
                bits(&r),
                bits(&f),
                "{}: fast vs reference, {threads} threads",
                c.name
            );
        }
        let fl = run(&c.float, &c.input, KernelChoice::Reference, 1);
        let scale = fl.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = r
            .iter()
            .zip(&fl)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // Only the input is quantized on the fly: about 1% of the output range.
        assert!(
            err <= 0.02 * scale.max(1.0),
            "{}: hybrid vs float max diff {err} (range {scale})",
            c.name
        );
    }
}

#[test]
fn rejects_weights_hybrid_kernels_cannot_run() {
    let c = cases().remove(0);
    let mut bad = c.hybrid.clone();
    bad.main_mut().tensors[1].quant = Some(Quantization::per_tensor(0.01, 3));
    let e = Interpreter::new(&bad, InterpreterOptions::default())
        .err()
        .expect("rejected");
    assert!(e.to_string().contains("zero point"), "{e}");
    bad.main_mut().tensors[1].quant = None;
    let e = Interpreter::new(&bad, InterpreterOptions::default())
        .err()
        .expect("rejected");
    assert!(e.to_string().contains("quantization scale"), "{e}");
}

/// Runs the same cases through LiteRT (`tests/interop/hybrid_check.py`). Needs the
/// LiteRT venv (`$PYTHON`, default `~/.cache/quantfarm/venv/bin/python`):
/// `cargo test -p quantfarm-engine --lib litert_interop -- --ignored --nocapture`.
#[test]
#[ignore]
fn litert_interop() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/quantfarm/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/hybrid_check.py");
    let dir = std::env::temp_dir().join(format!("quantfarm-hybrid-interop-{}", std::process::id()));
    for c in cases() {
        let d = dir.join(&c.name);
        std::fs::create_dir_all(&d).unwrap();
        let bytes = crate::tflite::write_model(&c.hybrid).unwrap();
        std::fs::write(d.join("model.tflite"), bytes).unwrap();
        std::fs::write(d.join("input.bin"), f32_to_bytes(&c.input)).unwrap();
        let r = run(&c.hybrid, &c.input, KernelChoice::Reference, 1);
        let f = run(&c.hybrid, &c.input, KernelChoice::Fast, 1);
        std::fs::write(d.join("ref.bin"), f32_to_bytes(&r)).unwrap();
        std::fs::write(d.join("fast.bin"), f32_to_bytes(&f)).unwrap();
    }
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .output()
        .expect("run the LiteRT check script");
    // QUANTFARM_KEEP_INTEROP=1 keeps the cases for inspection.
    if std::env::var_os("QUANTFARM_KEEP_INTEROP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("cases kept in {}", dir.display());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (name, entry) in report.as_object().unwrap() {
        assert_eq!(entry["fast_vs_ref_identical"], true, "{name}");
        // The reference kernels follow LiteRT's reference resolver bit for bit.
        let abs = entry["builtin_ref"]["max_abs"].as_f64().unwrap();
        assert_eq!(
            abs, 0.0,
            "{name}: vs LiteRT BUILTIN_REF max difference {abs}"
        );
    }
}

/// Test-only stand-in for a dynamic-range quantizer (until the PTQ branch writes
/// them): conv / depthwise weights per-channel, FC weights per-tensor, symmetric
/// int8, tensors under 1024 elements left in float (the converter's threshold).
fn make_dynamic_range(float: &Model) -> Model {
    let mut m = float.clone();
    let g = m.main_mut();
    for oi in 0..g.ops.len() {
        let (axis, per_channel, version) = match g.ops[oi].kind {
            OpKind::Conv2D(_) => (0, true, 5),
            OpKind::DepthwiseConv2D(_) => (3, true, 6),
            OpKind::FullyConnected(_) => (0, false, 3),
            _ => continue,
        };
        let Some(w) = g.ops[oi].input(1) else {
            continue;
        };
        let t = &g.tensors[w];
        let Some(vals) = t.data_f32() else { continue };
        if vals.len() < 1024 {
            continue;
        }
        let (q, quant, _) = quantize_weights(&vals, &t.shape.clone(), axis, per_channel);
        let t = &mut g.tensors[w];
        t.dtype = DType::I8;
        t.data = Some(q.iter().map(|&v| v as u8).collect());
        t.quant = Some(quant);
        g.ops[oi].version = version;
    }
    m
}

/// Writes float and dynamic-range versions of Coral MobileNets to
/// `$QUANTFARM_HYBRID_OUT` (default `/tmp/quantfarm-hybrid`), plus one LiteRT
/// comparison case per model (run `tests/interop/hybrid_check.py DIR/cases`).
#[test]
#[ignore]
fn write_dynamic_range_mobilenets() {
    let root = crate::data::shared_root().expect("shared data");
    let out = std::path::PathBuf::from(
        std::env::var("QUANTFARM_HYBRID_OUT").unwrap_or_else(|_| "/tmp/quantfarm-hybrid".into()),
    );
    for name in ["mobilenet_v1_0.25_128", "mobilenet_v2_1.0_224"] {
        let path = root.join(format!("models/coral/{name}_quant.tflite"));
        let quant = crate::tflite::read_model_file(&path).unwrap();
        let float = crate::convert::dequantize_model(&quant, &Default::default()).unwrap();
        let dynamic = make_dynamic_range(&float);
        std::fs::create_dir_all(&out).unwrap();
        crate::tflite::write_model_file(&float, &out.join(format!("{name}_float.tflite"))).unwrap();
        crate::tflite::write_model_file(&dynamic, &out.join(format!("{name}_dynamic.tflite")))
            .unwrap();
        let n: usize = dynamic.main().tensors[dynamic.main().inputs[0]]
            .shape
            .iter()
            .product();
        let mut rng = Rng::new(5);
        let x = rng.floats(n, -1.0, 1.0);
        let d = out.join("cases").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            out.join(format!("{name}_dynamic.tflite")),
            d.join("model.tflite"),
        )
        .unwrap();
        std::fs::write(d.join("input.bin"), f32_to_bytes(&x)).unwrap();
        let r = run(&dynamic, &x, KernelChoice::Reference, 1);
        let f = run(&dynamic, &x, KernelChoice::Fast, 1);
        // Layers left in float use the float kernels, whose fast paths are not
        // bit-exact with their reference, so whole networks only agree closely.
        let diff = r
            .iter()
            .zip(&f)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        println!("{name}: fast vs reference max difference {diff:e}");
        std::fs::write(d.join("ref.bin"), f32_to_bytes(&r)).unwrap();
        std::fs::write(d.join("fast.bin"), f32_to_bytes(&f)).unwrap();
        println!("{name}: wrote {}", out.display());
    }
}

//! LSTM tests through the interpreter: the golden Keras model's LSTM op against
//! LiteRT's bytes, synthetic integer LSTMs (plain, CIFG, peephole, projection, layer
//! norm, both layouts) against the float kernel on the dequantized model, state
//! carry-over, and malformed models.

use crate::convert::{DequantizeOptions, dequantize_model};
use crate::error::EngineError;
use crate::exec::kernels::KernelChoice;
use crate::exec::kernels::test_util::Rng;
use crate::exec::{Interpreter, InterpreterOptions};
use crate::ir::{
    Activation, DType, Graph, LstmOptions, Model, Op, OpKind, Quantization, Tensor, TensorId,
};

const GOLDEN_MODEL: &str = "models/coral/keras_lstm_mnist_ptq.tflite";
const GOLDEN_DIR: &str = "reference/golden/keras_lstm_mnist_ptq";

/// A model reduced to its LSTM op: int8 input (what the leading QUANTIZE produces) → LSTM.
fn lstm_only(model: &Model) -> Model {
    let mut m = model.clone();
    let g = m.main_mut();
    let op = g
        .ops
        .iter()
        .find(|o| matches!(o.kind, OpKind::UnidirectionalSequenceLstm(_)))
        .expect("model has an LSTM")
        .clone();
    g.inputs = vec![op.input(0).expect("LSTM input")];
    g.outputs = op.outputs.clone();
    g.ops = vec![op];
    m
}

/// Scale of the golden model's uint8 input (zero point 0).
fn golden_input_scale(model: &Model) -> f32 {
    let g = model.main();
    g.tensors[g.inputs[0]]
        .quant
        .as_ref()
        .expect("quantized input")
        .params(0)
        .0
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// LiteRT 2.3.0 (BUILTIN_REF) LSTM outputs of the golden cases, run in order on one
/// interpreter. The int8 LSTM input is the uint8 golden input with the top bit flipped
/// (QUANTIZE uint8 (s, 0) → int8 (s, -128)).
#[test]
fn golden_model_lstm_matches_litert_bit_for_bit() {
    let Ok(root) = crate::data::shared_root() else {
        eprintln!("shared data not found; skipped");
        return;
    };
    let model = crate::tflite::read_model_file(&root.join(GOLDEN_MODEL)).unwrap();
    let want: Vec<Vec<u8>> = include_str!("testdata/keras_lstm_mnist_ptq.lstm_out.hex")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(unhex)
        .collect();
    assert_eq!(want.len(), 8);
    for kernels in [KernelChoice::Reference, KernelChoice::Fast] {
        let opts = InterpreterOptions {
            kernels,
            ..Default::default()
        };
        let mut it = Interpreter::new(&lstm_only(&model), opts).unwrap();
        for (c, want) in want.iter().enumerate() {
            let x: Vec<u8> =
                std::fs::read(root.join(GOLDEN_DIR).join(format!("case_{c:03}.in0.bin")))
                    .unwrap()
                    .iter()
                    .map(|b| b ^ 0x80)
                    .collect();
            it.set_input_bytes(0, &x).unwrap();
            it.invoke();
            assert_eq!(
                it.output_bytes(0),
                want.as_slice(),
                "case {c} ({kernels:?})"
            );
        }
    }
}

/// The first golden case on a fresh interpreter depends on the output state starting
/// at its zero point (-1 here), as LiteRT's variable-tensor reset does.
#[test]
fn golden_first_case_needs_the_zero_point_reset() {
    let Ok(root) = crate::data::shared_root() else {
        return;
    };
    let model = crate::tflite::read_model_file(&root.join(GOLDEN_MODEL)).unwrap();
    let m = lstm_only(&model);
    let g = m.main();
    let op = &g.ops[0];
    let hs = &g.tensors[op.input(18).unwrap()];
    assert_eq!(hs.quant.as_ref().unwrap().zero_point, vec![-1]);
    let want = unhex(
        include_str!("testdata/keras_lstm_mnist_ptq.lstm_out.hex")
            .lines()
            .find(|l| !l.starts_with('#'))
            .unwrap(),
    );
    let x: Vec<u8> = std::fs::read(root.join(GOLDEN_DIR).join("case_000.in0.bin"))
        .unwrap()
        .iter()
        .map(|b| b ^ 0x80)
        .collect();
    let mut it = Interpreter::new(&m, InterpreterOptions::default()).unwrap();
    it.set_input_bytes(0, &x).unwrap();
    it.invoke();
    assert_eq!(it.output_bytes(0), want.as_slice());
}

// ---------------------------------------------------------------------------------
// Synthetic integer LSTMs.

#[derive(Debug, Clone, Copy)]
struct Cfg {
    cifg: bool,
    peephole: bool,
    projection: bool,
    layer_norm: bool,
    time_major: bool,
    batch: usize,
    time: usize,
    n_input: usize,
    n_cell: usize,
    n_output: usize,
    cell_clip: f32,
    proj_clip: f32,
    seed: u64,
}

impl Cfg {
    fn plain() -> Cfg {
        Cfg {
            cifg: false,
            peephole: false,
            projection: false,
            layer_norm: false,
            time_major: false,
            batch: 1,
            time: 6,
            n_input: 5,
            n_cell: 4,
            n_output: 4,
            cell_clip: 0.0,
            proj_clip: 0.0,
            seed: 1,
        }
    }
}

fn bytes_i8(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}
fn bytes_i16(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Symmetric int8 weights: (tensor, scale).
fn weights_i8(g: &mut Graph, name: &str, shape: Vec<usize>, r: &mut Rng) -> (TensorId, f32) {
    let w = r.floats(shape.iter().product(), -0.6, 0.6);
    let s = w.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
    let q: Vec<i8> = w.iter().map(|v| (v / s).round() as i8).collect();
    let t = Tensor::constant(name, shape, DType::I8, bytes_i8(&q))
        .with_quant(Quantization::per_tensor(s, 0));
    (g.add_tensor(t), s)
}

fn weights_i16(g: &mut Graph, name: &str, vals: &[f32]) -> TensorId {
    let s = vals.iter().fold(0f32, |m, v| m.max(v.abs())) / 32767.0;
    let q: Vec<i16> = vals.iter().map(|v| (v / s).round() as i16).collect();
    g.add_tensor(
        Tensor::constant(name, vec![vals.len()], DType::I16, bytes_i16(&q))
            .with_quant(Quantization::per_tensor(s, 0)),
    )
}

fn bias_i32(g: &mut Graph, name: &str, vals: &[f32], scale: f32) -> TensorId {
    let q: Vec<i32> = vals.iter().map(|v| (v / scale).round() as i32).collect();
    g.add_tensor(
        Tensor::constant_i32(name, vec![vals.len()], &q)
            .with_quant(Quantization::per_tensor(scale, 0)),
    )
}

const IN_SCALE: f32 = 1.0 / 127.0;
const IN_ZP: i64 = 3;

/// An int8x16 LSTM model built like the converter's: symmetric int8 weights, int32
/// biases at input×weight scale, int16 cell state 2^-11, 5 intermediates.
fn build_integer(c: Cfg) -> Model {
    let mut r = Rng::xorshift(0x9E37_79B9_7F4A_7C15 ^ c.seed);
    let mut g = Graph::default();
    let (b, t, ni, nc, no) = (c.batch, c.time, c.n_input, c.n_cell, c.n_output);
    let seq = |last: usize| {
        if c.time_major {
            vec![t, b, last]
        } else {
            vec![b, t, last]
        }
    };
    let x = g.add_tensor(
        Tensor::activation("x", seq(ni), DType::I8)
            .with_quant(Quantization::per_tensor(IN_SCALE, IN_ZP)),
    );
    // Output state: hidden in (-1, 1) without projection; projected values are wider.
    let (hs_scale, hs_zp) = if c.projection {
        (0.02, 1)
    } else {
        (1.0 / 127.0, -2)
    };
    let (hid_scale, hid_zp) = if c.projection {
        (1.0 / 127.0, 2)
    } else {
        (hs_scale, hs_zp)
    };
    let ln_scale_of = |coef: &[f32]| coef.iter().fold(0f32, |m, v| m.max(v.abs())) / 32767.0;

    let mut inputs: Vec<Option<TensorId>> = vec![None; 24];
    inputs[0] = Some(x);
    for (gi, name) in ["input", "forget", "cell", "output"].iter().enumerate() {
        if gi == 0 && c.cifg {
            continue;
        }
        let (wi, wi_s) = weights_i8(&mut g, &format!("{name}_w_in"), vec![nc, ni], &mut r);
        let (wr, _) = weights_i8(&mut g, &format!("{name}_w_rec"), vec![nc, no], &mut r);
        inputs[1 + gi] = Some(wi);
        inputs[5 + gi] = Some(wr);
        let bias = r.floats(nc, -0.2, 0.2);
        if c.layer_norm {
            let coef = r.floats(nc, 0.5, 1.5);
            let ln_s = ln_scale_of(&coef);
            inputs[20 + gi] = Some(weights_i16(&mut g, &format!("{name}_ln"), &coef));
            // Added after normalization at 2^-10 of the coefficient scale.
            inputs[12 + gi] = Some(bias_i32(
                &mut g,
                &format!("{name}_bias"),
                &bias,
                ln_s / 1024.0,
            ));
        } else {
            inputs[12 + gi] = Some(bias_i32(
                &mut g,
                &format!("{name}_bias"),
                &bias,
                IN_SCALE * wi_s,
            ));
        }
        if c.peephole && gi != 2 {
            let p = r.floats(nc, -0.5, 0.5);
            // Slots 9, 10, 11: cell-to-input, -forget, -output.
            let slot = [9, 10, 0, 11][gi];
            inputs[slot] = Some(weights_i16(&mut g, &format!("{name}_peephole"), &p));
        }
    }
    if c.projection {
        let (pw, pw_s) = weights_i8(&mut g, "proj_w", vec![no, nc], &mut r);
        inputs[16] = Some(pw);
        let pb = r.floats(no, -0.1, 0.1);
        inputs[17] = Some(bias_i32(&mut g, "proj_b", &pb, hid_scale * pw_s));
    }
    let mut hs = Tensor::activation("output_state", vec![b, no], DType::I8)
        .with_quant(Quantization::per_tensor(hs_scale, hs_zp));
    hs.is_variable = true;
    let mut cs = Tensor::activation("cell_state", vec![b, nc], DType::I16)
        .with_quant(Quantization::per_tensor(2f32.powi(-11), 0));
    cs.is_variable = true;
    inputs[18] = Some(g.add_tensor(hs));
    inputs[19] = Some(g.add_tensor(cs));

    let mut intermediates = Vec::new();
    for k in 0..4 {
        let t = if c.layer_norm {
            Tensor::activation(format!("inter{k}"), vec![0], DType::I16)
                .with_quant(Quantization::per_tensor(2f32.powi(-10), 0))
        } else {
            Tensor::activation(format!("inter{k}"), vec![0], DType::F32)
        };
        intermediates.push(g.add_tensor(t));
    }
    intermediates.push(
        g.add_tensor(
            Tensor::activation("hidden", vec![0], DType::I8)
                .with_quant(Quantization::per_tensor(hid_scale, hid_zp)),
        ),
    );
    let y = g.add_tensor(
        Tensor::activation("y", seq(no), DType::I8)
            .with_quant(Quantization::per_tensor(hs_scale, hs_zp)),
    );
    let opts = LstmOptions {
        activation: Activation::Tanh,
        cell_clip: c.cell_clip,
        proj_clip: c.proj_clip,
        time_major: c.time_major,
        asymmetric_quantize_inputs: false,
        diagonal_recurrent_tensors: false,
    };
    g.add_op(Op {
        kind: OpKind::UnidirectionalSequenceLstm(opts),
        inputs,
        outputs: vec![y],
        intermediates,
        version: 1,
    });
    g.inputs = vec![x];
    g.outputs = vec![y];
    Model::from_graph(g, "synthetic integer LSTM")
}

/// Run the integer model and the float kernel on its dequantized twin over two calls
/// (state carried); return the largest and mean |difference| in output quanta.
fn integer_vs_float(c: Cfg) -> (f32, f32) {
    let model = build_integer(c);
    let float_model = dequantize_model(&model, &DequantizeOptions::default()).unwrap();
    let mut qi = Interpreter::new(&model, InterpreterOptions::default()).unwrap();
    let mut fi = Interpreter::new(&float_model, InterpreterOptions::default()).unwrap();
    let info = qi.outputs()[0].clone();
    let (scale, _) = info.quant.as_ref().unwrap().params(0);
    let n_in = qi.inputs()[0].num_elements();
    let mut r = Rng::xorshift(c.seed.wrapping_mul(7919) + 17);
    let (mut worst, mut sum, mut count) = (0f32, 0f32, 0usize);
    for _call in 0..2 {
        let q: Vec<i8> = (0..n_in)
            .map(|_| r.uniform(-128.0, 128.0).floor() as i8)
            .collect();
        let deq: Vec<f32> = q
            .iter()
            .map(|&v| ((v as i64 - IN_ZP) as f64 * IN_SCALE as f64) as f32)
            .collect();
        qi.set_input_bytes(0, &bytes_i8(&q)).unwrap();
        fi.set_input_f32(0, &deq).unwrap();
        qi.invoke();
        fi.invoke();
        let a = qi.output_f32(0).unwrap();
        let b = fi.output_f32(0).unwrap();
        for (x, y) in a.iter().zip(&b) {
            let d = (x - y).abs() / scale;
            worst = worst.max(d);
            sum += d;
            count += 1;
        }
    }
    (worst, sum / count as f32)
}

fn check_close(name: &str, c: Cfg, max_quanta: f32) {
    let (worst, mean) = integer_vs_float(c);
    eprintln!("{name}: integer vs float, worst {worst:.2} quanta, mean {mean:.3}");
    assert!(
        worst <= max_quanta && mean <= 0.75,
        "{name}: worst {worst} quanta, mean {mean}"
    );
}

#[test]
fn integer_tracks_float_plain() {
    check_close("plain", Cfg::plain(), 3.0);
}

#[test]
fn integer_tracks_float_batch_major_and_time_major_batches() {
    for time_major in [false, true] {
        let c = Cfg {
            batch: 3,
            time_major,
            seed: 2,
            ..Cfg::plain()
        };
        check_close(&format!("batch 3, time_major {time_major}"), c, 3.0);
    }
}

#[test]
fn integer_tracks_float_cifg_peephole_clip() {
    let c = Cfg {
        cifg: true,
        peephole: true,
        cell_clip: 0.75,
        seed: 3,
        ..Cfg::plain()
    };
    check_close("cifg+peephole+clip", c, 3.0);
    let c = Cfg {
        peephole: true,
        seed: 4,
        ..Cfg::plain()
    };
    check_close("peephole", c, 3.0);
}

#[test]
fn integer_tracks_float_projection() {
    let c = Cfg {
        projection: true,
        n_output: 3,
        proj_clip: 0.9,
        batch: 2,
        seed: 5,
        ..Cfg::plain()
    };
    check_close("projection+clip", c, 3.0);
}

#[test]
fn integer_tracks_float_layer_norm() {
    // TFLite's integer layer norm is exact only for power-of-two widths.
    let c = Cfg {
        layer_norm: true,
        n_cell: 8,
        n_output: 8,
        seed: 6,
        ..Cfg::plain()
    };
    check_close("layer norm", c, 3.0);
    let c = Cfg {
        layer_norm: true,
        cifg: true,
        n_cell: 4,
        n_output: 4,
        time_major: true,
        batch: 2,
        seed: 7,
        ..Cfg::plain()
    };
    check_close("layer norm + cifg", c, 3.0);
}

/// Two invokes of T steps equal one invoke of 2T steps: the state carries over.
#[test]
fn state_carries_across_invokes() {
    let short = build_integer(Cfg::plain());
    let long = build_integer(Cfg {
        time: 12,
        ..Cfg::plain()
    });
    let mut r = Rng::xorshift(99);
    let x: Vec<i8> = (0..12 * 5)
        .map(|_| r.uniform(-128.0, 128.0).floor() as i8)
        .collect();
    let mut a = Interpreter::new(&short, InterpreterOptions::default()).unwrap();
    let mut got = Vec::new();
    for half in x.chunks(30) {
        a.set_input_bytes(0, &bytes_i8(half)).unwrap();
        a.invoke();
        got.extend_from_slice(a.output_bytes(0));
    }
    let mut b = Interpreter::new(&long, InterpreterOptions::default()).unwrap();
    b.set_input_bytes(0, &bytes_i8(&x)).unwrap();
    b.invoke();
    assert_eq!(got, b.output_bytes(0));
}

fn prepare_err(m: &Model) -> EngineError {
    match Interpreter::new(m, InterpreterOptions::default()) {
        Ok(_) => panic!("model was accepted"),
        Err(e) => e,
    }
}

fn lstm_op(m: &mut Model) -> &mut Op {
    &mut m.main_mut().ops[0]
}

#[test]
fn malformed_lstms_are_errors_not_panics() {
    let base = build_integer(Cfg::plain());

    let mut m = base.clone();
    lstm_op(&mut m).intermediates.pop();
    assert!(prepare_err(&m).to_string().contains("intermediate"));

    let mut m = base.clone();
    lstm_op(&mut m).inputs[18] = None;
    assert!(prepare_err(&m).to_string().contains("output state"));

    let mut m = base.clone();
    let cs = lstm_op(&mut m).inputs[19].unwrap();
    m.main_mut().tensors[cs].quant = Some(Quantization::per_tensor(0.0003, 0));
    assert!(prepare_err(&m).to_string().contains("power of two"));

    let mut m = base.clone();
    let hs = lstm_op(&mut m).inputs[18].unwrap();
    m.main_mut().tensors[hs].is_variable = false;
    // The dataflow check sees a tensor read before anything writes it.
    assert!(prepare_err(&m).to_string().contains("output_state"));

    let mut m = base.clone();
    lstm_op(&mut m).inputs.truncate(10);
    assert!(prepare_err(&m).to_string().contains("20 or 24"));

    let mut m = base.clone();
    let w = lstm_op(&mut m).inputs[3].unwrap();
    m.main_mut().tensors[w].shape = vec![4, 4];
    m.main_mut().tensors[w].data = Some(vec![0; 16]);
    assert!(prepare_err(&m).to_string().contains("input-to-cell"));

    let mut m = base.clone();
    lstm_op(&mut m).inputs[5] = None;
    assert!(prepare_err(&m).to_string().contains("CIFG"));

    let mut m = base;
    let x = lstm_op(&mut m).inputs[0].unwrap();
    m.main_mut().tensors[x].shape = vec![30, 1];
    assert!(prepare_err(&m).to_string().contains("3-D"));
}

/// Interop aid, not run by default: writes each synthetic integer LSTM variant, its
/// int8 inputs for two consecutive invokes and our outputs to
/// `$TMPDIR/quantfarm-lstm-interop/`, so LiteRT (BUILTIN_REF) can replay them:
/// `for each <name>.tflite: interp.set_tensor(input, <name>.in<k>.bin); invoke();
/// compare with <name>.out<k>.bin`.
#[test]
#[ignore = "writes files for a manual LiteRT comparison"]
fn dump_synthetic_models_for_litert() {
    let dir = std::env::temp_dir().join("quantfarm-lstm-interop");
    std::fs::create_dir_all(&dir).unwrap();
    let variants = [
        ("plain", Cfg::plain()),
        (
            "batch3_time_major",
            Cfg {
                batch: 3,
                time_major: true,
                seed: 2,
                ..Cfg::plain()
            },
        ),
        (
            "batch3_batch_major",
            Cfg {
                batch: 3,
                seed: 2,
                ..Cfg::plain()
            },
        ),
        (
            "cifg_peephole_clip",
            Cfg {
                cifg: true,
                peephole: true,
                cell_clip: 0.75,
                seed: 3,
                ..Cfg::plain()
            },
        ),
        (
            "peephole",
            Cfg {
                peephole: true,
                seed: 4,
                ..Cfg::plain()
            },
        ),
        (
            "projection_clip",
            Cfg {
                projection: true,
                n_output: 3,
                proj_clip: 0.9,
                batch: 2,
                seed: 5,
                ..Cfg::plain()
            },
        ),
        (
            "layer_norm",
            Cfg {
                layer_norm: true,
                n_cell: 8,
                n_output: 8,
                seed: 6,
                ..Cfg::plain()
            },
        ),
        (
            "layer_norm_cifg",
            Cfg {
                layer_norm: true,
                cifg: true,
                time_major: true,
                batch: 2,
                seed: 7,
                ..Cfg::plain()
            },
        ),
        (
            "large_projection_peephole",
            Cfg {
                projection: true,
                peephole: true,
                n_input: 24,
                n_cell: 32,
                n_output: 16,
                time: 20,
                batch: 2,
                seed: 8,
                ..Cfg::plain()
            },
        ),
        (
            "large_projection_peephole_time_major",
            Cfg {
                projection: true,
                peephole: true,
                time_major: true,
                n_input: 24,
                n_cell: 32,
                n_output: 16,
                time: 20,
                batch: 3,
                seed: 10,
                ..Cfg::plain()
            },
        ),
        (
            "large_layer_norm_cifg_clip",
            Cfg {
                layer_norm: true,
                cifg: true,
                peephole: true,
                cell_clip: 1.5,
                n_input: 16,
                n_cell: 64,
                n_output: 64,
                time: 30,
                batch: 2,
                seed: 11,
                ..Cfg::plain()
            },
        ),
        (
            "layer_norm_width6",
            Cfg {
                layer_norm: true,
                n_cell: 6,
                n_output: 6,
                time: 10,
                seed: 9,
                ..Cfg::plain()
            },
        ),
    ];
    for (name, c) in variants {
        let model = build_integer(c);
        let float_model = dequantize_model(&model, &DequantizeOptions::default()).unwrap();
        crate::tflite::write_model_file(&float_model, &dir.join(format!("{name}.float.tflite")))
            .unwrap();
        crate::tflite::write_model_file(&model, &dir.join(format!("{name}.tflite"))).unwrap();
        let mut it = Interpreter::new(&model, InterpreterOptions::default()).unwrap();
        let n = it.inputs()[0].num_elements();
        let mut r = Rng::xorshift(c.seed + 1000);
        for k in 0..2 {
            let x: Vec<u8> = (0..n)
                .map(|_| r.uniform(-128.0, 128.0).floor() as i8 as u8)
                .collect();
            it.set_input_bytes(0, &x).unwrap();
            it.invoke();
            std::fs::write(dir.join(format!("{name}.in{k}.bin")), &x).unwrap();
            std::fs::write(dir.join(format!("{name}.out{k}.bin")), it.output_bytes(0)).unwrap();
        }
        // The float kernel on the dequantized model, same inputs dequantized.
        let mut fi = Interpreter::new(&float_model, InterpreterOptions::default()).unwrap();
        for k in 0..2 {
            let x = std::fs::read(dir.join(format!("{name}.in{k}.bin"))).unwrap();
            let xf: Vec<f32> = x
                .iter()
                .map(|&v| ((v as i8 as i64 - IN_ZP) as f64 * IN_SCALE as f64) as f32)
                .collect();
            fi.set_input_f32(0, &xf).unwrap();
            fi.invoke();
            let bytes: Vec<u8> = xf.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("{name}.float.in{k}.bin")), bytes).unwrap();
            std::fs::write(
                dir.join(format!("{name}.float.out{k}.bin")),
                fi.output_bytes(0),
            )
            .unwrap();
        }
    }
    // The dequantized golden model, its 8 cases in order.
    if let Ok(root) = crate::data::shared_root() {
        let model = crate::tflite::read_model_file(&root.join(GOLDEN_MODEL)).unwrap();
        let fm = dequantize_model(&model, &DequantizeOptions::default()).unwrap();
        crate::tflite::write_model_file(&fm, &dir.join("golden.float.tflite")).unwrap();
        let in_scale = golden_input_scale(&model);
        let mut it = Interpreter::new(&fm, InterpreterOptions::default()).unwrap();
        for k in 0..8 {
            let x: Vec<f32> =
                std::fs::read(root.join(GOLDEN_DIR).join(format!("case_{k:03}.in0.bin")))
                    .unwrap()
                    .iter()
                    .map(|&b| b as f32 * in_scale)
                    .collect();
            it.set_input_f32(0, &x).unwrap();
            it.invoke();
            let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("golden.float.in{k}.bin")), bytes).unwrap();
            std::fs::write(
                dir.join(format!("golden.float.out{k}.bin")),
                it.output_bytes(0),
            )
            .unwrap();
        }
    }
    eprintln!("wrote {}", dir.display());
}

/// The dequantized golden model runs on the float kernels (float LSTM, FC, softmax)
/// and agrees with LiteRT's integer outputs: same top class, probabilities close.
#[test]
fn dequantized_golden_model_runs_in_float() {
    let Ok(root) = crate::data::shared_root() else {
        return;
    };
    let model = crate::tflite::read_model_file(&root.join(GOLDEN_MODEL)).unwrap();
    let float_model = dequantize_model(&model, &DequantizeOptions::default()).unwrap();
    let mut it = Interpreter::new(&float_model, InterpreterOptions::default()).unwrap();
    assert_eq!(it.inputs()[0].dtype, DType::F32);
    let in_scale = golden_input_scale(&model);
    let (mut worst, mut agree) = (0f32, 0);
    for c in 0..8 {
        let dir = root.join(GOLDEN_DIR);
        let x: Vec<f32> = std::fs::read(dir.join(format!("case_{c:03}.in0.bin")))
            .unwrap()
            .iter()
            .map(|&b| b as f32 * in_scale)
            .collect();
        it.set_input_f32(0, &x).unwrap();
        it.invoke();
        let got = it.output_f32(0).unwrap();
        let want: Vec<f32> = std::fs::read(dir.join(format!("case_{c:03}.out0.bin")))
            .unwrap()
            .iter()
            .map(|&b| b as f32 / 256.0)
            .collect();
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
        agree += (argmax(&got) == argmax(&want)) as usize;
        for (a, b) in got.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("dequantized golden model: top-1 agreement {agree}/8, worst |Δp| {worst:.4}");
    assert_eq!(agree, 8);
    assert!(worst < 0.05, "worst probability difference {worst}");
}

#[test]
fn absurd_quantization_is_an_error_not_a_panic() {
    let base = build_integer(Cfg {
        layer_norm: true,
        ..Cfg::plain()
    });
    // A layer-norm coefficient scale of 2^40 would need a 52-bit left shift.
    let mut m = base.clone();
    let ln = lstm_op(&mut m).inputs[21].unwrap();
    m.main_mut().tensors[ln].quant = Some(Quantization::per_tensor(2f32.powi(40), 0));
    assert!(prepare_err(&m).to_string().contains("too large"));

    let mut m = base.clone();
    let hidden = lstm_op(&mut m).intermediates[4];
    m.main_mut().tensors[hidden].quant = Some(Quantization::per_tensor(0.01, i64::from(i32::MIN)));
    assert!(prepare_err(&m).to_string().contains("zero point"));

    // Zero and non-finite scales give zero multipliers, not panics.
    let mut m = base;
    let w = lstm_op(&mut m).inputs[2].unwrap();
    m.main_mut().tensors[w].quant = Some(Quantization::per_tensor(0.0, 0));
    let mut it = Interpreter::new(&m, InterpreterOptions::default()).unwrap();
    it.invoke();
}

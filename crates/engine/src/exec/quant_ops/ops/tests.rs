//! The integer op family through the interpreter: fast equals reference, hand-computed
//! cases, the generic shape ops, and parameters that must be rejected.

use crate::exec::kernels::test_util::Rng;
use crate::exec::{Interpreter, InterpreterOptions, KernelChoice};
use crate::ir::*;

fn q(shape: &[usize], dt: DType, s: f32, z: i64) -> Tensor {
    Tensor::activation("t", shape.to_vec(), dt).with_quant(Quantization::per_tensor(s, z))
}

/// One-op model: `inputs` are graph inputs unless constant.
fn model(tensors: Vec<Tensor>, kind: OpKind, ins: Vec<usize>, outs: Vec<usize>) -> Model {
    let mut g = Graph::default();
    for (k, mut t) in tensors.into_iter().enumerate() {
        t.name = format!("t{k}");
        g.add_tensor(t);
    }
    g.inputs = ins
        .iter()
        .copied()
        .filter(|&t| !g.tensors[t].is_constant())
        .collect();
    g.outputs = outs.clone();
    g.add_op(Op::new(kind, ins, outs));
    Model::from_graph(g, "test")
}

fn run(m: &Model, kernels: KernelChoice, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let opts = InterpreterOptions {
        kernels,
        ..Default::default()
    };
    let mut it = Interpreter::new(m, opts).expect("prepare");
    for (k, b) in inputs.iter().enumerate() {
        it.set_input_bytes(k, b).unwrap();
    }
    it.invoke();
    (0..it.outputs().len())
        .map(|k| it.output_bytes(k).to_vec())
        .collect()
}

/// Both kernel choices give the same bytes; returns them.
fn run_both(m: &Model, inputs: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let r = run(m, KernelChoice::Reference, inputs);
    let f = run(m, KernelChoice::Fast, inputs);
    assert_eq!(r, f, "fast path differs from the reference");
    r
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

#[test]
fn int8_add_broadcast_and_same_shape() {
    let add = OpKind::Add {
        activation: Activation::None,
        pot_scale_int16: false,
    };
    // TV8 through the interpreter.
    let m = model(
        vec![
            q(&[1], DType::I8, 0.5, 0),
            q(&[1], DType::I8, 0.25, 0),
            q(&[1], DType::I8, 0.5, 0),
        ],
        add.clone(),
        vec![0, 1],
        vec![2],
    );
    assert_eq!(run_both(&m, &[vec![3], vec![2]]), vec![vec![4]]);
    // [2,3,4] + [3,1] and equal shapes: fast (rows / flat) equals reference.
    let m = model(
        vec![
            q(&[2, 3, 4], DType::I8, 0.02, -3),
            q(&[3, 1], DType::I8, 0.05, 7),
            q(&[2, 3, 4], DType::I8, 0.04, 1),
        ],
        add.clone(),
        vec![0, 1],
        vec![2],
    );
    run_both(&m, &[bytes(24, 1), bytes(3, 2)]);
    let m = model(
        vec![
            q(&[4, 64], DType::U8, 0.1, 128),
            q(&[4, 64], DType::U8, 0.07, 3),
            q(&[4, 64], DType::U8, 0.12, 100),
        ],
        add,
        vec![0, 1],
        vec![2],
    );
    run_both(&m, &[bytes(256, 3), bytes(256, 4)]);
}

#[test]
fn unary_tables_equal_reference() {
    let x: Vec<u8> = (0..=255).collect();
    for (kind, (si, zi), (so, zo)) in [
        (OpKind::Relu, (0.05, -10), (0.04, -128)),
        (OpKind::Relu6, (0.05, -10), (0.05, -10)),
        (OpKind::HardSwish, (0.05, 3), (0.03, -60)),
        (OpKind::Logistic, (0.1, 0), (1.0 / 256.0, -128)),
        (OpKind::Tanh, (0.05, 3), (1.0 / 128.0, 0)),
    ] {
        let m = model(
            vec![q(&[256], DType::I8, si, zi), q(&[256], DType::I8, so, zo)],
            kind,
            vec![0],
            vec![1],
        );
        run_both(&m, std::slice::from_ref(&x));
    }
    // uint8 RELU6 on (0.05, 100) → (0.03, 0): 6.0 → 200, real 0 → 0.
    let m = model(
        vec![q(&[3], DType::U8, 0.05, 100), q(&[3], DType::U8, 0.03, 0)],
        OpKind::Relu6,
        vec![0],
        vec![1],
    );
    assert_eq!(run_both(&m, &[vec![0, 100, 255]]), vec![vec![0, 0, 200]]);
}

#[test]
fn quantize_int_to_int_and_pool() {
    // uint8 → int8 with zero points 128 apart: the bit flip.
    let m = model(
        vec![q(&[4], DType::U8, 0.5, 128), q(&[4], DType::I8, 0.5, 0)],
        OpKind::Quantize,
        vec![0],
        vec![1],
    );
    assert_eq!(
        run_both(&m, &[vec![0, 127, 128, 255]]),
        vec![vec![0x80, 0xff, 0, 0x7f]]
    );
    // int8 average pool, SAME padding: fast equals reference.
    let opts = Pool2DOptions {
        padding: Padding::Same,
        stride_h: 2,
        stride_w: 2,
        filter_h: 3,
        filter_w: 3,
        activation: Activation::None,
    };
    let m = model(
        vec![
            q(&[1, 7, 7, 5], DType::I8, 0.1, -3),
            q(&[1, 4, 4, 5], DType::I8, 0.1, -3),
        ],
        OpKind::AveragePool2D(opts),
        vec![0],
        vec![1],
    );
    run_both(&m, &[bytes(245, 9)]);
}

#[test]
fn int16_softmax_logistic_tanh() {
    let i16s = |v: &[i16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let back = |b: &[u8]| {
        b.chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<i16>>()
    };
    let out = 1.0 / 32768.0;
    // Softmax over rows of 4: equal logits give 1/4 each.
    let m = model(
        vec![
            q(&[2, 4], DType::I16, 0.001, 0),
            q(&[2, 4], DType::I16, out, 0),
        ],
        OpKind::Softmax { beta: 1.0 },
        vec![0],
        vec![1],
    );
    let y = back(&run_both(&m, &[i16s(&[7, 7, 7, 7, -3000, 9000, 0, 1])])[0]);
    assert!(y[..4].iter().all(|&v| (v - 8192).abs() <= 2), "{y:?}");
    assert!(y[5] > 32700 && y[7] >= y[6] && y[6] >= y[4], "{y:?}");
    run_both(&m, &[bytes(16, 11)]);
    // LOGISTIC / TANH with a power-of-two and a calibrated input scale.
    for kind in [OpKind::Logistic, OpKind::Tanh] {
        for s in [1.0 / 4096.0, 6.1e-4] {
            let m = model(
                vec![q(&[64], DType::I16, s, 0), q(&[64], DType::I16, out, 0)],
                kind.clone(),
                vec![0],
                vec![1],
            );
            let y = back(&run_both(&m, &[i16s(&[0; 64])])[0]);
            let half = if matches!(kind, OpKind::Logistic) {
                16384
            } else {
                0
            };
            assert!(y.iter().all(|&v| v == half), "{y:?}");
            run_both(&m, &[bytes(128, 12)]);
        }
    }
    // Wrong output parameters and int16 HARD_SWISH are errors.
    for (kind, o) in [
        (OpKind::Softmax { beta: 1.0 }, 1.0 / 256.0),
        (OpKind::Logistic, 1.0 / 16384.0),
        (OpKind::HardSwish, out),
    ] {
        let m = model(
            vec![q(&[4], DType::I16, 0.001, 0), q(&[4], DType::I16, o, 0)],
            kind,
            vec![0],
            vec![1],
        );
        assert!(Interpreter::new(&m, InterpreterOptions::default()).is_err());
    }
}

#[test]
fn generic_pack_unpack_gather_nd_on_int32() {
    let i32s = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let t = |s: &[usize]| Tensor::activation("t", s.to_vec(), DType::I32);
    let m = model(
        vec![t(&[2]), t(&[2]), t(&[2, 2])],
        OpKind::Pack {
            values_count: 2,
            axis: 1,
        },
        vec![0, 1],
        vec![2],
    );
    assert_eq!(
        run_both(&m, &[i32s(&[1, 2]), i32s(&[3, 4])]),
        vec![i32s(&[1, 3, 2, 4])]
    );
    let m = model(
        vec![t(&[2, 3]), t(&[3]), t(&[3])],
        OpKind::Unpack { num: 2, axis: 0 },
        vec![0],
        vec![1, 2],
    );
    assert_eq!(
        run_both(&m, &[i32s(&[1, 2, 3, 4, 5, 6])]),
        vec![i32s(&[1, 2, 3]), i32s(&[4, 5, 6])]
    );
    let m = model(
        vec![t(&[2, 2]), t(&[2, 2]), t(&[2])],
        OpKind::GatherNd,
        vec![0, 1],
        vec![2],
    );
    assert_eq!(
        run_both(&m, &[i32s(&[10, 11, 12, 13]), i32s(&[1, 0, 0, 1])]),
        vec![i32s(&[12, 11])]
    );
    // An out-of-range index zeroes the output instead of failing the run.
    assert_eq!(
        run_both(&m, &[i32s(&[10, 11, 12, 13]), i32s(&[2, 0, 0, 1])]),
        vec![i32s(&[0, 0])]
    );
}

#[test]
fn bad_parameters_are_errors() {
    // Softmax output must be (1/256, −128) for int8.
    let m = model(
        vec![q(&[4], DType::I8, 0.1, 0), q(&[4], DType::I8, 0.1, 0)],
        OpKind::Softmax { beta: 1.0 },
        vec![0],
        vec![1],
    );
    assert!(Interpreter::new(&m, InterpreterOptions::default()).is_err());
    // Zero scale.
    let m = model(
        vec![q(&[4], DType::I8, 0.0, 0), q(&[4], DType::I8, 0.1, 0)],
        OpKind::Relu,
        vec![0],
        vec![1],
    );
    assert!(Interpreter::new(&m, InterpreterOptions::default()).is_err());
    // Pooling with different input/output parameters.
    let opts = Pool2DOptions {
        padding: Padding::Valid,
        stride_h: 1,
        stride_w: 1,
        filter_h: 1,
        filter_w: 1,
        activation: Activation::None,
    };
    let m = model(
        vec![
            q(&[1, 1, 1, 1], DType::U8, 0.1, 0),
            q(&[1, 1, 1, 1], DType::U8, 0.2, 0),
        ],
        OpKind::MaxPool2D(opts),
        vec![0],
        vec![1],
    );
    assert!(Interpreter::new(&m, InterpreterOptions::default()).is_err());
    // Shapes that do not broadcast.
    let m = model(
        vec![
            q(&[3], DType::I8, 0.1, 0),
            q(&[4], DType::I8, 0.1, 0),
            q(&[4], DType::I8, 0.1, 0),
        ],
        OpKind::Mul {
            activation: Activation::None,
        },
        vec![0, 1],
        vec![2],
    );
    assert!(Interpreter::new(&m, InterpreterOptions::default()).is_err());
}

/// Scale ratios past what MultiplyByQuantizedMultiplier can apply (a left shift over 30
/// bits, or a power-of-two rescaling below 2^-31) are refused at preparation, by both
/// kernel choices. Found by the `prepare_model` fuzz target: a QUANTIZE int8 → uint8 to
/// an output scale of 1.2e-38 overflowed the shift while running.
#[test]
fn scale_ratios_past_the_fixed_point_range_are_refused() {
    let tiny = 1.2e-38;
    let axes = Tensor::constant_i32("axes", vec![1], &[1]);
    let pot = |s: f32| {
        Tensor::activation("t", vec![1, 4], DType::I16).with_quant(Quantization::per_tensor(s, 0))
    };
    let cases: Vec<(&str, Model)> = vec![
        (
            "QUANTIZE",
            model(
                vec![
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::U8, tiny, 0),
                ],
                OpKind::Quantize,
                vec![0],
                vec![1],
            ),
        ),
        (
            "ADD",
            model(
                vec![
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::I8, tiny, 0),
                ],
                OpKind::Add {
                    activation: Activation::None,
                    pot_scale_int16: false,
                },
                vec![0, 1],
                vec![2],
            ),
        ),
        (
            "MUL",
            model(
                vec![
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::I8, tiny, 0),
                ],
                OpKind::Mul {
                    activation: Activation::None,
                },
                vec![0, 1],
                vec![2],
            ),
        ),
        (
            "MEAN",
            model(
                vec![
                    q(&[1, 4], DType::U8, 1.0, 0),
                    axes,
                    q(&[1], DType::U8, tiny, 0),
                ],
                OpKind::Mean { keep_dims: false },
                vec![0, 1],
                vec![2],
            ),
        ),
        (
            "RELU",
            model(
                vec![
                    q(&[1, 4], DType::I8, 1.0, 0),
                    q(&[1, 4], DType::I8, tiny, 0),
                ],
                OpKind::Relu,
                vec![0],
                vec![1],
            ),
        ),
        (
            "SOFTMAX",
            model(
                vec![
                    q(&[1, 4], DType::I8, 1e30, 0),
                    q(&[1, 4], DType::I8, 1.0 / 256.0, -128),
                ],
                OpKind::Softmax { beta: 1.0 },
                vec![0],
                vec![1],
            ),
        ),
        (
            "int16 SOFTMAX",
            model(
                vec![
                    q(&[1, 4], DType::I16, 1e30, 0),
                    q(&[1, 4], DType::I16, 1.0 / 32768.0, 0),
                ],
                OpKind::Softmax { beta: 1.0 },
                vec![0],
                vec![1],
            ),
        ),
        (
            "int16 ADD with power-of-two scales",
            model(
                vec![pot(2f32.powi(-40)), pot(1.0), pot(1.0)],
                OpKind::Add {
                    activation: Activation::None,
                    pot_scale_int16: true,
                },
                vec![0, 1],
                vec![2],
            ),
        ),
    ];
    for (what, m) in cases {
        for kernels in [KernelChoice::Reference, KernelChoice::Fast] {
            let opts = InterpreterOptions {
                kernels,
                ..Default::default()
            };
            let e = Interpreter::new(&m, opts).err().map(|e| e.to_string());
            let e = e.unwrap_or_else(|| panic!("{what} ({kernels:?}) was accepted"));
            assert!(e.contains("unsupported") && e.contains("2^"), "{what}: {e}");
        }
    }
}

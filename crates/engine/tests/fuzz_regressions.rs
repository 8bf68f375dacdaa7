//! Models the `prepare_model` fuzz target (`fuzz/`) found to panic the interpreter,
//! rebuilt by hand: each must be refused with an error at preparation.
//! (Scale ratios past the fixed-point range: `exec/quant_ops/ops/tests.rs`.)

use quantfarm_engine::exec::{Interpreter, InterpreterOptions, KernelChoice};
use quantfarm_engine::ir::*;

fn refused(what: &str, g: Graph) -> String {
    let m = Model::from_graph(g, what);
    let mut last = String::new();
    for kernels in [KernelChoice::Fast, KernelChoice::Reference] {
        let opts = InterpreterOptions {
            kernels,
            ..Default::default()
        };
        last = match Interpreter::new(&m, opts) {
            Ok(_) => panic!("{what} ({kernels:?}) was accepted"),
            Err(e) => e.to_string(),
        };
    }
    last
}

/// One op on a rank-0 input `x` (float32 or int8) with an int32 constant operand.
fn scalar_op(kind: OpKind, dtype: DType, operand: Option<&[i32]>, out_shape: &[usize]) -> Graph {
    let mut g = Graph::default();
    let quant = Quantization::per_tensor(0.5, 0);
    let mut x = Tensor::activation("scalar", vec![], dtype);
    let mut y = Tensor::activation("y", out_shape.to_vec(), dtype);
    if dtype != DType::F32 {
        x = x.with_quant(quant.clone());
        y = y.with_quant(quant);
    }
    let x = g.add_tensor(x);
    let mut inputs = vec![x];
    if let Some(v) = operand {
        inputs.push(g.add_tensor(Tensor::constant_i32("operand", vec![v.len()], v)));
    }
    let y = g.add_tensor(y);
    g.add_op(Op::new(kind, inputs, vec![y]));
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

/// A rank-0 tensor has no axis 0: TRANSPOSE with perm [0] indexed an empty list
/// (found by the fuzzer), and GATHER, ARG_MAX, CONCATENATION, MEAN and UNPACK indexed
/// the empty shape the same way.
#[test]
fn axes_of_a_scalar_are_refused() {
    let cases = [
        (
            "TRANSPOSE",
            scalar_op(OpKind::Transpose, DType::F32, Some(&[0]), &[]),
        ),
        (
            "GATHER",
            scalar_op(
                OpKind::Gather {
                    axis: 0,
                    batch_dims: 0,
                },
                DType::F32,
                Some(&[0]),
                &[1],
            ),
        ),
        (
            "ARG_MAX",
            scalar_op(
                OpKind::ArgMax {
                    output_type: DType::I32,
                },
                DType::F32,
                Some(&[0]),
                &[],
            ),
        ),
        (
            "CONCATENATION",
            scalar_op(
                OpKind::Concatenation {
                    axis: 0,
                    activation: Activation::None,
                },
                DType::F32,
                None,
                &[],
            ),
        ),
        (
            "MEAN",
            scalar_op(
                OpKind::Mean { keep_dims: false },
                DType::F32,
                Some(&[0]),
                &[],
            ),
        ),
        (
            "int8 MEAN",
            scalar_op(
                OpKind::Mean { keep_dims: false },
                DType::I8,
                Some(&[0]),
                &[],
            ),
        ),
        (
            "UNPACK",
            scalar_op(OpKind::Unpack { num: 1, axis: 0 }, DType::I8, None, &[]),
        ),
    ];
    for (what, g) in cases {
        let e = refused(what, g);
        assert!(e.contains("axis") || e.contains("perm"), "{what}: {e}");
    }
}

/// RESIZE_BILINEAR from `[1, 1, w_in, 1]` to `[1, 1, w_out, 1]`.
fn resize(dtype: DType, w_in: usize, w_out: usize, align: bool, half: bool) -> Graph {
    let mut g = Graph::default();
    let q = |t: Tensor| {
        if dtype == DType::F32 {
            t
        } else {
            t.with_quant(Quantization::per_tensor(0.5, 0))
        }
    };
    let x = g.add_tensor(q(Tensor::activation("x", vec![1, 1, w_in, 1], dtype)));
    let size = g.add_tensor(Tensor::constant_i32("size", vec![2], &[1, w_out as i32]));
    let y = g.add_tensor(q(Tensor::activation("y", vec![1, 1, w_out, 1], dtype)));
    g.add_op(Op::new(
        OpKind::ResizeBilinear {
            align_corners: align,
            half_pixel_centers: half,
        },
        vec![x, size],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

/// `align_corners` with `half_pixel_centers` (which TFLite refuses) put the source
/// coordinate of a shrinking resize past the image: an int8 RESIZE_BILINEAR read out
/// of bounds while running (found by the fuzzer). Refused at preparation now.
#[test]
fn resize_with_align_corners_and_half_pixel_centers_is_refused() {
    for dtype in [DType::F32, DType::U8, DType::I8] {
        let e = refused("RESIZE_BILINEAR", resize(dtype, 5, 2, true, true));
        assert!(e.contains("align_corners and half_pixel_centers"), "{e}");
    }
}

/// The 10-bit fixed-point scale of a large int8 upscale (3 → 2000 pixels, rounded to
/// 2/1024 instead of 1.536/1024) put the lower source index past the last pixel: it is
/// clamped now, and the output ends with the input's last pixel.
#[test]
fn large_integer_upscale_stays_in_the_image() {
    let m = Model::from_graph(resize(DType::I8, 3, 2000, false, true), "upscale");
    for kernels in [KernelChoice::Fast, KernelChoice::Reference] {
        let opts = InterpreterOptions {
            kernels,
            ..Default::default()
        };
        let mut it = Interpreter::new(&m, opts).unwrap();
        it.set_input_bytes(0, &[10u8, 20, 30]).unwrap();
        it.invoke();
        let y = it.output_bytes(0);
        assert_eq!((y[0], y[1999]), (10, 30), "{kernels:?}");
    }
}

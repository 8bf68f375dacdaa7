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

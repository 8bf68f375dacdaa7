//! Interpreter-level tests of the float family's kernel choices.

use crate::exec::kernels::test_util::{Rng, assert_close};
use crate::exec::{Interpreter, InterpreterOptions, KernelChoice, SparseMode};
use crate::ir::{Activation, Conv2DOptions, DType, Graph, Model, Op, OpKind, Tensor};

/// `w` with each weight zeroed with probability `sparsity`.
fn prune(rng: &mut Rng, mut w: Vec<f32>, sparsity: f64) -> Vec<f32> {
    for v in w.iter_mut() {
        if rng.unit() < sparsity {
            *v = 0.0;
        }
    }
    w
}

/// x[1,6,5,24] → 1×1 conv to 40 (90% zeros, ReLU6) → 1×1 conv to 16 (10% zeros)
/// → 3×3 conv to 8 (90% zeros, not 1×1).
fn model() -> (Model, Vec<f32>) {
    let mut rng = Rng::new(5);
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 6, 5, 24], DType::F32));
    let mut prev = x;
    let layers = [
        (24, 40, 1, 0.9, Activation::Relu6),
        (40, 16, 1, 0.1, Activation::None),
        (16, 8, 3, 0.9, Activation::Relu),
    ];
    for (i, (cin, cout, k, sparsity, activation)) in layers.into_iter().enumerate() {
        let w = rng.f32s(cout * k * k * cin);
        let w = prune(&mut rng, w, sparsity);
        let wt = g.add_tensor(Tensor::constant_f32(
            format!("w{i}"),
            vec![cout, k, k, cin],
            &w,
        ));
        let b = g.add_tensor(Tensor::constant_f32(
            format!("b{i}"),
            vec![cout],
            &rng.f32s(cout),
        ));
        let y = g.add_tensor(Tensor::activation(
            format!("y{i}"),
            vec![1, 6, 5, cout],
            DType::F32,
        ));
        let o = Conv2DOptions {
            activation,
            ..Default::default()
        };
        g.add_op(Op::new(OpKind::Conv2D(o), vec![prev, wt, b], vec![y]));
        prev = y;
    }
    g.inputs = vec![x];
    g.outputs = vec![prev];
    (Model::from_graph(g, "sparse test"), rng.f32s(6 * 5 * 24))
}

fn run(
    m: &Model,
    input: &[f32],
    kernels: KernelChoice,
    sparse: SparseMode,
) -> (Vec<f32>, Interpreter) {
    let opts = InterpreterOptions {
        kernels,
        sparse,
        threads: 2,
        ..Default::default()
    };
    let mut it = Interpreter::new(m, opts).expect("model prepares");
    it.set_input_f32(0, input).unwrap();
    it.invoke();
    (it.output_f32(0).unwrap(), it)
}

#[test]
fn sparse_auto_takes_only_the_sparse_1x1_conv() {
    let (m, input) = model();
    let (want, r) = run(&m, &input, KernelChoice::Reference, SparseMode::Auto);
    assert_eq!(r.sparse_ops(), 0, "the reference kernels never run sparse");
    let (dense, d) = run(&m, &input, KernelChoice::Fast, SparseMode::Off);
    assert_eq!(d.sparse_ops(), 0);
    assert!(d.op_timings().iter().all(|t| t.kernel.is_none()));
    let (sparse, s) = run(&m, &input, KernelChoice::Fast, SparseMode::Auto);
    assert_eq!(s.sparse_ops(), 1);
    let kinds: Vec<Option<String>> = s.op_timings().into_iter().map(|t| t.kernel).collect();
    assert!(
        kinds[0]
            .as_deref()
            .is_some_and(|k| k.starts_with("sparse 1x1")),
        "{kinds:?}"
    );
    assert_eq!(kinds[1..], [None, None]);
    assert_close(&dense, &want, 3 * 3 * 40, "dense");
    assert_close(&sparse, &want, 3 * 3 * 40, "sparse");
}

//! Structure tests of the zoo builders: operator counts against the hosted Coral
//! TFLite files, parameter counts and float32 file sizes against the published
//! TF-slim / Table 1 figures, shape arithmetic of every operator, determinism.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use quantfarm_engine::ir::{DType, Graph, Model, OpKind, Padding};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

fn cfg(arch: Arch, width: f32, resolution: usize) -> ZooConfig {
    ZooConfig {
        width,
        resolution,
        ..ZooConfig::new(arch)
    }
}

/// The published configuration of each architecture, built once for all tests
/// (building the big ones takes seconds in a debug build).
fn published(arch: Arch) -> &'static Model {
    static MODELS: [OnceLock<Model>; 6] = [const { OnceLock::new() }; 6];
    let i = Arch::ALL.iter().position(|&a| a == arch).unwrap();
    MODELS[i].get_or_init(|| build(arch, &ZooConfig::new(arch)).unwrap())
}

fn op_counts(g: &Graph) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for op in &g.ops {
        *counts.entry(op.kind.name()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

/// Float32 parameters: the weights and biases (int32 shape/axis/padding operands
/// excluded).
fn f32_params(g: &Graph) -> usize {
    g.tensors
        .iter()
        .filter(|t| t.is_constant() && t.dtype == DType::F32)
        .map(|t| t.num_elements())
        .sum()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

fn out_len(input: usize, k: usize, stride: usize, padding: Padding) -> usize {
    match padding {
        Padding::Same => input.div_ceil(stride),
        Padding::Valid => {
            assert!(input >= k, "VALID window {k} larger than input {input}");
            (input - k) / stride + 1
        }
    }
}

/// Re-derive every operator's output shape from its inputs and options, and check
/// the weight layouts (OHWI conv, [1,kh,kw,C] depthwise, [O] bias), dtypes, and that
/// the ops are in execution order.
fn check_shapes(m: &Model) {
    let g = m.main();
    let mut ready = vec![false; g.tensors.len()];
    for &i in &g.inputs {
        ready[i] = true;
    }
    for (ti, t) in g.tensors.iter().enumerate() {
        assert!(!t.shape.is_empty(), "tensor {ti} '{}' has no shape", t.name);
        if t.is_constant() {
            ready[ti] = true;
        } else {
            assert_eq!(t.dtype, DType::F32, "activation '{}'", t.name);
        }
    }
    for (oi, op) in g.ops.iter().enumerate() {
        let ins: Vec<usize> = op
            .inputs
            .iter()
            .map(|i| i.expect("no optional inputs"))
            .collect();
        for &i in &ins {
            assert!(
                ready[i],
                "op {oi} reads '{}' before it is produced",
                g.tensors[i].name
            );
        }
        assert_eq!(op.outputs.len(), 1);
        let out = &g.tensors[op.outputs[0]];
        assert!(!out.is_constant());
        assert!(!ready[op.outputs[0]], "'{}' produced twice", out.name);
        ready[op.outputs[0]] = true;
        let x = &g.tensors[ins[0]].shape;
        let expect: Vec<usize> = match &op.kind {
            OpKind::Conv2D(o) => {
                let (w, b) = (&g.tensors[ins[1]], &g.tensors[ins[2]]);
                assert_eq!(w.shape.len(), 4);
                assert_eq!(w.shape[3], x[3], "conv '{}' filter in-channels", out.name);
                assert_eq!(b.shape, vec![w.shape[0]]);
                assert_eq!((w.dtype, b.dtype), (DType::F32, DType::F32));
                assert_eq!((o.stride_h, o.dilation_h, o.dilation_w), (o.stride_w, 1, 1));
                vec![
                    x[0],
                    out_len(x[1], w.shape[1], o.stride_h, o.padding),
                    out_len(x[2], w.shape[2], o.stride_w, o.padding),
                    w.shape[0],
                ]
            }
            OpKind::DepthwiseConv2D(o) => {
                let (w, b) = (&g.tensors[ins[1]], &g.tensors[ins[2]]);
                assert_eq!(w.shape[0], 1);
                assert_eq!(w.shape[3], x[3] * o.depth_multiplier);
                assert_eq!(b.shape, vec![w.shape[3]]);
                vec![
                    x[0],
                    out_len(x[1], w.shape[1], o.stride_h, o.padding),
                    out_len(x[2], w.shape[2], o.stride_w, o.padding),
                    w.shape[3],
                ]
            }
            OpKind::AveragePool2D(o) | OpKind::MaxPool2D(o) => vec![
                x[0],
                out_len(x[1], o.filter_h, o.stride_h, o.padding),
                out_len(x[2], o.filter_w, o.stride_w, o.padding),
                x[3],
            ],
            OpKind::Add { .. } | OpKind::Mul { .. } => {
                let y = &g.tensors[ins[1]].shape;
                // Same shape, or a per-channel constant broadcast over NHWC.
                assert!(y == x || (y.len() == 1 && y[0] == x[3]), "{x:?} vs {y:?}");
                x.clone()
            }
            OpKind::Concatenation { axis, .. } => {
                assert_eq!(*axis, 3);
                let mut s = x.clone();
                s[3] = ins.iter().map(|&i| g.tensors[i].shape[3]).sum();
                for &i in &ins {
                    assert_eq!(g.tensors[i].shape[..3], x[..3]);
                }
                s
            }
            OpKind::Pad => {
                let p = g.tensors[ins[1]].data_i32().expect("int32 paddings");
                assert_eq!(p.len(), 8);
                (0..4)
                    .map(|d| x[d] + p[2 * d] as usize + p[2 * d + 1] as usize)
                    .collect()
            }
            OpKind::Mean { keep_dims } => {
                assert!(keep_dims);
                assert_eq!(g.tensors[ins[1]].data_i32(), Some(vec![1, 2]));
                vec![x[0], 1, 1, x[3]]
            }
            OpKind::Reshape { new_shape } => {
                let s = g.tensors[ins[1]].data_i32().expect("int32 shape");
                assert_eq!(new_shape.as_ref(), Some(&s));
                let s: Vec<usize> = s.iter().map(|&d| d as usize).collect();
                assert_eq!(s.iter().product::<usize>(), x.iter().product::<usize>());
                s
            }
            OpKind::Softmax { beta } => {
                assert_eq!(*beta, 1.0);
                x.clone()
            }
            other => panic!("unexpected op {}", other.name()),
        };
        assert_eq!(
            out.shape,
            expect,
            "op {oi} {} -> '{}'",
            op.kind.name(),
            out.name
        );
    }
    for &o in &g.outputs {
        assert!(ready[o]);
    }
    let mut names: Vec<&str> = g.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "tensor names are not unique");
}

#[test]
fn arch_names_round_trip() {
    for a in Arch::ALL {
        assert_eq!(Arch::parse(a.name()).unwrap(), a);
    }
    assert_eq!(Arch::MobilenetV1.default_resolution(), 224);
    assert_eq!(Arch::MobilenetV2.default_resolution(), 224);
    assert_eq!(Arch::InceptionV3.default_resolution(), 299);
    assert_eq!(Arch::ResnetV2_101.default_resolution(), 224);
    assert_eq!(Arch::ResnetV2_152.default_resolution(), 224);
    assert!(Arch::parse("resnet_v2_18").is_err());
    let d = ZooConfig::default();
    assert_eq!((d.width, d.num_classes, d.seed), (1.0, 1001, 0));
}

#[test]
fn mobilenets_match_coral_operator_tables() {
    let v1 = counts(&[
        ("CONV_2D", 15),
        ("DEPTHWISE_CONV_2D", 13),
        ("AVERAGE_POOL_2D", 1),
        ("RESHAPE", 1),
        ("SOFTMAX", 1),
    ]);
    for (w, r) in [(1.0, 224), (0.25, 128), (0.5, 160), (0.75, 192)] {
        let m = if (w, r) == (1.0, 224) {
            published(Arch::MobilenetV1).clone()
        } else {
            build(Arch::MobilenetV1, &cfg(Arch::MobilenetV1, w, r)).unwrap()
        };
        assert_eq!(op_counts(m.main()), v1, "v1 {w} {r}");
    }
    let m = published(Arch::MobilenetV2);
    let v2 = counts(&[
        ("CONV_2D", 36),
        ("DEPTHWISE_CONV_2D", 17),
        ("ADD", 10),
        ("AVERAGE_POOL_2D", 1),
        ("RESHAPE", 1),
        ("SOFTMAX", 1),
    ]);
    assert_eq!(op_counts(m.main()), v2);
}

#[test]
fn inception_and_resnet_operator_structure() {
    let m = published(Arch::InceptionV3);
    // 94 conv+BN of slim's inception_v3_base + logits; 9 branch pools + the final one.
    let want = counts(&[
        ("CONV_2D", 95),
        ("AVERAGE_POOL_2D", 10),
        ("MAX_POOL_2D", 4),
        ("CONCATENATION", 15),
        ("RESHAPE", 1),
        ("SOFTMAX", 1),
    ]);
    assert_eq!(op_counts(m.main()), want);
    let m = published(Arch::ResnetV2_101);
    // 33 units × 3 convs + 4 projection shortcuts + root + logits; 34 unfolded BNs
    // (33 preact + postnorm) as MUL + ADD; 33 residual ADDs; PAD before the root
    // and the three strided 3×3 convs; pool1 + 3 subsampling 1×1 max pools.
    let want = counts(&[
        ("CONV_2D", 105),
        ("MUL", 34),
        ("ADD", 67),
        ("PAD", 4),
        ("MAX_POOL_2D", 4),
        ("MEAN", 1),
        ("RESHAPE", 1),
        ("SOFTMAX", 1),
    ]);
    assert_eq!(op_counts(m.main()), want);
    // ResNet v2 50 / 152: 16 / 50 units of 3 convs + 4 projections + root + logits;
    // one preact BN per unit + postnorm (MUL + ADD each) and one residual ADD per unit.
    for (arch, units) in [(Arch::ResnetV2_50, 16), (Arch::ResnetV2_152, 50)] {
        let m = published(arch);
        let c = op_counts(m.main());
        assert_eq!(c["CONV_2D"], 3 * units + 4 + 2, "{}", arch.name());
        assert_eq!(c["MUL"], units + 1, "{}", arch.name());
        assert_eq!(c["ADD"], 2 * units + 1, "{}", arch.name());
        assert_eq!(c["MAX_POOL_2D"], 4, "{}", arch.name());
    }
}

/// Published parameter counts (millions) and Table 1 float32 sizes (MB = 10^6 bytes:
/// with 2^20 every size would be ~4.6% off the parameter counts).
const PUBLISHED: [(Arch, f64, f64); 4] = [
    (Arch::MobilenetV1, 4.24, 16.9),
    (Arch::MobilenetV2, 3.47, 14.0),
    (Arch::InceptionV3, 23.9, 95.7),
    (Arch::ResnetV2_101, 44.6, 178.3),
];

#[test]
fn parameter_counts_and_sizes_match_published() {
    for (arch, mparams, mbytes) in PUBLISHED {
        let m = published(arch);
        let g = m.main();
        let p = f32_params(g);
        // Graph::param_count (what `inspect` reports) counts exactly the weights.
        assert_eq!(g.param_count(), p);
        let e = rel(p as f64, mparams * 1e6);
        eprintln!(
            "{}: {p} float32 parameters ({:.2}% off {mparams} M)",
            arch.name(),
            100.0 * e
        );
        assert!(e < 0.01, "{}: {p} params vs {mparams} M", arch.name());
        // A float32 .tflite is 4 bytes per parameter plus a few KB of structure.
        let size = 4 * p + 64 * g.tensors.len() + 32 * g.ops.len();
        let e = rel(size as f64, mbytes * 1e6);
        assert!(e < 0.02, "{}: ~{size} bytes vs {mbytes} MB", arch.name());
        assert!(rel(size as f64, mbytes * 1048576.0) > 0.03);
    }
}

#[test]
fn exact_parameter_counts() {
    // Regression guard: the architecture arithmetic must not drift.
    for (arch, want) in [
        (Arch::MobilenetV1, 4_222_057),
        (Arch::MobilenetV2, 3_489_097),
        (Arch::InceptionV3, 23_819_401),
        (Arch::ResnetV2_101, 44_563_689),
        (Arch::ResnetV2_50, 25_562_857),
        (Arch::ResnetV2_152, 60_215_017),
    ] {
        let m = published(arch);
        assert_eq!(f32_params(m.main()), want, "{}", arch.name());
    }
}

#[test]
fn every_shape_is_consistent() {
    for a in Arch::ALL {
        let m = published(a);
        m.validate().unwrap();
        check_shapes(m);
        let g = m.main();
        let r = a.default_resolution();
        assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, r, r, 3]);
        assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 1001]);
    }
    for (a, w, r) in [
        (Arch::MobilenetV2, 0.35, 96),
        (Arch::MobilenetV2, 1.4, 224),
        (Arch::MobilenetV2, 0.25, 128),
        (Arch::InceptionV3, 1.0, 75),
        (Arch::ResnetV2_101, 1.0, 97),
    ] {
        let m = build(a, &cfg(a, w, r)).unwrap();
        m.validate().unwrap();
        check_shapes(&m);
    }
}

#[test]
fn small_mobilenet_v1_variants() {
    // (width, resolution, last depth, final map, published params in M).
    for (w, r, last, map, mparams) in [(0.25, 128, 256, 4, 0.47), (0.5, 160, 512, 5, 1.32)] {
        let m = build(Arch::MobilenetV1, &cfg(Arch::MobilenetV1, w, r)).unwrap();
        m.validate().unwrap();
        check_shapes(&m);
        let g = m.main();
        assert_eq!(g.tensor(g.inputs[0]).shape, vec![1, r, r, 3]);
        assert_eq!(g.tensor(g.outputs[0]).shape, vec![1, 1001]);
        let pool = g
            .ops
            .iter()
            .find(|o| matches!(o.kind, OpKind::AveragePool2D(_)))
            .unwrap();
        assert_eq!(
            g.tensor(pool.input(0).unwrap()).shape,
            vec![1, map, map, last]
        );
        if let OpKind::AveragePool2D(o) = pool.kind {
            assert_eq!(
                (o.filter_h, o.filter_w, o.padding),
                (map, map, Padding::Valid)
            );
        }
        let p = f32_params(g);
        eprintln!("mobilenet_v1 {w} {r}: {p} parameters");
        assert!(rel(p as f64, mparams * 1e6) < 0.01, "{p}");
    }
}

#[test]
fn fused_activations_and_folded_weights() {
    use quantfarm_engine::ir::Activation;
    let m = build(Arch::MobilenetV1, &cfg(Arch::MobilenetV1, 0.25, 128)).unwrap();
    let g = m.main();
    for op in &g.ops {
        match &op.kind {
            OpKind::Conv2D(o) if op.outputs[0] != g.ops[g.ops.len() - 3].outputs[0] => {
                assert_eq!(o.activation, Activation::Relu6)
            }
            OpKind::Conv2D(o) => assert_eq!(o.activation, Activation::None), // logits
            OpKind::DepthwiseConv2D(o) => assert_eq!(o.activation, Activation::Relu6),
            _ => {}
        }
    }
    let m = published(Arch::InceptionV3);
    let relu = m
        .main()
        .ops
        .iter()
        .filter(|o| matches!(&o.kind, OpKind::Conv2D(c) if c.activation == Activation::Relu))
        .count();
    assert_eq!(relu, 94);
    // Weights: finite, non-degenerate, channels with different ranges (folded BN).
    for t in m
        .main()
        .tensors
        .iter()
        .filter(|t| t.is_constant() && t.dtype == DType::F32)
    {
        let v = t.data_f32().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
        assert!(v.iter().any(|&x| x != 0.0), "{}", t.name);
    }
}

#[test]
fn same_seed_same_bytes() {
    let c = cfg(Arch::MobilenetV2, 0.5, 160);
    let a = build(Arch::MobilenetV2, &c).unwrap();
    let b = build(Arch::MobilenetV2, &c).unwrap();
    assert_eq!(a, b);
    let other = build(Arch::MobilenetV2, &ZooConfig { seed: 1, ..c }).unwrap();
    assert_eq!(a.main().ops, other.main().ops);
    let differ = a
        .main()
        .tensors
        .iter()
        .zip(&other.main().tensors)
        .filter(|(x, y)| x.data != y.data)
        .count();
    assert!(differ > 100, "{differ}");
}

#[test]
fn unsupported_configurations_are_errors() {
    let bad = [
        (Arch::InceptionV3, 0.5, 299),
        (Arch::ResnetV2_101, 0.75, 224),
        (Arch::InceptionV3, 1.0, 74), // the VALID stem no longer fits
        (Arch::MobilenetV1, 0.0, 224),
        (Arch::MobilenetV1, f32::NAN, 224),
        (Arch::MobilenetV2, -1.0, 224),
        (Arch::MobilenetV2, 1.0, 16),
        (Arch::MobilenetV1, 1.0, 100_000),
    ];
    for (a, w, r) in bad {
        match build(a, &cfg(a, w, r)) {
            Err(quantfarm_engine::EngineError::Unsupported(msg)) => eprintln!("{msg}"),
            other => panic!("{} w {w} r {r}: {:?}", a.name(), other.map(|_| ())),
        }
    }
    let zero_classes = ZooConfig {
        num_classes: 0,
        ..ZooConfig::new(Arch::MobilenetV1)
    };
    assert!(build(Arch::MobilenetV1, &zero_classes).is_err());
    // resolution 0 = the architecture's default.
    let m = build(
        Arch::MobilenetV1,
        &ZooConfig {
            width: 0.25,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        m.main().tensor(m.main().inputs[0]).shape,
        vec![1, 224, 224, 3]
    );
}

#[test]
fn mobilenet_width_families_match_published_counts() {
    // Published parameter counts (M) of the slim checkpoints at 224; the v2 ones
    // only match with slim's rule that the last conv stays 1280 for width < 1.
    let table = [
        (Arch::MobilenetV1, 0.25, 0.47),
        (Arch::MobilenetV1, 0.5, 1.32),
        (Arch::MobilenetV1, 0.75, 2.59),
        (Arch::MobilenetV2, 0.35, 1.66),
        (Arch::MobilenetV2, 0.5, 1.95),
        (Arch::MobilenetV2, 0.75, 2.61),
        (Arch::MobilenetV2, 1.3, 5.34),
        (Arch::MobilenetV2, 1.4, 6.06),
    ];
    for (a, w, mparams) in table {
        let m = build(a, &cfg(a, w, 224)).unwrap();
        let p = f32_params(m.main());
        assert!(rel(p as f64, mparams * 1e6) < 0.01, "{} {w}: {p}", a.name());
    }
}

//! Placement: the Edge TPU compiler's own output on the compiled Coral files is the
//! ground truth; hand-made graphs check the documented rules one by one; the
//! delegates' partition limits.

mod common;

use common::Builder;
use quantfarm_devices::placement::{
    MAPPED_EDGETPU, MORE_THAN_ONE_SUBGRAPH, NOT_SUPPORTED, PARTITION_LIMIT, PARTITION_TOO_SMALL,
    UNSPECIFIED_LIMITATION, UNSUPPORTED_DTYPE,
};
use quantfarm_devices::{
    DeviceNumerics, Numerics, Placement, ProfileSet, Simulation, op_name, simulate,
};
use quantfarm_engine::ir::{
    Activation, Conv2DOptions, DType, Model, OpKind, Padding, Pool2DOptions, Tensor,
};
use quantfarm_engine::tflite::read_model_file;

fn sim(m: &Model, device: &str) -> Simulation {
    let set = common::profiles();
    simulate(m, set.get(device).expect("profile"), &set).expect("simulates")
}

fn placements(s: &Simulation) -> Vec<Placement> {
    s.ops.iter().map(|o| o.placement).collect()
}

/// (op name, output shapes) of every op, to compare a compiled file's CPU ops with
/// the ops the simulator leaves on the CPU.
fn signature(m: &Model, i: usize) -> (String, Vec<Vec<usize>>) {
    let g = m.main();
    let op = &g.ops[i];
    (
        op_name(&op.kind),
        op.outputs
            .iter()
            .map(|&t| g.tensors[t].shape.clone())
            .collect(),
    )
}

/// Every `X_edgetpu.tflite` in the shared Coral folder: the ops the compiler left
/// outside `edgetpu-custom-op` are exactly the ops placed on the CPU, in order.
#[test]
fn edgetpu_placement_equals_the_compilers_on_coral_files() {
    let Some(root) = common::shared_root() else {
        eprintln!("shared data not found: skipped");
        return;
    };
    let dir = root.join("models/coral");
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("coral folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_edgetpu.tflite"))
        .collect();
    names.sort();
    for compiled_path in names {
        let name = compiled_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let source = dir.join(name.replace("_edgetpu.tflite", ".tflite"));
        let compiled = read_model_file(&compiled_path).expect("compiled file reads");
        let model = read_model_file(&source).expect("source file reads");
        let cg = compiled.main();
        let custom = cg
            .ops
            .iter()
            .filter(
                |o| matches!(&o.kind, OpKind::Custom { code, .. } if code == "edgetpu-custom-op"),
            )
            .count();
        let truth: Vec<_> = (0..cg.ops.len())
            .filter(|&i| !matches!(&cg.ops[i].kind, OpKind::Custom { code, .. } if code == "edgetpu-custom-op"))
            .map(|i| signature(&compiled, i))
            .collect();
        for device in ["edgetpu-usb", "edgetpu-devboard"] {
            let s = sim(&model, device);
            let ours: Vec<_> = s
                .ops
                .iter()
                .filter(|o| o.placement == Placement::Cpu)
                .map(|o| signature(&model, o.index))
                .collect();
            eprintln!(
                "{name} on {device}: compiler {} ops on CPU, {custom} Edge TPU op(s); simulator {} on CPU, {} segment(s), first unmapped {:?}",
                truth.len(),
                ours.len(),
                s.segments,
                s.first_unmapped_op
            );
            assert_eq!(ours, truth, "{name}: CPU ops differ from the compiler's");
            assert_eq!(s.segments, custom, "{name}: Edge TPU subgraphs");
            assert_eq!(s.ops_on_device + truth.len(), model.main().ops.len());
            assert_eq!(s.numerics, DeviceNumerics::Exact);
            assert!(s.predicted_latency_ms.unwrap() > 0.0);
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} compiled Coral files found");
}

/// DeepLab v3 is a partial mapping: the compiler stops at the image-pooling
/// upsample (1×1 → 33×33 RESIZE_BILINEAR) and everything after it runs on the CPU.
#[test]
fn deeplab_stops_at_the_image_pooling_resize() {
    let Some(root) = common::shared_root() else {
        return;
    };
    let m = read_model_file(&root.join("models/coral/deeplabv3_mnv2_dm05_pascal_quant.tflite"))
        .unwrap();
    let s = sim(&m, "edgetpu-usb");
    let cut = s.first_unmapped_index.expect("a cut");
    assert_eq!(s.ops[cut].op, "RESIZE_BILINEAR");
    assert_eq!(s.ops[cut].reason, UNSPECIFIED_LIMITATION);
    assert!(s.ops[..cut].iter().all(|o| o.reason == MAPPED_EDGETPU));
    // Supported ops after the cut carry the compiler's "more than one subgraph".
    let after: Vec<&str> = s.ops[cut + 1..].iter().map(|o| o.reason.as_str()).collect();
    assert!(after.contains(&MORE_THAN_ONE_SUBGRAPH), "{after:?}");
    // ARG_MAX is not in the op table at all.
    let argmax = s.ops.iter().find(|o| o.op == "ARG_MAX").unwrap();
    assert_eq!(argmax.reason, NOT_SUPPORTED);
    assert!(!s.fully_mapped());
    // The fallback part is priced by the host CPU profile.
    assert!(s.breakdown.unwrap().fallback_ms > 0.0);
}

/// The hosted Coral classifiers compile fully (their `_edgetpu` files hold one
/// custom op and nothing else).
#[test]
fn coral_classifiers_map_fully() {
    let Some(root) = common::shared_root() else {
        return;
    };
    for f in [
        "mobilenet_v1_0.75_192_quant.tflite",
        "mobilenet_v2_1.0_224_quant.tflite",
        "mobilenet_v2_1.0_224_inat_bird_quant.tflite",
        "tf2_mobilenet_v2_1.0_224_ptq.tflite",
    ] {
        let m = read_model_file(&root.join("models/coral").join(f)).unwrap();
        let s = sim(&m, "edgetpu-usb");
        assert!(s.fully_mapped(), "{f}: {:?}", s.first_unmapped_op);
        assert_eq!(s.segments, 1);
    }
}

/// A small int8 graph: conv → (op under test) → conv, with the tensor shapes given.
fn conv_block(b: &mut Builder, x: usize, c_in: usize, c_out: usize, hw: usize) -> usize {
    let w = b.weights("w", &[c_out, 1, 1, c_in], 1);
    let bias = b.bias("b", c_out);
    let y = b.act("conv", &[1, hw, hw, c_out], DType::I8);
    b.op(
        OpKind::Conv2D(Conv2DOptions::default()),
        &[x, w, bias],
        &[y],
    );
    y
}

#[test]
fn float_model_is_refused_with_unsupported_data_type() {
    let m = common::zoo(quantfarm_engine::zoo::Arch::MobilenetV1, 64);
    for dev in ["edgetpu-usb", "hexagon-dsp"] {
        let s = sim(&m, dev);
        assert_eq!(s.model_numerics, Numerics::Float32);
        assert!(
            s.refused.as_deref().unwrap().contains("float32"),
            "{:?}",
            s.refused
        );
        assert_eq!(s.ops_on_device, 0);
        assert_eq!(s.segments, 0);
        assert!(s.ops.iter().all(|o| o.reason == UNSUPPORTED_DTYPE), "{dev}");
        // Priced entirely by the fallback CPU.
        let b = s.breakdown.unwrap();
        assert!((b.fallback_ms + b.overhead_ms - s.predicted_latency_ms.unwrap()).abs() < 1e-6);
    }
    // The GPU takes it, in fp16.
    let s = sim(&m, "gpu-adreno");
    assert!(s.fully_mapped());
    assert_eq!(s.numerics, DeviceNumerics::Fp16);
}

#[test]
fn unsupported_op_mid_graph_cuts_the_edgetpu_segment() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 8, 8, 4], DType::I8);
    let y = conv_block(&mut b, x, 4, 8, 8);
    // FLOOR_MOD (builtin 95) is not in the Edge TPU's table.
    let z = b.act("floormod", &[1, 8, 8, 8], DType::I8);
    let k = b.weights("k", &[1], 3);
    b.op(OpKind::UnknownBuiltin { code: 95 }, &[y, k], &[z]);
    let u = conv_block(&mut b, z, 8, 8, 8);
    let v = conv_block(&mut b, u, 8, 4, 8);
    let m = b.model(&[x], &[v]);
    let s = sim(&m, "edgetpu-usb");
    assert_eq!(
        placements(&s),
        [
            Placement::Device,
            Placement::Cpu,
            Placement::Cpu,
            Placement::Cpu
        ]
    );
    assert_eq!(s.ops[1].op, "FLOOR_MOD");
    assert_eq!(s.ops[1].reason, NOT_SUPPORTED);
    assert_eq!(s.ops[2].reason, MORE_THAN_ONE_SUBGRAPH);
    assert_eq!(s.ops[3].reason, MORE_THAN_ONE_SUBGRAPH);
    assert_eq!(s.first_unmapped_op.as_deref(), Some("FLOOR_MOD"));
    assert_eq!(s.segments, 1);
    // The delegates keep going after it: the DSP takes the later pair of convs as a
    // second partition (2 nodes), the lone first conv is below min_nodes_per_partition.
    let d = sim(&m, "hexagon-dsp");
    assert_eq!(
        placements(&d),
        [
            Placement::Cpu,
            Placement::Cpu,
            Placement::Device,
            Placement::Device
        ]
    );
    assert_eq!(d.ops[0].reason, PARTITION_TOO_SMALL);
    assert_eq!(d.segments, 1);
}

#[test]
fn five_d_tensor_is_not_mapped() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 4, 8], DType::I8);
    let y = conv_block(&mut b, x, 8, 8, 4);
    let shape = b.shape_const("shape", &[1, 2, 2, 4, 8]);
    let r = b.act("reshape5d", &[1, 2, 2, 4, 8], DType::I8);
    b.op(OpKind::Reshape { new_shape: None }, &[y, shape], &[r]);
    let shape2 = b.shape_const("shape2", &[1, 4, 4, 8]);
    let r2 = b.act("back", &[1, 4, 4, 8], DType::I8);
    b.op(OpKind::Reshape { new_shape: None }, &[r, shape2], &[r2]);
    let m = b.model(&[x], &[r2]);
    let s = sim(&m, "edgetpu-usb");
    assert_eq!(
        placements(&s),
        [Placement::Device, Placement::Cpu, Placement::Cpu]
    );
    assert_eq!(s.ops[1].reason, UNSPECIFIED_LIMITATION);
    assert!(
        s.ops[1].detail.as_deref().unwrap().contains("innermost"),
        "{:?}",
        s.ops[1].detail
    );
    // Four leading dims of 1 are fine: [1, 1, 4, 4, 8] keeps 3 dims above 1.
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 4, 8], DType::I8);
    let shape = b.shape_const("shape", &[1, 1, 4, 4, 8]);
    let r = b.act("r", &[1, 1, 4, 4, 8], DType::I8);
    b.op(OpKind::Reshape { new_shape: None }, &[x, shape], &[r]);
    let s = sim(&b.model(&[x], &[r]), "edgetpu-usb");
    assert!(s.fully_mapped());
    // The GPU refuses any rank-5 tensor.
    let s = sim(&m, "gpu-adreno");
    assert_eq!(s.ops[1].reason, UNSPECIFIED_LIMITATION);
}

#[test]
fn unequal_dilation_is_not_mapped() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 16, 16, 4], DType::I8);
    let w = b.weights("w", &[4, 3, 3, 4], 1);
    let bias = b.bias("b", 4);
    let y = b.act("y", &[1, 16, 16, 4], DType::I8);
    let opts = Conv2DOptions {
        dilation_h: 2,
        dilation_w: 1,
        ..Conv2DOptions::default()
    };
    b.op(OpKind::Conv2D(opts), &[x, w, bias], &[y]);
    let m = b.model(&[x], &[y]);
    let s = sim(&m, "edgetpu-usb");
    assert_eq!(s.ops[0].reason, UNSPECIFIED_LIMITATION);
    assert!(s.ops[0].detail.as_deref().unwrap().contains("dilation 2x1"));
    assert_eq!(s.ops_on_device, 0);
    // Equal dilation maps.
    let mut m2 = m.clone();
    if let OpKind::Conv2D(o) = &mut m2.main_mut().ops[0].kind {
        o.dilation_w = 2;
    }
    assert!(sim(&m2, "edgetpu-usb").fully_mapped());
    // Hexagon wants dilation 1 on CONV_2D.
    assert_eq!(
        sim(&m2, "hexagon-dsp").ops[0].reason,
        UNSPECIFIED_LIMITATION
    );
}

fn softmax_model(n: usize) -> Model {
    let mut b = Builder::default();
    let x = b.act("logits", &[1, n], DType::I8);
    let y = b.act("probs", &[1, n], DType::I8);
    b.op(OpKind::Softmax { beta: 1.0 }, &[x], &[y]);
    b.model(&[x], &[y])
}

#[test]
fn softmax_limit_is_16000_elements() {
    assert!(sim(&softmax_model(16000), "edgetpu-usb").fully_mapped());
    let s = sim(&softmax_model(16001), "edgetpu-usb");
    assert_eq!(s.ops[0].reason, UNSPECIFIED_LIMITATION);
    assert!(s.ops[0].detail.as_deref().unwrap().contains("16001"));
    // A 2-D softmax input (more than its innermost dimension) is refused too.
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 10], DType::I8);
    let y = b.act("y", &[1, 4, 10], DType::I8);
    b.op(OpKind::Softmax { beta: 1.0 }, &[x], &[y]);
    assert!(!sim(&b.model(&[x], &[y]), "edgetpu-usb").fully_mapped());
}

fn concat_model(constant: i8) -> Model {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 4, 8], DType::I8);
    let c = b.weights("pad", &[1, 4, 4, 8], constant);
    let y = b.act("y", &[1, 4, 4, 16], DType::I8);
    b.op(
        OpKind::Concatenation {
            axis: 3,
            activation: Activation::None,
        },
        &[x, c],
        &[y],
    );
    b.model(&[x], &[y])
}

#[test]
fn concatenation_with_a_constant_must_be_zero_padding() {
    assert!(sim(&concat_model(0), "edgetpu-usb").fully_mapped());
    let s = sim(&concat_model(7), "edgetpu-usb");
    assert_eq!(s.ops[0].reason, UNSPECIFIED_LIMITATION);
    assert!(
        s.ops[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("not all zeros")
    );
}

#[test]
fn pools_with_fused_activation_are_not_mapped() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 8, 8, 4], DType::I8);
    let y = b.act("y", &[1, 4, 4, 4], DType::I8);
    let p = Pool2DOptions {
        padding: Padding::Valid,
        stride_h: 2,
        stride_w: 2,
        filter_h: 2,
        filter_w: 2,
        activation: Activation::Relu,
    };
    b.op(OpKind::MaxPool2D(p), &[x], &[y]);
    let s = sim(&b.model(&[x], &[y]), "edgetpu-usb");
    assert_eq!(s.ops[0].reason, UNSPECIFIED_LIMITATION);
}

/// A full-integer model with float I/O: the input QUANTIZE stays on the CPU in front
/// of the segment (as the compiler logs it) without cutting it; the output
/// DEQUANTIZE works on a float tensor.
#[test]
fn float_io_quantize_and_dequantize_stay_on_the_cpu() {
    let mut b = Builder::default();
    let xf = b.act("x", &[1, 8, 8, 4], DType::F32);
    let xq = b.act("xq", &[1, 8, 8, 4], DType::I8);
    b.op(OpKind::Quantize, &[xf], &[xq]);
    let y = conv_block(&mut b, xq, 4, 8, 8);
    let z = conv_block(&mut b, y, 8, 8, 8);
    let out = b.act("out", &[1, 8, 8, 8], DType::F32);
    b.op(OpKind::Dequantize, &[z], &[out]);
    let m = b.model(&[xf], &[out]);
    let s = sim(&m, "edgetpu-usb");
    assert_eq!(s.model_numerics, Numerics::Int8);
    assert!(s.refused.is_none());
    assert_eq!(
        placements(&s),
        [
            Placement::Cpu,
            Placement::Device,
            Placement::Device,
            Placement::Cpu
        ]
    );
    assert_eq!(s.ops[0].reason, UNSPECIFIED_LIMITATION);
    assert_eq!(s.ops[3].reason, UNSUPPORTED_DTYPE);
    assert_eq!(s.segments, 1);
    // The DSP keeps float→int8 QUANTIZE on the CPU too (8-bit only).
    let d = sim(&m, "hexagon-dsp");
    assert_eq!(d.ops[0].placement, Placement::Cpu);
    assert_eq!(d.ops_on_device, 2);
}

#[test]
fn custom_ops_are_not_supported() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 8, 8, 4], DType::I8);
    let y = conv_block(&mut b, x, 4, 4, 8);
    let z = b.act("post", &[1, 10], DType::I8);
    b.op(
        OpKind::Custom {
            code: "TFLite_Detection_PostProcess".into(),
            options: vec![],
        },
        &[y],
        &[z],
    );
    let s = sim(&b.model(&[x], &[z]), "edgetpu-usb");
    assert_eq!(placements(&s), [Placement::Device, Placement::Cpu]);
    assert_eq!(s.ops[1].op, "CUSTOM");
    assert_eq!(s.ops[1].reason, NOT_SUPPORTED);
    assert!(
        s.ops[1]
            .detail
            .as_deref()
            .unwrap()
            .contains("TFLite_Detection_PostProcess")
    );
}

/// Hexagon: at most 4 partitions; the GPU: only the largest one.
#[test]
fn delegate_partition_limits() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 4, 4], DType::I8);
    let mut cur = x;
    // Six runs of convs separated by FLOOR_MOD ops; run lengths 2, 3, 2, 2, 2, 4.
    for (r, len) in [2, 3, 2, 2, 2, 4].into_iter().enumerate() {
        for _ in 0..len {
            cur = conv_block(&mut b, cur, 4, 4, 4);
        }
        if r < 5 {
            let k = b.weights("k", &[1], 3);
            let z = b.act("fm", &[1, 4, 4, 4], DType::I8);
            b.op(OpKind::UnknownBuiltin { code: 95 }, &[cur, k], &[z]);
            cur = z;
        }
    }
    let m = b.model(&[x], &[cur]);
    let d = sim(&m, "hexagon-dsp");
    assert_eq!(d.segments, 4);
    // Largest first: 4, 3, then the first two of the 2s; the last two 2-runs stay out.
    assert_eq!(d.ops_on_device, 4 + 3 + 2 + 2);
    assert!(d.ops.iter().any(|o| o.reason == PARTITION_LIMIT));
    let g = sim(&m, "gpu-adreno");
    assert_eq!(g.segments, 1);
    // The GPU has no FLOOR_MOD limit but no int8 FLOOR_MOD problem either: all runs
    // join through it, so the single partition holds every op.
    assert_eq!(g.ops_on_device, g.ops_total);
}

#[test]
fn int16x8_models_are_refused_by_every_accelerator() {
    let mut b = Builder::default();
    let x = b.act("x", &[1, 4, 4, 4], DType::I16);
    let w = b.weights("w", &[4, 1, 1, 4], 1);
    let bias =
        b.g.add_tensor(Tensor::constant("b", vec![4], DType::I64, vec![0; 32]));
    let y = b.act("y", &[1, 4, 4, 4], DType::I16);
    b.op(
        OpKind::Conv2D(Conv2DOptions::default()),
        &[x, w, bias],
        &[y],
    );
    let m = b.model(&[x], &[y]);
    for dev in ["edgetpu-usb", "hexagon-dsp", "gpu-adreno"] {
        let s = sim(&m, dev);
        assert_eq!(s.model_numerics, Numerics::Int16x8);
        assert!(s.refused.is_some(), "{dev}");
        assert_eq!(s.ops_on_device, 0);
        assert_ne!(s.ops[0].reason, MAPPED_EDGETPU);
    }
    // The GPU computes in float only: int16 tensors are an unsupported type.
    let s = sim(&m, "gpu-adreno");
    assert_eq!(s.ops[0].reason, UNSUPPORTED_DTYPE);
    // A CPU runs it.
    assert!(sim(&m, "pixel2-bigcore").fully_mapped());
}

#[test]
fn host_cpu_is_measured_not_predicted() {
    let set: ProfileSet = common::profiles();
    let m = softmax_model(10);
    let s = simulate(&m, set.get("cpu-host").unwrap(), &set).unwrap();
    assert_eq!(s.numerics, DeviceNumerics::HostCpu);
    assert!(s.predicted_latency_ms.is_none());
    assert!(s.fully_mapped());
}

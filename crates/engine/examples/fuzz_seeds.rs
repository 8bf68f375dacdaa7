//! Seeds for the `prepare_model` fuzz target (`fuzz/`): tiny models, each a few KiB,
//! that together reach every op family of the interpreter — a float32 image network
//! (conv, depthwise, pools, element-wise ops, concatenation, pad, resize, mean, FC,
//! softmax) quantized in every post-training mode (float16, dynamic range, int8,
//! int16x8, uint8), and a float32 network of shape and index ops.
//!
//! `cargo run --release -p quantfarm-engine --example fuzz_seeds DIR`; writes
//! `DIR/<name>.tflite` and prints one line per file.

use std::path::PathBuf;

use quantfarm_engine::ir::{
    Activation, Conv2DOptions, DType, DepthwiseConv2DOptions, FullyConnectedOptions, Graph, Model,
    Op, OpKind, Padding, Pool2DOptions, StridedSliceOptions, Tensor,
};
use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod};
use quantfarm_engine::quant::ptq::{PtqOptions, QuantMode, quantize_model};
use quantfarm_engine::tflite::write_model;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 37 + seed * 11) % 23) as f32 - 11.0) / 17.0)
        .collect()
}

fn act(g: &mut Graph, name: &str, shape: &[usize]) -> usize {
    g.add_tensor(Tensor::activation(name, shape.to_vec(), DType::F32))
}

fn op(g: &mut Graph, kind: OpKind, inputs: Vec<usize>, outputs: Vec<usize>) {
    g.add_op(Op::new(kind, inputs, outputs));
}

/// Image network: [1, 8, 8, 3] → 10 class probabilities.
fn image_model() -> Model {
    let mut g = Graph::default();
    let x = act(&mut g, "image", &[1, 8, 8, 3]);
    let w = g.add_tensor(Tensor::constant_f32(
        "conv_w",
        vec![4, 3, 3, 3],
        &values(108, 1),
    ));
    let b = g.add_tensor(Tensor::constant_f32("conv_b", vec![4], &values(4, 2)));
    let c = act(&mut g, "conv", &[1, 8, 8, 4]);
    let conv = Conv2DOptions {
        activation: Activation::Relu6,
        ..Default::default()
    };
    op(&mut g, OpKind::Conv2D(conv), vec![x, w, b], vec![c]);
    let dw = g.add_tensor(Tensor::constant_f32(
        "dw_w",
        vec![1, 3, 3, 4],
        &values(36, 3),
    ));
    let d = act(&mut g, "depthwise", &[1, 8, 8, 4]);
    let dwo = DepthwiseConv2DOptions {
        padding: Padding::Same,
        stride_h: 1,
        stride_w: 1,
        depth_multiplier: 1,
        dilation_h: 1,
        dilation_w: 1,
        activation: Activation::Relu,
    };
    op(&mut g, OpKind::DepthwiseConv2D(dwo), vec![c, dw], vec![d]);
    let s = act(&mut g, "sum", &[1, 8, 8, 4]);
    op(
        &mut g,
        OpKind::Add {
            activation: Activation::None,
            pot_scale_int16: false,
        },
        vec![c, d],
        vec![s],
    );
    let m = act(&mut g, "product", &[1, 8, 8, 4]);
    op(
        &mut g,
        OpKind::Mul {
            activation: Activation::None,
        },
        vec![s, d],
        vec![m],
    );
    let pool = Pool2DOptions {
        padding: Padding::Valid,
        stride_h: 2,
        stride_w: 2,
        filter_h: 2,
        filter_w: 2,
        activation: Activation::None,
    };
    let ap = act(&mut g, "avg", &[1, 4, 4, 4]);
    op(&mut g, OpKind::AveragePool2D(pool), vec![m], vec![ap]);
    let mp = act(&mut g, "max", &[1, 4, 4, 4]);
    op(&mut g, OpKind::MaxPool2D(pool), vec![s], vec![mp]);
    let cat = act(&mut g, "concat", &[1, 4, 4, 8]);
    op(
        &mut g,
        OpKind::Concatenation {
            axis: 3,
            activation: Activation::None,
        },
        vec![ap, mp],
        vec![cat],
    );
    let lg = act(&mut g, "logistic", &[1, 4, 4, 8]);
    op(&mut g, OpKind::Logistic, vec![cat], vec![lg]);
    let pads = g.add_tensor(Tensor::constant_i32(
        "paddings",
        vec![4, 2],
        &[0, 0, 1, 1, 1, 1, 0, 0],
    ));
    let p = act(&mut g, "padded", &[1, 6, 6, 8]);
    op(&mut g, OpKind::Pad, vec![lg, pads], vec![p]);
    let size = g.add_tensor(Tensor::constant_i32("size", vec![2], &[3, 3]));
    let r = act(&mut g, "resized", &[1, 3, 3, 8]);
    op(
        &mut g,
        OpKind::ResizeBilinear {
            align_corners: false,
            half_pixel_centers: true,
        },
        vec![p, size],
        vec![r],
    );
    let axes = g.add_tensor(Tensor::constant_i32("axes", vec![2], &[1, 2]));
    let mean = act(&mut g, "mean", &[1, 8]);
    op(
        &mut g,
        OpKind::Mean { keep_dims: false },
        vec![r, axes],
        vec![mean],
    );
    let fw = g.add_tensor(Tensor::constant_f32("fc_w", vec![10, 8], &values(80, 4)));
    let fb = g.add_tensor(Tensor::constant_f32("fc_b", vec![10], &values(10, 5)));
    let logits = act(&mut g, "logits", &[1, 10]);
    op(
        &mut g,
        OpKind::FullyConnected(FullyConnectedOptions::default()),
        vec![mean, fw, fb],
        vec![logits],
    );
    let y = act(&mut g, "probabilities", &[1, 10]);
    op(&mut g, OpKind::Softmax { beta: 1.0 }, vec![logits], vec![y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    Model::from_graph(g, "fuzz seed: image network")
}

/// Shape and index ops on a [2, 3, 4] float tensor.
fn shape_model() -> Model {
    let mut g = Graph::default();
    let x = act(&mut g, "x", &[2, 3, 4]);
    let perm = g.add_tensor(Tensor::constant_i32("perm", vec![3], &[2, 0, 1]));
    let t = act(&mut g, "transposed", &[4, 2, 3]);
    op(&mut g, OpKind::Transpose, vec![x, perm], vec![t]);
    let begin = g.add_tensor(Tensor::constant_i32("begin", vec![3], &[1, 0, 0]));
    let end = g.add_tensor(Tensor::constant_i32("end", vec![3], &[4, 2, 3]));
    let strides = g.add_tensor(Tensor::constant_i32("strides", vec![3], &[1, 1, 2]));
    let s = act(&mut g, "sliced", &[3, 2, 2]);
    op(
        &mut g,
        OpKind::StridedSlice(StridedSliceOptions::default()),
        vec![t, begin, end, strides],
        vec![s],
    );
    let idx = g.add_tensor(Tensor::constant_i32("indices", vec![2], &[2, 0]));
    let ga = act(&mut g, "gathered", &[2, 2, 2]);
    op(
        &mut g,
        OpKind::Gather {
            axis: 0,
            batch_dims: 0,
        },
        vec![s, idx],
        vec![ga],
    );
    let shape = g.add_tensor(Tensor::constant_i32("shape", vec![2], &[2, 4]));
    let rs = act(&mut g, "reshaped", &[2, 4]);
    op(
        &mut g,
        OpKind::Reshape {
            new_shape: Some(vec![2, 4]),
        },
        vec![ga, shape],
        vec![rs],
    );
    let th = act(&mut g, "tanh", &[2, 4]);
    op(&mut g, OpKind::Tanh, vec![rs], vec![th]);
    let axis = g.add_tensor(Tensor::constant_i32("axis", vec![1], &[1]));
    let am = g.add_tensor(Tensor::activation("argmax", vec![2], DType::I32));
    op(
        &mut g,
        OpKind::ArgMax {
            output_type: DType::I32,
        },
        vec![th, axis],
        vec![am],
    );
    let cast = act(&mut g, "cast", &[2]);
    op(&mut g, OpKind::Cast, vec![am], vec![cast]);
    g.inputs = vec![x];
    g.outputs = vec![cast, th];
    Model::from_graph(g, "fuzz seed: shape ops")
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        std::process::exit(2);
    }
    let image = image_model();
    let mut cal = Calibrator::new(&image, 1).expect("the seed network prepares");
    for s in 0..4 {
        cal.observe(&[values(192, 10 + s)]).expect("calibration");
    }
    let mut models = vec![
        ("image_float32".to_string(), image.clone()),
        ("shape_ops_float32".to_string(), shape_model()),
    ];
    for mode in [
        QuantMode::Float16,
        QuantMode::Dynamic,
        QuantMode::Int8,
        QuantMode::Int16x8,
        QuantMode::Uint8,
    ] {
        let ranges = cal.ranges(RangeMethod::MinMax, mode.activation_grid());
        let opts = PtqOptions {
            // Quantize even the tiny weights of the seeds (dynamic range).
            dynamic_min_elements: 0,
            allow_float_fallback: true,
            ..PtqOptions::new(mode)
        };
        let (q, _) = quantize_model(&image, &opts, Some(&ranges)).expect("quantizes");
        models.push((format!("image_{}", mode.name()), q));
    }
    for (name, m) in models {
        let bytes = write_model(&m).expect("writes");
        let path = dir.join(format!("{name}.tflite"));
        if let Err(e) = std::fs::write(&path, &bytes) {
            eprintln!("error: {}: {e}", path.display());
            std::process::exit(2);
        }
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
}

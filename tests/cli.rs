//! End-to-end tests of the `quantfarm` binary on the real shared models and data.

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::*;

#[test]
fn inspect_reports_ops_params_and_io() {
    let m = coral("mobilenet_v2_1.0_224_quant.tflite");
    let v = json_of(&quantfarm(&["inspect", m.to_str().unwrap(), "--json"]));
    assert_eq!(v["ops"]["CONV_2D"], 36);
    assert_eq!(v["ops"]["DEPTHWISE_CONV_2D"], 17);
    assert_eq!(v["ops"]["ADD"], 10);
    assert_eq!(v["size_bytes"], 3_610_798);
    // Python's gzip.compress(level 6) of this file is 2,853,696 bytes; another deflate
    // implementation may choose other matches, so within 1% of it.
    let gzip = v["gzip_size_bytes"].as_f64().unwrap();
    assert!((gzip / 2_853_696.0 - 1.0).abs() < 0.01, "{gzip}");
    assert_eq!(v["inputs"][0]["name"], "input");
    assert_eq!(v["inputs"][0]["dtype"], "uint8");
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, 224, 224, 3]));
    assert_eq!(v["inputs"][0]["scale"], 0.0078125);
    assert_eq!(v["inputs"][0]["zero_point"], 128);
    assert_eq!(v["outputs"][0]["zero_point"], 0);
    // MobileNet v2 1.0 224: ~3.5 M parameters, ~300 M MACs.
    let params = v["params"].as_u64().unwrap();
    assert!((3_400_000..3_600_000).contains(&params), "{params}");
    let macs = v["macs"].as_u64().unwrap();
    assert!((290_000_000..320_000_000).contains(&macs), "{macs}");
}

#[test]
fn bad_model_files_are_one_line_errors() {
    let empty = tmp("empty.tflite");
    std::fs::write(&empty, b"").unwrap();
    let garbage = tmp("garbage.tflite");
    std::fs::write(
        &garbage,
        (0..5000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let truncated = tmp("truncated.tflite");
    let bytes = std::fs::read(coral("mobilenet_v1_0.25_128_quant.tflite")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    for p in [&empty, &garbage, &truncated] {
        for cmd in ["inspect", "bench"] {
            let out = quantfarm(&[cmd, p.to_str().unwrap()]);
            assert_user_error(&out, p.file_name().unwrap().to_str().unwrap());
        }
    }
    let missing = tmp("does-not-exist.tflite");
    assert_user_error(
        &quantfarm(&["inspect", missing.to_str().unwrap()]),
        "does-not-exist.tflite",
    );
}

#[test]
fn unsupported_ops_are_one_line_errors() {
    // The Edge TPU compilation is one custom op the CPU cannot run.
    let m = coral("mobilenet_v1_0.25_128_quant_edgetpu.tflite");
    let out = quantfarm(&["bench", m.to_str().unwrap(), "--runs", "1"]);
    assert_user_error(&out, "edgetpu-custom-op");
    // A builtin the engine has no kernel for.
    let mut g = quantfarm_engine::ir::Graph::default();
    let x = g.add_tensor(quantfarm_engine::ir::Tensor::activation(
        "x",
        vec![1, 4],
        quantfarm_engine::ir::DType::F32,
    ));
    let y = g.add_tensor(quantfarm_engine::ir::Tensor::activation(
        "y",
        vec![1, 4],
        quantfarm_engine::ir::DType::F32,
    ));
    g.add_op(quantfarm_engine::ir::Op::new(
        quantfarm_engine::ir::OpKind::UnknownBuiltin { code: 150 },
        vec![x],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    let path = tmp("unknown_op.tflite");
    let model = quantfarm_engine::ir::Model::from_graph(g, "test");
    std::fs::write(
        &path,
        quantfarm_engine::tflite::write_model(&model).unwrap(),
    )
    .unwrap();
    let out = quantfarm(&["bench", path.to_str().unwrap()]);
    assert_user_error(&out, "unknown_op.tflite");
    assert_user_error(&out, "BUILTIN_150");
}

#[test]
fn quantized_models_run_with_integer_kernels() {
    let q = coral("mobilenet_v1_0.25_128_quant.tflite");
    let b = json_of(&quantfarm(&[
        "bench",
        q.to_str().unwrap(),
        "--runs",
        "3",
        "--json",
    ]));
    assert!(b["median_ms"].as_f64().unwrap() > 0.0);
}

/// A float model of one 1×1 CONV_2D (16 → 24 channels) whose weights are 90% zeros.
fn sparse_conv_model() -> PathBuf {
    use quantfarm_engine::ir::{Conv2DOptions, DType, Graph, Model, Op, OpKind, Tensor};
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation("x", vec![1, 8, 8, 16], DType::F32));
    let w: Vec<f32> = (0..24 * 16)
        .map(|i| {
            if i % 10 == 3 {
                0.1 + 0.01 * (i % 7) as f32
            } else {
                0.0
            }
        })
        .collect();
    let w = g.add_tensor(Tensor::constant_f32("w", vec![24, 1, 1, 16], &w));
    let b = g.add_tensor(Tensor::constant_f32("b", vec![24], &[0.1; 24]));
    let y = g.add_tensor(Tensor::activation("y", vec![1, 8, 8, 24], DType::F32));
    let op = OpKind::Conv2D(Conv2DOptions::default());
    g.add_op(Op::new(op, vec![x, w, b], vec![y]));
    g.inputs = vec![x];
    g.outputs = vec![y];
    let path = tmp("sparse_conv.tflite");
    let model = Model::from_graph(g, "test");
    std::fs::write(
        &path,
        quantfarm_engine::tflite::write_model(&model).unwrap(),
    )
    .unwrap();
    path
}

#[test]
fn bench_runs_a_pruned_1x1_conv_sparse_unless_told_not_to() {
    let m = sparse_conv_model();
    let m = m.to_str().unwrap();
    let run = |sparse: &str| {
        json_of(&quantfarm(&[
            "bench", m, "--runs", "2", "--sparse", sparse, "--json",
        ]))
    };
    let auto = run("auto");
    assert_eq!(auto["sparse_convs"], 1, "{auto}");
    assert_eq!(auto["sparse"], "auto");
    let off = run("off");
    assert_eq!(off["sparse_convs"], 0, "{off}");
    let out = quantfarm(&["bench", m, "--runs", "2", "--layers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[sparse 1x1, 90% zeros]"), "{text}");
    assert!(text.contains("1 sparse conv(s)"), "{text}");
}

fn dequantized(name: &str, tag: &str) -> PathBuf {
    let out = tmp(&format!("{name}_{tag}_float.tflite"));
    let src = coral(&format!("{name}.tflite"));
    let v = json_of(&quantfarm(&[
        "convert",
        src.to_str().unwrap(),
        "--to",
        "float32",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert!(v["size_bytes"].as_u64().unwrap() > 0);
    out
}

#[test]
fn dequantized_mobilenet_matches_quantized_accuracy() {
    // LiteRT's reference kernels give the quantized original 45.5% top-1 on these
    // 1000 images; the float baseline must be within 1.5 points.
    let f = dequantized("mobilenet_v1_0.25_128_quant", "acc");
    let v = json_of(&quantfarm(&[
        "eval",
        f.to_str().unwrap(),
        "--dataset",
        "imagenet-sample",
        "--json",
    ]));
    assert_eq!(v["n"], 1000);
    let top1 = v["top1"].as_f64().unwrap();
    assert!((top1 - 0.455).abs() <= 0.015, "top-1 {top1}");
    assert!(v["top5"].as_f64().unwrap() > top1);
}

#[test]
fn eval_compares_with_a_baseline_model() {
    // The quantized original against its own float32 version, and against a model with
    // another input size (an error, exit 2).
    let q = coral("mobilenet_v1_0.25_128_quant.tflite");
    let f = dequantized("mobilenet_v1_0.25_128_quant", "baseline");
    let args = |base: &Path| {
        quantfarm(&[
            "eval",
            q.to_str().unwrap(),
            "--limit",
            "40",
            "--baseline",
            base.to_str().unwrap(),
            "--json",
        ])
    };
    let v = json_of(&args(&f));
    let b = &v["baseline"];
    let agree = b["top1_agreement"].as_f64().unwrap();
    let diff = b["mean_abs_diff"].as_f64().unwrap();
    assert!(agree > 0.8 && agree < 1.0 + 1e-12, "{b}");
    assert!(diff > 0.0 && diff < 1e-2, "{b}");
    assert!(b["max_abs_diff"].as_f64().unwrap() >= diff, "{b}");
    // Against itself: identical outputs.
    let v = json_of(&args(&q));
    assert_eq!(v["baseline"]["top1_agreement"], 1.0);
    assert_eq!(v["baseline"]["mean_abs_diff"], 0.0);
    let other = coral("mobilenet_v1_0.5_160_quant.tflite");
    assert_user_error(&args(&other), "baseline needs the same input shape");
}

#[test]
fn fast_and_reference_kernels_agree_on_a_whole_model() {
    let f = dequantized("mobilenet_v2_1.0_224_quant", "kernels");
    let input: Vec<u8> = (0..224 * 224 * 3)
        .flat_map(|i| (((i * 37 % 255) as f32 / 127.5) - 1.0).to_le_bytes())
        .collect();
    let inp = tmp("v2_input.bin");
    std::fs::write(&inp, &input).unwrap();
    let mut outs = Vec::new();
    for (kernels, threads) in [("reference", "1"), ("fast", "1"), ("fast", "2")] {
        let prefix = tmp(&format!("v2_{kernels}_{threads}"));
        json_of(&quantfarm(&[
            "infer",
            f.to_str().unwrap(),
            "--input-raw",
            inp.to_str().unwrap(),
            "--output-raw",
            prefix.to_str().unwrap(),
            "--kernels",
            kernels,
            "--threads",
            threads,
            "--json",
        ]));
        let bytes = std::fs::read(format!("{}.out0.bin", prefix.display())).unwrap();
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v.len(), 1001);
        let sum: f32 = v.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "softmax sums to {sum}");
        outs.push(v);
    }
    for other in &outs[1..] {
        let max_diff = outs[0]
            .iter()
            .zip(other)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "fast vs reference differ by {max_diff}");
    }
}

#[test]
fn zoo_models_build_and_run() {
    let out = tmp("mnv1_025_128.tflite");
    let v = json_of(&quantfarm(&[
        "zoo",
        "mobilenet_v1",
        "--width",
        "0.25",
        "--resolution",
        "128",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    // Same architecture as the Coral file: 0.47 M parameters.
    let params = v["params"].as_u64().unwrap();
    assert!((460_000..480_000).contains(&params), "{params}");
    let b = json_of(&quantfarm(&[
        "bench",
        out.to_str().unwrap(),
        "--runs",
        "3",
        "--warmup",
        "1",
        "--layers",
        "--json",
    ]));
    for key in ["median_ms", "p90_ms", "mean_ms"] {
        assert!(b[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert_eq!(b["runs"], 3);
    assert_eq!(b["threads"], 1);
    assert!(b["amx"].is_boolean());
    // `--layers`: one entry per op in execution order, the conv MACs adding up to the
    // model's (`inspect`'s count covers every op; conv/depthwise/FC carry all of it).
    let layers = b["layers"].as_array().expect("layers");
    let inspect = json_of(&quantfarm(&["inspect", out.to_str().unwrap(), "--json"]));
    let ops: u64 = inspect["ops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(layers.len() as u64, ops);
    let macs: u64 = layers.iter().map(|l| l["macs"].as_u64().unwrap()).sum();
    assert_eq!(macs, inspect["macs"].as_u64().unwrap());
    assert!(layers.iter().all(|l| l["ms"].as_f64().unwrap() >= 0.0));
    assert!(
        layers
            .iter()
            .any(|l| l["op"] == "CONV_2D" && l["macs"].as_u64().unwrap() > 0)
    );
}

#[test]
fn infer_checks_input_sizes() {
    let f = dequantized("mobilenet_v1_0.25_128_quant", "sizes");
    let small = tmp("small_input.bin");
    std::fs::write(&small, [0u8; 10]).unwrap();
    let out = quantfarm(&[
        "infer",
        f.to_str().unwrap(),
        "--input-raw",
        small.to_str().unwrap(),
        "--output-raw",
        tmp("x").to_str().unwrap(),
    ]);
    assert_user_error(&out, "small_input.bin");
}

/// Every count a user sets is bounded (the engine's `measure::limits`), checked before
/// the model is run: a clear one-line error and exit 2, never a huge allocation or an
/// endless loop.
#[test]
fn counts_out_of_range_are_one_line_errors() {
    let m = coral("mobilenet_v1_0.25_128_quant.tflite");
    let m = m.to_str().unwrap();
    let t = std::time::Instant::now();
    for (args, needle) in [
        (vec!["bench", m, "--runs", "0"], "runs = 0"),
        (
            vec!["bench", m, "--runs", "1000000000000"],
            "runs = 1000000000000",
        ),
        (
            vec!["bench", m, "--warmup", "18446744073709551615"],
            "warmup",
        ),
        (vec!["bench", m, "--threads", "0"], "threads = 0"),
        (vec!["bench", m, "--threads", "100000"], "threads = 100000"),
        (
            vec![
                "infer",
                m,
                "--threads",
                "1000",
                "--input-raw",
                m,
                "--output-raw",
                "/dev/null",
            ],
            "threads = 1000",
        ),
        (
            vec!["eval", m, "--dataset", "imagenet-sample", "--limit", "0"],
            "--limit = 0",
        ),
        (
            vec!["eval", m, "--dataset", "imagenet-sample", "--threads", "65"],
            "threads = 65",
        ),
        (
            vec![
                "quantize",
                m,
                "--mode",
                "dynamic",
                "-o",
                "/dev/null",
                "--threads",
                "0",
            ],
            "threads = 0",
        ),
        (
            vec![
                "quantize",
                m,
                "--mode",
                "int8",
                "-o",
                "/dev/null",
                "--calibration-size",
                "0",
            ],
            "--calibration-size = 0",
        ),
    ] {
        let out = quantfarm(&args);
        assert_user_error(&out, needle);
    }
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
}

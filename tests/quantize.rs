//! End-to-end tests of `quantfarm quantize` on a real model (the Coral MobileNet v1
//! 0.25/128, dequantized to float32 first) and the shared ImageNet sample.

mod cli_common;

use std::path::{Path, PathBuf};

use cli_common::*;
use serde_json::Value;

fn float_model(tag: &str) -> PathBuf {
    let src = shared().join("models/coral/mobilenet_v1_0.25_128_quant.tflite");
    let out = tmp(&format!("float_{tag}.tflite"));
    let o = quantfarm(&[
        "convert",
        src.to_str().unwrap(),
        "--to",
        "float32",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn quantize(model: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "quantize",
        model.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
        "--calibration-size",
        "3",
    ];
    args.extend_from_slice(extra);
    json_of(&quantfarm(&args))
}

fn inspect(model: &Path) -> Value {
    json_of(&quantfarm(&["inspect", model.to_str().unwrap(), "--json"]))
}

#[test]
fn every_mode_writes_a_readable_model() {
    let f = float_model("modes");
    let float_size = std::fs::metadata(&f).unwrap().len() as f64;
    for (mode, extra, lo, hi) in [
        ("float16", &[][..], 0.45, 0.55),
        ("dynamic", &[][..], 0.25, 0.40),
        ("int8", &[][..], 0.28, 0.36),
        (
            "int8",
            &["--io", "uint8", "--calibration-method", "mse"][..],
            0.28,
            0.36,
        ),
        (
            "int16x8",
            &["--calibration-method", "percentile"][..],
            0.28,
            0.37,
        ),
        ("uint8", &["--io", "uint8"][..], 0.25, 0.30),
    ] {
        let out = tmp(&format!("{mode}_{}.tflite", extra.len()));
        let mut args = vec!["--mode", mode];
        args.extend_from_slice(extra);
        let v = quantize(&f, &out, &args);
        let size = v["size_bytes"].as_f64().unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len() as f64);
        let ratio = size / float_size;
        assert!(ratio > lo && ratio < hi, "{mode}: size ratio {ratio}");
        assert_eq!(v["float_ops"].as_array().unwrap().len(), 0);
        let i = inspect(&out);
        assert_eq!(i["ops"]["CONV_2D"], 15, "{mode}: {i}");
        if mode.starts_with("int") || mode == "uint8" {
            assert_eq!(v["calibration"]["samples"], 3);
        }
    }
}

#[test]
fn uint8_mode_matches_the_tf1_model_size() {
    let f = float_model("u8");
    let out = tmp("u8.tflite");
    let v = quantize(&f, &out, &["--mode", "uint8", "--io", "uint8"]);
    let ours = v["size_bytes"].as_f64().unwrap();
    let theirs = std::fs::metadata(shared().join("models/coral/mobilenet_v1_0.25_128_quant.tflite"))
        .unwrap()
        .len() as f64;
    assert!((ours / theirs - 1.0).abs() < 0.02, "{ours} vs {theirs}");
    assert_eq!(v["inserted_quantize"], 0);
}

#[test]
fn clear_errors() {
    let f = float_model("err");
    let out = tmp("err.tflite");
    let (fs, os) = (f.to_str().unwrap(), out.to_str().unwrap());
    // Already-quantized input model.
    let q = shared().join("models/coral/mobilenet_v1_0.25_128_quant.tflite");
    assert_user_error(
        &quantfarm(&["quantize", q.to_str().unwrap(), "--mode", "int8", "-o", os]),
        "not a float32 model",
    );
    // Dataset slice too small.
    assert_user_error(
        &quantfarm(&[
            "quantize",
            fs,
            "--mode",
            "int8",
            "--calibration-offset",
            "999",
            "--calibration-size",
            "10",
            "-o",
            os,
        ]),
        "goes past the end",
    );
    assert_user_error(
        &quantfarm(&[
            "quantize",
            fs,
            "--mode",
            "int8",
            "--calibration",
            "nope",
            "-o",
            os,
        ]),
        "unknown dataset",
    );
    assert_user_error(
        &quantfarm(&[
            "quantize",
            fs,
            "--mode",
            "int8",
            "--calibration-method",
            "kl",
            "-o",
            os,
        ]),
        "unknown calibration method",
    );
    assert_user_error(
        &quantfarm(&[
            "quantize", fs, "--mode", "int16x8", "--io", "int8", "-o", os,
        ]),
        "--io",
    );
    assert!(!out.exists());
}

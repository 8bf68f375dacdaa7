//! Simulated device agents in a real run: latency predicted (never timed on this host)
//! on every simulator and measured on `cpu-host`, op placement from the device rules,
//! accuracy measured with each device's numerics (the exact integer kernels on the
//! Edge TPU, half-precision storage on the GPU).

mod harness_common;

use std::path::Path;
use std::process::Command;

use harness_common::bin;
use serde_json::Value;

fn run_scenario(dir: &Path, scenario: &str) -> Value {
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, scenario).unwrap();
    let out = Command::new(bin())
        .arg("run")
        .arg(&p)
        .arg("--reports")
        .arg(dir.join("reports"))
        .arg("--run-id")
        .arg("devices-test")
        .env_remove("QUANTFARM_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(dir.join("reports/devices-test/results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(v: &Value) -> &Vec<Value> {
    v["rows"].as_array().expect("rows")
}

fn row<'a>(v: &'a Value, model: &str, technique: &str, device: &str) -> &'a Value {
    rows(v)
        .iter()
        .find(|r| r["model"] == model && r["technique"] == technique && r["device"] == device)
        .unwrap_or_else(|| panic!("no row {model}/{technique} on {device}"))
}

fn top1(r: &Value) -> f64 {
    r["top1"].as_f64().expect("top1")
}

const SIX: &str =
    "cpu-host, pixel2-bigcore, edgetpu-usb, edgetpu-devboard, gpu-adreno, hexagon-dsp";

#[test]
fn harness_six_profiles_say_measured_or_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_scenario(
        dir.path(),
        &format!(
            "name: six\nmodels:\n  - name: m\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\n\
             techniques:\n  - technique: float32\n  - technique: float16\n  - technique: int8\n    \
             calibration: {{dataset: imagenet-sample, offset: 0, limit: 16}}\n\
             devices: [{SIX}]\n\
             accuracy: {{dataset: imagenet-sample, offset: 16, limit: 984}}\n\
             latency: {{warmup: 1, runs: 3, threads: 1}}\n\
             metrics: [size, latency, accuracy, mapping]\n"
        ),
    );
    let mut devices_seen = std::collections::BTreeSet::new();
    for r in rows(&v) {
        let device = r["device"].as_str().unwrap();
        if device.is_empty() {
            continue;
        }
        devices_seen.insert(device.to_string());
        assert_eq!(r["status"], "succeeded", "{r}");
        let (kind, runs) = (&r["latency_kind"], r["latency_runs"].as_u64().unwrap());
        if device == "cpu-host" {
            assert_eq!(kind, "measured", "{r}");
            assert_eq!(runs, 3, "{r}");
        } else {
            assert_eq!(kind, "predicted", "{r}");
            assert_eq!(runs, 0, "a prediction is not a timed run: {r}");
        }
        assert!(r["latency_p50_ms"].as_f64().unwrap() > 0.0, "{r}");
        let (total, on) = (
            r["ops_total"].as_u64().expect("mapping measured"),
            r["ops_on_device"].as_u64().unwrap(),
        );
        assert!(total > 0 && on <= total, "{r}");
        assert!(r["top1"].as_f64().is_some(), "{r}");
    }
    assert_eq!(devices_seen.len(), 6, "{devices_seen:?}");

    // The integer devices refuse float models: those rows are skipped with the reason.
    let skipped = v["skipped"].as_array().unwrap();
    for d in ["edgetpu-usb", "edgetpu-devboard", "hexagon-dsp"] {
        assert!(
            skipped
                .iter()
                .any(|s| s["device"] == d && s["technique"] == "float32"),
            "float32 on {d} not skipped: {skipped:?}"
        );
    }
    // The int8 model maps to the Edge TPU except its float interface (the input
    // QUANTIZE and output DEQUANTIZE stay on the CPU, as the compiler leaves them).
    let tpu = row(&v, "m", "int8", "edgetpu-usb");
    assert_eq!(
        tpu["ops_total"].as_u64().unwrap() - tpu["ops_on_device"].as_u64().unwrap(),
        2,
        "{tpu}"
    );
    // The integer kernels are exact: one top-1 for the int8 model on every device that
    // runs integer arithmetic. The GPU runs it through a float view (its float input is
    // stored in half precision before the QUANTIZE), so it may differ a little.
    let int8 = top1(row(&v, "m", "int8", "cpu-host"));
    for d in SIX.split(", ").filter(|&d| d != "gpu-adreno") {
        assert_eq!(top1(row(&v, "m", "int8", d)), int8, "int8 top-1 on {d}");
    }
    let gpu_int8 = top1(row(&v, "m", "int8", "gpu-adreno"));
    assert!(
        (gpu_int8 - int8).abs() <= 0.01,
        "int8 on gpu-adreno: {gpu_int8} vs {int8}"
    );
    // A float16 file's weight DEQUANTIZEs run once at preparation, not per inference:
    // the same predicted latency as float32.
    for d in ["pixel2-bigcore", "gpu-adreno"] {
        let (a, b) = (row(&v, "m", "float32", d), row(&v, "m", "float16", d));
        let (a, b) = (
            a["latency_p50_ms"].as_f64().unwrap(),
            b["latency_p50_ms"].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() < 1e-9 * a,
            "{d}: float32 {a} ms, float16 {b} ms"
        );
    }
    // Half-precision storage on the GPU stays within 0.3 points of float32 (984 images).
    let f32_top1 = top1(row(&v, "m", "float32", "cpu-host"));
    for t in ["float32", "float16"] {
        let gpu = top1(row(&v, "m", t, "gpu-adreno"));
        assert!(
            (gpu - f32_top1).abs() <= 0.003,
            "{t} on gpu-adreno: top-1 {gpu} vs float32 {f32_top1}"
        );
    }
}

/// The Coral MobileNets on the simulated Edge TPUs give exactly the top-1 of the
/// integer reference kernels (`quantfarm eval --kernels reference`).
#[test]
fn harness_edgetpu_accuracy_is_the_integer_reference() {
    let dir = tempfile::tempdir().unwrap();
    let models = [
        ("mnv1_025", "mobilenet_v1_0.25_128_quant.tflite", 300),
        ("mnv1_05", "mobilenet_v1_0.5_160_quant.tflite", 300),
        ("mnv2", "mobilenet_v2_1.0_224_quant.tflite", 40),
    ];
    for (name, file, limit) in models {
        let v = run_scenario(
            dir.path(),
            &format!(
                "name: coral\nmodels:\n  - name: {name}\n    file: $shared/models/coral/{file}\n\
                 techniques:\n  - technique: original\n\
                 devices: [edgetpu-usb, edgetpu-devboard]\n\
                 accuracy: {{dataset: imagenet-sample, offset: 0, limit: {limit}}}\n\
                 metrics: [accuracy, mapping]\n"
            ),
        );
        let shared = std::env::var("QUANTFARM_DATA").unwrap_or_else(|_| "../shared".into());
        let out = Command::new(bin())
            .args(["eval", "--json", "--kernels", "reference", "--limit"])
            .arg(limit.to_string())
            .arg(Path::new(&shared).join("models/coral").join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
        let reference = reference["top1"].as_f64().unwrap();
        for d in ["edgetpu-usb", "edgetpu-devboard"] {
            let r = row(&v, name, "original", d);
            assert_eq!(top1(r), reference, "{name} on {d}");
            assert_eq!(r["ops_on_device"], r["ops_total"], "{name} maps fully: {r}");
        }
        std::fs::remove_dir_all(dir.path().join("reports")).unwrap();
    }
}

//! `quantfarm run SCENARIO` end to end: embedded coordinator and local agents on
//! loopback, real engine jobs, reports, gates, and scenario errors caught up front.

mod harness_common;

use std::path::Path;
use std::process::{Command, Output};

use harness_common::bin;

fn run(dir: &Path, scenario: &str, extra: &[&str]) -> Output {
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, scenario).unwrap();
    Command::new(bin())
        .arg("run")
        .arg(&p)
        .arg("--reports")
        .arg(dir.join("reports"))
        .args(extra)
        .env_remove("QUANTFARM_TOKEN")
        .output()
        .unwrap()
}

/// (d) Malformed YAML: an error with file:line:column, nothing started.
#[test]
fn harness_malformed_yaml_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "name: bad\nmodels:\n  - name: m\n    file: [unclosed\ndevices: [cpu-host]\n",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let re_ok = err.contains("scenario.yaml:5:") || err.contains("scenario.yaml:4:");
    assert!(re_ok, "no line:column in: {err}");
    assert!(!dir.path().join("reports").exists(), "something ran");

    // A misspelt key is caught too, with its position.
    let out = run(
        dir.path(),
        "name: bad\nmodels:\n  - name: m\n    file: x.tflite\ndevices: [cpu-host]\nlatency: {runz: 3}\n",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("scenario.yaml:6:") && err.contains("runz"),
        "{err}"
    );
}

/// (d) Unknown device: a clear error naming it before anything runs.
#[test]
fn harness_unknown_device_rejected_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        "name: dev\nmodels:\n  - name: m\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host, tpu-9000]\n",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown device 'tpu-9000'"), "{err}");
    assert!(err.contains("scenario.yaml:7:"), "{err}");
    assert!(!dir.path().join("reports").exists(), "something ran");
}

const SMOKE: &str = "name: smoke-test
models:
  - name: mnv1
    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite
techniques:
  - technique: float32
devices: [cpu-host]
metrics: [size, latency, accuracy]
accuracy: {dataset: imagenet-sample, offset: 0, limit: 4}
latency: {warmup: 0, runs: 2, threads: 1}
";

/// The embedded path: real latency and accuracy rows, results.csv and results.json.
#[test]
fn harness_run_embedded_writes_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), SMOKE, &["--run-id", "r1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("mnv1") && stdout.contains("succeeded"),
        "{stdout}"
    );
    let report = dir.path().join("reports/r1");
    let csv = std::fs::read_to_string(report.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("model,technique,device,status,size_bytes"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap())
            .unwrap();
    let row = &json["rows"][0];
    assert_eq!(row["status"], "succeeded");
    assert_eq!(row["device"], "cpu-host");
    assert!(row["latency_p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(row["eval_images"].as_f64(), Some(4.0));
    let top1 = row["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1));
    let size = row["size_bytes"].as_f64().unwrap();
    assert!(size > 1e6, "float32 model expected");
    // The float32 baseline is the 8-bit file dequantized: at most 256 distinct values
    // per tensor, so gzip finds them (31% here), but it is no 8-bit file (> 25%).
    let gzip = row["gzip_size_bytes"].as_f64().unwrap();
    assert!(gzip < 0.5 * size && gzip > 0.25 * size, "{gzip} of {size}");
}

/// (e) A breached gate exits non-zero and names the gate; a passing one does not fail.
#[test]
fn harness_gate_breach_exits_nonzero_naming_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |ratio: f64| {
        format!(
            "name: gates
models:
  - name: mnv1
    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite
techniques:
  - technique: float32
  - technique: original
devices: [cpu-host]
metrics: [size]
gates:
  - name: size-budget
    technique: original
    max_size_ratio: {ratio}
"
        )
    };
    // The uint8 file is about a quarter of its float32 form.
    let out = run(dir.path(), &scenario(0.1), &["--run-id", "g1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("size-budget"), "{err}");
    assert!(dir.path().join("reports/g1/results.csv").is_file());

    let out = run(dir.path(), &scenario(0.5), &["--run-id", "g2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("size-budget"));
}

/// `baseline: previous` gates compare with the latest earlier run of the same scenario
/// in the reports folder: no data on the first run, checked on the next, and the run
/// records which run it compared with.
#[test]
fn harness_previous_run_is_the_baseline_of_previous_gates() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = |ratio: f64| {
        format!(
            "name: trend
models:
  - name: mnv1
    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite
techniques:
  - technique: float32
devices: [cpu-host]
metrics: [size]
gates:
  - name: no-growth
    max_size_ratio: {ratio}
    baseline: previous
"
        )
    };
    let out = run(dir.path(), &scenario(1.0), &["--run-id", "t1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("no-growth"), "no data on the first run: {err}");
    let out = run(dir.path(), &scenario(1.0), &["--run-id", "t2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("gate 'no-growth' passed"));
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("reports/t2/results.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["previous_run"], "t1");
    assert_eq!(json["gates"][0]["status"], "pass");
    // The same artifact must be 10% smaller than last time: fails.
    let out = run(dir.path(), &scenario(0.9), &["--run-id", "t3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-growth"));
}

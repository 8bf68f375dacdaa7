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
        "name: bad\nmodels:\n  - name: m\n    path: [unclosed\ndevices: [cpu-host]\n",
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
        "name: bad\nmodels:\n  - name: m\n    path: x.tflite\ndevices: [cpu-host]\nbench: {runz: 3}\n",
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
        "name: dev\nmodels:\n  - name: m\n    path: models/coral/mobilenet_v1_0.25_128_quant.tflite\ndevices: [cpu-host, tpu-9000]\n",
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown device \"tpu-9000\""), "{err}");
    assert!(err.contains("scenario.yaml:5:"), "{err}");
    assert!(!dir.path().join("reports").exists(), "something ran");
}

const SMOKE: &str = "name: smoke-test
models:
  - name: mnv1
    path: models/coral/mobilenet_v1_0.25_128_quant.tflite
techniques: [dequantize]
devices: [cpu-host]
dataset: imagenet-sample
limit: 4
bench: {warmup: 0, runs: 2}
";

/// The embedded path: real latency and accuracy rows, results.csv and results.json.
/// (e) A breached gate exits non-zero and names the gate.
#[test]
fn harness_run_embedded_writes_report_and_gate_breach_fails() {
    let dir = tempfile::tempdir().unwrap();
    let gate = "gates:\n  - name: size-budget\n    metric: size_bytes\n    max: 1000\n  - name: some-accuracy\n    metric: top1\n    min: 0.0\n";
    let out = run(dir.path(), &format!("{SMOKE}{gate}"), &["--run-id", "r1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "gate should fail: {stdout}\n{err}");
    assert!(err.contains("gate \"size-budget\" breached"), "{err}");
    assert!(
        !err.contains("some-accuracy"),
        "a passing gate was reported: {err}"
    );
    assert!(
        stdout.contains("mnv1") && stdout.contains("succeeded"),
        "{stdout}"
    );

    let report = dir.path().join("reports/r1");
    let csv = std::fs::read_to_string(report.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[0].starts_with("job,model,technique,device,status,size_bytes"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap())
            .unwrap();
    let row = &json["rows"][0];
    assert_eq!(row["status"], "succeeded");
    assert!(row["latency_p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(row["eval_images"].as_f64(), Some(4.0));
    let top1 = row["top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1));
    assert!(
        row["size_bytes"].as_f64().unwrap() > 1e6,
        "float32 model expected"
    );

    // Without the breaching gate the same scenario passes.
    let out = run(dir.path(), SMOKE, &["--run-id", "r2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

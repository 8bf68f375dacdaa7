//! A poisoned model — a small file whose shapes claim huge tensors — sent to a remote
//! agent over loopback: its jobs fail with the engine's memory-limit error, the run
//! ends (the client exits non-zero instead of waiting), and the same agent, still
//! alive, serves the next run.

mod harness_common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use harness_common::*;
use quantfarm_engine::ir::{Conv2DOptions, DType, Graph, Model, Op, OpKind, Tensor};

/// `[1, 50000, 50000, 3]` float image → 3×3 conv: a 1.5 KiB file claiming ~110 GB.
fn poisoned_model(path: &Path) {
    let mut g = Graph::default();
    let x = g.add_tensor(Tensor::activation(
        "image",
        vec![1, 50_000, 50_000, 3],
        DType::F32,
    ));
    let f = g.add_tensor(Tensor::constant_f32(
        "filter",
        vec![8, 3, 3, 3],
        &[0.01; 216],
    ));
    let y = g.add_tensor(Tensor::activation(
        "features",
        vec![1, 50_000, 50_000, 8],
        DType::F32,
    ));
    g.add_op(Op::new(
        OpKind::Conv2D(Conv2DOptions::default()),
        vec![x, f],
        vec![y],
    ));
    g.inputs = vec![x];
    g.outputs = vec![y];
    let bytes = quantfarm_engine::tflite::write_model(&Model::from_graph(g, "poisoned")).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `quantfarm run SCENARIO --coordinator URL`, killed (and the test failed) if it has
/// not ended after `limit`.
fn run_bounded(dir: &Path, scenario: &Path, url: &str, run_id: &str, limit: Duration) -> Output {
    let mut child = command()
        .arg("run")
        .arg(scenario)
        .args(["--coordinator", url, "--run-id", run_id])
        .arg("--token-file")
        .arg(token_file(dir))
        .arg("--reports")
        .arg(dir.join("reports"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "run {run_id} still waiting after {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn harness_poisoned_model_fails_its_jobs_and_the_agent_serves_on() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "poisoned");
    let mut agent = spawn_agent_with(
        dir.path(),
        &format!("http://127.0.0.1:{port}"),
        "poisoned-agent",
        &["--memory-limit".as_ref(), "1G".as_ref()],
    );
    let _ = client(&runtime(), port); // listening
    let url = format!("http://127.0.0.1:{port}");

    let model = dir.path().join("poisoned.tflite");
    poisoned_model(&model);
    let sc = dir.path().join("poisoned.yaml");
    // `original` only benchmarks the file; `int8` also calibrates it on the agent.
    std::fs::write(
        &sc,
        format!(
            "name: poisoned\nmodels:\n  - name: poison\n    file: {}\ntechniques:\n  - technique: original\n  - technique: int8\n    calibration: {{dataset: imagenet-sample, offset: 0, limit: 2}}\ndevices: [cpu-host]\nmetrics: [latency]\nlatency: {{warmup: 0, runs: 1, threads: 1}}\n",
            model.display()
        ),
    )
    .unwrap();
    let out = run_bounded(
        dir.path(),
        &sc,
        &url,
        "poisoned-1",
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The benchmark of the original file and the calibration of the int8 technique
    // both fail with the engine's refusal, naming the limit the agent was given.
    assert!(
        stderr.matches("above the memory limit of 1.0 GiB").count() >= 2,
        "{stderr}"
    );
    assert!(stderr.contains("model needs"), "{stderr}");
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the agent died; its log:\n{}",
        std::fs::read_to_string(dir.path().join("poisoned-agent.log")).unwrap_or_default()
    );

    // The same agent serves the next run.
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "name: good\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [latency]\nlatency: {warmup: 0, runs: 1, threads: 1}\n",
    )
    .unwrap();
    let out = run_bounded(dir.path(), &good, &url, "good-1", Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(dir.path().join("reports/good-1/results.csv")).unwrap();
    assert!(csv.contains("poisoned-agent"), "{csv}");
    assert!(agent.0.try_wait().unwrap().is_none());
}

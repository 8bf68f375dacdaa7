//! `quantfarm run --coordinator URL`, `status` and `cancel` against a separately
//! started coordinator and agent.

mod harness_common;

use std::process::Command;
use std::time::Duration;

use harness_common::*;
use quantfarm_proto::v1::JobState;

#[test]
fn harness_run_against_remote_coordinator() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "remote");
    let _agent = spawn_agent(dir.path(), port, "remote-agent");
    let _ = client(&runtime(), port); // listening
    let sc = dir.path().join("remote.yaml");
    std::fs::write(
        &sc,
        "name: remote\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [size, latency]\nlatency: {warmup: 0, runs: 1, threads: 1}\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(bin())
        .arg("run")
        .arg(&sc)
        .args(["--coordinator", &url, "--run-id", "remote-1"])
        .arg("--token-file")
        .arg(token_file(dir.path()))
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    let csv = std::fs::read_to_string(dir.path().join("reports/remote-1/results.csv")).unwrap();
    assert!(csv.contains("remote-agent"), "{csv}");

    let out = Command::new(bin())
        .args(["status", "remote-1", "--json", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finished"], true);
    // optimize, size, latency
    assert_eq!(v["jobs"].as_array().unwrap().len(), 3);

    // --watch on a finished run: one status from the stream, then the run.
    let out = Command::new(bin())
        .args([
            "status",
            "remote-1",
            "--watch",
            "--json",
            "--coordinator",
            &url,
        ])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("remote-1: 3/3 succeeded, 0 failed, 0 running"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finished"], true);
}

#[test]
fn harness_cancel_stops_a_run() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "cancel");
    let _agent = spawn_agent(dir.path(), port, "cancel-agent");
    let rt = runtime();
    let mut c = client(&rt, port);
    submit(&rt, &mut c, "long", synthetic_jobs("long", 3, 30_000));
    wait_run(&rt, port, "long", Duration::from_secs(30), |st| {
        st.jobs.iter().any(|j| j.state == JobState::Running as i32)
    });
    let out = Command::new(bin())
        .args([
            "cancel",
            "long",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 job(s) cancelled"));
    let st = wait_run(&rt, port, "long", Duration::from_secs(5), |st| st.finished);
    assert!(st.cancelled);
    assert!(
        st.jobs
            .iter()
            .all(|j| j.state == JobState::Cancelled as i32)
    );
    // The agent's slot is free again: a new job runs long before the 30 s job would end.
    submit(&rt, &mut c, "next", synthetic_jobs("next", 1, 10));
    let st = wait_run(&rt, port, "next", Duration::from_secs(10), |st| st.finished);
    assert_eq!(st.jobs[0].state, JobState::Succeeded as i32);
}

/// `run --coordinator` follows the run's status stream; when the coordinator dies
/// mid-run and comes back on the same database, it reconnects, watches again and
/// reports the finished run.
#[test]
fn harness_run_rides_out_a_coordinator_restart() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut coord = spawn_coordinator(dir.path(), port, "watch1");
    let _agent = spawn_agent(dir.path(), port, "watch-agent");
    let rt = runtime();
    let _ = client(&rt, port); // listening
    let sc = dir.path().join("watch.yaml");
    // Two latency jobs of a few seconds each, so the restart falls mid-run.
    std::fs::write(
        &sc,
        "name: watch\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\n  - technique: float16\ndevices: [cpu-host]\nmetrics: [latency]\nlatency: {warmup: 0, runs: 4000, threads: 1}\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(bin())
        .arg("run")
        .arg(&sc)
        .args(["--coordinator", &url, "--run-id", "watch-1"])
        .arg("--token-file")
        .arg(token_file(dir.path()))
        .arg("--reports")
        .arg(dir.path().join("reports"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_run(&rt, port, "watch-1", Duration::from_secs(60), |st| {
        st.jobs.iter().any(|j| j.state == JobState::Running as i32)
    });
    coord.kill();
    std::thread::sleep(Duration::from_millis(500));
    let _coord2 = spawn_coordinator(dir.path(), port, "watch2");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("succeeded").count(), 2, "{stdout}");
}

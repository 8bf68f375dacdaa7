//! Hardening of the harness (issue 10), end to end with the real binary: one
//! coordinator per database, models that are not models, agents that cannot be served,
//! cancelled and interrupted runs, closed pipes, weak tokens.

mod harness_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness_common::*;
use quantfarm_proto::v1::{CancelRunRequest, JobState};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A second coordinator on the same database is refused, naming the file and the
/// process holding it; the first goes on serving.
#[test]
fn harness_second_coordinator_on_same_database_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first = spawn_coordinator(dir.path(), port, "first");
    let rt = runtime();
    let _ = client(&rt, port);
    let out = command()
        .args([
            "coordinator",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .arg("--db")
        .arg(dir.path().join("coord.db"))
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .arg("--token-file")
        .arg(token_file(dir.path()))
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("coord.db") && err.contains("in use by another coordinator"),
        "{err}"
    );
    assert!(err.contains(&format!("process {}", first.0.id())), "{err}");
    // The first still answers.
    let mut c = client(&rt, port);
    rt.block_on(c.list_runs(quantfarm_proto::v1::ListRunsRequest {}))
        .unwrap();
}

/// The coordinator warns about a token file other users can read and a short token.
#[test]
fn harness_coordinator_warns_about_weak_tokens() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("weak.token");
    std::fs::write(&token, "short\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut child = command()
        .args([
            "coordinator",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .arg("--db")
        .arg(dir.path().join("c.db"))
        .arg("--artifacts")
        .arg(dir.path().join("a"))
        .arg("--token-file")
        .arg(&token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The warnings come before "listening"; read until then.
    let mut err = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let t = Instant::now();
    while !err.contains("listening") && t.elapsed() < Duration::from_secs(20) {
        let mut buf = [0u8; 512];
        let n = std::io::Read::read(&mut stderr, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        err.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(err.contains("weak.token") && err.contains("644"), "{err}");
    assert!(err.contains("5 bytes"), "{err}");
}

/// A scenario whose `file:` is not a TFLite model (here a text file) is refused at
/// validation with file:line:column, without echoing the file, before anything runs.
#[test]
fn harness_non_model_file_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("notes.txt");
    std::fs::write(&secret, "root:x:0:0:secret-line\nsecond line\n").unwrap();
    for key in ["file", "dequantize"] {
        let sc = dir.path().join(format!("{key}.yaml"));
        std::fs::write(
            &sc,
            format!(
                "name: notmodel\nmodels:\n  - name: m\n    {key}: {}\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [size]\n",
                secret.display()
            ),
        )
        .unwrap();
        let out = command()
            .arg("run")
            .arg(&sc)
            .arg("--reports")
            .arg(dir.path().join("reports"))
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("{key}.yaml:4:")) && err.contains("notes.txt"),
            "{err}"
        );
        assert!(err.contains("TFLite"), "{err}");
        assert!(!err.contains("root") && !err.contains("secret"), "{err}");
        assert!(!dir.path().join("reports").exists(), "nothing ran");
    }
}

/// An agent whose token is refused stops with a clear error instead of dialing
/// forever; so does one for a device no profile describes.
#[test]
fn harness_agent_with_bad_token_or_unknown_device_exits() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "agent-exit");
    let _ = client(&runtime(), port);
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    let out = command()
        .args(["agent", "--coordinator", &url, "--device", "cpu-host"])
        .env("QUANTFARM_TOKEN", "not-the-token-of-this-coordinator")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("token"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    let out = command()
        .args(["agent", "--coordinator", &url, "--device", "no-such-device"])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown device 'no-such-device'") && err.contains("cpu-host"),
        "{err}"
    );
}

/// Cancelling a run that already finished leaves it as it ended; cancelled jobs are
/// counted as cancelled (not failed), each with its reason.
#[test]
fn harness_cancel_finished_and_running_runs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "cancel");
    let _agent = spawn_agent(dir.path(), port, "agent-c");
    let rt = runtime();
    let mut c = client(&rt, port);
    submit(&rt, &mut c, "done", synthetic_jobs("done", 1, 10));
    wait_run(&rt, port, "done", Duration::from_secs(60), |st| st.finished);
    let r = rt
        .block_on(c.cancel_run(CancelRunRequest {
            run_id: "done".into(),
        }))
        .unwrap()
        .into_inner();
    assert!(r.already_finished && r.cancelled_jobs == 0, "{r:?}");
    let url = format!("http://127.0.0.1:{port}");
    let out = command()
        .args(["cancel", "done", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("already finished"));

    submit(&rt, &mut c, "slow", synthetic_jobs("slow", 3, 20_000));
    wait_run(&rt, port, "slow", Duration::from_secs(60), |st| {
        st.jobs.iter().any(|j| j.state == JobState::Running as i32)
    });
    let out = command()
        .args(["cancel", "slow", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 job(s) cancelled"),
        "{}",
        stderr_of(&out)
    );
    let out = command()
        .args(["status", "--json", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = v.as_array().unwrap();
    let done = runs.iter().find(|r| r["run_id"] == "done").unwrap();
    let slow = runs.iter().find(|r| r["run_id"] == "slow").unwrap();
    assert_eq!(
        (&done["succeeded"], &done["cancelled"]),
        (&1.into(), &0.into())
    );
    assert_eq!(
        (&slow["failed"], &slow["cancelled"]),
        (&0.into(), &3.into())
    );
    let out = command()
        .args(["status", "slow", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cancelled: the run was cancelled"), "{text}");
}

/// Printing into a closed pipe (`quantfarm status | head -0`) ends quietly: no panic.
#[test]
fn harness_closed_stdout_pipe_is_not_a_panic() {
    let m = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/models/coral/mobilenet_v1_0.25_128_quant.tflite");
    let m = std::env::var_os("QUANTFARM_DATA")
        .map(|d| {
            std::path::PathBuf::from(d).join("models/coral/mobilenet_v1_0.25_128_quant.tflite")
        })
        .unwrap_or(m);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = command()
        .arg("inspect")
        .arg(&m)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "quiet: {err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// Ctrl-C (SIGINT) during `quantfarm run` says how to resume the run.
#[test]
fn harness_interrupted_run_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("long.yaml");
    std::fs::write(
        &sc,
        "name: long\nmodels:\n  - name: mnv1\n    dequantize: $shared/models/coral/mobilenet_v1_0.25_128_quant.tflite\ntechniques:\n  - technique: float32\ndevices: [cpu-host]\nmetrics: [latency]\nlatency: {warmup: 0, runs: 100000, threads: 1}\n",
    )
    .unwrap();
    let child = command()
        .arg("run")
        .arg(&sc)
        .args(["--run-id", "long-1", "--reports"])
        .arg(dir.path().join("reports"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run exists on disk, then interrupt.
    let db = dir.path().join("reports/long-1/state/coordinator.db");
    let t = Instant::now();
    while !db.exists() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("--run-id long-1"),
        "{err}"
    );
}

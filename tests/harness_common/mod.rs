//! Shared helpers of the harness tests: processes of the real binary on loopback,
//! a gRPC client, and polling.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quantfarm_proto::auth::{Client, connect};
use quantfarm_proto::v1::{
    GetRunRequest, JobSpec, RunStatus, SubmitRunRequest, SyntheticTask, job_spec,
};

pub const TOKEN: &str = "harness-test-token-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_quantfarm")
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Tests that start coordinator processes on `free_port()` ports run one at a time:
/// the port is free when chosen but only bound when the process starts, so two tests
/// running in parallel could be handed the same port and talk to each other's coordinator.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `dir/token`, written once and atomically: a process started a moment earlier may
/// be reading it while the next one is spawned, and must never see it half-written.
pub fn token_file(dir: &Path) -> PathBuf {
    let p = dir.join("token");
    let text = format!("{TOKEN}\n");
    if std::fs::read_to_string(&p).ok().as_deref() != Some(text.as_str()) {
        let tmp = dir.join(format!("token.tmp-{}", std::process::id()));
        std::fs::write(&tmp, &text).unwrap();
        // Readable by its owner only, as a real token file should be.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::rename(&tmp, &p).unwrap();
    }
    p
}

/// The environment variables of the TLS files, removed from every child so that a
/// developer's own settings do not leak into the tests.
pub const TLS_ENV: [&str; 6] = [
    "QUANTFARM_TLS_CA",
    "QUANTFARM_TLS_CERT",
    "QUANTFARM_TLS_KEY",
    "QUANTFARM_COORDINATOR_TLS_CERT",
    "QUANTFARM_COORDINATOR_TLS_KEY",
    "QUANTFARM_COORDINATOR_TLS_CLIENT_CA",
];

/// `quantfarm` with no token or TLS settings from the environment.
pub fn command() -> Command {
    let mut c = Command::new(bin());
    c.env_remove("QUANTFARM_TOKEN");
    for v in TLS_ENV {
        c.env_remove(v);
    }
    c
}

/// `label` names the log file (coordinator-<label>.log in `dir`).
pub fn spawn_coordinator(dir: &Path, port: u16, label: &str) -> Proc {
    spawn_coordinator_with(dir, port, label, &[])
}

/// [`spawn_coordinator`] with extra arguments (e.g. the TLS files).
pub fn spawn_coordinator_with(dir: &Path, port: u16, label: &str, extra: &[&OsStr]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("coordinator-{label}.log"))).unwrap();
    let child = command()
        .args(["coordinator", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(dir.join("coord.db"))
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--token-file")
        .arg(token_file(dir))
        .args(["--lease-ms", "1500", "--heartbeat-ms", "200"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the coordinator");
    Proc(child)
}

pub fn spawn_agent(dir: &Path, port: u16, name: &str) -> Proc {
    spawn_agent_with(dir, &format!("http://127.0.0.1:{port}"), name, &[])
}

/// An agent dialing `url`, with extra arguments (e.g. the TLS files).
pub fn spawn_agent_with(dir: &Path, url: &str, name: &str, extra: &[&OsStr]) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = command()
        .args(["agent", "--coordinator", url])
        .args(["--device", "cpu-host", "--name", name])
        .arg("--cache")
        .arg(dir.join(format!("cache-{name}")))
        .arg("--token-file")
        .arg(token_file(dir))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start an agent");
    Proc(child)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Connect, retrying while the coordinator starts.
pub fn client(rt: &tokio::runtime::Runtime, port: u16) -> Client {
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    loop {
        if let Ok(c) = rt.block_on(connect(&url, TOKEN)) {
            return c;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "coordinator did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn synthetic_jobs(run: &str, n: usize, ms: u64) -> Vec<JobSpec> {
    (0..n)
        .map(|i| JobSpec {
            id: format!("{run}/job{i}"),
            requires: "cpu-host".into(),
            task: Some(job_spec::Task::Synthetic(SyntheticTask {
                duration_ms: ms as u32,
            })),
            ..Default::default()
        })
        .collect()
}

pub fn submit(rt: &tokio::runtime::Runtime, c: &mut Client, run: &str, jobs: Vec<JobSpec>) {
    rt.block_on(c.submit_run(SubmitRunRequest {
        run_id: run.into(),
        name: run.into(),
        jobs,
        scenario_yaml: String::new(),
    }))
    .expect("submit");
}

/// Poll the run until `pred` holds (reconnecting if the coordinator restarts).
pub fn wait_run(
    rt: &tokio::runtime::Runtime,
    port: u16,
    run: &str,
    timeout: Duration,
    pred: impl Fn(&RunStatus) -> bool,
) -> RunStatus {
    let t = Instant::now();
    let mut c = client(rt, port);
    loop {
        match rt.block_on(c.get_run(GetRunRequest { run_id: run.into() })) {
            Ok(r) => {
                let st = r.into_inner();
                if pred(&st) {
                    return st;
                }
                assert!(t.elapsed() < timeout, "timed out; last status: {st:#?}");
            }
            Err(e) => {
                assert!(t.elapsed() < timeout, "timed out: {e}");
                c = client(rt, port);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Rows of the results table (job id, agent, attempt) straight from SQLite.
pub fn db_results(db: &Path) -> Vec<(String, String, u32)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn
        .prepare("SELECT job_id, agent, attempt FROM results ORDER BY job_id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

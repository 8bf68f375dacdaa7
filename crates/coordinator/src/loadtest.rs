//! Load test: many simulated agents and many no-op jobs over loopback gRPC, to measure
//! what the coordinator itself costs per job (scheduling, SQLite, the stream round trip).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use quantfarm_proto::auth::connect;
use quantfarm_proto::v1::{
    AgentMessage, AgentProfile, JobResult, JobSpec, ListRunsRequest, SubmitRunRequest,
    agent_message, coordinator_message,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::{Config, Coordinator};

#[derive(Debug, Clone)]
pub struct LoadReport {
    pub agents: usize,
    pub jobs: usize,
    /// From the first agent dialing until every agent is registered.
    pub register_seconds: f64,
    /// Registrations that had to dial again (a refused or reset connection).
    pub redials: usize,
    /// From submission until the run is finished.
    pub seconds: f64,
    pub jobs_per_sec: f64,
    /// Wall-clock time per job (seconds / jobs), in milliseconds.
    pub ms_per_job: f64,
    /// CPU time of the whole process (coordinator, simulated agents and client) per
    /// job, in milliseconds: an upper bound on the coordinator's own cost that, unlike
    /// wall-clock time, does not depend on what else the machine is running.
    pub cpu_ms_per_job: Option<f64>,
}

/// User + system CPU seconds of this process so far (Linux; None elsewhere).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of those, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Start a coordinator on loopback with its store in `dir`, connect `agents` simulated
/// agents that answer every assignment at once, submit `jobs` no-op jobs and time them.
pub async fn load_test(agents: usize, jobs: usize, dir: &Path) -> Result<LoadReport> {
    let token = crate::random_token()?;
    let mut cfg = Config::new(dir.join("load.db"), dir.join("artifacts"), token.clone());
    cfg.max_attempts = 1;
    let coord = Coordinator::open(cfg)?;
    let listener = crate::listen("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(coord.serve(listener, async {
        let _ = stop_rx.await;
    }));

    let registered = Arc::new(AtomicUsize::new(0));
    let redials = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut sims = Vec::new();
    for i in 0..agents {
        let url = url.clone();
        let token = token.clone();
        let registered = registered.clone();
        let redials = redials.clone();
        let done = done.clone();
        sims.push(tokio::spawn(async move {
            // Like a real agent: a failed dial or registration is tried again.
            let mut wait = Duration::from_millis(50);
            loop {
                match sim_agent(i, &url, &token, &registered, &done).await {
                    Ok(()) => return,
                    Err(_) => {
                        redials.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
        }));
    }
    let t = Instant::now();
    while registered.load(Ordering::Relaxed) < agents {
        if t.elapsed() > Duration::from_secs(60) {
            bail!(
                "only {} of {agents} agents registered",
                registered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let register_seconds = t.elapsed().as_secs_f64();

    let mut client = connect(&url, &token).await.map_err(anyhow::Error::msg)?;
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|i| JobSpec {
            id: format!("load/{i}"),
            task: Some(quantfarm_proto::v1::job_spec::Task::Synthetic(
                Default::default(),
            )),
            requires: "sim".into(),
            ..Default::default()
        })
        .collect();
    let start = Instant::now();
    let cpu0 = process_cpu_seconds();
    client
        .submit_run(SubmitRunRequest {
            run_id: "load".into(),
            name: "load-test".into(),
            jobs: specs,
            scenario_yaml: String::new(),
        })
        .await
        .context("submit")?;
    loop {
        let runs = client
            .list_runs(ListRunsRequest {})
            .await?
            .into_inner()
            .runs;
        if runs.iter().any(|r| r.run_id == "load" && r.finished) {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!(
                "load run did not finish in 300 s ({} results)",
                done.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let _ = stop_tx.send(());
    for s in sims {
        s.abort();
    }
    let _ = server.await;
    Ok(LoadReport {
        agents,
        jobs,
        register_seconds,
        redials: redials.load(Ordering::Relaxed),
        seconds,
        jobs_per_sec: jobs as f64 / seconds,
        ms_per_job: 1e3 * seconds / jobs.max(1) as f64,
        cpu_ms_per_job: cpu.map(|c| 1e3 * c / jobs.max(1) as f64),
    })
}

async fn sim_agent(
    i: usize,
    url: &str,
    token: &str,
    registered: &AtomicUsize,
    done: &AtomicUsize,
) -> Result<()> {
    let mut client = connect(url, token).await.map_err(anyhow::Error::msg)?;
    let (tx, rx) = mpsc::channel(16);
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(AgentProfile {
            name: format!("sim-{i}"),
            device: "sim".into(),
            capabilities: vec!["sim".into()],
            slots: 1,
        })),
    })
    .await?;
    let mut inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
    while let Some(m) = inbound.next().await {
        match m?.msg {
            Some(coordinator_message::Msg::Registered(_)) => {
                registered.fetch_add(1, Ordering::Relaxed);
            }
            Some(coordinator_message::Msg::Assign(a)) => {
                let spec = a.spec.unwrap_or_default();
                tx.send(AgentMessage {
                    msg: Some(agent_message::Msg::Result(JobResult {
                        job_id: spec.id,
                        ok: true,
                        attempt: a.attempt,
                        agent: format!("sim-{i}"),
                        ..Default::default()
                    })),
                })
                .await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    Ok(())
}

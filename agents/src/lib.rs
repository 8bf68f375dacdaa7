//! quantfarm's device agent: dials the coordinator (agents sit behind NAT), registers
//! its profile, and holds one bidirectional stream for assignments, heartbeats,
//! progress and results. Jobs run on blocking threads with the engine
//! ([`jobs::run_job`]); inputs come from a cache by digest ([`artifact::Cache`]).
//!
//! The agent survives a coordinator restart: it dials again with backoff, and a
//! result that could not be sent is sent on the next connection (the coordinator
//! records each job's first result only, so a repeat is harmless).

pub mod artifact;
pub mod device;
pub mod jobs;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use quantfarm_proto::auth::{Client, call_error, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{
    AgentMessage, AgentProfile, Assignment, Heartbeat, JobResult, Progress, agent_message,
    coordinator_message,
};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::artifact::Cache;
pub use crate::device::ServedDevice;
use crate::jobs::{JobContext, run_job};

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Coordinator URL, e.g. `http://127.0.0.1:7070` or `https://farm:7070`.
    pub coordinator: String,
    pub token: String,
    /// TLS for an `https://` coordinator (CA to trust, client certificate for mTLS);
    /// plain by default.
    pub tls: ClientTls,
    /// Unique name of this agent.
    pub name: String,
    /// The device it serves: its profile's name is registered (and offered as a
    /// capability); the profile decides measured or predicted latency and placement.
    pub device: ServedDevice,
    /// Extra capabilities; `optimize` lets it run model transformations.
    pub capabilities: Vec<String>,
    /// Jobs at once (1 keeps latency measurements clean).
    pub slots: u32,
    pub cache_dir: PathBuf,
    /// Engine threads per job.
    pub threads: usize,
    /// Memory limit of every engine job in bytes: a model that needs more to read or
    /// prepare fails as a job (default: half of the machine's memory).
    pub memory_limit: u64,
    pub max_artifact_bytes: u64,
}

impl AgentConfig {
    pub fn new(
        coordinator: &str,
        token: &str,
        name: &str,
        device: ServedDevice,
        cache_dir: PathBuf,
    ) -> Self {
        Self {
            coordinator: coordinator.to_string(),
            token: token.to_string(),
            tls: ClientTls::plain(),
            name: name.to_string(),
            device,
            capabilities: vec!["optimize".to_string()],
            slots: 1,
            cache_dir,
            threads: 1,
            memory_limit: quantfarm_engine::measure::limits::default_memory_limit(),
            max_artifact_bytes: 1 << 30,
        }
    }
}

struct Shared {
    cfg: AgentConfig,
    cache: Cache,
    /// Running jobs and their cancel flags.
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    out: mpsc::UnboundedSender<AgentMessage>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run the agent until the task is dropped: connect, serve, reconnect with backoff.
/// Returns only when the coordinator refuses the agent ([`Refused`]: a wrong token or
/// a registration it rejects), with that error.
pub async fn run_agent(cfg: AgentConfig) -> Result<()> {
    if cfg.name.is_empty() {
        bail!("an agent needs a name");
    }
    let cache = Cache::new(&cfg.cache_dir)?;
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        cfg,
        cache,
        running: Mutex::new(HashMap::new()),
        out: out_tx,
    });
    let mut pending: VecDeque<AgentMessage> = VecDeque::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let r = session(&shared, &mut out_rx, &mut pending).await;
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(100);
        }
        // A refused token or registration will not get better by dialing again.
        if let Err(e) = &r
            && e.is::<Refused>()
        {
            return r.context(format!("agent {}", shared.cfg.name));
        }
        if let Err(e) = r {
            eprintln!(
                "agent {}: {e:#}; dialing again in {} ms",
                shared.cfg.name,
                backoff.as_millis()
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(3));
    }
}

async fn session(
    shared: &Arc<Shared>,
    out_rx: &mut mpsc::UnboundedReceiver<AgentMessage>,
    pending: &mut VecDeque<AgentMessage>,
) -> Result<()> {
    let cfg = &shared.cfg;
    let mut client = connect_tls(&cfg.coordinator, &cfg.token, &cfg.tls)
        .await
        .map_err(anyhow::Error::msg)?;
    let (tx, rx) = mpsc::channel::<AgentMessage>(64);
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Register(AgentProfile {
            name: cfg.name.clone(),
            device: cfg.device.name().to_string(),
            capabilities: cfg.capabilities.clone(),
            slots: cfg.slots,
        })),
    })
    .await?;
    let mut inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|e| {
            refused_or(e, |e| {
                format!("register: {}", call_error(&cfg.coordinator, &cfg.tls, e))
            })
        })?
        .into_inner();
    let heartbeat_ms = match inbound.next().await {
        Some(Ok(m)) => match m.msg {
            Some(coordinator_message::Msg::Registered(r)) => r.heartbeat_ms.max(50),
            _ => bail!("coordinator did not acknowledge the registration"),
        },
        Some(Err(e)) => {
            return Err(refused_or(e, |e| {
                format!(
                    "registration refused: {}",
                    call_error(&cfg.coordinator, &cfg.tls, e)
                )
            }));
        }
        None => bail!("coordinator closed the stream"),
    };
    // Results that did not make it out on the last connection.
    while let Some(m) = pending.pop_front() {
        if tx.send(m.clone()).await.is_err() {
            pending.push_front(m);
            bail!("stream closed while resending results");
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(heartbeat_ms as u64));
    loop {
        tokio::select! {
            m = inbound.next() => match m {
                None => bail!("coordinator closed the stream"),
                Some(Err(e)) => bail!("stream error: {}", e.message()),
                Some(Ok(m)) => match m.msg {
                    Some(coordinator_message::Msg::Assign(a)) => start_job(shared, a),
                    Some(coordinator_message::Msg::Cancel(c)) => {
                        if let Some(flag) = lock(&shared.running).get(&c.job_id) {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                },
            },
            _ = tick.tick() => {
                let running: Vec<String> = lock(&shared.running).keys().cloned().collect();
                let hb = AgentMessage { msg: Some(agent_message::Msg::Heartbeat(Heartbeat { running })) };
                if tx.send(hb).await.is_err() {
                    bail!("stream closed");
                }
            }
            Some(out) = out_rx.recv() => {
                let is_result = matches!(out.msg, Some(agent_message::Msg::Result(_)));
                if let Err(e) = tx.send(out).await
                    && is_result
                {
                    pending.push_back(e.0);
                    bail!("stream closed");
                }
            }
        }
    }
}

fn start_job(shared: &Arc<Shared>, a: Assignment) {
    let Some(spec) = a.spec.clone() else { return };
    let cancel = Arc::new(AtomicBool::new(false));
    lock(&shared.running).insert(spec.id.clone(), cancel.clone());
    let shared = shared.clone();
    tokio::spawn(async move {
        let result = execute(&shared, a, cancel).await;
        lock(&shared.running).remove(&result.job_id);
        let _ = shared.out.send(AgentMessage {
            msg: Some(agent_message::Msg::Result(result)),
        });
    });
}

/// Dial with a few retries (the coordinator may be restarting).
async fn dial(cfg: &AgentConfig) -> Result<Client> {
    let mut wait = Duration::from_millis(200);
    for _ in 0..5 {
        match connect_tls(&cfg.coordinator, &cfg.token, &cfg.tls).await {
            Ok(c) => return Ok(c),
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    connect_tls(&cfg.coordinator, &cfg.token, &cfg.tls)
        .await
        .map_err(anyhow::Error::msg)
}

async fn execute(shared: &Arc<Shared>, a: Assignment, cancel: Arc<AtomicBool>) -> JobResult {
    let spec = a.spec.clone().unwrap_or_default();
    let mut result = JobResult {
        job_id: spec.id.clone(),
        agent: shared.cfg.name.clone(),
        attempt: a.attempt,
        ..Default::default()
    };
    let started = Instant::now();
    let outcome = execute_inner(shared, &a, cancel).await;
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    match outcome {
        Ok((out, digest)) => {
            result.ok = true;
            result.size_bytes = out.size_bytes;
            result.gzip_size_bytes = out.gzip_size_bytes;
            result.latency = out.latency;
            result.accuracy = out.accuracy;
            result.placement = out.placement;
            result.output_digest = digest;
            result.logs = out.logs;
        }
        Err(e) => {
            result.ok = false;
            result.retryable = e.is::<Transfer>();
            result.error = format!("{e:#}");
        }
    }
    result
}

/// The coordinator refused this agent (wrong token, or a registration it will never
/// accept): the agent stops with the error instead of dialing forever.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// A call error as [`Refused`] when retrying cannot help (the token or the request
/// itself was refused), else as a plain error to retry on.
fn refused_or(e: tonic::Status, msg: impl Fn(&tonic::Status) -> String) -> anyhow::Error {
    match e.code() {
        tonic::Code::Unauthenticated
        | tonic::Code::PermissionDenied
        | tonic::Code::InvalidArgument => anyhow::Error::new(Refused(msg(&e))),
        _ => anyhow::anyhow!(msg(&e)),
    }
}

/// An error moving artifacts (the network or the coordinator), not the job's own.
#[derive(Debug)]
struct Transfer(String);

impl std::fmt::Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transfer {}

fn transfer(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Transfer(format!("{e:#}")))
}

async fn execute_inner(
    shared: &Arc<Shared>,
    a: &Assignment,
    cancel: Arc<AtomicBool>,
) -> Result<(jobs::JobOutput, String)> {
    let spec = a.spec.clone().unwrap_or_default();
    let cfg = &shared.cfg;
    // A malformed job fails here, before any transfer or engine work.
    jobs::validate(&spec)?;
    let input = if a.input_digest.is_empty() {
        None
    } else {
        let mut client = dial(cfg).await.map_err(transfer)?;
        Some(
            shared
                .cache
                .get(&mut client, &a.input_digest, cfg.max_artifact_bytes)
                .await
                .map_err(transfer)?,
        )
    };
    let out_tx = shared.out.clone();
    let job_id = spec.id.clone();
    let attempt = a.attempt;
    let (threads, memory_limit) = (cfg.threads, cfg.memory_limit);
    let device = cfg.device.clone();
    let output = tokio::task::spawn_blocking(move || {
        // Progress at most every 200 ms: it is for people watching, not for accounting.
        let last = Mutex::new(Instant::now() - Duration::from_secs(1));
        let progress = |fraction: f64| {
            let mut l = lock(&last);
            if l.elapsed() >= Duration::from_millis(200) {
                *l = Instant::now();
                let _ = out_tx.send(AgentMessage {
                    msg: Some(agent_message::Msg::Progress(Progress {
                        job_id: job_id.clone(),
                        attempt,
                        fraction,
                    })),
                });
            }
        };
        let ctx = JobContext {
            cancel: &cancel,
            progress: &progress,
            threads,
            memory_limit,
            device: &device,
        };
        run_job(&spec, input.as_deref(), &ctx)
    })
    .await
    .context("job thread panicked")??;
    let digest = match &output.artifact {
        Some(bytes) => {
            let mut client = dial(cfg).await.map_err(transfer)?;
            artifact::upload(&mut client, bytes.clone())
                .await
                .map_err(transfer)?
        }
        None => String::new(),
    };
    Ok((output, digest))
}

//! The embedded local farm of `quantfarm run`: a coordinator on loopback with a random
//! token, and one agent per device the scenario names, all in this process.

use anyhow::{Context, Result};
use std::sync::Arc;

use quantfarm_agent::{AgentConfig, ServedDevice, run_agent};
use quantfarm_coordinator::{Config, Coordinator, random_token};
use quantfarm_scenario::ProfileSet;
use tokio::sync::mpsc;

use crate::rundir::RunDir;

/// A running local farm; dropping it stops nothing by itself (the tasks end with the
/// runtime), so keep it alive for the run.
pub struct LocalFarm {
    pub url: String,
    pub token: String,
    _server: tokio::task::JoinHandle<Result<()>>,
    _agents: Vec<tokio::task::JoinHandle<()>>,
    /// Why an agent or the coordinator stopped (they serve until the run ends, so any
    /// message here means the run cannot finish).
    stopped: mpsc::UnboundedReceiver<String>,
}

impl LocalFarm {
    /// Start the coordinator (its database and artifacts under `dir.state()`) and one
    /// agent per device (profiles of `profiles`) with `threads` engine threads for jobs
    /// that do not set theirs, every job within `memory_limit` bytes.
    pub async fn start(
        dir: &RunDir,
        profiles: &Arc<ProfileSet>,
        devices: &[String],
        threads: usize,
        memory_limit: u64,
    ) -> Result<LocalFarm> {
        let served = devices
            .iter()
            .map(|d| ServedDevice::resolve(profiles.clone(), d))
            .collect::<Result<Vec<_>>>()?;
        let token = random_token()?;
        let state = dir.state();
        std::fs::create_dir_all(&state)
            .with_context(|| format!("{}: cannot create", state.display()))?;
        let coord = Coordinator::open(Config::new(dir.database(), dir.artifacts(), token.clone()))?;
        let listener = quantfarm_coordinator::listen("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, stopped) = mpsc::unbounded_channel();
        let server_tx = tx.clone();
        let server = tokio::spawn(async move {
            let r = coord.serve(listener, std::future::pending()).await;
            let why = match &r {
                Ok(()) => "stopped".to_string(),
                Err(e) => format!("{e:#}"),
            };
            let _ = server_tx.send(format!("the embedded coordinator {why}"));
            r
        });
        let agents = served
            .into_iter()
            .map(|device| {
                let d = device.name().to_string();
                // One cache per agent: they would race on the same files otherwise.
                let mut cfg = AgentConfig::new(
                    &url,
                    &token,
                    &format!("local-{d}"),
                    device,
                    dir.agent_cache(&d),
                );
                cfg.threads = threads;
                cfg.memory_limit = memory_limit;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let why = match run_agent(cfg).await {
                        Ok(()) => "stopped".to_string(),
                        Err(e) => format!("stopped: {e:#}"),
                    };
                    let _ = tx.send(format!("the local agent for {d} {why}"));
                })
            })
            .collect();
        Ok(LocalFarm {
            url,
            token,
            _server: server,
            _agents: agents,
            stopped,
        })
    }

    /// Resolves when the coordinator or an agent of the farm stops, with why: the run
    /// cannot finish after that, so the caller gives up instead of waiting forever.
    pub async fn stopped(&mut self) -> anyhow::Error {
        match self.stopped.recv().await {
            Some(why) => anyhow::anyhow!(why),
            None => anyhow::anyhow!("the local farm stopped"),
        }
    }
}

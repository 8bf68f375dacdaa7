//! `quantfarm agent`: a device agent that dials a coordinator and runs its jobs.

use anyhow::{Context, Result};
use quantfarm_agent::{AgentConfig, ServedDevice, run_agent};
use quantfarm_proto::tls::ClientTls;

use crate::cli::AgentArgs;
use quantfarm_harness::{read_token, runtime};

pub fn run(a: &AgentArgs) -> Result<()> {
    let token = read_token(a.token_file.as_deref())?;
    let tls = ClientTls::load(&a.coordinator, &a.tls.options()).map_err(anyhow::Error::msg)?;
    let wanted = match &a.profile {
        Some(path) => path.display().to_string(),
        None => a.device.clone(),
    };
    // An agent for a device no profile describes would idle forever (no scenario can
    // send it work), so the profile is resolved before dialing.
    let device = ServedDevice::from_dir(&a.profiles, &wanted)
        .with_context(|| format!("agent for device '{wanted}'"))?;
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", device.name(), std::process::id()));
    let cache = a
        .cache
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("quantfarm-agent-cache"));
    let mut cfg = AgentConfig::new(&a.coordinator, &token, &name, device, cache);
    cfg.tls = tls;
    cfg.threads = a.threads;
    cfg.memory_limit = a.memory.bytes();
    cfg.slots = a.slots.max(1);
    runtime()?.block_on(run_agent(cfg))
}

//! `quantfarm agent`: a device agent that dials a coordinator and runs its jobs.

use anyhow::{Context, Result};
use quantfarm_agent::{AgentConfig, run_agent};
use quantfarm_proto::tls::ClientTls;
use quantfarm_scenario::{DeviceProfile, ProfileSet};

use crate::cli::AgentArgs;
use quantfarm_harness::{read_token, runtime};

pub fn run(a: &AgentArgs) -> Result<()> {
    let token = read_token(a.token_file.as_deref())?;
    let tls = ClientTls::load(&a.coordinator, &a.tls.options()).map_err(anyhow::Error::msg)?;
    let device = match &a.profile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            DeviceProfile::parse(&text, &path.display().to_string())?.name
        }
        None => {
            // An agent for a device no profile describes would idle forever: no
            // scenario can send it work.
            let set = ProfileSet::load_dir(&a.profiles).map_err(|e| {
                anyhow::anyhow!(
                    "{e} (pass --profile FILE, or --profiles DIR holding {}.yaml)",
                    a.device
                )
            })?;
            if set.get(&a.device).is_none() {
                anyhow::bail!(
                    "unknown device '{}': expected one of the profiles in {} ({})",
                    a.device,
                    a.profiles.display(),
                    set.names().collect::<Vec<_>>().join(", ")
                );
            }
            a.device.clone()
        }
    };
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", device, std::process::id()));
    let cache = a
        .cache
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("quantfarm-agent-cache"));
    let mut cfg = AgentConfig::new(&a.coordinator, &token, &name, &device, cache);
    cfg.tls = tls;
    cfg.threads = a.threads;
    cfg.memory_limit = a.memory.bytes();
    cfg.slots = a.slots.max(1);
    runtime()?.block_on(run_agent(cfg))
}

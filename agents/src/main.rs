//! `quantfarm-agent`: a standalone device agent (the same as `quantfarm agent`).
//!
//! Usage: quantfarm-agent COORDINATOR_URL DEVICE [NAME]; DEVICE is a profile name in
//! the folder QUANTFARM_PROFILES (default `agents/profiles`) or a path to a profile
//! YAML. Token from QUANTFARM_TOKEN or the file named by QUANTFARM_TOKEN_FILE. For an `https://` coordinator:
//! QUANTFARM_TLS_CA (the CA that signed its certificate) and, for mutual TLS,
//! QUANTFARM_TLS_CERT and QUANTFARM_TLS_KEY (this agent's certificate and key).

use std::process::ExitCode;

use quantfarm_agent::{AgentConfig, ServedDevice, run_agent};
use quantfarm_proto::tls::{ClientTls, TlsOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: quantfarm-agent COORDINATOR_URL DEVICE [NAME]");
        return ExitCode::from(2);
    }
    let token = match (
        std::env::var("QUANTFARM_TOKEN"),
        std::env::var("QUANTFARM_TOKEN_FILE"),
    ) {
        (Ok(t), _) if !t.is_empty() => t,
        (_, Ok(f)) => match std::fs::read_to_string(&f) {
            Ok(t) => t.trim().to_string(),
            Err(e) => {
                eprintln!("{f}: cannot read token: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("set QUANTFARM_TOKEN or QUANTFARM_TOKEN_FILE");
            return ExitCode::from(2);
        }
    };
    let profiles = std::env::var("QUANTFARM_PROFILES").unwrap_or_else(|_| "agents/profiles".into());
    let device = match ServedDevice::from_dir(std::path::Path::new(&profiles), &args[1]) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e:#} (set QUANTFARM_PROFILES to the folder of device profiles)");
            return ExitCode::from(2);
        }
    };
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "agent".into());
    let name = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| format!("{host}-{}-{}", device.name(), std::process::id()));
    let cache = std::env::temp_dir().join("quantfarm-agent-cache");
    let mut cfg = AgentConfig::new(&args[0], &token, &name, device, cache);
    cfg.tls = match ClientTls::load(&args[0], &TlsOptions::from_env()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run_agent(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(2)
        }
    }
}

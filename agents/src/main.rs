//! `quantfarm-agent`: a standalone device agent (the same as `quantfarm agent`).
//!
//! Usage: quantfarm-agent [--memory-limit SIZE] COORDINATOR_URL DEVICE [NAME]; DEVICE
//! is a profile name in the folder QUANTFARM_PROFILES (default `agents/profiles`) or a
//! path to a profile YAML. Token from QUANTFARM_TOKEN or the file named by
//! QUANTFARM_TOKEN_FILE. The memory limit of every engine job (e.g. `4G`; also
//! QUANTFARM_MEMORY_LIMIT) defaults to half of the machine's memory. For an `https://`
//! coordinator:
//! QUANTFARM_TLS_CA (the CA that signed its certificate) and, for mutual TLS,
//! QUANTFARM_TLS_CERT and QUANTFARM_TLS_KEY (this agent's certificate and key).

use std::process::ExitCode;

use quantfarm_agent::{AgentConfig, ServedDevice, run_agent};
use quantfarm_proto::tls::{ClientTls, TlsOptions};

const USAGE: &str = "usage: quantfarm-agent [--memory-limit SIZE] COORDINATOR_URL DEVICE [NAME]";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let memory_limit = match memory_limit(&mut args) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.len() < 2 || args.len() > 3 {
        eprintln!("{USAGE}");
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
    if let Some(limit) = memory_limit {
        cfg.memory_limit = limit;
    }
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

/// Take `--memory-limit SIZE` (or `--memory-limit=SIZE`) out of `args`; else
/// QUANTFARM_MEMORY_LIMIT; `None`: the default.
fn memory_limit(args: &mut Vec<String>) -> Result<Option<u64>, String> {
    let parse = |v: &str| {
        quantfarm_engine::measure::limits::parse_size(v)
            .map(Some)
            .map_err(|e| format!("--memory-limit: {e}"))
    };
    if let Some(i) = args.iter().position(|a| a == "--memory-limit") {
        if i + 1 >= args.len() {
            return Err(format!("--memory-limit needs a SIZE (e.g. 4G)\n{USAGE}"));
        }
        let v = args.remove(i + 1);
        args.remove(i);
        return parse(&v);
    }
    if let Some(i) = args.iter().position(|a| a.starts_with("--memory-limit=")) {
        let v = args.remove(i);
        return parse(&v["--memory-limit=".len()..]);
    }
    match std::env::var("QUANTFARM_MEMORY_LIMIT") {
        Ok(v) if !v.is_empty() => parse(&v),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::memory_limit;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn memory_limit_is_taken_out_of_the_arguments() {
        let mut a = args(&["--memory-limit", "4G", "http://c:7070", "cpu-host"]);
        assert_eq!(memory_limit(&mut a), Ok(Some(4 << 30)));
        assert_eq!(a, args(&["http://c:7070", "cpu-host"]));
        let mut a = args(&["http://c:7070", "cpu-host", "--memory-limit=512M", "me"]);
        assert_eq!(memory_limit(&mut a), Ok(Some(512 << 20)));
        assert_eq!(a, args(&["http://c:7070", "cpu-host", "me"]));
        let e = memory_limit(&mut args(&["--memory-limit", "4", "u", "d"])).unwrap_err();
        assert!(e.contains("unit may be missing"), "{e}");
        let e = memory_limit(&mut args(&["u", "d", "--memory-limit"])).unwrap_err();
        assert!(e.contains("needs a SIZE"), "{e}");
    }
}

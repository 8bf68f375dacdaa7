//! `quantfarm coordinator`: serve the gRPC API on an address until interrupted, or
//! `--load-test`: measure the coordinator's own per-job cost with simulated agents.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use quantfarm_coordinator::{Config, Coordinator, ServerTls, loadtest};

use crate::cli::CoordinatorArgs;
use quantfarm_harness::{read_token, runtime, token_warnings};

pub fn run(a: &CoordinatorArgs) -> Result<()> {
    let rt = runtime()?;
    if a.load_test {
        let dir = std::env::temp_dir().join(format!("quantfarm-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let r = rt.block_on(loadtest::load_test(a.agents, a.jobs, &dir));
        let _ = std::fs::remove_dir_all(&dir);
        let r = r?;
        let cpu = r
            .cpu_ms_per_job
            .map(|c| format!(", {c:.3} ms CPU/job (coordinator + simulated agents)"))
            .unwrap_or_default();
        outln!(
            "load test: {} agents registered in {:.3} s ({} redials); {} no-op jobs in {:.3} s: \
             {:.0} jobs/s, {:.3} ms/job wall{cpu}",
            r.agents,
            r.register_seconds,
            r.redials,
            r.jobs,
            r.seconds,
            r.jobs_per_sec,
            r.ms_per_job
        );
        return Ok(());
    }
    let token = read_token(a.token_file.as_deref())?;
    let warnings = token_warnings(a.token_file.as_deref(), &token);
    let db = a.db.clone().context("--db is required")?;
    let artifacts = a.artifacts.clone().context("--artifacts is required")?;
    let mut cfg = Config::new(db, artifacts, token);
    cfg.lease_ttl = Duration::from_millis(a.lease_ms);
    cfg.heartbeat = Duration::from_millis(a.heartbeat_ms);
    cfg.max_attempts = a.max_attempts.max(1);
    cfg.tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: a.tls_client_ca.clone(),
        }),
        (None, None) if a.tls_client_ca.is_some() => {
            bail!("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        }
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together (the certificate and its private key)"),
    };
    rt.block_on(async {
        let coord = Coordinator::open(cfg)?;
        let listener = quantfarm_coordinator::listen(&a.listen).await?;
        // Once everything else is known good, so a refused start shows its one error.
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        let scheme = if coord.is_tls() { "https" } else { "http" };
        let mtls = if coord.is_mtls() {
            " (mutual TLS: client certificates required)"
        } else {
            ""
        };
        eprintln!(
            "coordinator listening on {scheme}://{}{mtls}",
            listener.local_addr()?
        );
        coord
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
}

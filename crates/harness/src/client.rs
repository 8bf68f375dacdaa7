//! Talking to a coordinator: the token, the async runtime, dialing with retries, and
//! readable job states. Shared by every network command.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use quantfarm_proto::auth::{Client, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{JobResult, JobState};

/// Token for talking to a remote coordinator: `file` if given, else `QUANTFARM_TOKEN`
/// (never a command-line argument, which other users of the machine can read).
pub fn read_token(file: Option<&Path>) -> Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read token file", f.display()))?
            .trim()
            .to_string(),
        None => std::env::var("QUANTFARM_TOKEN").unwrap_or_default(),
    };
    if token.is_empty() {
        bail!("no token: pass --token-file FILE or set QUANTFARM_TOKEN");
    }
    Ok(token)
}

/// Shortest token the coordinator accepts without a warning.
pub const MIN_TOKEN_BYTES: usize = 16;

/// What is weak about a coordinator's token: a token file other users can read, or a
/// token shorter than [`MIN_TOKEN_BYTES`]. One warning per problem, naming the file.
pub fn token_warnings(file: Option<&Path>, token: &str) -> Vec<String> {
    let mut w = Vec::new();
    #[cfg(unix)]
    if let Some(f) = file
        && let Ok(meta) = std::fs::metadata(f)
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            w.push(format!(
                "{}: the token file can be read by other users (mode {mode:03o}); `chmod 600` it",
                f.display()
            ));
        }
    }
    if token.len() < MIN_TOKEN_BYTES {
        w.push(format!(
            "the token has {} bytes: use at least {MIN_TOKEN_BYTES} random bytes \
             (e.g. `openssl rand -hex 24`)",
            token.len()
        ));
    }
    w
}

/// A runtime for the network commands (the engine itself never sees it). Two workers:
/// the machines this runs on are small, and the engine's jobs run on blocking threads.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Dial, retrying for `secs` (a coordinator may be starting or restarting). An
/// untrusted certificate fails at once: waiting will not fix it.
pub async fn connect_retrying(
    url: &str,
    token: &str,
    tls: &ClientTls,
    secs: u64,
) -> Result<Client> {
    let t = Instant::now();
    loop {
        match connect_tls(url, token, tls).await {
            Ok(c) => return Ok(c),
            Err(e) if t.elapsed() >= Duration::from_secs(secs) => return Err(anyhow!(e)),
            Err(e) if e.contains("invalid peer certificate") => return Err(anyhow!(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A job state as people read it.
pub fn job_state_name(state: i32) -> &'static str {
    match JobState::try_from(state).unwrap_or(JobState::Unspecified) {
        JobState::Unspecified => "unknown",
        JobState::Pending => "pending",
        JobState::Ready => "ready",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// Succeeded, failed or cancelled: the job will not change any more.
pub fn is_terminal(state: i32) -> bool {
    [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        .iter()
        .any(|s| *s as i32 == state)
}

/// A job result's measurements as name → value, for listings (`quantfarm status`).
pub fn result_metrics(r: &JobResult) -> Vec<(&'static str, f64)> {
    let mut m = Vec::new();
    if let Some(s) = r.size_bytes {
        m.push(("size_bytes", s as f64));
    }
    if let Some(l) = &r.latency {
        m.push(("latency_median_ms", l.median_ms));
        m.push(("latency_mean_ms", l.mean_ms));
        m.push(("latency_p90_ms", l.p90_ms));
        m.push(("latency_runs", f64::from(l.runs)));
    }
    if let Some(a) = &r.accuracy {
        m.push(("top1", a.top1));
        m.push(("top5", a.top5));
        m.push(("eval_images", a.images as f64));
    }
    if let Some(p) = &r.placement {
        m.push(("ops_total", f64::from(p.ops_total)));
        m.push(("ops_on_device", f64::from(p.ops_on_device)));
        m.push(("segments", f64::from(p.segments)));
    }
    if r.elapsed_ms > 0.0 {
        m.push(("elapsed_ms", r.elapsed_ms));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_named() {
        let dir = std::env::temp_dir().join(format!("qf-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "short\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            let w = token_warnings(Some(&f), "short");
            assert_eq!(w.len(), 2, "{w:?}");
            assert!(w[0].contains("token") && w[0].contains("644"), "{w:?}");
            assert!(w[1].contains("5 bytes"), "{w:?}");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(token_warnings(Some(&f), "0123456789abcdef").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

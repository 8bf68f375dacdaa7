//! quantfarm's coordinator: accepts runs (job DAGs) from clients, leases jobs to
//! agents whose capabilities match, and records every result exactly once.
//!
//! - [`store`]: SQLite (runs, jobs, attempts, results, agents); killing the process
//!   loses no recorded result, and [`Coordinator::open`] resumes unfinished runs;
//! - [`artifacts`]: content-addressed files, uploads verified against their sha256;
//! - [`sched`]: leases with heartbeats, bounded retries, dependencies, cancellation,
//!   round-robin across runs;
//! - [`service`]: the tonic service, behind bearer-token auth and message-size limits,
//!   optionally over TLS or mutual TLS ([`ServerTls`]).

pub mod artifacts;
pub mod loadtest;
pub mod sched;
pub mod service;
pub mod store;

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use quantfarm_proto::MAX_MESSAGE_BYTES;
use quantfarm_proto::auth::CheckToken;
use quantfarm_proto::v1::harness_server::HarnessServer;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::artifacts::ArtifactStore;
use crate::sched::Scheduler;
use crate::service::{Service, lock};

#[derive(Clone, Debug)]
pub struct Config {
    /// SQLite database file (created if missing).
    pub db: PathBuf,
    /// Artifact directory (created if missing).
    pub artifacts: PathBuf,
    /// Every client and agent must present this bearer token.
    pub token: String,
    /// A job whose agent sends nothing for this long is requeued.
    pub lease_ttl: Duration,
    /// How often agents are asked to heartbeat.
    pub heartbeat: Duration,
    /// Attempts per job when the job does not set its own.
    pub max_attempts: u32,
    pub max_artifact_bytes: u64,
    pub max_jobs_per_run: usize,
    /// Serve TLS (clients dial `https://`); plain HTTP/2 when `None`.
    pub tls: Option<ServerTls>,
}

/// The coordinator's TLS files (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    /// Certificate chain, leaf first; its names (SANs) must match the address
    /// clients dial.
    pub cert: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Mutual TLS: when set, every client and agent must present a certificate
    /// signed by this CA (on top of the token).
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// Read and check the files (a bad one is a one-line error naming it), and check
    /// that the key matches the certificate.
    pub fn load(&self) -> Result<ServerTlsConfig> {
        use quantfarm_proto::tls::{read_ca_pem, read_identity, setup_error};
        let (cert, key) = read_identity(&self.cert, &self.key).map_err(anyhow::Error::msg)?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            let pem = read_ca_pem(ca).map_err(anyhow::Error::msg)?;
            config = config.client_ca_root(Certificate::from_pem(pem));
        }
        Server::builder().tls_config(config.clone()).map_err(|e| {
            anyhow::anyhow!(
                "{}, {}: cannot set up TLS: {}",
                self.cert.display(),
                self.key.display(),
                setup_error(&e)
            )
        })?;
        Ok(config)
    }
}

impl Config {
    pub fn new(db: PathBuf, artifacts: PathBuf, token: String) -> Self {
        Self {
            db,
            artifacts,
            token,
            lease_ttl: Duration::from_secs(15),
            heartbeat: Duration::from_secs(2),
            max_attempts: 3,
            max_artifact_bytes: 1 << 30,
            max_jobs_per_run: 100_000,
            tls: None,
        }
    }
}

pub struct Coordinator {
    cfg: Config,
    sched: Arc<Mutex<Scheduler>>,
    artifacts: Arc<ArtifactStore>,
    tls: Option<ServerTlsConfig>,
}

impl Coordinator {
    /// Open (or create) the store and rebuild the scheduler from it.
    pub fn open(cfg: Config) -> Result<Self> {
        if cfg.token.is_empty() {
            anyhow::bail!("the coordinator needs a non-empty token");
        }
        // TLS files first: a bad one should not leave a fresh database behind.
        let tls = cfg.tls.as_ref().map(ServerTls::load).transpose()?;
        if let Some(dir) = cfg.db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
        }
        let store = store::Store::open(&cfg.db)?;
        let sched = Scheduler::recover(store, cfg.lease_ttl, cfg.max_attempts)?;
        let artifacts = ArtifactStore::open(&cfg.artifacts, cfg.max_artifact_bytes)
            .with_context(|| format!("{}: cannot open artifact store", cfg.artifacts.display()))?;
        Ok(Self {
            cfg,
            sched: Arc::new(Mutex::new(sched)),
            artifacts: Arc::new(artifacts),
            tls,
        })
    }

    /// Whether [`serve`](Self::serve) speaks TLS (clients dial `https://`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn is_mtls(&self) -> bool {
        self.cfg.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
    }

    /// Serve on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let mut builder = Server::builder();
        if let Some(tls) = self.tls {
            builder = builder.tls_config(tls).context("cannot set up TLS")?;
        }
        let sched = self.sched.clone();
        let period = (self.cfg.lease_ttl / 4).max(Duration::from_millis(50));
        let reaper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                lock(&sched).reap();
            }
        });
        let svc = Service {
            sched: self.sched.clone(),
            artifacts: self.artifacts.clone(),
            heartbeat_ms: self.cfg.heartbeat.as_millis().min(u32::MAX as u128) as u32,
            max_jobs_per_run: self.cfg.max_jobs_per_run,
        };
        let server = HarnessServer::new(svc)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let svc = InterceptedService::new(server, CheckToken::new(&self.cfg.token));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let r = builder
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        reaper.abort();
        r.context("gRPC server failed")
    }
}

/// Pending connections the listening socket queues before `accept` (the kernel caps it
/// at `net.core.somaxconn`, 4096 on current Linux). Tokio's default of 1024 overflowed
/// when a thousand agents dialed at once: the kernel reset the connections it could not
/// queue and 5–20% of the agents failed to register.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listen on `addr` (host:port; the first address it resolves to) with
/// [`LISTEN_BACKLOG`].
pub async fn listen(addr: &str) -> Result<TcpListener> {
    let sa = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve listen address {addr}"))?
        .next()
        .with_context(|| format!("listen address {addr} resolves to nothing"))?;
    let sock = if sa.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .with_context(|| format!("cannot listen on {addr}"))?;
    // A restarted coordinator rebinds its port at once (no TIME_WAIT wait).
    sock.set_reuseaddr(true)
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock.bind(sa)
        .with_context(|| format!("cannot listen on {addr}"))?;
    sock.listen(LISTEN_BACKLOG)
        .with_context(|| format!("cannot listen on {addr}"))
}

/// A random token for an embedded coordinator (never printed or stored).
pub fn random_token() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom for a token")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

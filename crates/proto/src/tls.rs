//! Optional TLS and mutual TLS between the coordinator and its clients and agents
//! (rustls with the ring provider, through tonic's `tls-ring` feature).
//!
//! Plain `http://` URLs dial without TLS. An `https://` URL needs the CA certificate
//! that signed the coordinator's certificate (`--tls-ca`): quantfarm trusts only that
//! CA, never the system or web roots, so a coordinator certificate from a private CA
//! (the usual case for a device farm) works and nothing else is trusted by accident.
//! A client certificate and key (`--tls-cert`, `--tls-key`) are presented to a
//! coordinator that requires mutual TLS.
//!
//! Every file is read and checked here, before anything dials or listens: a missing
//! file, a file with no PEM certificate (or key), a PEM block that is not a valid
//! certificate, or a key that does not match its certificate is a one-line error that
//! names the file.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{ClientTlsConfig, Endpoint, Identity};

/// Environment variables for the client-side files (the CLI flags win).
pub const ENV_CA: &str = "QUANTFARM_TLS_CA";
pub const ENV_CERT: &str = "QUANTFARM_TLS_CERT";
pub const ENV_KEY: &str = "QUANTFARM_TLS_KEY";

/// The client's TLS files, as given (nothing read yet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificate(s) (PEM) trusted for the coordinator's certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// From `QUANTFARM_TLS_CA`, `QUANTFARM_TLS_CERT`, `QUANTFARM_TLS_KEY` (unset or
    /// empty: none).
    pub fn from_env() -> Self {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            ca: var(ENV_CA),
            cert: var(ENV_CERT),
            key: var(ENV_KEY),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// Checked client TLS settings for one coordinator URL: none for `http://`.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    config: Option<ClientTlsConfig>,
    identity: bool,
}

impl ClientTls {
    /// Plain `http://`, no TLS.
    pub fn plain() -> Self {
        Self::default()
    }

    pub fn is_tls(&self) -> bool {
        self.config.is_some()
    }

    /// Whether a client certificate is presented (mutual TLS).
    pub fn has_identity(&self) -> bool {
        self.identity
    }

    /// Read and check the files for dialing `url`:
    /// - `https://` needs `opts.ca`; `http://` takes no TLS options (an error, rather
    ///   than silently dialing without the TLS that was asked for);
    /// - `cert` and `key` go together.
    pub fn load(url: &str, opts: &TlsOptions) -> Result<Self, String> {
        let https = url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if !https {
            if opts.is_empty() {
                return Ok(Self::plain());
            }
            return Err(format!(
                "{url}: TLS files were given (--tls-ca/--tls-cert/--tls-key or \
                 {ENV_CA}/{ENV_CERT}/{ENV_KEY}) but the coordinator URL is not https://"
            ));
        }
        let Some(ca) = &opts.ca else {
            return Err(format!(
                "{url}: an https:// coordinator needs --tls-ca FILE (or {ENV_CA}): \
                 the PEM certificate of the CA that signed the coordinator's certificate"
            ));
        };
        let roots = read_roots(ca)?;
        let mut config = ClientTlsConfig::new().trust_anchors(roots.roots);
        match (&opts.cert, &opts.key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = read_identity(cert, key)?;
                config = config.identity(Identity::from_pem(cert_pem, key_pem));
            }
            _ => {
                return Err(
                    "--tls-cert and --tls-key go together (the client certificate and its \
                     private key)"
                        .to_string(),
                );
            }
        }
        // Build the connector once now, so a key that does not match its certificate
        // is reported before any dialing.
        Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("{url}: bad coordinator address: {e}"))?
            .tls_config(config.clone())
            .map_err(|e| {
                let files = match (&opts.cert, &opts.key) {
                    (Some(c), Some(k)) => format!("{}, {}", c.display(), k.display()),
                    _ => ca.display().to_string(),
                };
                format!("{files}: cannot set up TLS: {}", setup_error(&e))
            })?;
        Ok(Self {
            config: Some(config),
            identity: opts.cert.is_some(),
        })
    }

    /// Apply to an endpoint (a no-op for plain http).
    pub fn apply(&self, endpoint: Endpoint, url: &str) -> Result<Endpoint, String> {
        match &self.config {
            None => Ok(endpoint),
            Some(c) => endpoint
                .tls_config(c.clone())
                .map_err(|e| format!("{url}: cannot set up TLS: {}", error_chain(&e))),
        }
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> String {
    format!("{}: cannot read: {e}", path.display())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| io_error(path, &e))
}

/// Every certificate in a PEM file; at least one.
fn read_certs(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
            path.display()
        ));
    }
    Ok((pem, certs))
}

/// A CA file for checking client certificates (mutual TLS), checked; its PEM bytes.
pub fn read_ca_pem(path: &Path) -> Result<Vec<u8>, String> {
    read_roots(path)?;
    read(path)
}

/// CA certificates as trust anchors; each must parse as an X.509 certificate.
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let (_, certs) = read_certs(path)?;
    let mut roots = RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        roots.add(c).map_err(|e| {
            format!(
                "{}: certificate {} is not a valid CA certificate: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(roots)
}

/// A certificate chain and its private key, both checked, as PEM bytes (whether the
/// key matches the certificate is checked when rustls builds its configuration).
pub fn read_identity(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (cert_pem, certs) = read_certs(cert)?;
    for (i, c) in certs.iter().enumerate() {
        // Leaf and intermediates must at least be well-formed X.509.
        webpki_check(c).map_err(|e| {
            format!(
                "{}: certificate {} is not a valid X.509 certificate: {e}",
                cert.display(),
                i + 1
            )
        })?;
    }
    let key_pem = read(key)?;
    match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(_) => {}
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(format!(
                "{}: no PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC) found",
                key.display()
            ));
        }
        Err(e) => return Err(format!("{}: bad PEM: {e}", key.display())),
    }
    Ok((cert_pem, key_pem))
}

/// Parse a certificate the way rustls will (as a trust anchor: only the structure
/// and the public key are looked at, not the signature).
fn webpki_check(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let mut store = RootCertStore::empty();
    store.add(cert.clone().into_owned())
}

/// Why rustls refused a configuration, on one line; a key that is not the
/// certificate's is said so plainly.
pub fn setup_error(e: &(dyn std::error::Error + 'static)) -> String {
    let chain = error_chain(e);
    if chain.contains("KeyMismatch") {
        "the private key does not match the certificate".to_string()
    } else {
        chain
    }
}

/// `e` and its sources on one line (tonic's transport errors say little on the top).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_without_options_is_plain() {
        let t = ClientTls::load("http://127.0.0.1:1", &TlsOptions::default()).unwrap();
        assert!(!t.is_tls());
    }

    #[test]
    fn http_with_options_is_refused() {
        let opts = TlsOptions {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = ClientTls::load("http://127.0.0.1:1", &opts).unwrap_err();
        assert!(e.contains("not https://"), "{e}");
    }

    #[test]
    fn https_needs_a_ca() {
        let e = ClientTls::load("https://127.0.0.1:1", &TlsOptions::default()).unwrap_err();
        assert!(e.contains("--tls-ca"), "{e}");
    }

    #[test]
    fn missing_and_malformed_files_are_named() {
        let dir = std::env::temp_dir().join(format!("quantfarm-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let opts = TlsOptions {
            ca: Some(missing.clone()),
            ..Default::default()
        };
        let e = ClientTls::load("https://127.0.0.1:1", &opts).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: cannot read", missing.display())),
            "{e}"
        );

        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let opts = TlsOptions {
            ca: Some(garbage.clone()),
            ..Default::default()
        };
        let e = ClientTls::load("https://127.0.0.1:1", &opts).unwrap_err();
        assert!(e.contains("garbage.pem: no PEM certificate"), "{e}");

        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        let opts = TlsOptions {
            ca: Some(broken),
            ..Default::default()
        };
        let e = ClientTls::load("https://127.0.0.1:1", &opts).unwrap_err();
        assert!(e.contains("broken.pem: bad PEM"), "{e}");

        let not_der = dir.join("notder.pem");
        std::fs::write(
            &not_der,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let opts = TlsOptions {
            ca: Some(not_der),
            ..Default::default()
        };
        let e = ClientTls::load("https://127.0.0.1:1", &opts).unwrap_err();
        assert!(
            e.contains("notder.pem: certificate 1 is not a valid"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

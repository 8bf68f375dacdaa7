//! Bearer-token authentication shared by the coordinator (check) and its clients (attach).

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::MAX_MESSAGE_BYTES;
use crate::tls::{ClientTls, error_chain};
use crate::v1::harness_client::HarnessClient;

/// Client side: attaches `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct AttachToken {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl AttachToken {
    /// Fails when the token has characters a header cannot carry.
    pub fn new(token: &str) -> Result<Self, String> {
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| "token must be printable ASCII".to_string())?;
        Ok(Self { header })
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(req)
    }
}

/// Server side: accepts only calls carrying the expected token.
#[derive(Clone)]
pub struct CheckToken {
    expected: Vec<u8>,
}

impl CheckToken {
    pub fn new(token: &str) -> Self {
        Self {
            expected: format!("Bearer {token}").into_bytes(),
        }
    }
}

impl Interceptor for CheckToken {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, &self.expected) {
            Ok(req)
        } else {
            Err(Status::unauthenticated("missing or wrong token"))
        }
    }
}

/// Compare without an early exit so timing does not reveal the matching prefix
/// (only the length can leak, and the length of `Bearer <token>` is not secret enough
/// to matter).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early exit.
    std::hint::black_box(diff) == 0
}

/// An authenticated client of the coordinator.
pub type Client =
    HarnessClient<tonic::service::interceptor::InterceptedService<Channel, AttachToken>>;

/// Dial a plain `http://` URL (e.g. `http://127.0.0.1:7070`) and attach `token` to
/// every call; [`connect_tls`] for `https://`.
pub async fn connect(url: &str, token: &str) -> Result<Client, String> {
    connect_tls(url, token, &ClientTls::plain()).await
}

/// Dial `url` with `tls` (see [`ClientTls::load`]) and attach `token` to every call.
pub async fn connect_tls(url: &str, token: &str, tls: &ClientTls) -> Result<Client, String> {
    if !tls.is_tls()
        && url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(format!(
            "{url}: an https:// coordinator needs --tls-ca FILE (or {})",
            crate::tls::ENV_CA
        ));
    }
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url}: bad coordinator address: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        // Notice a coordinator that vanished without closing the connection.
        .http2_keep_alive_interval(std::time::Duration::from_secs(10))
        .keep_alive_timeout(std::time::Duration::from_secs(20))
        .keep_alive_while_idle(true);
    let endpoint = tls.apply(endpoint, url)?;
    let channel = endpoint.connect().await.map_err(|e| {
        let chain = error_chain(&e);
        let hint = if chain.contains("invalid peer certificate") {
            " (the coordinator's certificate is not signed by --tls-ca, or does not \
                 name the host in the URL)"
        } else {
            ""
        };
        format!("{url}: cannot connect: {chain}{hint}")
    })?;
    let auth = AttachToken::new(token)?;
    Ok(HarnessClient::with_interceptor(channel, auth)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// A failed call as one line, for people: the status message, then what the
/// transport said under it (a TLS alert, a reset connection), and a hint when the
/// connection itself failed, which with TLS is usually a certificate problem.
pub fn call_error(url: &str, tls: &ClientTls, e: &Status) -> String {
    let mut parts = vec![e.message().to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !t.is_empty() && !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.retain(|p| !p.is_empty());
    let mut msg = parts.join(": ");
    if msg.is_empty() {
        msg = format!("{:?}", e.code());
    }
    // A status the coordinator sent has no source; one that tonic made up for a
    // failed connection has the transport error under it.
    if std::error::Error::source(e).is_none() {
        return msg;
    }
    let hint = match (tls.is_tls(), tls.has_identity()) {
        (true, false) => {
            "the connection failed: if the coordinator requires mutual TLS, pass \
             --tls-cert/--tls-key with a client certificate signed by its --tls-client-ca"
        }
        (true, true) => {
            "the connection failed: is the client certificate signed by the \
             coordinator's --tls-client-ca?"
        }
        (false, _) => {
            "the connection failed: if the coordinator serves TLS, use an https:// URL \
             with --tls-ca"
        }
    };
    format!("{url}: {msg} ({hint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}

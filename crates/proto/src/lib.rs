//! quantfarm's gRPC API, generated at build time from `proto/quantfarm/v1/*.proto`.
//!
//! Nothing here is written by hand except this file: the messages and the `Harness`
//! client/server come from `OUT_DIR` (generated code, not checked in).

/// `quantfarm.v1`: messages, `harness_client::HarnessClient`, `harness_server::Harness`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("quantfarm.v1");
}

/// Largest gRPC message either side accepts (artifact chunks are 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// Artifact chunk size on the wire.
pub const CHUNK_BYTES: usize = 1 << 20;

pub mod auth;
pub mod tls;

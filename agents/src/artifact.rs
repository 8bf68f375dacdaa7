//! Artifact transfer: chunked upload/download with sha256 verification, and the
//! agent's cache by digest.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use quantfarm_proto::CHUNK_BYTES;
use quantfarm_proto::auth::Client;
use quantfarm_proto::v1::{ArtifactChunk, ArtifactRef};
use sha2::{Digest, Sha256};
use tokio_stream::StreamExt;

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_digest(d: &str) -> bool {
    d.len() == 64
        && d.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Upload `bytes`; returns its sha256. The coordinator verifies the digest.
pub async fn upload(client: &mut Client, bytes: Vec<u8>) -> Result<String> {
    let digest = sha256_hex(&bytes);
    let size = bytes.len() as u64;
    let mut chunks: Vec<ArtifactChunk> = bytes
        .chunks(CHUNK_BYTES)
        .map(|c| ArtifactChunk {
            sha256: String::new(),
            size: 0,
            data: c.to_vec(),
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(ArtifactChunk::default());
    }
    chunks[0].sha256 = digest.clone();
    chunks[0].size = size;
    let r = client
        .put_artifact(tokio_stream::iter(chunks))
        .await
        .context("artifact upload")?
        .into_inner();
    if r.sha256 != digest {
        bail!("coordinator stored {} for an upload of {digest}", r.sha256);
    }
    Ok(digest)
}

/// Download an artifact into memory, verifying its digest.
pub async fn download(client: &mut Client, digest: &str, max_bytes: u64) -> Result<Vec<u8>> {
    if !valid_digest(digest) {
        bail!("invalid artifact digest {digest:?}");
    }
    let mut stream = client
        .get_artifact(ArtifactRef {
            sha256: digest.to_string(),
            size: 0,
        })
        .await
        .with_context(|| format!("artifact {digest}"))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("artifact {digest}"))?;
        if out.len() as u64 + chunk.data.len() as u64 > max_bytes {
            bail!("artifact {digest} exceeds {max_bytes} bytes");
        }
        out.extend_from_slice(&chunk.data);
    }
    let got = sha256_hex(&out);
    if got != digest {
        bail!("artifact {digest} arrived with digest {got}");
    }
    Ok(out)
}

/// Artifacts already fetched, one file per digest.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create artifact cache", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The artifact's bytes from the cache (re-verified) or from the coordinator.
    pub async fn get(&self, client: &mut Client, digest: &str, max_bytes: u64) -> Result<Vec<u8>> {
        if !valid_digest(digest) {
            bail!("invalid artifact digest {digest:?}");
        }
        let path = self.dir.join(digest);
        if let Ok(bytes) = std::fs::read(&path) {
            // A corrupt cache entry is refetched, never used.
            if sha256_hex(&bytes) == digest {
                return Ok(bytes);
            }
        }
        let bytes = download(client, digest, max_bytes).await?;
        let tmp = self.dir.join(format!(".{digest}.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            // The job can still run from memory; the cache is an optimisation.
            eprintln!("agent: cannot cache artifact {digest}: {e}");
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(bytes)
    }
}

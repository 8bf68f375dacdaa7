//! Checkpoints: configuration, weights, BN statistics, optimizer state, the number
//! of finished epochs and the generator state, in one binary file written
//! atomically (temporary file in the same folder, fsync, rename), so an interrupted
//! run always leaves the previous complete checkpoint.
//!
//! Layout: `QFCKPT01`, then fields as (u64 length, bytes), then an FNV-1a 64 of
//! everything before it. All integers and floats little-endian.

use std::io::Write;
use std::path::Path;

use quantfarm_engine::{EngineError, Result};

use crate::net::Weights;
use crate::trainer::TrainConfig;

const MAGIC: &[u8; 8] = b"QFCKPT01";

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub config: TrainConfig,
    /// Epochs finished.
    pub epoch: usize,
    pub rng_state: u64,
    pub weights: Weights,
    pub velocity: Vec<Vec<f32>>,
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

struct W(Vec<u8>);
impl W {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn arrays(&mut self, a: &[Vec<f32>]) {
        self.u64(a.len() as u64);
        for v in a {
            self.u64(v.len() as u64);
            for x in v {
                self.0.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}
impl R<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // A length can never exceed what is left of the file.
        (n <= self.b.len() - self.at).then_some(n)
    }
    fn bytes(&mut self) -> Option<&[u8]> {
        let n = self.len()?;
        self.take(n)
    }
    fn arrays(&mut self) -> Option<Vec<Vec<f32>>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let k = self.len()?;
            let raw = self.take(k.checked_mul(4)?)?;
            out.push(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            );
        }
        Some(out)
    }
}

impl Checkpoint {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = W(MAGIC.to_vec());
        w.bytes(self.config.to_text().as_bytes());
        w.u64(self.epoch as u64);
        w.u64(self.rng_state);
        w.arrays(&self.weights.params);
        w.arrays(&self.weights.running_mean);
        w.arrays(&self.weights.running_var);
        w.arrays(&self.velocity);
        let h = fnv(&w.0);
        w.u64(h);
        w.0
    }

    pub fn from_bytes(b: &[u8]) -> std::result::Result<Checkpoint, String> {
        if b.len() < 16 || &b[..8] != MAGIC {
            return Err("not a quantfarm training checkpoint (bad magic)".into());
        }
        let (body, tail) = b.split_at(b.len() - 8);
        let want = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        if fnv(body) != want {
            return Err("checkpoint is damaged (checksum mismatch)".into());
        }
        let mut r = R { b: body, at: 8 };
        let bad = || "checkpoint is truncated or malformed".to_string();
        let text = std::str::from_utf8(r.bytes().ok_or_else(bad)?).map_err(|_| bad())?;
        let config = TrainConfig::from_text(text)?;
        let epoch = r.u64().ok_or_else(bad)? as usize;
        let rng_state = r.u64().ok_or_else(bad)?;
        let params = r.arrays().ok_or_else(bad)?;
        let running_mean = r.arrays().ok_or_else(bad)?;
        let running_var = r.arrays().ok_or_else(bad)?;
        let velocity = r.arrays().ok_or_else(bad)?;
        Ok(Checkpoint {
            config,
            epoch,
            rng_state,
            weights: Weights {
                params,
                running_mean,
                running_var,
            },
            velocity,
        })
    }

    /// Write atomically: `<path>.tmp`, fsync, rename over `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| {
            EngineError::bad_input(format!("{}: cannot write: {e}", tmp.display()))
        };
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&self.to_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path)
            .map_err(|e| EngineError::bad_input(format!("{}: cannot write: {e}", path.display())))
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let b = std::fs::read(path)
            .map_err(|e| EngineError::bad_input(format!("{}: cannot read: {e}", path.display())))?;
        Checkpoint::from_bytes(&b)
            .map_err(|e| EngineError::bad_input(format!("{}: {e}", path.display())))
    }
}

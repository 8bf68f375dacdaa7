//! Content-addressed artifact store: `<dir>/<first two hex digits>/<sha256>`.
//!
//! Uploads are written to a temporary file, hashed on the way, and only renamed into
//! place when the size and digest match what the sender announced.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

pub struct ArtifactStore {
    dir: PathBuf,
    max_bytes: u64,
    tmp_counter: AtomicU64,
}

/// True for a lowercase hex sha256; anything else never touches the filesystem.
pub fn valid_digest(d: &str) -> bool {
    d.len() == 64
        && d.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl ArtifactStore {
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            tmp_counter: AtomicU64::new(0),
        })
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Path of a stored artifact, if present. `digest` must be valid.
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        if !valid_digest(digest) {
            return None;
        }
        let p = self.dir.join(&digest[..2]).join(digest);
        p.is_file().then_some(p)
    }

    pub fn begin(&self, digest: &str, size: u64) -> Result<Upload, String> {
        if !valid_digest(digest) {
            return Err("artifact digest must be 64 lowercase hex digits".into());
        }
        if size > self.max_bytes {
            return Err(format!(
                "artifact of {size} bytes exceeds the limit of {} bytes",
                self.max_bytes
            ));
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}-{digest}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| format!("cannot create upload file: {e}"))?;
        Ok(Upload {
            digest: digest.to_string(),
            size,
            written: 0,
            hasher: Sha256::new(),
            file: Some(file),
            tmp,
            dest: self.dir.join(&digest[..2]).join(digest),
        })
    }

    /// Read a stored artifact in chunks of `chunk` bytes.
    pub fn read_chunks(&self, digest: &str, chunk: usize) -> Result<ChunkReader, String> {
        let p = self
            .path(digest)
            .ok_or_else(|| format!("artifact {digest} not found"))?;
        let file = File::open(&p).map_err(|e| format!("artifact {digest}: {e}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(ChunkReader { file, chunk, size })
    }
}

pub struct ChunkReader {
    file: File,
    chunk: usize,
    pub size: u64,
}

impl Iterator for ChunkReader {
    type Item = std::io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = vec![0u8; self.chunk];
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Some(Err(e)),
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some(Ok(buf))
    }
}

/// An upload in progress; dropped without `finish` it removes its temporary file.
pub struct Upload {
    digest: String,
    size: u64,
    written: u64,
    hasher: Sha256,
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Upload {
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        self.written += data.len() as u64;
        if self.written > self.size {
            return Err(format!(
                "artifact {} is longer than its announced {} bytes",
                self.digest, self.size
            ));
        }
        self.hasher.update(data);
        self.file
            .as_mut()
            .ok_or("upload already finished")?
            .write_all(data)
            .map_err(|e| format!("cannot write upload: {e}"))
    }

    pub fn finish(mut self) -> Result<(String, u64), String> {
        if self.written != self.size {
            return Err(format!(
                "artifact {} ended after {} of {} bytes",
                self.digest, self.written, self.size
            ));
        }
        let got = hex(&std::mem::take(&mut self.hasher).finalize());
        if got != self.digest {
            return Err(format!(
                "artifact digest mismatch: announced {}, received {got}",
                self.digest
            ));
        }
        let file = self.file.take().ok_or("upload already finished")?;
        file.sync_all()
            .map_err(|e| format!("cannot sync upload: {e}"))?;
        drop(file);
        if let Some(parent) = self.dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot store artifact: {e}"))?;
        }
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| format!("cannot store artifact: {e}"))?;
        Ok((self.digest.clone(), self.size))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // After a successful rename the temporary path no longer exists.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_verifies_digest_and_size() {
        let dir = std::env::temp_dir().join(format!("qf-art-{}", std::process::id()));
        let store = ArtifactStore::open(&dir, 1 << 20).unwrap();
        let data = b"hello artifacts";
        let d = sha256_hex(data);
        let mut up = store.begin(&d, data.len() as u64).unwrap();
        up.write(&data[..5]).unwrap();
        up.write(&data[5..]).unwrap();
        assert_eq!(up.finish().unwrap().0, d);
        let back: Vec<u8> = store
            .read_chunks(&d, 4)
            .unwrap()
            .flat_map(|c| c.unwrap())
            .collect();
        assert_eq!(back, data);

        let mut bad = store
            .begin(&sha256_hex(b"other"), data.len() as u64)
            .unwrap();
        bad.write(data).unwrap();
        assert!(bad.finish().unwrap_err().contains("mismatch"));
        assert!(store.begin("../../etc/passwd", 1).is_err());
        assert!(store.begin(&d, 2 << 20).is_err());
        let mut long = store.begin(&d, 3).unwrap();
        assert!(long.write(data).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}

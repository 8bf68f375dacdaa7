//! A tar archive indexed once (member name → data offset and size) and read in
//! place with positioned reads, so members can be fetched from several threads.

use crate::{EngineError, Result};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// One regular-file member: where its data starts in the tar and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarMember {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// An indexed tar file. Only regular-file members are indexed, in archive order.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: Vec<TarMember>,
    by_name: HashMap<String, usize>,
    #[cfg(unix)]
    file: File,
    // Without positioned reads the handle is shared behind a lock (seek + read).
    #[cfg(not(unix))]
    file: std::sync::Mutex<File>,
}

impl TarIndex {
    /// Open and index `path`. Fails (naming the file) if it is missing, not a tar, or
    /// a member's data would run past the end of the file (truncated archive).
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = || path.display().to_string();
        let file = File::open(path).map_err(|e| EngineError::io(ctx(), e))?;
        let file_len = file
            .metadata()
            .map_err(|e| EngineError::io(ctx(), e))?
            .len();
        let members = index_members(&file, file_len)
            .map_err(|msg| EngineError::dataset(format!("{}: not a valid tar: {msg}", ctx())))?;
        let mut by_name = HashMap::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            // Keep the first occurrence; the shared tars never repeat a name.
            by_name.entry(m.name.clone()).or_insert(i);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            by_name,
            #[cfg(unix)]
            file,
            #[cfg(not(unix))]
            file: std::sync::Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> &[TarMember] {
        &self.members
    }

    /// Position of the member called `name`, if present.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Read member `i`'s bytes (positioned read: safe to call concurrently).
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        let m = self.members.get(i).ok_or_else(|| {
            EngineError::bad_input(format!(
                "{}: member index {i} out of range ({} members)",
                self.path.display(),
                self.members.len()
            ))
        })?;
        let size = usize::try_from(m.size).map_err(|_| {
            EngineError::dataset(format!(
                "{}: member {}: too large",
                self.path.display(),
                m.name
            ))
        })?;
        let mut buf = vec![0u8; size];
        self.read_at(&mut buf, m.offset).map_err(|e| {
            EngineError::io(format!("{}: member {}", self.path.display(), m.name), e)
        })?;
        Ok(buf)
    }

    /// Read the member called `name`; error naming the tar and member if it is absent.
    pub fn read_by_name(&self, name: &str) -> Result<Vec<u8>> {
        let i = self.find(name).ok_or_else(|| {
            EngineError::dataset(format!("{}: member {name} is missing", self.path.display()))
        })?;
        self.read(i)
    }

    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }

    #[cfg(not(unix))]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        // A poisoned lock only means another reader panicked; the handle is still usable.
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// Walk the headers once (seeking over member data) and record regular files.
fn index_members(file: &File, file_len: u64) -> std::result::Result<Vec<TarMember>, String> {
    let mut archive = tar::Archive::new(file);
    let entries = archive.entries_with_seek().map_err(|e| e.to_string())?;
    let mut members = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("after {} members: {e}", members.len()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| format!("member #{} has a non-UTF-8 name", members.len()))?;
        let offset = entry.raw_file_position();
        let size = entry.size();
        // Seeking past the end does not fail, so a truncated archive is caught here.
        match offset.checked_add(size) {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(format!(
                    "member {name}: data ({size} bytes at offset {offset}) runs past the end \
                     of the file ({file_len} bytes): truncated archive"
                ));
            }
        }
        members.push(TarMember { name, offset, size });
    }
    Ok(members)
}

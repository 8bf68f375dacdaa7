//! Where a run's files go.
//!
//! ```text
//! reports/<run-id>/          what people read: results.json, results.csv (and, with the
//!                            report crate, tables, charts, index.html)
//! reports/<run-id>/state/    the embedded farm's machinery: coordinator.db (runs, jobs,
//!                            results), artifacts/ (models by sha256), agents/<device>/
//!                            (each local agent's artifact cache). Resuming with
//!                            `--run-id` reopens it; delete it once the run is done.
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The folders of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// `reports/<run-id>`: the run's outputs.
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(reports: &Path, run_id: &str) -> RunDir {
        RunDir {
            root: reports.join(run_id),
        }
    }

    /// Create the output folder.
    pub fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("{}: cannot create", self.root.display()))
    }

    /// The embedded farm's machinery.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    /// The embedded coordinator's database.
    pub fn database(&self) -> PathBuf {
        self.state().join("coordinator.db")
    }

    /// The embedded coordinator's artifact store.
    pub fn artifacts(&self) -> PathBuf {
        self.state().join("artifacts")
    }

    /// The artifact cache of the local agent serving `device`.
    pub fn agent_cache(&self, device: &str) -> PathBuf {
        self.state().join("agents").join(device)
    }
}

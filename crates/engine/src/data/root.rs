//! Locating the shared data folder.

use crate::{EngineError, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where the shared folder is.
pub const DATA_ENV: &str = "QUANTFARM_DATA";

/// Root of the shared data folder: env `QUANTFARM_DATA` if set (error if it does not
/// exist), else the first `shared` folder containing `DESIGN.md` found next to the
/// current dir or any ancestor (so `../shared` from the project root, and also when
/// cargo runs tests from `crates/engine`), else an error telling the user to set
/// `QUANTFARM_DATA`.
pub fn shared_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| EngineError::io("current directory", e))?;
    let env = std::env::var_os(DATA_ENV);
    find_shared_root(env.as_deref(), &cwd)
}

/// [`shared_root`] with its inputs explicit (testable without touching the process
/// environment): `env_value` is the value of `QUANTFARM_DATA`, `start` the directory
/// whose ancestors are searched.
pub fn find_shared_root(env_value: Option<&OsStr>, start: &Path) -> Result<PathBuf> {
    // An empty variable is treated as unset: `QUANTFARM_DATA= cmd` is a common way to clear it.
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        let p = PathBuf::from(v);
        if !p.is_dir() {
            return Err(EngineError::dataset(format!(
                "{DATA_ENV}={} does not exist or is not a directory",
                p.display()
            )));
        }
        return Ok(p);
    }
    for dir in start.ancestors() {
        let candidate = dir.join("shared");
        if candidate.join("DESIGN.md").is_file() {
            return Ok(candidate);
        }
    }
    Err(EngineError::dataset(format!(
        "shared data folder not found: no 'shared' folder with DESIGN.md next to {} or any \
         of its ancestors; set {DATA_ENV} to the shared folder (the one holding data/ and models/)",
        start.display()
    )))
}

//! Shared helpers of the tests that run the `quantfarm` binary on the real shared
//! models and data.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The shared data folder: `QUANTFARM_DATA`, else `../shared` beside the project.
pub fn shared() -> PathBuf {
    if let Ok(p) = std::env::var("QUANTFARM_DATA") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn coral(name: &str) -> PathBuf {
    shared().join("models/coral").join(name)
}

pub fn quantfarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantfarm"))
        .args(args)
        .env("QUANTFARM_DATA", shared())
        .output()
        .expect("binary runs")
}

pub fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// A path in this test process's own temporary folder.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quantfarm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A user error: exit code 2, one line on stderr naming `needle`, no panic.
pub fn assert_user_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.contains(needle), "'{needle}' not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

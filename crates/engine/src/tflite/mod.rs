//! Read and write real `.tflite` FlatBuffers (schema version 3, identifier `TFL3`).
//!
//! The FlatBuffer code in [`generated`] comes from planus and the subset schema in
//! `crates/engine/schema/tflite_subset.fbs` (regenerate with
//! `scripts/gen-tflite-schema.sh`). [`read_model`] maps a file onto the IR
//! ([`crate::ir::Model`]) and [`write_model`] maps it back, so that read → write →
//! read gives an equal model. Data appended after the FlatBuffer (the ZIP of
//! associated files the metadata tooling adds) is kept in `Model::trailing`.
//!
//! Facts used here (field ids, defaults, union tags, op-code rule) are in
//! `shared/docs/tflite-format.md`.

#[rustfmt::skip]
#[allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::missing_safety_doc,
    dead_code,
    unused_imports,
    missing_docs,
    unreachable_pub
)]
pub mod generated;
mod reader;
mod trailing;
mod writer;

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::ir::Model;

pub use reader::{read_model, read_model_limited};
pub use writer::write_model;

/// The FlatBuffers file identifier of every `.tflite` file (bytes 4..8).
pub const FILE_IDENTIFIER: [u8; 4] = *b"TFL3";
/// The only `Model.version` runtimes accept (`TFLITE_SCHEMA_VERSION`).
pub const SCHEMA_VERSION: u32 = 3;

/// Read a `.tflite` file; errors name the file.
pub fn read_model_file(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path)
        .map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
    read_model(&bytes).map_err(|e| with_file(e, path))
}

/// Write a model as a `.tflite` file; errors name the file.
pub fn write_model_file(model: &Model, path: &Path) -> Result<()> {
    let bytes = write_model(model).map_err(|e| with_file(e, path))?;
    std::fs::write(path, bytes)
        .map_err(|e| EngineError::io(format!("writing {}", path.display()), e))
}

/// Prefix an error's message with the file it is about.
fn with_file(e: EngineError, path: &Path) -> EngineError {
    let p = path.display();
    match e {
        EngineError::InvalidModel(m) => EngineError::InvalidModel(format!("{p}: {m}")),
        EngineError::Unsupported(m) => EngineError::Unsupported(format!("{p}: {m}")),
        EngineError::BadInput(m) => EngineError::BadInput(format!("{p}: {m}")),
        EngineError::TooLarge(m) => EngineError::TooLarge(format!("{p}: {m}")),
        EngineError::Dataset(m) => EngineError::Dataset(format!("{p}: {m}")),
        EngineError::Io { context, source } => EngineError::Io {
            context: format!("{p}: {context}"),
            source,
        },
    }
}

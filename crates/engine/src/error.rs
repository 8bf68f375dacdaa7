//! The engine's error type. Every user-supplied file problem becomes an
//! `EngineError` (never a panic); callers add the file name.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    /// The bytes are not a valid model (truncated, garbage, bad indices, ...).
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// A well-formed model uses something the engine cannot execute.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Wrong inputs given at run time (count, size, dtype).
    #[error("bad input: {0}")]
    BadInput(String),
    /// The model would need more memory than the limit allows (or more than this
    /// machine can address): refused before any large allocation. The message says how
    /// much and where (`measure::limits` documents the limit).
    #[error("{0}")]
    TooLarge(String),
    /// A dataset is missing or malformed.
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        EngineError::InvalidModel(msg.into())
    }
    pub fn unsupported(msg: impl Into<String>) -> Self {
        EngineError::Unsupported(msg.into())
    }
    pub fn bad_input(msg: impl Into<String>) -> Self {
        EngineError::BadInput(msg.into())
    }
    pub fn too_large(msg: impl Into<String>) -> Self {
        EngineError::TooLarge(msg.into())
    }
    pub fn dataset(msg: impl Into<String>) -> Self {
        EngineError::Dataset(msg.into())
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

//! quantfarm's shared engine: the one crate every agent runs.
//!
//! - [`ir`]: the graph representation for every numeric mode;
//! - [`tflite`]: read and write real `.tflite` FlatBuffers;
//! - [`exec`]: the interpreter (static memory plan, per-op timing) and its kernels;
//! - [`convert`]: model-to-model transforms (dequantize to a float baseline);
//! - [`zoo`]: architecture-exact builders of the guide's CNNs;
//! - [`data`]: dataset readers, preprocessing and top-k metrics;
//! - [`measure`]: the one latency and accuracy routine (bench, eval and agent jobs)
//!   and the bounds on every count a user or a job sets.
//!
//! No async, no network, no dataframes: this crate must build fast.

pub mod convert;
pub mod data;
pub mod error;
pub mod exec;
pub mod ir;
pub mod measure;
pub mod quant;
pub mod stats;
pub mod tflite;
pub mod zoo;

pub use error::{EngineError, Result};

//! quantfarm's shared engine: the one crate every agent runs.
//!
//! - [`ir`]: the graph representation for every numeric mode;
//! - [`tflite`]: read and write real `.tflite` FlatBuffers;
//! - [`exec`]: the interpreter (static memory plan, per-op timing, a thread pool) and
//!   its kernels: float32, integer (uint8 / int8 / int16x8), dynamic-range hybrid and
//!   LSTM, each a reference kernel and, for the heavy ops, a SIMD fast path;
//! - [`quant`]: TFLite's fixed-point arithmetic, calibration and the post-training
//!   quantizers;
//! - [`convert`]: model-to-model transforms (dequantize to a float baseline);
//! - [`zoo`]: architecture-exact builders of the guide's CNNs;
//! - [`data`]: dataset readers, preprocessing and top-k metrics;
//! - [`measure`]: the one latency and accuracy routine (bench, eval and agent jobs)
//!   and the bounds on every count a user or a job sets;
//! - [`stats`]: op counts, parameters and multiply-accumulates of a model.
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

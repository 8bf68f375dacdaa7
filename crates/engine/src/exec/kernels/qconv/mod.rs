//! Integer CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (spec §2–4, §9, §10).
//!
//! Three numeric schemes share one set of kernels:
//! - [`QScheme::Uint8`]: uint8 activations and weights, both with zero points;
//! - [`QScheme::Int8`]: int8 activations (zero point), int8 symmetric weights;
//! - [`QScheme::Int16x8`]: int16 activations (zero point 0), int8 weights, 64-bit sums.
//!
//! The `*_reference` functions mirror TFLite's reference loops (the test oracle). The
//! `Packed*` kernels pack weights once and run SIMD GEMM / depthwise paths; integer sums
//! are exact, so they produce the same accumulators and hence the same bytes.
//!
//! Each op has one home holding its reference and packed kernels: `conv.rs`,
//! `fully_connected.rs`, and `depthwise/` with its two AVX-512 children (`vnni.rs`
//! for 8-bit, `int16.rs` for int16x8). Conv and FC share `gemm/` (`narrow.rs` 8-bit,
//! `wide.rs` int16x8); all three share `requant.rs` (vectorized requantization),
//! `params.rs` (schemes, element types, per-op offsets and multipliers) and `simd.rs`
//! (the run-time ISA copies of plain loops).

mod conv;
mod depthwise;
mod fully_connected;
mod gemm;
mod params;
pub(crate) mod requant;
mod simd;
#[cfg(test)]
mod tests;

pub use conv::{PackedQConv, conv_reference};
pub use depthwise::{PackedQDepthwise, depthwise_reference};
pub use fully_connected::{PackedQFc, fc_reference};
pub use params::{QElem, QFcGeom, QParams, QScheme, check_geometry};

//! quantfarm-train: CPU training of small image classifiers (the CIFAR-10 nets),
//! beside the inference engine and exported through it.
//!
//! - [`ops`]: forward and backward kernels side by side, over [`gemm`].
//! - [`rng`]: the deterministic generator every random choice derives from.

pub mod gemm;
pub mod ops;
pub mod rng;

//! Float32 kernels. Every op has a plain reference kernel (the oracle in tests);
//! conv, depthwise and fully-connected also have fast paths (packing + SIMD with
//! run-time CPU feature detection) tested against the reference.
//!
//! Kernels work on plain slices and shape structs: they know nothing about the IR,
//! so they can be tested and benchmarked alone.

pub mod activation;
pub mod argmax;
pub mod conv;
pub mod cpu;
pub mod depthwise;
pub mod elementwise;
pub mod fully_connected;
pub(crate) mod gemm;
pub mod geometry;
pub mod hybrid;
pub mod lstm;
pub mod pool;
pub mod qconv;
pub mod qops;
pub mod quantize;
pub mod reduce;
pub mod resize;
pub mod shape_ops;
pub mod softmax;
#[cfg(test)]
pub(crate) mod test_util;

/// How many threads a kernel may use. When `threads > 1` kernels split their work with
/// `exec::parallel`, which runs it on the pool the caller installed (the interpreter's)
/// or else on a shared pool of that size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    pub threads: usize,
}

impl Parallelism {
    pub const SINGLE: Parallelism = Parallelism { threads: 1 };
}

/// Which implementation family to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChoice {
    /// Plain loops, written to mirror TFLite's reference kernels.
    Reference,
    /// Packed/SIMD paths where they exist, reference elsewhere.
    #[default]
    Fast,
}

//! The kernels: float32, integer (uint8 / int8 / int16x8), dynamic-range hybrid and
//! LSTM. Every op has a plain reference kernel (the oracle in tests); the heavy ones
//! also have a fast path (packed weights, SIMD chosen at run time by [`cpu`]) that
//! tests compare with the reference on every ISA the machine has. Integer and hybrid
//! fast paths give the reference's bytes; float fast paths may differ in the last
//! bits (their summation order).
//!
//! Kernels work on plain slices and parameter structs: they know nothing about the IR
//! (the op families in `exec::float_ops` and `exec::quant_ops` prepare them), so they
//! can be tested and benchmarked alone.
//!
//! # Map: op → reference → fast path → ISA-specific code
//!
//! ```text
//! float32
//!  CONV_2D            conv::conv2d_reference      conv::PackedConv2D (im2col blocks)
//!                       → gemm/ (mod.rs driver; x86.rs AVX-512/AVX2 tiles, portable.rs)
//!                                                 sparse_conv::SparseConv1x1 (1×1 with
//!                                                 ≥ 70% zero weights, 75% if narrowing
//!                                                 4×: CSR rows over transposed pixel
//!                                                 blocks; AVX-512/AVX2)
//!  DEPTHWISE_CONV_2D  depthwise::depthwise_reference
//!                                                 depthwise::PackedDepthwise
//!                       → depthwise.rs `mod x86` (AVX-512/AVX2 pixel sweeps)
//!  FULLY_CONNECTED    fully_connected::fully_connected_reference
//!                                                 fully_connected::PackedFullyConnected → gemm/
//!  AVERAGE/MAX_POOL   pool (no separate fast path)
//!  ADD SUB MUL DIV    elementwise (same-shape runs split across threads)
//!  activations        activation; SOFTMAX softmax; MEAN reduce; RESIZE_BILINEAR resize
//!  PAD CONCATENATION STRIDED_SLICE TRANSPOSE GATHER
//!                     shape_ops (type-generic: move values, any dtype); ARG_MAX argmax
//!  QUANTIZE DEQUANTIZE quantize (QUANTIZE compiled for AVX2 / AVX-512 too)
//! integer (uint8, int8, int16x8)
//!  CONV_2D            qconv/conv.rs conv_reference
//!                                                 PackedQConv (im2col rows or in place)
//!                       → qconv/gemm/ (mod.rs: 8-bit or int16x8)
//!                         narrow.rs  8-bit: AVX-512 VNNI, AVX2, portable
//!                         wide.rs    int16x8: AVX-512 (VNNI) and AVX2 panels, portable
//!  DEPTHWISE_CONV_2D  qconv/depthwise/mod.rs depthwise_reference
//!                                                 PackedQDepthwise (per-pixel rows,
//!                                                 AVX2/AVX-512 copies, `mod x86` sums)
//!                       → depthwise/vnni.rs   8-bit, multiplier 1: AVX-512 VNNI
//!                       → depthwise/int16.rs  int16x8, multiplier 1: AVX-512
//!  FULLY_CONNECTED    qconv/fully_connected.rs fc_reference
//!                                                 PackedQFc → qconv/gemm/
//!                     (qconv/requant.rs: the vectorized requantization they share;
//!                      params.rs: schemes and multipliers; simd.rs: ISA copies)
//!  ADD SUB MUL        qops/binary.rs binary_reference
//!                                                 binary_same_shape / _broadcast_rows,
//!                                                 AddSubTables, MulKernel (AVX-512)
//!  AVERAGE/MAX_POOL   qops/pool.rs average_pool_reference (AVX2/AVX-512 copies)
//!                                                 average_pool_fast; max_pool
//!  SOFTMAX            qops/softmax.rs softmax_fixed_point (gemmlowp.rs)
//!                                                 softmax_fixed_point_fast; Softmax16
//!  LOGISTIC TANH HARD_SWISH RELU RELU6
//!                     qops/lut.rs (8-bit, tables on the fast path); qops/act16.rs (int16)
//!  MEAN qops/mean.rs; RESIZE_BILINEAR qops/resize.rs;
//!  QUANTIZE int→int, CONCATENATION (rescaled) qops/requant.rs;
//!  PACK UNPACK GATHER_ND qops/shape.rs (type-generic)
//! hybrid (float activations, int8 weights)
//!  FC CONV_2D DEPTHWISE hybrid/mod.rs *_reference  hybrid/fast.rs Packed* (AVX-512 VNNI,
//!                                                 AVX-512BW, AVX2, portable)
//! UNIDIRECTIONAL_SEQUENCE_LSTM
//!                     lstm/integer.rs (8x8_16, fixed16.rs), lstm/float.rs; one kernel each
//! shared
//!  geometry.rs  output size, padding and windows of conv/depthwise/pool, computed once
//!  cpu.rs       feature detection and the ISA in use; test_util.rs (tests only)
//! ```

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
pub mod sparse_conv;
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

/// Whether the fast float kernels may run a 1×1 CONV_2D over its sparse weights
/// ([`sparse_conv::SparseConv1x1`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SparseMode {
    /// Sparse when the filter has at least [`sparse_conv::min_zero_fraction`] exact
    /// zeros (only with [`KernelChoice::Fast`]).
    #[default]
    Auto,
    /// Always the dense kernels.
    Off,
}

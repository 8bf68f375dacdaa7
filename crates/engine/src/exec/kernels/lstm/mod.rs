//! UNIDIRECTIONAL_SEQUENCE_LSTM kernels: the fully-integer 8x8_16 path (bit-exact
//! with TFLite's reference arithmetic) and the float32 path.
//!
//! Like the other kernels these work on plain slices; `exec::quant_ops::lstm` turns
//! the op's 24 input slots into an [`IntegerLstm`] or [`FloatLstm`].

pub mod fixed16;
pub mod float;
pub mod integer;

pub use float::{CellActivation, FloatGate, FloatLstm, FloatScratch};
pub use integer::{IntGate, IntLayerNorm, IntProjection, IntScratch, IntegerLstm};

/// Sizes and layout of one LSTM sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmDims {
    /// Input `[T, B, n_input]` when true, `[B, T, n_input]` otherwise.
    pub time_major: bool,
    pub max_time: usize,
    pub n_batch: usize,
    pub n_input: usize,
    /// Units (gate width).
    pub n_cell: usize,
    /// Hidden/output width (`n_cell` unless projected).
    pub n_output: usize,
}

//! The shape of an LSTM sequence, shared by the float and integer kernels.

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

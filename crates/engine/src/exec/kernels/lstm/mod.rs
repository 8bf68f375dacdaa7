//! UNIDIRECTIONAL_SEQUENCE_LSTM kernels: the fully-integer 8x8_16 path (bit-exact
//! with TFLite's reference arithmetic) and the float32 path.
//!
//! Like the other kernels these work on plain slices; `exec::quant_ops::lstm` turns
//! the op's 24 input slots into an [`IntegerLstm`] or [`FloatLstm`].

mod dims;
pub mod fixed16;
pub mod float;
pub mod integer;

pub use dims::LstmDims;
pub use float::{CellActivation, FloatGate, FloatLstm, FloatScratch};
pub use integer::{IntGate, IntLayerNorm, IntProjection, IntScratch, IntegerLstm};

//! Integer (and hybrid) op families. Each family looks at an op and its tensors'
//! types and either claims it (`Some`) or leaves it to the next family; whatever no
//! integer family claims goes to the float family.
//!
//! - `conv`: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED on uint8 / int8 / int16x8;
//! - `ops`: every other integer op of the Coral models (ADD, pools, softmax, ...);
//! - `lstm`: the quantized UNIDIRECTIONAL_SEQUENCE_LSTM;
//! - `hybrid`: dynamic-range ops (float activations, int8 weights).

mod conv;
mod hybrid;
mod lstm;
mod ops;

use super::kernels::KernelChoice;
use super::prepare::Prepared;

use crate::error::Result;
use crate::ir::{Graph, Op};
pub(crate) use lstm::packed_slots as lstm_packed_slots;

type Family = fn(&Graph, &Op, KernelChoice) -> Option<Result<Prepared>>;

const FAMILIES: [Family; 4] = [conv::prepare, lstm::prepare, hybrid::prepare, ops::prepare];

/// Prepare `op` with the first integer family that claims it.
pub(crate) fn prepare(g: &Graph, op: &Op, choice: KernelChoice) -> Option<Result<Prepared>> {
    FAMILIES.iter().find_map(|family| family(g, op, choice))
}

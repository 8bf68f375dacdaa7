//! Typed views of the arena that kernels read and write during a step.

use super::arena::Arena;
use super::pod::Pod;
use crate::ir::{DType, TensorId};

/// Where a runtime tensor lives in the arena.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub offset: usize,
    pub bytes: usize,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

/// The arena as seen by one step: typed input and output slices.
pub(crate) struct Tensors<'a> {
    pub arena: &'a Arena,
    pub slots: &'a [Option<Slot>],
}

impl Tensors<'_> {
    pub fn slot(&self, t: TensorId) -> &Slot {
        self.slots[t]
            .as_ref()
            .expect("every runtime tensor is planned")
    }

    /// Typed view of an input tensor.
    pub fn input<T: Pod>(&self, t: TensorId) -> &[T] {
        let s = self.slot(t);
        // SAFETY: the planner gave this tensor its own 64-byte aligned region, the dtype
        // was checked against T at preparation, and inputs are only read during a step.
        unsafe {
            self.arena
                .typed::<T>(s.offset, s.bytes / std::mem::size_of::<T>())
        }
    }

    /// Typed mutable view of an output tensor.
    #[allow(clippy::mut_from_ref)]
    pub fn output<T: Pod>(&self, t: TensorId) -> &mut [T] {
        let s = self.slot(t);
        // SAFETY: an op's outputs are live while its inputs are, so the planner placed
        // them in regions disjoint from every input; check_dataflow rejects a tensor
        // that is both input and output of one op. No other view of it exists now.
        unsafe {
            self.arena
                .typed_mut::<T>(s.offset, s.bytes / std::mem::size_of::<T>())
        }
    }
}

/// Run `$body` with `$t` bound to the unsigned integer type of `$size` bytes: shape
/// ops only move elements, so one instantiation per width serves every dtype.
macro_rules! with_width {
    ($size:expr, $t:ident => $body:block) => {
        match $size {
            1 => {
                type $t = u8;
                $body
            }
            2 => {
                type $t = u16;
                $body
            }
            4 => {
                type $t = u32;
                $body
            }
            _ => {
                type $t = u64;
                $body
            }
        }
    };
}
pub(crate) use with_width;

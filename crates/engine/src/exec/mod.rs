//! Execution: the interpreter, its static memory plan and its kernels.
//!
//! - `interpreter.rs`: [`Interpreter`] checks the graph, prepares every op with the
//!   first family that claims it, plans the arena, and runs the ops in order, timing
//!   each;
//! - `quant_ops/`: the integer families, asked first (conv/depthwise/FC, the other
//!   integer ops, the LSTM, dynamic-range hybrid ops); `float_ops/`: the float32 and
//!   type-generic family, asked last. Each has one prepare function per op and a
//!   `kernel.rs` or kernel type whose `run` only computes;
//! - `prepare.rs`: what preparing an op produces and the checks the families share
//!   (inputs, types, constants, shapes, conv/pool geometry);
//! - `memory.rs`: the [`MemoryPlan`] of a model (arena, packed weights, scratch,
//!   bookkeeping) from its shapes alone, checked against the memory limit before
//!   anything large is allocated;
//! - `plan.rs` (the static memory plan), `arena.rs` (one 64-byte aligned block),
//!   `pod.rs` (the element types it hands out), `tensors.rs` (typed views of it during
//!   a step);
//! - `parallel/`: the thread pool the heavy kernels split their work on;
//! - `kernels/`: the kernels, which know nothing of the IR (its module doc maps every
//!   op to its reference kernel, fast path and ISA-specific code).
//!
//! No two files here import each other, directly or through others
//! (`tests/exec_imports.rs` checks it).

mod arena;
mod float_ops;
mod interpreter;
pub mod kernels;
mod memory;
pub mod parallel;
pub mod plan;
mod pod;
mod prepare;
mod quant_ops;
mod tensors;

pub use interpreter::{Interpreter, InterpreterOptions, OpTiming, TensorInfo};
pub use kernels::{KernelChoice, SparseMode};
pub use memory::MemoryPlan;

//! Execution: the interpreter, its static memory plan and its kernels.

mod arena;
mod float_ops;
mod interpreter;
pub mod kernels;
pub mod parallel;
pub mod plan;
mod pod;
mod prepare;
mod quant_ops;
mod tensors;

pub use interpreter::{Interpreter, InterpreterOptions, OpTiming, TensorInfo};
pub use kernels::KernelChoice;

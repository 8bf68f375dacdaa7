//! Execution: the interpreter, its static memory plan and its kernels.

mod arena;
mod interpreter;
pub mod kernels;
pub mod plan;

pub use interpreter::{Interpreter, InterpreterOptions, OpTiming, TensorInfo};
pub use kernels::KernelChoice;

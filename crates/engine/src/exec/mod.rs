//! Execution: the interpreter and its kernels.

pub mod kernels;

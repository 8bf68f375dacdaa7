//! Model-to-model transforms.

mod dequantize;

pub use dequantize::{DequantizeOptions, dequantize_model};

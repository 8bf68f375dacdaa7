//! Quantization: TFLite's fixed-point arithmetic, the post-training quantizers and
//! calibration.

pub mod calibrate;
pub mod fixed_point;
pub mod ptq;

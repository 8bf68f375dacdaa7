//! Element types, numbered as TFLite's `TensorType` so the file mapping is 1:1.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I32,
    U8,
    I64,
    String,
    Bool,
    I16,
    I8,
    F64,
    /// Any other TFLite type, by its `TensorType` number (kept for round trips).
    Other(i8),
}

impl DType {
    /// From TFLite's `TensorType` number.
    pub fn from_tflite(code: i8) -> DType {
        match code {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::I32,
            3 => DType::U8,
            4 => DType::I64,
            5 => DType::String,
            6 => DType::Bool,
            7 => DType::I16,
            9 => DType::I8,
            10 => DType::F64,
            other => DType::Other(other),
        }
    }

    /// TFLite's `TensorType` number.
    pub fn to_tflite(self) -> i8 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::I32 => 2,
            DType::U8 => 3,
            DType::I64 => 4,
            DType::String => 5,
            DType::Bool => 6,
            DType::I16 => 7,
            DType::I8 => 9,
            DType::F64 => 10,
            DType::Other(c) => c,
        }
    }

    /// Bytes per element for fixed-size types; `None` for strings and unknown types.
    pub fn fixed_size_bytes(self) -> Option<usize> {
        match self {
            DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::I16 => Some(2),
            DType::U8 | DType::I8 | DType::Bool => Some(1),
            DType::I64 | DType::F64 => Some(8),
            DType::String | DType::Other(_) => None,
        }
    }

    /// Bytes per element (0 for variable-size types).
    pub fn size_bytes(self) -> usize {
        self.fixed_size_bytes().unwrap_or(0)
    }

    /// Whether constants of this type count as model parameters (weights, biases).
    pub fn is_numeric_param(self) -> bool {
        matches!(
            self,
            DType::F32 | DType::F16 | DType::U8 | DType::I8 | DType::I16 | DType::F64
        )
    }

    /// Lower-case name as used in manifests and JSON (`float32`, `uint8`, ...).
    pub fn name(self) -> String {
        match self {
            DType::F32 => "float32".into(),
            DType::F16 => "float16".into(),
            DType::I32 => "int32".into(),
            DType::U8 => "uint8".into(),
            DType::I64 => "int64".into(),
            DType::String => "string".into(),
            DType::Bool => "bool".into(),
            DType::I16 => "int16".into(),
            DType::I8 => "int8".into(),
            DType::F64 => "float64".into(),
            DType::Other(c) => format!("tflite_type_{c}"),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

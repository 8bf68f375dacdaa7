//! Operator kinds with typed options, one variant per TFLite builtin the engine
//! knows. Field meanings and defaults follow TFLite's options tables.

use super::DType;

/// Fused activation (`ActivationFunctionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    ReluN1To1,
    Relu6,
    Tanh,
    SignBit,
}

impl Activation {
    pub fn from_tflite(v: i8) -> Activation {
        match v {
            1 => Activation::Relu,
            2 => Activation::ReluN1To1,
            3 => Activation::Relu6,
            4 => Activation::Tanh,
            5 => Activation::SignBit,
            _ => Activation::None,
        }
    }

    pub fn to_tflite(self) -> i8 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::ReluN1To1 => 2,
            Activation::Relu6 => 3,
            Activation::Tanh => 4,
            Activation::SignBit => 5,
        }
    }

    /// The float clamp range of a clamp-type activation (`None` for TANH/SIGN_BIT,
    /// which are not clamps).
    pub fn float_range(self) -> Option<(f32, f32)> {
        match self {
            Activation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
            Activation::Relu => Some((0.0, f32::INFINITY)),
            Activation::ReluN1To1 => Some((-1.0, 1.0)),
            Activation::Relu6 => Some((0.0, 6.0)),
            Activation::Tanh | Activation::SignBit => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    #[default]
    Same,
    Valid,
}

impl Padding {
    pub fn from_tflite(v: i8) -> Padding {
        if v == 1 {
            Padding::Valid
        } else {
            Padding::Same
        }
    }
    pub fn to_tflite(self) -> i8 {
        match self {
            Padding::Same => 0,
            Padding::Valid => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2DOptions {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub activation: Activation,
}

impl Default for Conv2DOptions {
    fn default() -> Self {
        Conv2DOptions {
            padding: Padding::Same,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            activation: Activation::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseConv2DOptions {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub depth_multiplier: usize,
    pub dilation_h: usize,
    pub dilation_w: usize,
    pub activation: Activation,
}

impl Default for DepthwiseConv2DOptions {
    fn default() -> Self {
        DepthwiseConv2DOptions {
            padding: Padding::Same,
            stride_h: 1,
            stride_w: 1,
            depth_multiplier: 1,
            dilation_h: 1,
            dilation_w: 1,
            activation: Activation::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pool2DOptions {
    pub padding: Padding,
    pub stride_h: usize,
    pub stride_w: usize,
    pub filter_h: usize,
    pub filter_w: usize,
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FullyConnectedOptions {
    pub activation: Activation,
    /// 0 = DEFAULT, 1 = SHUFFLED4x16INT8 (kept for round trips; not executed).
    pub weights_format: i8,
    pub keep_num_dims: bool,
    pub asymmetric_quantize_inputs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StridedSliceOptions {
    pub begin_mask: i32,
    pub end_mask: i32,
    pub ellipsis_mask: i32,
    pub new_axis_mask: i32,
    pub shrink_axis_mask: i32,
    pub offset: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LstmOptions {
    pub activation: Activation,
    pub cell_clip: f32,
    pub proj_clip: f32,
    pub time_major: bool,
    pub asymmetric_quantize_inputs: bool,
    pub diagonal_recurrent_tensors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchMatMulOptions {
    pub adj_x: bool,
    pub adj_y: bool,
    pub asymmetric_quantize_inputs: bool,
}

/// Every operator the IR can hold. Ops the engine does not know are kept as
/// [`OpKind::UnknownBuiltin`] (options dropped) or [`OpKind::Custom`] (bytes kept).
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    Add {
        activation: Activation,
        pot_scale_int16: bool,
    },
    AveragePool2D(Pool2DOptions),
    Concatenation {
        axis: i32,
        activation: Activation,
    },
    Conv2D(Conv2DOptions),
    DepthwiseConv2D(DepthwiseConv2DOptions),
    Dequantize,
    FullyConnected(FullyConnectedOptions),
    Logistic,
    MaxPool2D(Pool2DOptions),
    Mul {
        activation: Activation,
    },
    Relu,
    Relu6,
    /// `new_shape` from the options; the optional second input takes precedence.
    Reshape {
        new_shape: Option<Vec<i32>>,
    },
    ResizeBilinear {
        align_corners: bool,
        half_pixel_centers: bool,
    },
    Softmax {
        beta: f32,
    },
    Tanh,
    Pad,
    Gather {
        axis: i32,
        batch_dims: i32,
    },
    Transpose,
    Mean {
        keep_dims: bool,
    },
    Sub {
        activation: Activation,
        pot_scale_int16: bool,
    },
    Div {
        activation: Activation,
    },
    Squeeze {
        dims: Vec<i32>,
    },
    UnidirectionalSequenceLstm(LstmOptions),
    StridedSlice(StridedSliceOptions),
    Split {
        num_splits: i32,
    },
    Cast,
    ArgMax {
        output_type: DType,
    },
    Sqrt,
    Pack {
        values_count: i32,
        axis: i32,
    },
    Unpack {
        num: i32,
        axis: i32,
    },
    FloorDiv,
    GatherNd,
    Quantize,
    HardSwish,
    BatchMatMul(BatchMatMulOptions),
    /// A CUSTOM op (e.g. `edgetpu-custom-op`); its options are opaque bytes.
    Custom {
        code: String,
        options: Vec<u8>,
    },
    /// A builtin the IR has no variant for; executed never, written back without options.
    UnknownBuiltin {
        code: i32,
    },
}

impl OpKind {
    /// TFLite `BuiltinOperator` code.
    pub fn builtin_code(&self) -> i32 {
        use OpKind::*;
        match self {
            Add { .. } => 0,
            AveragePool2D(_) => 1,
            Concatenation { .. } => 2,
            Conv2D(_) => 3,
            DepthwiseConv2D(_) => 4,
            Dequantize => 6,
            FullyConnected(_) => 9,
            Logistic => 14,
            MaxPool2D(_) => 17,
            Mul { .. } => 18,
            Relu => 19,
            Relu6 => 21,
            Reshape { .. } => 22,
            ResizeBilinear { .. } => 23,
            Softmax { .. } => 25,
            Tanh => 28,
            Custom { .. } => 32,
            Pad => 34,
            Gather { .. } => 36,
            Transpose => 39,
            Mean { .. } => 40,
            Sub { .. } => 41,
            Div { .. } => 42,
            Squeeze { .. } => 43,
            UnidirectionalSequenceLstm(_) => 44,
            StridedSlice(_) => 45,
            Split { .. } => 49,
            Cast => 53,
            ArgMax { .. } => 56,
            Sqrt => 75,
            Pack { .. } => 83,
            Unpack { .. } => 88,
            FloorDiv => 90,
            GatherNd => 107,
            Quantize => 114,
            HardSwish => 117,
            BatchMatMul(_) => 126,
            UnknownBuiltin { code } => *code,
        }
    }

    /// The TFLite name (`CONV_2D`, ...); custom ops give their custom code.
    pub fn name(&self) -> String {
        use OpKind::*;
        let s = match self {
            Add { .. } => "ADD",
            AveragePool2D(_) => "AVERAGE_POOL_2D",
            Concatenation { .. } => "CONCATENATION",
            Conv2D(_) => "CONV_2D",
            DepthwiseConv2D(_) => "DEPTHWISE_CONV_2D",
            Dequantize => "DEQUANTIZE",
            FullyConnected(_) => "FULLY_CONNECTED",
            Logistic => "LOGISTIC",
            MaxPool2D(_) => "MAX_POOL_2D",
            Mul { .. } => "MUL",
            Relu => "RELU",
            Relu6 => "RELU6",
            Reshape { .. } => "RESHAPE",
            ResizeBilinear { .. } => "RESIZE_BILINEAR",
            Softmax { .. } => "SOFTMAX",
            Tanh => "TANH",
            Pad => "PAD",
            Gather { .. } => "GATHER",
            Transpose => "TRANSPOSE",
            Mean { .. } => "MEAN",
            Sub { .. } => "SUB",
            Div { .. } => "DIV",
            Squeeze { .. } => "SQUEEZE",
            UnidirectionalSequenceLstm(_) => "UNIDIRECTIONAL_SEQUENCE_LSTM",
            StridedSlice(_) => "STRIDED_SLICE",
            Split { .. } => "SPLIT",
            Cast => "CAST",
            ArgMax { .. } => "ARG_MAX",
            Sqrt => "SQRT",
            Pack { .. } => "PACK",
            Unpack { .. } => "UNPACK",
            FloorDiv => "FLOOR_DIV",
            GatherNd => "GATHER_ND",
            Quantize => "QUANTIZE",
            HardSwish => "HARD_SWISH",
            BatchMatMul(_) => "BATCH_MATMUL",
            Custom { code, .. } => return code.clone(),
            UnknownBuiltin { code } => return format!("BUILTIN_{code}"),
        };
        s.to_string()
    }
}

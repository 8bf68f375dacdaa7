//! The engine's intermediate representation: one graph type for float32, float16,
//! int8/uint8 (per-tensor and per-channel), int16x8 and integer-index tensors.
//!
//! The IR mirrors TFLite closely (NHWC activations, OHWI conv filters,
//! `[1, kh, kw, C*M]` depthwise filters, `[units, depth]` FC weights) so that a
//! model read from a `.tflite` file and written back is the same model.

mod dtype;
mod ops;

pub use dtype::DType;
pub use ops::*;

use crate::error::EngineError;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// Affine quantization `real = scale * (q - zero_point)`, per tensor (one entry) or
/// per axis (`scale.len() == shape[axis]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quantization {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    /// The axis the per-axis arrays run along (`quantized_dimension`).
    pub axis: usize,
    /// Calibration range, informational only (kept for round trips).
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl Quantization {
    pub fn per_tensor(scale: f32, zero_point: i64) -> Self {
        Quantization {
            scale: vec![scale],
            zero_point: vec![zero_point],
            ..Default::default()
        }
    }

    pub fn per_axis(scale: Vec<f32>, zero_point: Vec<i64>, axis: usize) -> Self {
        Quantization {
            scale,
            zero_point,
            axis,
            ..Default::default()
        }
    }

    pub fn is_per_axis(&self) -> bool {
        self.scale.len() > 1
    }

    /// Scale and zero point of channel `c` (the single pair for per-tensor).
    pub fn params(&self, c: usize) -> (f32, i64) {
        if self.scale.len() == 1 {
            (self.scale[0], self.zero_point.first().copied().unwrap_or(0))
        } else {
            (self.scale[c], self.zero_point.get(c).copied().unwrap_or(0))
        }
    }
}

/// A tensor: an activation (no data) or a constant (raw little-endian bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    /// Static shape. TFLite files store `-1` only in `shape_signature`.
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// Constant contents as stored in the file: row-major, little-endian.
    pub data: Option<Vec<u8>>,
    pub quant: Option<Quantization>,
    /// State tensors (LSTM output/cell state) that persist across invocations.
    pub is_variable: bool,
    /// The shape with `-1` for dynamic dimensions, when the file gives one.
    pub shape_signature: Option<Vec<i32>>,
}

impl Tensor {
    pub fn activation(name: impl Into<String>, shape: Vec<usize>, dtype: DType) -> Self {
        Tensor {
            name: name.into(),
            shape,
            dtype,
            data: None,
            quant: None,
            is_variable: false,
            shape_signature: None,
        }
    }

    pub fn constant(
        name: impl Into<String>,
        shape: Vec<usize>,
        dtype: DType,
        data: Vec<u8>,
    ) -> Self {
        Tensor {
            data: Some(data),
            ..Tensor::activation(name, shape, dtype)
        }
    }

    /// A float32 constant from values.
    pub fn constant_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Self {
        Tensor::constant(name, shape, DType::F32, f32_to_bytes(values))
    }

    /// An int32 constant from values.
    pub fn constant_i32(name: impl Into<String>, shape: Vec<usize>, values: &[i32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Tensor::constant(name, shape, DType::I32, data)
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    /// Whether this constant counts as a model parameter (weight or bias).
    pub fn is_parameter(&self) -> bool {
        match self.dtype {
            DType::I32 => self.quant.as_ref().is_some_and(|q| !q.scale.is_empty()),
            other => other.is_numeric_param(),
        }
    }

    pub fn with_quant(mut self, q: Quantization) -> Self {
        self.quant = Some(q);
        self
    }

    /// Size in bytes of the tensor's contents.
    pub fn byte_len(&self) -> usize {
        self.num_elements() * self.dtype.size_bytes()
    }

    /// Bytes of the contents, `None` when the element count or the byte count does not
    /// fit in 64 bits (types without a fixed size count one byte per element).
    pub fn checked_byte_len(&self) -> Option<u64> {
        let elems = self
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))?;
        elems.checked_mul(self.dtype.fixed_size_bytes().unwrap_or(1) as u64)
    }

    /// Memory this tensor holds in the IR (the struct, its name, shape, data and
    /// quantization arrays): what reading or cloning it costs.
    pub fn memory_bytes(&self) -> u64 {
        let quant = self.quant.as_ref().map_or(0, |q| {
            std::mem::size_of::<Quantization>()
                + 4 * (q.scale.len() + q.min.len() + q.max.len())
                + 8 * q.zero_point.len()
        });
        (std::mem::size_of::<Tensor>()
            + self.name.len()
            + 8 * self.shape.len()
            + 4 * self.shape_signature.as_ref().map_or(0, Vec::len)
            + self.data.as_ref().map_or(0, Vec::len)
            + quant) as u64
    }

    /// Constant data decoded as float32 (`None` if not a float32 constant).
    pub fn data_f32(&self) -> Option<Vec<f32>> {
        match (&self.data, self.dtype) {
            (Some(d), DType::F32) => Some(bytes_to_f32(d)),
            _ => None,
        }
    }

    /// Constant data decoded as int32 (`None` if not an int32 constant).
    pub fn data_i32(&self) -> Option<Vec<i32>> {
        match (&self.data, self.dtype) {
            (Some(d), DType::I32) => Some(
                d.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Constant data decoded as int64 (int32 constants are widened).
    pub fn data_i64(&self) -> Option<Vec<i64>> {
        match (&self.data, self.dtype) {
            (Some(d), DType::I64) => Some(
                d.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            (Some(_), DType::I32) => self
                .data_i32()
                .map(|v| v.into_iter().map(i64::from).collect()),
            _ => None,
        }
    }
}

/// Decode little-endian float32 bytes (no alignment assumed).
pub fn bytes_to_f32(d: &[u8]) -> Vec<f32> {
    d.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Encode float32 values as little-endian bytes.
pub fn f32_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One operator application.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub kind: OpKind,
    /// Input tensors in TFLite order; `None` = optional input omitted (`-1`).
    pub inputs: Vec<Option<TensorId>>,
    pub outputs: Vec<TensorId>,
    /// Extra tensors that only carry quantization parameters (quantized LSTM).
    pub intermediates: Vec<TensorId>,
    /// Kernel version the op requires (`OperatorCode.version`).
    pub version: i32,
}

impl Op {
    pub fn new(kind: OpKind, inputs: Vec<TensorId>, outputs: Vec<TensorId>) -> Self {
        Op {
            kind,
            inputs: inputs.into_iter().map(Some).collect(),
            outputs,
            intermediates: Vec::new(),
            version: 1,
        }
    }

    /// The `i`-th input tensor id, if present.
    pub fn input(&self, i: usize) -> Option<TensorId> {
        self.inputs.get(i).copied().flatten()
    }

    /// Memory this op holds in the IR (the struct, its tensor lists and options).
    pub fn memory_bytes(&self) -> u64 {
        let options = match &self.kind {
            OpKind::Reshape { new_shape } => 4 * new_shape.as_ref().map_or(0, Vec::len),
            OpKind::Squeeze { dims } => 4 * dims.len(),
            OpKind::Custom { code, options } => code.len() + options.len(),
            _ => 0,
        };
        (std::mem::size_of::<Op>()
            + std::mem::size_of::<Option<TensorId>>() * self.inputs.len()
            + 8 * (self.outputs.len() + self.intermediates.len())
            + options) as u64
    }
}

/// A computation graph (a TFLite subgraph). Ops are in execution order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub tensors: Vec<Tensor>,
    pub ops: Vec<Op>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn add_tensor(&mut self, t: Tensor) -> TensorId {
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    pub fn add_op(&mut self, op: Op) {
        self.ops.push(op);
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// Memory the graph holds in the IR (tensors with their data, ops): what cloning it
    /// costs.
    pub fn memory_bytes(&self) -> u64 {
        let tensors = self.tensors.iter().map(Tensor::memory_bytes);
        let ops = self.ops.iter().map(Op::memory_bytes);
        tensors
            .chain(ops)
            .fold(self.name.len() as u64, u64::saturating_add)
            .saturating_add(8 * (self.inputs.len() + self.outputs.len()) as u64)
    }

    /// Number of parameters: elements of every constant weight or bias tensor. Plain
    /// int32/int64 constants are shape, axis or index operands, not parameters; int32
    /// with quantization is the bias of a quantized op.
    pub fn param_count(&self) -> usize {
        let mut seen = vec![false; self.tensors.len()];
        let mut n = 0;
        for op in &self.ops {
            for &t in op.inputs.iter().flatten() {
                let tensor = &self.tensors[t];
                if tensor.is_constant() && !seen[t] && tensor.is_parameter() {
                    seen[t] = true;
                    n += tensor.num_elements();
                }
            }
        }
        n
    }
}

/// Named model-level metadata (`Model.metadata`), contents inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub name: String,
    pub data: Vec<u8>,
}

/// A signature (`Model.signature_defs`): named inputs/outputs of a subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureDef {
    pub key: String,
    pub subgraph: usize,
    pub inputs: Vec<(String, TensorId)>,
    pub outputs: Vec<(String, TensorId)>,
}

/// A whole model: subgraph 0 is the one executed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub subgraphs: Vec<Graph>,
    pub description: String,
    pub metadata: Vec<Metadata>,
    pub signature_defs: Vec<SignatureDef>,
    /// Bytes after the FlatBuffer (e.g. the ZIP of label files the metadata tooling
    /// appends), carried over unchanged on write.
    pub trailing: Vec<u8>,
}

impl Model {
    pub fn from_graph(graph: Graph, description: impl Into<String>) -> Self {
        Model {
            subgraphs: vec![graph],
            description: description.into(),
            ..Default::default()
        }
    }

    /// Memory the model holds in the IR (subgraphs, metadata, trailing bytes): what
    /// cloning it costs.
    pub fn memory_bytes(&self) -> u64 {
        let metadata = self
            .metadata
            .iter()
            .map(|m| (std::mem::size_of::<Metadata>() + m.name.len() + m.data.len()) as u64);
        self.subgraphs
            .iter()
            .map(Graph::memory_bytes)
            .chain(metadata)
            .fold(
                (self.description.len() + self.trailing.len()) as u64,
                u64::saturating_add,
            )
    }

    /// The executed subgraph.
    pub fn main(&self) -> &Graph {
        &self.subgraphs[0]
    }

    pub fn main_mut(&mut self) -> &mut Graph {
        &mut self.subgraphs[0]
    }

    /// Check the structural invariants every consumer relies on: tensor indices in
    /// range, constant data length matching shape × element size, quantization arrays
    /// consistent with the shape.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.subgraphs.is_empty() {
            return Err(EngineError::invalid("model has no subgraph"));
        }
        for (gi, g) in self.subgraphs.iter().enumerate() {
            let n = g.tensors.len();
            let check = |t: usize, what: &str| -> Result<(), EngineError> {
                if t >= n {
                    Err(EngineError::invalid(format!(
                        "subgraph {gi}: {what} refers to tensor {t}, but there are only {n}"
                    )))
                } else {
                    Ok(())
                }
            };
            for &t in &g.inputs {
                check(t, "input list")?;
            }
            for &t in &g.outputs {
                check(t, "output list")?;
            }
            for (oi, op) in g.ops.iter().enumerate() {
                let what = format!("operator {oi} ({})", op.kind.name());
                for &t in op.inputs.iter().flatten() {
                    check(t, &what)?;
                }
                for &t in op.outputs.iter().chain(&op.intermediates) {
                    check(t, &what)?;
                }
            }
            for (ti, t) in g.tensors.iter().enumerate() {
                if let (Some(d), Some(sz)) = (&t.data, t.dtype.fixed_size_bytes()) {
                    let want = t.num_elements().checked_mul(sz);
                    if want != Some(d.len()) {
                        return Err(EngineError::invalid(format!(
                            "tensor {ti} '{}': {} data bytes, but shape {:?} of {} needs {}",
                            t.name,
                            d.len(),
                            t.shape,
                            t.dtype,
                            want.map_or("more than usize".to_string(), |w| w.to_string())
                        )));
                    }
                }
                if let Some(q) = &t.quant {
                    if q.scale.len() > 1 {
                        let dim = t.shape.get(q.axis).copied();
                        if dim != Some(q.scale.len()) {
                            return Err(EngineError::invalid(format!(
                                "tensor {ti} '{}': {} per-axis scales along axis {} of shape {:?}",
                                t.name,
                                q.scale.len(),
                                q.axis,
                                t.shape
                            )));
                        }
                    }
                    if !q.zero_point.is_empty() && q.zero_point.len() != q.scale.len() {
                        return Err(EngineError::invalid(format!(
                            "tensor {ti} '{}': {} scales but {} zero points",
                            t.name,
                            q.scale.len(),
                            q.zero_point.len()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

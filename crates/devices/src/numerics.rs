//! Model numerics: what a device profile `accepts`, and which of them a model file
//! actually uses (read from its tensors, not from how it was produced).

use quantfarm_engine::ir::{DType, Graph, Model, OpKind};
use serde::{Deserialize, Serialize};

/// The numerics of a model, as device profiles list them in `accepts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Numerics {
    /// Float32 weights and activations.
    Float32,
    /// Float16 weights (behind DEQUANTIZE), float32 activations on the CPU.
    Float16,
    /// Dynamic-range ("hybrid"): int8 weights, float activations.
    Dynamic,
    /// Full integer, int8 activations and weights.
    Int8,
    /// Int16 activations, int8 weights.
    Int16x8,
    /// Legacy full integer, uint8 activations and weights (TF1 QAT).
    Uint8,
}

impl Numerics {
    pub const ALL: [Numerics; 6] = [
        Numerics::Float32,
        Numerics::Float16,
        Numerics::Dynamic,
        Numerics::Int8,
        Numerics::Int16x8,
        Numerics::Uint8,
    ];

    /// The YAML spelling (`float32`, `int16x8`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Numerics::Float32 => "float32",
            Numerics::Float16 => "float16",
            Numerics::Dynamic => "dynamic",
            Numerics::Int8 => "int8",
            Numerics::Int16x8 => "int16x8",
            Numerics::Uint8 => "uint8",
        }
    }

    pub fn parse(s: &str) -> Option<Numerics> {
        Numerics::ALL.into_iter().find(|n| n.name() == s)
    }

    /// Fully 8-bit integer models (what the Edge TPU and the DSP take).
    pub fn is_full_8bit(self) -> bool {
        matches!(self, Numerics::Int8 | Numerics::Uint8)
    }
}

impl std::fmt::Display for Numerics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Ops that carry the model's weights: their types say what the model is.
pub(crate) fn is_weighted(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::Conv2D(_)
            | OpKind::DepthwiseConv2D(_)
            | OpKind::FullyConnected(_)
            | OpKind::UnidirectionalSequenceLstm(_)
            | OpKind::BatchMatMul(_)
    ) || matches!(kind, OpKind::UnknownBuiltin { code: 67 }) // TRANSPOSE_CONV
}

/// The numerics a model uses, from its weighted ops' tensor types (the first
/// activation input and the weights). Models without weighted ops are judged by
/// their non-constant tensors.
pub fn model_numerics(model: &Model) -> Numerics {
    let g = model.main();
    let mut seen_f16 = false;
    let mut votes = [0usize; 6];
    for op in &g.ops {
        if !is_weighted(&op.kind) {
            continue;
        }
        let act = op_activation_dtype(g, op);
        let w = weight_dtype(g, op);
        let n = match (act, w) {
            (Some(DType::F32), Some(DType::I8 | DType::U8)) => Numerics::Dynamic,
            (Some(DType::F32), Some(DType::F16)) => Numerics::Float16,
            (Some(DType::F32), _) => Numerics::Float32,
            (Some(DType::I16), _) => Numerics::Int16x8,
            (Some(DType::U8), _) => Numerics::Uint8,
            (Some(DType::I8), _) => Numerics::Int8,
            _ => continue,
        };
        votes[Numerics::ALL.iter().position(|&x| x == n).unwrap_or(0)] += 1;
    }
    // Float16 weights sit behind DEQUANTIZE ops, so the conv sees float32 weights.
    for op in &g.ops {
        if matches!(op.kind, OpKind::Dequantize)
            && op
                .input(0)
                .is_some_and(|t| g.tensors[t].dtype == DType::F16 && g.tensors[t].is_constant())
        {
            seen_f16 = true;
        }
    }
    if votes.iter().all(|&v| v == 0) {
        // No weighted op: the most common activation type decides.
        let count = |d: DType| {
            g.tensors
                .iter()
                .filter(|t| !t.is_constant() && t.dtype == d)
                .count()
        };
        let (f, i8c, u8c, i16c) = (
            count(DType::F32),
            count(DType::I8),
            count(DType::U8),
            count(DType::I16),
        );
        let best = [f, i8c, u8c, i16c].into_iter().max().unwrap_or(0);
        return if best == 0 || best == f {
            Numerics::Float32
        } else if best == i8c {
            Numerics::Int8
        } else if best == u8c {
            Numerics::Uint8
        } else {
            Numerics::Int16x8
        };
    }
    let best = votes
        .iter()
        .enumerate()
        .max_by_key(|&(i, &v)| (v, std::cmp::Reverse(i)))
        .map(|(i, _)| Numerics::ALL[i])
        .unwrap_or(Numerics::Float32);
    if best == Numerics::Float32 && seen_f16 {
        Numerics::Float16
    } else {
        best
    }
}

/// Type of an op's first non-constant input.
pub(crate) fn op_activation_dtype(g: &Graph, op: &quantfarm_engine::ir::Op) -> Option<DType> {
    op.inputs
        .iter()
        .flatten()
        .map(|&t| &g.tensors[t])
        .find(|t| !t.is_constant())
        .map(|t| t.dtype)
}

/// Type of a weighted op's weights: input 1 (conv/FC filter, LSTM input weights),
/// or what feeds it through a DEQUANTIZE (float16 weights).
fn weight_dtype(g: &Graph, op: &quantfarm_engine::ir::Op) -> Option<DType> {
    let t = op.input(1)?;
    let tensor = &g.tensors[t];
    if tensor.is_constant() {
        return Some(tensor.dtype);
    }
    // A DEQUANTIZE of a constant (float16 or int8 weights) produces it.
    g.ops
        .iter()
        .find(|p| p.outputs.contains(&t) && matches!(p.kind, OpKind::Dequantize))
        .and_then(|p| p.input(0))
        .map(|s| g.tensors[s].dtype)
        .or(Some(tensor.dtype))
}

//! Post-training quantizers: float32 model → float16, dynamic-range, full-integer
//! (int8, int16x8, legacy uint8) models that LiteRT loads and runs.
//!
//! Conventions follow the quantization spec (§1–6, §16) and TFLite's converter; op
//! versions follow `tensorflow/lite/tools/versioning/op_version.cc` ([`versions`]).

mod dynamic;
mod float16;
mod integer;
pub mod versions;
mod weights;

pub use weights::{
    WeightRange, quantize_weights_asymmetric_u8, quantize_weights_symmetric,
    quantize_weights_symmetric_with,
};

use crate::error::{EngineError, Result};
use crate::ir::{DType, Graph, Model, TensorId};
use crate::quant::calibrate::{Grid, TensorRanges};

/// The quantization scheme to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantMode {
    /// Float constants stored as FLOAT16, each behind a DEQUANTIZE.
    Float16,
    /// Int8 weights for conv/depthwise/FC (hybrid kernels); activations float.
    Dynamic,
    /// Full integer: int8 activations and weights, int32 bias.
    Int8,
    /// Int16 symmetric activations, int8 weights, int64 bias.
    Int16x8,
    /// Legacy TF1 scheme: per-tensor asymmetric uint8 everywhere.
    Uint8,
}

impl QuantMode {
    pub fn parse(s: &str) -> Result<QuantMode> {
        Ok(match s {
            "float16" => QuantMode::Float16,
            "dynamic" => QuantMode::Dynamic,
            "int8" => QuantMode::Int8,
            "int16x8" => QuantMode::Int16x8,
            "uint8" => QuantMode::Uint8,
            other => {
                return Err(EngineError::bad_input(format!(
                    "unknown quantization mode '{other}' (float16, dynamic, int8, int16x8, uint8)"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            QuantMode::Float16 => "float16",
            QuantMode::Dynamic => "dynamic",
            QuantMode::Int8 => "int8",
            QuantMode::Int16x8 => "int16x8",
            QuantMode::Uint8 => "uint8",
        }
    }

    /// Whether the mode needs calibrated activation ranges.
    pub fn needs_calibration(self) -> bool {
        matches!(
            self,
            QuantMode::Int8 | QuantMode::Int16x8 | QuantMode::Uint8
        )
    }

    /// The grid activations are mapped to (for the MSE range estimator).
    pub fn activation_grid(self) -> Grid {
        match self {
            QuantMode::Int16x8 => Grid::Symmetric16,
            _ => Grid::Asymmetric8,
        }
    }
}

/// Type of the model's inputs and outputs in full-integer modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoType {
    /// Float32 I/O with QUANTIZE / DEQUANTIZE at the edges.
    Float,
    Int8,
    Uint8,
}

impl IoType {
    pub fn parse(s: &str) -> Result<IoType> {
        Ok(match s {
            "float" | "float32" => IoType::Float,
            "int8" => IoType::Int8,
            "uint8" => IoType::Uint8,
            other => {
                return Err(EngineError::bad_input(format!(
                    "unknown I/O type '{other}' (float, int8, uint8)"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PtqOptions {
    pub mode: QuantMode,
    pub io: IoType,
    /// Keep ops that cannot be quantized in float, with DEQUANTIZE/QUANTIZE around them.
    pub allow_float_fallback: bool,
    /// Dynamic mode: weights with fewer elements stay float (TFLite: 1024).
    pub dynamic_min_elements: usize,
    /// How symmetric int8 weight scales are chosen (int8, int16x8, dynamic).
    pub weight_range: WeightRange,
}

impl PtqOptions {
    /// Reject option combinations the quantizer cannot produce (before calibrating).
    pub fn check(&self) -> Result<()> {
        if self.mode != QuantMode::Int8 && self.mode != QuantMode::Uint8 && self.io != IoType::Float
        {
            let supported = if self.mode == QuantMode::Int16x8 {
                "int16x8 models here keep float I/O"
            } else {
                "only full-integer modes change the I/O type"
            };
            return Err(EngineError::bad_input(format!(
                "--io other than float is not available for mode {}: {supported}",
                self.mode.name()
            )));
        }
        Ok(())
    }

    pub fn new(mode: QuantMode) -> Self {
        PtqOptions {
            mode,
            io: IoType::Float,
            allow_float_fallback: false,
            dynamic_min_elements: 1024,
            weight_range: WeightRange::Mse,
        }
    }
}

/// What a quantizer did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PtqSummary {
    /// Ops running in the target scheme (integer, hybrid, or fed by fp16 constants).
    pub quantized_ops: usize,
    /// Ops left in float (by name, with their index in the input model).
    pub float_ops: Vec<(usize, String)>,
    /// QUANTIZE / DEQUANTIZE ops inserted.
    pub inserted_quantize: usize,
    pub inserted_dequantize: usize,
    /// Constant tensors converted (weights, biases, other constants).
    pub quantized_constants: usize,
}

/// Quantize a float32 model. Full-integer modes need `ranges` from calibration.
pub fn quantize_model(
    model: &Model,
    opts: &PtqOptions,
    ranges: Option<&TensorRanges>,
) -> Result<(Model, PtqSummary)> {
    ensure_float_model(model)?;
    opts.check()?;
    let (mut out, summary) = match opts.mode {
        QuantMode::Float16 => float16::quantize(model)?,
        QuantMode::Dynamic => {
            dynamic::quantize(model, opts.dynamic_min_elements, opts.weight_range)?
        }
        QuantMode::Int8 | QuantMode::Int16x8 | QuantMode::Uint8 => {
            let ranges = ranges.ok_or_else(|| {
                EngineError::bad_input(format!(
                    "mode {} needs calibration ranges",
                    opts.mode.name()
                ))
            })?;
            integer::quantize(model, opts, ranges)?
        }
    };
    for (gi, g) in out.subgraphs.iter_mut().enumerate() {
        let map = compact(g);
        for sig in out.signature_defs.iter_mut().filter(|s| s.subgraph == gi) {
            for (_, t) in sig.inputs.iter_mut().chain(sig.outputs.iter_mut()) {
                *t = map.get(*t).copied().unwrap_or(usize::MAX);
            }
        }
        versions::set_versions(g);
    }
    out.validate()?;
    Ok((out, summary))
}

/// Refuse models that already contain quantized tensors or non-float activations
/// where float is expected: quantizing twice would compound errors silently.
pub fn ensure_float_model(model: &Model) -> Result<()> {
    model.validate()?;
    let g = model.main();
    for (i, t) in g.tensors.iter().enumerate() {
        let quantized = t.quant.as_ref().is_some_and(|q| !q.scale.is_empty());
        if quantized || matches!(t.dtype, DType::I8 | DType::U8 | DType::I16 | DType::F16) {
            if t.is_constant() && !quantized && t.dtype != DType::F16 {
                continue;
            }
            return Err(EngineError::unsupported(format!(
                "the input model is not a float32 model: tensor {i} '{}' is {}{} \
                 (dequantize it first with `quantfarm convert --to float32`)",
                t.name,
                t.dtype,
                if quantized { " with quantization" } else { "" }
            )));
        }
    }
    for &t in &g.inputs {
        if g.tensors[t].dtype != DType::F32 {
            return Err(EngineError::unsupported(format!(
                "the input model's input '{}' is {}, not float32",
                g.tensors[t].name, g.tensors[t].dtype
            )));
        }
    }
    Ok(())
}

/// Drop tensors no op or graph I/O refers to (e.g. float weights replaced by their
/// quantized copies) and renumber the rest, keeping their order. Returns the old → new
/// id map (`usize::MAX` for dropped tensors).
pub(crate) fn compact(g: &mut Graph) -> Vec<TensorId> {
    let mut used = vec![false; g.tensors.len()];
    for op in &g.ops {
        for &t in op.inputs.iter().flatten() {
            used[t] = true;
        }
        for &t in op.outputs.iter().chain(&op.intermediates) {
            used[t] = true;
        }
    }
    for &t in g.inputs.iter().chain(&g.outputs) {
        used[t] = true;
    }
    let mut map = vec![usize::MAX; g.tensors.len()];
    let mut kept = Vec::with_capacity(g.tensors.len());
    for (i, t) in std::mem::take(&mut g.tensors).into_iter().enumerate() {
        if used[i] {
            map[i] = kept.len();
            kept.push(t);
        }
    }
    g.tensors = kept;
    let remap = |t: &mut TensorId| *t = map[*t];
    for op in &mut g.ops {
        op.inputs.iter_mut().flatten().for_each(remap);
        op.outputs.iter_mut().for_each(remap);
        op.intermediates.iter_mut().for_each(remap);
    }
    g.inputs.iter_mut().for_each(remap);
    g.outputs.iter_mut().for_each(remap);
    map
}

#[cfg(test)]
mod tests;

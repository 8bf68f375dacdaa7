//! Full-integer post-training quantization: int8 (spec §2), int16x8 (§4) and the
//! legacy uint8 scheme (§3), with calibrated activation ranges (§16).
//!
//! Steps:
//! 1. decide which ops can be quantized (the rest is an error, or stays float with
//!    `allow_float_fallback`);
//! 2. give every activation its parameters: fixed-output ops get their fixed ones,
//!    "same parameter" ops (pools, reshape, concat, pad, ...) tie their inputs and
//!    output into one group whose range is the union of the members' ranges;
//! 3. rewrite the graph: weights per-channel symmetric int8 (uint8: per-tensor
//!    asymmetric), biases int32 (int16x8: int64) with scale `in_s · w_s[c]`, and
//!    QUANTIZE / DEQUANTIZE wherever a tensor crosses between float and integer ops
//!    (model I/O included).

use std::collections::HashMap;

use super::weights::{
    WeightRange, asymmetric_params, quantize_bias, quantize_weights_asymmetric_u8,
    quantize_weights_symmetric_with, requantize_channel, symmetric_scale,
};
use super::{IoType, PtqOptions, PtqSummary, QuantMode};
use crate::error::{EngineError, Result};
use crate::ir::{DType, Graph, Model, Op, OpKind, Quantization, Tensor, TensorId};
use crate::quant::calibrate::TensorRanges;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Int8,
    Int16,
    Uint8,
}

impl Scheme {
    fn act_dtype(self) -> DType {
        match self {
            Scheme::Int8 => DType::I8,
            Scheme::Int16 => DType::I16,
            Scheme::Uint8 => DType::U8,
        }
    }

    fn qrange(self) -> (i64, i64) {
        match self {
            Scheme::Int8 => (-128, 127),
            Scheme::Int16 => (-32768, 32767),
            Scheme::Uint8 => (0, 255),
        }
    }

    /// Activation parameters for a calibrated range.
    fn params(self, lo: f32, hi: f32) -> (f32, i64) {
        match self {
            Scheme::Int16 => (symmetric_scale(lo, hi, 32767.0), 0),
            _ => {
                let (qmin, qmax) = self.qrange();
                asymmetric_params(lo, hi, qmin, qmax)
            }
        }
    }

    /// Fixed output parameters of SOFTMAX / LOGISTIC / TANH (spec §2–4).
    fn fixed_output(self, kind: &OpKind) -> Option<(f32, i64)> {
        let s256 = 1.0 / 256.0;
        let s128 = 1.0 / 128.0;
        let s32768 = 1.0 / 32768.0;
        match (self, kind) {
            (Scheme::Int8, OpKind::Softmax { .. } | OpKind::Logistic) => Some((s256, -128)),
            (Scheme::Int8, OpKind::Tanh) => Some((s128, 0)),
            (Scheme::Uint8, OpKind::Softmax { .. } | OpKind::Logistic) => Some((s256, 0)),
            (Scheme::Uint8, OpKind::Tanh) => Some((s128, 128)),
            (Scheme::Int16, OpKind::Softmax { .. } | OpKind::Logistic | OpKind::Tanh) => {
                Some((s32768, 0))
            }
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Int8 => "int8",
            Scheme::Int16 => "int16x8",
            Scheme::Uint8 => "uint8",
        }
    }
}

/// Ops whose output must share the input's parameters (spec §2): they move or compare
/// raw integers.
fn same_params(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::AveragePool2D(_)
            | OpKind::MaxPool2D(_)
            | OpKind::Concatenation { .. }
            | OpKind::Reshape { .. }
            | OpKind::Squeeze { .. }
            | OpKind::Pad
            | OpKind::ResizeBilinear { .. }
            | OpKind::Gather { .. }
            | OpKind::Transpose
            | OpKind::StridedSlice(_)
    )
}

/// Whether `op` has an integer kernel in `scheme` (in TFLite and the engine), with the
/// operand kinds the quantizer handles.
fn quantizable(scheme: Scheme, op: &Op, g: &Graph) -> bool {
    let is_f32_const = |i: usize| {
        op.input(i)
            .is_some_and(|t| g.tensors[t].data_f32().is_some())
    };
    let float_act = |i: usize| {
        op.input(i)
            .is_some_and(|t| g.tensors[t].dtype == DType::F32 && !g.tensors[t].is_constant())
    };
    let bias_ok = op
        .input(2)
        .is_none_or(|t| g.tensors[t].data_f32().is_some());
    let outputs_f32 = op.outputs.iter().all(|&t| g.tensors[t].dtype == DType::F32);
    if !outputs_f32 {
        return false;
    }
    let int16 = scheme == Scheme::Int16;
    match &op.kind {
        OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_) | OpKind::FullyConnected(_) => {
            float_act(0) && is_f32_const(1) && bias_ok
        }
        OpKind::Add { .. }
        | OpKind::Sub { .. }
        | OpKind::Mul { .. }
        | OpKind::AveragePool2D(_)
        | OpKind::MaxPool2D(_)
        | OpKind::Concatenation { .. }
        | OpKind::Reshape { .. }
        | OpKind::Squeeze { .. }
        | OpKind::Softmax { .. }
        | OpKind::Logistic
        | OpKind::Tanh
        | OpKind::Pad
        | OpKind::Mean { .. }
        | OpKind::StridedSlice(_)
        | OpKind::Transpose => true,
        OpKind::Relu | OpKind::Relu6 | OpKind::ResizeBilinear { .. } | OpKind::HardSwish => !int16,
        OpKind::Gather { .. } => !int16,
        _ => false,
    }
}

/// Union-find over tensor ids (the parameter groups of step 2).
struct Groups(Vec<usize>);

impl Groups {
    fn find(&mut self, mut t: usize) -> usize {
        while self.0[t] != t {
            self.0[t] = self.0[self.0[t]];
            t = self.0[t];
        }
        t
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra] = rb;
        }
    }
}

/// How a tensor exists in the rewritten graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repr {
    Float,
    /// In the activation type of the scheme.
    Quant,
    /// A model input in an 8-bit I/O type other than the activation type.
    External,
}

pub(super) fn quantize(
    model: &Model,
    opts: &PtqOptions,
    ranges: &TensorRanges,
) -> Result<(Model, PtqSummary)> {
    let scheme = match opts.mode {
        QuantMode::Int8 => Scheme::Int8,
        QuantMode::Int16x8 => Scheme::Int16,
        QuantMode::Uint8 => Scheme::Uint8,
        other => {
            return Err(EngineError::bad_input(format!(
                "{} is not a full-integer mode",
                other.name()
            )));
        }
    };
    let g = model.main();
    let n = g.tensors.len();
    let mut summary = PtqSummary::default();

    // 1. Which ops become integer.
    let quant_op: Vec<bool> = g.ops.iter().map(|op| quantizable(scheme, op, g)).collect();
    let unsupported: Vec<(usize, String)> = g
        .ops
        .iter()
        .enumerate()
        .filter(|(i, _)| !quant_op[*i])
        .map(|(i, op)| (i, op.kind.name()))
        .collect();
    if !unsupported.is_empty() && !opts.allow_float_fallback {
        let list: Vec<String> = unsupported
            .iter()
            .map(|(i, name)| format!("{name} (op {i})"))
            .collect();
        return Err(EngineError::unsupported(format!(
            "{} op(s) cannot be quantized to {}: {}; pass --allow-float-fallback to keep them in float",
            unsupported.len(),
            scheme.name(),
            list.join(", ")
        )));
    }
    summary.float_ops = unsupported;

    // 2. Parameter groups and ranges.
    let is_float = |t: TensorId| g.tensors[t].dtype == DType::F32;
    let mut groups = Groups((0..n).collect());
    for (oi, op) in g.ops.iter().enumerate() {
        if !quant_op[oi] || !same_params(&op.kind) {
            continue;
        }
        let out = op.outputs[0];
        let tied: &[Option<TensorId>] = if matches!(op.kind, OpKind::Concatenation { .. }) {
            &op.inputs
        } else {
            &op.inputs[..1.min(op.inputs.len())]
        };
        for &t in tied.iter().flatten() {
            if is_float(t) {
                groups.union(t, out);
            }
        }
    }
    let mut fixed: Vec<Option<(f32, i64)>> = vec![None; n];
    for (oi, op) in g.ops.iter().enumerate() {
        if quant_op[oi]
            && let Some(p) = scheme.fixed_output(&op.kind)
        {
            fixed[op.outputs[0]] = Some(p);
        }
    }
    let mut group_range: HashMap<usize, (f32, f32)> = HashMap::new();
    let mut group_fixed: HashMap<usize, (f32, i64)> = HashMap::new();
    for (t, fixed_t) in fixed.iter().enumerate() {
        if !is_float(t) {
            continue;
        }
        let root = groups.find(t);
        if let Some(p) = *fixed_t {
            if let Some(&old) = group_fixed.get(&root)
                && old != p
            {
                return Err(EngineError::unsupported(format!(
                    "tensor '{}' must have two different fixed quantization parameters",
                    g.tensors[t].name
                )));
            }
            group_fixed.insert(root, p);
        }
        let r = match g.tensors[t].data_f32() {
            Some(v) => Some((
                v.iter().copied().fold(f32::INFINITY, f32::min),
                v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            )),
            None => ranges.get(t).map(|r| (r.min, r.max)),
        };
        if let Some((lo, hi)) = r
            && lo <= hi
        {
            let e = group_range.entry(root).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        }
    }
    let mut params_of = |t: TensorId| -> Result<(f32, i64)> {
        let root = groups.find(t);
        if let Some(&p) = group_fixed.get(&root) {
            return Ok(p);
        }
        match group_range.get(&root) {
            Some(&(lo, hi)) => Ok(scheme.params(lo, hi)),
            None => Err(EngineError::bad_input(format!(
                "no calibration statistics for tensor '{}' (was it computed by the float model?)",
                g.tensors[t].name
            ))),
        }
    };
    // Compute every needed activation's parameters up front (errors surface early).
    let mut act_params: Vec<Option<(f32, i64)>> = vec![None; n];
    for (oi, op) in g.ops.iter().enumerate() {
        if !quant_op[oi] {
            continue;
        }
        let weight_slots = matches!(
            op.kind,
            OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_) | OpKind::FullyConnected(_)
        );
        for (i, t) in op.inputs.iter().enumerate() {
            let Some(t) = *t else { continue };
            if weight_slots && i > 0 {
                continue;
            }
            if is_float(t) {
                act_params[t] = Some(params_of(t)?);
            }
        }
        for &t in &op.outputs {
            act_params[t] = Some(params_of(t)?);
        }
    }
    for &t in g.inputs.iter().chain(&g.outputs) {
        if is_float(t) && act_params[t].is_none() && opts.io != IoType::Float {
            act_params[t] = Some(params_of(t)?);
        }
    }

    // 3. Rewrite.
    let mut out = model.clone();
    let mut rw = Rewriter {
        g: std::mem::take(out.main_mut()),
        ops: Vec::new(),
        repr: vec![Repr::Float; n],
        q_version: HashMap::new(),
        f_version: HashMap::new(),
        act_params,
        orig_float: g.tensors.iter().map(|t| t.dtype == DType::F32).collect(),
        scheme,
        weight_range: opts.weight_range,
        summary: &mut summary,
    };
    rw.g.ops.clear();
    let io_dtype = match opts.io {
        IoType::Float => None,
        IoType::Int8 => Some(DType::I8),
        IoType::Uint8 => Some(DType::U8),
    };
    if let Some(io) = io_dtype {
        for &t in &g.inputs {
            let (s, zp) = rw.params(t)?;
            let tensor = &mut rw.g.tensors[t];
            if io == scheme.act_dtype() {
                tensor.dtype = io;
                tensor.quant = Some(Quantization::per_tensor(s, zp));
                rw.repr[t] = Repr::Quant;
            } else {
                tensor.dtype = io;
                tensor.quant = Some(Quantization::per_tensor(s, external_zp(scheme, zp)));
                rw.repr[t] = Repr::External;
            }
        }
    }
    for (oi, op) in g.ops.iter().enumerate() {
        if quant_op[oi] {
            rw.quantized_op(op)?;
            rw.summary.quantized_ops += 1;
        } else {
            rw.float_op(op);
        }
    }
    // Model outputs in the requested type.
    let mut renamed = Vec::new();
    let mut new_outputs = Vec::with_capacity(g.outputs.len());
    for &t in &g.outputs {
        let target = match io_dtype {
            None => {
                if rw.repr[t] == Repr::Float {
                    t
                } else {
                    rw.float_version(t)
                }
            }
            Some(io) if io == scheme.act_dtype() => rw.quant_version(t)?,
            Some(io) => {
                let q = rw.quant_version(t)?;
                let (s, zp) = rw.params(t)?;
                let name = format!("{}_{}", rw.g.tensors[t].name, io.name());
                let mut ext = Tensor::activation(name, rw.g.tensors[t].shape.clone(), io);
                ext.quant = Some(Quantization::per_tensor(s, external_zp(scheme, zp)));
                let e = rw.g.add_tensor(ext);
                rw.ops.push(Op::new(OpKind::Quantize, vec![q], vec![e]));
                rw.summary.inserted_quantize += 1;
                e
            }
        };
        if target != t {
            renamed.push((t, target));
        }
        new_outputs.push(target);
    }
    // The tensor the caller sees keeps the original output name.
    for &(old, new) in &renamed {
        let name = rw.g.tensors[old].name.clone();
        rw.g.tensors[old].name = format!("{name}_internal");
        rw.g.tensors[new].name = name;
    }
    let mut graph = rw.g;
    graph.ops = rw.ops;
    graph.outputs = new_outputs;
    *out.main_mut() = graph;
    for sig in out.signature_defs.iter_mut().filter(|s| s.subgraph == 0) {
        for (_, t) in sig.outputs.iter_mut() {
            if let Some(&(_, new)) = renamed.iter().find(|(old, _)| old == t) {
                *t = new;
            }
        }
    }
    Ok((out, summary))
}

/// Zero point of the other 8-bit type with the same scale (a pure bit flip, spec §1).
fn external_zp(scheme: Scheme, zp: i64) -> i64 {
    match scheme {
        Scheme::Uint8 => zp - 128,
        _ => zp + 128,
    }
}

struct Rewriter<'a> {
    g: Graph,
    ops: Vec<Op>,
    repr: Vec<Repr>,
    q_version: HashMap<TensorId, TensorId>,
    f_version: HashMap<TensorId, TensorId>,
    act_params: Vec<Option<(f32, i64)>>,
    /// Whether each original tensor was float32 (the rewrite changes dtypes in place).
    orig_float: Vec<bool>,
    scheme: Scheme,
    weight_range: WeightRange,
    summary: &'a mut PtqSummary,
}

impl Rewriter<'_> {
    fn params(&self, t: TensorId) -> Result<(f32, i64)> {
        self.act_params.get(t).copied().flatten().ok_or_else(|| {
            EngineError::bad_input(format!(
                "no calibration statistics for tensor '{}'",
                self.g.tensors.get(t).map_or("?", |t| t.name.as_str())
            ))
        })
    }

    fn is_float_activation(&self, t: TensorId) -> bool {
        t < self.repr.len() && !self.g.tensors[t].is_constant()
    }

    /// The integer version of activation `t`, inserting a QUANTIZE if needed.
    fn quant_version(&mut self, t: TensorId) -> Result<TensorId> {
        if self.repr[t] == Repr::Quant {
            return Ok(t);
        }
        if let Some(&q) = self.q_version.get(&t) {
            return Ok(q);
        }
        let (s, zp) = self.params(t)?;
        let src = &self.g.tensors[t];
        let mut q = Tensor::activation(
            format!("{}_quantized", src.name),
            src.shape.clone(),
            self.scheme.act_dtype(),
        );
        q.quant = Some(Quantization::per_tensor(s, zp));
        let qt = self.g.add_tensor(q);
        self.ops.push(Op::new(OpKind::Quantize, vec![t], vec![qt]));
        self.summary.inserted_quantize += 1;
        self.q_version.insert(t, qt);
        Ok(qt)
    }

    /// The float version of activation `t`, inserting a DEQUANTIZE if needed.
    fn float_version(&mut self, t: TensorId) -> TensorId {
        if self.repr[t] == Repr::Float {
            return t;
        }
        if let Some(&f) = self.f_version.get(&t) {
            return f;
        }
        let src = &self.g.tensors[t];
        let f = Tensor::activation(
            format!("{}_dequantized", src.name),
            src.shape.clone(),
            DType::F32,
        );
        let ft = self.g.add_tensor(f);
        self.ops
            .push(Op::new(OpKind::Dequantize, vec![t], vec![ft]));
        self.summary.inserted_dequantize += 1;
        self.f_version.insert(t, ft);
        ft
    }

    fn float_op(&mut self, op: &Op) {
        let mut nop = op.clone();
        for slot in nop.inputs.iter_mut() {
            if let Some(t) = *slot
                && self.is_float_activation(t)
            {
                *slot = Some(self.float_version(t));
            }
        }
        self.ops.push(nop);
    }

    /// A constant float tensor quantized with activation parameters (e.g. the second
    /// operand of ADD/MUL, a constant concatenated).
    fn quantize_constant_activation(&mut self, t: TensorId) -> Result<TensorId> {
        let (s, zp) = self.params(t)?;
        let src = &self.g.tensors[t];
        let values = src.data_f32().unwrap_or_default();
        let (qmin, qmax) = self.scheme.qrange();
        let q: Vec<i64> = values
            .iter()
            .map(|&v| ((v / s).round() as i64 + zp).clamp(qmin, qmax))
            .collect();
        let dtype = self.scheme.act_dtype();
        let data = encode_ints(&q, dtype);
        let c = Tensor::constant(src.name.clone(), src.shape.clone(), dtype, data)
            .with_quant(Quantization::per_tensor(s, zp));
        self.summary.quantized_constants += 1;
        Ok(self.g.add_tensor(c))
    }

    fn quantized_op(&mut self, op: &Op) -> Result<()> {
        let mut nop = op.clone();
        match &op.kind {
            OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_) | OpKind::FullyConnected(_) => {
                self.quantize_weighted(op, &mut nop)?;
            }
            _ => {
                for slot in nop.inputs.iter_mut() {
                    let Some(t) = *slot else { continue };
                    if !self.orig_float.get(t).copied().unwrap_or(false) {
                        continue;
                    }
                    *slot = Some(if self.g.tensors[t].is_constant() {
                        self.quantize_constant_activation(t)?
                    } else {
                        self.quant_version(t)?
                    });
                }
            }
        }
        if self.scheme == Scheme::Int16
            && let OpKind::Add {
                pot_scale_int16, ..
            }
            | OpKind::Sub {
                pot_scale_int16, ..
            } = &mut nop.kind
        {
            // General int16 scaling (not the power-of-two path), as the converter writes.
            *pot_scale_int16 = false;
        }
        for &o in &op.outputs {
            let (s, zp) = self.params(o)?;
            let t = &mut self.g.tensors[o];
            t.dtype = self.scheme.act_dtype();
            t.quant = Some(Quantization::per_tensor(s, zp));
            self.repr[o] = Repr::Quant;
        }
        self.ops.push(nop);
        Ok(())
    }

    /// CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: input, weights, bias.
    fn quantize_weighted(&mut self, op: &Op, nop: &mut Op) -> Result<()> {
        let x = op
            .input(0)
            .ok_or_else(|| EngineError::invalid(format!("{} without input", op.kind.name())))?;
        let w = op
            .input(1)
            .ok_or_else(|| EngineError::invalid(format!("{} without weights", op.kind.name())))?;
        let xq = self.quant_version(x)?;
        nop.inputs[0] = Some(xq);
        let (in_s, _) = self.params(x)?;
        let wt = self.g.tensors[w].clone();
        let values = wt.data_f32().ok_or_else(|| {
            EngineError::unsupported(format!("{}: weights are not constant", op.kind.name()))
        })?;
        let axis = match op.kind {
            OpKind::Conv2D(_) => Some(0),
            OpKind::DepthwiseConv2D(_) => Some(3),
            _ => None,
        };
        let bias = op.input(2).map(|b| self.g.tensors[b].clone());
        let bias_values = bias.as_ref().and_then(|b| b.data_f32());
        let (w_tensor, w_scales) = match self.scheme {
            Scheme::Uint8 => {
                let (q, s, zp) = quantize_weights_asymmetric_u8(&values);
                let t = Tensor::constant(wt.name.clone(), wt.shape.clone(), DType::U8, q)
                    .with_quant(Quantization::per_tensor(s, zp));
                (t, vec![s])
            }
            Scheme::Int8 | Scheme::Int16 => {
                let (mut q, mut scales) =
                    quantize_weights_symmetric_with(&values, &wt.shape, axis, self.weight_range);
                if self.scheme == Scheme::Int8
                    && let Some(b) = &bias_values
                {
                    // A bias that needs more than half the int32 range: widen that
                    // channel's weight scale first (the converter's rule, spec §16).
                    let half = (1u64 << 30) as f32;
                    for c in 0..scales.len() {
                        let bmax = if scales.len() == 1 {
                            b.iter().fold(0f32, |m, v| m.max(v.abs()))
                        } else {
                            b.get(c).map_or(0.0, |v| v.abs())
                        };
                        if bmax / (in_s * scales[c]) > half {
                            scales[c] = bmax / (in_s * half);
                            requantize_channel(&values, &mut q, &wt.shape, axis, c, scales[c]);
                        }
                    }
                }
                let quant = match axis {
                    Some(a) if scales.len() > 1 => {
                        Quantization::per_axis(scales.clone(), vec![0; scales.len()], a)
                    }
                    _ => Quantization::per_tensor(scales[0], 0),
                };
                let t = Tensor::constant(
                    wt.name.clone(),
                    wt.shape.clone(),
                    DType::I8,
                    q.iter().map(|&v| v as u8).collect(),
                )
                .with_quant(quant);
                (t, scales)
            }
        };
        nop.inputs[1] = Some(self.g.add_tensor(w_tensor));
        self.summary.quantized_constants += 1;
        if let (Some(b), Some(bv)) = (&bias, &bias_values) {
            let b_scales: Vec<f32> = w_scales.iter().map(|&ws| in_s * ws).collect();
            let (dtype, limit) = match self.scheme {
                Scheme::Int16 => (DType::I64, i64::MAX),
                _ => (DType::I32, i32::MAX as i64),
            };
            let q = quantize_bias(bv, &b_scales, limit);
            let quant = if b_scales.len() > 1 {
                Quantization::per_axis(b_scales.clone(), vec![0; b_scales.len()], 0)
            } else {
                Quantization::per_tensor(b_scales[0], 0)
            };
            let t = Tensor::constant(
                b.name.clone(),
                b.shape.clone(),
                dtype,
                encode_ints(&q, dtype),
            )
            .with_quant(quant);
            nop.inputs[2] = Some(self.g.add_tensor(t));
            self.summary.quantized_constants += 1;
        }
        Ok(())
    }
}

/// Little-endian bytes of integers in `dtype`.
fn encode_ints(v: &[i64], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::I8 => v.iter().map(|&x| x as i8 as u8).collect(),
        DType::U8 => v.iter().map(|&x| x as u8).collect(),
        DType::I16 => v.iter().flat_map(|&x| (x as i16).to_le_bytes()).collect(),
        DType::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
        _ => v.iter().flat_map(|&x| x.to_le_bytes()).collect(),
    }
}

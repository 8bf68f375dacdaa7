//! The integer op family for everything but conv/depthwise/FC and LSTM: ADD, SUB,
//! MUL, pools, SOFTMAX, LOGISTIC, TANH, HARD_SWISH, RELU/RELU6, MEAN,
//! RESIZE_BILINEAR, CONCATENATION with differing parameters, QUANTIZE int→int, and
//! the type-generic PACK, UNPACK and GATHER_ND. An op is claimed when its tensors
//! are quantized integers (or, for the generic ops, always); everything else is
//! left to the float family.

mod kernel;

use kernel::{QKernel, by_qtype};

use crate::error::{EngineError, Result};
use crate::exec::kernels::qops::{
    QInt,
    act16::{Sigmoid16, Sigmoid16Kind},
    binary::{AddSubTables, MulKernel, QBinaryKind, QBinaryParams},
    lut::{self, HardSwishParams, ReluParams},
    mean::QMean,
    pool::QPoolParams,
    requant::{ConcatPart, Requantize},
    softmax::{Softmax16, SoftmaxParams},
};
use crate::exec::kernels::{KernelChoice, elementwise::broadcast_shape};
use crate::exec::prepare::*;
use crate::ir::{Activation, DType, Graph, Op, OpKind, Pool2DOptions, TensorId};
use crate::quant::fixed_point::{Multiplier, activation_range};

fn is_qint(dt: DType) -> bool {
    matches!(dt, DType::U8 | DType::I8 | DType::I16)
}

fn is_quantized(g: &Graph, t: TensorId) -> bool {
    is_qint(g.tensors[t].dtype)
        && g.tensors[t]
            .quant
            .as_ref()
            .is_some_and(|q| !q.scale.is_empty())
}

/// Per-tensor (scale, zero point) of a quantized tensor.
fn qparams(g: &Graph, t: TensorId) -> Result<(f32, i32)> {
    let tensor = &g.tensors[t];
    let q = tensor
        .quant
        .as_ref()
        .filter(|q| !q.scale.is_empty())
        .ok_or_else(|| {
            EngineError::invalid(format!("tensor '{}' has no quantization", tensor.name))
        })?;
    if q.is_per_axis() {
        return Err(EngineError::unsupported(format!(
            "tensor '{}' is quantized per axis; this op needs one scale",
            tensor.name
        )));
    }
    let (s, z) = q.params(0);
    if !(s.is_finite() && s > 0.0) {
        return Err(EngineError::invalid(format!(
            "tensor '{}' has scale {s}",
            tensor.name
        )));
    }
    let (lo, hi) = type_range(tensor.dtype);
    if z < lo as i64 || z > hi as i64 {
        return Err(EngineError::invalid(format!(
            "tensor '{}' zero point {z} outside its {} range",
            tensor.name, tensor.dtype
        )));
    }
    Ok((s, z as i32))
}

fn type_range(dt: DType) -> (i32, i32) {
    match dt {
        DType::U8 => (0, 255),
        DType::I8 => (-128, 127),
        _ => (-32768, 32767),
    }
}

fn same_type(g: &Graph, a: TensorId, b: TensorId) -> Result<()> {
    if g.tensors[a].dtype != g.tensors[b].dtype {
        return Err(EngineError::unsupported(format!(
            "'{}' is {} but '{}' is {}",
            g.tensors[a].name, g.tensors[a].dtype, g.tensors[b].name, g.tensors[b].dtype
        )));
    }
    Ok(())
}

fn act_range_q(g: &Graph, y: TensorId, act: Activation) -> Result<(i32, i32)> {
    let (s, z) = qparams(g, y)?;
    let (lo, hi) = type_range(g.tensors[y].dtype);
    Ok(activation_range(act, s, z, lo, hi))
}

/// Does this family take the op?
fn claims(g: &Graph, op: &Op) -> bool {
    use OpKind::*;
    let in0 = op.input(0);
    let out0 = op.outputs.first().copied();
    let q_in = in0.is_some_and(|t| is_quantized(g, t));
    let q_out = out0.is_some_and(|t| is_quantized(g, t));
    match &op.kind {
        Add { .. } | Sub { .. } | Mul { .. } => q_out,
        AveragePool2D(_)
        | MaxPool2D(_)
        | Softmax { .. }
        | Logistic
        | Tanh
        | HardSwish
        | Relu
        | Relu6
        | Mean { .. }
        | ResizeBilinear { .. } => q_in,
        Quantize => q_in && q_out,
        Concatenation { .. } => {
            q_out
                && op
                    .inputs
                    .iter()
                    .flatten()
                    .any(|&t| g.tensors[t].quant != g.tensors[out0.unwrap_or(t)].quant)
        }
        Pack { .. } | Unpack { .. } | GatherNd => true,
        _ => false,
    }
}

pub(crate) fn prepare(g: &Graph, op: &Op, choice: KernelChoice) -> Option<Result<Prepared>> {
    if !claims(g, op) {
        return None;
    }
    Some(prepare_kernel(g, op, choice).map(|k| Prepared::packing(k, Vec::new())))
}

/// The largest left shift of a requantization: MultiplyByQuantizedMultiplier multiplies
/// by `2^shift` in int32 before the fixed-point product, which TFLite's kernels leave
/// undefined past 30 bits (and ours would overflow).
const MAX_LEFT_SHIFT: i32 = 30;

/// Refuse multipliers whose shift MultiplyByQuantizedMultiplier cannot apply: scale
/// ratios past 2^30 (e.g. an output scale of 1e-38).
fn check_multipliers(ms: &[Multiplier]) -> Result<()> {
    if let Some(m) = ms.iter().find(|m| m.shift > MAX_LEFT_SHIFT) {
        return Err(EngineError::unsupported(format!(
            "the tensors' scales need a rescaling by 2^{} (at most 2^{MAX_LEFT_SHIFT} is defined)",
            m.shift
        )));
    }
    Ok(())
}

/// A table of `f` over every value of the 8-bit type, as raw bytes.
fn table_bytes<T: QInt>(f: impl Fn(i32) -> T) -> Vec<u8> {
    (T::MIN..=T::MAX)
        .map(|v| {
            let o = f(v).get();
            o as u8
        })
        .collect()
}

/// Dispatch to the op's preparation.
fn prepare_kernel(g: &Graph, op: &Op, choice: KernelChoice) -> Result<QKernel> {
    use OpKind::*;
    let fast = choice == KernelChoice::Fast;
    match &op.kind {
        Add {
            activation,
            pot_scale_int16,
        }
        | Sub {
            activation,
            pot_scale_int16,
        } => add_sub(g, op, *activation, *pot_scale_int16, fast),
        Mul { activation } => mul(g, op, *activation, fast),
        AveragePool2D(o) | MaxPool2D(o) => pool_2d(g, op, o, fast),
        Softmax { beta } => softmax(g, op, *beta, fast),
        Logistic | Tanh | HardSwish | Relu | Relu6 => unary(g, op, fast),
        Mean { .. } => mean(g, op),
        ResizeBilinear {
            align_corners,
            half_pixel_centers,
        } => resize_bilinear(g, op, *align_corners, *half_pixel_centers),
        Quantize => requantize(g, op),
        Concatenation { axis, activation } => concatenation(g, op, *axis, *activation),
        Pack { axis, .. } => pack(g, op, *axis),
        Unpack { axis, .. } => unpack(g, op, *axis),
        GatherNd => gather_nd(g, op),
        other => Err(EngineError::unsupported(format!(
            "no integer kernel for {}",
            other.name()
        ))),
    }
}

/// ADD and SUB: 8-bit with a 20-bit left shift, int16 with 15 (or the power-of-two
/// scales of `pot_scale_int16`); on the fast path 8-bit and int16 tabulate the rescaling.
fn add_sub(
    g: &Graph,
    op: &Op,
    activation: Activation,
    pot_scale_int16: bool,
    fast: bool,
) -> Result<QKernel> {
    let sub = matches!(op.kind, OpKind::Sub { .. });
    let (a, b, y) = binary_io(g, op)?;
    let (pa, pb, py) = (qparams(g, a)?, qparams(g, b)?, qparams(g, y)?);
    let (lo, hi) = act_range_q(g, y, activation)?;
    let dt = g.tensors[y].dtype;
    let p = if dt == DType::I16 {
        if pa.1 != 0 || pb.1 != 0 || py.1 != 0 {
            return Err(EngineError::unsupported(
                "int16 ADD/SUB needs zero points 0",
            ));
        }
        if pot_scale_int16 {
            pot16(sub, pa.0, pb.0, py.0, lo, hi, g, a, b)?
        } else {
            QBinaryParams::add_sub(sub, 15, pa, pb, py, lo, hi)
        }
    } else {
        QBinaryParams::add_sub(sub, 20, pa, pb, py, lo, hi)
    };
    if let QBinaryKind::AddSub { m1, m2, m_out, .. } = p.kind {
        check_multipliers(&[m1, m2, m_out])?;
    }
    let table = match dt {
        DType::U8 => AddSubTables::new::<u8>(&p),
        DType::I8 => AddSubTables::new::<i8>(&p),
        DType::I16 => AddSubTables::new::<i16>(&p),
        _ => None,
    };
    Ok(match table {
        Some(t) if fast => QKernel::AddSubTable(Box::new(t)),
        _ => QKernel::Binary { p, fast },
    })
}

/// MUL (int16: zero points 0).
fn mul(g: &Graph, op: &Op, activation: Activation, fast: bool) -> Result<QKernel> {
    let (a, b, y) = binary_io(g, op)?;
    let (pa, pb, py) = (qparams(g, a)?, qparams(g, b)?, qparams(g, y)?);
    if g.tensors[y].dtype == DType::I16 && (pa.1 != 0 || pb.1 != 0 || py.1 != 0) {
        return Err(EngineError::unsupported("int16 MUL needs zero points 0"));
    }
    let (lo, hi) = act_range_q(g, y, activation)?;
    let p = QBinaryParams::mul(pa, pb, py, lo, hi);
    if let QBinaryKind::Mul { m } = p.kind {
        check_multipliers(&[m])?;
    }
    let simd = match g.tensors[y].dtype {
        DType::U8 => MulKernel::new::<u8>(&p),
        DType::I8 => MulKernel::new::<i8>(&p),
        DType::I16 => MulKernel::new::<i16>(&p),
        _ => None,
    };
    Ok(match simd {
        Some(k) if fast => QKernel::Mul(Box::new(k)),
        _ => QKernel::Binary { p, fast },
    })
}

/// AVERAGE_POOL_2D and MAX_POOL_2D on raw values (input and output share parameters).
fn pool_2d(g: &Graph, op: &Op, o: &Pool2DOptions, fast: bool) -> Result<QKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_type(g, x, y)?;
    if qparams(g, x)? != qparams(g, y)? {
        return Err(EngineError::unsupported(
            "quantized pooling needs equal input and output parameters",
        ));
    }
    let geom = pool_geometry(g, x, y, o)?;
    let (act_min, act_max) = act_range_q(g, y, o.activation)?;
    let p = QPoolParams {
        geom,
        act_min,
        act_max,
    };
    Ok(if matches!(op.kind, OpKind::AveragePool2D(_)) {
        QKernel::AvgPool { p, fast }
    } else {
        QKernel::MaxPool(p)
    })
}

/// SOFTMAX: 8-bit with gemmlowp's fixed-point exp (output (1/256, −128 or 0)); int16
/// with TFLite's interpolated tables.
fn softmax(g: &Graph, op: &Op, beta: f32, fast: bool) -> Result<QKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_type(g, x, y)?;
    same_elements(g, x, y)?;
    let dt = g.tensors[x].dtype;
    if dt == DType::I16 {
        return softmax16(g, x, y, beta);
    }
    let (s, _) = qparams(g, x)?;
    let (os, oz) = qparams(g, y)?;
    let want_zp = if dt == DType::I8 { -128 } else { 0 };
    if oz != want_zp || (os * 256.0 - 1.0).abs() > 0.001 {
        return Err(EngineError::invalid(format!(
            "SOFTMAX output must be quantized (1/256, {want_zp}), is ({os}, {oz})"
        )));
    }
    let depth = shape_of(g, x).last().copied().unwrap_or(1);
    if depth == 0 {
        return Err(EngineError::invalid("softmax over an empty axis"));
    }
    let p = SoftmaxParams::new(beta, s);
    if p.input_left_shift > MAX_LEFT_SHIFT {
        return Err(EngineError::unsupported(format!(
            "SOFTMAX: beta {beta} × input scale {s} needs a rescaling by 2^{} (at most \
             2^{MAX_LEFT_SHIFT} is defined)",
            p.input_left_shift
        )));
    }
    Ok(QKernel::Softmax { p, depth, fast })
}

/// MEAN over constant axes (int16: zero points 0).
fn mean(g: &Graph, op: &Op) -> Result<QKernel> {
    let (x, a, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    same_type(g, x, y)?;
    let dt = g.tensors[x].dtype;
    let (px, py) = (qparams(g, x)?, qparams(g, y)?);
    if dt == DType::I16 && (px.1 != 0 || py.1 != 0) {
        return Err(EngineError::unsupported("int16 MEAN needs zero points 0"));
    }
    let s = shape_of(g, x).to_vec();
    let mut axes = const_ints(g, a, "axes")?
        .iter()
        .map(|&v| normalize_axis(v, s.len()))
        .collect::<Result<Vec<_>>>()?;
    axes.sort_unstable();
    axes.dedup();
    let kept: usize = s
        .iter()
        .enumerate()
        .filter(|(d, _)| !axes.contains(d))
        .map(|(_, &n)| n)
        .product();
    if kept != g.tensors[y].num_elements() {
        return Err(EngineError::invalid(
            "MEAN output size does not match the reduced input",
        ));
    }
    let count: usize = axes.iter().map(|&d| s[d]).product();
    let q = QMean::new(count, px, py);
    check_multipliers(&[q.m])?;
    Ok(QKernel::Mean { q, axes })
}

/// RESIZE_BILINEAR on raw values (input and output share parameters).
fn resize_bilinear(
    g: &Graph,
    op: &Op,
    align_corners: bool,
    half_pixel_centers: bool,
) -> Result<QKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_type(g, x, y)?;
    if qparams(g, x)? != qparams(g, y)? {
        return Err(EngineError::unsupported(
            "quantized RESIZE_BILINEAR needs equal input and output parameters",
        ));
    }
    let [n, h, w, c] = rank4(g, x)?;
    let [on, oh, ow, oc] = rank4(g, y)?;
    if n != on || c != oc {
        return Err(EngineError::invalid("resize changes batch or channels"));
    }
    check_resize_flags(align_corners, half_pixel_centers)?;
    if (h == 0 || w == 0) && on * oh * ow * oc > 0 {
        return Err(EngineError::invalid("resize of an empty image"));
    }
    // The 10-bit coordinate arithmetic stays in i32 only for moderate sizes.
    if h.max(w).max(oh).max(ow) > 1 << 15 {
        return Err(EngineError::unsupported(
            "RESIZE_BILINEAR beyond 32768 pixels",
        ));
    }
    Ok(QKernel::Resize {
        align_corners,
        half_pixel_centers,
    })
}

/// QUANTIZE from one integer type to another (a bit flip when uint8 ↔ int8 only moves
/// the zero point by 128).
fn requantize(g: &Graph, op: &Op) -> Result<QKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_elements(g, x, y)?;
    let r = Requantize::new(qparams(g, x)?, qparams(g, y)?);
    check_multipliers(&[r.m])?;
    let (xt, yt) = (g.tensors[x].dtype, g.tensors[y].dtype);
    let flip = match (xt, yt) {
        (DType::U8, DType::I8) => r.is_bit_flip::<u8, i8>(),
        (DType::I8, DType::U8) => r.is_bit_flip::<i8, u8>(),
        _ => false,
    };
    Ok(QKernel::Requantize { r, flip })
}

/// CONCATENATION of inputs with parameters differing from the output's (each part
/// rescaled or copied).
fn concatenation(g: &Graph, op: &Op, axis: i32, activation: Activation) -> Result<QKernel> {
    let y = require_output(op)?;
    if activation != Activation::None {
        return Err(EngineError::unsupported(
            "fused activation on CONCATENATION",
        ));
    }
    let out_shape = shape_of(g, y).to_vec();
    let axis = normalize_axis(axis as i64, out_shape.len())?;
    let py = qparams(g, y)?;
    let mut along = 0;
    let mut parts = Vec::new();
    for k in 0..op.inputs.len() {
        let x = require_input(op, k)?;
        same_type(g, x, y)?;
        let s = shape_of(g, x);
        if s.len() != out_shape.len()
            || s.iter()
                .zip(&out_shape)
                .enumerate()
                .any(|(d, (a, b))| d != axis && a != b)
        {
            return Err(EngineError::invalid(format!(
                "input {k} shape {s:?} vs output {out_shape:?}"
            )));
        }
        along += s[axis];
        parts.push(ConcatPart::new(qparams(g, x)?, py));
    }
    if along != out_shape[axis] {
        return Err(EngineError::invalid(
            "concatenated sizes do not add up to the output",
        ));
    }
    Ok(QKernel::Concat { axis, parts })
}

/// PACK along `axis` (any fixed-width type; quantized inputs equal to the output).
fn pack(g: &Graph, op: &Op, axis: i32) -> Result<QKernel> {
    let y = require_output(op)?;
    let x0 = require_input(op, 0)?;
    let s = shape_of(g, x0).to_vec();
    let axis = normalize_axis(axis as i64, s.len() + 1)?;
    for k in 0..op.inputs.len() {
        let x = require_input(op, k)?;
        same_type(g, x, y)?;
        if shape_of(g, x) != s.as_slice()
            || (is_quantized(g, y) && g.tensors[x].quant != g.tensors[y].quant)
        {
            return Err(EngineError::unsupported(format!(
                "PACK input {k} differs in shape or quantization"
            )));
        }
    }
    let mut want = s.clone();
    want.insert(axis, op.inputs.len());
    expect_shape(g, y, &want)?;
    sized(g, y)?;
    Ok(QKernel::Pack {
        outer: s[..axis].iter().product(),
        inner: s[axis..].iter().product(),
    })
}

/// UNPACK along `axis` (any fixed-width type).
fn unpack(g: &Graph, op: &Op, axis: i32) -> Result<QKernel> {
    let x = require_input(op, 0)?;
    let s = shape_of(g, x).to_vec();
    let axis = normalize_axis(axis as i64, s.len())?;
    if op.outputs.len() != s[axis] {
        return Err(EngineError::invalid(format!(
            "UNPACK into {} outputs along a dimension of {}",
            op.outputs.len(),
            s[axis]
        )));
    }
    let mut want = s.clone();
    want.remove(axis);
    for &y in &op.outputs {
        same_type(g, x, y)?;
        expect_shape(g, y, &want)?;
    }
    sized(g, x)?;
    Ok(QKernel::Unpack {
        outer: s[..axis].iter().product(),
        inner: s[axis + 1..].iter().product(),
    })
}

/// GATHER_ND with int32/int64 indices (any fixed-width type).
fn gather_nd(g: &Graph, op: &Op) -> Result<QKernel> {
    let (x, i, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    same_type(g, x, y)?;
    sized(g, x)?;
    if !matches!(g.tensors[i].dtype, DType::I32 | DType::I64) {
        return Err(EngineError::unsupported(
            "GATHER_ND indices must be int32/int64",
        ));
    }
    let (ps, is) = (shape_of(g, x), shape_of(g, i));
    let depth = is.last().copied().unwrap_or(0);
    if is.is_empty() || depth > ps.len() {
        return Err(EngineError::invalid(format!(
            "GATHER_ND indices {is:?} do not fit params {ps:?}"
        )));
    }
    let mut want = is[..is.len() - 1].to_vec();
    want.extend_from_slice(&ps[depth..]);
    expect_shape(g, y, &want)?;
    Ok(QKernel::GatherNd { depth })
}

/// Element types the generic movers can handle (fixed width).
fn sized(g: &Graph, t: TensorId) -> Result<()> {
    g.tensors[t]
        .dtype
        .fixed_size_bytes()
        .map(|_| ())
        .ok_or_else(|| {
            EngineError::unsupported(format!(
                "tensor '{}' of type {} has no fixed element size",
                g.tensors[t].name, g.tensors[t].dtype
            ))
        })
}

fn binary_io(g: &Graph, op: &Op) -> Result<(TensorId, TensorId, TensorId)> {
    let (a, b, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    same_type(g, a, y)?;
    same_type(g, b, y)?;
    let (sa, sb) = (shape_of(g, a), shape_of(g, b));
    let out = broadcast_shape(sa, sb).ok_or_else(|| {
        EngineError::invalid(format!("shapes {sa:?} and {sb:?} do not broadcast"))
    })?;
    expect_shape(g, y, &out)?;
    Ok((a, b, y))
}

/// TFLite's `CheckedLog2`: the rounded log2 of a scale that must be a power of two.
fn checked_log2(x: f32) -> Option<i32> {
    let l = x.ln() * (1.0 / 2f32.ln());
    let r = l.round();
    ((l - r).abs() < 1e-3).then_some(r as i32)
}

#[allow(clippy::too_many_arguments)]
fn pot16(
    sub: bool,
    s1: f32,
    s2: f32,
    so: f32,
    lo: i32,
    hi: i32,
    g: &Graph,
    a: TensorId,
    b: TensorId,
) -> Result<QBinaryParams> {
    let err =
        || EngineError::unsupported("int16 ADD/SUB with pot_scale_int16 needs power-of-two scales");
    let (l1, l2, lo_) = (
        checked_log2(s1).ok_or_else(err)?,
        checked_log2(s2).ok_or_else(err)?,
        checked_log2(so).ok_or_else(err)?,
    );
    let (shift1, shift2) = (l1 - lo_, l2 - lo_);
    if !(shift1 == 0 || shift2 == 0) || shift1 > 0 || shift2 > 0 {
        return Err(EngineError::unsupported(
            "int16 ADD/SUB: only one input may be rescaled, and only down",
        ));
    }
    // RoundingDivideByPOT takes exponents up to 31.
    if shift1.min(shift2) < -31 {
        return Err(EngineError::unsupported(format!(
            "int16 ADD/SUB: a rescaling by 2^{} (at least 2^-31 is defined)",
            shift1.min(shift2)
        )));
    }
    if shape_of(g, a) != shape_of(g, b) {
        return Err(EngineError::unsupported(
            "int16 ADD/SUB with power-of-two scales does not broadcast",
        ));
    }
    Ok(QBinaryParams {
        kind: QBinaryKind::Pot16 {
            sub,
            shift1,
            shift2,
        },
        in1_offset: 0,
        in2_offset: 0,
        out_offset: 0,
        act_min: lo,
        act_max: hi,
    })
}

/// int16 SOFTMAX (TFLite `SoftmaxPrepare`): zero points 0, output scale 1/32768
/// within 0.1 %, rank 1 to 4 (TFLite's int16 kernel takes no other).
fn softmax16(g: &Graph, x: TensorId, y: TensorId, beta: f32) -> Result<QKernel> {
    let (s, z) = qparams(g, x)?;
    let (os, oz) = qparams(g, y)?;
    let want = 1.0f32 / 32768.0;
    if z != 0 || oz != 0 || (os - want).abs() > 0.001 * want {
        return Err(EngineError::invalid(format!(
            "int16 SOFTMAX needs input zero point 0 and output (1/32768, 0), has \
             input zero point {z}, output ({os}, {oz})"
        )));
    }
    let shape = shape_of(g, x);
    if shape.is_empty() || shape.len() > 4 {
        return Err(EngineError::unsupported(format!(
            "int16 SOFTMAX of rank {} (TFLite takes 1 to 4)",
            shape.len()
        )));
    }
    let depth = shape.last().copied().unwrap_or(1);
    if depth == 0 {
        return Err(EngineError::invalid("softmax over an empty axis"));
    }
    let p = Box::new(Softmax16::new(beta, s));
    check_multipliers(&[p.input_multiplier])?;
    Ok(QKernel::Softmax16 { p, depth })
}

/// int16 LOGISTIC/TANH (TFLite `SigmoidPrepare`/`TanhPrepare`): zero points 0 and
/// output scale 2^-15 (LOGISTIC exactly 1/32768, TANH by `CheckedLog2`).
fn sigmoid16(op: &Op, (s, z): (f32, i32), (os, oz): (f32, i32)) -> Result<QKernel> {
    let kind = if matches!(op.kind, OpKind::Logistic) {
        Sigmoid16Kind::Logistic
    } else {
        Sigmoid16Kind::Tanh
    };
    let out_ok = match kind {
        Sigmoid16Kind::Logistic => os == 1.0 / 32768.0,
        Sigmoid16Kind::Tanh => checked_log2(os) == Some(-15),
    };
    if z != 0 || oz != 0 || !out_ok {
        return Err(EngineError::invalid(format!(
            "int16 {} needs input zero point 0 and output (1/32768, 0), has input \
             zero point {z}, output ({os}, {oz})",
            op.kind.name()
        )));
    }
    Ok(QKernel::Sigmoid16(Sigmoid16::new(kind, s, checked_log2(s))))
}

fn unary(g: &Graph, op: &Op, fast: bool) -> Result<QKernel> {
    use OpKind::*;
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_type(g, x, y)?;
    same_elements(g, x, y)?;
    let dt = g.tensors[x].dtype;
    let (px, py) = (qparams(g, x)?, qparams(g, y)?);
    if dt == DType::I16 && matches!(op.kind, Logistic | Tanh) {
        return sigmoid16(op, px, py);
    }
    if dt == DType::I16 && !matches!(op.kind, Relu | Relu6) {
        // TFLite has no int16 HARD_SWISH kernel either.
        return Err(EngineError::unsupported(format!(
            "int16 {}",
            op.kind.name()
        )));
    }
    macro_rules! table_or {
        ($t:ty, $f:expr, $k:expr) => {
            if fast && dt != DType::I16 {
                Ok(QKernel::Table8(table_bytes::<$t>($f)))
            } else {
                Ok($k)
            }
        };
    }
    by_qtype!(dt, T => {
        match op.kind {
            Logistic | Tanh => {
                // Fixed output parameters TFLite checks at preparation.
                let want = match (&op.kind, dt) {
                    (Logistic, DType::U8) => (1.0 / 256.0, 0),
                    (Logistic, _) => (1.0 / 256.0, -128),
                    (_, DType::U8) => (1.0 / 128.0, 128),
                    _ => (1.0 / 128.0, 0),
                };
                if py != want {
                    return Err(EngineError::invalid(format!(
                        "{} output must be quantized {want:?}, is {py:?}",
                        op.kind.name()
                    )));
                }
                let f = if matches!(op.kind, Logistic) { lut::sigmoid } else { lut::tanh };
                let t = lut::float_table::<T>(px, py, f);
                Ok(QKernel::Table8(t.iter().map(|v| v.get() as u8).collect()))
            }
            HardSwish => {
                let p = HardSwishParams::new(px, py).ok_or_else(|| {
                    EngineError::unsupported("HARD_SWISH with an output scale below the input's /128")
                })?;
                table_or!(T, |v| p.apply::<T>(v), QKernel::HardSwish(p))
            }
            _ => {
                let hi = if matches!(op.kind, Relu6) { Some(6.0) } else { None };
                let p = ReluParams::new::<T>(px, py, 0.0, hi);
                check_multipliers(&[p.multiplier])?;
                table_or!(T, |v| p.apply::<T>(v), QKernel::Relu(p))
            }
        }
    })
}

#[cfg(test)]
mod tests;

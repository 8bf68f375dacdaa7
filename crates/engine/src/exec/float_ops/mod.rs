//! The float32 family of op kernels (plus the type-generic shape and index ops):
//! preparation checks every shape once, one function per op, and returns a
//! [`FloatKernel`] whose `run` only computes.

mod kernel;

use kernel::FloatKernel;

use crate::error::{EngineError, Result};
use crate::exec::kernels::{
    self, KernelChoice, SparseMode,
    conv::{ConvParams, PackedConv2D},
    depthwise::{DepthwiseParams, PackedDepthwise},
    elementwise::BinaryOp,
    fully_connected::{FcParams, PackedFullyConnected},
    pool::PoolParams,
    sparse_conv::{self, SparseConv1x1},
};
use crate::exec::prepare::*;
use crate::ir::{
    Activation, Conv2DOptions, DType, DepthwiseConv2DOptions, FullyConnectedOptions, Graph, Op,
    OpKind, Pool2DOptions, Quantization, StridedSliceOptions, TensorId,
};

/// Prepare an op on float32 (or type-generic) tensors.
pub(crate) fn prepare_float(
    g: &Graph,
    op: &Op,
    choice: KernelChoice,
    sparse: SparseMode,
) -> Result<Prepared> {
    let kernel = prepare_kernel(g, op, choice, sparse)?;
    // Conv, depthwise and FC copy their weights and bias at preparation.
    let packed = if matches!(
        kernel,
        FloatKernel::ConvRef { .. }
            | FloatKernel::ConvFast(_)
            | FloatKernel::ConvSparse(_)
            | FloatKernel::DepthwiseRef { .. }
            | FloatKernel::DepthwiseFast(_)
            | FloatKernel::FcRef { .. }
            | FloatKernel::FcFast(_)
    ) {
        vec![1, 2]
    } else {
        Vec::new()
    };
    Ok(Prepared::packing(kernel, packed))
}

/// The float32 filter and optional bias of a conv-like op.
fn weights_and_bias(
    g: &Graph,
    op: &Op,
    w: TensorId,
    out_c: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    Ok((const_f32(g, w, "filter")?, optional_bias(g, op, out_c)?))
}

/// Dispatch to the op's preparation; ops without a float kernel are errors here.
fn prepare_kernel(
    g: &Graph,
    op: &Op,
    choice: KernelChoice,
    sparse: SparseMode,
) -> Result<FloatKernel> {
    use OpKind::*;
    let fast = choice == KernelChoice::Fast;
    match &op.kind {
        Conv2D(o) => conv_2d(g, op, o, fast, fast && sparse == SparseMode::Auto),
        DepthwiseConv2D(o) => depthwise_conv_2d(g, op, o, fast),
        FullyConnected(o) => fully_connected(g, op, o, fast),
        AveragePool2D(o) | MaxPool2D(o) => pool_2d(g, op, o),
        Add { activation, .. }
        | Sub { activation, .. }
        | Mul { activation }
        | Div { activation } => {
            let bop = match op.kind {
                Add { .. } => BinaryOp::Add,
                Sub { .. } => BinaryOp::Sub,
                Mul { .. } => BinaryOp::Mul,
                _ => BinaryOp::Div,
            };
            binary(g, op, bop, *activation)
        }
        FloorDiv => binary(g, op, BinaryOp::FloorDiv, Activation::None),
        Relu | Relu6 | Logistic | Tanh | HardSwish | Sqrt => unary(g, op),
        Reshape { .. } | Squeeze { .. } => reshape(g, op),
        Concatenation { axis, activation } => concatenation(g, op, *axis, *activation),
        Softmax { beta } => softmax(g, op, *beta),
        Mean { .. } => mean(g, op),
        ResizeBilinear {
            align_corners,
            half_pixel_centers,
        } => resize_bilinear(g, op, *align_corners, *half_pixel_centers),
        Pad => pad(g, op),
        StridedSlice(o) => strided_slice(g, op, o),
        Transpose => transpose(g, op),
        Gather { axis, batch_dims } => gather(g, op, *axis, *batch_dims),
        ArgMax { .. } => arg_max(g, op),
        Quantize => quantize(g, op),
        Dequantize => dequantize(g, op),
        Cast => cast(g, op),
        Custom { code, .. } => Err(EngineError::unsupported(format!(
            "custom operator '{code}' cannot run on the CPU{}",
            if code == "edgetpu-custom-op" {
                " (it is compiled for the Edge TPU)"
            } else {
                ""
            }
        ))),
        other => Err(EngineError::unsupported(format!(
            "no kernel for {}",
            other.name()
        ))),
    }
}

/// CONV_2D: geometry from the tensors, weights packed for the GEMM on the fast path,
/// or kept as sparse rows when `sparse` allows it, the conv is 1×1 / stride 1 and its
/// filter has at least [`sparse_conv::min_zero_fraction`] exact zeros.
fn conv_2d(g: &Graph, op: &Op, o: &Conv2DOptions, fast: bool, sparse: bool) -> Result<FloatKernel> {
    let (x, w, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    for t in [x, w, y] {
        require_dtype(g, t, DType::F32)?;
    }
    let geom = conv_geometry(g, (x, w, y), false, conv_attrs(o))?;
    let (act_min, act_max) = act_range(o.activation)?;
    let p = ConvParams {
        geom,
        act_min,
        act_max,
    };
    let (filter, bias) = weights_and_bias(g, op, w, geom.out_c)?;
    p.check(
        g.tensors[x].num_elements(),
        filter.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    let dilation_1 = geom.dilation_h == 1 && geom.dilation_w == 1;
    Ok(if !fast {
        FloatKernel::ConvRef { p, filter, bias }
    } else if sparse
        && dilation_1
        && sparse_conv::supports(&p)
        && sparse_conv::zero_fraction(&filter)
            >= sparse_conv::min_zero_fraction(geom.in_c, geom.out_c)
    {
        FloatKernel::ConvSparse(SparseConv1x1::new(&p, &filter, bias.as_deref()))
    } else {
        FloatKernel::ConvFast(PackedConv2D::new(&p, &filter, bias.as_deref()))
    })
}

/// DEPTHWISE_CONV_2D: geometry from the tensors, weights repacked on the fast path.
fn depthwise_conv_2d(
    g: &Graph,
    op: &Op,
    o: &DepthwiseConv2DOptions,
    fast: bool,
) -> Result<FloatKernel> {
    let (x, w, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    for t in [x, w, y] {
        require_dtype(g, t, DType::F32)?;
    }
    let geom = conv_geometry(g, (x, w, y), true, depthwise_attrs(o))?;
    let (act_min, act_max) = act_range(o.activation)?;
    let p = DepthwiseParams {
        geom,
        act_min,
        act_max,
    };
    let (filter, bias) = weights_and_bias(g, op, w, geom.out_c)?;
    p.check(
        g.tensors[x].num_elements(),
        filter.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    Ok(if fast {
        FloatKernel::DepthwiseFast(PackedDepthwise::new(&p, &filter, bias.as_deref()))
    } else {
        FloatKernel::DepthwiseRef { p, filter, bias }
    })
}

/// FULLY_CONNECTED: weights `[units, depth]`, the input viewed as rows of `depth`.
fn fully_connected(
    g: &Graph,
    op: &Op,
    o: &FullyConnectedOptions,
    fast: bool,
) -> Result<FloatKernel> {
    let (x, w, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    for t in [x, w, y] {
        require_dtype(g, t, DType::F32)?;
    }
    if o.weights_format != 0 {
        return Err(EngineError::unsupported("shuffled FC weights"));
    }
    let ws = shape_of(g, w);
    if ws.len() != 2 || ws[1] == 0 {
        return Err(EngineError::invalid(format!(
            "FC weights must be [units, depth], got {ws:?}"
        )));
    }
    let (units, depth) = (ws[0], ws[1]);
    let elems = g.tensors[x].num_elements();
    if !elems.is_multiple_of(depth) {
        return Err(EngineError::invalid(format!(
            "input of {elems} elements is not a multiple of depth {depth}"
        )));
    }
    let rows = elems / depth;
    if g.tensors[y].num_elements() != rows * units {
        return Err(EngineError::invalid(format!(
            "output {:?} does not hold {rows}×{units} values",
            shape_of(g, y)
        )));
    }
    let (act_min, act_max) = act_range(o.activation)?;
    let p = FcParams {
        rows,
        depth,
        units,
        act_min,
        act_max,
    };
    let weights = const_f32(g, w, "weights")?;
    let bias = optional_bias(g, op, units)?;
    p.check(
        g.tensors[x].num_elements(),
        weights.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    Ok(if fast {
        FloatKernel::FcFast(PackedFullyConnected::new(&p, &weights, bias.as_deref()))
    } else {
        FloatKernel::FcRef { p, weights, bias }
    })
}

/// AVERAGE_POOL_2D and MAX_POOL_2D.
fn pool_2d(g: &Graph, op: &Op, o: &Pool2DOptions) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, x, DType::F32)?;
    require_dtype(g, y, DType::F32)?;
    let geom = pool_geometry(g, x, y, o)?;
    let (act_min, act_max) = act_range(o.activation)?;
    let p = PoolParams {
        geom,
        act_min,
        act_max,
    };
    Ok(if matches!(op.kind, OpKind::AveragePool2D(_)) {
        FloatKernel::AvgPool(p)
    } else {
        FloatKernel::MaxPool(p)
    })
}

/// RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SQRT: one float function per element.
fn unary(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, x, DType::F32)?;
    require_dtype(g, y, DType::F32)?;
    same_elements(g, x, y)?;
    let f: fn(&[f32], &mut [f32]) = match op.kind {
        OpKind::Relu => kernels::activation::relu,
        OpKind::Relu6 => kernels::activation::relu6,
        OpKind::Logistic => kernels::activation::logistic,
        OpKind::Tanh => kernels::activation::tanh,
        OpKind::HardSwish => kernels::activation::hard_swish,
        _ => kernels::activation::sqrt,
    };
    Ok(FloatKernel::Unary(f))
}

/// RESHAPE, SQUEEZE: the same bytes under a new shape.
fn reshape(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_elements(g, x, y)?;
    if g.tensors[x].dtype != g.tensors[y].dtype {
        return Err(EngineError::invalid("reshape changes the element type"));
    }
    Ok(FloatKernel::Copy)
}

/// CONCATENATION along `axis` (quantized inputs only with equal parameters: the
/// integer family takes the others).
fn concatenation(g: &Graph, op: &Op, axis: i32, activation: Activation) -> Result<FloatKernel> {
    let y = require_output(op)?;
    let out_shape = shape_of(g, y).to_vec();
    let axis = normalize_axis(axis as i64, out_shape.len())?;
    let mut along = 0;
    for k in 0..op.inputs.len() {
        let x = require_input(op, k)?;
        let s = shape_of(g, x);
        if g.tensors[x].dtype != g.tensors[y].dtype || s.len() != out_shape.len() {
            return Err(EngineError::unsupported(format!(
                "input {k} ({} {s:?}) does not match the output ({} {out_shape:?})",
                g.tensors[x].dtype, g.tensors[y].dtype
            )));
        }
        for (d, (&a, &b)) in s.iter().zip(&out_shape).enumerate() {
            if d != axis && a != b {
                return Err(EngineError::invalid(format!(
                    "input {k} shape {s:?} vs output {out_shape:?}"
                )));
            }
        }
        along += s[axis];
    }
    if along != out_shape[axis] {
        return Err(EngineError::invalid(
            "concatenated sizes do not add up to the output",
        ));
    }
    if activation != Activation::None {
        return Err(EngineError::unsupported(
            "fused activation on CONCATENATION",
        ));
    }
    if g.tensors[y].quant.is_some()
        && op
            .inputs
            .iter()
            .flatten()
            .any(|&t| g.tensors[t].quant != g.tensors[y].quant)
    {
        return Err(EngineError::unsupported(
            "quantized concatenation with differing scales",
        ));
    }
    Ok(FloatKernel::Concat { axis })
}

/// SOFTMAX over the last axis.
fn softmax(g: &Graph, op: &Op, beta: f32) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, x, DType::F32)?;
    require_dtype(g, y, DType::F32)?;
    same_elements(g, x, y)?;
    let inner = shape_of(g, x).last().copied().unwrap_or(1);
    if inner == 0 {
        return Err(EngineError::invalid("softmax over an empty axis"));
    }
    Ok(FloatKernel::Softmax { inner, beta })
}

/// MEAN over constant axes.
fn mean(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, a, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    require_dtype(g, x, DType::F32)?;
    require_dtype(g, y, DType::F32)?;
    let rank = shape_of(g, x).len();
    let mut axes = const_ints(g, a, "axes")?
        .into_iter()
        .map(|v| normalize_axis(v, rank))
        .collect::<Result<Vec<_>>>()?;
    axes.sort_unstable();
    axes.dedup();
    let kept: usize = shape_of(g, x)
        .iter()
        .enumerate()
        .filter(|(d, _)| !axes.contains(d))
        .map(|(_, &s)| s)
        .product();
    if kept != g.tensors[y].num_elements() {
        return Err(EngineError::invalid(
            "MEAN output size does not match the reduced input",
        ));
    }
    Ok(FloatKernel::Mean { axes })
}

/// RESIZE_BILINEAR (batch and channels kept).
fn resize_bilinear(
    g: &Graph,
    op: &Op,
    align_corners: bool,
    half_pixel_centers: bool,
) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, x, DType::F32)?;
    require_dtype(g, y, DType::F32)?;
    let [n, _, _, c] = rank4(g, x)?;
    let [on, _, _, oc] = rank4(g, y)?;
    if n != on || c != oc {
        return Err(EngineError::invalid("resize changes batch or channels"));
    }
    check_resize_flags(align_corners, half_pixel_centers)?;
    Ok(FloatKernel::ResizeBilinear {
        align_corners,
        half_pixel_centers,
    })
}

/// PAD with constant paddings (quantized tensors pad with their zero point).
fn pad(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, p, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    let s = shape_of(g, x).to_vec();
    let raw = const_ints(g, p, "paddings")?;
    if raw.len() != 2 * s.len() || raw.iter().any(|&v| v < 0) {
        return Err(EngineError::invalid(format!(
            "paddings {raw:?} do not fit rank {}",
            s.len()
        )));
    }
    let paddings: Vec<(usize, usize)> = raw
        .chunks(2)
        .map(|c| (c[0] as usize, c[1] as usize))
        .collect();
    let want: Vec<usize> = s
        .iter()
        .zip(&paddings)
        .map(|(d, (a, b))| d + a + b)
        .collect();
    expect_shape(g, y, &want)?;
    if g.tensors[x].dtype != g.tensors[y].dtype {
        return Err(EngineError::invalid("PAD changes the element type"));
    }
    // Quantized tensors pad with the zero point, i.e. real 0.
    let zp = g.tensors[y]
        .quant
        .as_ref()
        .map(|q| q.params(0).1)
        .unwrap_or(0);
    let value = match g.tensors[y].dtype {
        DType::U8 | DType::I8 => (zp as u8) as u64,
        DType::I16 => (zp as i16 as u16) as u64,
        _ => 0,
    };
    Ok(FloatKernel::Pad { paddings, value })
}

/// STRIDED_SLICE with constant begin, end and strides.
fn strided_slice(g: &Graph, op: &Op, o: &StridedSliceOptions) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    let begin = const_ints(g, require_input(op, 1)?, "begin")?;
    let end = const_ints(g, require_input(op, 2)?, "end")?;
    let strides = const_ints(g, require_input(op, 3)?, "strides")?;
    let plan = kernels::shape_ops::strided_slice_plan(shape_of(g, x), &begin, &end, &strides, o)?;
    if plan.out_shape.iter().product::<usize>() != g.tensors[y].num_elements() {
        return Err(EngineError::invalid(format!(
            "slice gives shape {:?}, output is {:?}",
            plan.out_shape,
            shape_of(g, y)
        )));
    }
    Ok(FloatKernel::StridedSlice(plan))
}

/// TRANSPOSE by a constant permutation.
fn transpose(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    let perm = const_ints(g, require_input(op, 1)?, "perm")?;
    let s = shape_of(g, x);
    let mut seen = vec![false; s.len()];
    let mut perm_u = Vec::new();
    for &p in &perm {
        let p = normalize_axis(p, s.len())?;
        if std::mem::replace(&mut seen[p], true) {
            return Err(EngineError::invalid("perm repeats an axis"));
        }
        perm_u.push(p);
    }
    if perm_u.len() != s.len() {
        return Err(EngineError::invalid("perm length differs from rank"));
    }
    let want: Vec<usize> = perm_u.iter().map(|&p| s[p]).collect();
    expect_shape(g, y, &want)?;
    Ok(FloatKernel::Transpose(perm_u))
}

/// GATHER along `axis` (no batch dimensions).
fn gather(g: &Graph, op: &Op, axis: i32, batch_dims: i32) -> Result<FloatKernel> {
    let (x, i, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    if batch_dims != 0 {
        return Err(EngineError::unsupported("GATHER with batch_dims"));
    }
    if !matches!(g.tensors[i].dtype, DType::I32 | DType::I64) {
        return Err(EngineError::unsupported(
            "GATHER indices must be int32/int64",
        ));
    }
    let s = shape_of(g, x);
    let axis = normalize_axis(axis as i64, s.len())?;
    let want = s[..axis].iter().product::<usize>()
        * g.tensors[i].num_elements()
        * s[axis + 1..].iter().product::<usize>();
    if want != g.tensors[y].num_elements() {
        return Err(EngineError::invalid("GATHER output size"));
    }
    Ok(FloatKernel::Gather { axis })
}

/// ARG_MAX along a constant axis.
fn arg_max(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, a, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    let axis = const_ints(g, a, "axis")?;
    let s = shape_of(g, x);
    let axis = normalize_axis(
        *axis
            .first()
            .ok_or_else(|| EngineError::invalid("empty axis"))?,
        s.len(),
    )?;
    if !matches!(g.tensors[y].dtype, DType::I32 | DType::I64)
        || !matches!(
            g.tensors[x].dtype,
            DType::F32 | DType::U8 | DType::I8 | DType::I32
        )
    {
        return Err(EngineError::unsupported("ARG_MAX types"));
    }
    if s.iter().product::<usize>() / s[axis].max(1) != g.tensors[y].num_elements() || s[axis] == 0 {
        return Err(EngineError::invalid("ARG_MAX output size"));
    }
    Ok(FloatKernel::ArgMax { axis })
}

/// QUANTIZE float32 → uint8 / int8 / int16, per tensor.
fn quantize(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, x, DType::F32)?;
    same_elements(g, x, y)?;
    let q = g.tensors[y]
        .quant
        .as_ref()
        .ok_or_else(|| EngineError::invalid("QUANTIZE output has no quantization"))?;
    if q.is_per_axis() || !matches!(g.tensors[y].dtype, DType::U8 | DType::I8 | DType::I16) {
        return Err(EngineError::unsupported(
            "QUANTIZE to a per-axis or non-integer output",
        ));
    }
    let (scale, zp) = q.params(0);
    if !(scale.is_finite() && scale > 0.0) {
        return Err(EngineError::invalid(format!(
            "QUANTIZE output scale {scale}"
        )));
    }
    Ok(FloatKernel::Quantize {
        scale,
        zero_point: zp as i32,
    })
}

/// DEQUANTIZE integer or float16 → float32, per tensor or per axis.
fn dequantize(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    require_dtype(g, y, DType::F32)?;
    same_elements(g, x, y)?;
    let dt = g.tensors[x].dtype;
    let quant = match dt {
        DType::F16 => Quantization::per_tensor(1.0, 0),
        DType::U8 | DType::I8 | DType::I16 | DType::I32 => g.tensors[x]
            .quant
            .clone()
            .filter(|q| !q.scale.is_empty())
            .ok_or_else(|| EngineError::invalid("DEQUANTIZE input has no quantization"))?,
        _ => return Err(EngineError::unsupported(format!("DEQUANTIZE from {dt}"))),
    };
    if quant.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(EngineError::invalid(
            "DEQUANTIZE input scale must be positive",
        ));
    }
    if quant.is_per_axis() && shape_of(g, x).get(quant.axis) != Some(&quant.scale.len()) {
        return Err(EngineError::invalid(
            "per-axis scales do not match the shape",
        ));
    }
    Ok(FloatKernel::Dequantize { quant })
}

/// CAST between the numeric types and bool.
fn cast(g: &Graph, op: &Op) -> Result<FloatKernel> {
    let (x, y) = (require_input(op, 0)?, require_output(op)?);
    same_elements(g, x, y)?;
    for t in [x, y] {
        if !matches!(
            g.tensors[t].dtype,
            DType::F32 | DType::U8 | DType::I8 | DType::I16 | DType::I32 | DType::I64 | DType::Bool
        ) {
            return Err(EngineError::unsupported(format!(
                "CAST of {}",
                g.tensors[t].dtype
            )));
        }
    }
    Ok(FloatKernel::Cast)
}

fn binary(g: &Graph, op: &Op, bop: BinaryOp, activation: Activation) -> Result<FloatKernel> {
    let (a, b, y) = (
        require_input(op, 0)?,
        require_input(op, 1)?,
        require_output(op)?,
    );
    let (sa, sb) = (shape_of(g, a), shape_of(g, b));
    if sa.len() > 6 || sb.len() > 6 {
        return Err(EngineError::unsupported(
            "broadcast of more than 6 dimensions",
        ));
    }
    let out = kernels::elementwise::broadcast_shape(sa, sb).ok_or_else(|| {
        EngineError::invalid(format!("shapes {sa:?} and {sb:?} do not broadcast"))
    })?;
    expect_shape(g, y, &out)?;
    let dt = g.tensors[y].dtype;
    if g.tensors[a].dtype != dt || g.tensors[b].dtype != dt {
        return Err(EngineError::unsupported("mixed element types"));
    }
    match dt {
        DType::F32 => {
            let (min, max) = act_range(activation)?;
            Ok(FloatKernel::BinaryF32 { op: bop, min, max })
        }
        DType::I32 if g.tensors[y].quant.is_none() && activation == Activation::None => {
            Ok(FloatKernel::BinaryI32(bop))
        }
        _ => require_dtype(g, y, DType::F32).map(|_| unreachable!()),
    }
}

#[cfg(test)]
mod tests;

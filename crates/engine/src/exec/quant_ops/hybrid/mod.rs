//! Dynamic-range ("hybrid") ops: FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D with a
//! float32 input and output, constant int8 weights carrying (per-tensor or per-channel)
//! quantization, and an optional float32 bias. The input is quantized on the fly per
//! row (FC) or per batch (conv), as TFLite's hybrid kernels do (see
//! `exec::kernels::hybrid` for the exact semantics).

use crate::error::{EngineError, Result};
use crate::exec::kernels::conv::ConvParams;
use crate::exec::kernels::depthwise::DepthwiseParams;
use crate::exec::kernels::geometry::Geometry;
use crate::exec::kernels::hybrid::{
    self as hk, HybridConvParams, HybridFcParams,
    fast::{PackedHybridConv, PackedHybridDepthwise, PackedHybridFc},
};
use crate::exec::kernels::{KernelChoice, Parallelism};
use crate::exec::prepare::*;
use crate::exec::tensors::Tensors;
use crate::ir::{DType, Graph, Op, OpKind, TensorId};

/// A prepared hybrid op.
enum HybridKernel {
    FcRef {
        p: HybridFcParams,
        weights: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    FcFast(PackedHybridFc),
    ConvRef {
        p: HybridConvParams,
        filter: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    ConvFast(PackedHybridConv),
    DepthwiseRef {
        p: DepthwiseParams,
        filter: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    DepthwiseFast(PackedHybridDepthwise),
}

impl OpKernel for HybridKernel {
    fn run(
        &self,
        io: &Tensors<'_>,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        par: Parallelism,
    ) {
        let x = io.input::<f32>(inputs[0].expect("input checked at preparation"));
        let y = io.output::<f32>(outputs[0]);
        match self {
            HybridKernel::FcRef {
                p,
                weights,
                scales,
                bias,
            } => hk::fc_reference(p, x, weights, scales, bias.as_deref(), y),
            HybridKernel::FcFast(k) => k.run(x, y, par),
            HybridKernel::ConvRef {
                p,
                filter,
                scales,
                bias,
            } => hk::conv_reference(p, x, filter, scales, bias.as_deref(), y),
            HybridKernel::ConvFast(k) => k.run(x, y, par),
            HybridKernel::DepthwiseRef {
                p,
                filter,
                scales,
                bias,
            } => hk::depthwise_reference(p, x, filter, scales, bias.as_deref(), y),
            HybridKernel::DepthwiseFast(k) => k.run(x, y, par),
        }
    }
}

/// Claims FC / CONV_2D / DEPTHWISE_CONV_2D whose input is float32 and whose weights are
/// an int8 constant; everything else is left to the other families.
pub(crate) fn prepare(g: &Graph, op: &Op, choice: KernelChoice) -> Option<Result<Prepared>> {
    if !matches!(
        op.kind,
        OpKind::FullyConnected(_) | OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_)
    ) {
        return None;
    }
    let (x, w) = (op.input(0)?, op.input(1)?);
    let (xt, wt) = (&g.tensors[x], &g.tensors[w]);
    if xt.dtype != DType::F32 || wt.dtype != DType::I8 || !wt.is_constant() {
        return None;
    }
    let fast = choice == KernelChoice::Fast;
    let kernel = match &op.kind {
        OpKind::FullyConnected(o) => prepare_fc(g, op, o, fast),
        OpKind::Conv2D(o) => prepare_conv(g, op, o, fast),
        OpKind::DepthwiseConv2D(o) => prepare_depthwise(g, op, o, fast),
        _ => return None,
    };
    Some(kernel.map(|k| {
        let mut packed = vec![1];
        if op.input(2).is_some() {
            packed.push(2);
        }
        Prepared::packing(k, packed)
    }))
}

/// The int8 weight values and one scale per output channel (`axis` = the channel axis).
/// Per-tensor scales are repeated; TFLite's hybrid kernels ignore weight zero points, so
/// a non-zero one is rejected rather than silently dropped.
fn weights_and_scales(
    g: &Graph,
    w: TensorId,
    axis: usize,
    channels: usize,
) -> Result<(Vec<i8>, Vec<f32>, bool)> {
    let t = &g.tensors[w];
    let data: Vec<i8> = t
        .data
        .as_ref()
        .ok_or_else(|| EngineError::invalid(format!("weights '{}' are not constant", t.name)))?
        .iter()
        .map(|&b| b as i8)
        .collect();
    let q = t
        .quant
        .as_ref()
        .filter(|q| !q.scale.is_empty())
        .ok_or_else(|| {
            EngineError::unsupported(format!(
                "int8 weights '{}' have no quantization scale (a hybrid op needs one)",
                t.name
            ))
        })?;
    if q.zero_point.iter().any(|&z| z != 0) {
        return Err(EngineError::unsupported(format!(
            "hybrid weights '{}' have a non-zero zero point (TFLite requires symmetric int8)",
            t.name
        )));
    }
    let per_channel = q.scale.len() > 1;
    if per_channel && (q.axis != axis || q.scale.len() != channels) {
        return Err(EngineError::invalid(format!(
            "weights '{}': {} per-axis scales along axis {}, expected {channels} along axis {axis}",
            t.name,
            q.scale.len(),
            q.axis
        )));
    }
    if let Some(bad) = q.scale.iter().find(|s| !s.is_finite()) {
        return Err(EngineError::invalid(format!(
            "weights '{}': scale {bad} is not finite",
            t.name
        )));
    }
    let scales = if per_channel {
        q.scale.clone()
    } else {
        vec![q.scale[0]; channels]
    };
    Ok((data, scales, per_channel))
}

fn require_float_output(g: &Graph, op: &Op) -> Result<TensorId> {
    let y = require_output(op)?;
    require_dtype(g, y, DType::F32)?;
    Ok(y)
}

fn prepare_fc(
    g: &Graph,
    op: &Op,
    o: &crate::ir::FullyConnectedOptions,
    fast: bool,
) -> Result<HybridKernel> {
    let (x, w) = (require_input(op, 0)?, require_input(op, 1)?);
    let y = require_float_output(g, op)?;
    if o.weights_format != 0 {
        return Err(EngineError::unsupported("shuffled hybrid FC weights"));
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
    let (act_min, act_max) = act_range(o.activation)?;
    let p = HybridFcParams {
        rows,
        depth,
        units,
        asymmetric: o.asymmetric_quantize_inputs,
        act_min,
        act_max,
    };
    let (weights, scales, _) = weights_and_scales(g, w, 0, units)?;
    let bias = optional_bias(g, op, units)?;
    p.check(
        elems,
        weights.len(),
        scales.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    Ok(if fast {
        HybridKernel::FcFast(PackedHybridFc::new(&p, &weights, &scales, bias.as_deref()))
    } else {
        HybridKernel::FcRef {
            p,
            weights,
            scales,
            bias,
        }
    })
}

fn prepare_conv(
    g: &Graph,
    op: &Op,
    o: &crate::ir::Conv2DOptions,
    fast: bool,
) -> Result<HybridKernel> {
    let (x, w) = (require_input(op, 0)?, require_input(op, 1)?);
    let y = require_float_output(g, op)?;
    let [n, h, wd, c] = rank4(g, x)?;
    let [oc, kh, kw, ic] = rank4(g, w)?;
    if ic != c {
        return Err(EngineError::unsupported(format!(
            "hybrid conv filter depth {ic} differs from input depth {c} (grouped conv)"
        )));
    }
    if n == 0 {
        return Err(EngineError::invalid("hybrid conv: batch 0"));
    }
    let geom = Geometry::conv([n, h, wd, c], [kh, kw], oc, conv_attrs(o))?;
    expect_shape(g, y, &geom.output_shape())?;
    let (act_min, act_max) = act_range(o.activation)?;
    let (filter, scales, has_axis) = weights_and_scales(g, w, 0, oc)?;
    // TFLite takes the per-channel path only when the channel scales really differ.
    let per_channel = has_axis && scales.iter().any(|&s| s != scales[0]);
    let p = HybridConvParams {
        conv: ConvParams {
            geom,
            act_min,
            act_max,
        },
        per_channel,
    };
    let bias = optional_bias(g, op, oc)?;
    hk::check_conv(
        &p,
        g.tensors[x].num_elements(),
        filter.len(),
        scales.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    Ok(if fast {
        HybridKernel::ConvFast(PackedHybridConv::new(&p, &filter, &scales, bias.as_deref()))
    } else {
        HybridKernel::ConvRef {
            p,
            filter,
            scales,
            bias,
        }
    })
}

fn prepare_depthwise(
    g: &Graph,
    op: &Op,
    o: &crate::ir::DepthwiseConv2DOptions,
    fast: bool,
) -> Result<HybridKernel> {
    let (x, w) = (require_input(op, 0)?, require_input(op, 1)?);
    let y = require_float_output(g, op)?;
    let [n, h, wd, c] = rank4(g, x)?;
    let [one, kh, kw, oc] = rank4(g, w)?;
    if one != 1 || c == 0 || oc % c != 0 {
        return Err(EngineError::invalid(format!(
            "depthwise filter shape {:?} does not fit input depth {c}",
            shape_of(g, w)
        )));
    }
    if n == 0 {
        return Err(EngineError::invalid("hybrid depthwise: batch 0"));
    }
    let geom = Geometry::depthwise([n, h, wd, c], [kh, kw], oc, depthwise_attrs(o))?;
    expect_shape(g, y, &geom.output_shape())?;
    let (act_min, act_max) = act_range(o.activation)?;
    let p = DepthwiseParams {
        geom,
        act_min,
        act_max,
    };
    let (filter, scales, _) = weights_and_scales(g, w, 3, oc)?;
    let bias = optional_bias(g, op, oc)?;
    hk::check_depthwise(
        &p,
        g.tensors[x].num_elements(),
        filter.len(),
        scales.len(),
        bias.as_ref().map(Vec::len),
        g.tensors[y].num_elements(),
    )?;
    Ok(if fast {
        HybridKernel::DepthwiseFast(PackedHybridDepthwise::new(
            &p,
            &filter,
            &scales,
            bias.as_deref(),
        ))
    } else {
        HybridKernel::DepthwiseRef {
            p,
            filter,
            scales,
            bias,
        }
    })
}

#[cfg(test)]
mod tests;

//! Placement: every op of a model → the device or the CPU, with the reason in the
//! words of the Edge TPU compiler's log, then the device's partitioning rule.
//!
//! Per-op checks run in this order, the first failing one giving the reason:
//! 1. float tensors (the Edge TPU and the DSP) or other types the device does not
//!    compute in → "Operation is working on an unsupported data type" (a QUANTIZE from
//!    float is "otherwise supported, but not mapped": the compiler's wording);
//! 2. op not in the profile's table → "Operation not supported";
//! 3. version limits → "Operation version not supported";
//! 4. tensor rank rules and the op's limits → "Operation is otherwise supported, but
//!    not mapped due to some unspecified limitation", with the limit in `detail`.
//!
//! Then the partitioning rule (see [`Partitioning`]).

use quantfarm_engine::ir::{Activation, DType, Graph, Op, OpKind};
use serde::Serialize;

use crate::numerics::is_weighted;
use crate::ops::op_name;
use crate::profile::{DeviceKind, DeviceProfile, Limit, OpSupport, Partitioning, PlacementRules};

/// Compiler-log status strings (accelerators.md §1.3).
pub const MAPPED_EDGETPU: &str = "Mapped to Edge TPU";
pub const NOT_SUPPORTED: &str = "Operation not supported";
pub const VERSION_NOT_SUPPORTED: &str = "Operation version not supported";
pub const UNSUPPORTED_DTYPE: &str = "Operation is working on an unsupported data type";
pub const UNSPECIFIED_LIMITATION: &str =
    "Operation is otherwise supported, but not mapped due to some unspecified limitation";
pub const MORE_THAN_ONE_SUBGRAPH: &str = "More than one subgraph is not supported";
/// Delegates (Hexagon, GPU): a supported op left out by the partition limits.
pub const PARTITION_TOO_SMALL: &str = "Partition has fewer nodes than min_nodes_per_partition";
pub const PARTITION_LIMIT: &str = "Partition is beyond max_partitions";
/// The whole model stays on the CPU (numerics the device does not accept).
pub const MODEL_REFUSED: &str = "Model numerics not accepted by the device";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Device,
    Cpu,
}

/// Why one op could not go to the device (before partitioning).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub reason: &'static str,
    pub detail: Option<String>,
}

fn refuse(reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: Some(detail.into()),
    }
}

/// What the device says about an op it runs.
pub fn mapped_reason(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Edgetpu => MAPPED_EDGETPU,
        DeviceKind::Dsp => "Delegated to Hexagon DSP",
        DeviceKind::Gpu => "Delegated to GPU",
        DeviceKind::Cpu => "Runs on the CPU",
    }
}

/// Result of placing a whole graph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphPlacement {
    pub placement: Vec<Placement>,
    pub reason: Vec<&'static str>,
    pub detail: Vec<Option<String>>,
    /// Device partitions as lists of op indices (graph order).
    pub partitions: Vec<Vec<usize>>,
    /// First op after the device part began that could not be mapped (Edge TPU cut).
    pub first_unmapped: Option<usize>,
}

/// Place every op of `g` on `profile`'s device, or on the CPU with a reason.
/// `refused` forces the whole model onto the CPU (numerics not accepted).
pub(crate) fn place(g: &Graph, profile: &DeviceProfile, refused: bool) -> GraphPlacement {
    let n = g.ops.len();
    let Some(rules) = &profile.placement else {
        // A profile without rules (the host CPU) runs everything itself.
        return GraphPlacement {
            placement: vec![Placement::Device; n],
            reason: vec![mapped_reason(profile.kind); n],
            detail: vec![None; n],
            partitions: if n > 0 {
                vec![(0..n).collect()]
            } else {
                vec![]
            },
            first_unmapped: None,
        };
    };
    let checks: Vec<Result<(), Refusal>> = (0..n)
        .map(|i| check_op(g, &g.ops[i], profile.kind, rules))
        .collect();
    let mut out = GraphPlacement {
        placement: vec![Placement::Cpu; n],
        reason: vec![NOT_SUPPORTED; n],
        detail: vec![None; n],
        partitions: Vec::new(),
        first_unmapped: None,
    };
    for (i, c) in checks.iter().enumerate() {
        match c {
            Ok(()) => out.reason[i] = mapped_reason(profile.kind),
            Err(r) => {
                out.reason[i] = r.reason;
                out.detail[i] = r.detail.clone();
            }
        }
    }
    if refused {
        for (i, c) in checks.iter().enumerate() {
            if c.is_ok() {
                out.reason[i] = MODEL_REFUSED;
            }
        }
        return out;
    }
    match &rules.partitioning {
        Partitioning::All => {
            for (i, c) in checks.iter().enumerate() {
                if c.is_ok() {
                    out.placement[i] = Placement::Device;
                }
            }
            out.partitions = runs(&out.placement);
        }
        Partitioning::SingleSegment => {
            // One segment in graph order: unmapped ops before the first mapped op stay
            // on the CPU in front of it (e.g. a QUANTIZE from float input); after it
            // began, the first unmapped op and every op after it run on the CPU.
            let mut started = false;
            let mut cut = false;
            for (i, c) in checks.iter().enumerate() {
                if cut {
                    if c.is_ok() {
                        out.reason[i] = MORE_THAN_ONE_SUBGRAPH;
                    }
                    continue;
                }
                if c.is_ok() {
                    started = true;
                    out.placement[i] = Placement::Device;
                } else if started {
                    cut = true;
                    out.first_unmapped = Some(i);
                }
            }
            out.partitions = runs(&out.placement);
        }
        Partitioning::Delegate {
            max_partitions,
            min_nodes_per_partition,
        } => {
            let ok: Vec<Placement> = checks
                .iter()
                .map(|c| {
                    if c.is_ok() {
                        Placement::Device
                    } else {
                        Placement::Cpu
                    }
                })
                .collect();
            let mut parts = runs(&ok);
            // The largest partitions first (ties: earlier first), as TFLite's partition
            // helper orders them; then the limits.
            parts.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
            let min_nodes = min_nodes_per_partition.si.max(1.0) as usize;
            let max_parts = max_partitions.si.max(1.0) as usize;
            let mut kept = Vec::new();
            for p in parts {
                let reason = if p.len() < min_nodes {
                    Some((
                        PARTITION_TOO_SMALL,
                        format!("{} node(s), at least {min_nodes} needed", p.len()),
                    ))
                } else if kept.len() >= max_parts {
                    Some((
                        PARTITION_LIMIT,
                        format!("{max_parts} partition(s) already delegated"),
                    ))
                } else {
                    None
                };
                match reason {
                    Some((r, d)) => {
                        for &i in &p {
                            out.reason[i] = r;
                            out.detail[i] = Some(d.clone());
                        }
                    }
                    None => {
                        for &i in &p {
                            out.placement[i] = Placement::Device;
                        }
                        kept.push(p);
                    }
                }
            }
            kept.sort_by_key(|p| p[0]);
            out.partitions = kept;
        }
    }
    out
}

/// Maximal runs of consecutive device ops.
fn runs(p: &[Placement]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for (i, &pl) in p.iter().enumerate() {
        if pl == Placement::Device {
            cur.push(i);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::F64)
}

/// Non-constant tensors an op reads and writes (state tensors included).
fn data_tensors<'a>(
    g: &'a Graph,
    op: &'a Op,
) -> impl Iterator<Item = (usize, &'a quantfarm_engine::ir::Tensor)> {
    op.inputs
        .iter()
        .flatten()
        .copied()
        .chain(op.outputs.iter().copied())
        .map(move |t| (t, &g.tensors[t]))
        .filter(|(_, t)| !t.is_constant())
}

/// The dtype stage (check 1 and the non-float part of it).
fn check_types(g: &Graph, op: &Op, kind: DeviceKind, float_only: bool) -> Result<(), Refusal> {
    let name = op_name(&op.kind);
    match kind {
        DeviceKind::Cpu => Ok(()),
        DeviceKind::Edgetpu | DeviceKind::Dsp => {
            // Weights of a weighted op count too: a dynamic-range conv has int8 weights
            // but float activations; a float conv float weights.
            let float_tensor = op
                .inputs
                .iter()
                .flatten()
                .chain(&op.outputs)
                .map(|&t| &g.tensors[t])
                .find(|t| is_float(t.dtype));
            if let Some(t) = float_tensor {
                if matches!(op.kind, OpKind::Quantize) && kind == DeviceKind::Edgetpu {
                    let out_8bit = op
                        .outputs
                        .first()
                        .is_some_and(|&o| matches!(g.tensors[o].dtype, DType::I8 | DType::U8));
                    if out_8bit {
                        return Err(refuse(
                            UNSPECIFIED_LIMITATION,
                            "QUANTIZE from float input (the conversion runs on the CPU)",
                        ));
                    }
                }
                return Err(refuse(
                    UNSUPPORTED_DTYPE,
                    format!("{name}: tensor '{}' is {}", t.name, t.dtype),
                ));
            }
            if float_only {
                return Ok(());
            }
            for (_, t) in data_tensors(g, op) {
                let ok = match t.dtype {
                    DType::I8 | DType::U8 => true,
                    // The integer LSTM keeps its cell state in int16 (mapped as a whole).
                    DType::I16 => {
                        matches!(op.kind, OpKind::UnidirectionalSequenceLstm(_)) && t.is_variable
                    }
                    _ => false,
                };
                if !ok {
                    return Err(refuse(
                        UNSUPPORTED_DTYPE,
                        format!("{name}: tensor '{}' is {}", t.name, t.dtype),
                    ));
                }
            }
            Ok(())
        }
        DeviceKind::Gpu => {
            if float_only {
                return Ok(());
            }
            for (_, t) in data_tensors(g, op) {
                let ok = match t.dtype {
                    DType::F32 | DType::F16 | DType::I8 | DType::U8 => true,
                    // Index operands (reshape shapes computed at run time) are fine.
                    DType::I32 => !is_weighted(&op.kind),
                    DType::Bool => true,
                    _ => false,
                };
                if !ok {
                    return Err(refuse(
                        UNSUPPORTED_DTYPE,
                        format!("{name}: tensor '{}' is {}", t.name, t.dtype),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// All per-op checks; `Ok` = the device can run the op.
pub(crate) fn check_op(
    g: &Graph,
    op: &Op,
    kind: DeviceKind,
    rules: &PlacementRules,
) -> Result<(), Refusal> {
    check_types(g, op, kind, true)?;
    let name = op_name(&op.kind);
    let limits = match &rules.ops {
        OpSupport::All => return Ok(()),
        OpSupport::Listed(m) => match m.get(&name) {
            Some(l) => l,
            None => {
                let detail = match &op.kind {
                    OpKind::Custom { code, .. } => format!("custom op '{code}'"),
                    _ => format!("{name} is not in the device's op table"),
                };
                return Err(refuse(NOT_SUPPORTED, detail));
            }
        },
    };
    for l in limits {
        match l {
            Limit::MaxVersion(v) if f64::from(op.version) > v.si => {
                return Err(refuse(
                    VERSION_NOT_SUPPORTED,
                    format!("{name} version {}, at most {}", op.version, v.value),
                ));
            }
            Limit::Version(v) if f64::from(op.version) != v.si => {
                return Err(refuse(
                    VERSION_NOT_SUPPORTED,
                    format!("{name} version {}, only {}", op.version, v.value),
                ));
            }
            _ => {}
        }
    }
    check_types(g, op, kind, false)?;
    check_tensors(g, op, rules)?;
    for l in limits {
        if let Some(d) = check_limit(g, op, l) {
            return Err(refuse(UNSPECIFIED_LIMITATION, format!("{name}: {d}")));
        }
    }
    Ok(())
}

/// Rank rules on every non-constant tensor of the op.
fn check_tensors(g: &Graph, op: &Op, rules: &PlacementRules) -> Result<(), Refusal> {
    let name = op_name(&op.kind);
    for (_, t) in data_tensors(g, op) {
        if let Some(r) = &rules.tensors.max_rank
            && t.shape.len() as f64 > r.si
        {
            return Err(refuse(
                UNSPECIFIED_LIMITATION,
                format!(
                    "{name}: tensor '{}' has rank {}, at most {}",
                    t.name,
                    t.shape.len(),
                    r.value
                ),
            ));
        }
        if let Some(k) = &rules.tensors.innermost_dims {
            let k = k.si as usize;
            if t.shape.len() > k && t.shape[..t.shape.len() - k].iter().any(|&d| d > 1) {
                return Err(refuse(
                    UNSPECIFIED_LIMITATION,
                    format!(
                        "{name}: tensor '{}' of shape {:?}: only the {k} innermost dimensions may exceed 1",
                        t.name, t.shape
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn fused_activation(kind: &OpKind) -> Activation {
    match kind {
        OpKind::Add { activation, .. }
        | OpKind::Sub { activation, .. }
        | OpKind::Mul { activation }
        | OpKind::Div { activation }
        | OpKind::Concatenation { activation, .. } => *activation,
        OpKind::Conv2D(o) => o.activation,
        OpKind::DepthwiseConv2D(o) => o.activation,
        OpKind::AveragePool2D(o) | OpKind::MaxPool2D(o) => o.activation,
        OpKind::FullyConnected(o) => o.activation,
        OpKind::UnidirectionalSequenceLstm(o) => o.activation,
        _ => Activation::None,
    }
}

/// (stride_h, stride_w, dilation_h, dilation_w) of a windowed op.
fn window(kind: &OpKind) -> Option<(usize, usize, usize, usize)> {
    match kind {
        OpKind::Conv2D(o) => Some((o.stride_h, o.stride_w, o.dilation_h, o.dilation_w)),
        OpKind::DepthwiseConv2D(o) => Some((o.stride_h, o.stride_w, o.dilation_h, o.dilation_w)),
        OpKind::AveragePool2D(o) | OpKind::MaxPool2D(o) => Some((o.stride_h, o.stride_w, 1, 1)),
        _ => None,
    }
}

fn shape_of(g: &Graph, t: Option<usize>) -> Vec<usize> {
    t.map(|t| g.tensors[t].shape.clone()).unwrap_or_default()
}

/// Only the innermost dimension above 1.
fn is_1d(shape: &[usize]) -> bool {
    shape.len() <= 1 || shape[..shape.len() - 1].iter().all(|&d| d == 1)
}

/// Constant axes of a reduction / pack, normalised to the input rank.
fn axes(g: &Graph, op: &Op) -> Option<Vec<usize>> {
    let rank = shape_of(g, op.input(0)).len() as i64;
    let norm = |a: i64| usize::try_from(if a < 0 { a + rank } else { a }).ok();
    match &op.kind {
        OpKind::Pack { axis, .. } | OpKind::Unpack { axis, .. } => {
            norm(i64::from(*axis)).map(|a| vec![a])
        }
        OpKind::Concatenation { axis, .. } => norm(i64::from(*axis)).map(|a| vec![a]),
        _ => {
            let t = &g.tensors[op.input(1)?];
            t.data_i64()?.into_iter().map(norm).collect()
        }
    }
}

/// `Some(explanation)` when `op` breaks `limit`.
fn check_limit(g: &Graph, op: &Op, limit: &Limit) -> Option<String> {
    let act = fused_activation(&op.kind);
    let in0 = shape_of(g, op.input(0));
    let out0 = shape_of(g, op.outputs.first().copied());
    match limit {
        Limit::NoFusedActivation => {
            (act != Activation::None).then(|| format!("fused activation {act:?}, none allowed"))
        }
        Limit::ActivationReluOrNone => (!matches!(
            act,
            Activation::None | Activation::Relu | Activation::Relu6 | Activation::ReluN1To1
        ))
        .then(|| format!("fused activation {act:?}, only NONE/RELU/RELU6/RELU_N1_TO_1")),
        Limit::NoSignBitActivation => {
            (act == Activation::SignBit).then(|| "fused activation SIGN_BIT".to_string())
        }
        Limit::EqualDilation => window(&op.kind).and_then(|(_, _, dh, dw)| {
            (dh != dw).then(|| format!("dilation {dh}x{dw}: x and y must be equal"))
        }),
        Limit::DilationOne => window(&op.kind).and_then(|(_, _, dh, dw)| {
            (dh != 1 || dw != 1).then(|| format!("dilation {dh}x{dw}: only 1"))
        }),
        Limit::DilationOnlyWithStrideOne => window(&op.kind).and_then(|(sh, sw, dh, dw)| {
            ((dh != 1 || dw != 1) && (sh != 1 || sw != 1))
                .then(|| format!("dilation {dh}x{dw} with stride {sh}x{sw}"))
        }),
        Limit::MaxStride(q) => window(&op.kind).and_then(|(sh, sw, _, _)| {
            (sh.max(sw) as f64 > q.si).then(|| format!("stride {sh}x{sw}, at most {}", q.value))
        }),
        Limit::DepthMultiplierOneOrSingleChannel => match &op.kind {
            OpKind::DepthwiseConv2D(o) => {
                (o.depth_multiplier > 1 && in0.last().copied().unwrap_or(1) != 1).then(|| {
                    format!(
                        "depth multiplier {} with {} input channels",
                        o.depth_multiplier,
                        in0.last().copied().unwrap_or(0)
                    )
                })
            }
            _ => None,
        },
        Limit::MinFilterHeight(q) => {
            let f = shape_of(g, op.input(1));
            (f.len() == 4 && (f[1] as f64) < q.si)
                .then(|| format!("filter height {}, at least {}", f[1], q.value))
        }
        Limit::ConstantInputZeroPair => {
            let consts: Vec<&quantfarm_engine::ir::Tensor> = op
                .inputs
                .iter()
                .flatten()
                .map(|&t| &g.tensors[t])
                .filter(|t| t.is_constant())
                .collect();
            if consts.is_empty() {
                None
            } else if op.inputs.len() != 2 {
                Some(format!(
                    "a constant input with {} inputs (exactly two allowed)",
                    op.inputs.len()
                ))
            } else {
                consts.iter().find(|t| !is_zero_constant(t)).map(|t| {
                    format!(
                        "constant input '{}' is not all zeros (only zero padding)",
                        t.name
                    )
                })
            }
        }
        Limit::DefaultWeightsFormat => match &op.kind {
            OpKind::FullyConnected(o) => {
                (o.weights_format != 0).then(|| "shuffled weight format".to_string())
            }
            _ => None,
        },
        Limit::Output1d => (!is_1d(&out0)).then(|| format!("output shape {out0:?} is not 1-D")),
        Limit::Input1d => (!is_1d(&in0)).then(|| format!("input shape {in0:?} is not 1-D")),
        Limit::NotOverBatch => match &op.kind {
            OpKind::Pad | OpKind::UnknownBuiltin { code: 60 } => {
                let p = op.input(1).and_then(|t| g.tensors[t].data_i64());
                p.and_then(|p| {
                    (p.len() >= 2 && (p[0] != 0 || p[1] != 0) && in0.len() == 4)
                        .then(|| "padding along the batch axis".to_string())
                })
            }
            _ => axes(g, op).and_then(|a| {
                (in0.len() >= 2 && a.contains(&0))
                    .then(|| "operates along the batch axis".to_string())
            }),
        },
        Limit::ChannelReductionMultipleOf(q) => axes(g, op).and_then(|a| {
            let c = in0.last().copied().unwrap_or(1);
            let m = q.si as usize;
            (in0.len() >= 2 && a.contains(&(in0.len() - 1)) && m > 0 && c % m != 0)
                .then(|| format!("reduction over {c} channels, a multiple of {m} needed"))
        }),
        Limit::MaxElements(q) => {
            let n: usize = in0.iter().product();
            (n as f64 > q.si).then(|| format!("{n} input elements, at most {}", q.value))
        }
        Limit::LeadingSqueezeOnly => {
            // Squeezing only leading 1s keeps the layout: the output is a suffix of the input.
            let ok = in0.len() >= out0.len()
                && in0[in0.len() - out0.len()..] == out0[..]
                && in0[..in0.len() - out0.len()].iter().all(|&d| d == 1);
            (!ok).then(|| format!("squeeze {in0:?} → {out0:?} is not of leading 1s"))
        }
        Limit::NoShrinkMask => match &op.kind {
            OpKind::StridedSlice(o) => {
                (o.shrink_axis_mask != 0).then(|| "shrink-axis mask".to_string())
            }
            _ => None,
        },
        Limit::UnitStridesNoMasks | Limit::NoSliceMasks => match &op.kind {
            OpKind::StridedSlice(o) => {
                if o.ellipsis_mask != 0 || o.new_axis_mask != 0 {
                    Some("ellipsis or new-axis mask".into())
                } else if matches!(limit, Limit::UnitStridesNoMasks) {
                    let s = op.input(3).and_then(|t| g.tensors[t].data_i64());
                    s.and_then(|s| {
                        s.iter()
                            .any(|&x| x != 1)
                            .then(|| format!("strides {s:?}, all 1 needed"))
                    })
                } else {
                    None
                }
            }
            _ => None,
        },
        Limit::MaxUpscale(q) => (in0.len() == 4 && out0.len() == 4)
            .then_some(())
            .and_then(|()| {
                let f = (out0[1] as f64 / in0[1].max(1) as f64)
                    .max(out0[2] as f64 / in0[2].max(1) as f64);
                (f > q.si).then(|| {
                    format!(
                        "upscale {}x{} → {}x{} (factor {f:.1}), at most {} (precision)",
                        in0[1], in0[2], out0[1], out0[2], q.value
                    )
                })
            }),
        Limit::MaxOutputSize(q) => (out0.len() == 4
            && (out0[1] as f64 > q.si || out0[2] as f64 > q.si))
            .then(|| format!("output {}x{}, at most {}", out0[1], out0[2], q.value)),
        Limit::AlphaInnermost => {
            let a = shape_of(g, op.input(1));
            (!is_1d(&a))
                .then(|| format!("alpha shape {a:?}: only the innermost dimension may exceed 1"))
        }
        Limit::ConstantOperands => op.inputs.iter().skip(1).flatten().find_map(|&t| {
            let t = &g.tensors[t];
            (!t.is_constant()).then(|| format!("operand '{}' is not constant", t.name))
        }),
        Limit::PadValueZero => op.input(2).and_then(|t| {
            let t = &g.tensors[t];
            (!is_zero_constant(t)).then(|| "pad value is not 0".to_string())
        }),
        Limit::NoKeepNumDims => match &op.kind {
            OpKind::FullyConnected(o) => o.keep_num_dims.then(|| "keep_num_dims".to_string()),
            _ => None,
        },
        Limit::TwoInputs => {
            let k = op.inputs.iter().flatten().count();
            (k != 2).then(|| format!("{k} inputs, exactly 2 needed"))
        }
        Limit::MaxInputs(q) => {
            let k = op.inputs.iter().flatten().count();
            (k as f64 > q.si).then(|| format!("{k} inputs, at most {}", q.value))
        }
        Limit::BetaOne => match &op.kind {
            OpKind::Softmax { beta } => (*beta != 1.0).then(|| format!("beta {beta}, only 1")),
            _ => None,
        },
        Limit::FourD => {
            let f = shape_of(g, op.input(1));
            (in0.len() != 4 || out0.len() != 4 || f.len() != 4)
                .then(|| "input, filter and output must be 4-D".to_string())
        }
        Limit::Rank3Or4Input => {
            (!matches!(in0.len(), 3 | 4)).then(|| format!("input of rank {}", in0.len()))
        }
        Limit::EightBitIo => {
            let ok = |t: Option<usize>| {
                t.is_some_and(|t| matches!(g.tensors[t].dtype, DType::I8 | DType::U8))
            };
            (!(ok(op.input(0)) && ok(op.outputs.first().copied())))
                .then(|| "only 8-bit → 8-bit requantization".to_string())
        }
        Limit::MaxVersion(_) | Limit::Version(_) => None,
    }
}

fn is_zero_constant(t: &quantfarm_engine::ir::Tensor) -> bool {
    let Some(d) = &t.data else {
        return false;
    };
    // A quantized zero is the zero point, not the byte 0.
    match (&t.quant, t.dtype) {
        (Some(q), DType::I8 | DType::U8) if !q.zero_point.is_empty() => {
            let zp = q.zero_point[0];
            d.iter().all(|&b| {
                let v = if t.dtype == DType::I8 {
                    i64::from(b as i8)
                } else {
                    i64::from(b)
                };
                v == zp
            })
        }
        _ => d.iter().all(|&b| b == 0),
    }
}

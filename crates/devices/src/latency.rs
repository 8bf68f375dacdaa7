//! Latency model: one formula per device kind, every number from the profile.
//!
//! Per op, from the engine's per-op costs (`stats::op_cost`: MACs, activation and
//! parameter bytes):
//!
//! ```text
//! compute = MACs / (peak × utilisation)        (depthwise: × depthwise_utilisation)
//! memory  = (input + output + parameter bytes) / memory_bandwidth
//!           (ops without MACs, when the profile gives `per_element`:
//!            (input + output elements) × per_element)
//! op      = max(compute, memory) + per_op
//!         + (input + output elements) × per_hybrid_element   (CPU, dynamic-range ops)
//! ```
//!
//! - CPU: the compute type follows the op's tensors (float32, int8/uint8, int16x8,
//!   dynamic-range = int8 arithmetic plus the on-the-fly activation quantization).
//! - GPU: float arithmetic whatever the model's numerics (an int8 model runs through a
//!   float view, GPU-DOC), at fp16 or fp32 as the profile's `precision` says; channels
//!   count in slices of 4 (GPU-DOC: C=5 costs like C=8).
//! - Edge TPU: int8; parameters are cached on chip in graph order until
//!   `onchip_param_memory` is full, the rest is streamed over `param_link` (default
//!   `host_link`) on every inference, added to the op that uses them.
//! - DSP: int8.
//!
//! Then per model: ops left on the CPU are priced by the `fallback_cpu` profile (the
//! same formula); every device partition costs `per_partition` plus its boundary
//! tensors (inputs from the CPU, outputs to it) over `host_link`; one `per_inference`.

use quantfarm_engine::ir::{DType, Graph, Op, OpKind};
use serde::Serialize;

use crate::numerics::is_weighted;
use crate::ops::cost;
use crate::placement::Placement;
use crate::profile::{ComputeType, DeviceKind, DeviceProfile, Precision, Throughput};

/// Where predicted time goes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Breakdown {
    /// Compute-bound device ops (MACs at the effective rate).
    pub compute_ms: f64,
    /// Memory-bound device ops (bytes at the memory bandwidth).
    pub memory_ms: f64,
    /// Host link: streamed parameters and partition-boundary tensors.
    pub link_ms: f64,
    /// Fixed costs: per op, per partition, per inference.
    pub overhead_ms: f64,
    /// Ops left on the CPU, priced by the fallback CPU profile.
    pub fallback_ms: f64,
}

/// The compute type an op runs in on a device of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Plain(ComputeType),
    /// Dynamic range: int8 arithmetic, float activations quantized per op.
    Hybrid,
}

fn op_arith(g: &Graph, op: &Op, profile: &DeviceProfile) -> Arith {
    match profile.kind {
        DeviceKind::Gpu => {
            return Arith::Plain(if profile.precision == Some(Precision::Fp16) {
                ComputeType::Float16
            } else {
                ComputeType::Float32
            });
        }
        DeviceKind::Edgetpu | DeviceKind::Dsp => return Arith::Plain(ComputeType::Int8),
        DeviceKind::Cpu => {}
    }
    let act = op
        .inputs
        .iter()
        .flatten()
        .map(|&t| &g.tensors[t])
        .find(|t| !t.is_constant())
        .map(|t| t.dtype);
    let w = op.input(1).map(|t| &g.tensors[t]);
    match act {
        Some(DType::F32 | DType::F16)
            if is_weighted(&op.kind)
                && w.is_some_and(|w| {
                    w.is_constant() && matches!(w.dtype, DType::I8 | DType::U8)
                }) =>
        {
            Arith::Hybrid
        }
        Some(DType::I8 | DType::U8) => Arith::Plain(ComputeType::Int8),
        Some(DType::I16) => Arith::Plain(ComputeType::Int16x8),
        _ => Arith::Plain(ComputeType::Float32),
    }
}

/// The throughput for a compute type, falling back to a close one the profile has
/// (float16 → float32; int16x8 → int8; anything → the first listed).
fn rate(profile: &DeviceProfile, t: ComputeType) -> Option<&Throughput> {
    let alt = match t {
        ComputeType::Float16 => ComputeType::Float32,
        ComputeType::Int16x8 => ComputeType::Int8,
        other => other,
    };
    profile
        .throughput(t)
        .or_else(|| profile.throughput(alt))
        .or_else(|| profile.throughput.values().next())
}

fn round4(c: usize) -> usize {
    c.div_ceil(4) * 4
}

/// GPU MACs with channels padded to slices of 4 (input and output channels).
fn gpu_macs(g: &Graph, op: &Op, macs: u64) -> f64 {
    let ch = |t: Option<usize>| {
        t.and_then(|t| g.tensors[t].shape.last().copied())
            .unwrap_or(4)
    };
    let pad = |c: usize| {
        if c == 0 {
            1.0
        } else {
            round4(c) as f64 / c as f64
        }
    };
    let out_c = ch(op.outputs.first().copied());
    match &op.kind {
        OpKind::Conv2D(_) | OpKind::FullyConnected(_) => {
            macs as f64 * pad(out_c) * pad(ch(op.input(0)))
        }
        OpKind::DepthwiseConv2D(_) => macs as f64 * pad(out_c),
        _ => macs as f64,
    }
}

/// Predicted time of one op on `profile` (a device, or the CPU pricing the fallback).
/// Returns (seconds, compute-bound?, compute seconds, memory seconds).
pub(crate) fn op_seconds(g: &Graph, op: &Op, profile: &DeviceProfile) -> OpTime {
    let c = cost(g, op);
    let arith = op_arith(g, op, profile);
    let ct = match arith {
        Arith::Plain(t) => t,
        Arith::Hybrid => ComputeType::Int8,
    };
    let macs = if profile.kind == DeviceKind::Gpu {
        gpu_macs(g, op, c.macs)
    } else {
        c.macs as f64
    };
    let compute = match rate(profile, ct) {
        Some(t) if macs > 0.0 => {
            let r = if matches!(op.kind, OpKind::DepthwiseConv2D(_)) {
                t.depthwise()
            } else {
                t.dense()
            };
            macs / r
        }
        _ => 0.0,
    };
    let oh = profile.overheads.as_ref();
    let bytes = (c.input_bytes + c.output_bytes + c.param_bytes) as f64;
    let memory = match oh.and_then(|o| o.per_element.as_ref()) {
        Some(e) if c.macs == 0 => (c.input_elements + c.output_elements) as f64 * e.si,
        _ => profile
            .memory_bandwidth
            .as_ref()
            .map_or(0.0, |bw| bytes / bw.si),
    };
    let per_op = oh.map_or(0.0, |o| o.per_op.si);
    let hybrid = if arith == Arith::Hybrid {
        let e = oh
            .and_then(|o| o.per_hybrid_element.as_ref())
            .map_or(0.0, |q| q.si);
        (c.input_elements + c.output_elements) as f64 * e
    } else {
        0.0
    };
    OpTime {
        compute,
        memory,
        overhead: per_op + hybrid,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct OpTime {
    pub compute: f64,
    pub memory: f64,
    /// Per-op overhead (and hybrid quantization work on a CPU).
    pub overhead: f64,
}

impl OpTime {
    pub fn total(&self) -> f64 {
        self.compute.max(self.memory) + self.overhead
    }
}

/// The model-level prediction.
pub(crate) struct Prediction {
    /// Seconds per op (device or CPU), graph order; streamed parameters and boundary
    /// transfers included in the op that causes them.
    pub per_op: Vec<f64>,
    pub total: f64,
    pub breakdown: Breakdown,
    /// Edge TPU style summary: parameter bytes cached on chip / streamed.
    pub onchip_param_bytes: u64,
    pub offchip_param_bytes: u64,
}

/// Predict the latency of `g` with the given placement and partitions.
pub(crate) fn predict(
    g: &Graph,
    device: &DeviceProfile,
    cpu: &DeviceProfile,
    placement: &[Placement],
    partitions: &[Vec<usize>],
) -> Prediction {
    let n = g.ops.len();
    let mut per_op = vec![0.0; n];
    let mut b = Breakdown::default();
    // Parameter caching (devices with an on-chip parameter memory).
    let mut budget = device
        .onchip_param_memory
        .as_ref()
        .map_or(f64::INFINITY, |q| q.si);
    let param_bw = device
        .param_link
        .as_ref()
        .or(device.host_link.as_ref())
        .map(|q| q.si);
    let (mut onchip, mut offchip) = (0u64, 0u64);
    for (i, op) in g.ops.iter().enumerate() {
        // An op that reads only constants (the DEQUANTIZE of a float16 weight) is
        // evaluated once when the model is prepared — TFLite's kernels and the GPU
        // delegate both treat its output as a weight — so it costs nothing per inference.
        if op.inputs.iter().flatten().next().is_some()
            && op
                .inputs
                .iter()
                .flatten()
                .all(|&t| g.tensors[t].is_constant())
        {
            continue;
        }
        if placement[i] == Placement::Cpu {
            let t = op_seconds(g, op, cpu).total();
            per_op[i] = t;
            b.fallback_ms += t * 1e3;
            continue;
        }
        let t = op_seconds(g, op, device);
        if t.compute >= t.memory {
            b.compute_ms += t.compute * 1e3;
        } else {
            b.memory_ms += t.memory * 1e3;
        }
        b.overhead_ms += t.overhead * 1e3;
        let mut secs = t.total();
        if device.onchip_param_memory.is_some() {
            let p = cost(g, op).param_bytes;
            let cached = (p as f64).min(budget.max(0.0));
            budget -= p as f64;
            let streamed = p as f64 - cached;
            onchip += cached as u64;
            offchip += streamed as u64;
            if streamed > 0.0
                && let Some(bw) = param_bw
            {
                secs += streamed / bw;
                b.link_ms += streamed / bw * 1e3;
            }
        }
        per_op[i] = secs;
    }
    // Partition boundaries: tensors entering or leaving each device partition.
    let on_device_partitions = device.kind != DeviceKind::Cpu;
    if on_device_partitions {
        let oh = device.overheads.as_ref();
        let per_part = oh.map_or(0.0, |o| o.per_partition.si);
        let link = device.host_link.as_ref().map(|q| q.si);
        let mut producer = vec![usize::MAX; g.tensors.len()];
        for (i, op) in g.ops.iter().enumerate() {
            for &t in &op.outputs {
                producer[t] = i;
            }
        }
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); g.tensors.len()];
        for (i, op) in g.ops.iter().enumerate() {
            for &t in op.inputs.iter().flatten() {
                consumers[t].push(i);
            }
        }
        for part in partitions {
            let inside = |i: usize| part.binary_search(&i).is_ok();
            let mut bytes = 0u64;
            let mut seen = std::collections::BTreeSet::new();
            for &i in part {
                let op = &g.ops[i];
                for &t in op.inputs.iter().flatten() {
                    let tensor = &g.tensors[t];
                    if !tensor.is_constant()
                        && (producer[t] == usize::MAX || !inside(producer[t]))
                        && seen.insert(t)
                    {
                        bytes += tensor.byte_len() as u64;
                    }
                }
                for &t in &op.outputs {
                    let leaves = g.outputs.contains(&t) || consumers[t].iter().any(|&c| !inside(c));
                    if leaves && seen.insert(t) {
                        bytes += g.tensors[t].byte_len() as u64;
                    }
                }
            }
            let transfer = link.map_or(0.0, |l| bytes as f64 / l);
            b.link_ms += transfer * 1e3;
            b.overhead_ms += per_part * 1e3;
            // Charged to the partition's first op.
            per_op[part[0]] += transfer + per_part;
        }
    }
    let any_device = placement.contains(&Placement::Device);
    let per_inf = if any_device || device.kind == DeviceKind::Cpu {
        device
            .overheads
            .as_ref()
            .map_or(0.0, |o| o.per_inference.si)
    } else {
        cpu.overheads.as_ref().map_or(0.0, |o| o.per_inference.si)
    };
    b.overhead_ms += per_inf * 1e3;
    let total = per_op.iter().sum::<f64>() + per_inf;
    Prediction {
        per_op,
        total,
        breakdown: b,
        onchip_param_bytes: onchip,
        offchip_param_bytes: offchip,
    }
}

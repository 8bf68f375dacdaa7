//! quantfarm's device simulators: what each device accepts and how fast it would be.
//!
//! - [`profile`]: device profiles (`agents/profiles/*.yaml`), parsed and validated
//!   with `file:line:column` errors; every number cited (P / D / A and a source key of
//!   `accelerators.md`);
//! - [`placement`]: every op → device or CPU with the Edge TPU compiler's wording,
//!   then the device's partitioning rule;
//! - [`latency`]: a per-op compute/memory model, parameter streaming, CPU fallback
//!   priced by a CPU profile, partition hand-overs, per-inference overhead;
//! - [`simulate`]: all of it for one model on one device, with the numerics the
//!   device would execute it in ([`DeviceNumerics`]).
//!
//! The engine stays free of device knowledge: this crate reads its IR and per-op
//! statistics only. No async, no network.

mod error;
pub mod latency;
mod numerics;
mod ops;
pub mod placement;
pub mod profile;

pub use error::{Error, ProfileError, Result};
pub use latency::Breakdown;
pub use numerics::{Numerics, model_numerics};
pub use ops::{is_known_op_name, op_label, op_name};
pub use placement::Placement;
pub use profile::{
    ComputeType, DeviceKind, DeviceProfile, Limit, OpSupport, Overheads, Partitioning,
    PlacementRules, Precision, ProfileSet, PublishedFact, Quantity, SOURCE_KEYS, Tag, Throughput,
};

use quantfarm_engine::ir::Model;
use serde::Serialize;

/// How a simulated device executes a model, so that accuracy measured on it is the
/// device's accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceNumerics {
    /// Run the engine's kernels as they are: the exact integer kernels for the Edge
    /// TPU and the DSP (both implement TFLite's integer spec), float32 where the
    /// device computes in float32, and the CPU-fallback ops as on a CPU.
    Exact,
    /// GPU with precision loss allowed: every op placed on the GPU stores and computes
    /// in IEEE half precision. What the engine must do (an interpreter option, added
    /// by the engine's owners): for the ops of [`Simulation::ops`] placed on the
    /// device, round float weights to fp16 once at preparation and round every float
    /// output to fp16 after the op (round-to-nearest-even, overflow to ±inf as the
    /// hardware does); ops on the CPU stay float32. A quantized (int8/uint8) model
    /// runs through the GPU's float view: dequantize constants once, compute in fp16,
    /// and re-quantize each activation that the model stores in 8 bits to its grid
    /// (quantize + dequantize) between ops; integer input/output conversion stays on
    /// the CPU.
    Fp16,
    /// Not a simulation: the profile is the host CPU itself, time real execution.
    HostCpu,
}

/// One op's placement and predicted time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpPlacement {
    pub index: usize,
    /// TFLite op name (`CONV_2D`, `CUSTOM`, ...).
    pub op: String,
    pub placement: Placement,
    /// Compiler-log status ("Mapped to Edge TPU", "Operation not supported", ...).
    pub reason: String,
    /// Which limit or tensor made the op fall back, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Predicted time of the op where it runs (device or fallback CPU), ms; `None`
    /// for a profile that is measured, not simulated.
    pub predicted_ms: Option<f64>,
}

/// A model on a device: placement, partitions and predicted latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Simulation {
    pub device: String,
    pub kind: DeviceKind,
    /// The model's numerics, read from its tensors.
    pub model_numerics: Numerics,
    /// Why the whole model stays on the CPU, when it does.
    pub refused: Option<String>,
    pub ops: Vec<OpPlacement>,
    pub ops_total: usize,
    pub ops_on_device: usize,
    pub ops_on_cpu: usize,
    /// Device partitions (Edge TPU subgraphs, delegate partitions; 1 for a CPU).
    pub segments: usize,
    /// The op that ended the device segment (Edge TPU) or the first op on the CPU.
    pub first_unmapped_op: Option<String>,
    pub first_unmapped_index: Option<usize>,
    /// Predicted time per inference, ms (`None` when the profile is measured).
    pub predicted_latency_ms: Option<f64>,
    pub breakdown: Option<Breakdown>,
    /// Parameter bytes cached on chip / streamed every inference (Edge TPU).
    pub onchip_param_bytes: u64,
    pub offchip_param_bytes: u64,
    /// The CPU profile that priced the ops left on the CPU.
    pub fallback_cpu: Option<String>,
    pub numerics: DeviceNumerics,
}

impl Simulation {
    /// Every op runs on the device.
    pub fn fully_mapped(&self) -> bool {
        self.refused.is_none() && self.ops_on_cpu == 0
    }
}

/// Simulate `model` on `profile`. CPU-fallback ops are priced by the profile's
/// `fallback_cpu`, looked up in `profiles` (a CPU profile prices itself).
pub fn simulate(
    model: &Model,
    profile: &DeviceProfile,
    profiles: &ProfileSet,
) -> Result<Simulation> {
    model
        .validate()
        .map_err(|e| Error::Model(format!("invalid model: {e}")))?;
    let g = model.main();
    let num = model_numerics(model);
    let refused = (!profile.accepts(num)).then(|| {
        format!(
            "{} does not run {num} models (accepts {}): the whole model runs on the CPU",
            profile.name,
            profile
                .accepts
                .iter()
                .map(|n| n.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let pl = placement::place(g, profile, refused.is_some());
    let cpu = match (&profile.fallback_cpu, profile.kind) {
        (_, DeviceKind::Cpu) => profile.clone(),
        (Some(name), _) => profiles.get(name).cloned().ok_or_else(|| {
            ProfileError::file(
                &profile.file,
                format!("fallback_cpu '{name}' is not a known profile"),
            )
        })?,
        (None, _) => {
            return Err(ProfileError::file(
                &profile.file,
                "a simulated accelerator needs `fallback_cpu` to price the ops left on the CPU",
            )
            .into());
        }
    };
    let prediction = profile
        .simulated
        .then(|| latency::predict(g, profile, &cpu, &pl.placement, &pl.partitions));
    let ops: Vec<OpPlacement> = g
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| OpPlacement {
            index: i,
            op: op_name(&op.kind),
            placement: pl.placement[i],
            reason: pl.reason[i].to_string(),
            detail: pl.detail[i].clone(),
            predicted_ms: prediction.as_ref().map(|p| p.per_op[i] * 1e3),
        })
        .collect();
    let on_device = pl
        .placement
        .iter()
        .filter(|&&p| p == Placement::Device)
        .count();
    let first_unmapped_index = pl
        .first_unmapped
        .or_else(|| pl.placement.iter().position(|&p| p == Placement::Cpu));
    let numerics = if !profile.simulated {
        DeviceNumerics::HostCpu
    } else if profile.kind == DeviceKind::Gpu
        && profile.precision == Some(Precision::Fp16)
        && on_device > 0
    {
        DeviceNumerics::Fp16
    } else {
        DeviceNumerics::Exact
    };
    Ok(Simulation {
        device: profile.name.clone(),
        kind: profile.kind,
        model_numerics: num,
        refused,
        ops_total: ops.len(),
        ops_on_device: on_device,
        ops_on_cpu: ops.len() - on_device,
        segments: pl.partitions.len(),
        first_unmapped_op: first_unmapped_index.map(|i| op_name(&g.ops[i].kind)),
        first_unmapped_index,
        ops,
        predicted_latency_ms: prediction.as_ref().map(|p| p.total * 1e3),
        breakdown: prediction.as_ref().map(|p| p.breakdown),
        onchip_param_bytes: prediction.as_ref().map_or(0, |p| p.onchip_param_bytes),
        offchip_param_bytes: prediction.as_ref().map_or(0, |p| p.offchip_param_bytes),
        fallback_cpu: (profile.kind != DeviceKind::Cpu)
            .then(|| profile.fallback_cpu.clone())
            .flatten(),
        numerics,
    })
}

//! Gate evaluation against measured results.

use crate::scenario::{Baseline, Gate, GateKind};
use serde::{Deserialize, Serialize};

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Observed {
    /// Typical (median) time per inference.
    LatencyMs(f64),
    /// Top-1 accuracy in [0, 1].
    Top1(f64),
    SizeBytes(u64),
    /// Ops the device ran itself, out of all ops.
    Mapping {
        delegated: usize,
        total: usize,
    },
}

/// A result row: `technique` is the scenario's technique label; `device` is `None`
/// for device-independent metrics (size).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub model: String,
    pub technique: String,
    pub device: Option<String>,
    pub value: Observed,
}

/// This run's measurements, and the previous run's for `baseline: previous` gates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Results {
    pub measurements: Vec<Measurement>,
    pub previous: Vec<Measurement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateStatus {
    Pass,
    Fail,
    /// Nothing the gate applies to was measured (or no baseline for it).
    NoData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub gate: String,
    pub status: GateStatus,
    /// One line naming the gate; on failure it lists every breach.
    pub message: String,
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        self.status == GateStatus::Pass
    }
}

/// Tolerance for comparisons, so a value exactly at the limit passes despite rounding.
const EPS: f64 = 1e-9;

/// Evaluate `gate` over every measurement it applies to.
pub fn check(gate: &Gate, results: &Results) -> GateOutcome {
    let mut checked = 0usize;
    let mut breaches: Vec<String> = Vec::new();
    let mut missing_baseline = 0usize;
    let applies = |m: &Measurement| {
        gate.model.as_ref().is_none_or(|x| *x == m.model)
            && gate.technique.as_ref().is_none_or(|x| *x == m.technique)
            // Size has no device: a device filter does not exclude it.
            && (m.device.is_none() || gate.device.as_ref().is_none_or(|x| Some(x) == m.device.as_ref()))
    };
    let where_ = |m: &Measurement| match &m.device {
        Some(d) => format!("{}/{} on {d}", m.model, m.technique),
        None => format!("{}/{}", m.model, m.technique),
    };
    // The baseline value of the same kind for the same model and device.
    let find_base = |m: &Measurement, baseline: &Baseline| -> Option<Observed> {
        let (pool, tech) = match baseline {
            Baseline::Technique(t) => (&results.measurements, t.as_str()),
            Baseline::Previous => (&results.previous, m.technique.as_str()),
        };
        pool.iter()
            .find(|b| {
                b.model == m.model
                    && b.technique == tech
                    && b.device == m.device
                    && std::mem::discriminant(&b.value) == std::mem::discriminant(&m.value)
            })
            .map(|b| b.value.clone())
    };
    let is_baseline_row = |m: &Measurement, baseline: &Baseline| matches!(baseline, Baseline::Technique(t) if *t == m.technique);

    for m in results.measurements.iter().filter(|m| applies(m)) {
        match (&gate.kind, &m.value) {
            (GateKind::MaxTop1Drop { max, baseline }, Observed::Top1(v)) => {
                if is_baseline_row(m, baseline) {
                    continue;
                }
                let Some(Observed::Top1(b)) = find_base(m, baseline) else {
                    missing_baseline += 1;
                    continue;
                };
                checked += 1;
                let drop = b - v;
                if !within(drop, *max) {
                    breaches.push(format!(
                        "{}: top-1 {v:.4} vs {} {b:.4}, drop {drop:.4} > {max}",
                        where_(m),
                        base_name(baseline)
                    ));
                }
            }
            (GateKind::MaxLatencyRegression { max, baseline }, Observed::LatencyMs(v)) => {
                if is_baseline_row(m, baseline) {
                    continue;
                }
                let Some(Observed::LatencyMs(b)) = find_base(m, baseline) else {
                    missing_baseline += 1;
                    continue;
                };
                checked += 1;
                let reg = if b > 0.0 { v / b - 1.0 } else { f64::INFINITY };
                if !within(reg, *max) {
                    breaches.push(format!(
                        "{}: {v:.3} ms vs {} {b:.3} ms, {:+.1}% > {:+.1}%",
                        where_(m),
                        base_name(baseline),
                        reg * 100.0,
                        max * 100.0
                    ));
                }
            }
            (GateKind::MaxSizeRatio { max, baseline }, Observed::SizeBytes(v)) => {
                if is_baseline_row(m, baseline) {
                    continue;
                }
                let Some(Observed::SizeBytes(b)) = find_base(m, baseline) else {
                    missing_baseline += 1;
                    continue;
                };
                checked += 1;
                let ratio = if b > 0 {
                    *v as f64 / b as f64
                } else {
                    f64::INFINITY
                };
                if !within(ratio, *max) {
                    breaches.push(format!(
                        "{}: {v} bytes vs {} {b} bytes, ratio {ratio:.3} > {max}",
                        where_(m),
                        base_name(baseline)
                    ));
                }
            }
            (GateKind::FullMapping { device }, Observed::Mapping { delegated, total })
                if m.device.as_deref() == Some(device.as_str()) =>
            {
                checked += 1;
                if delegated < total {
                    breaches.push(format!(
                        "{}: {delegated} of {total} ops mapped, {} fall back",
                        where_(m),
                        total - delegated
                    ));
                }
            }
            _ => {}
        }
    }

    let (status, message) = if !breaches.is_empty() {
        (
            GateStatus::Fail,
            format!(
                "gate '{}' failed ({} of {checked} checks): {}",
                gate.name,
                breaches.len(),
                breaches.join("; ")
            ),
        )
    } else if checked == 0 {
        let why = if missing_baseline > 0 {
            format!("{missing_baseline} results had no baseline to compare with")
        } else {
            "no matching results".to_string()
        };
        (
            GateStatus::NoData,
            format!("gate '{}': nothing to check ({why})", gate.name),
        )
    } else {
        (
            GateStatus::Pass,
            format!("gate '{}' passed ({checked} checks)", gate.name),
        )
    };
    GateOutcome {
        gate: gate.name.clone(),
        status,
        message,
    }
}

/// `x ≤ max` up to rounding; false for NaN, so a garbage measurement fails the gate.
fn within(x: f64, max: f64) -> bool {
    x <= max + EPS
}

/// [`check`] every gate, in order.
pub fn check_all(gates: &[Gate], results: &Results) -> Vec<GateOutcome> {
    gates.iter().map(|g| check(g, results)).collect()
}

fn base_name(b: &Baseline) -> String {
    match b {
        Baseline::Technique(t) => t.clone(),
        Baseline::Previous => "previous run".into(),
    }
}

//! `quantfarm compat MODEL --device NAME|PATH`: where each op of a model would run on
//! a device and how long it would take, printed like the Edge TPU compiler's summary
//! (or as JSON). The logic lives in `quantfarm-devices`; this file only reads the
//! arguments and prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use quantfarm_devices::{DeviceKind, Placement, ProfileSet, Simulation, simulate};
use serde_json::json;

use super::load_model;
use crate::cli::CompatArgs;

/// Exit code of a failed `--require-full-mapping` gate (2 stays "bad input").
const GATE_FAILED: u8 = 1;

/// The profiles folder: `--profiles`, else `agents/profiles` here, else the folder of
/// a profile given by path (so its `fallback_cpu` is found beside it).
fn profiles_dir(a: &CompatArgs) -> PathBuf {
    const DEFAULT: &str = "agents/profiles";
    if let Some(p) = &a.profiles {
        return p.clone();
    }
    let by_path =
        a.device.contains('/') || a.device.ends_with(".yaml") || a.device.ends_with(".yml");
    if Path::new(DEFAULT).is_dir() || !by_path {
        return PathBuf::from(DEFAULT);
    }
    Path::new(&a.device)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub fn run(a: &CompatArgs) -> Result<ExitCode> {
    let profiles = ProfileSet::load_dir(profiles_dir(a)).map_err(|e| anyhow!("{e}"))?;
    let profile = profiles.resolve(&a.device).map_err(|e| anyhow!("{e}"))?;
    let model = load_model(&a.model)?;
    let sim =
        simulate(&model, &profile, &profiles).map_err(|e| anyhow!("{}: {e}", a.model.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&sim))?);
    } else {
        print_text(&a.model, &profile.description, &sim);
    }
    if a.require_full_mapping && !sim.fully_mapped() {
        eprintln!(
            "gate failed: {} of {} operations of {} run on the CPU of {}{}",
            sim.ops_on_cpu,
            sim.ops_total,
            a.model.display(),
            sim.device,
            sim.refused
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        return Ok(ExitCode::from(GATE_FAILED));
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(s: &Simulation) -> serde_json::Value {
    let ops: Vec<_> = s
        .ops
        .iter()
        .map(|o| {
            let mut v = json!({
                "index": o.index,
                "op": o.op,
                "placement": o.placement,
                "reason": o.reason,
                "predicted_ms": o.predicted_ms,
            });
            if let Some(d) = &o.detail {
                v["detail"] = json!(d);
            }
            v
        })
        .collect();
    json!({
        "device": s.device,
        "kind": s.kind,
        "model_numerics": s.model_numerics,
        "refused": s.refused,
        "ops_total": s.ops_total,
        "ops_on_device": s.ops_on_device,
        "ops_on_cpu": s.ops_on_cpu,
        "segments": s.segments,
        "first_unmapped_op": s.first_unmapped_op,
        "predicted_latency_ms": s.predicted_latency_ms,
        "breakdown": s.breakdown,
        "onchip_param_bytes": s.onchip_param_bytes,
        "offchip_param_bytes": s.offchip_param_bytes,
        "fallback_cpu": s.fallback_cpu,
        "numerics": s.numerics,
        "ops": ops,
    })
}

fn mib(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2}MiB", b as f64 / 1048576.0)
    } else {
        format!("{:.2}KiB", b as f64 / 1024.0)
    }
}

fn print_text(model: &Path, description: &str, s: &Simulation) {
    let dev = match s.kind {
        DeviceKind::Edgetpu => "Edge TPU",
        DeviceKind::Dsp => "Hexagon DSP",
        DeviceKind::Gpu => "GPU",
        DeviceKind::Cpu => "CPU",
    };
    println!("Device: {} ({description})", s.device);
    println!("Input model: {}", model.display());
    println!("Model numerics: {}", s.model_numerics);
    if let Some(r) = &s.refused {
        println!("Refused: {r}");
    }
    if s.kind == DeviceKind::Edgetpu && s.ops_on_device > 0 {
        println!(
            "On-chip memory used for caching model parameters: {}",
            mib(s.onchip_param_bytes)
        );
        println!(
            "Off-chip memory used for streaming uncached model parameters: {}",
            mib(s.offchip_param_bytes)
        );
    }
    println!("Number of {dev} subgraphs: {}", s.segments);
    println!("Total number of operations: {}", s.ops_total);
    if s.ops_on_cpu > 0 && s.kind != DeviceKind::Cpu {
        println!(
            "Not all operations run on the {dev}: the rest runs on the CPU{}.",
            s.fallback_cpu
                .as_deref()
                .map(|c| format!(" (priced as {c})"))
                .unwrap_or_default()
        );
        println!(
            "Number of operations that will run on {dev}: {}",
            s.ops_on_device
        );
        println!(
            "Number of operations that will run on CPU: {}",
            s.ops_on_cpu
        );
        if let (Some(op), Some(i)) = (&s.first_unmapped_op, s.first_unmapped_index) {
            println!("First operation left on the CPU: {op} (operator {i})");
        }
    }
    match (&s.predicted_latency_ms, &s.breakdown) {
        (Some(t), Some(b)) => println!(
            "Predicted latency: {t:.2} ms (compute {:.2}, memory {:.2}, link {:.2}, overhead {:.2}, CPU fallback {:.2})",
            b.compute_ms, b.memory_ms, b.link_ms, b.overhead_ms, b.fallback_ms
        ),
        _ => println!("Predicted latency: none (this profile is measured, not simulated)"),
    }
    // Operator / Count / Status, as the compiler's log groups them.
    let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut order = Vec::new();
    for o in &s.ops {
        let k = (o.op.clone(), o.reason.clone());
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        *groups.entry(k).or_insert(0) += 1;
    }
    println!();
    println!("{:<30} {:<10} Status", "Operator", "Count");
    for k in order {
        println!("{:<30} {:<10} {}", k.0, groups[&k], k.1);
    }
    println!();
    println!(
        "{:>5}  {:<30} {:<9} {:>12}  Status",
        "#", "Operator", "Placement", "Predicted ms"
    );
    for o in &s.ops {
        let place = match o.placement {
            Placement::Device => dev,
            Placement::Cpu => "CPU",
        };
        let t = o
            .predicted_ms
            .map_or_else(|| "-".to_string(), |t| format!("{t:.3}"));
        let detail = o
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        println!(
            "{:>5}  {:<30} {:<9} {:>12}  {}{detail}",
            o.index, o.op, place, t, o.reason
        );
    }
}

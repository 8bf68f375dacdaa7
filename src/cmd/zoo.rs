//! `quantfarm zoo`: architecture builders.

use anyhow::{Context, Result};
use quantfarm_engine::stats::graph_stats;
use quantfarm_engine::zoo::{Arch, ZooConfig, build};
use serde_json::json;

use super::{print_json, save_model};
use crate::cli::ZooArgs;

pub fn run(a: &ZooArgs) -> Result<()> {
    let arch = Arch::parse(&a.arch)?;
    let cfg = ZooConfig {
        width: a.width,
        resolution: a.resolution.unwrap_or(arch.default_resolution()),
        num_classes: 1001,
        seed: a.seed,
    };
    let model = build(arch, &cfg).with_context(|| format!("cannot build {}", arch.name()))?;
    let size = save_model(&model, &a.output)?;
    let st = graph_stats(model.main());
    if a.json {
        print_json(&json!({
            "arch": arch.name(),
            "width": cfg.width,
            "resolution": cfg.resolution,
            "output": a.output.display().to_string(),
            "params": st.params,
            "macs": st.macs,
            "size_bytes": size,
            "ops": st.ops,
        }));
    } else {
        outln!(
            "wrote {} ({}, width {}, resolution {}): {} params, {:.1} M MACs, {size} bytes",
            a.output.display(),
            arch.name(),
            cfg.width,
            cfg.resolution,
            st.params,
            st.macs as f64 / 1e6
        );
    }
    Ok(())
}

//! `quantfarm bench`: single-inference latency.

use std::collections::BTreeMap;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::exec::kernels::cpu;
use quantfarm_engine::measure::{LatencySettings, LatencyStats, time_inferences};
use quantfarm_engine::stats;
use serde_json::{Value, json};

use super::{interpreter, load_model_limited, print_json};
use crate::cli::{BenchArgs, Kernels, Sparse};

pub fn run(a: &BenchArgs) -> Result<()> {
    let settings = LatencySettings {
        warmup: a.warmup,
        runs: a.runs,
        threads: a.run.threads,
    };
    // Counts are checked before the model is even read.
    settings.validate()?;
    let model = load_model_limited(&a.model, a.run.memory.bytes())?;
    let mut interp = interpreter(&model, &a.model, &a.run)?;

    let bar = ProgressBar::new((a.warmup + a.runs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("bench");
    let stats = time_inferences::<anyhow::Error>(&mut interp, &settings, || {
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let timings = interp.op_timings();
    let mut per_op: BTreeMap<String, f64> = BTreeMap::new();
    for t in &timings {
        // Sparse convs get their own line, so the two kernels' shares show.
        let key = match &t.kernel {
            Some(k) if k.starts_with("sparse") => format!("{} [sparse]", t.op),
            _ => t.op.clone(),
        };
        *per_op.entry(key).or_insert(0.0) += t.time.as_secs_f64() * 1e3;
    }
    // Per layer: MACs from the main graph's shapes (0 for ops without a MAC count).
    let graph = model.subgraphs.first();
    let layers: Vec<Value> = timings
        .iter()
        .map(|t| {
            let macs = graph
                .and_then(|g| g.ops.get(t.index).map(|op| stats::op_macs(g, op)))
                .unwrap_or(0);
            json!({
                "index": t.index,
                "op": t.op,
                "output": t.output,
                "macs": macs,
                "ms": t.time.as_secs_f64() * 1e3,
                "kernel": t.kernel,
            })
        })
        .collect();
    let kernels = match a.run.kernels {
        Kernels::Fast => "fast",
        Kernels::Reference => "reference",
    };
    let sparse = match a.run.sparse {
        Sparse::Auto => "auto",
        Sparse::Off => "off",
    };
    let sparse_ops = interp.sparse_ops();
    let isa = format!("{:?}", cpu::selected_isa()).to_lowercase();
    // What the text line names as the ISA: AMX tiles are an extra of the AVX-512 path.
    let isa_text = if cpu::amx_selected() {
        format!("{isa} + amx")
    } else {
        isa.clone()
    };
    if a.json {
        let mut v = stats_json(&stats);
        v["model"] = json!(a.model.display().to_string());
        v["warmup"] = json!(a.warmup);
        v["threads"] = json!(a.run.threads);
        v["kernels"] = json!(kernels);
        v["sparse"] = json!(sparse);
        v["sparse_convs"] = json!(sparse_ops);
        v["isa"] = json!(isa);
        v["amx"] = json!(cpu::amx_selected());
        v["arena_bytes"] = json!(interp.arena_bytes());
        v["planned_bytes"] = json!(interp.memory_plan().total());
        if a.profile {
            v["ops_ms"] = json!(per_op);
        }
        if a.layers {
            v["layers"] = json!(layers);
        }
        print_json(&v);
    } else {
        outln!(
            "{}: median {:.3} ms, p90 {:.3} ms, mean {:.3} ms, min {:.3} ms ({} runs, {} thread(s), {kernels} kernels, {isa_text}{})",
            a.model.display(),
            stats.median_ms,
            stats.p90_ms,
            stats.mean_ms,
            stats.min_ms,
            stats.runs,
            a.run.threads,
            match (sparse_ops, a.run.sparse) {
                (0, Sparse::Auto) => String::new(),
                (_, Sparse::Off) => ", sparse off".to_string(),
                (n, _) => format!(", {n} sparse conv(s)"),
            }
        );
        if a.profile {
            let mut ops: Vec<_> = per_op.into_iter().collect();
            ops.sort_by(|x, y| y.1.total_cmp(&x.1));
            for (op, ms) in ops {
                outln!("  {op:<28} {ms:8.3} ms");
            }
        }
        if a.layers {
            outln!(
                "  {:>4} {:<20} {:>9} {:>8} {:>8}  output",
                "op",
                "type",
                "M MACs",
                "ms",
                "GMAC/s"
            );
            for l in &layers {
                let (macs, ms) = (
                    l["macs"].as_u64().unwrap_or(0),
                    l["ms"].as_f64().unwrap_or(0.0),
                );
                let rate = if macs > 0 && ms > 0.0 {
                    format!("{:8.1}", macs as f64 / ms / 1e6)
                } else {
                    format!("{:>8}", "-")
                };
                let kernel = l["kernel"]
                    .as_str()
                    .map(|k| format!("  [{k}]"))
                    .unwrap_or_default();
                outln!(
                    "  {:>4} {:<20} {:>9.2} {:>8.3} {rate}  {}{kernel}",
                    l["index"],
                    l["op"].as_str().unwrap_or(""),
                    macs as f64 / 1e6,
                    ms,
                    l["output"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// The statistics fields of `bench --json`.
fn stats_json(s: &LatencyStats) -> Value {
    json!({
        "median_ms": s.median_ms,
        "p90_ms": s.p90_ms,
        "mean_ms": s.mean_ms,
        "min_ms": s.min_ms,
        "max_ms": s.max_ms,
        "runs": s.runs,
    })
}

#[cfg(test)]
mod tests {
    use quantfarm_engine::measure::{LatencySettings, LatencyStats};

    /// `bench` and a scenario's latency rows report the same statistics of the same
    /// timings: both come from the engine's `LatencyStats`, carried unchanged through
    /// the agent's wire result into the run's results. An even sample count tells the
    /// median definitions apart (the mean of the two middle samples, 2.5 here; a
    /// nearest-rank median would say 2).
    #[test]
    fn bench_and_scenario_latency_share_one_statistics_routine() {
        let samples = [4.0, 1.0, 3.0, 2.0, 10.0, 5.0];
        let stats = LatencyStats::from_samples(&samples).unwrap();
        assert_eq!(stats.median_ms, 3.5);
        let bench = super::stats_json(&stats);
        let wire = quantfarm_agent::jobs::latency_message(&stats, &LatencySettings::DEFAULT);
        assert_eq!(bench["median_ms"].as_f64(), Some(wire.median_ms));
        assert_eq!(bench["p90_ms"].as_f64(), Some(wire.p90_ms));
        assert_eq!(bench["mean_ms"].as_f64(), Some(wire.mean_ms));
        assert_eq!(wire.p90_ms, 10.0);
        // The wire result becomes the row's latency columns as it is.
        let mut row = quantfarm_harness::ResultRow::new("m", "t", "cpu-host");
        quantfarm_harness::collect::apply_latency(&mut row, &wire);
        assert_eq!(row.latency_p50_ms, Some(3.5));
        assert_eq!(row.latency_p90_ms, Some(10.0));
    }
}

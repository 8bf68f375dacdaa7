//! `quantfarm bench`: single-inference latency.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::exec::kernels::cpu;
use quantfarm_engine::ir::DType;
use serde_json::json;

use super::{interpreter, load_model, print_json};
use crate::cli::{BenchArgs, Kernels};

pub fn run(a: &BenchArgs) -> Result<()> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let model = load_model(&a.model)?;
    let mut interp = interpreter(&model, &a.model, &a.run)?;
    // Deterministic inputs in each type's natural range.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for k in 0..interp.inputs().len() {
        let info = interp.inputs()[k].clone();
        let n = info.num_elements();
        let bytes: Vec<u8> = match info.dtype {
            DType::F32 => (0..n)
                .flat_map(|_| ((next() as f32 / u32::MAX as f32) * 2.0 - 1.0).to_le_bytes())
                .collect(),
            _ => (0..info.byte_len()).map(|_| next() as u8).collect(),
        };
        interp.set_input_bytes(k, &bytes)?;
    }

    let bar = ProgressBar::new((a.warmup + a.runs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("bench");
    for _ in 0..a.warmup {
        interp.invoke();
        bar.inc(1);
    }
    let mut times = Vec::with_capacity(a.runs);
    for _ in 0..a.runs {
        let t = Instant::now();
        interp.invoke();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let median = if times.len() % 2 == 1 {
        times[times.len() / 2]
    } else {
        (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0
    };
    // Nearest-rank percentile.
    let p90 = times[((0.9 * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    let mut per_op: BTreeMap<String, f64> = BTreeMap::new();
    for t in interp.op_timings() {
        *per_op.entry(t.op).or_insert(0.0) += t.time.as_secs_f64() * 1e3;
    }
    let kernels = match a.run.kernels {
        Kernels::Fast => "fast",
        Kernels::Reference => "reference",
    };
    let isa = format!("{:?}", cpu::selected_isa()).to_lowercase();
    if a.json {
        let mut v = json!({
            "model": a.model.display().to_string(),
            "median_ms": median,
            "p90_ms": p90,
            "mean_ms": mean,
            "min_ms": times[0],
            "max_ms": times[times.len() - 1],
            "runs": a.runs,
            "warmup": a.warmup,
            "threads": a.run.threads,
            "kernels": kernels,
            "isa": isa,
            "arena_bytes": interp.arena_bytes(),
        });
        if a.profile {
            v["ops_ms"] = json!(per_op);
        }
        print_json(&v);
    } else {
        println!(
            "{}: median {median:.3} ms, p90 {p90:.3} ms, mean {mean:.3} ms, min {:.3} ms ({} runs, {} thread(s), {kernels} kernels, {isa})",
            a.model.display(),
            times[0],
            a.runs,
            a.run.threads
        );
        if a.profile {
            let mut ops: Vec<_> = per_op.into_iter().collect();
            ops.sort_by(|x, y| y.1.total_cmp(&x.1));
            for (op, ms) in ops {
                println!("  {op:<28} {ms:8.3} ms");
            }
        }
    }
    Ok(())
}

//! `quantfarm quantize`: post-training quantization of a float32 model.
//!
//! Full-integer modes calibrate first: the float model runs over a dataset slice with
//! TF-slim preprocessing (as `eval`), collecting per-tensor ranges.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_engine::data;
use quantfarm_engine::ir::Model;
use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod, TensorRanges, calibrate_images};
use quantfarm_engine::quant::ptq::{
    IoType, PtqOptions, QuantMode, WeightRange, ensure_float_model, quantize_model,
};
use quantfarm_engine::stats::graph_stats;
use quantfarm_engine::tflite;
use serde_json::json;

use quantfarm_engine::measure::limits;

use super::{load_model_limited, print_json};
use crate::cli::{IoTypeArg, QuantModeArg, QuantizeArgs, WeightRangeArg};

pub fn run(a: &QuantizeArgs) -> Result<()> {
    limits::check_threads(a.threads).context("--threads")?;
    limits::check_images("--calibration-size", a.calibration_size)?;
    let model = load_model_limited(&a.model, a.memory.bytes())?;
    let mode = match a.mode {
        QuantModeArg::Float16 => QuantMode::Float16,
        QuantModeArg::Dynamic => QuantMode::Dynamic,
        QuantModeArg::Int8 => QuantMode::Int8,
        QuantModeArg::Int16x8 => QuantMode::Int16x8,
        QuantModeArg::Uint8 => QuantMode::Uint8,
    };
    let io = match a.io {
        IoTypeArg::Float => IoType::Float,
        IoTypeArg::Int8 => IoType::Int8,
        IoTypeArg::Uint8 => IoType::Uint8,
    };
    let method = RangeMethod::parse(&a.calibration_method)?;
    let weight_range = match a.weight_range {
        WeightRangeArg::Mse => WeightRange::Mse,
        WeightRangeArg::Maxabs => WeightRange::MaxAbs,
    };
    let opts = PtqOptions {
        io,
        weight_range,
        allow_float_fallback: a.allow_float_fallback,
        ..PtqOptions::new(mode)
    };
    // Before calibrating: an integer model would fail there with a less useful message.
    ensure_float_model(&model).with_context(|| a.model.display().to_string())?;
    opts.check()?;
    let start = Instant::now();
    let ranges = if mode.needs_calibration() {
        Some(calibrate(a, &model, method, mode)?)
    } else {
        None
    };
    let calib_secs = start.elapsed().as_secs_f64();
    let (out, summary) = quantize_model(&model, &opts, ranges.as_ref())
        .with_context(|| format!("{}: cannot quantize to {}", a.model.display(), mode.name()))?;

    let bytes = tflite::write_model(&out)
        .with_context(|| format!("{}: cannot encode", a.output.display()))?;
    // Read back what we wrote: a quantizer bug must not leave a corrupt file unnoticed.
    let back = tflite::read_model(&bytes).with_context(|| {
        format!(
            "{}: the quantized model does not read back (quantizer bug)",
            a.output.display()
        )
    })?;
    check_quantization(&back)
        .with_context(|| format!("{}: corrupt quantization", a.output.display()))?;
    std::fs::write(&a.output, &bytes)
        .with_context(|| format!("{}: cannot write", a.output.display()))?;
    let in_size = std::fs::metadata(&a.model).map(|m| m.len()).unwrap_or(0);
    let st = graph_stats(out.main());
    if a.json {
        print_json(&json!({
            "input": a.model.display().to_string(),
            "output": a.output.display().to_string(),
            "mode": mode.name(),
            "io": format!("{:?}", io).to_lowercase(),
            "weight_range": weight_range.name(),
            "calibration": ranges.as_ref().map(|r| json!({
                "dataset": a.calibration,
                "offset": a.calibration_offset,
                "stride": a.calibration_stride,
                "samples": r.samples,
                "method": a.calibration_method,
                "seconds": calib_secs,
            })),
            "input_size_bytes": in_size,
            "size_bytes": bytes.len(),
            "params": st.params,
            "ops": st.ops,
            "quantized_ops": summary.quantized_ops,
            "float_ops": summary.float_ops.iter().map(|(i, n)| json!({"index": i, "op": n})).collect::<Vec<_>>(),
            "inserted_quantize": summary.inserted_quantize,
            "inserted_dequantize": summary.inserted_dequantize,
        }));
    } else {
        outln!(
            "wrote {} ({} mode, {} bytes, {:.1}% of {} bytes; {} ops quantized, {} float, {} QUANTIZE + {} DEQUANTIZE inserted)",
            a.output.display(),
            mode.name(),
            bytes.len(),
            100.0 * bytes.len() as f64 / in_size.max(1) as f64,
            in_size,
            summary.quantized_ops,
            summary.float_ops.len(),
            summary.inserted_quantize,
            summary.inserted_dequantize
        );
        if !summary.float_ops.is_empty() {
            let names: Vec<String> = summary
                .float_ops
                .iter()
                .map(|(i, n)| format!("{n} (op {i})"))
                .collect();
            outln!("kept in float: {}", names.join(", "));
        }
    }
    Ok(())
}

fn calibrate(
    a: &QuantizeArgs,
    model: &Model,
    method: RangeMethod,
    mode: QuantMode,
) -> Result<TensorRanges> {
    let root = data::shared_root()?;
    let ds = data::open_dataset(&a.calibration, &root)
        .with_context(|| format!("calibration dataset {}", a.calibration))?;
    // The images span (size − 1)·stride + 1 positions from the offset.
    let stride = a.calibration_stride as usize;
    let span = a.calibration_size.saturating_sub(1) * stride + 1;
    let range = data::slice_range(ds.len(), a.calibration_offset, Some(span))
        .with_context(|| format!("calibration dataset {}", a.calibration))?;
    if range.len() < span {
        bail!(
            "calibration dataset {}: {} images asked from offset {} every {}, only {} available",
            a.calibration,
            a.calibration_size,
            a.calibration_offset,
            stride,
            range.len()
        );
    }
    let mut cal = Calibrator::with_memory_limit(model, a.threads, a.memory.bytes())
        .with_context(|| format!("{}: cannot calibrate", a.model.display()))?;
    let crop = if a.calibration.starts_with("imagenet") {
        0.875
    } else {
        1.0
    };
    let bar = ProgressBar::new(a.calibration_size as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("calibrate");
    let r = calibrate_images(
        &mut cal,
        ds.as_ref(),
        crop,
        data::InputRange::for_dataset(&a.calibration),
        range.step_by(stride),
        &mut |_| bar.inc(1),
    );
    bar.finish_and_clear();
    r.with_context(|| format!("{}: calibration failed", a.model.display()))?;
    Ok(cal.ranges(method, mode.activation_grid()))
}

/// Every quantized tensor has finite positive scales and zero points its type can hold.
fn check_quantization(m: &Model) -> Result<()> {
    for g in &m.subgraphs {
        for t in &g.tensors {
            let Some(q) = &t.quant else { continue };
            if let Some(s) = q.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                bail!("tensor '{}' has scale {s}", t.name);
            }
            let (lo, hi) = match t.dtype {
                quantfarm_engine::ir::DType::I8 => (-128, 127),
                quantfarm_engine::ir::DType::U8 => (0, 255),
                quantfarm_engine::ir::DType::I16 => (-32768, 32767),
                _ => (i64::MIN, i64::MAX),
            };
            if let Some(z) = q.zero_point.iter().find(|z| **z < lo || **z > hi) {
                bail!("tensor '{}' ({}) has zero point {z}", t.name, t.dtype);
            }
        }
    }
    Ok(())
}

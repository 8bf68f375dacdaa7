//! What an agent does with one job, synchronously, with the engine.
//!
//! - `optimize`: build the float32 baseline from `source` (`file`: the input model as
//!   is; `dequantize`: the input's dequantized form; `zoo`: an engine architecture
//!   from `arch`/`width`/`resolution`/`seed`) and apply `technique` (`float32`,
//!   `original` = the input file byte for byte, or a post-training quantization mode
//!   calibrated on `calibration_*`); returns the new model;
//! - `benchmark`: time single inferences (`warmup`, `runs`, `threads`; `runs = 0`
//!   skips timing) and, with `dataset`, measure top-1/top-5 over
//!   `[offset, offset + limit)` the way `quantfarm eval` does;
//! - `size`: the input artifact's size;
//! - `synthetic`: sleep `duration_ms` (harness self-tests and load tests).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use quantfarm_engine::convert::{DequantizeOptions, dequantize_model};
use quantfarm_engine::data::{self, TopK};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::ir::DType;
use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod, calibrate_images};
use quantfarm_engine::quant::ptq::{PtqOptions, QuantMode, ensure_float_model, quantize_model};
use quantfarm_engine::tflite;
use quantfarm_engine::zoo::{self, Arch, ZooConfig};
use quantfarm_proto::v1::JobSpec;

/// Techniques an `optimize` job accepts with this engine build (the post-training
/// quantizations arrive with the engine's quantizer).
pub const TECHNIQUES: &[&str] = &[
    "float32", "original", "float16", "dynamic", "int8", "int16x8", "uint8",
];

pub struct JobContext<'a> {
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(f64) + Sync),
    pub threads: usize,
}

#[derive(Debug, Default)]
pub struct JobOutput {
    pub metrics: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
    /// A produced artifact (an optimized model).
    pub artifact: Option<Vec<u8>>,
    pub logs: String,
}

fn param<'a>(spec: &'a JobSpec, key: &str) -> Option<&'a str> {
    spec.params
        .get(key)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

fn param_usize(spec: &JobSpec, key: &str, default: usize) -> Result<usize> {
    match param(spec, key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("job parameter {key}={v:?} is not a whole number")),
    }
}

fn check_cancel(ctx: &JobContext) -> Result<()> {
    if ctx.cancel.load(Ordering::Relaxed) {
        bail!("cancelled");
    }
    Ok(())
}

pub fn run_job(spec: &JobSpec, input: Option<&[u8]>, ctx: &JobContext) -> Result<JobOutput> {
    match spec.kind.as_str() {
        "optimize" => optimize(spec, input),
        "benchmark" => benchmark(
            spec,
            input.context("benchmark job without an input model")?,
            ctx,
        ),
        "size" => {
            let input = input.context("size job without an input model")?;
            let mut out = JobOutput::default();
            out.metrics.insert("size_bytes".into(), input.len() as f64);
            Ok(out)
        }
        "mapping" => bail!(
            "op placement needs the devices crate (placement rules per profile), \
             which this agent does not have yet"
        ),
        "synthetic" => synthetic(spec, ctx),
        other => bail!("unknown job kind {other:?}"),
    }
}

fn optimize(spec: &JobSpec, input: Option<&[u8]>) -> Result<JobOutput> {
    let technique = param(spec, "technique").unwrap_or("float32");
    let source = param(spec, "source").unwrap_or("file");
    let t = Instant::now();
    let need_input = || input.context("optimize job without an input model");
    let float_technique = if technique == "original" {
        "original"
    } else {
        "float32"
    };
    let baseline = match (float_technique, source) {
        ("original", "zoo") => bail!("a zoo model has no original file"),
        ("original", _) => need_input()?.to_vec(),
        ("float32", "file") => need_input()?.to_vec(),
        ("float32", "dequantize") => {
            let model = tflite::read_model(need_input()?).context("input model")?;
            let out =
                dequantize_model(&model, &DequantizeOptions::default()).context("dequantize")?;
            tflite::write_model(&out).context("encode the dequantized model")?
        }
        ("float32", "zoo") => {
            let arch = Arch::parse(param(spec, "arch").unwrap_or(""))?;
            let mut cfg = ZooConfig::new(arch);
            if let Some(w) = param(spec, "width") {
                cfg.width = w
                    .parse()
                    .with_context(|| format!("job parameter width={w:?} is not a number"))?;
            }
            let r = param_usize(spec, "resolution", 0)?;
            if r > 0 {
                cfg.resolution = r;
            }
            cfg.seed = param_usize(spec, "seed", 0)? as u64;
            let model = zoo::build(arch, &cfg).context("build the zoo model")?;
            tflite::write_model(&model).context("encode the zoo model")?
        }
        ("float32", other) => bail!("unknown model source {other:?}"),
        (other, _) => bail!("unknown technique {other:?}"),
    };
    let bytes = match technique {
        "original" | "float32" => baseline,
        mode => quantize(spec, mode, &baseline)?,
    };
    let mut out = JobOutput::default();
    out.metrics.insert("size_bytes".into(), bytes.len() as f64);
    out.metrics
        .insert("optimize_ms".into(), t.elapsed().as_secs_f64() * 1e3);
    out.labels.insert("technique".into(), technique.into());
    out.artifact = Some(bytes);
    Ok(out)
}

/// Post-training quantization of the float32 baseline, calibrated on the job's slice.
fn quantize(spec: &JobSpec, mode: &str, float_model: &[u8]) -> Result<Vec<u8>> {
    let mode = QuantMode::parse(mode)
        .with_context(|| format!("technique {mode:?} (available: {})", TECHNIQUES.join(", ")))?;
    let model = tflite::read_model(float_model).context("float32 baseline")?;
    ensure_float_model(&model)?;
    let ranges = if mode.needs_calibration() {
        let name = param(spec, "calibration_dataset").context("calibration dataset not given")?;
        let offset = param_usize(spec, "calibration_offset", 0)?;
        let limit = param_usize(spec, "calibration_limit", 100)?;
        let method = RangeMethod::parse(param(spec, "calibration_method").unwrap_or("minmax"))?;
        let root = data::shared_root()?;
        let ds = data::open_dataset(name, &root)?;
        let range = data::slice_range(ds.len(), offset, Some(limit))?;
        let mut cal = Calibrator::new(&model, 1)?;
        let crop = if name.starts_with("imagenet") {
            0.875
        } else {
            1.0
        };
        calibrate_images(&mut cal, ds.as_ref(), crop, range, &mut |_| {})?;
        Some(cal.ranges(method, mode.activation_grid()))
    } else {
        None
    };
    let (out, _) = quantize_model(&model, &PtqOptions::new(mode), ranges.as_ref())
        .with_context(|| format!("quantize to {}", mode.name()))?;
    tflite::write_model(&out).context("encode the quantized model")
}

fn benchmark(spec: &JobSpec, input: &[u8], ctx: &JobContext) -> Result<JobOutput> {
    let warmup = param_usize(spec, "warmup", 3)?;
    let runs = param_usize(spec, "runs", 20)?;
    let dataset = param(spec, "dataset");
    let offset = param_usize(spec, "offset", 0)?;
    let limit = param(spec, "limit")
        .map(|_| param_usize(spec, "limit", 0))
        .transpose()?;
    let threads = param_usize(spec, "threads", ctx.threads)?;
    let model = tflite::read_model(input).context("input model")?;
    let mut interp = Interpreter::new(
        &model,
        InterpreterOptions {
            threads: threads.max(1),
            ..Default::default()
        },
    )
    .context("prepare the interpreter")?;
    let timed = if runs > 0 { warmup + runs } else { 0 };
    let eval_n = if dataset.is_some() {
        limit.unwrap_or(1000)
    } else {
        0
    };
    let total = (timed + eval_n).max(1) as f64;
    let mut done = 0usize;
    let tick = |done: &mut usize| {
        *done += 1;
        (ctx.progress)(*done as f64 / total);
    };

    let mut out = JobOutput::default();
    out.metrics.insert("size_bytes".into(), input.len() as f64);
    if runs > 0 {
        fill_inputs(&mut interp)?;
        for _ in 0..warmup {
            check_cancel(ctx)?;
            interp.invoke();
            tick(&mut done);
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            check_cancel(ctx)?;
            let t = Instant::now();
            interp.invoke();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            tick(&mut done);
        }
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        times.sort_by(f64::total_cmp);
        let pct =
            |p: f64| times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        out.metrics.insert("latency_mean_ms".into(), mean);
        out.metrics.insert("latency_p50_ms".into(), pct(0.5));
        out.metrics.insert("latency_p90_ms".into(), pct(0.9));
        out.metrics.insert("latency_min_ms".into(), times[0]);
        out.metrics.insert("runs".into(), runs as f64);
        out.metrics.insert("threads".into(), threads as f64);
    }

    if let Some(name) = dataset {
        let root = data::shared_root().context("shared data folder")?;
        let ds = data::open_dataset(name, &root)?;
        let range = data::slice_range(ds.len(), offset, limit)
            .with_context(|| format!("dataset {name}"))?;
        let info = interp
            .inputs()
            .first()
            .cloned()
            .context("model has no input")?;
        if interp.inputs().len() != 1
            || info.shape.len() != 4
            || info.shape[0] != 1
            || info.shape[3] != 3
        {
            bail!("evaluation needs an image model with one [1, H, W, 3] input");
        }
        let classes = interp.outputs()[0].num_elements();
        // TF-slim ImageNet models have a background class in slot 0.
        let label_offset = if classes == ds.num_classes() + 1 {
            1
        } else if classes == ds.num_classes() {
            0
        } else {
            bail!(
                "model outputs {classes} scores, dataset {name} has {} classes",
                ds.num_classes()
            );
        };
        let crop = if name.starts_with("imagenet") {
            0.875
        } else {
            1.0
        };
        let (h, w) = (info.shape[1], info.shape[2]);
        let mut topk = TopK::new();
        for i in range {
            check_cancel(ctx)?;
            let img = ds.image(i)?;
            let pixels = data::central_crop_resize(&img, crop, h, w);
            interp.set_input_bytes(
                0,
                &data::encode_model_input(&pixels, info.dtype, info.quant.as_ref()),
            )?;
            interp.invoke();
            topk.update(&interp.output_f32(0)?, ds.label(i) + label_offset);
            tick(&mut done);
        }
        out.metrics.insert("top1".into(), topk.top1());
        out.metrics.insert("top5".into(), topk.top5());
        out.metrics.insert("eval_images".into(), topk.n() as f64);
        out.labels.insert("dataset".into(), name.into());
    }
    Ok(out)
}

/// Deterministic inputs in each type's natural range (latency does not depend on them).
fn fill_inputs(interp: &mut Interpreter) -> Result<()> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for k in 0..interp.inputs().len() {
        let info = interp.inputs()[k].clone();
        let bytes: Vec<u8> = match info.dtype {
            DType::F32 => (0..info.num_elements())
                .flat_map(|_| ((next() as f32 / u32::MAX as f32) * 2.0 - 1.0).to_le_bytes())
                .collect(),
            _ => (0..info.byte_len()).map(|_| next() as u8).collect(),
        };
        interp.set_input_bytes(k, &bytes)?;
    }
    Ok(())
}

fn synthetic(spec: &JobSpec, ctx: &JobContext) -> Result<JobOutput> {
    let ms = param_usize(spec, "duration_ms", 0)?;
    let end = Instant::now() + Duration::from_millis(ms as u64);
    while Instant::now() < end {
        check_cancel(ctx)?;
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
        if ms > 0 {
            (ctx.progress)(1.0 - left.as_secs_f64() * 1e3 / ms as f64);
        }
    }
    let mut out = JobOutput::default();
    out.metrics.insert("duration_ms".into(), ms as f64);
    Ok(out)
}

//! What an agent does with one job, synchronously, with the engine.
//!
//! The job arrives as a typed task ([`JobSpec::task`]); every number in it is checked
//! against the engine's limits ([`quantfarm_engine::measure::limits`]) before any work,
//! so a malformed job from an authenticated client fails as a job, never as the agent.
//!
//! - optimize: build the float32 baseline from the task's source (the input file as is,
//!   its dequantized form, or an engine zoo architecture) and apply the technique
//!   (`original` = the input file byte for byte; the quantizations calibrated on the
//!   task's dataset slice; `qat` = quantization-aware fine-tuning of a CIFAR-10 model
//!   on the training images with `quantfarm-train`, exported full-integer); returns
//!   the new model;
//! - benchmark: size (the artifact's bytes), latency, accuracy (top-1/top-5 over a
//!   dataset slice through [`quantfarm_engine::measure::ImageEval`], with the numerics
//!   of the agent's device: [`ServedDevice::interpreter`]), or mapping (op placement by
//!   the device's rules). Latency on the host CPU is timed single inferences through
//!   [`quantfarm_engine::measure::time_inferences`]; on a simulated device it is the
//!   device model's prediction, labelled `predicted` and never timed on this host;
//! - synthetic: sleep (harness self-tests and load tests).

use std::ops::ControlFlow;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use quantfarm_devices::{Placement, Simulation};
use quantfarm_engine::EngineError;
use quantfarm_engine::convert::{DequantizeOptions, dequantize_model};
use quantfarm_engine::data::{self, CifarSplit};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::measure::{self, ImageEval, LatencySettings, limits};
use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod, calibrate_images};
use quantfarm_engine::quant::ptq::{
    IoType, PtqOptions, QuantMode, WeightRange, ensure_float_model, quantize_model,
};
use quantfarm_engine::tflite;
use quantfarm_engine::zoo::{self, Arch, ZooConfig};
use quantfarm_proto::v1::{
    AccuracyStats, BenchmarkTask, Calibration, CalibrationMethod, JobSpec, LatencyKind,
    LatencyStats, Metric, OpPlacement, OptimizeTask, PlacementStats, SyntheticTask, Technique,
    Training, job_spec, model_source,
};
use quantfarm_train::cluster::{self, ClusterConfig, Init};
use quantfarm_train::collab;
use quantfarm_train::data::ImageSet;
use quantfarm_train::export;
use quantfarm_train::import;
use quantfarm_train::prune::{self, PruneConfig};
use quantfarm_train::qat::{self, QatConfig};

use crate::device::ServedDevice;

pub struct JobContext<'a> {
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(f64) + Sync),
    /// Engine threads for work that does not set its own (optimize, accuracy).
    pub threads: usize,
    /// Memory limit of the engine work, in bytes (reading, preparing, calibrating).
    pub memory_limit: u64,
    /// The device the agent serves.
    pub device: &'a ServedDevice,
}

/// What a job produced: its measurements (copied into the wire result) and, for an
/// optimize job, the new model.
#[derive(Debug, Default)]
pub struct JobOutput {
    pub size_bytes: Option<u64>,
    /// Size jobs: the artifact gzipped (where pruning and clustering pay off).
    pub gzip_size_bytes: Option<u64>,
    pub latency: Option<LatencyStats>,
    pub accuracy: Option<AccuracyStats>,
    pub placement: Option<PlacementStats>,
    /// A produced artifact (an optimized model).
    pub artifact: Option<Vec<u8>>,
    pub logs: String,
}

/// The job was cancelled by the coordinator.
#[derive(Debug)]
struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

fn check_cancel(ctx: &JobContext) -> Result<()> {
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(anyhow!(Cancelled));
    }
    Ok(())
}

/// Host-CPU time is shared by every agent of this process (`quantfarm run` starts one
/// local agent per device in one process): a job that times latency on the host holds
/// this lock alone, every other job shares it, so a timed inference never runs beside
/// another agent's fine-tuning or accuracy pass.
static HOST_CPU: RwLock<()> = RwLock::new(());

/// Does this job time inferences on the host CPU (latency on a non-simulated device)?
fn times_host_cpu(spec: &JobSpec, ctx: &JobContext) -> bool {
    matches!(&spec.task, Some(job_spec::Task::Benchmark(t))
        if Metric::try_from(t.metric) == Ok(Metric::Latency) && !ctx.device.simulated())
}

/// Run one job. The task is validated first ([`validate`]).
pub fn run_job(spec: &JobSpec, input: Option<&[u8]>, ctx: &JobContext) -> Result<JobOutput> {
    validate(spec)?;
    // A panicking job poisons nothing worth keeping: the lock guards no data.
    let _exclusive;
    let _shared;
    if times_host_cpu(spec, ctx) {
        _exclusive = HOST_CPU.write().unwrap_or_else(|e| e.into_inner());
    } else {
        _shared = HOST_CPU.read().unwrap_or_else(|e| e.into_inner());
    }
    match &spec.task {
        Some(job_spec::Task::Optimize(t)) => optimize(t, input, ctx),
        Some(job_spec::Task::Benchmark(t)) => benchmark(
            t,
            input.context("benchmark job without an input model")?,
            ctx,
        ),
        Some(job_spec::Task::Synthetic(t)) => synthetic(t, ctx),
        None => bail!("job {} has no task", spec.id),
    }
}

/// Every number and enum of a job within its bounds, before any work or allocation.
pub fn validate(spec: &JobSpec) -> Result<()> {
    match &spec.task {
        Some(job_spec::Task::Optimize(t)) => {
            let technique = technique(t.technique)?;
            if let Some(model_source::Source::Zoo(z)) =
                t.source.as_ref().and_then(|s| s.source.as_ref())
            {
                Arch::parse(&z.arch)?;
                if !(z.width.is_finite() && z.width >= 0.0 && z.width <= 4.0) {
                    bail!("zoo width {} is out of range: expected 0..=4", z.width);
                }
                limits::check_range("zoo resolution", u64::from(z.resolution), 0, 2048)?;
            }
            if t.source.as_ref().and_then(|s| s.source.as_ref()).is_none() {
                bail!("optimize job without a model source");
            }
            if let Some(mode) = technique.and_then(|t| QuantMode::parse(t).ok())
                && mode.needs_calibration()
            {
                let c = t
                    .calibration
                    .as_ref()
                    .context("a full-integer technique needs a calibration slice")?;
                limits::check_images("calibration limit", usize_of(c.limit)?)?;
                range_method(c)?;
            }
            if let Ok(tech) = Technique::try_from(t.technique)
                && trains(tech)
            {
                let tr = t
                    .training
                    .as_ref()
                    .context("a fine-tuning job needs training settings")?;
                training_settings(tr)?;
                structure_settings(tech, tr)?;
                if matches!(tech, Technique::Prune | Technique::Cluster) {
                    let c = t.calibration.as_ref().context(
                        "prune and cluster quantize to int8: a calibration slice is needed",
                    )?;
                    limits::check_images("calibration limit", usize_of(c.limit)?)?;
                    range_method(c)?;
                }
            }
        }
        Some(job_spec::Task::Benchmark(t)) => match metric(t.metric)? {
            Metric::Latency => latency_settings(t)?.validate()?,
            Metric::Accuracy => {
                let a = t
                    .accuracy
                    .as_ref()
                    .context("accuracy job without a dataset")?;
                if let Some(l) = a.limit {
                    limits::check_images("accuracy limit", usize_of(l)?)?;
                }
            }
            Metric::Size | Metric::Mapping | Metric::Unspecified => {}
        },
        Some(job_spec::Task::Synthetic(t)) => limits::check_range(
            "synthetic duration_ms",
            u64::from(t.duration_ms),
            0,
            limits::MAX_SYNTHETIC_MS,
        )?,
        None => bail!("job {} has no task", spec.id),
    }
    Ok(())
}

fn usize_of(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| anyhow!("{v} does not fit this machine's word size"))
}

/// The engine's name of a wire technique (`None` for the float32 baseline itself, for
/// `original` and for `qat`, which is not a post-training mode).
fn technique(t: i32) -> Result<Option<&'static str>> {
    Ok(match Technique::try_from(t) {
        Ok(Technique::Float32) => None,
        Ok(Technique::Original) => None,
        Ok(Technique::Qat) => None,
        Ok(Technique::Prune | Technique::Cluster | Technique::Pqat | Technique::Cqat) => None,
        Ok(Technique::Float16) => Some("float16"),
        Ok(Technique::Dynamic) => Some("dynamic"),
        Ok(Technique::Int8) => Some("int8"),
        Ok(Technique::Int16x8) => Some("int16x8"),
        Ok(Technique::Uint8) => Some("uint8"),
        Ok(Technique::Unspecified) | Err(_) => bail!("unknown technique {t}"),
    })
}

fn metric(m: i32) -> Result<Metric> {
    match Metric::try_from(m) {
        Ok(Metric::Unspecified) | Err(_) => bail!("unknown metric {m}"),
        Ok(m) => Ok(m),
    }
}

fn latency_settings(t: &BenchmarkTask) -> Result<LatencySettings> {
    let l = t.latency.as_ref().context("latency job without settings")?;
    Ok(LatencySettings {
        warmup: usize_of(l.warmup)?,
        runs: usize_of(l.runs)?,
        threads: l.threads as usize,
    })
}

fn range_method(c: &Calibration) -> Result<RangeMethod> {
    Ok(match CalibrationMethod::try_from(c.method) {
        Ok(CalibrationMethod::Unspecified | CalibrationMethod::Minmax) => RangeMethod::MinMax,
        Ok(CalibrationMethod::Mse) => RangeMethod::Mse,
        Ok(CalibrationMethod::Percentile) => {
            if !(c.percentile > 50.0 && c.percentile <= 100.0) {
                bail!(
                    "calibration percentile {} is out of range: expected (50, 100]",
                    c.percentile
                );
            }
            RangeMethod::Percentile(c.percentile)
        }
        Err(_) => bail!("unknown calibration method {}", c.method),
    })
}

fn optimize(t: &OptimizeTask, input: Option<&[u8]>, ctx: &JobContext) -> Result<JobOutput> {
    let need_input = || input.context("optimize job without an input model");
    let source = t
        .source
        .as_ref()
        .and_then(|s| s.source.as_ref())
        .context("optimize job without a model source")?;
    let original = Technique::try_from(t.technique) == Ok(Technique::Original);
    let baseline = match source {
        model_source::Source::Zoo(_) if original => bail!("a zoo model has no original file"),
        _ if original => need_input()?.to_vec(),
        model_source::Source::File(_) => need_input()?.to_vec(),
        model_source::Source::Dequantize(_) => {
            let model = tflite::read_model_limited(need_input()?, ctx.memory_limit)
                .context("input model")?;
            let out =
                dequantize_model(&model, &DequantizeOptions::default()).context("dequantize")?;
            tflite::write_model(&out).context("encode the dequantized model")?
        }
        model_source::Source::Zoo(z) => {
            let arch = Arch::parse(&z.arch)?;
            let mut cfg = ZooConfig::new(arch);
            if z.width > 0.0 {
                cfg.width = z.width;
            }
            if z.resolution > 0 {
                cfg.resolution = z.resolution as usize;
            }
            cfg.seed = z.seed;
            let model = zoo::build(arch, &cfg).context("build the zoo model")?;
            tflite::write_model(&model).context("encode the zoo model")?
        }
    };
    check_cancel(ctx)?;
    let bytes = match technique(t.technique)? {
        None if Technique::try_from(t.technique).is_ok_and(trains) => fine_tune(t, &baseline, ctx)?,
        None => baseline,
        Some(mode) => quantize(t, mode, &baseline, ctx, None)?,
    };
    Ok(JobOutput {
        size_bytes: Some(bytes.len() as u64),
        artifact: Some(bytes),
        ..Default::default()
    })
}

/// A qat task's settings, checked: the dataset fine-tuning reads, epochs, image count.
fn training_settings(tr: &Training) -> Result<(Option<usize>, usize)> {
    if tr.dataset != "cifar10-train" {
        bail!("training dataset '{}': expected cifar10-train", tr.dataset);
    }
    let limit = tr.limit.map(usize_of).transpose()?;
    if let Some(l) = limit {
        limits::check_images("training limit", l)?;
    }
    limits::check_range("training epochs", u64::from(tr.epochs), 1, 100)?;
    Ok((limit, tr.epochs as usize))
}

/// Does this wire technique fine-tune (qat, prune, cluster, pqat, cqat)?
fn trains(t: Technique) -> bool {
    matches!(
        t,
        Technique::Qat | Technique::Prune | Technique::Cluster | Technique::Pqat | Technique::Cqat
    )
}

/// The structure a pruning or clustering task asks for, checked: `(sparsity, clusters,
/// init)`, each present exactly for the techniques that use it.
fn structure_settings(
    tech: Technique,
    tr: &Training,
) -> Result<(Option<f32>, Option<usize>, Init)> {
    let prunes = matches!(tech, Technique::Prune | Technique::Pqat);
    let clusters = matches!(tech, Technique::Cluster | Technique::Cqat);
    let sparsity = match (tr.sparsity, prunes) {
        (Some(s), true) if (0.0..1.0).contains(&s) => Some(s),
        (Some(s), true) => bail!("sparsity {s}: expected a fraction in [0, 1)"),
        (None, true) => bail!("a {} job needs a sparsity", tech.as_str_name()),
        (Some(_), false) => bail!("{} does not prune: unexpected sparsity", tech.as_str_name()),
        (None, false) => None,
    };
    let k = match (tr.clusters, clusters) {
        (Some(k), true) if (2..=256).contains(&k) && k % 2 == 0 => Some(k as usize),
        (Some(k), true) => bail!("clusters {k}: expected an even number from 2 to 256"),
        (None, true) => bail!("a {} job needs a cluster count", tech.as_str_name()),
        (Some(_), false) => bail!(
            "{} does not cluster: unexpected clusters",
            tech.as_str_name()
        ),
        (None, false) => None,
    };
    let init = match tr.init.as_str() {
        "" | "kmeans++" => Init::KmeansPlusPlus,
        "linear" => Init::Linear,
        "density" => Init::Density,
        other => bail!("init '{other}': expected linear, kmeans++ or density"),
    };
    Ok((sparsity, k, init))
}

/// Fine-tuning techniques on a float CIFAR-10 model (one `quantfarm train` builds),
/// on the task's training images, each as `quantfarm optimize` does it:
/// - `qat`: fake-quant fine-tuning, full-integer int8 export with float I/O (like the
///   `int8` PTQ technique);
/// - `prune` / `cluster`: pruning or clustering while fine-tuning, then int8 PTQ of the
///   stripped float model on the task's calibration slice (max-abs weight scales for
///   clusters, so each layer keeps one small integer alphabet);
/// - `pqat` / `cqat`: pruning or clustering (the epochs given), then as many epochs of
///   QAT that keep the zeros or the clusters.
///
/// Progress is reported over all stages; cancel stops between steps.
fn fine_tune(t: &OptimizeTask, float_model: &[u8], ctx: &JobContext) -> Result<Vec<u8>> {
    let tech = Technique::try_from(t.technique).map_err(|_| anyhow!("unknown technique"))?;
    let tr = t
        .training
        .as_ref()
        .context("a fine-tuning job needs training settings")?;
    let (limit, epochs) = training_settings(tr)?;
    let (sparsity, clusters, init) = structure_settings(tech, tr)?;
    let model =
        tflite::read_model_limited(float_model, ctx.memory_limit).context("float32 baseline")?;
    let (net, mut weights) = import::from_cifar10_model(&model).with_context(|| {
        format!(
            "{} fine-tunes the CIFAR-10 architectures of `quantfarm train`",
            tech.as_str_name()
        )
    })?;
    let threads = ctx.threads.max(1);
    let root = data::shared_root()?;
    let train = ImageSet::cifar10(&root, CifarSplit::Train, limit, threads)?;
    let qc = QatConfig {
        epochs,
        seed: tr.seed,
        ..QatConfig::default()
    };
    train.check_batch(qc.batch)?;
    check_cancel(ctx)?;
    let stages = if matches!(tech, Technique::Pqat | Technique::Cqat) {
        2.0
    } else {
        1.0
    };
    let progress = |stage: f64| {
        move |step: usize, total: usize, _: f64| {
            (ctx.progress)((stage + step as f64 / total.max(1) as f64) / stages);
            if ctx.cancel.load(Ordering::Relaxed) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    };
    // Stage 1 of prune/pqat and cluster/cqat: the float fine-tuning.
    if let Some(s) = sparsity {
        let cfg = PruneConfig {
            epochs,
            seed: tr.seed,
            final_sparsity: s,
            spare_fan_in: 27,
            ..PruneConfig::default()
        };
        prune::finetune(&net, &mut weights, &train, &cfg, threads, progress(0.0))?
            .ok_or_else(|| anyhow!(Cancelled))?;
    }
    if let Some(k) = clusters {
        let cfg = ClusterConfig {
            tune: qc.clone(),
            clusters: k,
            init,
        };
        cluster::finetune(&net, &mut weights, &train, &cfg, threads, progress(0.0))?
            .ok_or_else(|| anyhow!(Cancelled))?;
    }
    let stripped = export::to_model(&net, &weights).context("export the fine-tuned model")?;
    if matches!(tech, Technique::Prune | Technique::Cluster) {
        let bytes = tflite::write_model(&stripped).context("encode the fine-tuned model")?;
        let range = (tech == Technique::Cluster).then_some(WeightRange::MaxAbs);
        return quantize(t, "int8", &bytes, ctx, range);
    }
    // QAT, on the stripped model read back as `quantfarm optimize` reads a file.
    let (net, mut weights) = if tech == Technique::Qat {
        (net, weights)
    } else {
        import::from_cifar10_model(&stripped).context("read back the fine-tuned model")?
    };
    let stage = stages - 1.0;
    let ranges = match tech {
        Technique::Pqat => {
            collab::pqat(&net, &mut weights, &train, &qc, threads, progress(stage))?.map(|(r, _)| r)
        }
        Technique::Cqat => {
            let k = clusters.expect("checked above");
            collab::cqat(&net, &mut weights, &train, &qc, k, threads, progress(stage))?
                .map(|(r, _)| r)
        }
        _ => qat::finetune(&net, &mut weights, &train, &qc, threads, progress(stage)),
    }
    .ok_or_else(|| anyhow!(Cancelled))?;
    let (out, _) = qat::export_int8(&net, &weights, &ranges, IoType::Float)
        .context("export the fine-tuned model")?;
    tflite::write_model(&out).context("encode the fine-tuned model")
}

/// Post-training quantization of the float32 baseline, calibrated on the task's slice.
fn quantize(
    t: &OptimizeTask,
    mode: &str,
    float_model: &[u8],
    ctx: &JobContext,
    weight_range: Option<WeightRange>,
) -> Result<Vec<u8>> {
    let mode = QuantMode::parse(mode)?;
    let model =
        tflite::read_model_limited(float_model, ctx.memory_limit).context("float32 baseline")?;
    ensure_float_model(&model)?;
    let ranges = if mode.needs_calibration() {
        let c = t
            .calibration
            .as_ref()
            .context("calibration dataset not given")?;
        let method = range_method(c)?;
        let root = data::shared_root()?;
        let ds = data::open_dataset(&c.dataset, &root)?;
        let (limit, stride) = (usize_of(c.limit)?, usize_of(c.stride.max(1))?);
        // The images span (limit − 1)·stride + 1 positions from the offset.
        let span = limit
            .saturating_sub(1)
            .saturating_mul(stride)
            .saturating_add(1);
        let range = data::slice_range(ds.len(), usize_of(c.offset)?, Some(span))?;
        if range.len() < span {
            bail!(
                "calibration dataset {}: {limit} images asked from offset {} every {stride}, only {} available",
                c.dataset,
                c.offset,
                range.len()
            );
        }
        let mut cal = Calibrator::with_memory_limit(&model, ctx.threads.max(1), ctx.memory_limit)?;
        let crop = if c.dataset.starts_with("imagenet") {
            0.875
        } else {
            1.0
        };
        let input_range = data::InputRange::for_dataset(&c.dataset);
        calibrate_images(
            &mut cal,
            ds.as_ref(),
            crop,
            input_range,
            range.step_by(stride),
            &mut |_| {},
        )?;
        check_cancel(ctx)?;
        Some(cal.ranges(method, mode.activation_grid()))
    } else {
        None
    };
    let mut opts = PtqOptions::new(mode);
    if let Some(r) = weight_range {
        opts.weight_range = r;
    }
    let (out, _) = quantize_model(&model, &opts, ranges.as_ref())
        .with_context(|| format!("quantize to {}", mode.name()))?;
    tflite::write_model(&out).context("encode the quantized model")
}

fn benchmark(t: &BenchmarkTask, input: &[u8], ctx: &JobContext) -> Result<JobOutput> {
    let mut out = JobOutput {
        size_bytes: Some(input.len() as u64),
        ..Default::default()
    };
    match metric(t.metric)? {
        Metric::Size => out.gzip_size_bytes = Some(measure::gzip_size(input)),
        Metric::Latency if ctx.device.simulated() => {
            let settings = latency_settings(t)?;
            let sim = simulate(ctx.device, input, ctx.memory_limit)?;
            let ms = sim
                .predicted_latency_ms
                .with_context(|| format!("{} predicted no latency for this model", sim.device))?;
            out.latency = Some(predicted_latency_message(ms, &settings));
            out.logs = simulation_log(&sim);
        }
        Metric::Latency => {
            let settings = latency_settings(t)?;
            let mut interp = prepare(input, settings.threads, ctx.memory_limit)?;
            let total = (settings.warmup + settings.runs) as f64;
            let mut done = 0usize;
            let stats = measure::time_inferences::<anyhow::Error>(&mut interp, &settings, || {
                check_cancel(ctx)?;
                done += 1;
                (ctx.progress)(done as f64 / total);
                Ok(())
            })?;
            out.latency = Some(latency_message(&stats, &settings));
        }
        Metric::Accuracy => {
            let a = t
                .accuracy
                .as_ref()
                .context("accuracy job without a dataset")?;
            let model = tflite::read_model_limited(input, ctx.memory_limit)?;
            let opts = InterpreterOptions {
                threads: ctx.threads.max(1),
                memory_limit: ctx.memory_limit,
                input_copies: ImageEval::INPUT_COPIES,
                ..Default::default()
            };
            let (mut interp, numerics) = ctx.device.interpreter(&model, opts)?;
            out.logs = numerics;
            let root = data::shared_root().context("shared data folder")?;
            let ds = data::open_dataset(&a.dataset, &root)?;
            let limit = a.limit.map(usize_of).transpose()?;
            let range = data::slice_range(ds.len(), usize_of(a.offset)?, limit)
                .with_context(|| format!("dataset {}", a.dataset))?;
            let eval = ImageEval::new(&interp, ds.as_ref(), &a.dataset)?;
            let total = range.len() as f64;
            let mut done = 0usize;
            let topk = eval.run::<anyhow::Error>(&mut interp, ds.as_ref(), range, |_| {
                check_cancel(ctx)?;
                done += 1;
                (ctx.progress)(done as f64 / total);
                Ok(())
            })?;
            out.accuracy = Some(AccuracyStats {
                dataset: a.dataset.clone(),
                top1: topk.top1(),
                top5: topk.top5(),
                images: topk.n() as u64,
            });
        }
        Metric::Mapping => {
            let sim = simulate(ctx.device, input, ctx.memory_limit)?;
            out.logs = simulation_log(&sim);
            out.placement = Some(placement_message(&sim));
        }
        Metric::Unspecified => bail!("benchmark job without a metric"),
    }
    Ok(out)
}

/// A measured latency on the wire: the engine's statistics as they are (the same
/// routine and definitions as `quantfarm bench`).
pub fn latency_message(stats: &measure::LatencyStats, settings: &LatencySettings) -> LatencyStats {
    LatencyStats {
        kind: LatencyKind::Measured as i32,
        median_ms: stats.median_ms,
        mean_ms: stats.mean_ms,
        p90_ms: stats.p90_ms,
        min_ms: stats.min_ms,
        max_ms: stats.max_ms,
        runs: stats.runs as u32,
        warmup: settings.warmup as u32,
        threads: settings.threads as u32,
    }
}

/// A predicted latency on the wire: one value from the device model, no runs. The
/// job's timing settings are kept so the result says what was asked.
fn predicted_latency_message(ms: f64, settings: &LatencySettings) -> LatencyStats {
    LatencyStats {
        kind: LatencyKind::Predicted as i32,
        median_ms: ms,
        mean_ms: ms,
        p90_ms: ms,
        min_ms: ms,
        max_ms: ms,
        runs: 0,
        warmup: 0,
        threads: settings.threads as u32,
    }
}

fn simulate(device: &ServedDevice, model: &[u8], memory_limit: u64) -> Result<Simulation> {
    let model = tflite::read_model_limited(model, memory_limit)?;
    device.simulate(&model)
}

/// The placement of every op, as the mapping metric reports it.
fn placement_message(sim: &Simulation) -> PlacementStats {
    PlacementStats {
        device: sim.device.clone(),
        ops_total: sim.ops_total as u32,
        ops_on_device: sim.ops_on_device as u32,
        ops_on_cpu: sim.ops_on_cpu as u32,
        segments: sim.segments as u32,
        first_unmapped_op: sim.first_unmapped_op.clone().unwrap_or_default(),
        refused: sim.refused.clone().unwrap_or_default(),
        ops: sim
            .ops
            .iter()
            .map(|o| OpPlacement {
                index: o.index as u32,
                op: o.op.clone(),
                on_device: o.placement == Placement::Device,
                reason: match &o.detail {
                    Some(d) => format!("{} ({d})", o.reason),
                    None => o.reason.clone(),
                },
                predicted_ms: o.predicted_ms.unwrap_or(0.0),
            })
            .collect(),
    }
}

/// A compiler-style summary for the job's log.
fn simulation_log(sim: &Simulation) -> String {
    let mut s = format!(
        "{}: {} of {} ops on the device, {} on the CPU, {} segment(s)",
        sim.device, sim.ops_on_device, sim.ops_total, sim.ops_on_cpu, sim.segments
    );
    if let Some(r) = &sim.refused {
        s.push_str(&format!("; {r}"));
    } else if let Some(op) = &sim.first_unmapped_op {
        s.push_str(&format!("; first op on the CPU: {op}"));
    }
    if let Some(ms) = sim.predicted_latency_ms {
        s.push_str(&format!("; predicted {ms:.3} ms per inference"));
    }
    s
}

/// Read and prepare a model within `memory_limit`.
fn prepare(model: &[u8], threads: usize, memory_limit: u64) -> Result<Interpreter, EngineError> {
    let model = tflite::read_model_limited(model, memory_limit)?;
    Interpreter::new(
        &model,
        InterpreterOptions {
            threads,
            memory_limit,
            ..Default::default()
        },
    )
}

fn synthetic(t: &SyntheticTask, ctx: &JobContext) -> Result<JobOutput> {
    let ms = u64::from(t.duration_ms);
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        check_cancel(ctx)?;
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
        if ms > 0 {
            (ctx.progress)(1.0 - left.as_secs_f64() * 1e3 / ms as f64);
        }
    }
    Ok(JobOutput::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantfarm_proto::v1::{FileModel, ModelSource, ZooModel};
    use quantfarm_train::arch::{Builder, init_weights};
    use quantfarm_train::ops::bn::Act;

    fn cpu_host() -> ServedDevice {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        ServedDevice::from_dir(&dir, "cpu-host").unwrap()
    }

    /// A float CIFAR-10 model as `quantfarm train` exports it, small enough to
    /// fine-tune in a test.
    fn tiny_cifar_model() -> Vec<u8> {
        let mut b = Builder::new("tiny-cifar", 32, 32, 3);
        let x = b.conv_bn(0, "stem", 32, 3, 2, Act::Relu6);
        let x = b.dw_bn(x, "dw", 3, 2, Act::Relu6);
        let x = b.conv_bn(x, "pw", 32, 1, 1, Act::Relu6);
        let p = b.gap(x);
        b.dense(p, "logits", 10);
        let net = b.finish();
        let w = init_weights(&net, 3);
        let model = quantfarm_train::export::to_model(&net, &w).unwrap();
        tflite::write_model(&model).unwrap()
    }

    fn qat_job(source: model_source::Source, training: Option<Training>) -> JobSpec {
        JobSpec {
            id: "r/qat".into(),
            task: Some(job_spec::Task::Optimize(OptimizeTask {
                model: "m".into(),
                label: "qat".into(),
                technique: Technique::Qat as i32,
                source: Some(ModelSource {
                    source: Some(source),
                }),
                calibration: None,
                training,
            })),
            ..Default::default()
        }
    }

    fn file() -> model_source::Source {
        model_source::Source::File(FileModel {
            path: "m.tflite".into(),
        })
    }

    fn training(limit: u64) -> Option<Training> {
        Some(Training {
            dataset: "cifar10-train".into(),
            limit: Some(limit),
            epochs: 1,
            seed: 1,
            ..Default::default()
        })
    }

    fn run(spec: &JobSpec, input: &[u8], cancel: bool) -> Result<JobOutput> {
        let cancel = AtomicBool::new(cancel);
        let device = cpu_host();
        let ctx = JobContext {
            cancel: &cancel,
            progress: &|_| {},
            threads: 2,
            memory_limit: 1 << 30,
            device: &device,
        };
        run_job(spec, Some(input), &ctx)
    }

    #[test]
    fn qat_jobs_are_checked_before_any_work() {
        let e = validate(&qat_job(file(), None)).unwrap_err();
        assert!(e.to_string().contains("training settings"), "{e}");
        let mut t = training(100);
        t.as_mut().unwrap().dataset = "cifar10-test".into();
        let e = validate(&qat_job(file(), t)).unwrap_err();
        assert!(e.to_string().contains("expected cifar10-train"), "{e}");
        let mut t = training(100);
        t.as_mut().unwrap().epochs = 0;
        let e = validate(&qat_job(file(), t)).unwrap_err();
        assert!(e.to_string().contains("training epochs"), "{e}");
        let e = validate(&qat_job(file(), training(u64::MAX))).unwrap_err();
        assert!(e.to_string().contains("training limit"), "{e}");
        validate(&qat_job(file(), training(100))).unwrap();
    }

    #[test]
    fn qat_job_fine_tunes_and_exports_a_full_integer_model() {
        if data::shared_root().is_err() {
            eprintln!("shared data not found: skipping");
            return;
        }
        let float = tiny_cifar_model();
        let out = run(&qat_job(file(), training(256)), &float, false).unwrap();
        let bytes = out.artifact.unwrap();
        let model = tflite::read_model(&bytes).unwrap();
        let g = model.main();
        let int8 = g
            .tensors
            .iter()
            .filter(|t| t.dtype == quantfarm_engine::ir::DType::I8)
            .count();
        assert!(int8 >= 5, "{int8} int8 tensors");
        // Float I/O like the int8 PTQ technique, integer inside: the only float tensors
        // are the input and the output.
        let f32s = g
            .tensors
            .iter()
            .filter(|t| t.dtype == quantfarm_engine::ir::DType::F32)
            .count();
        assert_eq!(f32s, 2);
        Interpreter::new(&model, InterpreterOptions::default()).unwrap();
        assert_eq!(out.size_bytes, Some(bytes.len() as u64));

        // A cancelled job stops (here before its first step).
        let e = run(&qat_job(file(), training(256)), &float, true).unwrap_err();
        assert!(e.to_string().contains("cancelled"), "{e}");
    }

    #[test]
    fn qat_refuses_a_model_that_is_not_a_cifar10_net() {
        if data::shared_root().is_err() {
            return;
        }
        let zoo = model_source::Source::Zoo(ZooModel {
            arch: "mobilenet_v1".into(),
            width: 0.25,
            resolution: 32,
            seed: 0,
        });
        let e = run(&qat_job(zoo, training(256)), &[], false).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("CIFAR-10"), "{msg}");
    }

    fn structured_job(
        technique: Technique,
        sparsity: Option<f32>,
        clusters: Option<u32>,
    ) -> JobSpec {
        let mut j = qat_job(file(), training(256));
        let Some(job_spec::Task::Optimize(t)) = j.task.as_mut() else {
            unreachable!()
        };
        t.technique = technique as i32;
        t.label = technique.as_str_name().into();
        let tr = t.training.as_mut().unwrap();
        tr.sparsity = sparsity;
        tr.clusters = clusters;
        if matches!(technique, Technique::Prune | Technique::Cluster) {
            t.calibration = Some(Calibration {
                dataset: "cifar10-train".into(),
                limit: 16,
                stride: 100,
                ..Default::default()
            });
        }
        j
    }

    #[test]
    fn prune_cluster_pqat_cqat_jobs_keep_their_structure_in_int8() {
        if data::shared_root().is_err() {
            eprintln!("shared data not found: skipping");
            return;
        }
        use quantfarm_train::cluster::distinct_per_channel;
        use quantfarm_train::prune::model_sparsity;
        let float = tiny_cifar_model();
        let int8_of = |spec: &JobSpec| {
            let bytes = run(spec, &float, false).unwrap().artifact.unwrap();
            let m = tflite::read_model(&bytes).unwrap();
            Interpreter::new(&m, InterpreterOptions::default()).unwrap();
            let f32s = m
                .main()
                .tensors
                .iter()
                .filter(|t| t.dtype == quantfarm_engine::ir::DType::F32)
                .count();
            assert_eq!(f32s, 2, "float I/O, integer inside");
            m
        };
        // The stem (3x3x3) and the depthwise kernel stay dense; pw and the dense layer
        // (1,344 of 2,496 weights) carry 30% of all: 55.7% each.
        for t in [Technique::Prune, Technique::Pqat] {
            let m = int8_of(&structured_job(t, Some(0.3), None));
            let sp = model_sparsity(&m);
            assert!(sp.fraction() >= 0.299, "{t:?}: {}", sp.fraction());
        }
        for t in [Technique::Cluster, Technique::Cqat] {
            let m = int8_of(&structured_job(t, None, Some(4)));
            for (name, n) in distinct_per_channel(&m) {
                assert!(n <= 4, "{t:?} {name}: {n} values in a channel");
            }
        }
        // Settings that do not fit the technique are refused before any work.
        let e = validate(&structured_job(Technique::Prune, None, None)).unwrap_err();
        assert!(e.to_string().contains("sparsity"), "{e}");
        let e = validate(&structured_job(Technique::Cluster, None, Some(5))).unwrap_err();
        assert!(e.to_string().contains("even number"), "{e}");
        let e = validate(&structured_job(Technique::Qat, Some(0.5), None)).unwrap_err();
        assert!(e.to_string().contains("does not prune"), "{e}");
        let mut no_cal = structured_job(Technique::Prune, Some(0.5), None);
        if let Some(job_spec::Task::Optimize(t)) = no_cal.task.as_mut() {
            t.calibration = None;
        }
        let e = validate(&no_cal).unwrap_err();
        assert!(e.to_string().contains("calibration"), "{e}");
    }
}

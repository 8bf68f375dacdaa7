//! Scenario → job DAG. Optimize jobs (model × technique) produce artifacts; benchmark
//! jobs (artifact × device × metric) measure them. Job ids are digests of the job's
//! content, so re-submitting a scenario or resuming a run finds the same jobs.

use crate::error::Result;
use crate::scenario::{
    CalibrationSettings, LatencySettings, MetricKind, ModelSourceDecl, Scenario, TrainingSettings,
    resolve_model_path,
};
use crate::technique::{CalibrationMethod, Technique};
use quantfarm_devices::ProfileSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Content-derived job id: the first 16 hex digits (64 bits) of a SHA-256 over the
/// job's canonical description, which includes the ids of the jobs it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The scenario's name for the model.
    pub name: String,
    pub source: ModelSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelSource {
    /// `path` as written in the scenario (hashed into the id, so ids do not depend on
    /// where a machine keeps its files); `resolved` where this machine finds it.
    File { path: String, resolved: PathBuf },
    /// A quantized file to dequantize into the float32 baseline.
    Dequantize { path: String, resolved: PathBuf },
    /// An engine zoo architecture; `resolution == 0` = the architecture's default.
    Zoo {
        arch: String,
        width: f32,
        resolution: usize,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Metric {
    Latency {
        warmup: usize,
        runs: usize,
        threads: usize,
    },
    /// Top-1/top-5 over `dataset[offset .. offset+limit)` (`None` = to the end).
    Accuracy {
        dataset: String,
        offset: usize,
        limit: Option<usize>,
    },
    /// File size of the artifact (device-independent).
    Size,
    /// Op placement: how many ops the device runs itself vs falls back.
    Mapping,
}

impl Metric {
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Latency { .. } => "latency",
            Metric::Accuracy { .. } => "accuracy",
            Metric::Size => "size",
            Metric::Mapping => "mapping",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobSpec {
    /// Produce an artifact: `technique` applied to `model`'s float baseline (or the
    /// file untouched for `original`). `label` is the scenario's technique label.
    Optimize {
        model: ModelSpec,
        technique: Technique,
        label: String,
        calibration: Option<CalibrationSettings>,
        /// The fine-tuning of a training technique (`qat`).
        training: Option<TrainingSettings>,
    },
    /// Measure the artifact of job `artifact_of`. `device == None` (size) means any
    /// agent may run it.
    Benchmark {
        artifact_of: JobId,
        device: Option<String>,
        metric: Metric,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    /// Jobs that must finish first (their artifacts are this job's inputs).
    pub deps: Vec<JobId>,
}

impl Job {
    /// The device profile whose agent must run this job; `None` = any agent (optimize
    /// jobs and size benchmarks are device-independent host work).
    pub fn required_device(&self) -> Option<&str> {
        match &self.spec {
            JobSpec::Benchmark { device, .. } => device.as_deref(),
            JobSpec::Optimize { .. } => None,
        }
    }
}

/// A (model, technique, device) combination expansion left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub model: String,
    pub technique: String,
    pub device: Option<String>,
    pub reason: String,
}

/// Jobs in dependency order (every job after the jobs it depends on), without
/// duplicates.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobGraph {
    pub jobs: Vec<Job>,
    pub skipped: Vec<Skipped>,
}

impl JobGraph {
    pub fn get(&self, id: &JobId) -> Option<&Job> {
        self.jobs.iter().find(|j| &j.id == id)
    }

    /// Dependency edges `(before, after)`.
    pub fn deps(&self) -> impl Iterator<Item = (&JobId, &JobId)> {
        self.jobs
            .iter()
            .flat_map(|j| j.deps.iter().map(move |d| (d, &j.id)))
    }

    /// For a benchmark job: the optimize job whose artifact it measures.
    pub fn artifact_job(&self, job: &Job) -> Option<&Job> {
        match &job.spec {
            JobSpec::Benchmark { artifact_of, .. } => self.get(artifact_of),
            JobSpec::Optimize { .. } => None,
        }
    }

    /// For a benchmark job: (model name, technique label, device), the key its
    /// result is filed under in [`crate::Measurement`].
    pub fn measurement_key(&self, job: &Job) -> Option<(String, String, Option<String>)> {
        let JobSpec::Benchmark { device, .. } = &job.spec else {
            return None;
        };
        match &self.artifact_job(job)?.spec {
            JobSpec::Optimize { model, label, .. } => {
                Some((model.name.clone(), label.clone(), device.clone()))
            }
            JobSpec::Benchmark { .. } => None,
        }
    }

    pub fn optimize_jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs
            .iter()
            .filter(|j| matches!(j.spec, JobSpec::Optimize { .. }))
    }

    pub fn benchmark_jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs
            .iter()
            .filter(|j| matches!(j.spec, JobSpec::Benchmark { .. }))
    }
}

/// Validate `scenario` against `profiles` (see [`Scenario::validate`]) and expand it.
///
/// Per model × technique one optimize job (`original` is skipped for zoo models, which
/// have no file; a model with a `techniques:` list gets only those), calibrated on the
/// model's own sample when it has one. Per artifact one size job, and per device a latency, accuracy and
/// mapping job as the scenario's metrics ask, except on devices whose profile does not
/// accept the technique's numerics (unless `fallback: true`): those are listed in
/// [`JobGraph::skipped`] so reports can show "not supported" instead of a gap.
pub fn expand(scenario: &Scenario, profiles: &ProfileSet) -> Result<JobGraph> {
    scenario.validate(profiles)?;
    let mut g = JobGraph::default();
    for m in &scenario.models {
        let source = match &m.source {
            ModelSourceDecl::File(p) => ModelSource::File {
                path: p.value.clone(),
                resolved: resolve_model_path(&p.value, &scenario.base_dir)?,
            },
            ModelSourceDecl::Dequantize(p) => ModelSource::Dequantize {
                path: p.value.clone(),
                resolved: resolve_model_path(&p.value, &scenario.base_dir)?,
            },
            ModelSourceDecl::Zoo {
                arch,
                width,
                resolution,
                seed,
            } => ModelSource::Zoo {
                arch: arch.value.clone(),
                width: *width,
                resolution: *resolution,
                seed: *seed,
            },
        };
        let model = ModelSpec {
            name: m.name.value.clone(),
            source,
        };
        for t in scenario.techniques.iter().filter(|t| m.uses(&t.label)) {
            let tech = t.technique.value;
            if tech == Technique::Original && matches!(model.source, ModelSource::Zoo { .. }) {
                g.skipped.push(Skipped {
                    model: model.name.clone(),
                    technique: t.label.clone(),
                    device: None,
                    reason: "a zoo model has no original file".into(),
                });
                continue;
            }
            let opt = JobSpec::Optimize {
                model: model.clone(),
                technique: tech,
                label: t.label.clone(),
                calibration: scenario.calibration_for(m, t).cloned(),
                training: t.training.clone(),
            };
            let opt_id = job_id(&opt);
            push(&mut g, opt_id.clone(), opt, vec![]);
            let bench = |device: Option<String>, metric: Metric| JobSpec::Benchmark {
                artifact_of: opt_id.clone(),
                device,
                metric,
            };
            if scenario.measure_size && m.measures(MetricKind::Size) {
                let spec = bench(None, Metric::Size);
                push(&mut g, job_id(&spec), spec, vec![opt_id.clone()]);
            }
            for d in &scenario.devices {
                // validate() guarantees every device has a profile.
                let Some(p) = profiles.get(&d.value) else {
                    continue;
                };
                if !scenario.fallback && !crate::technique::accepts(p, tech) {
                    g.skipped.push(Skipped {
                        model: model.name.clone(),
                        technique: t.label.clone(),
                        device: Some(d.value.clone()),
                        reason: format!(
                            "{} does not run {} models (accepts {})",
                            d.value,
                            tech,
                            p.accepts
                                .iter()
                                .map(|t| t.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                    continue;
                }
                let mut metrics = Vec::new();
                if scenario.measure_mapping && m.measures(MetricKind::Mapping) {
                    metrics.push(Metric::Mapping);
                }
                if scenario.measure_latency && m.measures(MetricKind::Latency) {
                    let LatencySettings {
                        warmup,
                        runs,
                        threads,
                    } = scenario.latency;
                    metrics.push(Metric::Latency {
                        warmup,
                        runs,
                        threads,
                    });
                }
                if let Some(a) = scenario
                    .accuracy_for(m)
                    .filter(|_| m.measures(MetricKind::Accuracy))
                {
                    metrics.push(Metric::Accuracy {
                        dataset: a.dataset.clone(),
                        offset: a.offset,
                        limit: a.limit,
                    });
                }
                for metric in metrics {
                    let spec = bench(Some(d.value.clone()), metric);
                    push(&mut g, job_id(&spec), spec, vec![opt_id.clone()]);
                }
            }
        }
    }
    Ok(g)
}

/// Identical specs (same id) appear once.
fn push(g: &mut JobGraph, id: JobId, spec: JobSpec, deps: Vec<JobId>) {
    if !g.jobs.iter().any(|j| j.id == id) {
        g.jobs.push(Job { id, spec, deps });
    }
}

/// The id of a job spec: see [`JobId`]. Resolved paths and source positions are left
/// out, so the same scenario gives the same ids on every machine.
pub fn job_id(spec: &JobSpec) -> JobId {
    let canon = canonical(spec);
    let digest = Sha256::digest(canon.as_bytes());
    let mut hex = String::with_capacity(16);
    for b in &digest[..8] {
        let _ = write!(hex, "{b:02x}");
    }
    JobId(hex)
}

/// A versioned, line-per-field text form; `{:?}` quotes strings so no value can
/// imitate a field separator.
fn canonical(spec: &JobSpec) -> String {
    let mut s = String::from("quantfarm-job v1\n");
    match spec {
        JobSpec::Optimize {
            model,
            technique,
            label,
            calibration,
            training,
        } => {
            let _ = writeln!(s, "kind=optimize\nmodel={:?}", model.name);
            match &model.source {
                ModelSource::File { path, .. } => {
                    let _ = writeln!(s, "source=file\npath={path:?}");
                }
                ModelSource::Dequantize { path, .. } => {
                    let _ = writeln!(s, "source=dequantize\npath={path:?}");
                }
                ModelSource::Zoo {
                    arch,
                    width,
                    resolution,
                    seed,
                } => {
                    let _ = writeln!(
                        s,
                        "source=zoo\narch={arch:?}\nwidth={:08x}\nresolution={resolution}\nseed={seed}",
                        width.to_bits()
                    );
                }
            }
            let _ = writeln!(s, "technique={}\nlabel={label:?}", technique.name());
            if let Some(c) = calibration {
                let _ = writeln!(
                    s,
                    "calibration={:?}\noffset={}\nlimit={}\nmethod={}",
                    c.dataset,
                    c.offset,
                    c.limit,
                    c.method.name()
                );
                if let CalibrationMethod::Percentile(p) = c.method {
                    let _ = writeln!(s, "percentile={:016x}", p.to_bits());
                }
                // Only when set, so ids of scenarios without strides stay as they were.
                if c.stride != 1 {
                    let _ = writeln!(s, "stride={}", c.stride);
                }
            }
            if let Some(t) = training {
                let _ = writeln!(
                    s,
                    "training={:?}\nlimit={:?}\nepochs={}\nseed={}",
                    t.dataset, t.limit, t.epochs, t.seed
                );
                // Only when set, so ids of qat jobs stay as they were.
                if let Some(sp) = t.sparsity {
                    let _ = writeln!(s, "sparsity={:08x}", sp.to_bits());
                }
                if let Some(k) = t.clusters {
                    let _ = writeln!(s, "clusters={k}");
                }
                if let Some(i) = &t.init {
                    let _ = writeln!(s, "init={i:?}");
                }
            }
        }
        JobSpec::Benchmark {
            artifact_of,
            device,
            metric,
        } => {
            let _ = writeln!(
                s,
                "kind=benchmark\nartifact_of={}\ndevice={device:?}\nmetric={}",
                artifact_of,
                metric.name()
            );
            match metric {
                Metric::Latency {
                    warmup,
                    runs,
                    threads,
                } => {
                    let _ = writeln!(s, "warmup={warmup}\nruns={runs}\nthreads={threads}");
                }
                Metric::Accuracy {
                    dataset,
                    offset,
                    limit,
                } => {
                    let _ = writeln!(s, "dataset={dataset:?}\noffset={offset}\nlimit={limit:?}");
                }
                Metric::Size | Metric::Mapping => {}
            }
        }
    }
    s
}

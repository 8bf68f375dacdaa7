//! A scenario's job graph as typed wire jobs (`quantfarm.v1.JobSpec`): ids prefixed by
//! the run id, the task as an optimize or benchmark message. Agents depend on the wire
//! types only, never on the scenario crate.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use quantfarm_proto::v1::{
    self as wire, AccuracySettings, BenchmarkTask, Calibration, FileModel, LatencySettings,
    ModelSource as WireSource, OptimizeTask, Training, ZooModel, job_spec, model_source,
};
use quantfarm_scenario::{
    self as scenario, CalibrationMethod, JobGraph, Metric, ModelSource, Technique,
};

/// The wire form of a technique.
pub fn technique(t: Technique) -> wire::Technique {
    match t {
        Technique::Float32 => wire::Technique::Float32,
        Technique::Float16 => wire::Technique::Float16,
        Technique::Dynamic => wire::Technique::Dynamic,
        Technique::Int8 => wire::Technique::Int8,
        Technique::Int16x8 => wire::Technique::Int16x8,
        Technique::Uint8 => wire::Technique::Uint8,
        Technique::Original => wire::Technique::Original,
        Technique::Qat => wire::Technique::Qat,
        Technique::Prune => wire::Technique::Prune,
        Technique::Cluster => wire::Technique::Cluster,
        Technique::Pqat => wire::Technique::Pqat,
        Technique::Cqat => wire::Technique::Cqat,
    }
}

/// The wire job id of a scenario job in run `run`.
pub fn job_id(run: &str, id: &scenario::JobId) -> String {
    format!("{run}/{id}")
}

/// Every job of `graph` as a wire job. `digests` gives the uploaded artifact of each
/// model file the graph reads.
pub fn to_wire(
    run: &str,
    graph: &JobGraph,
    digests: &BTreeMap<PathBuf, String>,
) -> Result<Vec<wire::JobSpec>> {
    graph
        .jobs
        .iter()
        .map(|j| {
            let mut w = wire::JobSpec {
                id: job_id(run, &j.id),
                depends_on: j.deps.iter().map(|d| job_id(run, d)).collect(),
                requires: j.required_device().unwrap_or("optimize").to_string(),
                ..Default::default()
            };
            let task = match &j.spec {
                scenario::JobSpec::Optimize {
                    model,
                    technique: t,
                    label,
                    calibration,
                    training,
                } => {
                    let uploaded = |resolved: &PathBuf| -> Result<String> {
                        digests
                            .get(resolved)
                            .cloned()
                            .with_context(|| format!("{}: not uploaded", resolved.display()))
                    };
                    let source = match &model.source {
                        ModelSource::File { path, resolved } => {
                            w.model_digest = uploaded(resolved)?;
                            model_source::Source::File(FileModel { path: path.clone() })
                        }
                        ModelSource::Dequantize { path, resolved } => {
                            w.model_digest = uploaded(resolved)?;
                            model_source::Source::Dequantize(FileModel { path: path.clone() })
                        }
                        ModelSource::Zoo {
                            arch,
                            width,
                            resolution,
                            seed,
                        } => model_source::Source::Zoo(ZooModel {
                            arch: arch.clone(),
                            width: *width,
                            resolution: u32::try_from(*resolution).unwrap_or(u32::MAX),
                            seed: *seed,
                        }),
                    };
                    job_spec::Task::Optimize(OptimizeTask {
                        model: model.name.clone(),
                        label: label.clone(),
                        technique: technique(*t) as i32,
                        source: Some(WireSource {
                            source: Some(source),
                        }),
                        calibration: calibration.as_ref().map(|c| {
                            let (method, percentile) = match c.method {
                                CalibrationMethod::MinMax => (wire::CalibrationMethod::Minmax, 0.0),
                                CalibrationMethod::Percentile(q) => {
                                    (wire::CalibrationMethod::Percentile, q)
                                }
                            };
                            Calibration {
                                dataset: c.dataset.clone(),
                                offset: c.offset as u64,
                                limit: c.limit as u64,
                                method: method as i32,
                                percentile,
                                stride: c.stride as u64,
                            }
                        }),
                        training: training.as_ref().map(|t| Training {
                            dataset: t.dataset.clone(),
                            limit: t.limit.map(|l| l as u64),
                            epochs: u32::try_from(t.epochs).unwrap_or(u32::MAX),
                            seed: t.seed,
                            sparsity: t.sparsity,
                            clusters: t.clusters.map(|k| u32::try_from(k).unwrap_or(u32::MAX)),
                            init: t.init.clone().unwrap_or_default(),
                        }),
                    })
                }
                scenario::JobSpec::Benchmark {
                    artifact_of,
                    device,
                    metric,
                } => {
                    w.input_from = job_id(run, artifact_of);
                    let (model, label) = graph
                        .measurement_key(j)
                        .map(|(m, l, _)| (m, l))
                        .unwrap_or_default();
                    let mut task = BenchmarkTask {
                        model,
                        label,
                        device: device.clone().unwrap_or_default(),
                        ..Default::default()
                    };
                    let m = match metric {
                        Metric::Latency {
                            warmup,
                            runs,
                            threads,
                        } => {
                            task.latency = Some(LatencySettings {
                                warmup: *warmup as u64,
                                runs: *runs as u64,
                                threads: u32::try_from(*threads).unwrap_or(u32::MAX),
                            });
                            wire::Metric::Latency
                        }
                        Metric::Accuracy {
                            dataset,
                            offset,
                            limit,
                        } => {
                            task.accuracy = Some(AccuracySettings {
                                dataset: dataset.clone(),
                                offset: *offset as u64,
                                limit: limit.map(|l| l as u64),
                            });
                            wire::Metric::Accuracy
                        }
                        Metric::Size => wire::Metric::Size,
                        Metric::Mapping => wire::Metric::Mapping,
                    };
                    task.metric = m as i32;
                    job_spec::Task::Benchmark(task)
                }
            };
            w.task = Some(task);
            Ok(w)
        })
        .collect()
}

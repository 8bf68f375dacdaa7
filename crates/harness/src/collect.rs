//! Job results → typed [`RunResults`] (one row per model × technique × device), and the
//! measurements the scenario's gates check.

use std::collections::BTreeMap;

use quantfarm_proto::v1::{
    JobState, LatencyKind as WireLatencyKind, LatencyStats, RunStatus, job_spec,
};
use quantfarm_results::{
    FORMAT_VERSION, LatencyKind, ResultRow, RowStatus, RunResults, SkippedRow,
};
use quantfarm_scenario::{self as scenario, JobGraph, Measurement, Observed};

use crate::wire::job_id;

/// One row per (model, technique, device) with the results of its benchmark jobs
/// merged. Size, being device-independent, goes into every row of its artifact; an
/// artifact with a size and no device row gets a row of its own with an empty device.
pub fn collect(st: &RunStatus, graph: &JobGraph, run: &str) -> RunResults {
    let by_id: BTreeMap<String, &scenario::Job> =
        graph.jobs.iter().map(|j| (job_id(run, &j.id), j)).collect();
    let mut table: BTreeMap<(String, String, String), ResultRow> = BTreeMap::new();
    // (model, label) → (size, gzip size) of the artifact.
    let mut sizes: BTreeMap<(String, String), (u64, Option<u64>)> = BTreeMap::new();
    for js in &st.jobs {
        let Some(spec) = &js.spec else { continue };
        let Some(job) = by_id.get(&spec.id) else {
            continue;
        };
        let Some((model, label, device)) = graph.measurement_key(job) else {
            continue;
        };
        let metric = match &spec.task {
            Some(job_spec::Task::Benchmark(b)) => b.metric().as_str_name(),
            _ => "",
        };
        let is_size = matches!(
            job.spec,
            scenario::JobSpec::Benchmark {
                metric: scenario::Metric::Size,
                ..
            }
        );
        let ok = js.state == JobState::Succeeded as i32;
        let result = js.result.as_ref().filter(|_| ok);
        if is_size && let Some(r) = result.filter(|r| r.size_bytes.is_some()) {
            let s = (r.size_bytes.unwrap_or_default(), r.gzip_size_bytes);
            sizes.insert((model.clone(), label.clone()), s);
            continue;
        }
        let dev = device.unwrap_or_default();
        let row = table
            .entry((model.clone(), label.clone(), dev.clone()))
            .or_insert_with(|| described_row(graph, job, &model, &label, &dev));
        row.attempts += js.attempts;
        if !js.agent.is_empty() {
            row.agent = js.agent.clone();
        }
        if !ok {
            let status = match JobState::try_from(js.state) {
                Ok(JobState::Failed) => RowStatus::Failed,
                Ok(JobState::Cancelled) => RowStatus::Cancelled,
                _ => RowStatus::Unfinished,
            };
            row.status = row.status.max(status);
            let err = js.result.as_ref().map(|r| r.error.as_str()).unwrap_or("");
            let what = format!("{}: {err}", metric_name(metric));
            if row.error.is_empty() {
                row.error = what;
            } else {
                row.error = format!("{}; {what}", row.error);
            }
            continue;
        }
        let Some(r) = result else { continue };
        if let Some(l) = &r.latency {
            apply_latency(row, l);
        }
        if let Some(a) = &r.accuracy {
            row.top1 = Some(a.top1);
            row.top5 = Some(a.top5);
            row.eval_images = Some(a.images);
            row.dataset = Some(a.dataset.clone());
        }
        if let Some(p) = &r.placement {
            row.ops_total = Some(p.ops_total);
            row.ops_on_device = Some(p.ops_on_device);
            row.segments = Some(p.segments);
            row.first_unmapped_op = Some(p.first_unmapped_op.clone()).filter(|s| !s.is_empty());
            row.mapping_refused = Some(p.refused.clone()).filter(|s| !s.is_empty());
        }
    }
    for ((model, label), (v, gz)) in &sizes {
        let mut any = false;
        for ((m, l, _), row) in table.iter_mut() {
            if m == model && l == label {
                row.size_bytes = Some(*v);
                row.gzip_size_bytes = *gz;
                any = true;
            }
        }
        if !any {
            let mut row = by_id
                .values()
                .find(|j| {
                    graph
                        .measurement_key(j)
                        .is_some_and(|(m, l, _)| &m == model && &l == label)
                })
                .map(|j| described_row(graph, j, model, label, ""))
                .unwrap_or_else(|| ResultRow::new(model, label, ""));
            row.size_bytes = Some(*v);
            row.gzip_size_bytes = *gz;
            row.attempts = 1;
            table.insert((model.clone(), label.clone(), String::new()), row);
        }
    }
    RunResults {
        format: FORMAT_VERSION,
        run_id: st.run_id.clone(),
        scenario: st.name.clone(),
        created_unix: 0,
        host: None,
        cancelled: st.cancelled,
        rows: table.into_values().collect(),
        skipped: graph
            .skipped
            .iter()
            .map(|s| SkippedRow {
                model: s.model.clone(),
                technique: s.technique.clone(),
                device: s.device.clone().unwrap_or_default(),
                reason: s.reason.clone(),
            })
            .collect(),
        gates: Vec::new(),
        previous_run: None,
        accuracy_budget: None,
    }
}

/// A new row for a benchmark job's model × technique on `device`, with the technique's
/// kind and the model's source from the optimize job behind it.
fn described_row(
    graph: &JobGraph,
    job: &scenario::Job,
    model: &str,
    label: &str,
    device: &str,
) -> ResultRow {
    let mut row = ResultRow::new(model, label, device);
    if let Some(scenario::JobSpec::Optimize {
        model: m,
        technique,
        ..
    }) = graph.artifact_job(job).map(|j| &j.spec)
    {
        row.technique_kind = technique.name().to_string();
        row.model_source = match m.source {
            scenario::ModelSource::File { .. } => "file",
            scenario::ModelSource::Dequantize { .. } => "dequantize",
            scenario::ModelSource::Zoo { .. } => "zoo",
        }
        .to_string();
    }
    row
}

/// A job's latency statistics into a row's latency columns, unchanged.
pub fn apply_latency(row: &mut ResultRow, l: &LatencyStats) {
    row.latency_kind = Some(match l.kind() {
        WireLatencyKind::Predicted => LatencyKind::Predicted,
        _ => LatencyKind::Measured,
    });
    row.latency_p50_ms = Some(l.median_ms);
    row.latency_mean_ms = Some(l.mean_ms);
    row.latency_p90_ms = Some(l.p90_ms);
    row.latency_runs = Some(l.runs);
    row.threads = Some(l.threads);
}

/// `METRIC_LATENCY` → `latency`.
fn metric_name(wire: &str) -> String {
    match wire.strip_prefix("METRIC_") {
        Some(m) => m.to_lowercase(),
        None => "optimize".to_string(),
    }
}

/// The measurements gates check, from the typed rows: size once per model × technique
/// (no device), latency (the median), top-1 and op placement per device.
pub fn measurements(results: &RunResults) -> Vec<Measurement> {
    let mut out = Vec::new();
    let mut sized = std::collections::BTreeSet::new();
    for r in &results.rows {
        let device = Some(r.device.clone()).filter(|d| !d.is_empty());
        let mut push = |device: Option<String>, value: Observed| {
            out.push(Measurement {
                model: r.model.clone(),
                technique: r.technique.clone(),
                device,
                value,
            })
        };
        if let Some(s) = r.size_bytes
            && sized.insert((r.model.clone(), r.technique.clone()))
        {
            push(None, Observed::SizeBytes(s));
        }
        if let Some(v) = r.latency_p50_ms {
            push(device.clone(), Observed::LatencyMs(v));
        }
        if let Some(v) = r.top1 {
            push(device.clone(), Observed::Top1(v));
        }
        if let (Some(total), Some(on)) = (r.ops_total, r.ops_on_device) {
            push(
                device.clone(),
                Observed::Mapping {
                    delegated: on as usize,
                    total: total as usize,
                },
            );
        }
    }
    out
}

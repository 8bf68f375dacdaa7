//! Runs as polars DataFrames: one row per result row, with the run's id, scenario and
//! collection time in front, and `results.parquet` written from it.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use quantfarm_results::RunResults;

/// Columns of the rows frame, in order.
pub const COLUMNS: &[&str] = &[
    "run_id",
    "scenario",
    "created_unix",
    "model",
    "technique",
    "device",
    "status",
    "technique_kind",
    "model_source",
    "size_bytes",
    "gzip_size_bytes",
    "latency_kind",
    "latency_p50_ms",
    "latency_mean_ms",
    "latency_p90_ms",
    "latency_runs",
    "threads",
    "top1",
    "top5",
    "eval_images",
    "dataset",
    "ops_total",
    "ops_on_device",
    "segments",
    "first_unmapped_op",
    "mapping_refused",
    "attempts",
    "agent",
    "error",
];

/// The rows of `runs` as one frame.
pub fn rows_frame<'a>(runs: impl IntoIterator<Item = &'a RunResults>) -> PolarsResult<DataFrame> {
    let mut run_id = Vec::new();
    let mut scenario = Vec::new();
    let mut created = Vec::new();
    let mut model = Vec::new();
    let mut technique = Vec::new();
    let mut device = Vec::new();
    let mut status = Vec::new();
    let mut technique_kind = Vec::new();
    let mut model_source = Vec::new();
    let mut size = Vec::new();
    let mut gzip = Vec::new();
    let mut kind = Vec::new();
    let mut p50 = Vec::new();
    let mut mean = Vec::new();
    let mut p90 = Vec::new();
    let mut lruns = Vec::new();
    let mut threads = Vec::new();
    let mut top1 = Vec::new();
    let mut top5 = Vec::new();
    let mut images = Vec::new();
    let mut dataset = Vec::new();
    let mut ops_total = Vec::new();
    let mut ops_on = Vec::new();
    let mut segments = Vec::new();
    let mut first = Vec::new();
    let mut refused = Vec::new();
    let mut attempts = Vec::new();
    let mut agent = Vec::new();
    let mut error = Vec::new();
    for run in runs {
        for r in &run.rows {
            run_id.push(run.run_id.clone());
            scenario.push(run.scenario.clone());
            created.push(run.created_unix);
            model.push(r.model.clone());
            technique.push(r.technique.clone());
            device.push(r.device.clone());
            status.push(r.status.name());
            technique_kind.push(r.technique_kind.clone());
            model_source.push(r.model_source.clone());
            size.push(r.size_bytes);
            gzip.push(r.gzip_size_bytes);
            kind.push(r.latency_kind.map(|k| k.name()));
            p50.push(r.latency_p50_ms);
            mean.push(r.latency_mean_ms);
            p90.push(r.latency_p90_ms);
            lruns.push(r.latency_runs);
            threads.push(r.threads);
            top1.push(r.top1);
            top5.push(r.top5);
            images.push(r.eval_images);
            dataset.push(r.dataset.clone());
            ops_total.push(r.ops_total);
            ops_on.push(r.ops_on_device);
            segments.push(r.segments);
            first.push(r.first_unmapped_op.clone());
            refused.push(r.mapping_refused.clone());
            attempts.push(r.attempts);
            agent.push(r.agent.clone());
            error.push(r.error.clone());
        }
    }
    let c = |name: &str, s: Series| -> Column { s.with_name(name.into()).into_column() };
    DataFrame::new(vec![
        c("run_id", Series::new("".into(), run_id)),
        c("scenario", Series::new("".into(), scenario)),
        c("created_unix", Series::new("".into(), created)),
        c("model", Series::new("".into(), model)),
        c("technique", Series::new("".into(), technique)),
        c("device", Series::new("".into(), device)),
        c("status", Series::new("".into(), status)),
        c("technique_kind", Series::new("".into(), technique_kind)),
        c("model_source", Series::new("".into(), model_source)),
        c("size_bytes", Series::new("".into(), size)),
        c("gzip_size_bytes", Series::new("".into(), gzip)),
        c("latency_kind", Series::new("".into(), kind)),
        c("latency_p50_ms", Series::new("".into(), p50)),
        c("latency_mean_ms", Series::new("".into(), mean)),
        c("latency_p90_ms", Series::new("".into(), p90)),
        c("latency_runs", Series::new("".into(), lruns)),
        c("threads", Series::new("".into(), threads)),
        c("top1", Series::new("".into(), top1)),
        c("top5", Series::new("".into(), top5)),
        c("eval_images", Series::new("".into(), images)),
        c("dataset", Series::new("".into(), dataset)),
        c("ops_total", Series::new("".into(), ops_total)),
        c("ops_on_device", Series::new("".into(), ops_on)),
        c("segments", Series::new("".into(), segments)),
        c("first_unmapped_op", Series::new("".into(), first)),
        c("mapping_refused", Series::new("".into(), refused)),
        c("attempts", Series::new("".into(), attempts)),
        c("agent", Series::new("".into(), agent)),
        c("error", Series::new("".into(), error)),
    ])
}

/// Write a frame as Parquet; errors name the file.
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<(), String> {
    let f = std::fs::File::create(path)
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    ParquetWriter::new(f)
        .finish(df)
        .map(|_| ())
        .map_err(|e| format!("{}: cannot write Parquet: {e}", path.display()))
}

/// Read a Parquet file back (tests, tools).
pub fn read_parquet(path: &Path) -> Result<DataFrame, String> {
    let f =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    ParquetReader::new(f)
        .finish()
        .map_err(|e| format!("{}: not a Parquet file: {e}", path.display()))
}

/// Every run under a reports folder (`<reports>/*/results.json`), oldest first (by
/// collection time, then run id); folders without a readable results file are left out.
pub fn load_reports(reports: &Path) -> Vec<(PathBuf, RunResults)> {
    let Ok(entries) = std::fs::read_dir(reports) else {
        return Vec::new();
    };
    let mut runs: Vec<(PathBuf, RunResults)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("results.json").is_file())
        .filter_map(|p| RunResults::read(&p).ok().map(|r| (p, r)))
        .collect();
    runs.sort_by(|a, b| (a.1.created_unix, &a.1.run_id).cmp(&(b.1.created_unix, &b.1.run_id)));
    runs
}

/// A named set of runs (run folders or results.json files); the first unreadable one
/// is an error naming it.
pub fn load_named(paths: &[PathBuf]) -> Result<Vec<RunResults>, String> {
    paths
        .iter()
        .map(|p| RunResults::read(p).map_err(|e| e.to_string()))
        .collect()
}

/// The frame of every run under a reports folder.
pub fn reports_frame(reports: &Path) -> PolarsResult<DataFrame> {
    let runs = load_reports(reports);
    rows_frame(runs.iter().map(|(_, r)| r))
}

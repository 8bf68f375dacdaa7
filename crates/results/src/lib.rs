//! The typed results of one scenario run: what `quantfarm run` writes as
//! `reports/<run>/results.json` and `results.csv`, and what reports and gates read.
//!
//! This crate has no engine, network or dataframe dependency, so readers of results
//! (the report crate, external tools) build without any of them.
//!
//! One [`ResultRow`] per model × technique × device: the technique's artifact size (the
//! same on every device), its latency (measured on real hardware or predicted by a device
//! simulator, as [`LatencyKind`] says), its accuracy over the scenario's dataset slice,
//! and where its ops run on the device.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Version of the results format written by this crate (`format` in results.json).
pub const FORMAT_VERSION: u32 = 1;

/// Whether a latency was timed or computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatencyKind {
    /// Timed on the device itself (the host CPU agent).
    Measured,
    /// Computed by a device simulator's latency model from the profile's parameters.
    Predicted,
}

impl LatencyKind {
    pub fn name(self) -> &'static str {
        match self {
            LatencyKind::Measured => "measured",
            LatencyKind::Predicted => "predicted",
        }
    }
}

/// How the jobs behind a row ended; the worst of them wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    Succeeded,
    /// Not finished when the results were written (a run still going, or interrupted).
    Unfinished,
    Cancelled,
    Failed,
}

impl RowStatus {
    pub fn name(self) -> &'static str {
        match self {
            RowStatus::Succeeded => "succeeded",
            RowStatus::Unfinished => "unfinished",
            RowStatus::Cancelled => "cancelled",
            RowStatus::Failed => "failed",
        }
    }
}

/// One model × technique × device. `device` is empty for a row holding only
/// device-independent measurements (a scenario measuring size only). Every measurement
/// is optional: a cell a scenario did not ask for, or a job that failed, is `None`
/// (and `error` says why for a failure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub model: String,
    /// The scenario's technique label.
    pub technique: String,
    pub device: String,
    pub status: RowStatus,
    /// What the technique is (`float32`, `float16`, `dynamic`, `int8`, `int16x8`,
    /// `uint8`, or `original` = the model file as given), whatever its label.
    #[serde(default)]
    pub technique_kind: String,
    /// Where the model came from: `file` (a trained model file), `dequantize` (a
    /// trained quantized file, dequantized as the float baseline) or `zoo` (an engine
    /// architecture with deterministic, untrained weights: its accuracy means nothing).
    #[serde(default)]
    pub model_source: String,
    /// File size of the technique's artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The artifact's size after gzip (level 6): pruning and clustering shrink this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_kind: Option<LatencyKind>,
    /// Median time per inference (for a prediction: the predicted time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_mean_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p90_ms: Option<f64>,
    /// Timed inferences behind the statistics (0 for a prediction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_runs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Top-1 / top-5 accuracy in [0, 1] over `eval_images` images of `dataset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top5: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_images: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Op placement on the device: ops in the model, ops the device runs itself, and
    /// the device partitions ("segments") they form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_total: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_on_device: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// The first op the device does not run (with its index), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_unmapped_op: Option<String>,
    /// Why the device refuses the whole model, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_refused: Option<String>,
    /// Attempts over the row's jobs (more than one job per row: size, latency, ...).
    pub attempts: u32,
    /// The agent that ran the row's last job.
    pub agent: String,
    /// Failures of the row's jobs, `metric: error` separated by `; `.
    pub error: String,
}

impl ResultRow {
    /// An empty, succeeded row for `model`/`technique` on `device`.
    pub fn new(model: &str, technique: &str, device: &str) -> ResultRow {
        ResultRow {
            model: model.to_string(),
            technique: technique.to_string(),
            device: device.to_string(),
            status: RowStatus::Succeeded,
            technique_kind: String::new(),
            model_source: String::new(),
            size_bytes: None,
            gzip_size_bytes: None,
            latency_kind: None,
            latency_p50_ms: None,
            latency_mean_ms: None,
            latency_p90_ms: None,
            latency_runs: None,
            threads: None,
            top1: None,
            top5: None,
            eval_images: None,
            dataset: None,
            ops_total: None,
            ops_on_device: None,
            segments: None,
            first_unmapped_op: None,
            mapping_refused: None,
            attempts: 0,
            agent: String::new(),
            error: String::new(),
        }
    }

    /// Every op of the model runs on the device.
    pub fn fully_mapped(&self) -> Option<bool> {
        match (self.ops_total, self.ops_on_device) {
            (Some(t), Some(d)) => Some(t == d && self.mapping_refused.is_none()),
            _ => None,
        }
    }
}

/// A model × technique (× device) combination the scenario asked for but did not run,
/// and why (e.g. the device does not accept the technique's numerics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedRow {
    pub model: String,
    pub technique: String,
    /// Empty when the combination was skipped on every device.
    pub device: String,
    pub reason: String,
}

/// How a gate of the scenario came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Pass,
    Fail,
    /// Nothing the gate applies to was measured (or no baseline for it).
    NoData,
}

/// One gate of the scenario and its outcome on this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub name: String,
    /// The gate's kind as the scenario spells it (`max_top1_drop`, `max_size_ratio`,
    /// `max_latency_regression`, `full_mapping`).
    pub kind: String,
    pub status: GateStatus,
    /// One line naming the gate; on failure it lists every breach.
    pub message: String,
}

/// Everything one run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// [`FORMAT_VERSION`] of the writer.
    #[serde(default)]
    pub format: u32,
    pub run_id: String,
    /// The scenario's name.
    pub scenario: String,
    /// When the results were collected, in seconds since 1970-01-01 UTC (orders the
    /// runs of a scenario for trends).
    #[serde(default)]
    pub created_unix: u64,
    /// The machine that collected them (CPU model), for reading measured latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub cancelled: bool,
    pub rows: Vec<ResultRow>,
    #[serde(default)]
    pub skipped: Vec<SkippedRow>,
    #[serde(default)]
    pub gates: Vec<GateRecord>,
    /// The run compared against for `baseline: previous` gates, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run: Option<String>,
    /// The scenario's accuracy budget: the largest top-1 drop against float32 it
    /// accepts (from its `max_top1_drop` gates against float32: the tightest one over
    /// every technique, else the tightest of any), if it sets one. Reports recommend
    /// techniques within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_budget: Option<f64>,
}

/// Columns of `results.csv`, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "model",
    "technique",
    "device",
    "status",
    "size_bytes",
    "gzip_size_bytes",
    "latency_p50_ms",
    "latency_mean_ms",
    "latency_p90_ms",
    "top1",
    "top5",
    "eval_images",
    "latency_kind",
    "latency_runs",
    "threads",
    "dataset",
    "ops_total",
    "ops_on_device",
    "segments",
    "first_unmapped_op",
    "mapping_refused",
    "technique_kind",
    "model_source",
    "attempts",
    "agent",
    "error",
];

/// Errors reading or writing results; the message names the file.
#[derive(Debug)]
pub struct ResultsError(pub String);

impl std::fmt::Display for ResultsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ResultsError {}

/// Largest results.json read (a nightly run of every model × technique × device is a few
/// thousand rows, well under a megabyte).
pub const MAX_RESULTS_BYTES: u64 = 256 << 20;

impl RunResults {
    /// The CSV form: a header of [`CSV_COLUMNS`], then one line per row; empty cells for
    /// missing values; whole numbers without a fraction.
    pub fn to_csv(&self) -> String {
        let mut out = CSV_COLUMNS.join(",");
        out.push('\n');
        for r in &self.rows {
            let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
            let int = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
            let text = |v: Option<&str>| csv_cell(v.unwrap_or(""));
            let cells = [
                csv_cell(&r.model),
                csv_cell(&r.technique),
                csv_cell(&r.device),
                r.status.name().to_string(),
                int(r.size_bytes),
                int(r.gzip_size_bytes),
                num(r.latency_p50_ms),
                num(r.latency_mean_ms),
                num(r.latency_p90_ms),
                num(r.top1),
                num(r.top5),
                int(r.eval_images),
                r.latency_kind.map(|k| k.name()).unwrap_or("").to_string(),
                int(r.latency_runs.map(u64::from)),
                int(r.threads.map(u64::from)),
                text(r.dataset.as_deref()),
                int(r.ops_total.map(u64::from)),
                int(r.ops_on_device.map(u64::from)),
                int(r.segments.map(u64::from)),
                text(r.first_unmapped_op.as_deref()),
                text(r.mapping_refused.as_deref()),
                csv_cell(&r.technique_kind),
                csv_cell(&r.model_source),
                r.attempts.to_string(),
                csv_cell(&r.agent),
                csv_cell(&r.error),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }

    /// Write `results.json` and `results.csv` into `dir`.
    pub fn write_dir(&self, dir: &Path) -> Result<(), ResultsError> {
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text)
                .map_err(|e| ResultsError(format!("{}: cannot write: {e}", p.display())))
        };
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| ResultsError(format!("cannot encode the results: {e}")))?;
        write("results.json", json + "\n")?;
        write("results.csv", self.to_csv())
    }

    /// Read a `results.json` (or the `results.json` inside a run directory).
    pub fn read(path: &Path) -> Result<RunResults, ResultsError> {
        let file = if path.is_dir() {
            path.join("results.json")
        } else {
            path.to_path_buf()
        };
        let name = file.display().to_string();
        let meta = std::fs::metadata(&file)
            .map_err(|e| ResultsError(format!("{name}: cannot read: {e}")))?;
        if meta.len() > MAX_RESULTS_BYTES {
            return Err(ResultsError(format!(
                "{name}: {} bytes: at most {MAX_RESULTS_BYTES} expected",
                meta.len()
            )));
        }
        let bytes =
            std::fs::read(&file).map_err(|e| ResultsError(format!("{name}: cannot read: {e}")))?;
        // serde_json's message gives line and column; the file's contents are not echoed.
        serde_json::from_slice(&bytes)
            .map_err(|e| ResultsError(format!("{name}: not a quantfarm results file: {e}")))
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunResults {
        let mut a = ResultRow::new("mnv1", "int8", "cpu-host");
        a.size_bytes = Some(470_000);
        a.gzip_size_bytes = Some(430_000);
        a.latency_kind = Some(LatencyKind::Measured);
        a.latency_p50_ms = Some(0.25);
        a.top1 = Some(0.5);
        a.attempts = 2;
        let mut b = ResultRow::new("mnv1", "int8", "edgetpu-usb");
        b.status = RowStatus::Failed;
        b.error = "latency: bad, \"quoted\"".into();
        b.ops_total = Some(31);
        b.ops_on_device = Some(31);
        RunResults {
            format: FORMAT_VERSION,
            run_id: "r".into(),
            scenario: "s".into(),
            created_unix: 1_800_000_000,
            host: Some("test cpu".into()),
            cancelled: false,
            rows: vec![a, b],
            skipped: vec![],
            gates: vec![GateRecord {
                name: "g".into(),
                kind: "max_top1_drop".into(),
                status: GateStatus::Pass,
                message: "gate 'g' passed".into(),
            }],
            previous_run: None,
            accuracy_budget: None,
        }
    }

    #[test]
    fn json_round_trips_and_leaves_out_missing_cells() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("latency_mean_ms"), "{text}");
        assert!(text.contains("\"latency_kind\":\"measured\""), "{text}");
        let back: RunResults = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.rows[1].fully_mapped(), Some(true));
    }

    #[test]
    fn csv_has_one_line_per_row_with_quoted_cells() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("model,technique,device,status,size_bytes"));
        assert!(lines[1].starts_with("mnv1,int8,cpu-host,succeeded,470000,430000,0.25,,,0.5,"));
        assert!(lines[1].contains(",measured,"), "{}", lines[1]);
        assert!(
            lines[2].ends_with(",\"latency: bad, \"\"quoted\"\"\""),
            "{}",
            lines[2]
        );
        for l in &lines[1..] {
            // Quoted commas aside, every line has one cell per column.
            let unquoted: String = l.split('"').step_by(2).collect();
            assert_eq!(unquoted.matches(',').count(), CSV_COLUMNS.len() - 1, "{l}");
        }
    }

    #[test]
    fn reading_a_non_results_file_names_it_without_echoing_it() {
        let dir = std::env::temp_dir().join(format!("qf-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("results.json");
        std::fs::write(&p, "secret-line-1\nsecret-line-2\n").unwrap();
        let e = RunResults::read(&dir).unwrap_err().to_string();
        assert!(e.contains("results.json") && !e.contains("secret"), "{e}");
        sample().write_dir(&dir).unwrap();
        assert_eq!(RunResults::read(&p).unwrap(), sample());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

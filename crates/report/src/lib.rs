//! quantfarm's reports, built from a run's typed results (`quantfarm-results`) alone:
//!
//! - [`frames`]: runs as polars DataFrames, `results.parquet`;
//! - [`table1`], [`table2`]: the guide's Tables 1 and 2 with our values beside theirs
//!   (Markdown, CSV, HTML), every empty cell saying why;
//! - [`charts`]: plotters charts (PNG and SVG) with an embedded font;
//! - [`compat`]: the model × device compatibility matrix;
//! - [`recommend`]: the guide's decision tree on the measured numbers;
//! - [`compare`]: regression checks against a baseline run; [`junit`]: JUnit XML;
//! - [`html`]: one self-contained `index.html` holding all of it;
//! - [`history`]: earlier runs of a scenario (default baseline, trends).
//!
//! ```no_run
//! # use quantfarm_report::{build, Options};
//! # use quantfarm_results::RunResults;
//! let run = RunResults::read("reports/r1".as_ref()).unwrap();
//! let report = build(&run, None, &[], &Options::default()).unwrap();
//! report.write(&run, "reports/r1".as_ref()).unwrap();
//! ```

pub mod charts;
pub mod compare;
pub mod compat;
pub mod frames;
pub mod guide;
pub mod history;
pub mod html;
pub mod junit;
pub mod recommend;
pub mod rows;
pub mod synthetic;
pub mod table;
pub mod table1;
pub mod table2;
pub mod text;

use std::path::{Path, PathBuf};

use quantfarm_results::{GateStatus, RunResults};
use serde::Serialize;

pub use charts::Chart;
pub use compare::{Check, CheckStatus, Thresholds};
pub use compat::Matrix;
pub use recommend::Recommendation;
pub use table::{Cell, Table};

/// A report that could not be built or written; the message names the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportError(pub String);

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReportError {}

/// How to build a report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    pub thresholds: Thresholds,
    /// The accuracy budget of the recommendation; default: the run's
    /// (`RunResults::accuracy_budget`), else [`recommend::DEFAULT_BUDGET`].
    pub accuracy_budget: Option<f64>,
    /// Draw the charts (the slow part).
    pub charts: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            thresholds: Thresholds::default(),
            accuracy_budget: None,
            charts: true,
        }
    }
}

/// Everything a report holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub run_id: String,
    pub table1: Table,
    pub table2: Table,
    pub compat: Matrix,
    pub budget: f64,
    pub recommendations: Vec<Recommendation>,
    /// The baseline's run id, when there is one.
    pub baseline: Option<String>,
    pub thresholds: Thresholds,
    pub checks: Vec<Check>,
    pub charts: Vec<Chart>,
    /// The charts were left out on purpose (`Options::charts` false).
    pub charts_skipped: bool,
    pub html: String,
    pub junit: String,
}

/// Counts and failures, for `quantfarm report --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub scenario: String,
    pub baseline: Option<String>,
    pub passed: bool,
    pub rows: usize,
    pub gates_passed: usize,
    pub gates_failed: usize,
    pub gates_no_data: usize,
    pub checks_passed: usize,
    pub checks_failed: usize,
    pub checks_skipped: usize,
    /// The message of every failed gate and check.
    pub failures: Vec<String>,
}

/// Check that a run's numbers make sense before reporting on it (results files can be
/// edited or come from other tools): finite, non-negative measurements, top-1/top-5 in
/// [0, 1], no more ops on the device than in the model. The error says which row.
pub fn check_input(run: &RunResults) -> Result<(), ReportError> {
    for (i, r) in run.rows.iter().enumerate() {
        let at = || {
            format!(
                "row {} ({}/{} on {})",
                i + 1,
                r.model,
                r.technique,
                r.device
            )
        };
        let nums = [
            ("latency_p50_ms", r.latency_p50_ms),
            ("latency_mean_ms", r.latency_mean_ms),
            ("latency_p90_ms", r.latency_p90_ms),
        ];
        for (name, v) in nums {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(ReportError(format!(
                    "{}: {name} {v}: expected a number of milliseconds >= 0",
                    at()
                )));
            }
        }
        for (name, v) in [("top1", r.top1), ("top5", r.top5)] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return Err(ReportError(format!(
                    "{}: {name} {v}: expected a fraction in [0, 1]",
                    at()
                )));
            }
        }
        if let (Some(t), Some(d)) = (r.ops_total, r.ops_on_device)
            && d > t
        {
            return Err(ReportError(format!(
                "{}: ops_on_device {d} > ops_total {t}",
                at()
            )));
        }
    }
    if let Some(b) = run.accuracy_budget
        && !(b.is_finite() && b >= 0.0)
    {
        return Err(ReportError(format!(
            "accuracy_budget {b}: expected a top-1 drop >= 0"
        )));
    }
    Ok(())
}

/// Build the report of `run`. `baseline` is the run its regression checks compare
/// with; `history` holds other runs of the scenario for the trends (runs of other
/// scenarios, later runs and `run` itself are left out of it).
pub fn build(
    run: &RunResults,
    baseline: Option<&RunResults>,
    history: &[RunResults],
    opts: &Options,
) -> Result<Report, ReportError> {
    check_input(run)?;
    if let Some(b) = baseline {
        check_input(b).map_err(|e| ReportError(format!("baseline {}: {e}", b.run_id)))?;
    }
    let budget = opts
        .accuracy_budget
        .or(run.accuracy_budget)
        .unwrap_or(recommend::DEFAULT_BUDGET);
    let mut trend: Vec<&RunResults> = history
        .iter()
        .filter(|h| {
            h.scenario == run.scenario
                && h.run_id != run.run_id
                && !h.cancelled
                && (h.created_unix, &h.run_id) < (run.created_unix, &run.run_id)
                && check_input(h).is_ok()
        })
        .collect();
    trend.sort_by(|a, b| (a.created_unix, &a.run_id).cmp(&(b.created_unix, &b.run_id)));
    trend.push(run);
    let checks = baseline
        .map(|b| compare::compare(run, b, &opts.thresholds))
        .unwrap_or_default();
    let charts = if opts.charts {
        charts::build(run, &trend).map_err(ReportError)?
    } else {
        Vec::new()
    };
    let mut report = Report {
        run_id: run.run_id.clone(),
        table1: table1::build(run),
        table2: table2::build(run),
        compat: compat::build(run),
        budget,
        recommendations: recommend::build(run, budget),
        baseline: baseline.map(|b| b.run_id.clone()),
        thresholds: opts.thresholds,
        junit: junit::junit(run, &checks),
        checks,
        charts,
        charts_skipped: !opts.charts,
        html: String::new(),
    };
    report.html = html::page(run, &report);
    Ok(report)
}

impl Report {
    /// Write the report into `dir` (the run's folder): `table1.md/.csv`,
    /// `table2.md/.csv`, `results.parquet`, `index.html` and `charts/*.png|svg`.
    /// Returns the files written.
    pub fn write(&self, run: &RunResults, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let mut written = Vec::new();
        let mut put = |name: &str, bytes: &[u8]| -> Result<(), ReportError> {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    ReportError(format!("{}: cannot create: {e}", parent.display()))
                })?;
            }
            std::fs::write(&p, bytes)
                .map_err(|e| ReportError(format!("{}: cannot write: {e}", p.display())))?;
            written.push(p);
            Ok(())
        };
        put("table1.md", self.table1.to_markdown().as_bytes())?;
        put("table1.csv", self.table1.to_csv().as_bytes())?;
        put("table2.md", self.table2.to_markdown().as_bytes())?;
        put("table2.csv", self.table2.to_csv().as_bytes())?;
        for c in &self.charts {
            put(&format!("charts/{}.png", c.name), &c.png)?;
            put(&format!("charts/{}.svg", c.name), c.svg.as_bytes())?;
        }
        put("index.html", self.html.as_bytes())?;
        let mut df =
            frames::rows_frame([run]).map_err(|e| ReportError(format!("results frame: {e}")))?;
        let parquet = dir.join("results.parquet");
        frames::write_parquet(&mut df, &parquet).map_err(ReportError)?;
        written.push(parquet);
        Ok(written)
    }

    pub fn summary(&self, run: &RunResults) -> Summary {
        let gate = |s| run.gates.iter().filter(|g| g.status == s).count();
        let check = |s| self.checks.iter().filter(|c| c.status == s).count();
        let mut failures: Vec<String> = run
            .gates
            .iter()
            .filter(|g| g.status == GateStatus::Fail)
            .map(|g| format!("{} gate: {}", g.kind, g.message))
            .collect();
        failures.extend(
            self.checks
                .iter()
                .filter(|c| c.status == CheckStatus::Fail)
                .map(|c| format!("{} regression: {}", c.kind, c.message)),
        );
        Summary {
            run_id: run.run_id.clone(),
            scenario: run.scenario.clone(),
            baseline: self.baseline.clone(),
            passed: failures.is_empty(),
            rows: run.rows.len(),
            gates_passed: gate(GateStatus::Pass),
            gates_failed: gate(GateStatus::Fail),
            gates_no_data: gate(GateStatus::NoData),
            checks_passed: check(CheckStatus::Pass),
            checks_failed: check(CheckStatus::Fail),
            checks_skipped: check(CheckStatus::Skipped),
            failures,
        }
    }
}

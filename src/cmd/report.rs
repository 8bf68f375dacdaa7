//! `quantfarm report RUN_DIR [--baseline RUN_DIR] [--junit FILE] [--json]`: rebuild a
//! run's report from its results.json and check it against a baseline run (default:
//! the latest earlier run of the same scenario beside it). The work is done by
//! `quantfarm-report`; this file reads the arguments, prints and picks the exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use quantfarm_report::{Options, Thresholds, history};
use quantfarm_results::RunResults;

use crate::cli::ReportArgs;

/// Exit code of a failed gate or regression check (2 stays "bad input").
const CHECK_FAILED: u8 = 1;

pub fn run(a: &ReportArgs) -> Result<ExitCode> {
    let thresholds = Thresholds {
        max_latency_regression: fraction(a.max_latency_regression, "--max-latency-regression")?,
        max_top1_drop: fraction(a.max_top1_drop, "--max-top1-drop")?,
        max_size_growth: fraction(a.max_size_growth, "--max-size-growth")?,
    };
    let dir = run_dir(&a.run);
    let run = RunResults::read(&a.run).map_err(|e| anyhow!("{e}"))?;
    // Bad numbers name the file they came from.
    quantfarm_report::check_input(&run).with_context(|| results_file(&a.run))?;
    let earlier = match dir.parent() {
        Some(reports) if !reports.as_os_str().is_empty() => history::earlier_runs(reports, &run),
        _ => history::earlier_runs(Path::new("."), &run),
    };
    let (baseline, why) = match &a.baseline {
        Some(p) => {
            let b = RunResults::read(p).map_err(|e| anyhow!("{e}"))?;
            quantfarm_report::check_input(&b).with_context(|| results_file(p))?;
            (Some(b), "given")
        }
        None => (
            history::previous(&earlier).cloned(),
            "the latest earlier run of the scenario",
        ),
    };
    let opts = Options {
        thresholds,
        accuracy_budget: None,
        charts: !a.no_charts,
    };
    let report = quantfarm_report::build(
        &run,
        baseline.as_ref(),
        history::for_trends(&earlier),
        &opts,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let files = report.write(&run, &dir).map_err(|e| anyhow!("{e}"))?;
    if let Some(j) = &a.junit {
        std::fs::write(j, &report.junit)
            .with_context(|| format!("{}: cannot write", j.display()))?;
    }
    let summary = report.summary(&run);
    if a.json {
        let mut v = serde_json::to_value(&summary)?;
        v["report"] = dir.join("index.html").display().to_string().into();
        v["files"] = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .into();
        v["junit"] = a.junit.as_ref().map(|j| j.display().to_string()).into();
        super::print_json(&v);
    } else {
        outln!(
            "report: {} ({} files)",
            dir.join("index.html").display(),
            files.len()
        );
        match &summary.baseline {
            Some(b) => outln!("baseline: {b} ({why})"),
            None => outln!("baseline: none (no earlier run of '{}' here)", run.scenario),
        }
        outln!(
            "gates: {} passed, {} failed, {} without data",
            summary.gates_passed,
            summary.gates_failed,
            summary.gates_no_data
        );
        if summary.baseline.is_some() {
            outln!(
                "regression checks: {} passed, {} failed, {} not comparable",
                summary.checks_passed,
                summary.checks_failed,
                summary.checks_skipped
            );
        }
        for f in &summary.failures {
            outln!("FAIL {f}");
        }
        if let Some(j) = &a.junit {
            outln!("junit: {}", j.display());
        }
        outln!("{}", if summary.passed { "PASS" } else { "FAIL" });
    }
    Ok(if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    })
}

/// The folder the report goes to: the run folder, or the folder of its results.json.
fn run_dir(p: &Path) -> PathBuf {
    if p.is_dir() {
        return p.to_path_buf();
    }
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn results_file(p: &Path) -> String {
    if p.is_dir() {
        p.join("results.json").display().to_string()
    } else {
        p.display().to_string()
    }
}

fn fraction(v: f64, flag: &str) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(anyhow!("{flag} {v}: expected a number >= 0"))
    }
}

//! `quantfarm run SCENARIO`: run a scenario with the harness library (an embedded
//! coordinator with one local agent per device unless `--coordinator` is given), show
//! progress, print the result rows, and exit non-zero on a failed job or gate.

use anyhow::{Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_harness::{
    Outcome, ResultRow, RunOptions, RunPlan, Target, execute, history, is_terminal, read_token,
    runtime,
};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{JobState, RunStatus};
use quantfarm_scenario::GateStatus;

use crate::cli::RunScenarioArgs;

pub fn run(a: &RunScenarioArgs) -> Result<()> {
    // Everything that can be wrong with the scenario is reported before anything runs.
    let plan = RunPlan::prepare(&RunOptions {
        scenario: a.scenario.clone(),
        profiles: a.profiles.clone(),
        reports: a.reports.clone(),
        run_id: a.run_id.clone(),
    })?;
    let target = match &a.coordinator {
        Some(url) => Target::Remote {
            url: url.clone(),
            token: read_token(a.token_file.as_deref())?,
            tls: ClientTls::load(url, &a.tls.options()).map_err(|e| anyhow!(e))?,
        },
        None => Target::Local {
            threads: a.threads,
            memory_limit: a.memory.bytes(),
        },
    };
    plan.dir.create()?;
    for s in &plan.graph.skipped {
        eprintln!(
            "skipped {}/{} on {}: {}",
            s.model,
            s.technique,
            s.device.as_deref().unwrap_or("any device"),
            s.reason
        );
    }

    let bar = progress_bar(plan.graph.jobs.len(), &plan.scenario.name);
    let rt = runtime()?;
    let status = rt.block_on(async {
        tokio::select! {
            r = execute(&plan, &target, a.wait_secs, |st| show(&bar, st)) => r,
            _ = tokio::signal::ctrl_c() => Err(interrupted(a, &plan)),
        }
    });
    // Do not wait for a local agent's job still running on a blocking thread: its
    // result is not needed (interrupted) or already recorded (finished).
    rt.shutdown_background();
    bar.finish_and_clear();
    let status = status?;

    let previous = history::previous_run(&a.reports, &plan.scenario.name, &plan.run_id);
    let outcome = Outcome::of(&plan, &status, previous.as_ref());
    outcome.results.write_dir(&plan.dir.root)?;
    print_rows(&outcome.results.rows);
    let mut failures = outcome.failed_jobs;
    match write_report(
        &outcome.results,
        previous.as_ref(),
        &a.reports,
        &plan.dir.root,
    ) {
        Ok(line) => outln!("{line}"),
        Err(e) => failures.push(format!("report: {e}")),
    }
    for g in outcome.gates {
        match g.status {
            GateStatus::Pass => outln!("{}", g.message),
            GateStatus::NoData => eprintln!("{}", g.message),
            GateStatus::Fail => failures.push(g.message),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// Tables, charts and index.html beside the results, regression checks against the
/// previous run of the scenario (reported, not failing the run: `quantfarm report`
/// exits on them), trends over the earlier runs.
fn write_report(
    results: &quantfarm_results::RunResults,
    previous: Option<&quantfarm_results::RunResults>,
    reports: &std::path::Path,
    dir: &std::path::Path,
) -> Result<String> {
    use quantfarm_report::{CheckStatus, Options, history};
    let earlier = history::earlier_runs(reports, results);
    let opts = Options::default();
    let report = quantfarm_report::build(results, previous, history::for_trends(&earlier), &opts)
        .map_err(|e| anyhow!("{e}"))?;
    report.write(results, dir).map_err(|e| anyhow!("{e}"))?;
    let mut line = format!("report: {}", dir.join("index.html").display());
    if let Some(b) = &report.baseline {
        let failed = report
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail);
        let failed: Vec<String> = failed
            .map(|c| format!("{} regression: {}", c.kind, c.message))
            .collect();
        line += &format!(" ({} regressions against {b})", failed.len());
        for f in failed {
            eprintln!("{f}");
        }
    }
    Ok(line)
}

/// What an interrupted run left behind, and the command that picks it up again.
fn interrupted(a: &RunScenarioArgs, plan: &RunPlan) -> anyhow::Error {
    let mut resume = format!(
        "quantfarm run {} --run-id {}",
        a.scenario.display(),
        plan.run_id
    );
    if a.reports != std::path::Path::new("reports") {
        resume += &format!(" --reports {}", a.reports.display());
    }
    match &a.coordinator {
        None => anyhow!(
            "interrupted: finished jobs are kept in {}; resume with `{resume}`",
            plan.dir.state().display()
        ),
        Some(url) => anyhow!(
            "interrupted: the run goes on at {url}; follow it with `quantfarm status {} --watch \
             --coordinator {url}` or collect it with `{resume} --coordinator {url}`",
            plan.run_id
        ),
    }
}

fn progress_bar(jobs: usize, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(jobs as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} jobs {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}

/// Jobs done, and the running ones with their progress.
fn show(bar: &ProgressBar, st: &RunStatus) {
    let done = st.jobs.iter().filter(|j| is_terminal(j.state)).count();
    bar.set_position(done as u64);
    let running: Vec<String> = st
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Running as i32)
        .map(|j| {
            let id = j.spec.as_ref().map(|s| s.id.as_str()).unwrap_or("");
            let short = id.split_once('/').map(|x| x.1).unwrap_or(id);
            format!("{short} {:.0}%", 100.0 * j.progress)
        })
        .collect();
    bar.set_message(running.join(", "));
}

fn print_rows(rows: &[ResultRow]) {
    outln!(
        "{:<28} {:<11} {:<16} {:>10} {:>10} {:<9} {:>6} {:>6} {:>7}  status",
        "model",
        "technique",
        "device",
        "size",
        "p50 ms",
        "latency",
        "top1",
        "top5",
        "mapped"
    );
    let num = |v: Option<f64>, scale: f64, prec: usize| {
        v.map(|x| format!("{:.prec$}", x * scale))
            .unwrap_or_else(|| "-".into())
    };
    for r in rows {
        // Every latency says whether it was timed here or predicted by a simulator.
        let kind = r.latency_kind.map_or("-", |k| k.name());
        let mapped = match (r.ops_on_device, r.ops_total, &r.mapping_refused) {
            (_, _, Some(_)) => "refused".to_string(),
            (Some(on), Some(total), None) => format!("{on}/{total}"),
            _ => "-".to_string(),
        };
        outln!(
            "{:<28} {:<11} {:<16} {:>10} {:>10} {:<9} {:>6} {:>6} {:>7}  {}",
            r.model,
            r.technique,
            r.device,
            num(r.size_bytes.map(|s| s as f64), 1.0, 0),
            num(r.latency_p50_ms, 1.0, 3),
            kind,
            num(r.top1, 100.0, 1),
            num(r.top5, 100.0, 1),
            mapped,
            r.status.name()
        );
    }
    if rows
        .iter()
        .any(|r| r.latency_kind == Some(quantfarm_harness::LatencyKind::Predicted))
    {
        outln!(
            "predicted latencies come from the device simulators' models (docs/devices.md), \
             not from timing on this host"
        );
    }
}

//! quantfarm's harness: running a scenario end to end, as a library.
//!
//! ```text
//! RunPlan::prepare (scenario → validated job graph, model files, run folder)
//!   → execute (embedded LocalFarm or a remote coordinator: upload, submit, watch)
//!   → collect (job results → typed RunResults) → RunResults::write_dir
//!   → measurements → the scenario's gates
//! ```
//!
//! The CLI (`quantfarm run`, `status`, `cancel`, `agent`, `coordinator`) only parses
//! arguments, shows progress and maps outcomes to exit codes; everything else is here.

pub mod client;
pub mod collect;
pub mod farm;
pub mod history;
pub mod plan;
pub mod rundir;
pub mod watch;
pub mod wire;

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use quantfarm_agent::artifact;
use quantfarm_proto::auth::call_error;
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{ListRunsRequest, RunStatus, SubmitRunRequest};
pub use quantfarm_results::{
    GateRecord, GateStatus, LatencyKind, ResultRow, RowStatus, RunResults,
};
use quantfarm_scenario::{GateOutcome, Results};

pub use client::{
    connect_retrying, is_terminal, job_state_name, read_token, result_metrics, runtime,
    token_warnings,
};
pub use collect::{collect, measurements};
pub use farm::LocalFarm;
pub use plan::{RunOptions, RunPlan};
pub use rundir::RunDir;

/// Where a run's jobs go.
pub enum Target {
    /// An embedded coordinator on loopback with one agent per device of the scenario;
    /// `threads` engine threads per job that does not set its own, each job within
    /// `memory_limit` bytes.
    Local { threads: usize, memory_limit: u64 },
    /// A remote coordinator and its agents.
    Remote {
        url: String,
        token: String,
        tls: ClientTls,
    },
}

/// Run `plan` on `target` until it finishes: start the local farm if asked, upload the
/// model files, submit the job graph (resubmitting an existing run id is a no-op, so
/// this also resumes), and follow the run. `observe` sees every status update.
/// `wait_secs` bounds how long a lost coordinator is waited for.
pub async fn execute(
    plan: &RunPlan,
    target: &Target,
    wait_secs: u64,
    observe: impl FnMut(&RunStatus),
) -> Result<RunStatus> {
    let (mut farm, url, token, tls) = match target {
        Target::Local {
            threads,
            memory_limit,
        } => {
            let farm = LocalFarm::start(
                &plan.dir,
                &plan.profiles,
                &plan.devices(),
                *threads,
                *memory_limit,
            )
            .await?;
            let (url, token) = (farm.url.clone(), farm.token.clone());
            (Some(farm), url, token, ClientTls::plain())
        }
        Target::Remote { url, token, tls } => (None, url.clone(), token.clone(), tls.clone()),
    };
    let mut client = connect_retrying(&url, &token, &tls, wait_secs.min(30)).await?;
    if matches!(target, Target::Remote { .. }) {
        // One cheap call first: a refused token or client certificate shows here as
        // itself, not as a failed upload.
        client
            .list_runs(ListRunsRequest {})
            .await
            .map_err(|e| anyhow!(call_error(&url, &tls, &e)))?;
    }
    let mut digests = BTreeMap::new();
    for (path, bytes) in &plan.files {
        let d = artifact::upload(&mut client, bytes.clone())
            .await
            .with_context(|| format!("{}: upload", path.display()))?;
        digests.insert(path.clone(), d);
    }
    let submit = SubmitRunRequest {
        run_id: plan.run_id.clone(),
        name: plan.scenario.name.clone(),
        jobs: wire::to_wire(&plan.run_id, &plan.graph, &digests)?,
        scenario_yaml: plan.text.clone(),
    };
    client
        .submit_run(submit.clone())
        .await
        .map_err(|e| anyhow!(call_error(&url, &tls, &e)))
        .context("submit the run")?;
    let follow = watch::watch(&url, &token, &tls, client, &submit, wait_secs, observe);
    match farm.as_mut() {
        // The embedded farm's agents serve until the end; one that stops (an error it
        // cannot retry) would leave its jobs waiting forever.
        Some(farm) => tokio::select! {
            st = follow => st,
            why = farm.stopped() => Err(why),
        },
        None => follow.await,
    }
}

/// The scenario's accuracy budget, which reports recommend techniques within: the
/// tightest `max_top1_drop` gate against a float32 technique that applies to every
/// technique (no `technique:` filter), else the tightest such gate of any technique;
/// `None` without one.
pub fn accuracy_budget(scenario: &quantfarm_scenario::Scenario) -> Option<f64> {
    use quantfarm_scenario::{Baseline, GateKind, Technique};
    let against_float = |g: &&quantfarm_scenario::Gate| match &g.kind {
        GateKind::MaxTop1Drop {
            baseline: Baseline::Technique(label),
            ..
        } => scenario
            .technique(label)
            .is_some_and(|t| t.technique.value == Technique::Float32),
        _ => false,
    };
    let max = |g: &quantfarm_scenario::Gate| match g.kind {
        GateKind::MaxTop1Drop { max, .. } => max,
        _ => f64::INFINITY,
    };
    let gates: Vec<&quantfarm_scenario::Gate> =
        scenario.gates.iter().filter(against_float).collect();
    let general = gates
        .iter()
        .filter(|g| g.technique.is_none())
        .map(|g| max(g));
    general
        .reduce(f64::min)
        .or_else(|| gates.iter().map(|g| max(g)).reduce(f64::min))
}

/// What a finished run amounts to: its typed results, the failed jobs and the gates.
pub struct Outcome {
    pub results: RunResults,
    /// `job <id> <state>: <error>` for every job that did not succeed.
    pub failed_jobs: Vec<String>,
    pub gates: Vec<GateOutcome>,
}

impl Outcome {
    /// Collect `status` into results and check the scenario's gates on them;
    /// `previous` (an earlier run of the same scenario) is the baseline of
    /// `baseline: previous` gates.
    pub fn of(plan: &RunPlan, status: &RunStatus, previous: Option<&RunResults>) -> Outcome {
        let mut results = collect(status, &plan.graph, &plan.run_id);
        results.created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        results.host = history::host_cpu();
        results.previous_run = previous.map(|p| p.run_id.clone());
        results.accuracy_budget = accuracy_budget(&plan.scenario);
        let failed_jobs = status
            .jobs
            .iter()
            .filter(|j| j.state != quantfarm_proto::v1::JobState::Succeeded as i32)
            .map(|j| {
                format!(
                    "job {} {}: {}",
                    j.spec.as_ref().map(|s| s.id.as_str()).unwrap_or(""),
                    job_state_name(j.state),
                    j.result.as_ref().map(|r| r.error.as_str()).unwrap_or("")
                )
            })
            .collect();
        let observed = Results {
            measurements: measurements(&results),
            previous: previous.map(measurements).unwrap_or_default(),
        };
        let gates = quantfarm_scenario::check_all(&plan.scenario.gates, &observed);
        results.gates = plan
            .scenario
            .gates
            .iter()
            .zip(&gates)
            .map(|(g, o)| GateRecord {
                name: g.name.clone(),
                kind: g.kind.name().to_string(),
                status: match o.status {
                    quantfarm_scenario::GateStatus::Pass => GateStatus::Pass,
                    quantfarm_scenario::GateStatus::Fail => GateStatus::Fail,
                    quantfarm_scenario::GateStatus::NoData => GateStatus::NoData,
                },
                message: o.message.clone(),
            })
            .collect();
        Outcome {
            results,
            failed_jobs,
            gates,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn accuracy_budget_comes_from_the_top1_gates_against_float32() {
        let text = "name: t\nmodels: [{name: m, zoo: mobilenet_v1}]\n\
            techniques: [{technique: float32}, {technique: float32, label: f2}, \
            {technique: dynamic}, {technique: int8, calibration: {dataset: imagenet-sample, limit: 4}}]\n\
            devices: [cpu-host]\naccuracy: {dataset: imagenet-sample, offset: 100, limit: 10}\ngates:\n\
            - {name: a, technique: int8, max_top1_drop: 0.05}\n\
            - {name: b, technique: dynamic, max_top1_drop: 0.02, baseline: f2}\n\
            - {name: c, technique: int8, max_top1_drop: 0.001, baseline: dynamic}\n\
            - {name: d, technique: int8, max_top1_drop: 0.0001, baseline: previous}\n";
        let s = quantfarm_scenario::parse(text, "t.yaml").unwrap();
        assert_eq!(super::accuracy_budget(&s), Some(0.02));
        // A gate over every technique sets the budget, even when looser.
        let general = format!("{text}- {{name: e, max_top1_drop: 0.03}}\n");
        let s = quantfarm_scenario::parse(&general, "t.yaml").unwrap();
        assert_eq!(super::accuracy_budget(&s), Some(0.03));
        let none = quantfarm_scenario::parse(
            "name: t\nmodels: [{name: m, zoo: mobilenet_v1}]\ntechniques: [{technique: float32}]\ndevices: [cpu-host]\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(super::accuracy_budget(&none), None);
    }
}

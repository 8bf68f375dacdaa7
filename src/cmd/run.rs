//! `quantfarm run SCENARIO`: expand a scenario into jobs, run them on a coordinator
//! (an embedded one with one local agent per device unless `--coordinator` is given),
//! and write `reports/<run-id>/results.{csv,json}`.

mod scenario;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_agent::{AgentConfig, artifact, jobs::TECHNIQUES, run_agent};
use quantfarm_coordinator::{Config, Coordinator, random_token};
use quantfarm_proto::auth::{Client, connect};
use quantfarm_proto::v1::{GetRunRequest, JobSpec, JobState, RunStatus, SubmitRunRequest};
use serde_json::{Value, json};

use crate::cli::RunScenarioArgs;

/// Token for talking to a remote coordinator: `--token-file`, else `QUANTFARM_TOKEN`.
pub fn read_token(file: Option<&Path>) -> Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read token file", f.display()))?
            .trim()
            .to_string(),
        None => std::env::var("QUANTFARM_TOKEN").unwrap_or_default(),
    };
    if token.is_empty() {
        bail!("no token: pass --token-file FILE or set QUANTFARM_TOKEN");
    }
    Ok(token)
}

/// A runtime for the network commands (the engine itself never sees it).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `name-YYYYMMDD-HHMMSS-pid`, unique enough for one machine and sortable.
fn run_id(name: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{name}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    )
}

pub fn run(a: &RunScenarioArgs) -> Result<()> {
    // Everything that can be wrong with the scenario is reported before anything runs.
    let (sc, text) = scenario::load(&a.scenario, TECHNIQUES)?;
    let mut models = Vec::new();
    for m in &sc.models {
        let p = scenario::model_path(&a.scenario, m)?;
        let bytes = std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        models.push((m.name.clone(), bytes));
    }
    let remote_token = match &a.coordinator {
        Some(_) => Some(read_token(a.token_file.as_deref())?),
        None => None,
    };
    let id = a.run_id.clone().unwrap_or_else(|| run_id(&sc.name));
    let dir = a.reports.join(&id);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;

    let rt = runtime()?;
    let status = rt.block_on(async {
        let (url, token, _local) = match (&a.coordinator, remote_token) {
            (Some(url), Some(token)) => (url.clone(), token, None),
            _ => {
                let local = start_local(&dir, &sc.devices, a.threads).await?;
                (local.url.clone(), local.token.clone(), Some(local))
            }
        };
        let mut client = connect_retrying(&url, &token, a.wait_secs.min(30)).await?;
        let mut digests = BTreeMap::new();
        for (name, bytes) in models {
            let d = artifact::upload(&mut client, bytes)
                .await
                .with_context(|| format!("model {name}: upload"))?;
            digests.insert(name, d);
        }
        let jobs = expand(&id, &sc, &digests);
        let req = SubmitRunRequest {
            run_id: id.clone(),
            name: sc.name.clone(),
            jobs,
            scenario_yaml: text,
        };
        client
            .submit_run(req.clone())
            .await
            .context("submit the run")?;
        watch(&url, &token, client, req, a.wait_secs).await
    })?;
    drop(rt);

    let rows = rows(&status);
    write_reports(&dir, &status, &rows)?;
    print_rows(&rows);
    println!("report: {}", dir.display());
    let mut failures = Vec::new();
    for r in &rows {
        if r["status"] != "succeeded" {
            failures.push(format!(
                "job {} {}: {}",
                r["job"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
                r["error"].as_str().unwrap_or("")
            ));
        }
    }
    failures.extend(check_gates(&sc.gates, &rows));
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

struct Local {
    url: String,
    token: String,
    _server: tokio::task::JoinHandle<Result<()>>,
    _agents: Vec<tokio::task::JoinHandle<Result<()>>>,
}

/// Embedded coordinator on loopback plus one agent per device.
async fn start_local(dir: &Path, devices: &[String], threads: usize) -> Result<Local> {
    let token = random_token()?;
    let cfg = Config::new(
        dir.join("coordinator.db"),
        dir.join("artifacts"),
        token.clone(),
    );
    let coord = Coordinator::open(cfg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot listen on loopback")?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(coord.serve(listener, std::future::pending()));
    let mut agents = Vec::new();
    for d in devices {
        let mut cfg = AgentConfig::new(&url, &token, &format!("local-{d}"), d, dir.join("cache"));
        cfg.threads = threads;
        agents.push(tokio::spawn(run_agent(cfg)));
    }
    Ok(Local {
        url,
        token,
        _server: server,
        _agents: agents,
    })
}

/// Dial, retrying for `secs` (a coordinator may be starting or restarting).
async fn connect_retrying(url: &str, token: &str, secs: u64) -> Result<Client> {
    let t = Instant::now();
    loop {
        match connect(url, token).await {
            Ok(c) => return Ok(c),
            Err(e) if t.elapsed() >= Duration::from_secs(secs) => return Err(anyhow!(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Optimize jobs (model × technique) feeding benchmark jobs (× device).
fn expand(run: &str, sc: &scenario::Scenario, digests: &BTreeMap<String, String>) -> Vec<JobSpec> {
    let mut jobs = Vec::new();
    for m in &sc.models {
        for t in &sc.techniques {
            let opt = format!("{run}/optimize/{}/{t}", m.name);
            let mut params: BTreeMap<String, String> = BTreeMap::new();
            params.insert("technique".into(), t.clone());
            params.insert("model".into(), m.name.clone());
            jobs.push(JobSpec {
                id: opt.clone(),
                kind: "optimize".into(),
                requires: "optimize".into(),
                model_digest: digests[&m.name].clone(),
                params: params.clone().into_iter().collect(),
                ..Default::default()
            });
            for d in &sc.devices {
                let mut p = params.clone();
                p.insert("device".into(), d.clone());
                p.insert("warmup".into(), sc.bench.warmup.to_string());
                p.insert("runs".into(), sc.bench.runs.to_string());
                if let Some(ds) = &sc.dataset {
                    p.insert("dataset".into(), ds.clone());
                    p.insert("limit".into(), sc.limit.to_string());
                }
                jobs.push(JobSpec {
                    id: format!("{run}/benchmark/{}/{t}/{d}", m.name),
                    kind: "benchmark".into(),
                    requires: d.clone(),
                    depends_on: vec![opt.clone()],
                    input_from: opt.clone(),
                    params: p.into_iter().collect(),
                    ..Default::default()
                });
            }
        }
    }
    jobs
}

/// Poll until the run finishes, riding out coordinator restarts for `wait_secs`.
async fn watch(
    url: &str,
    token: &str,
    mut client: Client,
    submit: SubmitRunRequest,
    wait_secs: u64,
) -> Result<RunStatus> {
    let bar = ProgressBar::new(submit.jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} jobs {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(submit.name.clone());
    let mut last_ok = Instant::now();
    let status = loop {
        match client
            .get_run(GetRunRequest {
                run_id: submit.run_id.clone(),
            })
            .await
        {
            Ok(r) => {
                last_ok = Instant::now();
                let st = r.into_inner();
                let done = st.jobs.iter().filter(|j| terminal(j.state)).count();
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
                if st.finished {
                    break st;
                }
            }
            Err(e) if e.code() == tonic::Code::Unauthenticated => {
                bar.finish_and_clear();
                bail!("coordinator refused the token: {}", e.message());
            }
            Err(e) => {
                if last_ok.elapsed() > Duration::from_secs(wait_secs) {
                    bar.finish_and_clear();
                    bail!("lost the coordinator for {wait_secs} s: {}", e.message());
                }
                // Reconnect; resubmitting is a no-op when the run survived.
                if let Ok(mut c) = connect(url, token).await {
                    if e.code() == tonic::Code::NotFound {
                        let _ = c.submit_run(submit.clone()).await;
                    }
                    client = c;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    bar.finish_and_clear();
    Ok(status)
}

fn terminal(state: i32) -> bool {
    [JobState::Succeeded, JobState::Failed, JobState::Cancelled]
        .iter()
        .any(|s| *s as i32 == state)
}

fn state_name(state: i32) -> &'static str {
    match JobState::try_from(state).unwrap_or(JobState::Unspecified) {
        JobState::Unspecified => "unknown",
        JobState::Pending => "pending",
        JobState::Ready => "ready",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// Metric columns of the results table, in order.
const METRICS: &[&str] = &[
    "size_bytes",
    "latency_p50_ms",
    "latency_mean_ms",
    "latency_p90_ms",
    "top1",
    "top5",
    "eval_images",
];

/// One row per benchmark job (plus failed optimize jobs, so no failure is hidden).
fn rows(st: &RunStatus) -> Vec<Value> {
    let mut out = Vec::new();
    for j in &st.jobs {
        let Some(spec) = &j.spec else { continue };
        if spec.kind == "optimize" && j.state == JobState::Succeeded as i32 {
            continue;
        }
        let p = |k: &str| spec.params.get(k).cloned().unwrap_or_default();
        let mut row = json!({
            "job": spec.id,
            "kind": spec.kind,
            "model": p("model"),
            "technique": p("technique"),
            "device": p("device"),
            "status": state_name(j.state),
            "attempts": j.attempts,
            "agent": j.agent,
            "error": j.result.as_ref().map(|r| r.error.clone()).unwrap_or_default(),
        });
        if let Some(r) = &j.result {
            for m in METRICS {
                if let Some(v) = r.metrics.get(*m) {
                    row[*m] = json!(v);
                }
            }
        }
        out.push(row);
    }
    out
}

fn write_reports(dir: &Path, st: &RunStatus, rows: &[Value]) -> Result<()> {
    let cols: Vec<&str> = ["job", "model", "technique", "device", "status"]
        .into_iter()
        .chain(METRICS.iter().copied())
        .chain(["attempts", "agent", "error"])
        .collect();
    let mut csv = cols.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match &r[*c] {
                Value::Null => String::new(),
                Value::String(s) => csv_cell(s),
                // Whole numbers (sizes, counts) without a trailing ".0".
                Value::Number(n) => match n.as_f64() {
                    Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => format!("{}", x as i64),
                    _ => n.to_string(),
                },
                v => v.to_string(),
            })
            .collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    let p = dir.join("results.csv");
    std::fs::write(&p, csv).with_context(|| format!("{}: cannot write", p.display()))?;
    let doc = json!({
        "run_id": st.run_id,
        "scenario": st.name,
        "cancelled": st.cancelled,
        "rows": rows,
    });
    let p = dir.join("results.json");
    std::fs::write(&p, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("{}: cannot write", p.display()))?;
    Ok(())
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_rows(rows: &[Value]) {
    println!(
        "{:<28} {:<11} {:<12} {:>10} {:>9} {:>9} {:>7} {:>7}  status",
        "model", "technique", "device", "size", "p50 ms", "mean ms", "top1", "top5"
    );
    let num = |v: &Value, scale: f64, prec: usize| {
        v.as_f64()
            .map(|x| format!("{:.prec$}", x * scale))
            .unwrap_or_else(|| "-".into())
    };
    for r in rows {
        println!(
            "{:<28} {:<11} {:<12} {:>10} {:>9} {:>9} {:>7} {:>7}  {}",
            r["model"].as_str().unwrap_or(""),
            r["technique"].as_str().unwrap_or(""),
            r["device"].as_str().unwrap_or(""),
            num(&r["size_bytes"], 1.0, 0),
            num(&r["latency_p50_ms"], 1.0, 3),
            num(&r["latency_mean_ms"], 1.0, 3),
            num(&r["top1"], 100.0, 1),
            num(&r["top5"], 100.0, 1),
            r["status"].as_str().unwrap_or("")
        );
    }
}

/// Messages for every breached gate (a gate that selects no value is breached too:
/// a gate must not pass because its metric went missing).
fn check_gates(gates: &[scenario::Gate], rows: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for g in gates {
        let matches = |r: &&Value| {
            r["kind"] == "benchmark"
                && g.model.as_ref().is_none_or(|m| r["model"] == m.as_str())
                && g.technique
                    .as_ref()
                    .is_none_or(|t| r["technique"] == t.as_str())
                && g.device.as_ref().is_none_or(|d| r["device"] == d.as_str())
        };
        let selected: Vec<&Value> = rows.iter().filter(matches).collect();
        if selected.is_empty() {
            out.push(format!(
                "gate {:?} breached: no benchmark row matches it",
                g.name
            ));
            continue;
        }
        for r in selected {
            let label = format!(
                "{}/{}/{}",
                r["model"].as_str().unwrap_or(""),
                r["technique"].as_str().unwrap_or(""),
                r["device"].as_str().unwrap_or("")
            );
            match r[g.metric.as_str()].as_f64() {
                None => out.push(format!(
                    "gate {:?} breached: {label} has no {}",
                    g.name, g.metric
                )),
                Some(v) => {
                    if let Some(min) = g.min
                        && v < min
                    {
                        out.push(format!(
                            "gate {:?} breached: {label} {} = {v} < min {min}",
                            g.name, g.metric
                        ));
                    }
                    if let Some(max) = g.max
                        && v > max
                    {
                        out.push(format!(
                            "gate {:?} breached: {label} {} = {v} > max {max}",
                            g.name, g.metric
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Used by `status`: a readable state name.
pub fn job_state_name(state: i32) -> &'static str {
    state_name(state)
}

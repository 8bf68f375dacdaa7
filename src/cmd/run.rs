//! `quantfarm run SCENARIO`: expand a scenario into jobs (`quantfarm-scenario`), run
//! them on a coordinator (an embedded one with one local agent per device unless
//! `--coordinator` is given), write `reports/<run-id>/results.{csv,json}` and check
//! the scenario's gates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use quantfarm_agent::{AgentConfig, artifact, run_agent};
use quantfarm_coordinator::{Config, Coordinator, random_token};
use quantfarm_proto::auth::{Client, call_error, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{
    GetRunRequest, JobSpec, JobState, ListRunsRequest, RunStatus, SubmitRunRequest,
};
use quantfarm_scenario::{
    self as scenario, GateStatus, JobGraph, Measurement, Metric, ModelSource, Observed, ProfileSet,
    Results,
};
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

/// `--profiles`, else `agents/profiles` in the current folder, else the one beside the
/// scenario's folder (`scenarios/x.yaml` → `agents/profiles`), so a run started from
/// elsewhere in or outside the repository finds the shipped profiles.
fn profiles_dir(a: &RunScenarioArgs) -> PathBuf {
    const DEFAULT: &str = "agents/profiles";
    if let Some(p) = &a.profiles {
        return p.clone();
    }
    let beside_scenario = a
        .scenario
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .and_then(|d| d.parent().map(|root| root.join(DEFAULT)));
    match beside_scenario {
        Some(p) if !Path::new(DEFAULT).is_dir() && p.is_dir() => p,
        _ => PathBuf::from(DEFAULT),
    }
}

pub fn run(a: &RunScenarioArgs) -> Result<()> {
    // Everything that can be wrong with the scenario is reported before anything runs.
    let profiles = ProfileSet::load_dir(profiles_dir(a)).map_err(|e| anyhow!("{e}"))?;
    let sc = scenario::load(&a.scenario).map_err(|e| anyhow!("{e}"))?;
    let graph = scenario::expand(&sc, &profiles).map_err(|e| anyhow!("{e}"))?;
    let text = std::fs::read_to_string(&a.scenario).unwrap_or_default();
    // Model files, read once each.
    let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    for j in graph.optimize_jobs() {
        if let scenario::JobSpec::Optimize { model, .. } = &j.spec
            && let ModelSource::File { resolved, .. } | ModelSource::Dequantize { resolved, .. } =
                &model.source
            && !files.contains_key(resolved)
        {
            let bytes = std::fs::read(resolved)
                .with_context(|| format!("{}: cannot read", resolved.display()))?;
            files.insert(resolved.clone(), bytes);
        }
    }
    let remote = match &a.coordinator {
        Some(url) => Some((
            read_token(a.token_file.as_deref())?,
            ClientTls::load(url, &a.tls.options()).map_err(|e| anyhow!(e))?,
        )),
        None => None,
    };
    let devices: Vec<String> = sc.devices.iter().map(|d| d.value.clone()).collect();
    let id = a.run_id.clone().unwrap_or_else(|| run_id(&sc.name));
    let dir = a.reports.join(&id);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    for s in &graph.skipped {
        eprintln!(
            "skipped {}/{} on {}: {}",
            s.model,
            s.technique,
            s.device.as_deref().unwrap_or("any device"),
            s.reason
        );
    }

    let rt = runtime()?;
    let status = rt.block_on(async {
        let (url, token, tls, _local) = match (&a.coordinator, remote) {
            (Some(url), Some((token, tls))) => (url.clone(), token, tls, None),
            _ => {
                let local = start_local(&dir, &devices, a.threads).await?;
                let (url, token) = (local.url.clone(), local.token.clone());
                (url, token, ClientTls::plain(), Some(local))
            }
        };
        let mut client = connect_retrying(&url, &token, &tls, a.wait_secs.min(30)).await?;
        if a.coordinator.is_some() {
            // One cheap call first: a refused token or client certificate shows here as
            // itself, not as a failed upload.
            client
                .list_runs(ListRunsRequest {})
                .await
                .map_err(|e| anyhow!(call_error(&url, &tls, &e)))?;
        }
        let mut digests = BTreeMap::new();
        for (path, bytes) in files {
            let d = artifact::upload(&mut client, bytes)
                .await
                .with_context(|| format!("{}: upload", path.display()))?;
            digests.insert(path, d);
        }
        let jobs = to_wire(&id, &graph, &digests);
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
        watch(&url, &token, &tls, client, req, a.wait_secs).await
    })?;
    drop(rt);

    let (rows, measurements) = rows(&status, &graph, &id);
    write_reports(&dir, &status, &rows)?;
    print_rows(&rows);
    println!("report: {}", dir.display());
    let mut failures = Vec::new();
    for j in &status.jobs {
        if j.state != JobState::Succeeded as i32 {
            failures.push(format!(
                "job {} {}: {}",
                j.spec.as_ref().map(|s| s.id.as_str()).unwrap_or(""),
                state_name(j.state),
                j.result.as_ref().map(|r| r.error.as_str()).unwrap_or("")
            ));
        }
    }
    let results = Results {
        measurements,
        previous: Vec::new(),
    };
    for outcome in scenario::check_all(&sc.gates, &results) {
        match outcome.status {
            GateStatus::Pass => println!("{}", outcome.message),
            GateStatus::NoData => eprintln!("{}", outcome.message),
            GateStatus::Fail => failures.push(outcome.message),
        }
    }
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
        // One cache per agent: they would race on the same files otherwise.
        let mut cfg = AgentConfig::new(
            &url,
            &token,
            &format!("local-{d}"),
            d,
            dir.join(format!("cache-{d}")),
        );
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
async fn connect_retrying(url: &str, token: &str, tls: &ClientTls, secs: u64) -> Result<Client> {
    let t = Instant::now();
    loop {
        match connect_tls(url, token, tls).await {
            Ok(c) => return Ok(c),
            Err(e) if t.elapsed() >= Duration::from_secs(secs) => return Err(anyhow!(e)),
            // An untrusted certificate will not get better by waiting.
            Err(e) if e.contains("invalid peer certificate") => return Err(anyhow!(e)),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The scenario's job graph as wire jobs: ids prefixed by the run id, parameters as
/// strings (the agent protocol does not depend on the scenario crate's types).
fn to_wire(run: &str, graph: &JobGraph, digests: &BTreeMap<PathBuf, String>) -> Vec<JobSpec> {
    let wid = |id: &scenario::JobId| format!("{run}/{id}");
    graph
        .jobs
        .iter()
        .map(|j| {
            let mut p: BTreeMap<String, String> = BTreeMap::new();
            let mut w = JobSpec {
                id: wid(&j.id),
                depends_on: j.deps.iter().map(wid).collect(),
                requires: j.required_device().unwrap_or("optimize").to_string(),
                ..Default::default()
            };
            match &j.spec {
                scenario::JobSpec::Optimize {
                    model,
                    technique,
                    label,
                    calibration,
                } => {
                    w.kind = "optimize".into();
                    p.insert("model".into(), model.name.clone());
                    p.insert("technique".into(), technique.name().into());
                    p.insert("label".into(), label.clone());
                    if let Some(c) = calibration {
                        p.insert("calibration_dataset".into(), c.dataset.clone());
                        p.insert("calibration_offset".into(), c.offset.to_string());
                        p.insert("calibration_limit".into(), c.limit.to_string());
                        let method = match c.method {
                            scenario::CalibrationMethod::MinMax => "minmax".to_string(),
                            scenario::CalibrationMethod::Percentile(q) => format!("percentile:{q}"),
                        };
                        p.insert("calibration_method".into(), method);
                    }
                    match &model.source {
                        ModelSource::File { resolved, .. } => {
                            p.insert("source".into(), "file".into());
                            w.model_digest = digests[resolved].clone();
                        }
                        ModelSource::Dequantize { resolved, .. } => {
                            p.insert("source".into(), "dequantize".into());
                            w.model_digest = digests[resolved].clone();
                        }
                        ModelSource::Zoo {
                            arch,
                            width,
                            resolution,
                            seed,
                        } => {
                            p.insert("source".into(), "zoo".into());
                            p.insert("arch".into(), arch.clone());
                            p.insert("width".into(), width.to_string());
                            p.insert("resolution".into(), resolution.to_string());
                            p.insert("seed".into(), seed.to_string());
                        }
                    }
                }
                scenario::JobSpec::Benchmark {
                    artifact_of,
                    device,
                    metric,
                } => {
                    w.input_from = wid(artifact_of);
                    if let Some((model, label, _)) = graph.measurement_key(j) {
                        p.insert("model".into(), model);
                        p.insert("label".into(), label);
                    }
                    p.insert("device".into(), device.clone().unwrap_or_default());
                    p.insert("metric".into(), metric.name().into());
                    match metric {
                        Metric::Latency {
                            warmup,
                            runs,
                            threads,
                        } => {
                            w.kind = "benchmark".into();
                            p.insert("warmup".into(), warmup.to_string());
                            p.insert("runs".into(), runs.to_string());
                            p.insert("threads".into(), threads.to_string());
                        }
                        Metric::Accuracy {
                            dataset,
                            offset,
                            limit,
                        } => {
                            w.kind = "benchmark".into();
                            p.insert("runs".into(), "0".into());
                            p.insert("dataset".into(), dataset.clone());
                            p.insert("offset".into(), offset.to_string());
                            if let Some(l) = limit {
                                p.insert("limit".into(), l.to_string());
                            }
                        }
                        Metric::Size => w.kind = "size".into(),
                        Metric::Mapping => w.kind = "mapping".into(),
                    }
                }
            }
            w.params = p.into_iter().collect();
            w
        })
        .collect()
}

/// Follow the run's status stream until it finishes, riding out coordinator restarts
/// for `wait_secs` (reconnect, resubmit if the run was lost, watch again).
async fn watch(
    url: &str,
    token: &str,
    tls: &ClientTls,
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
    let request = GetRunRequest {
        run_id: submit.run_id.clone(),
    };
    let mut last_ok = Instant::now();
    let status = 'outer: loop {
        let err = match client.watch_run(request.clone()).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(st)) => {
                            last_ok = Instant::now();
                            show(&bar, &st);
                            if st.finished {
                                break 'outer st;
                            }
                        }
                        // The coordinator ended the stream early (shutting down).
                        Ok(None) => break tonic::Status::unavailable("status stream ended"),
                        Err(e) => break e,
                    }
                }
            }
            Err(e) => e,
        };
        if err.code() == tonic::Code::Unauthenticated {
            bar.finish_and_clear();
            bail!("coordinator refused the token: {}", err.message());
        }
        if last_ok.elapsed() > Duration::from_secs(wait_secs) {
            bar.finish_and_clear();
            bail!("lost the coordinator for {wait_secs} s: {}", err.message());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Reconnect; resubmitting is a no-op when the run survived.
        if let Ok(mut c) = connect_tls(url, token, tls).await {
            if err.code() == tonic::Code::NotFound {
                let _ = c.submit_run(submit.clone()).await;
            }
            client = c;
        }
    };
    bar.finish_and_clear();
    Ok(status)
}

/// Jobs done, and the running ones with their progress.
fn show(bar: &ProgressBar, st: &RunStatus) {
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

/// One row per (model, technique, device) with the metrics of its benchmark jobs
/// merged (size, being device-independent, goes into every row of its artifact), and
/// the measurements the gates check.
fn rows(st: &RunStatus, graph: &JobGraph, run: &str) -> (Vec<Value>, Vec<Measurement>) {
    let by_id: BTreeMap<String, &scenario::Job> = graph
        .jobs
        .iter()
        .map(|j| (format!("{run}/{}", j.id), j))
        .collect();
    let mut table: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    let mut sizes: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut measurements = Vec::new();
    for js in &st.jobs {
        let Some(spec) = &js.spec else { continue };
        let Some(job) = by_id.get(&spec.id) else {
            continue;
        };
        let Some((model, label, device)) = graph.measurement_key(job) else {
            continue;
        };
        let metrics = js.result.as_ref().map(|r| &r.metrics);
        let ok = js.state == JobState::Succeeded as i32;
        let get = |k: &str| metrics.and_then(|m| m.get(k)).copied();
        let dev = device.clone().unwrap_or_default();
        if ok {
            let value = match spec.kind.as_str() {
                "size" => get("size_bytes").map(|v| Observed::SizeBytes(v as u64)),
                _ if spec.params.get("metric").map(String::as_str) == Some("accuracy") => {
                    get("top1").map(Observed::Top1)
                }
                "benchmark" => get("latency_p50_ms").map(Observed::LatencyMs),
                _ => None,
            };
            if let Some(value) = value {
                measurements.push(Measurement {
                    model: model.clone(),
                    technique: label.clone(),
                    device: device.clone(),
                    value,
                });
            }
            if spec.kind == "size"
                && let Some(v) = get("size_bytes")
            {
                sizes.insert((model.clone(), label.clone()), v);
            }
        }
        if spec.kind == "size" && ok {
            continue;
        }
        let row = table
            .entry((model.clone(), label.clone(), dev.clone()))
            .or_insert_with(|| {
                json!({
                    "model": model, "technique": label, "device": dev,
                    "status": "succeeded", "attempts": 0, "agent": "", "error": "",
                })
            });
        row["attempts"] = json!(row["attempts"].as_u64().unwrap_or(0) + js.attempts as u64);
        if !js.agent.is_empty() {
            row["agent"] = json!(js.agent);
        }
        if !ok {
            row["status"] = json!(state_name(js.state));
            let err = js
                .result
                .as_ref()
                .map(|r| r.error.clone())
                .unwrap_or_default();
            let prev = row["error"].as_str().unwrap_or("").to_string();
            let what = format!(
                "{}: {err}",
                spec.params.get("metric").cloned().unwrap_or_default()
            );
            row["error"] = json!(if prev.is_empty() {
                what
            } else {
                format!("{prev}; {what}")
            });
        }
        for m in METRICS {
            if let Some(v) = get(m)
                && *m != "size_bytes"
            {
                row[*m] = json!(v);
            }
        }
    }
    // Size rows without any device row still appear (a scenario measuring size only).
    for ((model, label), v) in &sizes {
        let mut any = false;
        for ((m, l, _), row) in table.iter_mut() {
            if m == model && l == label {
                row["size_bytes"] = json!(v);
                any = true;
            }
        }
        if !any {
            table.insert(
                (model.clone(), label.clone(), String::new()),
                json!({
                    "model": model, "technique": label, "device": "", "status": "succeeded",
                    "attempts": 1, "agent": "", "error": "", "size_bytes": v,
                }),
            );
        }
    }
    (table.into_values().collect(), measurements)
}

fn write_reports(dir: &Path, st: &RunStatus, rows: &[Value]) -> Result<()> {
    let cols: Vec<&str> = ["model", "technique", "device", "status"]
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

/// Used by `status`: a readable state name.
pub fn job_state_name(state: i32) -> &'static str {
    state_name(state)
}

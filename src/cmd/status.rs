//! `quantfarm status [RUN_ID]`: list runs, or one run's jobs.

use anyhow::{Result, anyhow};
use quantfarm_proto::auth::{Client, call_error, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{GetRunRequest, JobState, ListRunsRequest, RunStatus};
use serde_json::json;

use super::print_json;
use crate::cli::StatusArgs;
use quantfarm_harness::{job_state_name, read_token, result_metrics, runtime};

pub fn run(a: &StatusArgs) -> Result<()> {
    let token = read_token(a.token_file.as_deref())?;
    let tls = ClientTls::load(&a.coordinator, &a.tls.options()).map_err(|e| anyhow!(e))?;
    runtime()?.block_on(async {
        let mut c = connect_tls(&a.coordinator, &token, &tls)
            .await
            .map_err(|e| anyhow!(e))?;
        match &a.run_id {
            None => {
                let runs = c
                    .list_runs(ListRunsRequest {})
                    .await
                    .map_err(|e| anyhow!(call_error(&a.coordinator, &tls, &e)))?
                    .into_inner()
                    .runs;
                if a.json {
                    print_json(&json!(
                        runs.iter()
                            .map(|r| json!({
                                "run_id": r.run_id, "name": r.name, "finished": r.finished,
                                "jobs": r.jobs, "succeeded": r.done, "failed": r.failed,
                                "cancelled": r.cancelled,
                            }))
                            .collect::<Vec<_>>()
                    ));
                } else {
                    for r in runs {
                        outln!(
                            "{}  {}  {}/{} succeeded, {} failed, {} cancelled{}",
                            r.run_id,
                            r.name,
                            r.done,
                            r.jobs,
                            r.failed,
                            r.cancelled,
                            if r.finished { ", finished" } else { "" }
                        );
                    }
                }
            }
            Some(id) => {
                let request = GetRunRequest { run_id: id.clone() };
                let broke = |e: &tonic::Status| anyhow!(call_error(&a.coordinator, &tls, e));
                let st = if a.watch {
                    follow(&mut c, request, broke).await?
                } else {
                    c.get_run(request)
                        .await
                        .map_err(|e| broke(&e))?
                        .into_inner()
                };
                let jobs: Vec<_> = st
                    .jobs
                    .iter()
                    .map(|j| {
                        let r = j.result.clone().unwrap_or_default();
                        json!({
                            "job": j.spec.as_ref().map(|s| s.id.clone()).unwrap_or_default(),
                            "state": job_state_name(j.state),
                            "attempts": j.attempts,
                            "agent": j.agent,
                            "progress": j.progress,
                            "result_agent": r.agent,
                            "result_attempt": r.attempt,
                            "error": r.error,
                            "metrics": result_metrics(&r).into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                        })
                    })
                    .collect();
                if a.json {
                    print_json(&json!({
                        "run_id": st.run_id, "name": st.name, "finished": st.finished,
                        "cancelled": st.cancelled, "jobs": jobs,
                    }));
                } else {
                    outln!(
                        "{} ({}){}{}",
                        st.run_id,
                        st.name,
                        if st.finished { ", finished" } else { "" },
                        if st.cancelled { ", cancelled" } else { "" }
                    );
                    for j in jobs {
                        let error = j["error"].as_str().unwrap_or("");
                        outln!(
                            "  {:<60} {:<10} attempts {} {}{}{}",
                            j["job"].as_str().unwrap_or(""),
                            j["state"].as_str().unwrap_or(""),
                            j["attempts"],
                            j["agent"].as_str().unwrap_or(""),
                            if error.is_empty() { "" } else { "  " },
                            error
                        );
                    }
                }
            }
        }
        Ok(())
    })
}

/// Follow the run's status stream to its end, a line per change on stderr.
async fn follow(
    c: &mut Client,
    request: GetRunRequest,
    broke: impl Fn(&tonic::Status) -> anyhow::Error,
) -> Result<RunStatus> {
    let id = request.run_id.clone();
    let mut stream = c
        .watch_run(request)
        .await
        .map_err(|e| broke(&e))?
        .into_inner();
    while let Some(st) = stream.message().await.map_err(|e| broke(&e))? {
        let count = |s: JobState| st.jobs.iter().filter(|j| j.state == s as i32).count();
        eprintln!(
            "{id}: {}/{} succeeded, {} failed, {} running",
            count(JobState::Succeeded),
            st.jobs.len(),
            count(JobState::Failed),
            count(JobState::Running)
        );
        if st.finished {
            return Ok(st);
        }
    }
    Err(anyhow!(
        "{id}: the coordinator ended the status stream before the run finished"
    ))
}

//! A job with out-of-range numbers sent straight over gRPC by an authenticated client
//! (bypassing scenario validation) fails as a job with an error naming the value, and
//! the agent that received it keeps serving.

mod harness_common;

use std::time::Duration;

use harness_common::*;
use quantfarm_proto::v1::{
    BenchmarkTask, JobSpec, JobState, LatencySettings, Metric, SyntheticTask, job_spec,
};

#[test]
fn harness_out_of_range_job_fails_and_agent_keeps_serving() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "malformed");
    let rt = runtime();
    let mut c = client(&rt, port);
    let _agent = spawn_agent(dir.path(), port, "agent-m");

    let latency = |warmup: u64, runs: u64, threads: u32| JobSpec {
        requires: "cpu-host".into(),
        // Never fetched: the job is refused before any transfer.
        model_digest: "0".repeat(64),
        max_attempts: 1,
        task: Some(job_spec::Task::Benchmark(BenchmarkTask {
            metric: Metric::Latency as i32,
            latency: Some(LatencySettings {
                warmup,
                runs,
                threads,
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    let bad = [
        ("runs", latency(3, 1_000_000_000_000, 1)),
        ("warmup", latency(u64::MAX, 10, 1)),
        ("threads", latency(3, 10, 100_000)),
    ];
    let mut jobs: Vec<JobSpec> = bad
        .iter()
        .map(|(what, spec)| JobSpec {
            id: format!("bad/{what}"),
            ..spec.clone()
        })
        .collect();
    jobs.push(JobSpec {
        id: "bad/no-task".into(),
        requires: "cpu-host".into(),
        max_attempts: 1,
        ..Default::default()
    });
    submit(&rt, &mut c, "bad", jobs);
    let st = wait_run(&rt, port, "bad", Duration::from_secs(60), |st| st.finished);
    for j in &st.jobs {
        let id = &j.spec.as_ref().unwrap().id;
        assert_eq!(j.state, JobState::Failed as i32, "{id}: {j:#?}");
        let err = &j.result.as_ref().unwrap().error;
        let what = id.trim_start_matches("bad/");
        let expected = if what == "no-task" { "no task" } else { what };
        assert!(
            err.contains(expected) && (what == "no-task" || err.contains("out of range")),
            "{id}: {err}"
        );
    }

    // The same agent serves the next run.
    let ok = JobSpec {
        id: "good/sleep".into(),
        requires: "cpu-host".into(),
        task: Some(job_spec::Task::Synthetic(SyntheticTask { duration_ms: 10 })),
        ..Default::default()
    };
    submit(&rt, &mut c, "good", vec![ok]);
    let st = wait_run(&rt, port, "good", Duration::from_secs(60), |st| st.finished);
    let j = &st.jobs[0];
    assert_eq!(j.state, JobState::Succeeded as i32, "{j:#?}");
    assert_eq!(j.agent, "agent-m");
}

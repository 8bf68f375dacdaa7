//! Fault injection over loopback with the real binary: agents and the coordinator are
//! separate processes, killed with SIGKILL mid-run.

mod harness_common;

use std::time::Duration;

use harness_common::*;
use quantfarm_proto::v1::{JobState, ListRunsRequest};

fn all_succeeded(st: &quantfarm_proto::v1::RunStatus) -> bool {
    st.jobs
        .iter()
        .all(|j| j.state == JobState::Succeeded as i32)
}

/// (a) An agent killed mid-job: the job is leased again to another agent and the run
/// completes with exactly one result per job.
#[test]
fn harness_agent_killed_mid_job_job_moves_to_another_agent() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "a");
    let rt = runtime();
    let mut c = client(&rt, port);
    let mut agent_a = spawn_agent(dir.path(), port, "agent-a");
    submit(&rt, &mut c, "fault-a", synthetic_jobs("fault-a", 3, 1500));

    let st = wait_run(&rt, port, "fault-a", Duration::from_secs(60), |st| {
        st.jobs
            .iter()
            .any(|j| j.state == JobState::Running as i32 && j.agent == "agent-a")
    });
    let victim = st
        .jobs
        .iter()
        .find(|j| j.state == JobState::Running as i32)
        .and_then(|j| j.spec.clone())
        .unwrap()
        .id;
    let _agent_b = spawn_agent(dir.path(), port, "agent-b");
    std::thread::sleep(Duration::from_millis(300));
    agent_a.kill();

    let st = wait_run(&rt, port, "fault-a", Duration::from_secs(90), |st| {
        st.finished
    });
    assert!(all_succeeded(&st), "{st:#?}");
    let job = st
        .jobs
        .iter()
        .find(|j| j.spec.as_ref().unwrap().id == victim)
        .unwrap();
    assert!(job.attempts >= 2, "the killed job ran once only: {job:#?}");
    assert_eq!(job.result.as_ref().unwrap().agent, "agent-b");

    let rows = db_results(&dir.path().join("coord.db"));
    assert_eq!(rows.len(), 3, "one result row per job: {rows:?}");
    let conn = rusqlite::Connection::open(dir.path().join("coord.db")).unwrap();
    let lost: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM attempts WHERE job_id = ?1 AND outcome LIKE 'lost%'",
            [&victim],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lost, 1, "the killed attempt is recorded as lost");
}

/// (b) The coordinator killed mid-run and restarted on the same database: the run
/// completes and no finished result is lost or duplicated.
#[test]
fn harness_coordinator_restart_resumes_run_without_losing_results() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut coord = spawn_coordinator(dir.path(), port, "b1");
    let rt = runtime();
    let mut c = client(&rt, port);
    let _agent = spawn_agent(dir.path(), port, "agent-r");
    submit(&rt, &mut c, "fault-b", synthetic_jobs("fault-b", 6, 500));

    let before = wait_run(&rt, port, "fault-b", Duration::from_secs(60), |st| {
        st.jobs
            .iter()
            .filter(|j| j.state == JobState::Succeeded as i32)
            .count()
            >= 2
    });
    coord.kill();
    let finished_before: Vec<_> = before
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded as i32)
        .map(|j| j.result.clone().unwrap())
        .collect();
    assert!(!before.finished);
    std::thread::sleep(Duration::from_millis(300));
    let _coord2 = spawn_coordinator(dir.path(), port, "b2");

    let after = wait_run(&rt, port, "fault-b", Duration::from_secs(90), |st| {
        st.finished
    });
    assert!(all_succeeded(&after), "{after:#?}");
    for r in &finished_before {
        let now = after
            .jobs
            .iter()
            .find(|j| j.spec.as_ref().unwrap().id == r.job_id)
            .and_then(|j| j.result.clone())
            .unwrap();
        assert_eq!(&now, r, "a result recorded before the crash changed");
    }
    let rows = db_results(&dir.path().join("coord.db"));
    assert_eq!(rows.len(), 6, "{rows:?}");
    let mut ids: Vec<_> = rows.iter().map(|r| r.0.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6);

    // The restarted coordinator also lists the run as finished.
    let mut c = client(&rt, port);
    let runs = rt
        .block_on(c.list_runs(ListRunsRequest {}))
        .unwrap()
        .into_inner()
        .runs;
    assert!(
        runs.iter()
            .any(|r| r.run_id == "fault-b" && r.finished && r.done == 6)
    );
}

/// (c) A wrong or missing token is rejected, on the client API and the agent stream.
#[test]
fn harness_wrong_or_missing_token_rejected() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _coord = spawn_coordinator(dir.path(), port, "c");
    let rt = runtime();
    let _ = client(&rt, port); // wait until it listens
    let url = format!("http://127.0.0.1:{port}");

    let out = std::process::Command::new(bin())
        .args(["status", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing or wrong token"), "{err}");

    let out = std::process::Command::new(bin())
        .args(["status", "--coordinator", &url])
        .env_remove("QUANTFARM_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no token"), "{err}");

    let out = std::process::Command::new(bin())
        .args(["status", "--coordinator", &url])
        .env("QUANTFARM_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Directly over gRPC: an empty token and a token differing in its last byte.
    for bad in [
        "",
        &TOKEN[..TOKEN.len() - 1],
        &format!("{}X", &TOKEN[..TOKEN.len() - 1]),
    ] {
        let mut c = rt
            .block_on(quantfarm_proto::auth::connect(&url, bad))
            .unwrap();
        let e = rt.block_on(c.list_runs(ListRunsRequest {})).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let e = rt
            .block_on(c.connect(tokio_stream::wrappers::ReceiverStream::new(rx)))
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }
}

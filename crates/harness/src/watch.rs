//! Following a run to its end on the coordinator's status stream, riding out
//! coordinator restarts.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use quantfarm_proto::auth::{Client, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::{GetRunRequest, RunStatus, SubmitRunRequest};

/// Follow run `submit.run_id` until it finishes. `observe` sees every status message
/// (progress display). If the coordinator goes away the client reconnects, resubmits
/// the run when the coordinator no longer knows it (a no-op when it survived), and
/// watches again, for up to `wait_secs` without a status message.
pub async fn watch(
    url: &str,
    token: &str,
    tls: &ClientTls,
    mut client: Client,
    submit: &SubmitRunRequest,
    wait_secs: u64,
    mut observe: impl FnMut(&RunStatus),
) -> Result<RunStatus> {
    let request = GetRunRequest {
        run_id: submit.run_id.clone(),
    };
    let mut last_ok = Instant::now();
    loop {
        let err = match client.watch_run(request.clone()).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(st)) => {
                            last_ok = Instant::now();
                            observe(&st);
                            if st.finished {
                                return Ok(st);
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
            bail!("coordinator refused the token: {}", err.message());
        }
        if last_ok.elapsed() > Duration::from_secs(wait_secs) {
            bail!("lost the coordinator for {wait_secs} s: {}", err.message());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if let Ok(mut c) = connect_tls(url, token, tls).await {
            if err.code() == tonic::Code::NotFound {
                let _ = c.submit_run(submit.clone()).await;
            }
            client = c;
        }
    }
}

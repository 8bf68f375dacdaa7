//! `quantfarm cancel RUN_ID`: stop a run; running jobs are told to stop.

use anyhow::{Result, anyhow};
use quantfarm_proto::auth::{call_error, connect_tls};
use quantfarm_proto::tls::ClientTls;
use quantfarm_proto::v1::CancelRunRequest;

use crate::cli::CancelArgs;
use quantfarm_harness::{read_token, runtime};

pub fn run(a: &CancelArgs) -> Result<()> {
    let token = read_token(a.token_file.as_deref())?;
    let tls = ClientTls::load(&a.coordinator, &a.tls.options()).map_err(|e| anyhow!(e))?;
    runtime()?.block_on(async {
        let mut c = connect_tls(&a.coordinator, &token, &tls)
            .await
            .map_err(|e| anyhow!(e))?;
        let r = c
            .cancel_run(CancelRunRequest {
                run_id: a.run_id.clone(),
            })
            .await
            .map_err(|e| anyhow!(call_error(&a.coordinator, &tls, &e)))?
            .into_inner();
        if r.already_finished {
            outln!("{}: already finished; nothing to cancel", a.run_id);
        } else {
            outln!("{}: {} job(s) cancelled", a.run_id, r.cancelled_jobs);
        }
        Ok(())
    })
}

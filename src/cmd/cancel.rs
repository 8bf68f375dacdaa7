//! `quantfarm cancel RUN_ID`: stop a run; running jobs are told to stop.

use anyhow::{Result, anyhow};
use quantfarm_proto::auth::connect;
use quantfarm_proto::v1::CancelRunRequest;

use super::run::{read_token, runtime};
use crate::cli::CancelArgs;

pub fn run(a: &CancelArgs) -> Result<()> {
    let token = read_token(a.token_file.as_deref())?;
    runtime()?.block_on(async {
        let mut c = connect(&a.coordinator, &token)
            .await
            .map_err(|e| anyhow!(e))?;
        let r = c
            .cancel_run(CancelRunRequest {
                run_id: a.run_id.clone(),
            })
            .await
            .map_err(|e| anyhow!("{}", e.message()))?
            .into_inner();
        println!("{}: {} job(s) cancelled", a.run_id, r.cancelled_jobs);
        Ok(())
    })
}

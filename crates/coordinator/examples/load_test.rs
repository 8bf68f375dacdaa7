//! Load benchmark of the coordinator alone (no engine in the build):
//! `cargo run --release -p quantfarm-coordinator --example load_test -- [AGENTS] [JOBS]`
//! (defaults 200 and 5000). The same as `quantfarm coordinator --load-test`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let jobs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5000);
    let dir = std::env::temp_dir().join(format!("quantfarm-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(quantfarm_coordinator::loadtest::load_test(
        agents, jobs, &dir,
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let r = r?;
    println!(
        "load test: {} agents, {} no-op jobs in {:.3} s: {:.0} jobs/s, {:.3} ms/job wall, {} ms CPU/job",
        r.agents,
        r.jobs,
        r.seconds,
        r.jobs_per_sec,
        r.ms_per_job,
        r.cpu_ms_per_job
            .map(|c| format!("{c:.3}"))
            .unwrap_or_else(|| "?".into())
    );
    Ok(())
}

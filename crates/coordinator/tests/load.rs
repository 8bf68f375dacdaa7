//! A thousand agents dialing at once all register, at the first try, within seconds,
//! and drain a run of no-op jobs. (Tokio's default listen backlog of 1024 made the
//! kernel reset 5–20% of these connections; see `LISTEN_BACKLOG`.)

#[test]
fn thousand_agents_register_at_once_and_drain_jobs() {
    let dir = std::env::temp_dir().join(format!("qf-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(quantfarm_coordinator::loadtest::load_test(1000, 5000, &dir))
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.redials, 0, "{r:?}");
    assert!(r.register_seconds < 20.0, "{r:?}");
    assert_eq!(r.jobs, 5000);
    eprintln!("{r:?}");
}

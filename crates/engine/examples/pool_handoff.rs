//! How long the engine's 2-thread pool takes to run a loop of two empty tasks that must
//! run on both threads (each waits until the other has started): the cost of handing
//! work to the other core and getting the "done" back. It measures
//! the machine rather than a kernel: on the 2-vCPU VM it is ~0.3 µs when the two vCPUs
//! sit close on the host and ~0.5–1 µs when they do not, which is when 2-thread
//! inference of small models scales badly (see `scripts/thread-scaling.sh`).
//!
//! `cargo run --release -p quantfarm-engine --example pool_handoff [LOOPS]`; prints
//! `{"handoff_ns": ...}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use quantfarm_engine::exec::parallel::ThreadPool;

fn main() {
    let loops: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let pool = match ThreadPool::new(2) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let started = AtomicUsize::new(0);
    let mut round = 0;
    let mut run = |n: u32| {
        for _ in 0..n {
            round += 2;
            let target = round;
            // Both tasks wait for each other, so the worker must take one of them.
            pool.parallel_for(2, &|_| {
                started.fetch_add(1, Ordering::AcqRel);
                while started.load(Ordering::Acquire) < target {
                    std::hint::spin_loop();
                }
            });
        }
    };
    // Warm up: the worker is spinning, not parked, when timing starts.
    run(1000);
    let start = Instant::now();
    run(loops);
    let ns = start.elapsed().as_nanos() as f64 / loops.max(1) as f64;
    println!("{{\"handoff_ns\": {ns:.0}}}");
}

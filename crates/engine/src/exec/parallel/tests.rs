//! The pool's tests: every task runs once, panics propagate, nested and concurrent
//! use, the splitting thresholds, and two interpreters sharing the machine.

use super::*;
use std::sync::atomic::AtomicU32;

#[test]
fn every_task_runs_exactly_once() {
    let pool = ThreadPool::new(3).unwrap();
    assert_eq!(pool.threads(), 3);
    for n in [0, 1, 2, 3, 7, 64, 1000] {
        for _ in 0..50 {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool.parallel_for(n, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n {n}");
        }
    }
}

#[test]
fn workers_take_a_share() {
    // Long enough tasks that the worker must claim some of them.
    let pool = ThreadPool::new(2).unwrap();
    let caller = thread::current().id();
    let on_worker = AtomicUsize::new(0);
    for _ in 0..20 {
        pool.parallel_for(16, &|_| {
            if thread::current().id() != caller {
                on_worker.fetch_add(1, Ordering::Relaxed);
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(200) {
                std::hint::spin_loop();
            }
        });
    }
    assert!(on_worker.load(Ordering::Relaxed) > 0);
}

#[test]
fn one_thread_runs_inline_in_order() {
    let pool = ThreadPool::new(1).unwrap();
    let caller = thread::current().id();
    let order = Mutex::new(Vec::new());
    pool.parallel_for(5, &|i| {
        assert_eq!(thread::current().id(), caller);
        order.lock().unwrap().push(i);
    });
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    // The free function with one thread never touches a pool either.
    let order = Mutex::new(Vec::new());
    parallel_for(Parallelism::SINGLE, 4, &|i| {
        assert_eq!(thread::current().id(), caller);
        order.lock().unwrap().push(i);
    });
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}

#[test]
fn nested_loops_run_inline() {
    let pool = ThreadPool::new(2).unwrap();
    let count = AtomicUsize::new(0);
    pool.install(|| {
        parallel_for(Parallelism { threads: 2 }, 8, &|_| {
            parallel_for(Parallelism { threads: 2 }, 8, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        });
    });
    assert_eq!(count.load(Ordering::Relaxed), 64);
}

#[test]
fn concurrent_callers_share_a_pool_safely() {
    // Two threads hammer one pool (one of them wins, the other runs inline) and
    // each owns another pool, as two interpreters on two threads would.
    let shared = ThreadPool::new(2).unwrap();
    thread::scope(|s| {
        for t in 0..2 {
            let shared = &shared;
            s.spawn(move || {
                let own = ThreadPool::new(2).unwrap();
                for round in 0..300 {
                    let n = 1 + (round * 7 + t) % 40;
                    let sum = AtomicUsize::new(0);
                    let pool = if round % 2 == 0 { shared } else { &own };
                    pool.install(|| {
                        parallel_for(Parallelism { threads: 2 }, n, &|i| {
                            sum.fetch_add(i + 1, Ordering::Relaxed);
                        })
                    });
                    assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
                }
            });
        }
    });
}

#[test]
fn panics_propagate_and_the_pool_survives() {
    let pool = ThreadPool::new(2).unwrap();
    for bad in [0, 5, 31] {
        let finished = AtomicUsize::new(0);
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.parallel_for(32, &|i| {
                if i == bad {
                    panic!("task {i} failed");
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let payload = r.expect_err("the panic must reach the caller");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(msg, format!("task {bad} failed"));
        // Every other task still ran (the loop waited for them).
        assert_eq!(finished.load(Ordering::Relaxed), 31);
    }
    let count = AtomicUsize::new(0);
    pool.parallel_for(10, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 10);
}

#[test]
fn parked_workers_wake_up() {
    let pool = ThreadPool::new(2).unwrap();
    let caller = thread::current().id();
    let on_worker = AtomicUsize::new(0);
    for _ in 0..3 {
        // Longer than SPIN: the worker is parked when the loop starts. The tasks
        // sleep, so even a busy machine lets the woken worker in.
        thread::sleep(SPIN * 3);
        pool.parallel_for(8, &|_| {
            if thread::current().id() != caller {
                on_worker.fetch_add(1, Ordering::Relaxed);
            }
            thread::sleep(Duration::from_millis(2));
        });
    }
    assert!(on_worker.load(Ordering::Relaxed) > 0);
}

#[test]
fn chunks_cover_the_slice_once() {
    for threads in [1, 2, 3] {
        for (len, chunk) in [(0, 4), (1, 4), (10, 3), (100, 7), (64, 64), (5, 0)] {
            let mut data = vec![0usize; len];
            for_each_chunk_mut(Parallelism { threads }, &mut data, chunk, &|ci, c| {
                for (j, v) in c.iter_mut().enumerate() {
                    *v += ci * chunk.max(1) + j + 1;
                }
            });
            let want: Vec<usize> = (1..=len).collect();
            assert_eq!(data, want, "t{threads} len {len} chunk {chunk}");
        }
    }
}

#[test]
fn ranges_cover_the_slice_once_on_cache_line_bounds() {
    for threads in [1, 2, 3] {
        for len in [0, 1, 15, 16, 17, 1000, 4099] {
            let mut data = vec![0usize; len];
            let starts = Mutex::new(Vec::new());
            split_everything(|| {
                for_each_range_mut(Parallelism { threads }, &mut data, 1 << 20, &|s, c| {
                    starts.lock().unwrap().push(s);
                    for (j, v) in c.iter_mut().enumerate() {
                        *v += s + j + 1;
                    }
                })
            });
            let want: Vec<usize> = (1..=len).collect();
            assert_eq!(data, want, "t{threads} len {len}");
            // usize is 8 bytes: every range starts on a 64-byte line.
            assert!(starts.lock().unwrap().iter().all(|s| s % 8 == 0));
        }
    }
}

#[test]
fn pool_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<ThreadPool>();
}

#[test]
fn two_interpreters_on_two_threads_match_one_thread() {
    use crate::zoo::{Arch, ZooConfig, build};
    let cfg = ZooConfig {
        width: 0.25,
        resolution: 64,
        num_classes: 10,
        seed: 3,
    };
    // v2 has residual ADDs (split element-wise) besides conv/depthwise/FC.
    for arch in [Arch::MobilenetV1, Arch::MobilenetV2] {
        let model = build(arch, &cfg).unwrap();
        check_two_interpreters(&model);
    }
}

fn check_two_interpreters(model: &crate::ir::Model) {
    use crate::exec::{Interpreter, InterpreterOptions};
    let opts = |threads| InterpreterOptions {
        threads,
        ..Default::default()
    };
    let run = |it: &mut Interpreter, seed: usize| {
        let n = it.inputs()[0].num_elements();
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + seed) % 23) as f32 / 23.0)
            .collect();
        it.set_input_f32(0, &x).unwrap();
        it.invoke();
        it.output_f32(0).unwrap()
    };
    let mut single = Interpreter::new(model, opts(1)).unwrap();
    let want: Vec<Vec<f32>> = (0..2).map(|s| run(&mut single, s)).collect();
    thread::scope(|s| {
        for seed in 0..2 {
            let want = &want[seed];
            s.spawn(move || {
                let mut it = Interpreter::new(model, opts(2)).unwrap();
                let mut body = || {
                    for _ in 0..20 {
                        let got = run(&mut it, seed);
                        for (g, w) in got.iter().zip(want) {
                            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
                        }
                    }
                };
                // One thread splits every op (these layers are small), one only
                // the ones big enough.
                if seed == 0 {
                    split_everything(body)
                } else {
                    body()
                }
            });
        }
    });
}

#[test]
fn task_count_respects_thresholds() {
    let two = Parallelism { threads: 2 };
    let big = 1 << 30;
    assert_eq!(task_count(Parallelism::SINGLE, 100, big), 1);
    assert_eq!(task_count(two, 1, big), 1);
    assert_eq!(task_count(two, 100, MIN_PARALLEL_NS - 1), 1);
    assert_eq!(task_count(two, 100, big), 2 * TASKS_PER_THREAD);
    assert_eq!(task_count(two, 3, big), 3);
    assert_eq!(task_count(two, 100, MIN_PARALLEL_NS), 2);
    assert_eq!(split_everything(|| task_count(two, 100, 10)), 2);
}

//! A small fork-join pool for the heavy kernels' parallel loops.
//!
//! Inference runs dozens of short ops back to back (MobileNet v1 0.25: ~13 µs each), so
//! what matters is the latency of handing one loop to the other threads, not
//! throughput. Rayon's workers fall asleep between ops and waking one costs tens of µs;
//! here every worker spins (bounded by [`SPIN`]) on a generation counter before it
//! parks, so a parallel loop that follows the previous one within that window starts
//! on all threads in well under a microsecond.
//!
//! - The calling thread takes a share of the work: a pool of `threads` has
//!   `threads - 1` workers.
//! - Tasks are claimed one at a time from a shared counter (dynamic chunking), so a
//!   worker that wakes late, or is descheduled on a busy machine, only takes fewer
//!   tasks: the caller never waits for a worker that has not started.
//! - No allocation per call; a panicking task is caught, the loop still waits for every
//!   task that started, then the panic resumes on the caller.
//! - One loop at a time per pool: a call made while the pool is busy (from a task, or
//!   from another thread sharing the pool) runs inline on its own thread.
//!
//! Kernels do not hold a pool: they call [`parallel_for`] / [`for_each_chunk_mut`] with
//! their [`Parallelism`], which run on the pool the caller [`ThreadPool::install`]ed
//! (the interpreter installs its own for `invoke`), or else on a shared process-wide
//! pool of `par.threads` (kernel tests and benches).

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::kernels::Parallelism;
use crate::error::{EngineError, Result};

/// One parallel loop body: called once with each task index.
pub type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// How long an idle worker spins before parking. Covers the gap between two parallel
/// ops (the serial ops in between are short) and between back-to-back inferences;
/// after it the worker sleeps, so an idle interpreter costs no CPU.
pub const SPIN: Duration = Duration::from_micros(200);

/// Estimated single-thread time (ns) below which a kernel should not split at all.
/// A loop on two threads costs about 1.1 µs more than the work itself (publishing it,
/// the worker's claim, waiting for its last task: cross-core cache-line trips, measured
/// with a spinning worker on the 2-core EPYC VM), plus ~0.15 µs per extra task; a layer
/// must run at least ~3 µs alone for half of it plus that to be a clear gain.
pub const MIN_PARALLEL_NS: usize = 3_000;

/// Estimated time (ns) per task below which more tasks cost more than they balance.
pub const MIN_TASK_NS: usize = 2_500;

/// Tasks per thread at most: two let the claiming even out unequal tiles or a worker
/// that starts late, without paying for many claims.
const TASKS_PER_THREAD: usize = 2;

/// Rough single-thread speeds (MACs per ns, AVX-512 on the EPYC VM; AVX2 and portable
/// are slower, which only makes splitting pay off sooner) for [`task_count`]'s estimate.
pub const GEMM_MACS_PER_NS: usize = 48;
/// One-row GEMM (weights streamed from L2/L3) and depthwise (loads per MAC).
pub const GEMV_MACS_PER_NS: usize = 16;
pub const DEPTHWISE_MACS_PER_NS: usize = 20;
/// Element-wise float ops stream their operands from L2/L3: elements per ns.
pub const ELEMENTWISE_PER_NS: usize = 8;

/// Runs `f(start, out_chunk)` over `out` cut into contiguous chunks (whole multiples of
/// 64 bytes of `T`: in 64-byte aligned tensors, as in the arena, two threads never
/// write one cache line), in parallel when
/// `ns` (the single-thread estimate) makes splitting pay. Each thread gets the same
/// share of every element-wise op as of the op that produced its inputs, so on two
/// cores it reads what it wrote itself (a cross-core read costs far more on this VM).
pub fn for_each_range_mut<T: Send>(
    par: Parallelism,
    out: &mut [T],
    ns: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let align = (64 / std::mem::size_of::<T>().max(1)).max(1);
    let tasks = task_count(par, out.len().div_ceil(align), ns);
    if tasks <= 1 {
        f(0, out);
        return;
    }
    let chunk = out.len().div_ceil(tasks).next_multiple_of(align);
    for_each_chunk_mut(par, out, chunk, &|ci, c| f(ci * chunk, c));
}

/// How many tasks to cut `items` independent units (rows, tiles, column blocks) into,
/// for a kernel estimated to take `ns` nanoseconds on one thread. 1 means "run
/// serially": the split would cost more than it saves.
pub fn task_count(par: Parallelism, items: usize, ns: usize) -> usize {
    if par.threads <= 1 || items <= 1 || (ns < MIN_PARALLEL_NS && !forced()) {
        return 1;
    }
    let by_work = (ns / MIN_TASK_NS).max(par.threads);
    items.min(par.threads * TASKS_PER_THREAD).min(by_work)
}

#[cfg(not(test))]
fn forced() -> bool {
    false
}

#[cfg(test)]
thread_local! {
    static FORCE_SPLIT: Cell<bool> = const { Cell::new(false) };
}

#[cfg(test)]
fn forced() -> bool {
    FORCE_SPLIT.with(Cell::get)
}

/// Runs `f` with [`task_count`]'s size threshold off on this thread, so that kernel
/// tests with small shapes still exercise the split paths.
#[cfg(test)]
pub(crate) fn split_everything<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCE_SPLIT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCE_SPLIT.with(|c| c.replace(true)));
    f()
}

/// Job state shared by the caller and the workers of one pool.
struct Shared {
    /// The current loop: generation (bits 40..64), then the unclaimed tasks
    /// `front..back` (bits 20..40 and 0..20). A new loop stores `(generation + 1, 0, n)`;
    /// a claim is a compare-exchange, so a worker still holding the previous generation
    /// can never claim a task of the next. The caller claims from the front and the
    /// workers from the back: each thread keeps producing the same part of every output,
    /// which the next op then reads from its own cache.
    state: CacheLine<AtomicU64>,
    /// Tasks finished (or panicked) in the current loop. On its own cache line: workers
    /// bump it while the caller is still claiming from `state`.
    done: CacheLine<AtomicUsize>,
    /// Address of the caller's `&Task` while a loop runs (see `run_task`).
    job: AtomicPtr<()>,
    /// A loop is running (one at a time per pool).
    busy: AtomicBool,
    /// The first panic payload of the current loop.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Workers parked on `wake` (the caller only locks when there are some).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
    /// Worker threads (the caller is the pool's other thread).
    workers: usize,
}

/// Keeps a hot atomic alone on its cache line.
#[repr(align(128))]
struct CacheLine<T>(T);

impl<T> std::ops::Deref for CacheLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Tasks of one loop (20 bits); longer loops run as several.
const MAX_TASKS: usize = (1 << 20) - 1;
const FIELD: u64 = (1 << 20) - 1;
const GEN_SHIFT: u32 = 40;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The mutexes guard nothing a panic could leave half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Claims the first (caller) or last (worker) unclaimed task of loop `generation`.
    fn claim(&self, generation: u64, from_back: bool) -> Option<usize> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s >> GEN_SHIFT != generation {
                return None;
            }
            let (front, back) = ((s >> 20) & FIELD, s & FIELD);
            if front >= back {
                return None;
            }
            let (next, i) = if from_back {
                (s - 1, back - 1)
            } else {
                (s + (1 << 20), front)
            };
            match self
                .state
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(i as usize),
                Err(now) => s = now,
            }
        }
    }

    /// Runs claimed task `i` of the current loop.
    fn run_task(&self, i: usize) {
        let job = self.job.load(Ordering::Acquire) as *const &Task<'_>;
        // SAFETY: `job` points at the `&Task` local of the `parallel_for` call that
        // published this generation. A task can only be run after a successful claim,
        // and that call does not return (nor clear or reuse `job`) before `done` counts
        // every claimed task, which happens below, after the last use of `f`. The
        // closure is `Sync`, so calling it from this thread is allowed. This is the one
        // place where the pool erases the loop body's lifetime, as every scoped thread
        // pool must.
        let f: &Task<'_> = unsafe { *job };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(i))) {
            lock(&self.panic).get_or_insert(payload);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// Runs `f(0..n)` on the caller and the workers; returns when all tasks are done.
    fn parallel_for(&self, n: usize, f: &Task<'_>) {
        if n > MAX_TASKS {
            for start in (0..n).step_by(MAX_TASKS) {
                self.parallel_for(MAX_TASKS.min(n - start), &|i| f(start + i));
            }
            return;
        }
        if n <= 1
            || self.workers == 0
            || self
                .busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            (0..n).for_each(f);
            return;
        }
        let job: &Task<'_> = f;
        self.done.store(0, Ordering::Relaxed);
        self.job
            .store(&job as *const &Task<'_> as *mut (), Ordering::Relaxed);
        let generation = ((self.state.load(Ordering::Relaxed) >> GEN_SHIFT) + 1) & 0xff_ffff;
        // SeqCst pairs with the parking worker's SeqCst `sleepers` increment: either it
        // sees this generation or this thread sees it asleep and wakes it.
        self.state
            .store(generation << GEN_SHIFT | n as u64, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            drop(lock(&self.lock));
            self.wake.notify_all();
        }
        while let Some(i) = self.claim(generation, false) {
            self.run_task(i);
        }
        // Tasks the workers are still running: they are short, so spin, but yield the
        // core if a worker was descheduled mid-task.
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < n {
            if spins < 1 << 14 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        self.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        let panicked = lock(&self.panic).take();
        self.busy.store(false, Ordering::Release);
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
    }

    /// Waits for a generation other than `seen`: spins for [`SPIN`], then parks.
    /// `None` on shutdown.
    fn wait_for_job(&self, seen: u64) -> Option<u64> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = self.state.load(Ordering::Acquire) >> GEN_SHIFT;
            if g != seen {
                return Some(g);
            }
            if self.shutdown.load(Ordering::Relaxed) {
                return None;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            // Reading the clock costs ~20 ns; check it every 64 spins.
            if spins.is_multiple_of(64) && start.elapsed() >= SPIN {
                break;
            }
        }
        let mut guard = lock(&self.lock);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let result = loop {
            let g = self.state.load(Ordering::SeqCst) >> GEN_SHIFT;
            if g != seen {
                break Some(g);
            }
            if self.shutdown.load(Ordering::SeqCst) {
                break None;
            }
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

thread_local! {
    /// The pool `ThreadPool::install` made current on this thread.
    static CURRENT: Cell<Option<Arc<Shared>>> = const { Cell::new(None) };
    /// This thread is a pool worker: loops it starts run inline (nested parallelism
    /// would only queue behind the loop it is part of).
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

fn worker_main(shared: Arc<Shared>) {
    IS_WORKER.with(|w| w.set(true));
    // Pools start at generation 0 and publish nothing before their workers exist.
    let mut seen = 0;
    while let Some(generation) = shared.wait_for_job(seen) {
        seen = generation;
        while let Some(i) = shared.claim(generation, true) {
            shared.run_task(i);
        }
    }
}

/// A fixed set of spinning worker threads; see the module documentation.
pub struct ThreadPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl ThreadPool {
    /// A pool running loops on `threads` threads: the caller plus `threads - 1`
    /// workers (none for 0 or 1, where every loop runs inline).
    pub fn new(threads: usize) -> Result<ThreadPool> {
        let workers = threads.saturating_sub(1);
        let shared = Arc::new(Shared {
            state: CacheLine(AtomicU64::new(0)),
            done: CacheLine(AtomicUsize::new(0)),
            job: AtomicPtr::new(std::ptr::null_mut()),
            busy: AtomicBool::new(false),
            panic: Mutex::new(None),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            workers,
        });
        let mut pool = ThreadPool {
            shared,
            handles: Vec::with_capacity(workers),
        };
        for i in 0..workers {
            let shared = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(format!("quantfarm-worker-{i}"))
                .spawn(move || worker_main(shared))
                // Dropping `pool` stops the workers already started.
                .map_err(|e| {
                    EngineError::unsupported(format!("cannot start worker threads: {e}"))
                })?;
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    /// Threads a loop runs on (workers + the caller).
    pub fn threads(&self) -> usize {
        self.shared.workers + 1
    }

    /// Runs `f(i)` for every `i < n_tasks`, each exactly once, on the calling thread and
    /// the workers; returns when all are done. A task's panic resumes here after the
    /// other tasks finished. Runs inline if the pool is already running a loop.
    pub fn parallel_for(&self, n_tasks: usize, f: &Task<'_>) {
        self.shared.parallel_for(n_tasks, f);
    }

    /// Runs `f` with this pool as the one kernels' [`parallel_for`] uses on this thread.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Arc<Shared>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0.take()));
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(Arc::clone(&self.shared)))));
        f()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        drop(lock(&self.shared.lock));
        self.shared.wake.notify_all();
        for h in self.handles.drain(..) {
            // Workers catch task panics, so a join error cannot carry one of ours.
            let _ = h.join();
        }
    }
}

/// The shared pool of `threads` threads for callers that installed none (kernel tests
/// and benches call kernels directly). Started on first use; `None` if threads cannot
/// be started, in which case loops run inline.
fn global_pool(threads: usize) -> Option<Arc<Shared>> {
    static POOLS: Mutex<Vec<ThreadPool>> = Mutex::new(Vec::new());
    // More threads than this is a caller bug, not a pool to keep forever.
    let threads = threads.min(256);
    let mut pools = lock(&POOLS);
    if let Some(p) = pools.iter().find(|p| p.threads() == threads) {
        return Some(Arc::clone(&p.shared));
    }
    let pool = ThreadPool::new(threads).ok()?;
    let shared = Arc::clone(&pool.shared);
    pools.push(pool);
    Some(shared)
}

/// Runs `f(i)` for every `i < n_tasks`, each exactly once, with `par.threads` threads:
/// on the installed pool, else the shared one; inline for one thread or one task, and
/// on pool worker threads.
pub fn parallel_for(par: Parallelism, n_tasks: usize, f: &Task<'_>) {
    if par.threads <= 1 || n_tasks <= 1 || IS_WORKER.with(Cell::get) {
        (0..n_tasks).for_each(f);
        return;
    }
    let installed = CURRENT.with(|c| {
        let p = c.take();
        c.set(p.clone());
        p
    });
    match installed.or_else(|| global_pool(par.threads)) {
        Some(pool) => pool.parallel_for(n_tasks, f),
        None => (0..n_tasks).for_each(f),
    }
}

/// Cuts `data` into chunks of `chunk_len` (the last may be shorter) and runs
/// `f(chunk_index, chunk)` on each, in parallel as [`parallel_for`]. Each task takes the
/// next chunk from a shared iterator, so the disjoint `&mut` chunks are handed out
/// without any unsafe code.
pub fn for_each_chunk_mut<T: Send>(
    par: Parallelism,
    data: &mut [T],
    chunk_len: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let chunk_len = chunk_len.max(1);
    let n = data.len().div_ceil(chunk_len);
    if par.threads <= 1 || n <= 1 {
        for (i, c) in data.chunks_mut(chunk_len).enumerate() {
            f(i, c);
        }
        return;
    }
    let chunks = Mutex::new(data.chunks_mut(chunk_len).enumerate());
    parallel_for(par, n, &|_| {
        // As many tasks as chunks, so each task takes one. Workers claim tasks from the
        // back and the caller from the front; taking chunks the same way keeps each
        // thread on the same part of the output from op to op.
        let next = if IS_WORKER.with(Cell::get) {
            lock(&chunks).next_back()
        } else {
            lock(&chunks).next()
        };
        if let Some((i, c)) = next {
            f(i, c);
        }
    });
}

#[cfg(test)]
mod tests;

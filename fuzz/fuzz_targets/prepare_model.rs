//! Arbitrary bytes through the reader into the interpreter's preparation, under a
//! small memory limit: every stage must return Ok or Err, never panic, and never
//! allocate more than the limit — a counting allocator checks that the peak of live
//! heap bytes stays below the limit on every path, and below the memory plan of every
//! model that prepares. Small models that prepare are also run once (preparation
//! promises that `invoke` cannot fail on a model it accepted).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::measure::fill_inputs;
use quantfarm_engine::tflite::read_model_limited;

/// The memory limit of the whole stage.
const LIMIT: u64 = 256 << 20;
/// Models whose plan is at most this are also run.
const RUN_BELOW: u64 = 16 << 20;
/// Allocations outside the plan's accounting (the fuzzer's own, formatting errors).
const SLACK: usize = 1 << 20;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator with the same arguments; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `f`'s result and the peak of heap bytes it allocated beyond what was live before.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

fuzz_target!(|data: &[u8]| {
    let (model, read) = peak_of(|| read_model_limited(data, LIMIT));
    assert!(read <= LIMIT as usize + SLACK, "the reader allocated {read} B");
    let Ok(model) = model else { return };
    let opts = InterpreterOptions {
        memory_limit: LIMIT,
        ..Default::default()
    };
    let (outcome, used) = peak_of(|| {
        let mut it = Interpreter::new(&model, opts)?;
        let plan = it.memory_plan();
        if plan.total() <= RUN_BELOW {
            fill_inputs(&mut it).expect("inputs of a prepared model");
            it.invoke();
        }
        Ok::<_, quantfarm_engine::EngineError>(plan)
    });
    match outcome {
        Ok(plan) => assert!(
            used <= plan.total() as usize + SLACK,
            "allocated {used} B, planned {plan:?}"
        ),
        Err(_) => assert!(
            used <= LIMIT as usize + SLACK,
            "a refused model allocated {used} B"
        ),
    }
});

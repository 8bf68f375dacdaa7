//! The memory plan is an upper bound of what preparing and running a model really
//! allocates: a counting global allocator measures the peak of live heap bytes while
//! `Interpreter::new`, `fill_inputs` and two inferences run, on every ISA this machine
//! has, with the reference kernels, and with one and two threads (float models also
//! with half-precision storage, `Interpreter::new_fp16`), over the shared
//! Coral models and models built here in every numeric mode (float32, float16, dynamic
//! range, int8, int16x8, uint8, float and integer LSTM). The plan must also stay
//! useful: not more than a few times the real peak.
//!
//! One test function (the counters are process-wide, so nothing may run beside it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use quantfarm_engine::convert::{DequantizeOptions, dequantize_model};
use quantfarm_engine::exec::kernels::cpu::{self, Isa};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions, KernelChoice};
use quantfarm_engine::ir::Model;
use quantfarm_engine::measure::fill_inputs;
use quantfarm_engine::quant::calibrate::Calibrator;
use quantfarm_engine::quant::ptq::{PtqOptions, QuantMode, quantize_model};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(live, Ordering::SeqCst);
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
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc` for `ptr` and `layout`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn shared() -> std::path::PathBuf {
    quantfarm_engine::data::shared_root().expect("the shared data folder")
}

/// Peak bytes allocated beyond what was live before `f`, and `f`'s result.
fn peak_of<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = f();
    (PEAK.load(Ordering::SeqCst) - base, r)
}

/// The models: the shared Coral files the CPU engine runs, and small zoo networks in
/// every quantization mode.
fn models() -> Vec<(String, Model)> {
    let mut out = Vec::new();
    let coral = shared().join("models/coral");
    for name in [
        "mobilenet_v1_0.25_128_quant.tflite",
        "mobilenet_v2_1.0_224_quant.tflite",
        "tf2_mobilenet_v2_1.0_224_ptq.tflite",
        "keras_lstm_mnist_ptq.tflite",
        "deeplabv3_mnv2_dm05_pascal_quant.tflite",
        "movenet_single_pose_lightning_ptq.tflite",
    ] {
        let m = quantfarm_engine::tflite::read_model_file(&coral.join(name)).unwrap();
        out.push((name.to_string(), m));
    }
    let lstm = out
        .iter()
        .find(|(n, _)| n.contains("lstm"))
        .unwrap()
        .1
        .clone();
    let float_lstm = dequantize_model(&lstm, &DequantizeOptions::default()).unwrap();
    out.push(("keras_lstm dequantized".into(), float_lstm));

    let cfg = ZooConfig {
        width: 0.25,
        resolution: 96,
        ..ZooConfig::new(Arch::MobilenetV2)
    };
    let float = build(Arch::MobilenetV2, &cfg).unwrap();
    let mut cal = Calibrator::new(&float, 1).unwrap();
    let n = cal.input_shapes()[0].iter().product::<usize>();
    for s in 0..4 {
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + s * 13) % 200) as f32 / 100.0 - 1.0)
            .collect();
        cal.observe(&[x]).unwrap();
    }
    for mode in [
        QuantMode::Float16,
        QuantMode::Dynamic,
        QuantMode::Int8,
        QuantMode::Int16x8,
        QuantMode::Uint8,
    ] {
        let ranges = cal.ranges(
            quantfarm_engine::quant::calibrate::RangeMethod::MinMax,
            mode.activation_grid(),
        );
        let (q, _) = quantize_model(&float, &PtqOptions::new(mode), Some(&ranges)).unwrap();
        out.push((format!("zoo mobilenet_v2 0.25 96 {}", mode.name()), q));
    }
    out.push(("zoo mobilenet_v2 0.25 96 float32".into(), float));
    let cfg = ZooConfig {
        width: 0.25,
        resolution: 128,
        ..ZooConfig::new(Arch::MobilenetV1)
    };
    out.push((
        "zoo mobilenet_v1 0.25 128".into(),
        build(Arch::MobilenetV1, &cfg).unwrap(),
    ));
    let tf2 = out
        .iter()
        .find(|(n, _)| n.starts_with("tf2"))
        .unwrap()
        .1
        .clone();
    let tf2_float = dequantize_model(&tf2, &DequantizeOptions::default()).unwrap();
    out.push(("tf2_mobilenet_v2 dequantized".into(), tf2_float));
    out
}

#[test]
fn planned_memory_bounds_what_preparation_and_inference_allocate() {
    let models = models();
    let mut configs: Vec<(Option<Isa>, KernelChoice, usize)> = Vec::new();
    for isa in cpu::available_isas() {
        for threads in [1, 2] {
            configs.push((Some(isa), KernelChoice::Fast, threads));
        }
    }
    configs.push((None, KernelChoice::Reference, 1));
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    for (name, model) in &models {
        for &(isa, kernels, threads) in &configs {
            // The reference kernels of the big models take seconds per inference.
            if kernels == KernelChoice::Reference
                && (name.contains("deeplab") || name.contains("224") || name.contains("movenet"))
            {
                continue;
            }
            let opts = InterpreterOptions {
                threads,
                kernels,
                ..Default::default()
            };
            // Float models also as a half-precision device runs them (every op
            // flagged): the rounded copy of the model is part of the plan.
            let fp16_too = name.contains("float") || name.contains("dequantized");
            for fp16 in [false, true].into_iter().filter(|&f| !f || fp16_too) {
                let run = || {
                    let mut it = if fp16 {
                        let mask = vec![true; model.main().ops.len()];
                        Interpreter::new_fp16(model, opts, &mask).unwrap()
                    } else {
                        Interpreter::new(model, opts).unwrap()
                    };
                    fill_inputs(&mut it).unwrap();
                    it.invoke();
                    it.invoke();
                    it.memory_plan()
                };
                let (peak, plan) = match isa {
                    Some(isa) => cpu::with_isa(isa, || peak_of(run)),
                    None => peak_of(run),
                };
                let planned = plan.total() as usize;
                let what = format!(
                    "{name} ({isa:?}, {kernels:?}, {threads} thread(s){})",
                    if fp16 { ", fp16" } else { "" }
                );
                report.push(format!(
                    "{what}: peak {peak} B, planned {planned} B ({:.2}x): {plan:?}",
                    planned as f64 / peak as f64
                ));
                if peak > planned {
                    failures.push(format!(
                        "{what}: allocated {peak} B at peak, planned only {planned} B: {plan:?}"
                    ));
                }
                if planned > 4 * peak + (8 << 20) {
                    failures.push(format!(
                        "{what}: planned {planned} B for a peak of {peak} B: {plan:?}"
                    ));
                }
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

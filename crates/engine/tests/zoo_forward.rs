//! Runs the zoo models through the engine's interpreter: the generated weights must
//! keep the outputs finite and input-dependent, and the fast kernels must agree with
//! the reference kernels on whole networks (not only on single layers).

use quantfarm_engine::exec::{Interpreter, InterpreterOptions, KernelChoice};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

/// A smooth synthetic image in [-1, 1] whose content depends on `phase`.
fn image(r: usize, phase: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(r * r * 3);
    for y in 0..r {
        for x in 0..r {
            for c in 0..3 {
                let t =
                    (x as f32 * 0.07 + phase).sin() * (y as f32 * 0.05 - phase * c as f32).cos();
                v.push(t);
            }
        }
    }
    v
}

fn run(interp: &mut Interpreter, input: &[f32]) -> Vec<f32> {
    interp.set_input_f32(0, input).unwrap();
    interp.invoke();
    interp.output_f32(0).unwrap()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn check(arch: Arch, width: f32, resolution: usize, compare_reference: bool) {
    let cfg = ZooConfig {
        width,
        resolution,
        ..ZooConfig::new(arch)
    };
    let model = build(arch, &cfg).unwrap();
    let mut fast = Interpreter::new(&model, InterpreterOptions::default()).unwrap();
    let mut tops = Vec::new();
    for phase in [0.0f32, 1.3, 2.9] {
        let x = image(resolution, phase);
        let y = run(&mut fast, &x);
        assert_eq!(y.len(), 1001);
        assert!(
            y.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{arch:?}: non-finite output"
        );
        let sum: f32 = y.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "{arch:?}: softmax sums to {sum}");
        tops.push(argmax(&y));
        if compare_reference {
            let opts = InterpreterOptions {
                kernels: KernelChoice::Reference,
                ..Default::default()
            };
            let mut reference = Interpreter::new(&model, opts).unwrap();
            let r = run(&mut reference, &x);
            let diff = y
                .iter()
                .zip(&r)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{arch:?}: fast vs reference differ by {diff}");
        }
    }
    tops.dedup();
    assert!(
        tops.len() > 1,
        "{arch:?}: every input gives the same class {tops:?}"
    );
}

#[test]
fn small_mobilenets_run_and_match_reference() {
    check(Arch::MobilenetV1, 0.25, 128, true);
    check(Arch::MobilenetV2, 0.35, 96, true);
}

#[test]
fn full_size_models_run() {
    for arch in Arch::ALL {
        check(arch, 1.0, arch.default_resolution(), false);
    }
}

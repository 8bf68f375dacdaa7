//! Half-precision storage (`Interpreter::new_fp16`), the numerics of a mobile GPU that
//! may lose precision: flagged ops' outputs hold only half-precision values, unflagged
//! ops run exactly as without the option, and the result stays close to float32.

use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::zoo::{Arch, ZooConfig, build};

fn small_mobilenet() -> quantfarm_engine::ir::Model {
    let mut cfg = ZooConfig::new(Arch::MobilenetV1);
    cfg.width = 0.25;
    cfg.resolution = 96;
    cfg.seed = 7;
    build(Arch::MobilenetV1, &cfg).expect("zoo model")
}

fn input(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 255) as f32) / 255.0).collect()
}

fn run(interp: &mut Interpreter) -> Vec<f32> {
    let n = interp.inputs()[0].num_elements();
    interp.set_input_f32(0, &input(n)).expect("input");
    interp.invoke();
    interp.output_f32(0).expect("output")
}

#[test]
fn no_flagged_op_is_plain_float32() {
    let m = small_mobilenet();
    let ops = m.main().ops.len();
    let mut plain = Interpreter::new(&m, InterpreterOptions::default()).unwrap();
    let mut f16 = Interpreter::new_fp16(&m, InterpreterOptions::default(), &vec![false; ops])
        .expect("prepare");
    assert_eq!(run(&mut plain), run(&mut f16));
}

#[test]
fn flagged_ops_store_half_precision_and_stay_close() {
    let m = small_mobilenet();
    let ops = m.main().ops.len();
    let mut plain = Interpreter::new(&m, InterpreterOptions::default()).unwrap();
    let mut f16 = Interpreter::new_fp16(&m, InterpreterOptions::default(), &vec![true; ops])
        .expect("prepare");
    let (a, b) = (run(&mut plain), run(&mut f16));
    assert_ne!(a, b, "half precision must change some output");
    for &v in &b {
        assert_eq!(
            half::f16::from_f32(v).to_f32(),
            v,
            "{v} is not a half value"
        );
    }
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-2, "softmax outputs differ by {max_diff}");
    // Only the last op flagged: everything before it is float32 as without the option.
    let mut mask = vec![false; ops];
    mask[ops - 1] = true;
    let mut last = Interpreter::new_fp16(&m, InterpreterOptions::default(), &mask).unwrap();
    let c = run(&mut last);
    for (x, y) in a.iter().zip(&c) {
        assert_eq!(half::f16::from_f32(*x).to_f32(), *y);
    }
}

#[test]
fn a_mask_of_the_wrong_length_is_an_error() {
    let m = small_mobilenet();
    let e = Interpreter::new_fp16(&m, InterpreterOptions::default(), &[true]).err();
    assert!(e.is_some_and(|e| e.to_string().contains("fp16 placement")));
}

//! `quantfarm optimize --technique prune` on the committed CIFAR-10 float model (a
//! couple of fine-tuning steps), the int8 PTQ of its output, and bad flags.

mod cli_common;

use std::path::Path;

use cli_common::*;
use quantfarm_engine::tflite::read_model;
use quantfarm_train::prune::model_sparsity;

fn mnv1() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/cifar10/mnv1.float32.tflite")
        .display()
        .to_string()
}

fn sparsity_of(path: &Path) -> quantfarm_train::prune::Sparsity {
    model_sparsity(&read_model(&std::fs::read(path).unwrap()).unwrap())
}

#[test]
fn prune_writes_a_sparse_float_model_that_int8_ptq_keeps_sparse() {
    let out = tmp("mnv1_prune.tflite");
    let p = json_of(&quantfarm(&[
        "optimize",
        &mnv1(),
        "--technique",
        "prune",
        "--sparsity",
        "0.5",
        "--block",
        "1x4",
        "--epochs",
        "1",
        "--train-limit",
        "128",
        "--threads",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["technique"], "prune");
    let s = p["sparsity"].as_f64().unwrap();
    assert!((0.49..0.52).contains(&s), "sparsity {s}");
    assert!(p["final_loss"].as_f64().unwrap().is_finite());
    assert!(p["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(p["schedule"]["power"], 3.0);
    let float = sparsity_of(&out);
    assert!((float.fraction() - s).abs() < 1e-9);
    // Every layer at the target, within rounding of its 1×4 blocks.
    for (name, z, n) in &float.layers {
        let f = *z as f64 / *n as f64;
        assert!((0.45..0.55).contains(&f), "{name}: {z}/{n}");
    }
    let e = json_of(&quantfarm(&[
        "eval",
        out.to_str().unwrap(),
        "--dataset",
        "cifar10-test",
        "--limit",
        "20",
        "--json",
    ]));
    assert_eq!(e["n"], 20);

    // PTQ int8 afterwards: symmetric weights keep every zero.
    let q = tmp("mnv1_prune_int8.tflite");
    let o = quantfarm(&[
        "quantize",
        out.to_str().unwrap(),
        "--mode",
        "int8",
        "--calibration",
        "cifar10-train",
        "--calibration-size",
        "20",
        "-o",
        q.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let int8 = sparsity_of(&q);
    assert_eq!(int8.layers.len(), float.layers.len());
    for ((name, zf, n), (_, zq, nq)) in float.layers.iter().zip(&int8.layers) {
        assert_eq!(n, nq, "{name}");
        assert!(zq >= zf, "{name}: int8 {zq} zeros < float {zf}");
    }
}

#[test]
fn bad_prune_flags_are_one_line_errors() {
    let out = tmp("bad_prune.tflite");
    let out = out.to_str().unwrap();
    let m = mnv1();
    let run = |extra: &[&str]| {
        let mut args = vec!["optimize", m.as_str(), "-o", out];
        args.extend_from_slice(extra);
        quantfarm(&args)
    };
    let o = run(&["--technique", "prune", "--sparsity", "1"]);
    assert_user_error(&o, "--sparsity");
    let o = run(&["--technique", "prune", "--sparsity=-0.1"]);
    assert_user_error(&o, "--sparsity");
    let o = run(&["--technique", "prune"]);
    assert_user_error(&o, "--sparsity");
    let o = run(&[
        "--technique",
        "prune",
        "--sparsity",
        "0.5",
        "--block",
        "0x4",
    ]);
    assert_user_error(&o, "--block");
    let o = run(&[
        "--technique",
        "prune",
        "--sparsity",
        "0.5",
        "--block",
        "four",
    ]);
    assert_user_error(&o, "--block");
    let o = run(&["--technique", "qat", "--sparsity", "0.5"]);
    assert_user_error(&o, "--sparsity");
    let o = run(&[
        "--technique",
        "prune",
        "--sparsity",
        "0.5",
        "--train-limit",
        "10",
    ]);
    assert_user_error(&o, "fewer than one batch");
    assert!(!Path::new(out).exists());
}

//! `quantfarm optimize --technique prune|cluster|pqat|cqat` on the committed CIFAR-10
//! float model (a couple of fine-tuning steps), the int8 PTQ of its output, the
//! structure PQAT and CQAT keep, and bad flags.

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

/// `optimize mnv1 --technique prune ARGS --epochs 1 --train-limit N -o OUT --json`.
fn prune_mnv1(out: &Path, train_limit: &str, args: &[&str]) -> serde_json::Value {
    let m = mnv1();
    let mut all = vec!["optimize", m.as_str(), "--technique", "prune"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--epochs", "1", "--train-limit", train_limit, "-o"]);
    all.extend_from_slice(&[out.to_str().unwrap(), "--json"]);
    json_of(&quantfarm(&all))
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
        "--spare-fan-in",
        "0",
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
fn prune_spares_small_kernels_by_default_and_still_reaches_the_target() {
    let out = tmp("mnv1_prune_spare.tflite");
    let p = prune_mnv1(&out, "128", &["--sparsity", "0.5"]);
    assert_eq!(p["spare_fan_in"], 27);
    let sp = sparsity_of(&out);
    assert!((0.499..0.502).contains(&sp.fraction()), "{}", sp.fraction());
    let mut spared = 0;
    for (name, z, n) in &sp.layers {
        let f = *z as f64 / *n as f64;
        // The stem (3x3x3) and the 3x3 depthwise kernels stay dense; the rest is pruned
        // past 50% to make up for them.
        if f < 0.01 {
            spared += 1;
        } else {
            assert!(f > 0.5, "{name}: {z}/{n}");
        }
    }
    assert_eq!(
        spared, 12,
        "mnv1-cifar: the stem, the 10 depthwise kernels and block 0's pointwise (fan-in 16)"
    );
}

#[test]
fn initial_sparsity_equal_to_the_target_is_a_constant_schedule() {
    let out = tmp("mnv1_prune_constant.tflite");
    let p = prune_mnv1(
        &out,
        "256",
        &["--sparsity", "0.5", "--initial-sparsity", "0.5"],
    );
    let s = &p["schedule"];
    assert_eq!(s["initial_sparsity"], 0.5);
    assert_eq!(s["final_sparsity"], 0.5);
    let sp = sparsity_of(&out);
    assert!((0.499..0.502).contains(&sp.fraction()), "{}", sp.fraction());
}

#[test]
fn erk_allocation_keeps_small_kernels_denser_and_reaches_the_target() {
    let out = tmp("mnv1_prune_erk.tflite");
    let args = [
        "--sparsity",
        "0.75",
        "--allocation",
        "erk",
        "--spare-fan-in",
        "0",
    ];
    let p = prune_mnv1(&out, "128", &args);
    assert_eq!(p["allocation"], "erk");
    let sp = sparsity_of(&out);
    assert!((0.749..0.752).contains(&sp.fraction()), "{}", sp.fraction());
    let of = |suffix: &str| {
        let (_, z, n) = sp
            .layers
            .iter()
            .find(|(name, _, _)| name.contains(suffix))
            .unwrap_or_else(|| panic!("no layer {suffix} in {:?}", sp.layers));
        *z as f64 / *n as f64
    };
    // The stem and a depthwise kernel are pruned less than the widest pointwise conv,
    // which is pruned past the 75% average.
    let wide = of("block9/pointwise");
    assert!(wide > 0.75, "block9/pointwise at {wide}");
    assert!(of("stem") < wide);
    assert!(of("block0/depthwise") < wide);
}

#[test]
fn cluster_then_cqat_and_prune_then_pqat_keep_their_structure_in_int8() {
    let base = |t: &str, extra: &[&str], input: &str, out: &Path| {
        let mut args = vec![
            "optimize",
            input,
            "--technique",
            t,
            "--epochs",
            "1",
            "--train-limit",
            "128",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        json_of(&quantfarm(&args))
    };
    let clustered = tmp("mnv1_cluster16.tflite");
    let c = base(
        "cluster",
        &["--clusters", "16", "--init", "linear"],
        &mnv1(),
        &clustered,
    );
    assert_eq!(c["clusters"], 16);
    assert_eq!(c["init"], "Linear");
    assert_eq!(
        c["clustered_layers"], 22,
        "every conv, depthwise and dense kernel"
    );
    assert!(c["max_distinct_per_channel"].as_u64().unwrap() <= 16);
    let cq = tmp("mnv1_cqat.tflite");
    let q = base(
        "cqat",
        &["--clusters", "16"],
        clustered.to_str().unwrap(),
        &cq,
    );
    assert_eq!(q["technique"], "cqat");
    assert!(q["max_distinct_per_channel"].as_u64().unwrap() <= 16, "{q}");
    assert_eq!(q["float_ops"].as_array().unwrap().len(), 0);

    let pruned = tmp("mnv1_prune_for_pqat.tflite");
    base("prune", &["--sparsity", "0.5"], &mnv1(), &pruned);
    let pq = tmp("mnv1_pqat.tflite");
    let p = base("pqat", &[], pruned.to_str().unwrap(), &pq);
    assert!(p["sparsity"].as_f64().unwrap() >= 0.499, "{p}");
    assert!((sparsity_of(&pq).fraction() - p["sparsity"].as_f64().unwrap()).abs() < 1e-9);

    // CQAT needs a clustered model.
    let o = quantfarm(&[
        "optimize",
        &mnv1(),
        "--technique",
        "cqat",
        "--clusters",
        "16",
        "--train-limit",
        "128",
        "-o",
        tmp("never.tflite").to_str().unwrap(),
    ]);
    assert_user_error(&o, "distinct weight magnitudes");
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
    for s0 in ["--initial-sparsity=0.6", "--initial-sparsity=-0.1"] {
        let o = run(&["--technique", "prune", "--sparsity", "0.5", s0]);
        assert_user_error(&o, "--initial-sparsity");
    }
    let o = run(&["--technique", "qat", "--initial-sparsity", "0.5"]);
    assert_user_error(&o, "--initial-sparsity");
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
    let o = run(&["--technique", "cluster"]);
    assert_user_error(&o, "--clusters");
    for k in ["3", "0", "512"] {
        let o = run(&["--technique", "cluster", "--clusters", k]);
        assert_user_error(&o, "even number");
    }
    let o = run(&[
        "--technique",
        "prune",
        "--sparsity",
        "0.5",
        "--clusters",
        "16",
    ]);
    assert_user_error(&o, "--clusters");
    let o = run(&[
        "--technique",
        "cluster",
        "--clusters",
        "16",
        "--init",
        "random",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--init"));
    assert!(!Path::new(out).exists());
}

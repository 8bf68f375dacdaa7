//! End-to-end tests of `quantfarm train` on a small slice of the shared CIFAR-10, and
//! `quantfarm eval` on what it writes.

mod cli_common;

use cli_common::*;

#[test]
fn train_exports_a_model_that_eval_runs_and_resume_checks_its_options() {
    let out = tmp("mnv1.tflite");
    let o = quantfarm(&[
        "train",
        "--arch",
        "mnv1-cifar",
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--test-limit",
        "100",
        "--threads",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    let v = json_of(&o);
    assert_eq!(v["arch"], "mnv1-cifar");
    assert_eq!(v["train_images"], 256);
    assert_eq!(v["test_images"], 100);
    assert_eq!(v["epoch_log"].as_array().unwrap().len(), 1);
    let top1 = v["test_top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1));
    let ckpt = out.with_extension("ckpt");
    assert!(ckpt.exists(), "checkpoint written");

    // `eval` takes the model with the [0, 1] CIFAR input convention.
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

    // A finished run resumes to nothing more; a different --epochs is refused.
    let again = json_of(&quantfarm(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--test-limit",
        "10",
        "-o",
        tmp("again.tflite").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(again["epoch_log"].as_array().unwrap().len(), 0);
    let bad = quantfarm(&[
        "train",
        "--resume",
        ckpt.to_str().unwrap(),
        "--epochs",
        "3",
        "-o",
        tmp("x.tflite").to_str().unwrap(),
    ]);
    assert_user_error(&bad, "mnv1.ckpt");

    // QAT fine-tuning of the float file: a full-integer model that `eval` runs.
    let qat = tmp("mnv1_qat.tflite");
    let q = json_of(&quantfarm(&[
        "optimize",
        out.to_str().unwrap(),
        "--technique",
        "qat",
        "--epochs",
        "1",
        "--train-limit",
        "128",
        "-o",
        qat.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(q["float_ops"].as_array().unwrap().len(), 0);
    assert!(q["quantized_ops"].as_u64().unwrap() > 20);
    let e = json_of(&quantfarm(&[
        "eval",
        qat.to_str().unwrap(),
        "--dataset",
        "cifar10-test",
        "--limit",
        "20",
        "--json",
    ]));
    assert_eq!(e["n"], 20);
    // A model that is not a float CIFAR-10 model from `train` is refused by name.
    let coral = coral("mobilenet_v1_0.25_128_quant.tflite");
    let o = quantfarm(&[
        "optimize",
        coral.to_str().unwrap(),
        "--technique",
        "qat",
        "-o",
        tmp("nope.tflite").to_str().unwrap(),
    ]);
    assert_user_error(&o, "mobilenet_v1_0.25_128_quant.tflite");
}

#[test]
fn bad_train_input_is_a_one_line_error() {
    let out = tmp("bad.tflite");
    let o = quantfarm(&[
        "train",
        "--arch",
        "resnet-9000",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_user_error(&o, "resnet-9000");
    let junk = tmp("junk.ckpt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let o = quantfarm(&[
        "train",
        "--resume",
        junk.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_user_error(&o, "junk.ckpt");
    let o = quantfarm(&[
        "train",
        "--resume",
        tmp("missing.ckpt").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_user_error(&o, "missing.ckpt");
    let o = quantfarm(&[
        "train",
        "--arch",
        "mnv1-cifar",
        "-o",
        "/nonexistent-dir/m.tflite",
    ]);
    assert_user_error(&o, "nonexistent-dir");
}

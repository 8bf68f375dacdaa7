//! QAT on a tiny net: fine-tuning with fake-quant keeps the float accuracy, and the
//! exported full-integer model predicts what the QAT graph predicts.

mod common;

use common::{data, tiny_net};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::ir::DType;
use quantfarm_engine::quant::ptq::IoType;
use quantfarm_engine::tflite::{read_model, write_model};
use quantfarm_train::arch::init_weights;
use quantfarm_train::data::ImageSet;
use quantfarm_train::qat::{self, QatConfig};
use quantfarm_train::trainer::{TrainConfig, Trainer, evaluate};

#[test]
fn qat_finetune_and_int8_export() {
    let net = tiny_net(10);
    let train = data(512, 1);
    let test = data(200, 2);
    let cfg = TrainConfig {
        epochs: 6,
        batch: 32,
        micro_batch: 16,
        lr: 0.05,
        ..TrainConfig::recipe("tiny")
    };
    let w0 = init_weights(&net, 4);
    let mut t = Trainer::with(net.clone(), cfg, w0, 2);
    while !t.done() {
        t.run_epoch(&train, |_| {}).unwrap();
    }
    let (float_acc, _) = evaluate(&net, &t.weights, &test, 2);
    assert!(float_acc > 0.7, "float model did not learn: {float_acc}");

    let mut w = t.weights.clone();
    let ranges = qat::finetune(
        &net,
        &mut w,
        &train,
        &QatConfig {
            epochs: 1,
            batch: 32,
            ..Default::default()
        },
        2,
        |_, _, _| std::ops::ControlFlow::Continue(()),
    )
    .expect("never stopped");
    let qat_acc = qat::evaluate(&net, &w, &ranges, &test);
    assert!(
        qat_acc >= float_acc - 0.05,
        "QAT {qat_acc} vs float {float_acc}"
    );

    let (model, summary) = qat::export_int8(&net, &w, &ranges, IoType::Int8).unwrap();
    assert!(summary.float_ops.is_empty(), "{:?}", summary.float_ops);
    let model = read_model(&write_model(&model).unwrap()).unwrap();
    for t in &model.main().tensors {
        assert!(
            matches!(t.dtype, DType::I8 | DType::I32),
            "{} is {:?}",
            t.name,
            t.dtype
        );
    }
    let mut it = Interpreter::new(&model, InterpreterOptions::default()).unwrap();
    let q = it.inputs()[0].quant.clone().unwrap();
    let (s, zp) = q.params(0);
    let mut agree = 0;
    let mut hits = 0;
    let mut r2 = qat::Ranges::new(&net);
    r2.of.clone_from(&ranges.of);
    for i in 0..test.len() {
        let x = test.batch(&[i], None);
        let bytes: Vec<u8> = x
            .iter()
            .map(|v| ((v / s).round() + zp as f32).clamp(-128.0, 127.0) as i8 as u8)
            .collect();
        it.set_input_bytes(0, &bytes).unwrap();
        it.invoke();
        let out = it.output_f32(0).unwrap();
        let top = (0..10).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        hits += usize::from(top == usize::from(test.labels[i]));
        let one = ImageSet {
            images: test.images[i * 192..(i + 1) * 192].to_vec(),
            labels: vec![test.labels[i]],
            shape: [8, 8, 3],
        };
        // The QAT graph's own prediction for this image: accuracy 1 or 0.
        let qat_right = qat::evaluate(&net, &w, &r2, &one) == 1.0;
        agree += usize::from(qat_right == (top == usize::from(test.labels[i])));
    }
    let int8_acc = hits as f64 / test.len() as f64;
    eprintln!(
        "float {float_acc:.3}, QAT graph {qat_acc:.3}, int8 file {int8_acc:.3}, agreement {agree}/{}",
        test.len()
    );
    assert!(
        (int8_acc - qat_acc).abs() <= 0.03,
        "int8 {int8_acc} vs QAT graph {qat_acc}"
    );
    assert!(
        agree as f64 >= 0.95 * test.len() as f64,
        "agreement {agree}/{}",
        test.len()
    );
}

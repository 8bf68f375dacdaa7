//! Magnitude pruning on a tiny net and synthetic data: the schedule is TFMOT's
//! formula, every kernel reaches the target sparsity, blocks are pruned whole, the
//! exported float file and its int8 PTQ keep the zeros, accuracy holds.

mod common;

use common::{data, tiny_net, trained};
use std::ops::ControlFlow;

use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod};
use quantfarm_engine::quant::ptq::{PtqOptions, QuantMode, quantize_model};
use quantfarm_engine::tflite::{read_model, write_model};
use quantfarm_train::arch::init_weights;
use quantfarm_train::export;
use quantfarm_train::import;

use quantfarm_train::prune::{
    self, Allocation, Block, PolynomialDecay, Prunable, PruneConfig, layer_sparsities,
    magnitude_mask, model_sparsity, prunable,
};
use quantfarm_train::trainer::{TrainConfig, Trainer, evaluate};

fn cfg(sparsity: f32, block: Block) -> PruneConfig {
    PruneConfig {
        epochs: 3,
        batch: 32,
        lr: 0.01,
        final_sparsity: sparsity,
        block,
        frequency: 5,
        ..PruneConfig::default()
    }
}

fn go() -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn polynomial_decay_is_tfmots_formula() {
    let s = PolynomialDecay {
        frequency: 10,
        ..PolynomialDecay::new(0.1, 0.8, 10, 110)
    };
    s.check().unwrap();
    let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    close(s.sparsity(10), 0.1);
    // p = 0.5: 0.8 + (0.1 − 0.8)·0.5³
    close(s.sparsity(60), 0.8 - 0.7 * 0.125);
    // p = 0.25: 0.8 − 0.7·0.75³
    close(s.sparsity(35), 0.8 - 0.7 * 0.421875);
    close(s.sparsity(110), 0.8);
    close(s.sparsity(500), 0.8);
    let prunes: Vec<usize> = (0..130).filter(|&k| s.should_prune(k)).collect();
    assert_eq!(prunes, vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]);
    // The end step is a pruning step even off the frequency grid.
    let t = PolynomialDecay {
        frequency: 30,
        ..PolynomialDecay::new(0.0, 0.5, 0, 100)
    };
    let prunes: Vec<usize> = (0..200).filter(|&k| t.should_prune(k)).collect();
    assert_eq!(prunes, vec![0, 30, 60, 90, 100]);
    assert_eq!(PolynomialDecay::new(0.0, 0.5, 0, 10).frequency, 100);
    assert_eq!(PolynomialDecay::new(0.0, 0.5, 0, 10).power, 3.0);
    assert!(PolynomialDecay::new(0.0, 1.0, 0, 10).check().is_err());
    assert!(PolynomialDecay::new(-0.1, 0.5, 0, 10).check().is_err());
    assert!(PolynomialDecay::new(0.0, 0.5, 10, 5).check().is_err());
}

#[test]
fn masks_keep_the_largest_weights_and_whole_blocks() {
    let w: Vec<f32> = (0..40).map(|i| ((i * 7) % 40) as f32 - 19.5).collect();
    let m = magnitude_mask(&w, 5, 8, 0.6, Block::ONE);
    assert_eq!(m.iter().filter(|k| !**k).count(), 24);
    let kept_min = w
        .iter()
        .zip(&m)
        .filter(|(_, k)| **k)
        .map(|(x, _)| x.abs())
        .fold(f32::INFINITY, f32::min);
    let cut_max = w
        .iter()
        .zip(&m)
        .filter(|(_, k)| !**k)
        .map(|(x, _)| x.abs())
        .fold(0.0, f32::max);
    assert!(kept_min >= cut_max, "{kept_min} < {cut_max}");
    // 1×4 blocks of a [5, 8] kernel: 10 blocks, 5 pruned, each all-or-nothing.
    let m = magnitude_mask(&w, 5, 8, 0.5, Block { rows: 1, cols: 4 });
    for row in m.chunks(4) {
        assert!(row.iter().all(|k| *k == row[0]), "{row:?}");
    }
    assert_eq!(m.iter().filter(|k| !**k).count(), 20);
    assert_eq!(Block::parse("1x4"), Ok(Block { rows: 1, cols: 4 }));
    assert!(Block::parse("0x4").is_err() && Block::parse("4").is_err());
}

#[test]
fn finetune_reaches_the_target_and_export_keeps_the_zeros() {
    let train = data(512, 1);
    let test = data(200, 2);
    let (net, w_float) = trained(&train);
    let (float_acc, _) = evaluate(&net, &w_float, &test, 2);
    assert!(float_acc > 0.7, "float model did not learn: {float_acc}");

    let target = 0.6;
    let mut w = w_float.clone();
    let rep = prune::finetune(
        &net,
        &mut w,
        &train,
        &cfg(target, Block::ONE),
        2,
        |_, _, _| go(),
    )
    .unwrap()
    .expect("never stopped");
    assert_eq!(rep.steps, 48);
    assert!((rep.schedule.sparsity(rep.steps) - target).abs() < 1e-6);
    let layers = prunable(&net);
    assert_eq!(layers.len(), 6, "stem, expand, dw, project, down, logits");
    for p in &layers {
        let n = p.rows * p.cols;
        let zeros = w.params[p.param].iter().filter(|x| **x == 0.0).count();
        let want = n - ((n as f64) * (1.0 - f64::from(target))).round() as usize;
        assert!(
            zeros >= want && zeros <= want + 1,
            "{}: {zeros} of {n}, want {want}",
            p.name
        );
    }
    let (pruned_acc, _) = evaluate(&net, &w, &test, 2);
    eprintln!(
        "float {float_acc:.3}, pruned to {target}: {pruned_acc:.3}, loss {:.4}",
        rep.loss
    );
    assert!(
        pruned_acc >= float_acc - 0.08,
        "pruned {pruned_acc} vs float {float_acc}"
    );

    // Same seed, same weights (1 or 2 threads).
    let mut again = w_float.clone();
    prune::finetune(
        &net,
        &mut again,
        &train,
        &cfg(target, Block::ONE),
        1,
        |_, _, _| go(),
    )
    .unwrap()
    .unwrap();
    assert!(again == w, "pruning is not deterministic");

    // Stopping returns None.
    let mut stopped = w_float.clone();
    let r = prune::finetune(
        &net,
        &mut stopped,
        &train,
        &cfg(target, Block::ONE),
        2,
        |s, _, _| {
            if s >= 3 { ControlFlow::Break(()) } else { go() }
        },
    )
    .unwrap();
    assert!(r.is_none());

    // The stripped float file keeps every zero (BN folding scales, never shifts).
    let model = read_model(&write_model(&export::to_model(&net, &w).unwrap()).unwrap()).unwrap();
    let sp = model_sparsity(&model);
    assert_eq!(sp.layers.len(), 6);
    for (p, (name, z, n)) in layers.iter().zip(&sp.layers) {
        let zeros = w.params[p.param].iter().filter(|x| **x == 0.0).count();
        assert_eq!((*z, *n), (zeros, p.rows * p.cols), "{name}");
    }
    assert!(
        sp.fraction() >= f64::from(target) - 0.01,
        "{}",
        sp.fraction()
    );
    // The unpruned file has (almost) no zeros: the measure can fail.
    let dense = model_sparsity(&export::to_model(&net, &w_float).unwrap());
    assert!(dense.fraction() < 0.05, "{}", dense.fraction());

    // Int8 PTQ of the pruned file: symmetric weights map 0.0 to 0, so no zero is lost.
    let mut cal = Calibrator::new(&model, 1).unwrap();
    for i in 0..32 {
        cal.observe(&[test.batch(&[i], None)]).unwrap();
    }
    let ranges = cal.ranges(RangeMethod::MinMax, QuantMode::Int8.activation_grid());
    let (q, _) = quantize_model(&model, &PtqOptions::new(QuantMode::Int8), Some(&ranges)).unwrap();
    let q = read_model(&write_model(&q).unwrap()).unwrap();
    let qs = model_sparsity(&q);
    assert_eq!(qs.layers.len(), 6);
    for ((name, zf, n), (_, zq, nq)) in sp.layers.iter().zip(&qs.layers) {
        assert_eq!(n, nq);
        assert!(zq >= zf, "{name}: int8 has {zq} zeros, float {zf}");
    }
}

#[test]
fn block_pruning_zeroes_whole_blocks() {
    let train = data(256, 3);
    let net = tiny_net(12);
    let cfg0 = TrainConfig {
        epochs: 1,
        batch: 32,
        micro_batch: 16,
        lr: 0.05,
        ..TrainConfig::recipe("tiny")
    };
    let mut t = Trainer::with(net.clone(), cfg0, init_weights(&net, 5), 2);
    t.run_epoch(&train, |_| {}).unwrap();
    let model = export::to_model(&net, &t.weights).unwrap();
    let (net, mut w) = import::from_model(&model).unwrap();
    let block = Block { rows: 1, cols: 4 };
    let c = PruneConfig {
        epochs: 1,
        ..cfg(0.5, block)
    };
    let rep = prune::finetune(&net, &mut w, &train, &c, 2, |_, _, _| go())
        .unwrap()
        .unwrap();
    for (p, mask) in &rep.masks.layers {
        let v = &w.params[p.param];
        let mut pruned_blocks = 0;
        for r in 0..p.rows {
            for b in (0..p.cols).step_by(4) {
                let cols = b..(b + 4).min(p.cols);
                let m: Vec<bool> = cols.clone().map(|c| mask[r * p.cols + c]).collect();
                assert!(m.iter().all(|k| *k == m[0]), "{}: split block", p.name);
                if !m[0] {
                    pruned_blocks += 1;
                    assert!(cols.clone().all(|c| v[r * p.cols + c] == 0.0), "{}", p.name);
                }
            }
        }
        let blocks = p.rows * p.cols.div_ceil(4);
        let want = blocks - (blocks as f64 * 0.5).round() as usize;
        assert_eq!(pruned_blocks, want, "{}", p.name);
    }
}

#[test]
fn bad_settings_are_errors() {
    let train = data(64, 4);
    let net = tiny_net(12);
    let mut w = init_weights(&net, 1);
    let e = prune::finetune(&net, &mut w, &train, &cfg(1.0, Block::ONE), 1, |_, _, _| {
        go()
    });
    assert!(e.unwrap_err().to_string().contains("sparsity"));
    let big = PruneConfig {
        batch: 128,
        ..cfg(0.5, Block::ONE)
    };
    let e = prune::finetune(&net, &mut w, &train, &big, 1, |_, _, _| go());
    assert!(e.unwrap_err().to_string().contains("fewer than one batch"));
}

#[test]
fn schedule_end_before_begin_is_refused() {
    let train = data(64, 4);
    let net = tiny_net(12);
    let mut w = init_weights(&net, 1);
    let c = PruneConfig {
        begin_step: 5,
        end_step: Some(2),
        ..cfg(0.5, Block::ONE)
    };
    let e = prune::finetune(&net, &mut w, &train, &c, 1, |_, _, _| go());
    assert!(e.unwrap_err().to_string().contains("end step 2"));
}

#[test]
fn erk_allocation_reaches_the_target_and_favours_small_kernels() {
    let net = quantfarm_train::arch::mnv2_cifar();
    let all = prunable(&net);
    let size = |p: &Prunable| (p.rows * p.cols) as f64;
    let total: f64 = all.iter().map(size).sum();
    for target in [0.5f32, 0.75, 0.9] {
        let s = layer_sparsities(&all, target, 0, Allocation::Erk);
        let zeros: f64 = all
            .iter()
            .zip(&s)
            .map(|(p, s)| size(p) * f64::from(*s))
            .sum();
        assert!(
            (zeros / total - f64::from(target)).abs() < 1e-4,
            "{target}: {}",
            zeros / total
        );
        let of = |name: &str| s[all.iter().position(|p| p.name == name).unwrap()];
        // The stem and a depthwise kernel stay denser than the widest 1×1 conv.
        let head = of("head/weights");
        assert!(of("stem/weights") < head, "{target}: stem vs head");
        assert!(of("block1_0/depthwise/depthwise_weights") < head);
        assert!(of("block1_0/project/weights") < of("block6_0/project/weights"));
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // At a low target the smallest kernels hit the density cap and stay dense.
    let s = layer_sparsities(&all, 0.5, 0, Allocation::Erk);
    assert_eq!(s[0], 0.0, "stem at 50%");
    // Spared kernels stay dense under either allocation; uniform raises the rest.
    for alloc in [Allocation::Uniform, Allocation::Erk] {
        let s = layer_sparsities(&all, 0.75, 27, alloc);
        for (p, v) in all.iter().zip(&s) {
            if p.rows <= 27 {
                assert_eq!(*v, 0.0, "{} spared", p.name);
            }
        }
        let zeros: f64 = all
            .iter()
            .zip(&s)
            .map(|(p, s)| size(p) * f64::from(*s))
            .sum();
        assert!((zeros / total - 0.75).abs() < 1e-4);
    }
}

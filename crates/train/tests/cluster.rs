//! Weight clustering and the collaborative (structure-preserving) QAT on a tiny net:
//! clustering finds separated groups from every initialisation, fine-tuning keeps at most
//! K values per output channel through the float export and int8 PTQ (one integer
//! alphabet per layer), PQAT keeps every zero and CQAT every cluster in the int8 file.

mod common;

use common::{data, roundtrip, tiny_net, trained};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

use quantfarm_engine::ir::{DType, Model, OpKind};
use quantfarm_engine::quant::calibrate::{Calibrator, RangeMethod};
use quantfarm_engine::quant::ptq::{IoType, PtqOptions, QuantMode, WeightRange, quantize_model};
use quantfarm_engine::tflite::{read_model, write_model};
use quantfarm_train::arch::init_weights;
use quantfarm_train::cluster::{
    self, ClusterConfig, Clusters, Init, distinct_per_channel, kmeans_1d,
};
use quantfarm_train::collab;
use quantfarm_train::data::ImageSet;
use quantfarm_train::export;
use quantfarm_train::net::{Net, Weights};
use quantfarm_train::prune::{self, Block, PruneConfig, model_sparsity};
use quantfarm_train::qat::{self, QatConfig};
use quantfarm_train::rng::Rng;
use quantfarm_train::trainer::evaluate;

fn go() -> ControlFlow<()> {
    ControlFlow::Continue(())
}

fn ptq_int8(net: &Net, w: &Weights, calib: &ImageSet) -> Model {
    let model = read_model(&write_model(&export::to_model(net, w).unwrap()).unwrap()).unwrap();
    let mut cal = Calibrator::new(&model, 1).unwrap();
    for i in 0..32 {
        cal.observe(&[calib.batch(&[i], None)]).unwrap();
    }
    let ranges = cal.ranges(RangeMethod::MinMax, QuantMode::Int8.activation_grid());
    let opts = PtqOptions {
        weight_range: WeightRange::MaxAbs,
        ..PtqOptions::new(QuantMode::Int8)
    };
    let (q, _) = quantize_model(&model, &opts, Some(&ranges)).unwrap();
    read_model(&write_model(&q).unwrap()).unwrap()
}

/// Distinct int8 values over a whole kernel (all channels), per clustered layer.
fn layer_alphabets(q: &Model) -> Vec<usize> {
    let g = q.main();
    g.ops
        .iter()
        .filter(|op| matches!(op.kind, OpKind::Conv2D(_) | OpKind::FullyConnected(_)))
        .filter_map(|op| op.inputs.get(1).and_then(|&i| i))
        .map(|i| &g.tensors[i])
        .filter(|t| t.dtype == DType::I8)
        .map(|t| {
            t.data
                .as_ref()
                .unwrap()
                .iter()
                .collect::<BTreeSet<_>>()
                .len()
        })
        .collect()
}

#[test]
fn kmeans_finds_separated_groups_from_every_init() {
    let mut r = Rng::new(3);
    let mut v = Vec::new();
    for (centre, n) in [(-2.0f32, 40), (0.5, 100), (3.0, 25)] {
        for _ in 0..n {
            v.push(centre + 0.05 * r.normal());
        }
    }
    r.shuffle(&mut v);
    for init in [Init::Linear, Init::KmeansPlusPlus, Init::Density] {
        let (c, a) = kmeans_1d(&v, 3, init, &mut Rng::new(7));
        assert_eq!(c.len(), 3);
        // Every value lands in its own group's cluster.
        for (x, &j) in v.iter().zip(&a) {
            let group = if *x < -1.0 {
                0
            } else if *x < 2.0 {
                1
            } else {
                2
            };
            assert_eq!(
                usize::from(j),
                group,
                "{init:?}: {x} in {j}, centroids {c:?}"
            );
        }
        if init == Init::KmeansPlusPlus {
            // Lloyd's iterations move k-means++ seeds to the group means.
            for (got, want) in c.iter().zip([-2.0f32, 0.5, 3.0]) {
                assert!((got - want).abs() < 0.05, "{init:?}: {c:?}");
            }
        }
    }
    // Linear and density starts are kept (TFMOT trains them instead).
    let (c, _) = kmeans_1d(&v, 3, Init::Linear, &mut Rng::new(7));
    let mut s = v.clone();
    s.sort_by(f32::total_cmp);
    assert_eq!((c[0], c[2]), (s[0], s[s.len() - 1]));
    // The starting points differ as documented.
    let mut sorted = v.clone();
    sorted.sort_by(f32::total_cmp);
    let lin = cluster::init_centroids(&sorted, 3, Init::Linear, &mut Rng::new(1));
    assert_eq!((lin[0], lin[2]), (sorted[0], sorted[sorted.len() - 1]));
    assert!((lin[1] - (sorted[0] + sorted[164]) / 2.0).abs() < 1e-5);
    let den = cluster::init_centroids(&sorted, 3, Init::Density, &mut Rng::new(1));
    assert_eq!(den[1], sorted[82], "the median");
    let pp = cluster::init_centroids(&sorted, 3, Init::KmeansPlusPlus, &mut Rng::new(1));
    assert!(pp.iter().all(|x| sorted.contains(x)));
    assert_eq!(
        pp,
        cluster::init_centroids(&sorted, 3, Init::KmeansPlusPlus, &mut Rng::new(1))
    );
    // Fewer distinct values than clusters: each value its own cluster.
    let (c, _) = kmeans_1d(&[1.0, 1.0, 2.0], 4, Init::KmeansPlusPlus, &mut Rng::new(1));
    assert!(c.contains(&1.0) && c.contains(&2.0));
}

#[test]
fn clustering_keeps_k_values_per_channel_through_int8() {
    let train = data(512, 1);
    let test = data(200, 2);
    let (net, w_float) = trained(&train);
    let (float_acc, _) = evaluate(&net, &w_float, &test, 2);
    assert!(float_acc > 0.7, "float model did not learn: {float_acc}");
    // The trained model has many distinct values: the count below can fail.
    let dense = distinct_per_channel(&export::to_model(&net, &w_float).unwrap());
    assert!(dense.iter().any(|(_, n)| *n > 8), "{dense:?}");

    let k = 6;
    let cfg = ClusterConfig {
        tune: QatConfig {
            epochs: 3,
            batch: 32,
            lr: 0.01,
            ..QatConfig::default()
        },
        clusters: k,
        ..ClusterConfig::default()
    };
    let mut w = w_float.clone();
    let c = cluster::finetune(&net, &mut w, &train, &cfg, 2, |_, _, _| go())
        .unwrap()
        .expect("never stopped");
    assert_eq!(c.layers.len(), 6, "every kernel is clustered");
    let (acc, _) = evaluate(&net, &w, &test, 2);
    eprintln!("float {float_acc:.3}, {k} clusters: {acc:.3}");
    assert!(
        acc >= float_acc - 0.1,
        "clustered {acc} vs float {float_acc}"
    );

    let model = read_model(&write_model(&export::to_model(&net, &w).unwrap()).unwrap()).unwrap();
    for (name, n) in distinct_per_channel(&model) {
        assert!(n <= k, "float {name}: {n} values in a channel");
    }
    let q = ptq_int8(&net, &w, &test);
    for (name, n) in distinct_per_channel(&q) {
        assert!(n <= k, "int8 {name}: {n} values in a channel");
    }
    // ± centroids and max-abs scales: one alphabet of ≤ k integers per layer.
    let alphabets = layer_alphabets(&q);
    assert_eq!(alphabets.len(), 4, "stem, expand, project, logits");
    eprintln!("{alphabets:?}");
    for n in alphabets {
        assert!(n <= k, "a layer has {n} distinct int8 values");
    }

    // Same seed, same weights with one thread.
    let mut again = w_float.clone();
    cluster::finetune(&net, &mut again, &train, &cfg, 1, |_, _, _| go())
        .unwrap()
        .unwrap();
    assert!(again == w, "clustering is not deterministic");

    // The clustering is recovered from the file, for CQAT.
    let (net2, w2) = roundtrip(&net, &w);
    let rec = Clusters::recover(&net2, &w2, k).unwrap();
    assert_eq!(rec.layers.len(), 6);
    for (a, b) in rec.layers.iter().zip(&c.layers) {
        assert!(a.magnitudes.len() <= k / 2);
        assert_eq!(a.kernel.name, b.kernel.name);
    }
    // ... and refused on an unclustered model.
    let e = Clusters::recover(&net, &w_float, k)
        .unwrap_err()
        .to_string();
    assert!(e.contains("distinct weight magnitudes"), "{e}");
}

#[test]
fn pqat_keeps_zeros_and_cqat_keeps_clusters_in_the_int8_file() {
    let train = data(512, 1);
    let test = data(200, 2);
    let (net, w_float) = trained(&train);
    let qc = QatConfig {
        epochs: 2,
        batch: 32,
        lr: 0.01,
        ..QatConfig::default()
    };

    // PQAT from a 50%-pruned model.
    let mut pruned = w_float.clone();
    let pc = PruneConfig {
        epochs: 2,
        batch: 32,
        lr: 0.01,
        final_sparsity: 0.5,
        block: Block::ONE,
        frequency: 5,
        ..PruneConfig::default()
    };
    prune::finetune(&net, &mut pruned, &train, &pc, 2, |_, _, _| go())
        .unwrap()
        .unwrap();
    let (pnet, mut pw) = roundtrip(&net, &pruned);
    let zeros_before = model_sparsity(&export::to_model(&pnet, &pw).unwrap());
    let (ranges, _) = collab::pqat(&pnet, &mut pw, &train, &qc, 2, |_, _, _| go())
        .unwrap()
        .unwrap();
    let (q, _) = qat::export_int8(&pnet, &pw, &ranges, IoType::Float).unwrap();
    let q = read_model(&write_model(&q).unwrap()).unwrap();
    let after = model_sparsity(&q);
    assert!(
        zeros_before.fraction() >= 0.49,
        "{}",
        zeros_before.fraction()
    );
    for ((name, zf, _), (_, zq, _)) in zeros_before.layers.iter().zip(&after.layers) {
        assert!(zq >= zf, "{name}: int8 has {zq} zeros, pruned float {zf}");
    }
    // Plain QAT of the same pruned model does not keep them (the check can fail).
    let (pnet, mut plain) = roundtrip(&net, &pruned);
    let r = qat::finetune(&pnet, &mut plain, &train, &qc, 2, |_, _, _| go()).unwrap();
    let (q_plain, _) = qat::export_int8(&pnet, &plain, &r, IoType::Float).unwrap();
    assert!(
        model_sparsity(&q_plain).fraction() < after.fraction() - 0.05,
        "QAT kept {} vs PQAT {}",
        model_sparsity(&q_plain).fraction(),
        after.fraction()
    );

    // CQAT from a 6-cluster model.
    let k = 6;
    let mut clustered = w_float.clone();
    let cc = ClusterConfig {
        tune: qc.clone(),
        clusters: k,
        ..ClusterConfig::default()
    };
    cluster::finetune(&net, &mut clustered, &train, &cc, 2, |_, _, _| go())
        .unwrap()
        .unwrap();
    let (cnet, mut cw) = roundtrip(&net, &clustered);
    let (ranges, _) = collab::cqat(&cnet, &mut cw, &train, &qc, k, 2, |_, _, _| go())
        .unwrap()
        .unwrap();
    let (q, _) = qat::export_int8(&cnet, &cw, &ranges, IoType::Float).unwrap();
    let q = read_model(&write_model(&q).unwrap()).unwrap();
    for (name, n) in distinct_per_channel(&q) {
        assert!(n <= k, "CQAT int8 {name}: {n} values in a channel");
    }
    let (acc, _) = evaluate(&cnet, &cw, &test, 2);
    let (float_acc, _) = evaluate(&net, &w_float, &test, 2);
    eprintln!("float {float_acc:.3}, CQAT (float view) {acc:.3}");
    assert!(acc >= float_acc - 0.1, "CQAT {acc} vs float {float_acc}");
}

#[test]
fn bad_cluster_settings_are_errors() {
    let net = tiny_net(3);
    let w = init_weights(&net, 1);
    for k in [0, 1, 3, 258] {
        let e = Clusters::compute(&net, &w, k, Init::Linear, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("even number"), "{k}: {e}");
    }
    let train = data(64, 1);
    let mut w2 = w.clone();
    let cfg = ClusterConfig {
        tune: QatConfig {
            epochs: 0,
            ..QatConfig::default()
        },
        ..ClusterConfig::default()
    };
    assert!(cluster::finetune(&net, &mut w2, &train, &cfg, 1, |_, _, _| go()).is_err());
    assert!(Init::parse("random").is_err());
    assert_eq!(Init::parse("kmeans++"), Ok(Init::KmeansPlusPlus));
}

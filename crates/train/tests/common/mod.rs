//! The tiny net, synthetic task and trained starting model the fine-tuning tests
//! (QAT, pruning, clustering) share.

use quantfarm_engine::tflite::{read_model, write_model};
use quantfarm_train::arch::{Builder, init_weights};
use quantfarm_train::data::ImageSet;
use quantfarm_train::export;
use quantfarm_train::import;
use quantfarm_train::net::Net;
use quantfarm_train::net::Weights;
use quantfarm_train::ops::bn::Act;
use quantfarm_train::rng::Rng;
use quantfarm_train::trainer::{TrainConfig, Trainer};

/// An 8×8×3 net with every layer kind fine-tuning touches (conv, depthwise, residual
/// add, pooling, dense), ending in `classes` logits.
pub fn tiny_net(classes: usize) -> Net {
    let mut b = Builder::new("tiny", 8, 8, 3);
    let x = b.conv_bn(0, "stem", 8, 3, 1, Act::Relu6);
    let y = b.conv_bn(x, "expand", 16, 1, 1, Act::Relu6);
    let y = b.dw_bn(y, "dw", 3, 1, Act::Relu6);
    let y = b.conv_bn(y, "project", 8, 1, 1, Act::None);
    let x = b.add(x, y, "add");
    let x = b.dw_bn(x, "down", 3, 2, Act::Relu6);
    let p = b.gap(x);
    b.dense(p, "logits", classes);
    b.finish()
}

/// `n` 8×8 images; label = the channel with the largest mean, plus noise.
pub fn data(n: usize, seed: u64) -> ImageSet {
    let mut r = Rng::new(seed);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..n {
        let label = r.below(3);
        for _ in 0..64 {
            for c in 0..3 {
                let base = if c == label { 100 } else { 80 };
                images.push((base + r.below(110)) as u8);
            }
        }
        labels.push(label as u8);
    }
    ImageSet {
        images,
        labels,
        shape: [8, 8, 3],
    }
}

/// `tiny_net(12)` trained 6 epochs on `train`, through the `.tflite` the CLI writes
/// and reads (so batch norm is the identity, as for an imported model).
#[allow(dead_code)] // not every test binary fine-tunes from a trained model
pub fn trained(train: &ImageSet) -> (Net, Weights) {
    let net = tiny_net(12);
    let cfg = TrainConfig {
        epochs: 6,
        batch: 32,
        micro_batch: 16,
        lr: 0.05,
        ..TrainConfig::recipe("tiny")
    };
    let mut t = Trainer::with(net.clone(), cfg, init_weights(&net, 4), 2);
    while !t.done() {
        t.run_epoch(train, |_| {}).unwrap();
    }
    roundtrip(&net, &t.weights)
}

/// `net` with weights `w` through the `.tflite` the CLI writes and reads.
#[allow(dead_code)]
pub fn roundtrip(net: &Net, w: &Weights) -> (Net, Weights) {
    let model = export::to_model(net, w).unwrap();
    let model = read_model(&write_model(&model).unwrap()).unwrap();
    import::from_model(&model).unwrap()
}

//! A run interrupted after an epoch and resumed from its checkpoint ends with the
//! same weights, optimizer state and BN statistics as the uninterrupted run — bit for
//! bit, and also when the resumed part uses another thread count.

use quantfarm_train::arch::{Builder, init_weights};
use quantfarm_train::checkpoint::Checkpoint;
use quantfarm_train::data::ImageSet;
use quantfarm_train::net::Net;
use quantfarm_train::ops::bn::Act;
use quantfarm_train::rng::Rng;
use quantfarm_train::trainer::{TrainConfig, Trainer};

fn tiny_net() -> Net {
    let mut b = Builder::new("tiny", 8, 8, 3);
    let x = b.conv_bn(0, "stem", 8, 3, 1, Act::Relu6);
    let y = b.dw_bn(x, "dw", 3, 1, Act::Relu6);
    let y = b.conv_bn(y, "project", 8, 1, 1, Act::None);
    let x = b.add(x, y, "add");
    let x = b.dw_bn(x, "down", 3, 2, Act::Relu);
    let p = b.gap(x);
    b.dense(p, "logits", 10);
    b.finish()
}

/// Images whose label is the channel with the largest mean (learnable).
fn data(n: usize) -> ImageSet {
    let mut r = Rng::new(42);
    let mut images = Vec::with_capacity(n * 192);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let label = r.below(3);
        for _ in 0..64 {
            for c in 0..3 {
                let base = if c == label { 140 } else { 60 };
                images.push((base + r.below(100)) as u8);
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

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch: 16,
        micro_batch: 8,
        lr: 0.05,
        seed: 9,
        ..TrainConfig::recipe("tiny")
    }
}

fn trainer(threads: usize) -> Trainer {
    let net = tiny_net();
    let w = init_weights(&net, config().seed);
    Trainer::with(net, config(), w, threads)
}

#[test]
fn interrupted_and_resumed_run_equals_the_uninterrupted_one() {
    let set = data(96);
    let mut full = trainer(2);
    let mut losses = Vec::new();
    while !full.done() {
        losses.push(full.run_epoch(&set, |_| {}).unwrap().loss);
    }
    assert!(
        losses[3] < losses[0] * 0.9,
        "training does not learn: {losses:?}"
    );

    let dir = std::env::temp_dir().join(format!("qf-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("run.ckpt");
    {
        let mut first = trainer(1);
        first.run_epoch(&set, |_| {}).unwrap();
        first.checkpoint().save(&ck).unwrap();
        // The process "dies" here.
    }
    let mut resumed = trainer(2);
    resumed.restore(Checkpoint::load(&ck).unwrap()).unwrap();
    assert_eq!(resumed.epoch, 1);
    while !resumed.done() {
        resumed.run_epoch(&set, |_| {}).unwrap();
        resumed.checkpoint().save(&ck).unwrap();
    }
    assert!(
        resumed.weights == full.weights,
        "weights differ after resuming"
    );
    assert!(
        resumed.sgd == full.sgd,
        "optimizer state differs after resuming"
    );
    assert_eq!(resumed.checkpoint(), full.checkpoint());
    // No temporary file is left behind.
    assert!(!ck.with_extension("tmp").exists());

    // A damaged checkpoint is refused with the file named.
    let mut bytes = std::fs::read(&ck).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&ck, &bytes).unwrap();
    let err = Checkpoint::load(&ck).unwrap_err().to_string();
    assert!(err.contains("run.ckpt") && err.contains("damaged"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Time training steps of an architecture on random images (no dataset needed):
//! `cargo run --release --example epoch_time -- mnv2-cifar [steps] [threads] [micro-batch]`.
use quantfarm_train::arch;
use quantfarm_train::data::ImageSet;
use quantfarm_train::trainer::{TrainConfig, Trainer};

/// User + system CPU seconds of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("mnv2-cifar", |s| s.as_str());
    let steps: usize = args.get(2).map_or(10, |s| s.parse().expect("steps"));
    let threads: usize = args.get(3).map_or(2, |s| s.parse().expect("threads"));
    let net = arch::build(name).expect("arch");
    println!(
        "{name}: {} params, {:.1} M MACs/image",
        net.param_count(),
        net.macs() as f64 / 1e6
    );
    let mut cfg = TrainConfig::recipe(name);
    cfg.epochs = 1;
    if let Some(mb) = args.get(4) {
        cfg.micro_batch = mb.parse().expect("micro-batch");
    }
    let n = steps * cfg.batch;
    let mut r = quantfarm_train::rng::Rng::new(5);
    let data = ImageSet {
        images: (0..n * 3072).map(|_| r.below(256) as u8).collect(),
        labels: (0..n).map(|_| r.below(10) as u8).collect(),
        shape: [32, 32, 3],
    };
    let mut t = Trainer::new(cfg, threads).expect("trainer");
    let cpu0 = cpu_seconds();
    let rep = t.run_epoch(&data, |_| {}).expect("epoch");
    let cpu = cpu_seconds() - cpu0;
    let per_img = rep.seconds / rep.images as f64;
    println!(
        "{steps} steps x {} images on {threads} threads: {:.2} s, {:.3} ms/image, 50k-image epoch ~ {:.0} s (loss {:.3})",
        rep.images / steps,
        rep.seconds,
        per_img * 1e3,
        per_img * 50_000.0,
        rep.loss
    );
    println!(
        "CPU time {cpu:.2} s ({:.3} ms/image; a 50k epoch with {threads} threads fully free ~ {:.0} s)",
        cpu / rep.images as f64 * 1e3,
        cpu / rep.images as f64 * 50_000.0 / threads as f64
    );
}

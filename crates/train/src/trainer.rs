//! The training loop: epochs of shuffled, augmented batches; each batch split into
//! fixed-size micro-batches run on worker threads (forward + backward, batch norm
//! over the micro-batch), gradients summed in micro-batch order, one SGD step.
//! Because micro-batches, augmentation and summation order do not depend on the
//! thread count, the weights after an epoch are the same for 1 or 2 threads, and a
//! run resumed from a checkpoint equals the uninterrupted run bit for bit.

use std::path::Path;
use std::time::Instant;

use quantfarm_engine::{EngineError, Result};

use crate::arch;
use crate::checkpoint::Checkpoint;
use crate::data::ImageSet;
use crate::net::{Net, Pool, Weights};
use crate::ops::bn::BatchStats;
use crate::optim::{Schedule, Sgd};
use crate::rng::Rng;

/// Everything that decides a run's result (the thread count does not).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub arch: String,
    pub epochs: usize,
    pub batch: usize,
    /// Images per forward/backward unit (and per batch-norm statistic).
    pub micro_batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub warmup_epochs: f32,
    /// BN running statistics: `r ← m·r + (1 − m)·batch`.
    pub bn_momentum: f32,
    pub seed: u64,
    /// Train on an evenly spaced subset of this many images.
    pub train_limit: Option<usize>,
}

impl TrainConfig {
    /// The recipe's defaults for an architecture.
    pub fn recipe(arch: &str) -> TrainConfig {
        TrainConfig {
            arch: arch.to_string(),
            epochs: 20,
            batch: 128,
            micro_batch: 32,
            // The gated net's third-order products make its gradients steeper.
            lr: if arch == "gated-cifar" { 0.05 } else { 0.1 },
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            warmup_epochs: 1.0,
            bn_momentum: 0.9,
            seed: 1,
            train_limit: None,
        }
    }

    pub fn to_text(&self) -> String {
        format!(
            "arch={}\nepochs={}\nbatch={}\nmicro_batch={}\nlr={}\nmomentum={}\nnesterov={}\nweight_decay={}\nwarmup_epochs={}\nbn_momentum={}\nseed={}\ntrain_limit={}\n",
            self.arch,
            self.epochs,
            self.batch,
            self.micro_batch,
            self.lr,
            self.momentum,
            self.nesterov,
            self.weight_decay,
            self.warmup_epochs,
            self.bn_momentum,
            self.seed,
            self.train_limit.map_or("none".into(), |v| v.to_string()),
        )
    }

    pub fn from_text(t: &str) -> std::result::Result<TrainConfig, String> {
        let mut c = TrainConfig::recipe("");
        for line in t.lines().filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or(format!("bad config line '{line}'"))?;
            let bad = |_| format!("bad value for {k}: '{v}'");
            match k {
                "arch" => c.arch = v.to_string(),
                "epochs" => c.epochs = v.parse().map_err(bad)?,
                "batch" => c.batch = v.parse().map_err(bad)?,
                "micro_batch" => c.micro_batch = v.parse().map_err(bad)?,
                "lr" => c.lr = v.parse().map_err(|_| format!("bad value for {k}"))?,
                "momentum" => c.momentum = v.parse().map_err(|_| format!("bad value for {k}"))?,
                "nesterov" => c.nesterov = v == "true",
                "weight_decay" => {
                    c.weight_decay = v.parse().map_err(|_| format!("bad value for {k}"))?
                }
                "warmup_epochs" => {
                    c.warmup_epochs = v.parse().map_err(|_| format!("bad value for {k}"))?
                }
                "bn_momentum" => {
                    c.bn_momentum = v.parse().map_err(|_| format!("bad value for {k}"))?
                }
                "seed" => c.seed = v.parse().map_err(bad)?,
                "train_limit" => {
                    c.train_limit = if v == "none" {
                        None
                    } else {
                        Some(v.parse().map_err(bad)?)
                    }
                }
                _ => return Err(format!("unknown config key '{k}'")),
            }
        }
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        if self.batch == 0 || self.micro_batch == 0 || !self.batch.is_multiple_of(self.micro_batch)
        {
            return Err(EngineError::bad_input(format!(
                "batch {} must be a positive multiple of the micro-batch {}",
                self.batch, self.micro_batch
            )));
        }
        if self.epochs == 0 {
            return Err(EngineError::bad_input("epochs must be at least 1"));
        }
        Ok(())
    }
}

/// Progress of one batch, for the caller's display.
#[derive(Debug, Clone, Copy)]
pub struct BatchInfo {
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    /// Running mean loss and accuracy of the epoch so far.
    pub loss: f64,
    pub accuracy: f64,
    pub lr: f32,
}

/// One finished epoch.
#[derive(Debug, Clone, Copy)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub seconds: f64,
    pub images: usize,
}

pub struct Trainer {
    pub net: Net,
    pub config: TrainConfig,
    pub weights: Weights,
    pub sgd: Sgd,
    /// Epochs finished.
    pub epoch: usize,
    rng: Rng,
    pub threads: usize,
    /// One buffer pool per worker thread, kept across steps.
    pools: Vec<Pool>,
}

const SALT_AUG: u64 = 2;

impl Trainer {
    pub fn new(config: TrainConfig, threads: usize) -> Result<Trainer> {
        config.check()?;
        let net = arch::build(&config.arch).ok_or_else(|| {
            EngineError::bad_input(format!(
                "unknown architecture '{}' (known: {})",
                config.arch,
                arch::ARCHS.join(", ")
            ))
        })?;
        let weights = arch::init_weights(&net, config.seed);
        Ok(Trainer::with(net, config, weights, threads))
    }

    /// A trainer over any net and starting weights (tests, fine-tuning).
    pub fn with(net: Net, config: TrainConfig, weights: Weights, threads: usize) -> Trainer {
        keep_freed_memory();
        let sizes: Vec<usize> = net.params.iter().map(|p| p.len).collect();
        let sgd = Sgd::new(
            &sizes,
            config.momentum,
            config.nesterov,
            config.weight_decay,
        );
        let rng = Rng::new(config.seed);
        Trainer {
            net,
            config,
            weights,
            sgd,
            epoch: 0,
            rng,
            threads: threads.max(1),
            pools: (0..threads.max(1)).map(|_| Pool::default()).collect(),
        }
    }

    /// Continue from a checkpoint (its configuration wins).
    pub fn resume(path: &Path, threads: usize) -> Result<Trainer> {
        let ck = Checkpoint::load(path)?;
        let mut t = Trainer::new(ck.config.clone(), threads)?;
        t.restore(ck)
            .map_err(|e| EngineError::bad_input(format!("{}: {e}", path.display())))?;
        Ok(t)
    }

    /// Load a checkpoint's state into this trainer (same architecture).
    pub fn restore(&mut self, ck: Checkpoint) -> std::result::Result<(), String> {
        let same = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.len() == y.len())
        };
        if !same(&ck.weights.params, &self.weights.params)
            || !same(&ck.velocity, &self.sgd.velocity)
            || !same(&ck.weights.running_mean, &self.weights.running_mean)
            || !same(&ck.weights.running_var, &self.weights.running_var)
        {
            return Err(format!(
                "tensors do not match architecture {}",
                self.config.arch
            ));
        }
        self.weights = ck.weights;
        self.sgd.velocity = ck.velocity;
        self.epoch = ck.epoch;
        self.rng = Rng::new(ck.rng_state);
        Ok(())
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            config: self.config.clone(),
            epoch: self.epoch,
            rng_state: self.rng.state(),
            weights: self.weights.clone(),
            velocity: self.sgd.velocity.clone(),
        }
    }

    pub fn steps_per_epoch(&self, data: &ImageSet) -> usize {
        data.len() / self.config.batch
    }

    fn schedule(&self, data: &ImageSet) -> Schedule {
        let spe = self.steps_per_epoch(data);
        Schedule {
            peak: self.config.lr,
            warmup: ((self.config.warmup_epochs * spe as f32) as usize).max(1),
            total: spe * self.config.epochs,
        }
    }

    pub fn done(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// Train one epoch; `progress` sees every batch.
    pub fn run_epoch(
        &mut self,
        data: &ImageSet,
        mut progress: impl FnMut(&BatchInfo),
    ) -> Result<EpochReport> {
        data.check_batch(self.config.batch)?;
        let steps = self.steps_per_epoch(data);
        let start = Instant::now();
        let epoch_key = self.rng.next_u64();
        let mut order: Vec<usize> = (0..data.len()).collect();
        Rng::derive(epoch_key, &[1]).shuffle(&mut order);
        let aug_key = Rng::derive(epoch_key, &[SALT_AUG]).next_u64();
        let sched = self.schedule(data);
        let decay: Vec<bool> = self.net.params.iter().map(|p| p.decay).collect();
        let (b, mb) = (self.config.batch, self.config.micro_batch);
        let scale = 1.0 / b as f32;
        let (mut loss_sum, mut hits, mut seen) = (0f64, 0usize, 0usize);
        for step in 0..steps {
            let idx = &order[step * b..(step + 1) * b];
            let results = micro_batches(
                &self.net,
                &self.weights,
                &mut self.pools,
                data,
                idx,
                mb,
                aug_key,
                scale,
            );
            let mut grads: Option<Vec<Vec<f32>>> = None;
            let mut stats: Vec<Vec<BatchStats>> = vec![Vec::new(); self.net.stats.len()];
            for (l, c, g, st) in results {
                loss_sum += l;
                hits += c;
                match &mut grads {
                    None => grads = Some(g),
                    Some(acc) => {
                        for (a, v) in acc.iter_mut().zip(&g) {
                            a.iter_mut().zip(v).for_each(|(x, y)| *x += y);
                        }
                    }
                }
                for (node, s) in self.net.nodes.iter().zip(st) {
                    if let (crate::net::Kind::BnAct { stat, .. }, Some(s)) = (&node.kind, s) {
                        stats[*stat].push(s);
                    }
                }
            }
            seen += b;
            if !loss_sum.is_finite() {
                // Stop before the update: the weights stay as the last finite step left them.
                return Err(EngineError::bad_input(format!(
                    "training diverged at epoch {} step {}/{steps}: the loss is not finite \
                     (a lower learning rate may help)",
                    self.epoch + 1,
                    step + 1
                )));
            }
            self.update_running_stats(&stats, mb);
            let global = self.epoch * steps + step;
            let lr = sched.lr(global);
            let grads = grads.expect("at least one micro-batch");
            self.sgd.step(&mut self.weights.params, &grads, &decay, lr);
            progress(&BatchInfo {
                epoch: self.epoch + 1,
                step: step + 1,
                steps,
                loss: loss_sum / seen as f64,
                accuracy: hits as f64 / seen as f64,
                lr,
            });
        }
        self.epoch += 1;
        Ok(EpochReport {
            epoch: self.epoch,
            loss: loss_sum / seen as f64,
            train_accuracy: hits as f64 / seen as f64,
            seconds: start.elapsed().as_secs_f64(),
            images: seen,
        })
    }

    /// Running statistics from the mean of the micro-batches' statistics (variance
    /// made unbiased with the micro-batch's element count).
    fn update_running_stats(&mut self, stats: &[Vec<BatchStats>], mb: usize) {
        let m = self.config.bn_momentum;
        for (i, list) in stats.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let count = list.len() as f32;
            let c = self.net.stats[i];
            // Elements per channel in one micro-batch's statistic.
            let node = self
                .net
                .nodes
                .iter()
                .find(|n| matches!(n.kind, crate::net::Kind::BnAct { stat, .. } if stat == i));
            let per = node.map_or(1, |n| n.len() / c) * mb;
            let unbias = per as f32 / (per.max(2) - 1) as f32;
            for ch in 0..c {
                let mean = list.iter().map(|s| s.mean[ch]).sum::<f32>() / count;
                let var = list.iter().map(|s| s.var[ch]).sum::<f32>() / count * unbias;
                let rm = &mut self.weights.running_mean[i][ch];
                *rm = m * *rm + (1.0 - m) * mean;
                let rv = &mut self.weights.running_var[i][ch];
                *rv = m * *rv + (1.0 - m) * var;
            }
        }
    }

    /// Top-1 accuracy and mean loss with the running statistics (inference mode).
    pub fn evaluate(&self, data: &ImageSet) -> (f64, f64) {
        evaluate(&self.net, &self.weights, data, self.threads)
    }
}

/// Tell glibc's allocator to keep freed memory instead of returning it to the kernel.
///
/// Every step allocates and frees gradient and im2col buffers of a few hundred KB to a
/// few MB. With glibc's defaults each of those is an mmap/munmap pair whose pages are
/// faulted in again on the next step: on a 2-core Zen 5 a prune fine-tune of
/// `mnv2-cifar` spent 40% of its CPU time in the kernel (378 M minor faults in 8
/// epochs). A fixed 32 MiB mmap threshold and a trim threshold far above the working
/// set made the same epoch 1.9x faster with identical results. Process-wide and
/// idempotent; a no-op off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; it is safe to call at
            // any time, and a refused setting (return value 0) leaves the defaults.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
                libc::mallopt(libc::M_TOP_PAD, 64 << 20);
            }
        });
    }
}

/// Run the micro-batches of one batch on the worker threads (one pool each);
/// results in micro-batch order.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn micro_batches(
    net: &Net,
    wts: &Weights,
    pools: &mut [Pool],
    data: &ImageSet,
    idx: &[usize],
    mb: usize,
    aug_key: u64,
    scale: f32,
) -> Vec<(f64, usize, Vec<Vec<f32>>, Vec<Option<BatchStats>>)> {
    let chunks: Vec<&[usize]> = idx.chunks(mb).collect();
    let threads = pools.len().min(chunks.len());
    let run = |ids: &[usize], pool: &mut Pool| {
        let x = data.batch(ids, Some(aug_key));
        let labels: Vec<u8> = ids.iter().map(|&i| data.labels[i]).collect();
        net.train_step(wts, x, &labels, scale, pool)
    };
    if threads <= 1 {
        return chunks.iter().map(|c| run(c, &mut pools[0])).collect();
    }
    let mut slots: Vec<Option<_>> = (0..chunks.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = pools
            .iter_mut()
            .take(threads)
            .enumerate()
            .map(|(t, pool)| {
                let chunks = &chunks;
                let run = &run;
                s.spawn(move || {
                    (t..chunks.len())
                        .step_by(threads)
                        .map(|i| (i, run(chunks[i], pool)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("training thread panicked") {
                slots[i] = Some(r);
            }
        }
    });
    slots
        .into_iter()
        .map(|s| s.expect("every micro-batch ran"))
        .collect()
}

/// Top-1 accuracy and mean loss of `net` on `data` in inference mode.
pub fn evaluate(net: &Net, wts: &Weights, data: &ImageSet, threads: usize) -> (f64, f64) {
    let idx: Vec<usize> = (0..data.len()).collect();
    let chunks: Vec<&[usize]> = idx.chunks(100).collect();
    let threads = threads.clamp(1, chunks.len().max(1));
    let k = net.classes();
    let per_chunk = |ids: &[usize]| {
        let mut pool = Pool::default();
        let tape = net.forward(wts, data.batch(ids, None), ids.len(), false, &mut pool);
        let labels: Vec<u8> = ids.iter().map(|&i| data.labels[i]).collect();
        let mut d = vec![0f32; ids.len() * k];
        crate::ops::loss::softmax_xent(ids.len(), k, net.logits(&tape), &labels, 1.0, &mut d)
    };
    let totals: Vec<(f64, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let chunks = &chunks;
                let f = &per_chunk;
                s.spawn(move || {
                    (t..chunks.len())
                        .step_by(threads)
                        .map(|i| f(chunks[i]))
                        .fold((0f64, 0usize), |a, b| (a.0 + b.0, a.1 + b.1))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("eval thread panicked"))
            .collect()
    });
    let (loss, hits) = totals
        .iter()
        .fold((0f64, 0usize), |a, b| (a.0 + b.0, a.1 + b.1));
    let n = data.len().max(1) as f64;
    (hits as f64 / n, loss / n)
}

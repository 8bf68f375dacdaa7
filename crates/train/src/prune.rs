//! Magnitude pruning as TensorFlow Model Optimization's `prune_low_magnitude` does it:
//! every conv, depthwise and dense kernel (not biases, not batch-norm parameters)
//! gets a mask that keeps its largest-|w| weights (or blocks of weights, ranked by
//! their mean |w|); the masks are recomputed on a [`PolynomialDecay`] schedule while
//! a trained float model is fine-tuned, and masked weights are zero after every
//! optimizer step. The stripped result is the plain float model ([`crate::export`]):
//! folding batch norm multiplies each weight by a per-channel scale, so zeros stay
//! zero.
//!
//! Fine-tuning is QAT's loop without the fake quantization (batch norm frozen at its
//! running statistics, as an imported model's identity BN must be).

use std::ops::ControlFlow;

use quantfarm_engine::ir::{DType, Model, OpKind};
use quantfarm_engine::{EngineError, Result};

use crate::data::ImageSet;
use crate::net::{Kind, Net, Weights};
use crate::optim::Sgd;
use crate::qat::{self, Phase, QatConfig};

/// TFMOT's `PolynomialDecay`: sparsity rises from `initial_sparsity` at `begin_step`
/// to `final_sparsity` at `end_step`; masks change only on pruning steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolynomialDecay {
    pub initial_sparsity: f32,
    pub final_sparsity: f32,
    pub begin_step: usize,
    pub end_step: usize,
    pub power: f32,
    pub frequency: usize,
}

impl PolynomialDecay {
    /// TFMOT's defaults: power 3, frequency 100.
    pub fn new(initial: f32, last: f32, begin_step: usize, end_step: usize) -> PolynomialDecay {
        PolynomialDecay {
            initial_sparsity: initial,
            final_sparsity: last,
            begin_step,
            end_step,
            power: 3.0,
            frequency: 100,
        }
    }

    /// TFMOT's validation: sparsities in [0, 1), end ≥ begin, frequency > 0.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (name, s) in [
            ("initial sparsity", self.initial_sparsity),
            ("final sparsity", self.final_sparsity),
        ] {
            if !(0.0..1.0).contains(&s) {
                return Err(format!("{name} {s} is outside [0, 1)"));
            }
        }
        if self.end_step < self.begin_step {
            return Err(format!(
                "end step {} is before begin step {}",
                self.end_step, self.begin_step
            ));
        }
        if self.frequency == 0 {
            return Err("pruning frequency must be at least 1".into());
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            return Err(format!("power {} must be positive", self.power));
        }
        Ok(())
    }

    /// `final + (initial − final)·(1 − p)^power`, `p = (step − begin)/(end − begin)`
    /// clamped to [0, 1] (p = 1 when end = begin).
    pub fn sparsity(&self, step: usize) -> f32 {
        let span = self.end_step.saturating_sub(self.begin_step);
        let p = if span == 0 {
            1.0
        } else {
            (step.saturating_sub(self.begin_step) as f64 / span as f64).min(1.0)
        };
        let (i, f) = (
            f64::from(self.initial_sparsity),
            f64::from(self.final_sparsity),
        );
        (f + (i - f) * (1.0 - p).powf(f64::from(self.power))) as f32
    }

    /// A pruning step: inside [begin, end] and a multiple of `frequency` after begin,
    /// or the end step itself (so the final sparsity is always reached).
    pub fn should_prune(&self, step: usize) -> bool {
        (self.begin_step..=self.end_step).contains(&step)
            && ((step - self.begin_step).is_multiple_of(self.frequency.max(1))
                || step == self.end_step)
    }
}

/// Block shape over a kernel seen as `[rows = inputs, cols = output channels]` (the
/// Keras kernel layout TFMOT's `block_size` indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub rows: usize,
    pub cols: usize,
}

impl Block {
    pub const ONE: Block = Block { rows: 1, cols: 1 };

    /// `RxC`, e.g. `1x4`.
    pub fn parse(s: &str) -> std::result::Result<Block, String> {
        let bad = || format!("bad block size '{s}' (expected RxC with R, C ≥ 1, e.g. 1x4)");
        let (r, c) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let (rows, cols) = (
            r.trim().parse::<usize>().map_err(|_| bad())?,
            c.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if rows == 0 || cols == 0 {
            return Err(bad());
        }
        Ok(Block { rows, cols })
    }
}

/// A prunable kernel: parameter index and its 2-D view `[rows, cols]` (row-major, the
/// layout the net stores: conv `[k·k·Cin, Cout]`, depthwise `[k·k, C]`, dense
/// `[Cin, Cout]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prunable {
    pub param: usize,
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    /// Kernel side (1 for dense), for the Erdős–Rényi-kernel allocation.
    pub k: usize,
}

/// How a target sparsity is shared among the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Every kernel at one sparsity (TFMOT's per-layer pruning).
    #[default]
    Uniform,
    /// Erdős–Rényi-kernel (Evci et al., "Rigging the Lottery", 2020): a kernel of
    /// shape `k×k×Cin×Cout` keeps a fraction proportional to
    /// `(k + k + Cin + Cout) / (k·k·Cin·Cout)` (capped at 1), scaled so the total
    /// reaches the target: small kernels (stem, depthwise, narrow 1×1) stay denser and
    /// the wide 1×1 and dense kernels, which hold most weights, are pruned harder.
    Erk,
}

/// Every conv, depthwise and dense kernel of `net`.
pub fn prunable(net: &Net) -> Vec<Prunable> {
    net.nodes
        .iter()
        .filter_map(|node| {
            let cout = node.shape[2];
            let cin = |i: usize| net.nodes[node.inputs[i]].shape[2];
            let (param, rows, k) = match node.kind {
                Kind::Conv { w, k, .. } => (w, k * k * cin(0), k),
                Kind::Depthwise { w, k, .. } => (w, k * k, k),
                Kind::Dense { w, .. } => (w, net.nodes[node.inputs[0]].len(), 1),
                _ => return None,
            };
            Some(Prunable {
                param,
                name: net.params[param].name.clone(),
                rows,
                cols: cout,
                k,
            })
        })
        .collect()
}

/// Keep-mask (`true` = kept) of a `[rows, cols]` kernel at `sparsity`: the
/// `round(blocks·(1 − sparsity))` blocks of largest mean |w| are kept (ties broken by
/// position, so the count is exact and the result deterministic). Edge blocks that
/// do not fill the block shape average over the weights they hold.
pub fn magnitude_mask(
    w: &[f32],
    rows: usize,
    cols: usize,
    sparsity: f32,
    block: Block,
) -> Vec<bool> {
    debug_assert_eq!(w.len(), rows * cols);
    let (br, bc) = (rows.div_ceil(block.rows), cols.div_ceil(block.cols));
    let blocks = br * bc;
    let mut score = vec![0f64; blocks];
    let mut count = vec![0usize; blocks];
    for r in 0..rows {
        for c in 0..cols {
            let b = (r / block.rows) * bc + c / block.cols;
            score[b] += f64::from(w[r * cols + c].abs());
            count[b] += 1;
        }
    }
    for (s, n) in score.iter_mut().zip(&count) {
        *s /= (*n).max(1) as f64;
    }
    let keep = ((blocks as f64) * (1.0 - f64::from(sparsity))).round() as usize;
    let mut order: Vec<usize> = (0..blocks).collect();
    // Largest first; equal scores keep the earlier block.
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
    let mut kept_block = vec![false; blocks];
    for &b in order.iter().take(keep.min(blocks)) {
        kept_block[b] = true;
    }
    (0..rows * cols)
        .map(|i| kept_block[(i / cols / block.rows) * bc + (i % cols) / block.cols])
        .collect()
}

/// Each kernel's sparsity for a total of `sparsity` over all kernels: kernels with a
/// fan-in of at most `spare_fan_in` get 0, the others share the rest by `allocation`
/// (each capped at 1).
pub fn layer_sparsities(
    all: &[Prunable],
    sparsity: f32,
    spare_fan_in: usize,
    allocation: Allocation,
) -> Vec<f32> {
    let size = |p: &Prunable| (p.rows * p.cols) as f64;
    let total: f64 = all.iter().map(size).sum();
    let open = |p: &Prunable| p.rows > spare_fan_in;
    let pruned: f64 = all.iter().filter(|p| open(p)).map(size).sum();
    match allocation {
        Allocation::Uniform => {
            let raised = if pruned == 0.0 {
                0.0
            } else {
                (f64::from(sparsity) * total / pruned).min(1.0) as f32
            };
            all.iter()
                .map(|p| if open(p) { raised } else { 0.0 })
                .collect()
        }
        Allocation::Erk => {
            // Density d = ε·score, capped at 1; kernels that hit the cap are kept dense
            // and ε is solved again over the rest until none does.
            let score = |p: &Prunable| {
                let cin = (p.rows / (p.k * p.k)).max(1) as f64;
                let (k, cout) = (p.k as f64, p.cols as f64);
                (2.0 * k + cin + cout) / (k * k * cin * cout)
            };
            let keep_total = (1.0 - f64::from(sparsity).clamp(0.0, 1.0)) * total;
            let mut dense: Vec<bool> = all.iter().map(|p| !open(p)).collect();
            let mut eps = 0.0;
            loop {
                let fixed: f64 = all
                    .iter()
                    .zip(&dense)
                    .filter(|(_, d)| **d)
                    .map(|(p, _)| size(p))
                    .sum();
                let weighted: f64 = all
                    .iter()
                    .zip(&dense)
                    .filter(|(_, d)| !**d)
                    .map(|(p, _)| size(p) * score(p))
                    .sum();
                if weighted == 0.0 {
                    break;
                }
                eps = ((keep_total - fixed) / weighted).max(0.0);
                let mut changed = false;
                for (p, d) in all.iter().zip(dense.iter_mut()) {
                    if !*d && eps * score(p) >= 1.0 {
                        *d = true;
                        changed = true;
                    }
                }
                if !changed {
                    break;
                }
            }
            all.iter()
                .zip(&dense)
                .map(|(p, &d)| {
                    if d {
                        0.0
                    } else {
                        (1.0 - eps * score(p)).clamp(0.0, 1.0) as f32
                    }
                })
                .collect()
        }
    }
}

/// The current masks, one per prunable kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Masks {
    pub layers: Vec<(Prunable, Vec<bool>)>,
}

impl Masks {
    /// Masks of every prunable kernel of `w` at `sparsity`. Kernels with a fan-in
    /// (`rows`) of at most `spare_fan_in` stay dense (TFMOT's advice to leave the first
    /// layer and other critical layers alone: a 3×3 depthwise kernel at 75% keeps 2 of
    /// its 9 weights), and the others are pruned harder so that the sparsity over all
    /// kernels still reaches `sparsity` (capped at 1).
    pub fn compute(
        net: &Net,
        w: &Weights,
        sparsity: f32,
        block: Block,
        spare_fan_in: usize,
    ) -> Masks {
        Masks::compute_with(net, w, sparsity, block, spare_fan_in, Allocation::Uniform)
    }

    /// [`Masks::compute`] with the target shared among the unspared kernels by
    /// `allocation`.
    pub fn compute_with(
        net: &Net,
        w: &Weights,
        sparsity: f32,
        block: Block,
        spare_fan_in: usize,
        allocation: Allocation,
    ) -> Masks {
        let all = prunable(net);
        let targets = layer_sparsities(&all, sparsity, spare_fan_in, allocation);
        Masks {
            layers: all
                .into_iter()
                .zip(targets)
                .map(|(p, s)| {
                    let m = magnitude_mask(&w.params[p.param], p.rows, p.cols, s, block);
                    (p, m)
                })
                .collect(),
        }
    }

    /// The masks that keep exactly the non-zero weights of `w` (a pruned model read
    /// back for pruning-preserving QAT).
    pub fn from_zeros(net: &Net, w: &Weights) -> Masks {
        Masks {
            layers: prunable(net)
                .into_iter()
                .map(|p| {
                    let m = w.params[p.param].iter().map(|x| *x != 0.0).collect();
                    (p, m)
                })
                .collect(),
        }
    }

    /// Zero the masked weights, and their momentum so the next step cannot revive them.
    pub fn apply(&self, w: &mut Weights, sgd: Option<&mut Sgd>) {
        let mut sgd = sgd;
        for (p, m) in &self.layers {
            for (x, &keep) in w.params[p.param].iter_mut().zip(m) {
                if !keep {
                    *x = 0.0;
                }
            }
            if let Some(s) = sgd.as_deref_mut() {
                for (v, &keep) in s.velocity[p.param].iter_mut().zip(m) {
                    if !keep {
                        *v = 0.0;
                    }
                }
            }
        }
    }
}

/// Pruning fine-tuning settings. `end_step: None` ends the schedule after three
/// quarters of the steps, so the last quarter recovers at the final sparsity.
#[derive(Debug, Clone)]
pub struct PruneConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub seed: u64,
    pub initial_sparsity: f32,
    pub final_sparsity: f32,
    pub block: Block,
    /// Kernels with at most this fan-in stay dense (see [`Masks::compute`]); 0 prunes
    /// every kernel.
    pub spare_fan_in: usize,
    /// How the target is shared among the unspared kernels.
    pub allocation: Allocation,
    pub begin_step: usize,
    pub end_step: Option<usize>,
    pub frequency: usize,
}

impl Default for PruneConfig {
    fn default() -> Self {
        let q = QatConfig::default();
        PruneConfig {
            epochs: q.epochs,
            batch: q.batch,
            // QAT's: mnv1-cifar recovers a little better at 0.02 (75%, 1 epoch: 78.70%
            // against 77.46%), but mnv2-cifar diverged there (docs/training.md).
            lr: q.lr,
            momentum: q.momentum,
            weight_decay: q.weight_decay,
            seed: q.seed,
            initial_sparsity: 0.0,
            final_sparsity: 0.5,
            block: Block::ONE,
            spare_fan_in: 0,
            allocation: Allocation::Uniform,
            begin_step: 0,
            end_step: None,
            frequency: 100,
        }
    }
}

impl PruneConfig {
    /// The schedule over `total` optimizer steps (an end before the begin step is left
    /// for [`PolynomialDecay::check`] to refuse).
    pub fn schedule(&self, total: usize) -> PolynomialDecay {
        let last = total.saturating_sub(1);
        let end = self.end_step.unwrap_or_else(|| (total * 3 / 4).min(last));
        PolynomialDecay {
            frequency: self.frequency,
            ..PolynomialDecay::new(
                self.initial_sparsity,
                self.final_sparsity,
                self.begin_step,
                end,
            )
        }
    }
}

/// What a finished fine-tuning reports.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneReport {
    pub steps: usize,
    pub schedule: PolynomialDecay,
    /// The masks in force at the end.
    pub masks: Masks,
    /// Mean training loss over all steps.
    pub loss: f64,
}

/// Fine-tune `w` on `data` with the masks enforced (micro-batches of 32 on `threads`
/// threads, QAT's SGD and cosine schedule, augmentation; deterministic for a seed).
/// `progress(step, steps, mean loss)` runs after every step; `Break` stops and then
/// `Ok(None)` is returned. Bad settings are errors, not panics.
pub fn finetune(
    net: &Net,
    w: &mut Weights,
    data: &ImageSet,
    cfg: &PruneConfig,
    threads: usize,
    mut progress: impl FnMut(usize, usize, f64) -> ControlFlow<()>,
) -> Result<Option<PruneReport>> {
    if cfg.epochs == 0 || cfg.batch == 0 {
        return Err(EngineError::bad_input(
            "epochs and batch must be at least 1",
        ));
    }
    data.check_batch(cfg.batch)?;
    let steps = data.len() / cfg.batch;
    let total = steps * cfg.epochs;
    let schedule = cfg.schedule(total);
    schedule.check().map_err(EngineError::bad_input)?;
    // The kernels left to prune must be able to hold the whole target.
    let all = prunable(net);
    let size: usize = all.iter().map(|p| p.rows * p.cols).sum();
    let open: usize = all
        .iter()
        .filter(|p| p.rows > cfg.spare_fan_in)
        .map(|p| p.rows * p.cols)
        .sum();
    if f64::from(cfg.final_sparsity) * size as f64 > open as f64 {
        return Err(EngineError::bad_input(format!(
            "sparsity {} cannot be reached: kernels with a fan-in above {} hold only {:.1}% \
             of the weights (lower the spared fan-in)",
            cfg.final_sparsity,
            cfg.spare_fan_in,
            100.0 * open as f64 / size.max(1) as f64
        )));
    }
    let qc = QatConfig {
        epochs: cfg.epochs,
        batch: cfg.batch,
        lr: cfg.lr,
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
        seed: cfg.seed,
    };
    let mut masks: Option<Masks> = None;
    let mut loss = f64::NAN;
    let hook = |phase: Phase, step: usize, w: &mut Weights, sgd: &mut Sgd| {
        if phase == Phase::Before && schedule.should_prune(step) {
            masks = Some(Masks::compute_with(
                net,
                w,
                schedule.sparsity(step),
                cfg.block,
                cfg.spare_fan_in,
                cfg.allocation,
            ));
        }
        if let Some(m) = &masks {
            m.apply(w, Some(sgd));
        }
    };
    let done = qat::finetune_with(net, w, data, &qc, threads, false, hook, |s, t, l| {
        loss = l;
        progress(s, t, l)
    });
    if done.is_none() {
        return Ok(None);
    }
    let masks = masks.unwrap_or_else(|| Masks::compute(net, w, 0.0, cfg.block, 0));
    Ok(Some(PruneReport {
        steps: total,
        schedule,
        masks,
        loss,
    }))
}

/// Sparsity of one kernel tensor: exactly-zero floats, or quantized values equal to
/// their channel's zero point (0 for symmetric weights). `None` for other types.
fn tensor_zeros(t: &quantfarm_engine::ir::Tensor) -> Option<(usize, usize)> {
    let data = t.data.as_ref()?;
    match t.dtype {
        DType::F32 => {
            let v = t.data_f32()?;
            Some((v.iter().filter(|x| **x == 0.0).count(), v.len()))
        }
        DType::I8 | DType::U8 => {
            let q = t.quant.as_ref();
            let channels = q.map_or(1, |q| q.zero_point.len().max(1));
            let axis = q.map_or(0, |q| q.axis);
            // Index of the quantized axis for flat position i (row-major).
            let inner: usize = t.shape.iter().skip(axis + 1).product();
            let dim = t.shape.get(axis).copied().unwrap_or(1).max(1);
            let zeros = data
                .iter()
                .enumerate()
                .filter(|&(i, &b)| {
                    let ch = if channels > 1 {
                        (i / inner.max(1)) % dim
                    } else {
                        0
                    };
                    let zp = q.map_or(0, |q| q.params(ch.min(channels - 1)).1);
                    let v = if t.dtype == DType::I8 {
                        i64::from(b as i8)
                    } else {
                        i64::from(b)
                    };
                    v == zp
                })
                .count();
            Some((zeros, data.len()))
        }
        _ => None,
    }
}

/// Per-layer and overall sparsity of a model's conv, depthwise and dense weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparsity {
    /// `(weight tensor name, zeros, elements)` in op order.
    pub layers: Vec<(String, usize, usize)>,
    pub zeros: usize,
    pub total: usize,
}

impl Sparsity {
    pub fn fraction(&self) -> f64 {
        self.zeros as f64 / self.total.max(1) as f64
    }
}

/// Measure the weight sparsity of any engine model (float or quantized): the
/// constant weight input of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.
pub fn model_sparsity(model: &Model) -> Sparsity {
    let g = model.main();
    let mut s = Sparsity {
        layers: Vec::new(),
        zeros: 0,
        total: 0,
    };
    for op in &g.ops {
        if !matches!(
            op.kind,
            OpKind::Conv2D(_) | OpKind::DepthwiseConv2D(_) | OpKind::FullyConnected(_)
        ) {
            continue;
        }
        let Some(t) = op.inputs.get(1).and_then(|&i| i).map(|i| &g.tensors[i]) else {
            continue;
        };
        if let Some((z, n)) = tensor_zeros(t) {
            s.layers.push((t.name.clone(), z, n));
            s.zeros += z;
            s.total += n;
        }
    }
    s
}
